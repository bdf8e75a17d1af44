//! The web role's router, in process: setup gating and the setup code, login, sessions
//! (idle and absolute timeouts), CSRF, login limits, error shapes and the OpenAPI
//! document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use serde_json::{json, Value};
use tower::ServiceExt;

struct App {
    router: Router,
    dir: tempfile::TempDir,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl App {
    async fn new() -> App {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    /// A web role on the state folder `dir` (a restart when it was used before).
    fn in_dir(dir: tempfile::TempDir) -> App {
        let mode = Mode::Dev {
            state_dir: dir.path().to_path_buf(),
        };
        let config = Config::load_with_env(&mode, |_| None).unwrap();
        let ctx: Arc<Context> = Context::open(config).unwrap();
        App {
            router: pinas_web::WebApp::new(ctx).build(),
            dir,
            cookie: None,
            csrf: None,
        }
    }

    /// The setup code as the console shows it (`ABCD-EFGH`), read from its file.
    fn setup_code(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("setup-code"))
            .expect("a setup code while setup is pending")
            .trim()
            .to_string()
    }

    /// The setup body with the right setup code.
    fn setup_body(&self) -> String {
        with_code(SETUP, &self.setup_code())
    }

    async fn setup(&mut self) {
        let body = self.setup_body();
        let (s, v) = self.call("POST", "/api/setup", Some(&body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("pinas.db")).unwrap()
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        if let Some(c) = resp.headers().get(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            self.cookie = Some(c.split(';').next().unwrap().to_string());
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(t) = v.get("csrf_token").and_then(Value::as_str) {
            self.csrf = Some(t.to_string());
        }
        (status, v)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

const SETUP: &str = r#"{"admin":{"username":"admin","password":"correct horse"},"hostname":"pinas","timezone":"Europe/Paris","roles":["nas","companion"]}"#;

/// `body` (a JSON object) with `"setup_code": code` added.
fn with_code(body: &str, code: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["setup_code"] = json!(code);
    v.to_string()
}

#[tokio::test]
async fn setup_gates_everything_then_runs_once() {
    let mut app = App::new().await;
    let (s, v) = app.call("GET", "/api/system/health", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["setup_done"], false);
    let (s, v) = app.call("GET", "/api/system/info", None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "setup_required"));
    let (_, v) = app.call("GET", "/api/setup", None).await;
    assert_eq!(v["done"], false);
    let (s, v) = app.call("GET", "/api/system/timezones", None).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the wizard needs time zones before setup"
    );
    assert!(
        v.as_array().unwrap().iter().any(|z| z == "Europe/Paris"),
        "{v}"
    );

    let good = app.setup_code();
    for (body, field) in [
        (SETUP.replace("correct horse", "short"), "admin.password"),
        (
            SETUP.replace("correct horse", "correct\\nhorse"),
            "admin.password",
        ),
        (SETUP.replace("\"pinas\"", "\"-bad-\""), "hostname"),
        (SETUP.replace("Europe/Paris", "Mars/Olympus"), "timezone"),
        (SETUP.replace("\"companion\"", "\"toaster\""), "roles"),
        (SETUP.replace("\"admin\",", "\"Root!\","), "admin.username"),
    ] {
        let (s, v) = app
            .call("POST", "/api/setup", Some(&with_code(&body, &good)))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (s, v) = app.call("POST", "/api/setup", Some(&SETUP[..40])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), "invalid_request_body");
    let (_, v) = app.call("GET", "/api/setup", None).await;
    assert_eq!(v["done"], false, "bad input must not complete setup");

    let body = app.setup_body();
    let (s, v) = app.call("POST", "/api/setup", Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["role"], "admin");
    let (s, v) = app.call("GET", "/api/system/info", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hostname"], "pinas");
    assert_eq!(v["roles"], json!(["companion", "nas"]));
    assert!(v["memory"]["total_bytes"].as_u64().unwrap() > 0);

    let (s, v) = app.call("POST", "/api/setup", Some(&body)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "setup_already_done"));
}

#[tokio::test]
async fn login_csrf_logout_and_rate_limit() {
    let mut app = App::new().await;
    app.setup().await;
    app.cookie = None;
    app.csrf = None;
    let (s, v) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));

    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            Some(r#"{"username":"admin","password":"wrong pass"}"#),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            Some(r#"{"username":"admin","password":"correct horse"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let csrf = app.csrf.clone().unwrap();
    let (_, v) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(v["csrf_token"], csrf.as_str());

    // A change without the CSRF token is refused, with it accepted.
    app.csrf = None;
    let (s, v) = app
        .call("PUT", "/api/auth/me/preferences", Some(r#"{"windows":[]}"#))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "csrf_token_invalid"));
    app.csrf = Some(csrf);
    let (s, _) = app
        .call(
            "PUT",
            "/api/auth/me/preferences",
            Some(r#"{"windows":[1]}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app.call("GET", "/api/auth/me/preferences", None).await;
    assert_eq!(v, json!({"windows":[1]}));
    let (s, v) = app.call("POST", "/api/system/reboot", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_IMPLEMENTED, "not_supported_in_dev")
    );

    let (s, _) = app.call("POST", "/api/auth/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Five failures, then even the right password is refused for a while.
    for _ in 0..5 {
        app.call(
            "POST",
            "/api/auth/login",
            Some(r#"{"username":"admin","password":"guess guess"}"#),
        )
        .await;
    }
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            Some(r#"{"username":"admin","password":"correct horse"}"#),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

#[tokio::test]
async fn errors_are_json_and_openapi_lists_routes() {
    let mut app = App::new().await;
    let (s, v) = app.call("GET", "/api/nothing/here", None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = app
        .call("POST", "/api/auth/login", Some("{\"username\":"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&v), "invalid_request_body");
    let (s, v) = app.call("GET", "/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/api/setup",
        "/api/auth/login",
        "/api/system/info",
        "/api/events",
    ] {
        assert!(v["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = App::new().await;
    let resp = app
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("pinas_"), "{line}");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
    }
    assert!(text.contains("pinas_memory_total_bytes"));
}

#[tokio::test]
async fn setup_needs_the_one_time_code() {
    use std::os::unix::fs::PermissionsExt;
    let mut app = App::new().await;
    let code_file = app.dir.path().join("setup-code");
    let issue = app.dir.path().join("run/setup.issue");
    let shown = app.setup_code();
    assert_eq!(shown.len(), 9, "grouped as ABCD-EFGH: {shown}");
    for f in [&code_file, &issue] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    assert_eq!(
        std::fs::read_to_string(&issue).unwrap().lines().next(),
        Some(format!("PiNAS setup code: {shown}").as_str())
    );

    // The first client on the LAN no longer becomes admin without the code.
    let (s, v) = app.call("POST", "/api/setup", Some(SETUP)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "setup_code_invalid"));
    let wrong = if shown == "AAAA-AAAA" {
        "BBBB-BBBB"
    } else {
        "AAAA-AAAA"
    };
    let (s, v) = app
        .call("POST", "/api/setup", Some(&with_code(SETUP, wrong)))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "setup_code_invalid"));
    assert!(
        !v.to_string().contains(&shown),
        "the code is never answered"
    );
    let (_, v) = app.call("GET", "/api/setup", None).await;
    assert_eq!(v, json!({"done": false, "storage_available": true}));

    // Stable across a restart while setup is pending.
    let dir = app.dir;
    let mut app = App::in_dir(dir);
    assert_eq!(app.setup_code(), shown);

    // Typed in lower case without the dash, it is accepted; then it is gone.
    let typed = shown.replace('-', "").to_lowercase();
    let (s, v) = app
        .call("POST", "/api/setup", Some(&with_code(SETUP, &typed)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!code_file.exists(), "the used code is removed");
    assert!(!issue.exists(), "the console's notice is removed");
    let dir = app.dir;
    let app = App::in_dir(dir);
    assert!(
        !app.dir.path().join("setup-code").exists(),
        "no new code once setup is done"
    );
}

#[tokio::test]
async fn wrong_setup_codes_are_rate_limited() {
    let mut app = App::new().await;
    let shown = app.setup_code();
    let wrong = if shown.starts_with('A') {
        "BBBB-BBBB"
    } else {
        "AAAA-AAAA"
    };
    for _ in 0..5 {
        let (s, _) = app
            .call("POST", "/api/setup", Some(&with_code(SETUP, wrong)))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    // Now even the right code waits: guessing 40 bits at 5 tries per 5 minutes is hopeless.
    let body = app.setup_body();
    let (s, v) = app.call("POST", "/api/setup", Some(&body)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

#[tokio::test]
async fn setup_is_refused_when_storage_fell_back_to_ram() {
    // On the device, a state folder on tmpfs means the initramfs could not mount the
    // storage partition. /dev/shm is a tmpfs.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (dir, in_ram) in [(shm.path(), true), (disk.path(), false)] {
        let toml = format!(
            "[paths]\nstate_dir = {dir:?}\nrun_dir = {run:?}\n[web]\nbind_address = \"127.0.0.1:0\"\n",
            run = dir.join("run")
        );
        let cfg_path = dir.join("config.toml");
        std::fs::write(&cfg_path, toml).unwrap();
        let env = |k: &str| (k == "PINAS_CONFIG_PATH").then(|| cfg_path.display().to_string());
        let config = Config::load_with_env(&Mode::Device, env).unwrap();
        assert!(!config.dev);
        let ctx: Arc<Context> = Context::open(config).unwrap();
        let mut app = App {
            router: pinas_web::WebApp::new(ctx).build(),
            dir: tempfile::tempdir().unwrap(),
            cookie: None,
            csrf: None,
        };
        let (_, v) = app.call("GET", "/api/setup", None).await;
        assert_eq!(v["storage_available"], !in_ram, "{v}");
        let code_file = dir.join("setup-code");
        assert_eq!(code_file.exists(), !in_ram, "a code only with real storage");
        // A wrong code: refused for the storage, or else for the code. (Completing setup
        // in device mode would set this machine's host name and time zone.)
        let (s, v) = app
            .call("POST", "/api/setup", Some(&with_code(SETUP, "ZZZZ-ZZZZ")))
            .await;
        if in_ram {
            assert_eq!(
                (s, code(&v)),
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            );
            let issue = std::fs::read_to_string(dir.join("run/setup.issue")).unwrap();
            assert!(issue.contains("not offered"), "{issue}");
        } else {
            assert_eq!(
                (s, code(&v)),
                (StatusCode::FORBIDDEN, "setup_code_invalid"),
                "setup is offered on real storage"
            );
        }
    }
}

/// 200 wrong logins at once from one address: at most the limit is checked (hashed),
/// every other one is answered 429 with `Retry-After`, and afterwards even the right
/// password waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_logins_is_answered_429_after_the_limit() {
    let mut app = App::new().await;
    app.setup().await;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let router = app.router.clone();
            tokio::spawn(async move {
                let body = json!({"username": "admin", "password": format!("guess {i:04}")});
                let req = Request::post("/api/auth/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap();
                let resp = router.oneshot(req).await.unwrap();
                let retry = resp.headers().get(header::RETRY_AFTER).cloned();
                let status = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                (status, code(&v).to_string(), retry)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let unauthorized = answers
        .iter()
        .filter(|(s, c, _)| *s == StatusCode::UNAUTHORIZED && c == "invalid_credentials")
        .count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, c, _)| *s == StatusCode::TOO_MANY_REQUESTS && c == "too_many_attempts")
        .collect();
    assert_eq!(unauthorized, 5, "only the allowed attempts are checked");
    assert_eq!(limited.len(), 195);
    for (_, _, retry) in limited {
        let secs: u64 = retry
            .as_ref()
            .expect("Retry-After on every 429")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&secs), "{secs}");
    }
    // 200 argon2 checks would take many seconds; 5 take well under that.
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let (s, v) = app
        .call(
            "POST",
            "/api/auth/login",
            Some(r#"{"username":"admin","password":"correct horse"}"#),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

/// A login to one's own account does not wipe the failures left by guesses at another
/// account from the same address; and an account is limited across addresses.
#[tokio::test]
async fn limits_per_address_and_per_account() {
    let mut app = App::new().await;
    app.setup().await;
    pinas_core::auth::create_account(
        &app.db(),
        "mallory",
        pinas_core::auth::Role::User,
        "mallory-pass",
    )
    .unwrap();
    let login = |user: &str, pw: &str, ip: &str| {
        let body = json!({"username": user, "password": pw}).to_string();
        let mut req = Request::post("/api/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        let router = app.router.clone();
        async move { router.oneshot(req).await.unwrap().status() }
    };
    let ip = "192.0.2.10";
    for _ in 0..4 {
        assert_eq!(
            login("admin", "guess-one", ip).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(login("mallory", "mallory-pass", ip).await, StatusCode::OK);
    }
    assert_eq!(
        login("admin", "guess-two", ip).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("admin", "guess-six", ip).await,
        StatusCode::TOO_MANY_REQUESTS,
        "logging in to another account must not clear the address's failures"
    );
    // IPv6: one /64 is one client.
    for i in 0..5 {
        let ip6 = format!("[2001:db8:5:6::{i:x}]");
        assert_eq!(
            login("mallory", "wrong-pass", &ip6).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("mallory", "mallory-pass", "[2001:db8:5:6:ffff::1]").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The account: 10 attempts from any addresses in the window.
    for i in 0..5 {
        let other = format!("198.51.100.{i}");
        assert_eq!(
            login("mallory", "wrong-pass", &other).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("mallory", "mallory-pass", "203.0.113.9").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the account has used up its attempts from all addresses together"
    );
}

#[tokio::test]
async fn sessions_end_when_idle_and_after_a_week() {
    let mut app = App::new().await;
    app.setup().await;
    let now = pinas_core::events::now_secs();
    let (created, expires): (i64, i64) = app
        .db()
        .query_row("SELECT created_at, expires_at FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        expires - created <= 3600,
        "an unused session must end within an hour, not after {} s",
        expires - created
    );
    // Idle: the deadline passed without a request.
    app.db()
        .execute("UPDATE sessions SET expires_at = ?1", [now - 1])
        .unwrap();
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // In use all the time, a session still ends a week after login.
    app.cookie = None;
    app.call(
        "POST",
        "/api/auth/login",
        Some(r#"{"username":"admin","password":"correct horse"}"#),
    )
    .await;
    app.db()
        .execute(
            "UPDATE sessions SET created_at = ?1, expires_at = ?2",
            [now - 7 * 24 * 3600 - 1, now + 600],
        )
        .unwrap();
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A used session moves its idle deadline forward.
    app.cookie = None;
    app.call(
        "POST",
        "/api/auth/login",
        Some(r#"{"username":"admin","password":"correct horse"}"#),
    )
    .await;
    // Read the clock again: on a loaded machine the logins above take seconds.
    let now = pinas_core::events::now_secs();
    app.db()
        .execute("UPDATE sessions SET expires_at = ?1", [now + 120])
        .unwrap();
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::OK);
    let expires: i64 = app
        .db()
        .query_row("SELECT MAX(expires_at) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(expires >= now + 3500, "{expires} vs {now}");
}

#[tokio::test]
async fn the_session_cookie_is_found_among_others() {
    let mut app = App::new().await;
    app.setup().await;
    let session = app.cookie.clone().unwrap();
    app.cookie = Some(format!("theme=dark; {session}; lang=fr"));
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::OK);
    app.cookie = Some("pinas_session=; theme=dark".into());
    let (s, _) = app.call("GET", "/api/auth/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// A stolen session cannot guess the current password through the users API: an
/// account's own-record changes that the API refuses (403) are limited per account.
#[tokio::test]
async fn guessing_the_current_password_is_limited() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let mode = Mode::Dev {
        state_dir: dir.path().to_path_buf(),
    };
    let ctx = Context::open(Config::load_with_env(&mode, |_| None).unwrap()).unwrap();
    // Stands in for the users API: it refuses every current password.
    let reached = Arc::new(AtomicUsize::new(0));
    let r = reached.clone();
    let users = Router::new().route(
        "/api/users/{name}",
        axum::routing::put(move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                pinas_core::Error::forbidden("current_password_invalid", "wrong")
            }
        }),
    );
    let mut app = App {
        router: pinas_web::WebApp::new(ctx)
            .with_router(users, utoipa::openapi::OpenApi::default())
            .build(),
        dir,
        cookie: None,
        csrf: None,
    };
    app.setup().await;
    let body = r#"{"password":"new password 1","current_password":"guess"}"#;
    for _ in 0..5 {
        let (s, _) = app.call("PUT", "/api/users/admin", Some(body)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, v) = app.call("PUT", "/api/users/admin", Some(body)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        5,
        "refused before the check"
    );
    // Another user's record is not the admin's own password.
    let (s, _) = app.call("PUT", "/api/users/alice", Some(body)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
