//! The web role's router, in process: setup gating, login, sessions, CSRF, rate limit,
//! error shapes and the OpenAPI document.

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
    _dir: tempfile::TempDir,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let mode = Mode::Dev {
            state_dir: dir.path().to_path_buf(),
        };
        let config = Config::load_with_env(&mode, |_| None).unwrap();
        let ctx: Arc<Context> = Context::open(config).unwrap();
        App {
            router: pinas_web::WebApp::new(ctx).build(),
            _dir: dir,
            cookie: None,
            csrf: None,
        }
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

    for (body, field) in [
        (SETUP.replace("correct horse", "short"), "admin.password"),
        (SETUP.replace("\"pinas\"", "\"-bad-\""), "hostname"),
        (SETUP.replace("Europe/Paris", "Mars/Olympus"), "timezone"),
        (SETUP.replace("\"companion\"", "\"toaster\""), "roles"),
        (SETUP.replace("\"admin\",", "\"Root!\","), "admin.username"),
    ] {
        let (s, v) = app.call("POST", "/api/setup", Some(&body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (s, v) = app.call("POST", "/api/setup", Some(&SETUP[..40])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), "invalid_request_body");
    let (_, v) = app.call("GET", "/api/setup", None).await;
    assert_eq!(v["done"], false, "bad input must not complete setup");

    let (s, v) = app.call("POST", "/api/setup", Some(SETUP)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["role"], "admin");
    let (s, v) = app.call("GET", "/api/system/info", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hostname"], "pinas");
    assert_eq!(v["roles"], json!(["companion", "nas"]));
    assert!(v["memory"]["total_bytes"].as_u64().unwrap() > 0);

    let (s, v) = app.call("POST", "/api/setup", Some(SETUP)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "setup_already_done"));
}

#[tokio::test]
async fn login_csrf_logout_and_rate_limit() {
    let mut app = App::new().await;
    app.call("POST", "/api/setup", Some(SETUP)).await;
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
