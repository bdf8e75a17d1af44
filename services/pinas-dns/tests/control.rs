//! The blocking switch, the Pi-hole v5 control API and the live settings, checked with
//! dig against pinas-dns on a loopback port and dnsmasq upstreams. Each test skips with a
//! message when a tool is missing.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use pinas_dns::DnsConfig;
use pinas_testkit::{require, require_tools};
use serde_json::json;

fn cfg(upstreams: &[String]) -> DnsConfig {
    DnsConfig {
        upstreams: upstreams.to_vec(),
        upstream_timeout_ms: 700,
        health_check_interval_secs: 1,
        ..DnsConfig::default()
    }
}

/// A server whose upstream answers every name with 10.7.7.7, with `tracker.test` on a
/// blocklist file, `*.ads.test` on the denylist and `printer.home` as a local record.
async fn blocking_server(up: &Dnsmasq) -> Server {
    let s = Server::start(cfg(&[up.addr()])).await;
    let list = s.dir.path().join("list.txt");
    std::fs::write(&list, "0.0.0.0 tracker.test\n").unwrap();
    let (st, body) = s
        .api(
            Method::POST,
            "/blocklists",
            Some(json!({"url": list.display().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = s
        .api(
            Method::POST,
            "/rules",
            Some(json!({"kind": "deny", "pattern": "*.ads.test"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = s
        .api(
            Method::POST,
            "/records",
            Some(json!({"name": "printer.home", "type": "A", "value": "192.168.1.20"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    s
}

async fn assert_blocked(s: &Server) {
    assert_eq!(s.short("tracker.test", "A").await, ["0.0.0.0"]);
    assert_eq!(s.short("x.ads.test", "A").await, ["0.0.0.0"]);
}

async fn assert_forwarded(s: &Server) {
    assert_eq!(s.short("tracker.test", "A").await, ["10.7.7.7"]);
    assert_eq!(s.short("x.ads.test", "A").await, ["10.7.7.7"]);
}

async fn post_blocking(s: &Server, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    s.api_as(
        Some(("alice", "admin")),
        Method::POST,
        "/blocking",
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_off_forwards_blocked_names_and_the_timer_turns_it_back_on() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/#/10.7.7.7"]);
    let router = Dnsmasq::start(&["--address=/lan/10.3.3.3"]);
    let s = blocking_server(&up).await;
    let (st, body) = s
        .api(
            Method::POST,
            "/forwards",
            Some(json!({"domain": "lan", "server": router.addr()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let mut events = s.events.subscribe();
    assert_blocked(&s).await;
    assert_eq!(s.short("laptop.lan", "A").await, ["10.3.3.3"]);
    let (_, b) = s.api(Method::GET, "/blocking", None).await;
    assert_eq!(b["enabled"], true);
    assert!(b["until"].is_null());

    // Off until turned on: blocked names get the upstream's answer; local records and
    // the switch still answer.
    let (st, b) = post_blocking(&s, json!({"enabled": false, "reason": "testing a shop"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (b["enabled"].clone(), b["until"].clone()),
        (json!(false), json!(null))
    );
    assert_forwarded(&s).await;
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);
    assert_eq!(s.short("nas.home", "A").await.len(), 1);
    assert_eq!(s.short("laptop.lan", "A").await, ["10.3.3.3"]);
    let ev = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.kind == "dns.blocking.changed" {
                return ev;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev.data["enabled"], false);
    assert_eq!(ev.data["changed_by"], "alice");
    assert_eq!(ev.data["reason"], "testing a shop");
    let (_, m) = s.api(Method::GET, "/metrics", None).await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("\npinas_dns_blocking_enabled 0\n"),
        "{m}"
    );

    let (st, _) = post_blocking(&s, json!({"enabled": true})).await;
    assert_eq!(st, StatusCode::OK);
    assert_blocked(&s).await;
    let (_, m) = s.api(Method::GET, "/metrics", None).await;
    assert!(m
        .as_str()
        .unwrap()
        .contains("\npinas_dns_blocking_enabled 1\n"));

    // Off for 2 seconds: back on by itself.
    let t0 = pinas_core::events::now_secs();
    let (st, b) = post_blocking(&s, json!({"enabled": false, "duration_s": 2})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let until = b["until"].as_i64().unwrap();
    assert!((t0 + 2..=t0 + 3).contains(&until), "{until} vs {t0}");
    assert_forwarded(&s).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_blocked(&s).await;
    let (_, b) = s.api(Method::GET, "/blocking", None).await;
    assert_eq!(b["enabled"], true);
    assert_eq!(b["changed_by"], "timer");

    // Bad requests name the field and change nothing.
    for bad in [
        json!({"enabled": false, "duration_s": 0}),
        json!({"enabled": false, "duration_s": 86401}),
        json!({"enabled": false, "duration_s": -5}),
        json!({"enabled": true, "duration_s": 60}),
    ] {
        let (st, b) = post_blocking(&s, bad.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
        assert_eq!(b["error"]["field"], "duration_s", "{b}");
    }
    assert_blocked(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_state_and_its_deadline_survive_a_restart() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/#/10.7.7.7"]);
    let mut s = blocking_server(&up).await;
    let c = cfg(&[up.addr()]);

    // Off with a long timer: still off after a restart, with the same deadline.
    let (_, b) = post_blocking(&s, json!({"enabled": false, "duration_s": 3600})).await;
    let until = b["until"].clone();
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let mut s = Server::start_in(dir, c.clone()).await;
    assert_forwarded(&s).await;
    let (_, b) = s.api(Method::GET, "/blocking", None).await;
    assert_eq!(
        (b["enabled"].clone(), b["until"].clone()),
        (json!(false), until)
    );

    // Off for 1 second, and the role is stopped past the deadline: on at start.
    let (st, _) = post_blocking(&s, json!({"enabled": false, "duration_s": 1})).await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let mut s = Server::start_in(dir, c.clone()).await;
    assert_blocked(&s).await;
    let (_, b) = s.api(Method::GET, "/blocking", None).await;
    assert_eq!(b["enabled"], true);
    assert_eq!(b["changed_by"], "timer");

    // Off until turned on: still off after a restart.
    post_blocking(&s, json!({"enabled": false})).await;
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s = Server::start_in(dir, c).await;
    assert_forwarded(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pihole_v5_enable_and_disable_need_the_token() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/#/10.7.7.7"]);
    let s = blocking_server(&up).await;
    let admin = Some(("alice", "admin"));

    let (st, b) = s
        .api_as(Some(("bob", "user")), Method::GET, "/pihole/token", None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let (st, b) = s.api_as(admin, Method::GET, "/pihole/token", None).await;
    assert_eq!(st, StatusCode::OK);
    let token = b["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|c| c.is_ascii_hexdigit()), "{token}");

    let pihole = |q: String| {
        let s = &s;
        async move {
            let (st, b) = s
                .api(Method::GET, &format!("/pihole/api.php?{q}"), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{q}: {b}");
            b
        }
    };
    let wrong = "0".repeat(64);

    // Without a valid token: nothing changes, and the answer is Pi-hole's empty `[]`.
    for q in [
        "disable=300".to_string(),
        format!("disable=300&auth={wrong}"),
        "disable&auth=".to_string(),
        format!("enable&auth={}", &token[..63]),
    ] {
        assert_eq!(pihole(q.clone()).await, json!([]), "{q}");
    }
    assert_blocked(&s).await;
    assert_eq!(pihole("status".into()).await, json!({"status": "enabled"}));
    // The read-only summary still works with a wrong token.
    let b = pihole(format!("summaryRaw&auth={wrong}")).await;
    assert_eq!(b["status"], "enabled");
    assert!(b["domains_being_blocked"].as_i64().unwrap() >= 1, "{b}");

    // With it: disable for 300 s, as Home Assistant's "disable for" does.
    let t0 = pinas_core::events::now_secs();
    let b = pihole(format!("disable=300&auth={token}")).await;
    assert_eq!(b, json!({"status": "disabled"}));
    assert_forwarded(&s).await;
    let (_, bl) = s.api(Method::GET, "/blocking", None).await;
    let until = bl["until"].as_i64().unwrap();
    assert!((t0 + 300..=t0 + 301).contains(&until), "{bl}");
    assert_eq!(bl["changed_by"], "pihole-api");
    let b = pihole(format!("summaryRaw&auth={token}")).await;
    assert_eq!(b["status"], "disabled");
    assert_eq!(pihole("status".into()).await, json!({"status": "disabled"}));

    let b = pihole(format!("enable=True&auth={token}")).await;
    assert_eq!(b, json!({"status": "enabled"}));
    assert_blocked(&s).await;

    // `disable=True` (the hole library's default) and `disable=0`: until enabled again.
    for q in ["disable=True", "disable=0", "disable"] {
        let b = pihole(format!("{q}&auth={token}")).await;
        assert_eq!(b, json!({"status": "disabled"}), "{q}");
        let (_, bl) = s.api(Method::GET, "/blocking", None).await;
        assert_eq!(bl["enabled"], false);
        assert!(bl["until"].is_null(), "{q}: {bl}");
    }
    assert_forwarded(&s).await;

    // A new token: the old one stops working.
    let (st, b) = s.api_as(admin, Method::POST, "/pihole/token", None).await;
    assert_eq!(st, StatusCode::OK);
    let new = b["token"].as_str().unwrap().to_string();
    assert_ne!(new, token);
    assert_eq!(pihole(format!("enable&auth={token}")).await, json!([]));
    assert_forwarded(&s).await;
    assert_eq!(
        pihole(format!("enable&auth={new}")).await,
        json!({"status": "enabled"})
    );
    assert_blocked(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_switch_the_upstream_live_and_a_bad_put_changes_nothing() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let a = Dnsmasq::start(&["--address=/which.test/10.1.1.1"]);
    let b = Dnsmasq::start(&["--address=/which.test/10.2.2.2"]);
    let mut s = Server::start(cfg(&[a.addr()])).await;
    let (st, body) = s
        .api(
            Method::POST,
            "/rules",
            Some(json!({"kind": "deny", "pattern": "ads.test"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(s.short("which.test", "A").await, ["10.1.1.1"]);

    let (_, cur) = s.api(Method::GET, "/settings", None).await;
    assert_eq!(cur["upstreams"], json!([a.addr()]));
    assert!(cur["saved_at_ms"].is_null(), "{cur}");
    assert_eq!(cur["cache_size"], 10_000);

    // What GET gave, changed and sent back (its saved_at_ms is ignored).
    let mut new = cur.clone();
    let obj = new.as_object_mut().unwrap();
    obj.insert("upstreams".into(), json!([format!("udp://{}", b.addr())]));
    obj.insert("cache_size".into(), json!(500));
    obj.insert("cache_max_ttl_secs".into(), json!(3600));
    obj.insert("blocking_mode".into(), json!("nxdomain"));
    let (st, saved) = s.api(Method::PUT, "/settings", Some(new.clone())).await;
    assert_eq!(st, StatusCode::OK, "{saved}");
    assert!(saved["saved_at_ms"].as_i64().unwrap() > 0);
    // The cached answer from the old upstream is gone; the new one answers.
    assert_eq!(s.short("which.test", "A").await, ["10.2.2.2"]);
    let (_, ups) = s.api(Method::GET, "/upstreams", None).await;
    assert_eq!(ups[0]["address"], format!("udp://{}", b.addr()));
    assert_eq!(ups.as_array().unwrap().len(), 1);
    // The blocked answer switched to NXDOMAIN.
    assert_eq!(status_of(&s.dig(&["ads.test", "A"]).await), "NXDOMAIN");

    // Bad values: 422 naming the field, and nothing changes.
    let bad = |field: &str, v: serde_json::Value| {
        let mut x = new.clone();
        x[field] = v;
        x
    };
    for (body, field) in [
        (bad("upstreams", json!(["ftp://x"])), "upstreams"),
        (bad("upstreams", json!(["127.0.0.1:0"])), "upstreams"),
        (bad("upstreams", json!([])), "upstreams"),
        (bad("cache_size", json!(0)), "cache_size"),
        (bad("cache_min_ttl_secs", json!(7200)), "cache_min_ttl_secs"),
        (
            bad("query_log_retention_days", json!(0)),
            "query_log_retention_days",
        ),
    ] {
        let (st, e) = s.api(Method::PUT, "/settings", Some(body)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    let (_, after) = s.api(Method::GET, "/settings", None).await;
    assert_eq!(after, saved);
    assert_eq!(s.short("which.test", "A").await, ["10.2.2.2"]);

    // Saved settings win over config.toml at the next start.
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s = Server::start_in(dir, cfg(&[a.addr()])).await;
    let (_, again) = s.api(Method::GET, "/settings", None).await;
    assert_eq!(again, saved);
    assert_eq!(s.short("which.test", "A").await, ["10.2.2.2"]);
    assert_eq!(status_of(&s.dig(&["ads.test", "A"]).await), "NXDOMAIN");
}

/// The query log and statistics show every client's lookups: only an administrator may
/// read them. A request without the role header the web role always sets is refused,
/// never taken for an administrator's. The Pi-hole summary (counts only) needs no role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_for_admins_and_a_missing_role_is_refused() {
    require!(require_tools(&["dig"]));
    let s = Server::start(cfg(&["127.0.0.1:9".into()])).await;
    let (st, b) = s
        .api(
            Method::POST,
            "/records",
            Some(json!({"name": "printer.home", "type": "A", "value": "192.168.1.20"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);
    let admin = Some(("alice", "admin"));
    let viewer = Some(("bob", "user"));

    // The log writer batches: wait for the row.
    let mut rows = json!([]);
    for _ in 0..50 {
        let (st, b) = s.api_as(admin, Method::GET, "/querylog", None).await;
        assert_eq!(st, StatusCode::OK, "{b}");
        if b.as_array().is_some_and(|a| !a.is_empty()) {
            rows = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows[0]["name"], "printer.home", "{rows}");
    let (st, b) = s.api_as(admin, Method::GET, "/stats", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["top_clients"][0]["key"], "127.0.0.1", "{b}");

    for path in ["/querylog", "/stats?hours=1", "/pihole/token"] {
        let (st, b) = s.api_as(viewer, Method::GET, path, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "viewer {path}: {b}");
        assert_eq!(b["error"]["code"], "admin_required", "{b}");
        let (st, b) = s.api_as(None, Method::GET, path, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "no role {path}: {b}");
        assert_eq!(b["error"]["code"], "role_required", "{b}");
    }
    // Reads of the configuration: any logged-in role, but not an unknown caller.
    let (st, b) = s.api_as(viewer, Method::GET, "/records", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.api_as(None, Method::GET, "/records", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    // Changes: administrators only; nothing changes otherwise.
    let rec = json!({"name": "evil.home", "type": "A", "value": "10.6.6.6"});
    for who in [viewer, None] {
        let (st, b) = s
            .api_as(who, Method::POST, "/records", Some(rec.clone()))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{who:?}: {b}");
        let (st, b) = s.api_as(who, Method::POST, "/cache/flush", None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{who:?}: {b}");
    }
    let (_, b) = s.api(Method::GET, "/records", None).await;
    assert_eq!(b.as_array().unwrap().len(), 1, "{b}");
    assert!(s.short("evil.home", "A").await.is_empty());
    // The Pi-hole summary: counts for anyone, as Pi-hole v5 serves them.
    let (st, b) = s
        .api_as(None, Method::GET, "/pihole/api.php?summaryRaw", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["dns_queries_today"].as_i64().unwrap() >= 1, "{b}");
}
