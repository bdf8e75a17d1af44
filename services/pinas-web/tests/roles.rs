//! The role registry drives the web role: which `/api/<role>/...` paths are proxied to a
//! role's socket and what `GET /api/system/services` lists.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use pinas_core::auth::Role;
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use serde_json::Value;
use tower::ServiceExt;

/// A web app whose setup is done (admin `admin`, setup roles `roles`), logged in.
struct App {
    router: Router,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
    cookie: String,
}

impl App {
    async fn new(roles: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mode = Mode::Dev {
            state_dir: dir.path().to_path_buf(),
        };
        let config = Config::load_with_env(&mode, |_| None).unwrap();
        let ctx: Arc<Context> = Context::open(config).unwrap();
        {
            let conn = ctx.db.conn();
            pinas_core::auth::create_account(&conn, "admin", Role::Admin, "correct horse").unwrap();
        }
        ctx.db.set_setting("roles", roles).unwrap();
        ctx.db.set_setting("setup_done", "true").unwrap();
        let router = pinas_web::WebApp::new(ctx.clone()).build();
        let resp = router
            .clone()
            .oneshot(
                Request::post("/api/auth/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        r#"{"username":"admin","password":"correct horse"}"#,
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let cookie = resp.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        App {
            router,
            ctx,
            _dir: dir,
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .router
            .clone()
            .oneshot(
                Request::get(path)
                    .header(header::COOKIE, &self.cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let (s, body) = self.get(path).await;
        (s, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Serves `router` on the role's socket, as the role's own process would.
    fn serve_role(&self, role: &str, router: Router) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sock = self.ctx.paths.role_socket(role);
        let events = self.ctx.events.clone();
        tokio::spawn(async move {
            pinas_core::role::serve_socket(&sock, router, events, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        tx
    }
}

async fn wait_for_socket(path: &std::path::Path) {
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{} never answered", path.display());
}

#[tokio::test]
async fn only_registered_roles_are_proxied() {
    let app = App::new(r#"["nas","companion"]"#).await;
    // Roles that do not exist are no API at all, even with a socket in place.
    let _fake = app.serve_role(
        "sync",
        Router::new().route("/status", get(|| async { "up" })),
    );
    wait_for_socket(&app.ctx.paths.role_socket("sync")).await;
    for path in ["/api/sync/status", "/api/sync", "/api/board/fan"] {
        let (s, v) = app.get_json(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }

    // A registered role with its process down: the proxy says so.
    let (s, v) = app.get_json("/api/dns/status").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "role_unavailable");

    // ... and once it serves its socket, requests reach it with the user named.
    let _dns = app.serve_role(
        "dns",
        Router::new().route(
            "/status",
            get(|h: axum::http::HeaderMap| async move {
                format!(
                    "dns sees {}",
                    h.get("x-pinas-user")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nobody")
                )
            }),
        ),
    );
    wait_for_socket(&app.ctx.paths.role_socket("dns")).await;
    let (s, body) = app.get("/api/dns/status").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "dns sees admin"));
}

fn service<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|s| s["name"] == name)
}

#[tokio::test]
async fn services_list_follows_the_registry() {
    let app = App::new(r#"["companion"]"#).await;
    let (s, v) = app.get_json("/api/system/services").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(service(&v, "web").unwrap()["state"], "running", "{v}");
    let dns = service(&v, "dns").unwrap();
    assert_eq!(dns["state"], "stopped", "{v}");
    assert!(
        dns["detail"]
            .as_str()
            .unwrap()
            .contains("pinas-dns.service"),
        "{v}"
    );
    for gone in ["sync", "board"] {
        assert!(service(&v, gone).is_none(), "{gone} listed: {v}");
    }
    // A companion box runs the companion and power roles.
    assert_eq!(service(&v, "companion").unwrap()["state"], "stopped", "{v}");
    assert_eq!(service(&v, "power").unwrap()["state"], "stopped", "{v}");

    let _dns = app.serve_role("dns", Router::new());
    wait_for_socket(&app.ctx.paths.role_socket("dns")).await;
    let (_, v) = app.get_json("/api/system/services").await;
    assert_eq!(service(&v, "dns").unwrap()["state"], "running", "{v}");
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<_> = pinas_core::roles::ROLES
        .iter()
        .filter(|r| r.subcommand().is_some())
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn only_registered_roles_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let mode = Mode::Dev {
        state_dir: dir.path().to_path_buf(),
    };
    let ctx = Context::open(Config::load_with_env(&mode, |_| None).unwrap()).unwrap();
    let mut doc = utoipa::openapi::OpenApi::default();
    doc.paths.paths.insert(
        "/status".into(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::Operation::new(),
        ),
    );
    // A role may document a path of its own as the browser sees it (the companion's
    // remote share, under the storage API): kept as it is.
    let mut full = doc.clone();
    full.paths.paths.insert(
        "/api/storage/remote/status".into(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::Operation::new(),
        ),
    );
    let app = pinas_web::WebApp::new(ctx)
        .with_proxied_doc("dns", doc.clone())
        .with_proxied_doc("companion", full)
        .with_proxied_doc("sync", doc);
    let paths = &app.openapi().paths.paths;
    assert!(paths.contains_key("/api/dns/status"));
    assert!(paths.contains_key("/api/companion/status"));
    assert!(paths.contains_key("/api/storage/remote/status"));
    assert!(!paths.keys().any(|p| p.contains("/api/companion/api/")));
    assert!(!paths.keys().any(|p| p.starts_with("/api/sync")));
}

/// The NAS's handshake paths reach the companion without a session (the companion checks
/// the pairing token), with the client's address and the token passed on and forged user
/// headers dropped; every other companion path, and other methods, still need a session.
#[tokio::test]
async fn only_the_companion_token_paths_pass_without_a_session() {
    let app = App::new(r#"["companion"]"#).await;
    let echo = |h: axum::http::HeaderMap, uri: axum::http::Uri| async move {
        let get = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        format!(
            "{} auth={} client={} user={} role={}",
            uri.path(),
            get("authorization"),
            get("x-pinas-client"),
            get("x-pinas-user"),
            get("x-pinas-role")
        )
    };
    let _companion = app.serve_role(
        "companion",
        Router::new()
            .route("/{*rest}", axum::routing::any(echo))
            .route("/", axum::routing::any(echo)),
    );
    wait_for_socket(&app.ctx.paths.role_socket("companion")).await;
    let call = |method: &str, path: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer t0ken")
            .header("x-pinas-user", "admin")
            .header("x-pinas-role", "admin")
            .header("x-pinas-client", "10.9.9.9")
            .body(Body::empty())
            .unwrap()
    };
    let send = |req: Request<Body>| {
        let router = app.router.clone();
        async move {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    for (path, tail) in [
        ("/api/companion/snapshot", "/snapshot"),
        ("/api/companion/nas-going-offline", "/nas-going-offline"),
        ("/api/companion/nas-coming-online", "/nas-coming-online"),
        ("/api/companion/wake-nas", "/wake-nas"),
        ("/api/nas-going-offline", "/nas-going-offline"),
        ("/api/nas-coming-online", "/nas-coming-online"),
        ("/api/wake-nas", "/wake-nas"),
    ] {
        let (s, body) = send(call("POST", path)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert_eq!(
            body,
            format!("{tail} auth=Bearer t0ken client=127.0.0.1 user=- role=-"),
            "{path}"
        );
    }
    for (method, path) in [
        ("GET", "/api/companion/snapshot"),
        ("GET", "/api/companion/status"),
        ("PUT", "/api/companion/settings"),
        ("POST", "/api/companion/wake"),
        ("POST", "/api/companion/pairing/token"),
        ("POST", "/api/companion/snapshot/x"),
        ("GET", "/api/nas-going-offline"),
        ("GET", "/api/storage/remote/status"),
        ("POST", "/api/storage/remote/reset"),
        ("GET", "/api/storage/remote/settings"),
    ] {
        let (s, body) = send(call(method, path)).await;
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {s} {body}"
        );
        assert!(
            !body.contains("auth="),
            "{method} {path} reached the role: {body}"
        );
    }
    // With a session, the user is named as usual.
    let (s, body) = app.get("/api/companion/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.ends_with("user=admin role=admin"), "{body}");
    // The remote share's paths under the storage API reach the companion's `/remote/...`.
    let (s, body) = app.get("/api/storage/remote/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, "/remote/status auth=- client=- user=admin role=admin");
}

/// The power role through the proxy: nothing without a session (401), reads for every
/// signed-in person, changes for admins only (403 for a user), the role's own checks
/// applied to the role the web role names.
#[tokio::test]
async fn power_needs_a_session_and_an_admin_to_change_anything() {
    let app = App::new(r#"["companion"]"#).await;
    {
        let conn = app.ctx.db.conn();
        pinas_core::auth::create_account(&conn, "bob", Role::User, "battery staple").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let power = pinas_power::Power::open(
        dir.path(),
        pinas_power::Settings::default(),
        app.ctx.events.clone(),
    )
    .unwrap();
    let _power = app.serve_role("power", pinas_power::api::router(power));
    wait_for_socket(&app.ctx.paths.role_socket("power")).await;
    let login = app
        .router
        .clone()
        .oneshot(
            Request::post("/api/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"username":"bob","password":"battery staple"}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let bob = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = |cookie: String| {
        let router = app.router.clone();
        async move {
            let resp = router
                .oneshot(
                    Request::get("/api/auth/me")
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            format!("{cookie}|{}", v["csrf_token"].as_str().unwrap())
        }
    };
    // "cookie|csrf token"
    let bob = csrf(bob).await;
    let admin = csrf(app.cookie.clone()).await;
    let send = |method: &str, path: &str, session: Option<&str>, body: &str| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            // Forged: the web role replaces them with the session's.
            .header("x-pinas-role", "admin")
            .header("x-pinas-user", "admin");
        if let Some((cookie, token)) = session.and_then(|s| s.split_once('|')) {
            req = req
                .header(header::COOKIE, cookie)
                .header("x-csrf-token", token);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let router = app.router.clone();
        async move {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let plug = r#"{"name":"NAS","address":"127.0.0.1:9","email":"a@example.com","password":"pw"}"#;
    let reads = [
        "/api/power/plugs",
        "/api/power/nas",
        "/api/power/settings",
        "/api/power/metrics",
    ];
    let changes = [
        ("POST", "/api/power/plugs", plug),
        ("PUT", "/api/power/settings", "{}"),
        ("PATCH", "/api/power/plugs/1", r#"{"name":"x"}"#),
        ("DELETE", "/api/power/plugs/1", ""),
        ("POST", "/api/power/plugs/1/switch", r#"{"on":false}"#),
        (
            "POST",
            "/api/power/discover",
            r#"{"target":"127.0.0.1","wait_ms":200}"#,
        ),
    ];
    for path in reads {
        let (s, body) = send("GET", path, None, "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let (s, body) = send("GET", path, Some(&bob), "").await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
    }
    for (method, path, body) in changes {
        let (s, b) = send(method, path, None, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {b}");
        let (s, b) = send(method, path, Some(&bob), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {b}");
        assert!(b.contains("admin_required"), "{method} {path}: {b}");
    }
    // The admin may.
    let (s, b) = send("POST", "/api/power/plugs", Some(&admin), plug).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(!b.contains("\"pw\"") && !b.contains("a@example.com"), "{b}");
}
