//! Plug discovery over real UDP broadcasts between network namespaces: the power role
//! in namespace A behind a bridge, two fake P110s in namespaces B and C on the same
//! subnet answering on port 20002. `POST /discover` broadcasts to the subnet and lists
//! both, with the plug already added marked; a plug that left the network is not
//! listed; bad input is a 422 naming the field; only an admin may ask.

use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pinas_core::EventBus;
use pinas_power::fake::{FakeOptions, FakePlug};
use pinas_power::{api, fixtures, Power, Settings};
use pinas_testkit::{require, require_root, require_tools};
use serde_json::{json, Value};
use tower::ServiceExt;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?}");
}

/// Three namespaces `<p>a`, `<p>b`, `<p>c`: a bridge in A (10.233.<n>.1/24) with a veth
/// to B (.2) and to C (.3). Deleted on drop.
struct Lan {
    prefix: String,
    subnet: String,
}

impl Lan {
    fn new() -> Lan {
        let n = std::process::id() % 200 + 20;
        let prefix = format!("pdisc{}", std::process::id());
        let lan = Lan {
            prefix: prefix.clone(),
            subnet: format!("10.233.{n}"),
        };
        let (a, b, c) = (lan.ns("a"), lan.ns("b"), lan.ns("c"));
        for ns in [&a, &b, &c] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &a, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &a,
            "addr",
            "add",
            &format!("{}.1/24", lan.subnet),
            "dev",
            "br0",
        ]);
        ip(&["-n", &a, "link", "set", "br0", "up"]);
        for (ns, host) in [(&b, 2), (&c, 3)] {
            let side = format!("v{host}");
            ip(&[
                "-n", &a, "link", "add", &side, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ip(&["-n", &a, "link", "set", &side, "master", "br0", "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}.{host}/24", lan.subnet),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        lan
    }

    fn ns(&self, which: &str) -> String {
        format!("{}{which}", self.prefix)
    }

    fn addr(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    /// Moves the calling thread into namespace `which`.
    fn enter(&self, which: &str) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.ns(which))).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    }

    /// A UDP socket on `0.0.0.0:20002` in namespace `which`, bound from a thread of
    /// its own (a socket stays in the namespace it was made in).
    fn plug_socket(&self, which: &str) -> UdpSocket {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter(which);
                UdpSocket::bind(("0.0.0.0", pinas_power::discover::PORT)).unwrap()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for w in ["a", "b", "c"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(w)])
                .status();
        }
    }
}

async fn call(router: &axum::Router, role: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/discover")
        .header("content-type", "application/json");
    if let Some(r) = role {
        req = req
            .header("x-pinas-role", r)
            .header("x-pinas-user", "tester");
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn mac_of(f: &fixtures::Fixture) -> String {
    let r = f.result("discovery_result").unwrap();
    r.get("result").unwrap_or(r)["mac"]
        .as_str()
        .unwrap()
        .replace('-', ":")
        .to_uppercase()
}

#[test]
fn plugs_on_the_lan_answer_the_broadcast_and_added_ones_are_marked() {
    require!(require_root("network namespaces and veth links"));
    require!(require_tools(&["ip"]));
    let lan = Lan::new();
    let sock_b = lan.plug_socket("b");
    let sock_c = lan.plug_socket("c");
    // The role runs in namespace A: the runtime's threads are made by this thread after
    // it moved there, and inherit it.
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            lan.enter("a");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run(&lan, sock_b, sock_c));
        })
        .join()
    });
    // The namespaces go first, then a failure is reported.
    drop(lan);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn run(lan: &Lan, sock_b: UdpSocket, sock_c: UdpSocket) {
    let dir = tempfile::tempdir().unwrap();
    let power = Power::open(dir.path(), Settings::default(), EventBus::new(None)).unwrap();
    let router = api::router(power);
    let (all, captured) = fixtures::available();
    eprintln!(
        "fixtures: {}",
        if captured { "captured" } else { "generated" }
    );
    let (fb, fc) = (all[0].clone(), all[all.len() - 1].clone());
    let (mac_b, mac_c) = (mac_of(&fb), mac_of(&fc));
    let plug_b = FakePlug::start(FakeOptions::new(fb, "a@example.com", "pw"))
        .await
        .unwrap();
    let plug_c = FakePlug::start(FakeOptions::new(fc, "a@example.com", "pw"))
        .await
        .unwrap();
    let (ip_b, ip_c) = (lan.addr(2), lan.addr(3));
    plug_b
        .serve_discovery(sock_b, ip_b.parse::<IpAddr>().unwrap())
        .unwrap();
    plug_c
        .serve_discovery(sock_c, ip_c.parse::<IpAddr>().unwrap())
        .unwrap();

    // C is added already (nothing polls it here: only the address matters).
    let resp = router
        .clone()
        .oneshot(
            Request::post("/plugs")
                .header("x-pinas-role", "admin")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"name": "Desk", "address": ip_c, "email": "a@example.com", "password": "pw"})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let c_id = serde_json::from_slice::<Value>(&bytes).unwrap()["id"]
        .as_i64()
        .unwrap();

    let broadcast = lan.addr(255);
    let started = std::time::Instant::now();
    let (s, v) = call(
        &router,
        Some("admin"),
        json!({"target": broadcast, "wait_ms": 1500}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::OK, "{v}");
    eprintln!("discovery of {broadcast} took {took:?}: {v}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let found = v.as_array().unwrap();
    assert_eq!(found.len(), 2, "{v}");
    assert_eq!(found[0]["ip"], ip_b);
    assert_eq!(found[0]["mac"], mac_b);
    assert_eq!(found[0]["model"], "P110");
    assert_eq!(found[0]["device_type"], "SMART.TAPOPLUG");
    assert_eq!(found[0]["is_plug"], true);
    assert_eq!(found[0]["already_added"], false);
    assert_eq!(found[0]["plug_id"], Value::Null);
    assert_eq!(found[1]["ip"], ip_c);
    assert_eq!(found[1]["mac"], mac_c);
    assert_eq!(found[1]["already_added"], true);
    assert_eq!(found[1]["plug_id"], c_id);
    assert!(plug_b.discovery_probes() >= 1 && plug_b.discovery_probes() <= 3);
    assert_eq!(plug_b.discovery_probes(), plug_c.discovery_probes());

    // One address, not a broadcast: only that device is asked.
    let before_c = plug_c.discovery_probes();
    let (s, v) = call(
        &router,
        Some("admin"),
        json!({"target": ip_b, "wait_ms": 600}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["ip"], ip_b);
    assert_eq!(plug_c.discovery_probes(), before_c);

    // C leaves the network: only B answers.
    plug_c.set_online(false).await.unwrap();
    let (s, v) = call(
        &router,
        Some("admin"),
        json!({"target": broadcast, "wait_ms": 600}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ips: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, [ip_b.as_str()]);

    // Bad input names the field; nothing is sent for it.
    let before = plug_b.discovery_probes();
    for (body, code, field) in [
        (json!({"target": "nas.local"}), "invalid_target", "target"),
        (json!({"target": "fe80::1"}), "invalid_target", "target"),
        (json!({"wait_ms": 10}), "invalid_wait", "wait_ms"),
        (json!({"wait_ms": 600_000}), "invalid_wait", "wait_ms"),
    ] {
        let (s, v) = call(&router, Some("admin"), body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let (s, v) = call(&router, Some("admin"), json!({"port": 1})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"))
    );
    // Only an admin may look.
    let (s, v) = call(&router, Some("user"), json!({"target": broadcast})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_required"))
    );
    let (s, v) = call(&router, None, json!({"target": broadcast})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_required"))
    );
    assert_eq!(plug_b.discovery_probes(), before);
}
