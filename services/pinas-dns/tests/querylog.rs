//! The query log as written and as the unauthenticated Pi-hole summary reads it: the row
//! limit holds as rows are written, and the summary's reply counts are the real ones,
//! read at most every few seconds. dig and dnsmasq against pinas-dns on loopback.

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use pinas_dns::DnsConfig;
use pinas_testkit::{require, require_tools};
use serde_json::{json, Value};

async fn add(s: &Server, path: &str, body: Value) {
    let (st, b) = s.api(Method::POST, path, Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

/// Waits until the query log holds `n` rows (the writer batches); returns them.
async fn log_rows(s: &Server, n: usize) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..60 {
        let (_, b) = s.api(Method::GET, "/querylog?limit=1000", None).await;
        last = b.as_array().cloned().unwrap_or_default();
        if last.len() == n {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the query log has {} rows, not {n}", last.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_limit_holds_as_the_log_is_written() {
    require!(require_tools(&["dig"]));
    let s = Server::start(DnsConfig {
        upstreams: vec!["127.0.0.1:9".into()],
        query_log_max_rows: 10,
        ..DnsConfig::default()
    })
    .await;
    add(
        &s,
        "/records",
        json!({"name": "printer.home", "type": "A", "value": "192.168.1.20"}),
    )
    .await;
    for i in 0..25 {
        let name = format!("n{i}.printer.home");
        s.dig(&["+short", &name, "A"]).await;
    }
    // Let every batch land, then the newest 10 are all that is left.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rows = log_rows(&s, 10).await;
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let newest: Vec<String> = (15..25)
        .rev()
        .map(|i| format!("n{i}.printer.home"))
        .collect();
    assert_eq!(names, newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pihole_summary_counts_real_replies_and_reads_the_log_at_most_every_5_s() {
    require!(require_tools(&["dig", "dnsmasq"]));
    let up = Dnsmasq::start(&["--address=/up.test/10.9.9.9", "--address=/nx.test/"]);
    let s = Server::start(DnsConfig {
        upstreams: vec![up.addr()],
        ..DnsConfig::default()
    })
    .await;
    add(
        &s,
        "/records",
        json!({"name": "printer.home", "type": "A", "value": "192.168.1.20"}),
    )
    .await;
    add(
        &s,
        "/records",
        json!({"name": "www.home", "type": "CNAME", "value": "printer.home"}),
    )
    .await;
    add(
        &s,
        "/rules",
        json!({"kind": "deny", "pattern": "tracker.test"}),
    )
    .await;
    for (name, qtype) in [
        ("printer.home", "A"),    // IP
        ("printer.home", "AAAA"), // NODATA
        ("www.home", "A"),        // CNAME
        ("nx.test", "A"),         // NXDOMAIN, from the upstream
        ("up.test", "A"),         // IP, from the upstream
        ("tracker.test", "A"),    // IP: blocked, 0.0.0.0
    ] {
        let out = s.dig(&[name, qtype]).await;
        assert!(!status_of(&out).is_empty(), "{name} {qtype}: {out}");
    }
    log_rows(&s, 6).await;
    let summary = || async {
        let (st, b) = s
            .api_as(None, Method::GET, "/pihole/api.php?summaryRaw", None)
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        b
    };
    let t0 = Instant::now();
    let b = summary().await;
    assert_eq!(b["dns_queries_today"], 6, "{b}");
    assert_eq!(b["reply_IP"], 3, "{b}");
    assert_eq!(b["reply_NODATA"], 1, "{b}");
    assert_eq!(b["reply_CNAME"], 1, "{b}");
    assert_eq!(b["reply_NXDOMAIN"], 1, "{b}");
    assert_eq!(b["ads_blocked_today"], 1, "{b}");

    // Two more lookups: a summary asked for within 5 s still shows the counts read then.
    s.dig(&["printer.home", "A"]).await;
    s.dig(&["nx.test", "A"]).await;
    log_rows(&s, 8).await;
    let b = summary().await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "too slow to check the cache"
    );
    assert_eq!(b["dns_queries_today"], 6, "{b}");
    // After 5 s the log is read again.
    tokio::time::sleep(
        Duration::from_secs(5).saturating_sub(t0.elapsed()) + Duration::from_millis(100),
    )
    .await;
    let b = summary().await;
    assert_eq!(b["dns_queries_today"], 8, "{b}");
    assert_eq!(b["reply_IP"], 4, "{b}");
    assert_eq!(b["reply_NXDOMAIN"], 2, "{b}");
    // Formatted, as `summary` gives it.
    let (_, f) = s
        .api_as(None, Method::GET, "/pihole/api.php?summary", None)
        .await;
    assert_eq!(f["reply_CNAME"], "1", "{f}");
}
