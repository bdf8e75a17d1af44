//! The companion's control API in-process, against real peers on loopback: the DNS role
//! (pinas-dns serving its control socket and answering dig), a health endpoint that can
//! be switched off, and a UDP socket catching the magic packet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use pinas_companion::{api, Companion, CompanionConfig};
use pinas_core::EventBus;
use pinas_testkit::{require, require_tools};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The DNS role on loopback: UDP/TCP for dig, its control API on a socket.
struct Dns {
    addr: SocketAddr,
    socket: PathBuf,
    events: EventBus,
    running: Option<pinas_dns::Running>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Dns {
    async fn start(dir: &std::path::Path) -> Dns {
        let events = EventBus::new(None);
        let state = dir.join("dns");
        let db = pinas_dns::store::open(&state, None).unwrap();
        let mut cfg = pinas_dns::DnsConfig {
            upstreams: vec!["127.0.0.1:9".into()],
            ..Default::default()
        };
        cfg.switch.nas_addresses = vec!["10.0.0.10".parse().unwrap()];
        cfg.switch.companion_addresses = vec!["10.0.0.11".parse().unwrap()];
        let running = pinas_dns::start(
            db,
            &state,
            events.clone(),
            cfg,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let socket = dir.join("run/dns.sock");
        let router = pinas_dns::api::router(running.state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        {
            let (socket, events) = (socket.clone(), events.clone());
            tokio::spawn(async move {
                pinas_core::role::serve_socket(&socket, router, events, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        }
        for _ in 0..100 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Dns {
            addr: running.addr,
            socket,
            events,
            running: Some(running),
            stop: Some(tx),
        }
    }

    /// `dig +short nas.home A`.
    async fn nas_home(&self) -> String {
        let (ip, port) = (self.addr.ip().to_string(), self.addr.port().to_string());
        let out = tokio::process::Command::new("dig")
            .args([
                &format!("@{ip}"),
                "-p",
                &port,
                "+short",
                "+tries=1",
                "+time=2",
                "nas.home",
                "A",
            ])
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            tokio::spawn(r.stop());
        }
    }
}

/// An HTTP health endpoint on loopback that answers 200 while `up`, 503 otherwise.
struct HealthPeer {
    url: String,
    up: Arc<AtomicBool>,
}

impl HealthPeer {
    async fn start(up: bool) -> HealthPeer {
        let flag = Arc::new(AtomicBool::new(up));
        let f = flag.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let f = f.clone();
                async move {
                    if f.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        HealthPeer {
            url: format!("http://{addr}/health"),
            up: flag,
        }
    }
}

struct Harness {
    dir: tempfile::TempDir,
    c: Arc<Companion>,
    events: EventBus,
    dns: Dns,
}

impl Harness {
    async fn new(cfg: CompanionConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let dns = Dns::start(dir.path()).await;
        let events = EventBus::new(None);
        let c = Companion::open(
            &dir.path().join("companion"),
            cfg,
            dns.socket.clone(),
            events.clone(),
        )
        .unwrap();
        Harness {
            dir,
            c,
            events,
            dns,
        }
    }

    /// Calls the API as `who`: `Some(role)` with the web role's headers, `None` without.
    async fn call(
        &self,
        who: Option<&str>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(role) = who {
            req = req
                .header("x-pinas-role", role)
                .header("x-pinas-user", "alice");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = api::router(self.c.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let (status, h) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), 4 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            h,
        )
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let b = body.map_or(Body::empty(), |v| Body::from(v.to_string()));
        let (s, v, _) = self.call(Some("admin"), method, path, &[], b).await;
        (s, v)
    }

    async fn token(&self) -> String {
        let (s, v) = self.admin(Method::POST, "/pairing/token", None).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    async fn paired(&self, token: &str, path: &str, body: Body) -> (StatusCode, Value) {
        let auth = format!("Bearer {token}");
        let (s, v, _) = self
            .call(
                None,
                Method::POST,
                path,
                &[("authorization", &auth), ("x-pinas-client", "10.0.0.10")],
                body,
            )
            .await;
        (s, v)
    }

    async fn state(&self) -> Value {
        let (s, v) = self.admin(Method::GET, "/status", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

fn settings(health_url: &str) -> Value {
    json!({
        "nas_name": "bignas", "nas_mac": "02:00:00:00:00:10", "nas_ip": "127.0.0.1",
        "health_url": health_url, "heartbeat_interval_secs": 1, "misses_before_takeover": 3,
        "wake_timeout_secs": 5, "inbox_target": ""
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_checks_who_calls_it() {
    let h = Harness::new(CompanionConfig::default()).await;
    // People: reads need a role, settings, pairing and wake need an administrator.
    for (method, path) in [
        (Method::GET, "/settings"),
        (Method::PUT, "/settings"),
        (Method::GET, "/pairing"),
        (Method::POST, "/pairing/token"),
        (Method::POST, "/wake"),
        (Method::POST, "/inbox/flush"),
    ] {
        let (s, v, _) = h
            .call(
                Some("user"),
                method.clone(),
                path,
                &[],
                Body::from(settings("").to_string()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "admin_required");
        let (s, _, _) = h.call(None, method.clone(), path, &[], Body::empty()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} without a role");
    }
    for path in ["/status", "/history", "/usage", "/snapshot", "/inbox"] {
        let (s, v, _) = h.call(None, Method::GET, path, &[], Body::empty()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        let (s, v, _) = h
            .call(Some("user"), Method::GET, path, &[], Body::empty())
            .await;
        assert!(
            s == StatusCode::OK || s == StatusCode::NOT_FOUND,
            "{path}: {s} {v}"
        );
    }

    // The NAS: the pairing token, nothing else; an administrator's headers are no token.
    let token = h.token().await;
    let before = h.state().await;
    for path in [
        "/snapshot",
        "/nas-going-offline",
        "/nas-coming-online",
        "/wake-nas",
    ] {
        let (s, v, _) = h
            .call(Some("admin"), Method::POST, path, &[], Body::from("{}"))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        let (s, v) = h.paired("0000", path, Body::from("{}")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    assert_eq!(
        h.state().await["state"],
        before["state"],
        "refused calls changed nothing"
    );
    // Five failures from 10.0.0.10 (the four above plus this one): then even the right
    // token waits, with Retry-After; another client is not affected.
    let (s, _) = h.paired("", "/nas-going-offline", Body::empty()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = h.paired(&token, "/nas-going-offline", Body::empty()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let auth = format!("Bearer {token}");
    let (s, v, hd) = h
        .call(
            None,
            Method::POST,
            "/nas-coming-online",
            &[("authorization", &auth), ("x-pinas-client", "10.0.0.10")],
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let retry: u64 = hd[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    let (s, v, _) = h
        .call(
            None,
            Method::POST,
            "/nas-coming-online",
            &[("authorization", &auth), ("x-pinas-client", "10.0.0.20")],
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A rotated token replaces the old one at once; the token is never shown again.
    let t2 = h.token().await;
    let (s, _) = {
        let (s, v, _) = h
            .call(
                None,
                Method::POST,
                "/nas-coming-online",
                &[("authorization", &auth), ("x-pinas-client", "10.0.0.30")],
                Body::empty(),
            )
            .await;
        (s, v)
    };
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, pairing) = h.admin(Method::GET, "/pairing", None).await;
    assert_eq!(pairing["paired"], true);
    assert!(!pairing.to_string().contains(&t2));
    let file = std::fs::read_to_string(h.dir.path().join("companion/pairing-token")).unwrap();
    assert!(!file.contains(&t2) && !file.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked_saved_and_never_show_the_secureon_password() {
    let h = Harness::new(CompanionConfig::default()).await;
    let (s, v) = h.admin(Method::GET, "/settings", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["heartbeat_interval_secs"].as_u64(),
            v["misses_before_takeover"].as_u64(),
            v["wake_timeout_secs"].as_u64()
        ),
        (Some(30), Some(3), Some(90))
    );
    assert_eq!(v["saved_at_ms"], Value::Null);

    let mut bad = settings("http://127.0.0.1:1/health");
    bad["nas_mac"] = json!("02:00:00:00:00");
    let (s, v) = h.admin(Method::PUT, "/settings", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_mac");
    assert_eq!(v["error"]["field"], "nas_mac");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("02:00:00:00:00"));
    let (_, v) = h.admin(Method::GET, "/settings", None).await;
    assert_eq!(v["nas_mac"], "", "nothing saved");

    let mut good = settings("http://127.0.0.1:1/health");
    good["nas_mac"] = json!("02-00-00-00-00-1F");
    good["secureon_password"] = json!("de:ad:be:ef");
    let (s, v) = h.admin(Method::PUT, "/settings", Some(good.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["nas_mac"], "02:00:00:00:00:1f");
    assert_eq!(v["secureon_password_set"], true);
    assert!(!v.to_string().contains("de:ad"), "{v}");
    // Sending back what was read keeps the password; a restart finds everything.
    let (s, v) = h.admin(Method::PUT, "/settings", Some(v)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["secureon_password_set"], true);
    let c2 = Companion::open(
        &h.dir.path().join("companion"),
        CompanionConfig::default(),
        h.dns.socket.clone(),
        EventBus::new(None),
    )
    .unwrap();
    let view = c2.settings_view();
    assert_eq!(view.settings.nas_mac, "02:00:00:00:00:1f");
    assert!(view.secureon_password_set);
    assert!(view.saved_at_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_capped_checked_and_kept_with_its_time() {
    let h = Harness::new(CompanionConfig::default()).await;
    let token = h.token().await;
    let (s, v) = h.admin(Method::GET, "/snapshot", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    let big = format!(
        r#"{{"schema_version":1,"hostname":"bignas","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let (s, v) = h.paired(&token, "/snapshot", Body::from(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "snapshot_too_large");
    let (s, v) = h
        .paired(
            &token,
            "/snapshot",
            Body::from(r#"{"schema_version":7,"hostname":"x"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "unsupported_snapshot_version");

    let snap = json!({"schema_version": 1, "hostname": "bignas", "taken_at_ms": 1,
        "disks": [{"mount_point": "/srv", "size_bytes": 100, "used_bytes": 40}],
        "shares": [{"name": "media"}], "services": [{"name": "smbd", "state": "running"}]});
    let (s, v) = h
        .paired(&token, "/snapshot", Body::from(snap.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = h
        .call(Some("user"), Method::GET, "/snapshot", &[], Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["snapshot"], snap);
    assert_eq!(v["schema_version"], 1);
    assert!(v["received_at_ms"].as_i64().unwrap() > 0);
    assert!(v["age_secs"].as_i64().unwrap() <= 1);
    // The same snapshot again is stored again (idempotent), one row.
    let (s, _) = h
        .paired(&token, "/snapshot", Body::from(snap.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn switch_events(rx: &mut tokio::sync::broadcast::Receiver<pinas_core::Event>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if ev.kind == "dns.switch.changed" {
            out.push(ev.data);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_offline_twice_switches_once_and_acks_twice_after_the_switch_is_in_force() {
    require!(require_tools(&["dig"]));
    let h = Harness::new(CompanionConfig::default()).await;
    let token = h.token().await;
    let mut rx = h.dns.events.subscribe();
    assert_eq!(h.dns.nas_home().await, "10.0.0.10");
    for _ in 0..2 {
        let (s, v) = h.paired(&token, "/nas-going-offline", Body::empty()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["acknowledged"], true);
        assert_eq!(v["dns_switch"]["target"], "companion");
        // Acked: the DNS server answers the companion's address already.
        assert_eq!(h.dns.nas_home().await, "10.0.0.11");
    }
    let evs = switch_events(&mut rx).await;
    assert_eq!(evs.len(), 1, "one switch for two announcements: {evs:?}");
    assert_eq!(evs[0]["target"], "companion");
    assert_eq!(h.state().await["state"], "going_offline");

    for _ in 0..2 {
        let (s, v) = h.paired(&token, "/nas-coming-online", Body::empty()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["dns_switch"]["target"], "nas");
        assert_eq!(h.dns.nas_home().await, "10.0.0.10");
    }
    assert_eq!(switch_events(&mut rx).await.len(), 1);
    let st = h.state().await;
    assert_eq!(st["state"], "coming_online", "{st}");

    // With the DNS role gone, the NAS is not acked.
    let mut h = h;
    drop(h.dns.stop.take());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, v) = h.paired(&token, "/nas-going-offline", Body::empty()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "dns_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_heartbeats_move_the_switch_and_an_answer_moves_it_back() {
    require!(require_tools(&["dig"]));
    let peer = HealthPeer::start(true).await;
    let h = Harness::new(CompanionConfig {
        health_timeout_ms: 500,
        ..Default::default()
    })
    .await;
    let (s, v) = h
        .admin(Method::PUT, "/settings", Some(settings(&peer.url)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut events = h.events.subscribe();
    let beat = tokio::spawn(h.c.clone().heartbeat_loop(std::future::pending()));

    let wait_for = |want: &'static str| {
        let h = &h;
        async move {
            for _ in 0..100 {
                if h.state().await["state"] == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("never {want}: {}", h.state().await);
        }
    };
    wait_for("online").await;
    assert_eq!(h.dns.nas_home().await, "10.0.0.10");
    peer.up.store(false, Ordering::SeqCst);
    let down_at = std::time::Instant::now();
    wait_for("unreachable").await;
    // Three misses at one-second intervals, not fewer.
    assert!(
        down_at.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        down_at.elapsed()
    );
    let (_, sw) = {
        let st = h.state().await;
        (0, st["dns_switch"].clone())
    };
    assert_eq!(sw["target"], "companion");
    assert_eq!(sw["reason"], "heartbeat");
    assert_eq!(h.dns.nas_home().await, "10.0.0.11");
    assert!(h.state().await["reason"]
        .as_str()
        .unwrap()
        .contains("3 heartbeats missed"));

    peer.up.store(true, Ordering::SeqCst);
    wait_for("online").await;
    assert_eq!(h.dns.nas_home().await, "10.0.0.10");
    let mut states = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if ev.kind == "companion.nas.state" {
            states.push(ev.data["state"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(states, ["online", "unreachable", "online"]);
    let (_, hist) = h.admin(Method::GET, "/history?days=1", None).await;
    assert_eq!(hist.as_array().unwrap().len(), 3, "{hist}");
    let (_, usage) = h
        .admin(Method::GET, "/usage?period=day&count=1", None)
        .await;
    assert_eq!(usage[0]["starts"], 2, "{usage}");
    beat.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_sends_the_magic_packet_and_follows_the_nas_until_it_answers() {
    let peer = HealthPeer::start(false).await;
    // The NAS "is" 127.0.0.1: the packet goes to lo's broadcast address on a free port.
    let rx = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let h = Harness::new(CompanionConfig {
        wol_ports: vec![port],
        health_timeout_ms: 500,
        ..Default::default()
    })
    .await;

    let (s, v) = h.admin(Method::POST, "/wake", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "nas_mac_missing");

    let mut cfg = settings(&peer.url);
    cfg["secureon_password"] = json!("01:02:03:04:05:06");
    let (s, v) = h.admin(Method::PUT, "/settings", Some(cfg)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut events = h.events.subscribe();
    let (s, v) = h.admin(Method::POST, "/wake", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).unwrap();
    let mut want = vec![0xFF; 6];
    for _ in 0..16 {
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0x10]);
    }
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        &buf[..n],
        &want[..],
        "byte-exact magic packet with SecureOn"
    );
    assert_eq!(h.state().await["state"], "waking");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    peer.up.store(true, Ordering::SeqCst);
    let task = v["task_id"].as_str().unwrap().to_string();
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.kind == "task.progress" && ev.data["task_id"] == task && ev.data["done"] == true {
                return ev.data;
            }
        }
    })
    .await
    .expect("the wake task finished");
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(h.state().await["state"], "online");

    // A NAS that never answers: unreachable after the timeout, with the reason.
    peer.up.store(false, Ordering::SeqCst);
    let mut cfg = settings(&peer.url);
    cfg["wake_timeout_secs"] = json!(2);
    h.admin(Method::PUT, "/settings", Some(cfg)).await;
    for _ in 0..3 {
        h.c.heartbeat().await;
    }
    assert_eq!(h.state().await["state"], "unreachable");
    let (s, v) = h.admin(Method::POST, "/wake", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let st = h.state().await;
    assert_eq!(st["state"], "unreachable", "{st}");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("no answer within 2 s"),
        "{st}"
    );
}
