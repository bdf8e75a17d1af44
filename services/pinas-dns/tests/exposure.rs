//! What the DNS server shows to whom: only allowed networks are answered, UDP responses
//! are rate-limited per client network, and identical questions in flight share one
//! upstream query. Checked with dig, dnsperf and dnsmasq against pinas-dns on loopback
//! (and, as root, from a network namespace with a non-local address).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use pinas_dns::DnsConfig;
use pinas_testkit::{require, require_root, require_tools};
use serde_json::json;

fn cfg(upstreams: &[String]) -> DnsConfig {
    DnsConfig {
        upstreams: upstreams.to_vec(),
        upstream_timeout_ms: 1500,
        ..DnsConfig::default()
    }
}

async fn add_record(s: &Server, name: &str, ip: &str) {
    let (st, b) = s
        .api(
            Method::POST,
            "/records",
            Some(json!({"name": name, "type": "A", "value": ip})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

/// The value of one metric line (`name{labels} value`) in the exposition text.
async fn metric(s: &Server, line_start: &str) -> f64 {
    let (st, b) = s.api(Method::GET, "/metrics", None).await;
    assert_eq!(st, StatusCode::OK);
    let text = b.as_str().unwrap().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_allowed_networks_are_refused_over_udp_and_tcp() {
    require!(require_tools(&["dig"]));
    let s = Server::start(DnsConfig {
        allowed_networks: vec!["127.0.0.1".into(), "::1".into()],
        ..cfg(&["127.0.0.1:9".into()])
    })
    .await;
    add_record(&s, "printer.home", "192.168.1.20").await;
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);

    for transport in ["+notcp", "+tcp"] {
        let out = s
            .dig(&["-b", "127.0.0.2", transport, "printer.home", "A"])
            .await;
        assert_eq!(status_of(&out), "REFUSED", "{transport}: {out}");
        assert!(answers(&out).is_empty(), "{out}");
        // The question is echoed, so resolvers match the answer to their query.
        assert!(out.contains(";printer.home.\t\t\tIN\tA"), "{out}");
    }
    assert_eq!(metric(&s, "pinas_dns_refused_total").await, 2.0);
    // Refused clients leave no trace in the query log.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, log) = s.api(Method::GET, "/querylog?client=127.0.0.2", None).await;
    assert_eq!(log, json!([]));

    // Live: allowing 127.0.0.0/8 lets 127.0.0.2 in at once; a bad entry changes nothing.
    let (_, mut settings) = s.api(Method::GET, "/settings", None).await;
    assert_eq!(settings["allowed_networks"], json!(["127.0.0.1", "::1"]));
    settings["allowed_networks"] = json!(["127.0.0.0/8", "300.1.1.0/24"]);
    let (st, b) = s
        .api(Method::PUT, "/settings", Some(settings.clone()))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["field"], "allowed_networks", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300.1.1.0/24"),
        "{b}"
    );
    let out = s.dig(&["-b", "127.0.0.2", "printer.home", "A"]).await;
    assert_eq!(status_of(&out), "REFUSED", "{out}");
    settings["allowed_networks"] = json!(["127.0.0.0/8"]);
    let (st, b) = s.api(Method::PUT, "/settings", Some(settings)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let out = s.dig(&["-b", "127.0.0.2", "printer.home", "A"]).await;
    assert_eq!(status_of(&out), "NOERROR", "{out}");
    assert_eq!(answers(&out)[0].3, "192.168.1.20");

    // A client that does not know the field (an older UI) leaves it as it is.
    let (_, mut settings) = s.api(Method::GET, "/settings", None).await;
    let body = settings.as_object_mut().unwrap();
    body.remove("allowed_networks");
    body.insert("cache_size".into(), json!(5000));
    let (st, b) = s.api(Method::PUT, "/settings", Some(settings)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["allowed_networks"], json!(["127.0.0.0/8"]), "{b}");
    assert_eq!(b["cache_size"], 5000, "{b}");
}

/// With the default list (`local`), a client whose address is on none of the home
/// networks or the box's own subnets is refused: a network namespace with a point-to-
/// point veth, `198.51.100.1/32` on the box's side and `203.0.113.2/32` on the client's
/// (documentation ranges; no traffic leaves the pair).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_query_from_a_non_local_address_is_refused() {
    require!(require_root("network namespaces and veth pairs need root"));
    require!(require_tools(&["dig", "ip"]));
    let ns = format!("pinas-dns-x{}", std::process::id());
    let (host_if, ns_if) = (
        format!("pdx{}h", std::process::id() % 100_000),
        format!("pdx{}n", std::process::id() % 100_000),
    );
    let sh = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.1])
                .status();
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    sh(&["netns", "add", &ns]);
    let _cleanup = Cleanup(ns.clone(), host_if.clone());
    sh(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
    ]);
    sh(&[
        "addr",
        "add",
        "198.51.100.1/32",
        "peer",
        "203.0.113.2/32",
        "dev",
        &host_if,
    ]);
    sh(&["link", "set", &host_if, "up"]);
    sh(&[
        "-n",
        &ns,
        "addr",
        "add",
        "203.0.113.2/32",
        "peer",
        "198.51.100.1/32",
        "dev",
        &ns_if,
    ]);
    sh(&["-n", &ns, "link", "set", &ns_if, "up"]);
    sh(&["-n", &ns, "link", "set", "lo", "up"]);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dns");
    let db = pinas_dns::store::open(&state, None).unwrap();
    let running = pinas_dns::start(
        db,
        &state,
        pinas_core::EventBus::new(None),
        cfg(&["127.0.0.1:9".into()]),
        "0.0.0.0:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let port = running.addr.port().to_string();
    let dig_in_ns = |tcp: bool| {
        let (ns, port) = (ns.clone(), port.clone());
        tokio::task::spawn_blocking(move || {
            let mut a = vec!["netns", "exec", &ns, "dig", "@198.51.100.1", "-p", &port];
            a.extend(["+tries=1", "+time=3", "pinas.test", "A"]);
            if tcp {
                a.push("+tcp");
            }
            let out = std::process::Command::new("ip").args(&a).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    for tcp in [false, true] {
        let out = dig_in_ns(tcp).await.unwrap();
        assert_eq!(status_of(&out), "REFUSED", "tcp={tcp}: {out}");
    }
    // The same server answers local clients (loopback is local).
    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = dig(local, &["pinas.test", "A"]).await;
    assert_ne!(status_of(&out), "REFUSED", "{out}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_is_dropped_with_tc_slips_and_tcp_still_answers() {
    require!(require_tools(&["dig", "dnsperf"]));
    let s = Server::start(DnsConfig {
        rate_limit_per_sec: 50,
        rate_limit_slip: 2,
        ..cfg(&["127.0.0.1:9".into()])
    })
    .await;
    add_record(&s, "printer.home", "192.168.1.20").await;
    let file = s.dir.path().join("queries.txt");
    std::fs::write(&file, "printer.home A\n".repeat(400)).unwrap();
    let perf = |file: std::path::PathBuf, port: u16| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("dnsperf")
                .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
                .arg(&file)
                .args(["-n", "1", "-q", "400", "-t", "1"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let count = |out: &str, what: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(what))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {what} in {out}"))
            .parse()
            .unwrap()
    };
    let out = perf(file.clone(), s.addr.port()).await.unwrap();
    let (sent, completed, lost) = (
        count(&out, "Queries sent:"),
        count(&out, "Queries completed:"),
        count(&out, "Queries lost:"),
    );
    assert_eq!(sent, 400, "{out}");
    let dropped = metric(&s, "pinas_dns_rate_limited_total{action=\"dropped\"}").await as u64;
    let slipped = metric(&s, "pinas_dns_rate_limited_total{action=\"slipped\"}").await as u64;
    // About one second's worth (50, plus what refills during the burst) is answered;
    // of the rest, every second query gets a TC answer and the others nothing.
    assert!((50..=150).contains(&(completed - slipped)), "{out}");
    assert_eq!(lost, dropped, "{out}");
    assert!(
        slipped.abs_diff(dropped) <= 1,
        "slipped {slipped} dropped {dropped}"
    );
    assert!(dropped >= 100, "{out}");

    // Over the limit, TCP still answers (it proves the client's address).
    for _ in 0..20 {
        s.dig(&["+tries=1", "+time=1", "printer.home", "A"]).await;
    }
    let out = s.dig(&["+tcp", "printer.home", "A"]).await;
    assert_eq!(answers(&out)[0].3, "192.168.1.20", "{out}");
    // A second later the bucket is full again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.short("printer.home", "A").await, ["192.168.1.20"]);

    // With the limit off (live), the whole burst is answered.
    let (_, mut settings) = s.api(Method::GET, "/settings", None).await;
    settings["rate_limit_per_sec"] = json!(0);
    let (st, b) = s.api(Method::PUT, "/settings", Some(settings)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let out = perf(file, s.addr.port()).await.unwrap();
    assert_eq!(count(&out, "Queries completed:"), 400, "{out}");
}

/// An upstream on loopback that answers every A query with 10.1.1.1 after `delay`, and
/// counts the queries it got.
async fn slow_upstream(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{rdata::A, RData, Record};
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((len, src)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.metadata.message_type = MessageType::Response;
                r.metadata.recursion_desired = true;
                r.metadata.recursion_available = true;
                for query in q.queries.iter() {
                    r.add_query(query.clone());
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A::new(10, 1, 1, 1)),
                    ));
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), src).await;
            });
        }
    });
    (addr, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_questions_in_flight_share_one_upstream_query() {
    require!(require_tools(&["dnsperf", "dig"]));
    let (up, count) = slow_upstream(Duration::from_millis(400)).await;
    let s = Server::start(cfg(&[up.to_string()])).await;
    // Health checks may query the upstream too: count from here on.
    let base = count.load(Ordering::SeqCst);
    let file = s.dir.path().join("same.txt");
    std::fs::write(
        &file,
        "merged.test A\n".repeat(30) + &"other.test A\n".repeat(10),
    )
    .unwrap();
    let port = s.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("dnsperf")
            .args(["-s", "127.0.0.1", "-p", &port, "-d"])
            .arg(&file)
            .args(["-n", "1", "-q", "40", "-t", "3", "-c", "8"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(out.contains("Queries completed:    40 "), "{out}");
    assert!(out.contains("NOERROR 40"), "{out}");
    let got = count.load(Ordering::SeqCst) - base;
    let probes = count.load(Ordering::SeqCst); // health probes are A queries too
    assert_eq!(
        got, 2,
        "upstream queries for 2 distinct questions (total seen {probes})"
    );
    // Answered from the cache afterwards, as usual.
    assert_eq!(s.short("merged.test", "A").await, ["10.1.1.1"]);
    assert_eq!(count.load(Ordering::SeqCst) - base, 2);
}
