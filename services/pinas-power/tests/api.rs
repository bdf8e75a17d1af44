//! The power role's control API in-process, polling fake P110s on loopback: who may
//! call what, plugs added and sampled, accounts kept private, a wrong account, a plug
//! that goes offline and comes back, counter resets, switching, metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pinas_core::EventBus;
use pinas_power::fake::{FakeOptions, FakePlug};
use pinas_power::{api, fixtures, Power, Settings};
use serde_json::{json, Value};
use tower::ServiceExt;

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "plug-Password-9";

struct Role {
    _power: Arc<Power>,
    router: axum::Router,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn settings() -> Settings {
    Settings {
        interval_ms: 1_000,
        timeout_ms: 400,
        ..Settings::default()
    }
}

async fn role() -> Role {
    let dir = tempfile::tempdir().unwrap();
    let power = Power::open(dir.path(), settings(), EventBus::new(None)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(power.clone().run_pollers(async {
        let _ = rx.await;
    }));
    Role {
        router: api::router(power.clone()),
        _power: power,
        dir,
        stop: Some(tx),
    }
}

async fn fake(i: usize) -> FakePlug {
    let f = fixtures::generated().remove(i);
    FakePlug::start(FakeOptions::new(f, EMAIL, PASSWORD))
        .await
        .unwrap()
}

impl Role {
    async fn call(
        &self,
        role: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(r) = role {
            req = req
                .header("x-pinas-role", r)
                .header("x-pinas-user", "tester");
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Some("admin"), method, uri, body).await
    }

    async fn add(&self, name: &str, plug: &FakePlug, password: &str, extra: Value) -> i64 {
        let mut body =
            json!({"name": name, "address": plug.address(), "email": EMAIL, "password": password});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self.admin(Method::POST, "/plugs", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Waits up to 5 s for plug `id`'s stored series to hold at least `n` points.
    async fn series_with(&self, id: i64, n: usize) -> Value {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let (s, v) = self
                .call(
                    Some("user"),
                    Method::GET,
                    &format!("/plugs/{id}/samples"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["points"].as_array().is_some_and(|p| p.len() >= n) {
                return v;
            }
            assert!(Instant::now() < end, "fewer than {n} points: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `secs` for plug `id`'s view to satisfy `f`.
    async fn wait_for(&self, id: i64, secs: u64, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, v) = self
                .call(Some("user"), Method::GET, &format!("/plugs/{id}"), None)
                .await;
            if f(&v) {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn every_endpoint_checks_who_calls() {
    let r = role().await;
    let p = fake(1).await;
    let id = r.add("A", &p, PASSWORD, json!({})).await;
    let admin_only: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/plugs".into(),
            Some(json!({"name": "B", "address": "10.0.0.9", "email": EMAIL, "password": "x"})),
        ),
        (
            Method::PATCH,
            format!("/plugs/{id}"),
            Some(json!({"name": "C"})),
        ),
        (Method::DELETE, format!("/plugs/{id}"), None),
        (
            Method::POST,
            format!("/plugs/{id}/switch"),
            Some(json!({"on": false})),
        ),
        (
            Method::PUT,
            "/settings".into(),
            Some(serde_json::to_value(settings()).unwrap()),
        ),
    ];
    let readers: Vec<(Method, String)> = vec![
        (Method::GET, "/plugs".into()),
        (Method::GET, format!("/plugs/{id}")),
        (Method::GET, format!("/plugs/{id}/samples")),
        (Method::GET, format!("/plugs/{id}/usage")),
        (Method::GET, "/settings".into()),
        (Method::GET, "/metrics".into()),
    ];
    for (m, uri, body) in &admin_only {
        let (s, v) = r.call(None, m.clone(), uri, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("role_required")),
            "{m} {uri}"
        );
        let (s, v) = r.call(Some("user"), m.clone(), uri, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required")),
            "{m} {uri}"
        );
    }
    for (m, uri) in &readers {
        let (s, v) = r.call(None, m.clone(), uri, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("role_required")),
            "{m} {uri}"
        );
        let (s, v) = r.call(Some("user"), m.clone(), uri, None).await;
        assert_eq!(s, StatusCode::OK, "{m} {uri}: {v}");
    }
    // Nothing a user tried changed anything.
    let (_, v) = r.admin(Method::GET, "/plugs", None).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "A");
    // And the admin's calls work.
    let (s, v) = r
        .admin(
            Method::PATCH,
            &format!("/plugs/{id}"),
            Some(json!({"name": "C"})),
        )
        .await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("C")));
    let (s, _) = r
        .admin(
            Method::PUT,
            "/settings",
            Some(serde_json::to_value(settings()).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = r.admin(Method::DELETE, &format!("/plugs/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = r.admin(Method::GET, &format!("/plugs/{id}"), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("plug_not_found"))
    );
}

#[tokio::test]
async fn a_plug_is_sampled_and_its_account_never_shown() {
    let r = role().await;
    let p = fake(2).await;
    p.set_power_w(23.5);
    let id = r.add("NAS", &p, PASSWORD, json!({"is_nas": true})).await;
    let v = r
        .wait_for(id, 10, "two samples", |v| {
            v["status"]["power_w"] == 23.5 && p.requests() >= 3
        })
        .await;
    assert_eq!(v["is_nas"], true);
    assert_eq!(v["account_set"], true);
    assert_eq!(v["status"]["online"], true);
    assert_eq!(v["status"]["klap_version"], "v2");
    assert_eq!(v["status"]["device"]["model"], "P110");
    assert_eq!(v["status"]["device"]["nickname"], "Plug 2");
    let (_, all) = r.call(Some("user"), Method::GET, "/plugs", None).await;
    let (_, settings) = r.call(Some("user"), Method::GET, "/settings", None).await;
    for text in [v.to_string(), all.to_string(), settings.to_string()] {
        assert!(!text.contains(PASSWORD) && !text.contains(EMAIL), "{text}");
    }
    // The account is in a private file, not in the database.
    use std::os::unix::fs::PermissionsExt;
    let creds = r.dir.path().join("credentials.json");
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&creds).unwrap().contains(PASSWORD));
    let db = std::fs::read(r.dir.path().join("power.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(PASSWORD));
    // Samples are stored in batches, a moment after they are read.
    let series = r.series_with(id, 2).await;
    assert_eq!(series["resolution"], "raw");
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{series}");
    assert!(points.iter().all(|p| p["power_w"] == 23.5));
    assert_eq!(series["gaps"], json!([]));
    // Metrics name the plug.
    let (s, m) = r.call(Some("user"), Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let m = m.as_str().unwrap().to_string();
    assert!(m.contains("pinas_power_watts{plug=\"NAS\"} 23.5"), "{m}");
    assert!(m.contains("pinas_energy_wh_total{plug=\"NAS\"}"), "{m}");
    assert!(m.contains("pinas_power_plug_up{plug=\"NAS\"} 1"), "{m}");
    assert!(!m.contains(PASSWORD));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_stored() {
    let r = role().await;
    let cases = [
        (
            json!({"name": "", "address": "10.0.0.1", "email": EMAIL, "password": "x"}),
            "invalid_plug_name",
        ),
        (
            json!({"name": "A", "address": "http://10.0.0.1/", "email": EMAIL, "password": "x"}),
            "invalid_address",
        ),
        (
            json!({"name": "A", "address": "10.0.0.1:70000", "email": EMAIL, "password": "x"}),
            "invalid_address",
        ),
        (
            json!({"name": "A", "address": "10.0.0.1", "email": "nobody", "password": "x"}),
            "invalid_email",
        ),
        (
            json!({"name": "A", "address": "10.0.0.1", "email": EMAIL, "password": ""}),
            "invalid_password",
        ),
        (json!({"name": "A", "address": "10.0.0.1"}), "invalid_body"),
    ];
    for (body, code) in cases {
        let (s, v) = r.admin(Method::POST, "/plugs", Some(body.clone())).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, v) = r
        .admin(Method::PUT, "/settings", Some(json!({"interval_ms": 200})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "interval_ms", "{v}");
    let (s, v) = r
        .call(
            Some("user"),
            Method::GET,
            "/plugs/1/samples?from_ms=10&to_ms=5",
            None,
        )
        .await;
    assert!(
        s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::NOT_FOUND,
        "{v}"
    );
    let (_, v) = r.admin(Method::GET, "/plugs", None).await;
    assert_eq!(v, json!([]));
    let (_, v) = r.admin(Method::GET, "/settings", None).await;
    assert_eq!(v["interval_ms"], 1000);
    assert!(!r.dir.path().join("credentials.json").exists());
    // Names and addresses are unique.
    let p = fake(1).await;
    r.add("A", &p, PASSWORD, json!({})).await;
    let (s, v) = r
        .admin(
            Method::POST,
            "/plugs",
            Some(json!({"name": "A", "address": "10.0.0.2", "email": EMAIL, "password": "x"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("plug_name_taken"))
    );
    let (s, v) = r
        .admin(
            Method::POST,
            "/plugs",
            Some(json!({"name": "B", "address": p.address(), "email": EMAIL, "password": "x"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("plug_address_taken"))
    );
}

#[tokio::test]
async fn a_wrong_account_is_a_clear_error_on_the_plug_not_a_retry_storm() {
    let r = role().await;
    let p = fake(1).await;
    let id = r.add("Wrong", &p, "not-the-password", json!({})).await;
    let v = r
        .wait_for(id, 5, "the refusal", |v| {
            v["status"]["error"]["code"] == "plug_credentials_rejected"
        })
        .await;
    assert_eq!(v["status"]["online"], false);
    assert!(v["status"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("e-mail address and password"));
    let next = v["status"]["next_try_ms"].as_i64().unwrap();
    assert!(
        next - pinas_core::events::now_ms() > 50_000,
        "backs off a minute: {v}"
    );
    // 1 s sampling, yet one handshake in three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.handshakes(), 1);
    assert_eq!(p.requests(), 0);
    // Another plug added (or changed) leaves this plug's backoff alone.
    let other = fake(1).await;
    r.add("Other", &other, PASSWORD, json!({})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(other.handshakes() >= 1, "the new plug is polled");
    assert_eq!(
        p.handshakes(),
        1,
        "a change elsewhere restarted this plug's poller"
    );
    // Fixing the password applies at once.
    let (s, _) = r
        .admin(
            Method::PATCH,
            &format!("/plugs/{id}"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    r.wait_for(id, 5, "samples", |v| v["status"]["online"] == true)
        .await;
}

#[tokio::test]
async fn an_offline_plug_leaves_a_gap_backs_off_and_recovers() {
    let r = role().await;
    let p = fake(3).await;
    p.set_power_w(10.0);
    let id = r.add("Shaky", &p, PASSWORD, json!({})).await;
    r.wait_for(id, 5, "a sample", |v| v["status"]["online"] == true)
        .await;
    p.set_online(false).await.unwrap();
    let v = r
        .wait_for(id, 5, "the outage", |v| v["status"]["online"] == false)
        .await;
    assert_eq!(v["status"]["error"]["code"], "plug_unreachable");
    // Gaps and samples are stored in batches, a moment after they happen.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, series) = r
        .call(
            Some("user"),
            Method::GET,
            &format!("/plugs/{id}/samples"),
            None,
        )
        .await;
    let gaps = series["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{series}");
    assert!(gaps[0]["end_ms"].is_null());
    // Backoff: 1 s, 2 s, 4 s... so at most 3 more tries in the next 4 s.
    let before = r
        .call(Some("user"), Method::GET, &format!("/plugs/{id}"), None)
        .await
        .1["status"]["failures"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = r
        .call(Some("user"), Method::GET, &format!("/plugs/{id}"), None)
        .await
        .1["status"]["failures"]
        .as_u64()
        .unwrap();
    assert!(after - before <= 3 && after >= 2, "{before} -> {after}");
    let samples_before = series["points"].as_array().unwrap().len();
    p.set_online(true).await.unwrap();
    r.wait_for(id, 20, "recovery", |v| v["status"]["online"] == true)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, series) = r
        .call(
            Some("user"),
            Method::GET,
            &format!("/plugs/{id}/samples"),
            None,
        )
        .await;
    let gap = &series["gaps"][0];
    let (start, end) = (
        gap["start_ms"].as_i64().unwrap(),
        gap["end_ms"].as_i64().unwrap(),
    );
    assert!(end > start + 3_000, "{gap}");
    let points = series["points"].as_array().unwrap();
    assert!(points.len() > samples_before);
    // Never filled in: no sample inside the gap.
    assert!(
        points.iter().all(|p| {
            let t = p["at_ms"].as_i64().unwrap();
            t <= start || t >= end
        }),
        "{series}"
    );
}

#[tokio::test]
async fn counter_resets_never_make_the_total_go_backwards_or_count_twice() {
    let r = role().await;
    let p = fake(1).await;
    // 36 kW: 10 Wh a second, so each 1 s sample moves the counters.
    p.set_power_w(36_000.0);
    let id = r.add("Heater", &p, PASSWORD, json!({})).await;
    let total = |v: &Value| v["status"]["total_wh"].as_i64().unwrap_or(0);
    let v0 = r.wait_for(id, 10, "energy", |v| total(v) >= 10).await;
    let t0 = total(&v0);
    let (_, m0) = p.counters();
    // Midnight: today's counter starts over, the month's goes on.
    p.reset_counters(true, false);
    let v1 = r
        .wait_for(id, 10, "energy after midnight", |v| total(v) >= t0 + 40)
        .await;
    let (_, m1) = p.counters();
    // What PiNAS added is what the month counter says was drawn (to a sample's worth).
    let added = total(&v1) - t0;
    let drawn = m1 - m0;
    assert!(
        (drawn - added).abs() <= 25,
        "added {added} Wh, drawn {drawn} Wh"
    );
    // A reboot: both counters start over; the total only grows.
    p.reset_counters(true, true);
    let t1 = total(&v1);
    let v2 = r
        .wait_for(id, 10, "energy after the reboot", |v| total(v) > t1 + 20)
        .await;
    assert!(total(&v2) > t1);
    // Samples: totals never decrease.
    let (_, series) = r
        .call(
            Some("user"),
            Method::GET,
            &format!("/plugs/{id}/samples?resolution=raw"),
            None,
        )
        .await;
    let totals: Vec<i64> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total_wh"].as_i64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
}

#[tokio::test]
async fn switching_is_opt_in_and_spares_a_running_nas() {
    let r = role().await;
    let lamp = fake(1).await;
    let nas = fake(2).await;
    nas.set_power_w(45.0);
    let lamp_id = r.add("Lamp", &lamp, PASSWORD, json!({})).await;
    let nas_id = r
        .add(
            "NAS",
            &nas,
            PASSWORD,
            json!({"is_nas": true, "switchable": true}),
        )
        .await;
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{lamp_id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("plug_not_switchable"))
    );
    assert!(lamp.is_on());
    r.admin(
        Method::PATCH,
        &format!("/plugs/{lamp_id}"),
        Some(json!({"switchable": true})),
    )
    .await;
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{lamp_id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!lamp.is_on());
    let (s, _) = r
        .admin(
            Method::POST,
            &format!("/plugs/{lamp_id}/switch"),
            Some(json!({"on": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(lamp.is_on());
    r.wait_for(nas_id, 5, "the NAS's power", |v| {
        v["status"]["power_w"] == 45.0
    })
    .await;
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{nas_id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("nas_running"))
    );
    assert!(nas.is_on());
    // Idle below the threshold: it may be switched off.
    nas.set_power_w(2.0);
    r.wait_for(nas_id, 5, "the NAS idle", |v| v["status"]["power_w"] == 2.0)
        .await;
    let (s, _) = r
        .admin(
            Method::POST,
            &format!("/plugs/{nas_id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!nas.is_on());
    // Marking another plug as the NAS moves the mark.
    r.admin(
        Method::PATCH,
        &format!("/plugs/{lamp_id}"),
        Some(json!({"is_nas": true})),
    )
    .await;
    let (_, v) = r
        .admin(Method::GET, &format!("/plugs/{nas_id}"), None)
        .await;
    assert_eq!(v["is_nas"], false);
}

/// A stand-in for the companion role's socket: `GET /status` answers `{"state": ...}` as
/// the companion does, with a state the test sets.
fn companion(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    Arc<std::sync::Mutex<&'static str>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let state = Arc::new(std::sync::Mutex::new("online"));
    let sock = dir.join("companion.sock");
    let router = axum::Router::new().route(
        "/status",
        axum::routing::get({
            let state = state.clone();
            move |h: axum::http::HeaderMap| {
                let state = state.clone();
                async move {
                    // The companion needs a role; the power role names itself a reader.
                    assert_eq!(h["x-pinas-role"], "user");
                    let s = *state.lock().unwrap();
                    axum::Json(json!({"nas_name": "nas", "state": s, "since_ms": 1}))
                }
            }
        }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let path = sock.clone();
    tokio::spawn(async move {
        pinas_core::role::serve_socket(&path, router, EventBus::new(None), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (sock, state, tx)
}

#[tokio::test]
async fn the_nas_plug_follows_the_companion_and_a_disagreement_is_reported() {
    let r = role().await;
    let side = tempfile::tempdir().unwrap();
    let (sock, state, _stop) = companion(side.path());
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r._power.follow_companion(sock);
    r._power.set_mismatch_after(Duration::ZERO);
    let mut events = r._power.events().subscribe();
    let nas = fake(2).await;
    // Idle at 8 W: below the threshold, so the plug alone would allow switching off.
    nas.set_power_w(8.0);
    let id = r
        .add(
            "NAS",
            &nas,
            PASSWORD,
            json!({"is_nas": true, "switchable": true}),
        )
        .await;
    r.wait_for(id, 5, "the NAS idle", |v| v["status"]["power_w"] == 8.0)
        .await;
    let (s, v) = r.call(Some("user"), Method::GET, "/nas", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["plug_id"].as_i64(), v["state"].as_str()),
        (Some(id), Some("standby"))
    );
    // The companion says the NAS is online: its plug stays on.
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("nas_running")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("companion says the NAS is online"),
        "{v}"
    );
    assert!(nas.is_on());
    let (_, v) = r.call(Some("user"), Method::GET, "/nas", None).await;
    assert_eq!(v["companion"]["state"], "online", "{v}");
    assert!(v["mismatch_since_ms"].is_null(), "{v}");

    // The companion believes it is off, yet it works at 55 W: reported once.
    *state.lock().unwrap() = "offline";
    r._power.refresh_companion().await.unwrap();
    nas.set_power_w(55.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.iter().any(|k: &String| k == "notification.new") {
        if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            if ev.kind != "power.reading" {
                seen.push(ev.kind.clone());
            }
        }
    }
    assert!(seen.contains(&"power.nas.mismatch".to_string()), "{seen:?}");
    assert!(seen.contains(&"notification.new".to_string()), "{seen:?}");
    let (_, v) = r.call(Some("user"), Method::GET, "/nas", None).await;
    assert_eq!(
        (v["state"].as_str(), v["companion"]["state"].as_str()),
        (Some("active"), Some("offline")),
        "{v}"
    );
    assert!(v["mismatch_since_ms"].is_i64(), "{v}");
    // Once per episode: more readings of the same disagreement report nothing new.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut again = 0;
    while let Ok(ev) = events.try_recv() {
        again += usize::from(ev.kind == "power.nas.mismatch");
    }
    assert_eq!(again, 0);
    // Drawing 55 W, it is not switched off even though the companion believes it off.
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("nas_running")),
        "{v}"
    );
    // Off by the companion and idle by the plug: it may be switched off.
    nas.set_power_w(3.0);
    r.wait_for(id, 5, "the NAS idle", |v| v["status"]["power_w"] == 3.0)
        .await;
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/plugs/{id}/switch"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!nas.is_on());
}
