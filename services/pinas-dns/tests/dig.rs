//! End-to-end tests with dig (Debian dnsutils) against pinas-dns on a loopback port, with
//! dnsmasq (Debian dnsmasq-base) as the upstream. Each test skips with a message when a
//! tool is missing.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use pinas_dns::querylog::Status;
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

async fn add_record(s: &Server, name: &str, t: &str, value: &str) {
    let (st, body) = s
        .api(
            Method::POST,
            "/records",
            Some(json!({"name": name, "type": t, "value": value})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_records_cname_chain_wildcard_ptr_and_tcp_fallback() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/up.test/10.9.9.9"]);
    let s = Server::start(cfg(&[up.addr()])).await;
    add_record(&s, "printer.home", "A", "192.168.1.20").await;
    add_record(&s, "printer.home", "AAAA", "fd00::20").await;
    add_record(&s, "web.home", "CNAME", "printer.home").await;
    add_record(&s, "www.home", "CNAME", "web.home").await;
    add_record(&s, "*.lab.home", "A", "192.168.1.30").await;
    add_record(&s, "ext.home", "CNAME", "host.up.test").await;

    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);
    assert_eq!(s.short("PRINTER.Home", "AAAA").await, ["fd00::20"]);

    let out = s.dig(&["www.home", "A"]).await;
    assert_eq!(status_of(&out), "NOERROR");
    assert!(
        out.contains(" aa "),
        "local answers are authoritative: {out}"
    );
    let a = answers(&out);
    assert_eq!(a.len(), 3, "{out}");
    assert_eq!(
        (a[0].0.as_str(), a[0].2.as_str(), a[0].3.as_str()),
        ("www.home.", "CNAME", "web.home.")
    );
    assert_eq!(
        (a[1].0.as_str(), a[1].2.as_str(), a[1].3.as_str()),
        ("web.home.", "CNAME", "printer.home.")
    );
    assert_eq!((a[2].2.as_str(), a[2].3.as_str()), ("A", "192.168.1.20"));

    assert_eq!(s.short("deep.x.lab.home", "A").await, ["192.168.1.30"]);
    assert_eq!(
        s.short("20.1.168.192.in-addr.arpa", "PTR").await,
        ["printer.home."]
    );

    // A local CNAME to an outside name is completed from the upstream.
    assert_eq!(
        s.short("ext.home", "A").await,
        ["host.up.test.", "10.9.9.9"]
    );

    // A name with records but none of the type: NODATA with an SOA.
    let out = s.dig(&["printer.home", "MX"]).await;
    assert_eq!(status_of(&out), "NOERROR");
    assert!(answers(&out).is_empty());
    assert!(out.contains("SOA"), "{out}");

    // 40 addresses do not fit in 512 bytes: UDP without EDNS is truncated and dig
    // retries over TCP, getting all of them.
    for i in 1..=40 {
        add_record(&s, "many.home", "A", &format!("10.40.0.{i}")).await;
    }
    let out = s.dig(&["+noedns", "+ignore", "many.home", "A"]).await;
    assert!(
        out.contains(" tc "),
        "UDP answer should be truncated: {out}"
    );
    let out = s.dig(&["+noedns", "many.home", "A"]).await;
    assert_eq!(answers(&out).len(), 40, "TCP retry should carry all: {out}");
    let out = s.dig(&["+tcp", "printer.home", "A"]).await;
    assert_eq!(answers(&out).len(), 1);

    // Bad input is refused with a field-level error.
    let (st, body) = s
        .api(
            Method::POST,
            "/records",
            Some(json!({"name": "x.home", "type": "A", "value": "fd00::1"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "value");

    // Update and delete take effect on the next query.
    let (_, list) = s.api(Method::GET, "/records", None).await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "printer.home" && r["type"] == "A")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, _) = s
        .api(
            Method::PUT,
            &format!("/records/{id}"),
            Some(json!({"name": "printer.home", "type": "A", "value": "192.168.1.21"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.21"]);
    let (st, _) = s.api(Method::DELETE, &format!("/records/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.api(Method::DELETE, &format!("/records/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_flips_on_next_query_and_survives_restart() {
    require!(require_tools(&["dig"]));
    let mut c = cfg(&["127.0.0.1:9".into()]);
    c.switch.nas_addresses = vec!["10.0.0.10".parse().unwrap()];
    c.switch.companion_addresses = vec!["10.0.0.11".parse().unwrap(), "fd00::11".parse().unwrap()];
    let mut s = Server::start(c.clone()).await;
    let mut events = s.events.subscribe();

    let a = answers(&s.dig(&["nas.home", "A"]).await);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].1, a[0].3.as_str()), (5, "10.0.0.10"));

    let (st, body) = s
        .api(
            Method::POST,
            "/switch",
            Some(json!({"target": "companion", "reason": "NAS going to sleep"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let a = answers(&s.dig(&["nas.home", "A"]).await);
    assert_eq!((a[0].1, a[0].3.as_str()), (5, "10.0.0.11"));
    assert_eq!(s.short("nas.home", "AAAA").await, ["fd00::11"]);

    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.kind, "dns.switch.changed");
    assert_eq!(ev.data["reason"], "NAS going to sleep");
    assert_eq!(ev.data["target"], "companion");

    let (st, _) = s
        .api(
            Method::POST,
            "/switch",
            Some(json!({"target": "elsewhere"})),
        )
        .await;
    assert!(st.is_client_error());

    // Restart on the same database: the switch is re-applied.
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s2 = Server::start_in(dir, c).await;
    assert_eq!(s2.short("nas.home", "A").await, ["10.0.0.11"]);
    let (_, body) = s2.api(Method::GET, "/switch", None).await;
    assert_eq!(body["target"], "companion");
    assert_eq!(body["reason"], "NAS going to sleep");
    let (_, body) = s2
        .api(
            Method::POST,
            "/switch",
            Some(json!({"target": "nas", "reason": "NAS woke up"})),
        )
        .await;
    assert_eq!(body["addresses"], json!(["10.0.0.10"]));
    assert_eq!(s2.short("nas.home", "A").await, ["10.0.0.10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_cache_failover_and_conditional_forwarding() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let mut a = Dnsmasq::start(&["--address=/up.test/10.9.9.1"]);
    let b = Dnsmasq::start(&["--address=/up.test/10.9.9.2"]);
    let router = Dnsmasq::start(&[
        "--address=/lan/10.5.5.5",
        "--host-record=tv.lan,10.5.5.6,50.5.5.10",
    ]);
    let s = Server::start(cfg(&[a.addr(), b.addr()])).await;

    let out = s.dig(&["one.up.test", "A"]).await;
    assert_eq!(status_of(&out), "NOERROR");
    assert_eq!(
        answers(&out)[0].3,
        "10.9.9.1",
        "first upstream answers first"
    );
    assert_eq!(s.state().metrics.count(Status::Forwarded), 1);

    // Cache hit: same answer, not forwarded again, TTL not above the original.
    let out = s.dig(&["one.up.test", "A"]).await;
    assert_eq!(answers(&out)[0].3, "10.9.9.1");
    assert!(answers(&out)[0].1 <= 300);
    assert_eq!(s.state().metrics.count(Status::Cached), 1);
    assert_eq!(s.state().metrics.count(Status::Forwarded), 1);

    // Failover: the first upstream dies; the next query is answered by the second.
    a.kill();
    let out = s.dig(&["two.up.test", "A"]).await;
    assert_eq!(
        answers(&out).first().map(|x| x.3.as_str()),
        Some("10.9.9.2"),
        "{out}"
    );
    let (_, ups) = s.api(Method::GET, "/upstreams", None).await;
    assert_eq!(ups[0]["healthy"], false, "{ups}");
    assert_eq!(ups[1]["healthy"], true);
    // Once marked down, the dead upstream is not asked (and costs no timeout).
    let tried_before = ups[0]["queries"].as_u64().unwrap();
    let out = s.dig(&["three.up.test", "A"]).await;
    assert_eq!(answers(&out)[0].3, "10.9.9.2");
    let (_, ups) = s.api(Method::GET, "/upstreams", None).await;
    assert_eq!(ups[0]["queries"].as_u64().unwrap(), tried_before, "{ups}");

    // Conditional forwarding of a local domain and its reverse zone to the router.
    let (st, body) = s
        .api(
            Method::POST,
            "/forwards",
            Some(json!({"domain": "lan", "server": router.addr()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _) = s
        .api(
            Method::POST,
            "/forwards",
            Some(json!({"domain": "50.5.5.0/24", "server": router.addr()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(s.short("laptop.lan", "A").await, ["10.5.5.5"]);
    assert_eq!(s.short("10.5.5.50.in-addr.arpa", "PTR").await, ["tv.lan."]);
    let (st, _) = s
        .api(
            Method::POST,
            "/forwards",
            Some(json!({"domain": "lan", "server": "not an ip"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // All upstreams dead: SERVFAIL, and the server still answers local names.
    drop(b);
    let out = s.dig(&["four.up.test", "A"]).await;
    assert_eq!(status_of(&out), "SERVFAIL");
    assert_eq!(s.short("nas.home", "A").await.len(), 1);
}

/// One blocked name per syntax, taken from the real lists.
fn sample(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .nth(100)
        .unwrap();
    let name = line
        .trim_start_matches("0.0.0.0 ")
        .trim_start_matches("||")
        .trim_start_matches("*.")
        .trim_end_matches('^');
    name.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_blocklists_every_syntax_allowlist_denylist() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let scratch = tempfile::tempdir().unwrap();
    let dir = blocklists(scratch.path());
    let up = Dnsmasq::start(&["--address=/#/10.7.7.7"]);
    let s = Server::start(cfg(&[up.addr()])).await;
    let files = [
        "anudeepnd-adservers.hosts",
        "anudeepnd-coinminer.hosts",
        "anudeepnd-facebook.hosts",
        "hagezi-light.adblock",
        "hagezi-light.wildcard",
        "stevenblack.domains",
    ];
    for f in files {
        let url = format!("file://{}", dir.join(f).display());
        let (st, body) = s
            .api(
                Method::POST,
                "/blocklists",
                Some(json!({"url": url, "name": f})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    // A list with garbage: good lines load, bad lines are counted.
    let garbage = s.dir.path().join("garbage.txt");
    std::fs::write(&garbage, "0.0.0.0 good1.garbage.test\n\u{7f}\u{1}binary\n<html><body>\n||good2.garbage.test^\nfoo bar baz\n||bad^$script,third-party\ngood3.garbage.test\n").unwrap();
    let (_, report) = s
        .api(
            Method::POST,
            "/blocklists",
            Some(json!({"url": garbage.display().to_string()})),
        )
        .await;
    let lists = report["lists"].as_array().unwrap();
    assert_eq!(lists.len(), 7);
    for l in lists {
        assert!(l["domains"].as_i64().unwrap() > 0, "{l}");
        assert!(l["last_error"].is_null(), "{l}");
    }
    let g = lists
        .iter()
        .find(|l| l["url"].as_str().unwrap().ends_with("garbage.txt"))
        .unwrap();
    assert_eq!(
        (g["domains"].as_i64(), g["bad_lines"].as_i64()),
        (Some(3), Some(4)),
        "{g}"
    );
    for (f, l) in files.iter().zip(lists) {
        assert!(l["bad_lines"].as_i64().unwrap() < 10, "{f}: {l}");
    }
    let total = report["domains"].as_u64().unwrap();
    // The adblock and wildcard lists hold the same names; hosts lists overlap StevenBlack.
    assert!(total > 200_000, "{total}");

    for f in files {
        let name = sample(&dir.join(f));
        let out = s.dig(&[&name, "A"]).await;
        assert_eq!(
            answers(&out).first().map(|a| a.3.as_str()),
            Some("0.0.0.0"),
            "{f}: {name}: {out}"
        );
        assert_eq!(s.short(&name, "AAAA").await, ["::"], "{f}: {name}");
        if f.ends_with(".adblock") || f.ends_with(".wildcard") {
            assert_eq!(
                s.short(&format!("sub.{name}"), "A").await,
                ["0.0.0.0"],
                "{f}: subdomains of {name}"
            );
        }
    }
    assert_eq!(s.short("good2.garbage.test", "A").await, ["0.0.0.0"]);
    assert_eq!(s.short("unlisted.example", "A").await, ["10.7.7.7"]);

    // Allowlisted subdomain of a domain blocked with ||name^.
    let blocked = sample(&dir.join("hagezi-light.adblock"));
    let ok = format!("ok.{blocked}");
    assert_eq!(s.short(&ok, "A").await, ["0.0.0.0"]);
    let (st, body) = s
        .api(
            Method::POST,
            "/rules",
            Some(json!({"kind": "allow", "pattern": ok})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(s.short(&ok, "A").await, ["10.7.7.7"]);
    assert_eq!(s.short(&format!("other.{blocked}"), "A").await, ["0.0.0.0"]);

    // Personal denylist with a wildcard.
    let (st, _) = s
        .api(
            Method::POST,
            "/rules",
            Some(json!({"kind": "deny", "pattern": "*.mine.test"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(s.short("a.b.mine.test", "A").await, ["0.0.0.0"]);
    let (st, body) = s
        .api(
            Method::POST,
            "/rules",
            Some(json!({"kind": "deny", "pattern": "bad pattern"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // An unreachable URL keeps the previous copy.
    let (_, before) = s.api(Method::GET, "/blocklists", None).await;
    let first = before[0]["id"].as_i64().unwrap();
    s.state()
        .db
        .conn()
        .execute(
            "UPDATE dns_blocklists SET url = 'http://127.0.0.1:9/gone.txt' WHERE id = ?1",
            [first],
        )
        .unwrap();
    let (_, report) = s.api(Method::POST, "/blocklists/update", None).await;
    let l0 = &report["lists"][0];
    assert!(
        l0["last_error"].as_str().unwrap().contains("127.0.0.1:9"),
        "{l0}"
    );
    assert_eq!(l0["domains"], before[0]["domains"]);
    assert_eq!(report["domains"].as_u64().unwrap(), total);
    let name = sample(&dir.join(files[0]));
    assert_eq!(s.short(&name, "A").await, ["0.0.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_blocking_mode() {
    require!(require_tools(&["dig"]));
    let mut c = cfg(&["127.0.0.1:9".into()]);
    c.blocking_mode = pinas_dns::config::BlockingMode::Nxdomain;
    let s = Server::start(c).await;
    s.api(
        Method::POST,
        "/rules",
        Some(json!({"kind": "deny", "pattern": "*.ads.test"})),
    )
    .await;
    let out = s.dig(&["x.ads.test", "A"]).await;
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("SOA"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_log_stats_metrics_and_pihole_summary() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/#/10.7.7.7"]);
    let s = Server::start(cfg(&[up.addr()])).await;
    s.api(
        Method::POST,
        "/rules",
        Some(json!({"kind": "deny", "pattern": "*.ads.test"})),
    )
    .await;
    add_record(&s, "printer.home", "A", "192.168.1.20").await;
    for n in [
        "a.example",
        "a.example",
        "x.ads.test",
        "printer.home",
        "b.example",
    ] {
        s.dig(&[n, "A"]).await;
    }
    // The writer batches; give it a moment.
    let mut rows = serde_json::Value::Null;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = s.api(Method::GET, "/querylog", None).await.1;
        if rows.as_array().map(Vec::len) == Some(5) {
            break;
        }
    }
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 5, "{rows:?}");
    let statuses: Vec<&str> = rows
        .iter()
        .rev()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["forwarded", "cached", "blocked", "local", "forwarded"]
    );
    assert_eq!(rows[0]["client"], "127.0.0.1");
    assert!(rows[0]["upstream"].as_str().unwrap().contains(&up.addr()));
    let (_, f) = s.api(Method::GET, "/querylog?status=blocked", None).await;
    assert_eq!(f.as_array().unwrap().len(), 1);
    let (_, f) = s
        .api(Method::GET, "/querylog?name=example&limit=1", None)
        .await;
    assert_eq!(f.as_array().unwrap().len(), 1);
    let (st, _) = s.api(Method::GET, "/querylog?status=nonsense", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (_, stats) = s.api(Method::GET, "/stats?hours=1", None).await;
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["blocked"], 1);
    assert_eq!(stats["blocked_percent"], 20.0);
    assert_eq!(stats["top_domains"][0]["key"], "a.example");
    assert_eq!(stats["top_blocked"][0]["key"], "x.ads.test");
    assert_eq!(stats["top_clients"][0]["count"], 5);

    let (st, m) = s.api(Method::GET, "/metrics", None).await;
    assert_eq!(st, StatusCode::OK);
    let m = m.as_str().unwrap();
    assert!(
        m.contains("pinas_dns_queries_total{status=\"blocked\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("pinas_dns_query_duration_seconds_count 5"),
        "{m}"
    );

    let (_, p) = s.api(Method::GET, "/pihole/api.php?summaryRaw", None).await;
    assert_eq!(p["dns_queries_today"], 5);
    assert_eq!(p["ads_blocked_today"], 1);
    assert_eq!(p["ads_percentage_today"], 20.0);
    assert_eq!(p["status"], "enabled");
    let (_, p) = s.api(Method::GET, "/pihole/api.php?summary", None).await;
    assert_eq!(p["dns_queries_today"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_truncated_packets_get_formerr_or_are_dropped() {
    require!(require_tools(&["dig"]));
    let s = Server::start(cfg(&["127.0.0.1:9".into()])).await;
    add_record(&s, "printer.home", "A", "192.168.1.20").await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(s.addr).await.unwrap();
    // A valid query to cut short.
    let mut q = hickory_proto::op::Message::query();
    q.add_query(hickory_proto::op::Query::query(
        "printer.home.".parse().unwrap(),
        hickory_proto::rr::RecordType::A,
    ));
    let valid = q.to_vec().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut formerr, mut other) = (0u32, 0u32);
    let mut buf = [0u8; 4096];
    for i in 0..100_000u32 {
        let pkt: Vec<u8> = if i % 2 == 0 {
            let len = (next() % 600) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let cut = 1 + (next() as usize % (valid.len() - 1));
            let mut p = valid[..cut].to_vec();
            if i % 4 == 1 {
                // A well-formed header with the QR bit clear and garbage after it.
                p.truncate(12.min(p.len()));
                p.extend((0..(next() % 40)).map(|_| next() as u8));
            }
            p
        };
        sock.send(&pkt).await.unwrap();
        // Drain answers without waiting on each one.
        while let Ok(n) = sock.try_recv(&mut buf) {
            if n >= 4 && buf[3] & 0x0f == 1 {
                formerr += 1;
            } else {
                other += 1;
            }
        }
        if i % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    eprintln!("100000 bad packets: {formerr} FORMERR, {other} other answers, the rest dropped");
    assert!(
        formerr > 0,
        "some packets have a readable header and must get FORMERR"
    );
    // Still answering, over UDP and TCP.
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);
    assert_eq!(
        s.dig(&["+tcp", "+short", "printer.home"]).await.trim(),
        "192.168.1.20"
    );
}
