//! DNS-over-TLS and DNS-over-HTTPS upstreams against small loopback servers with a
//! certificate made by openssl for this test (trusted through `upstream_ca_file`).

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use pinas_testkit::{require, require_tools};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Answers any question with one A record `ip`.
fn answer(query: &[u8], ip: Ipv4Addr) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::query();
    r.metadata.id = q.metadata.id;
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_available = true;
    r.add_queries(q.queries.clone());
    r.add_answer(Record::from_rdata(
        q.queries[0].name().clone(),
        120,
        RData::A(A(ip)),
    ));
    r.to_vec().unwrap()
}

/// A test CA (`ca.pem`) and a server certificate for dot.test and doh.test signed by it.
fn make_cert(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:dot.test,DNS:doh.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        &[
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=PiNAS test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ][..],
        &ec,
    ]
    .concat())
        && run(&[
            &[
                "req",
                "-subj",
                "/CN=dot.test",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ][..],
            &ec,
        ]
        .concat())
        && run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ])
}

fn acceptor(dir: &Path, alpn: &[u8]) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}

/// A folder with the test CA (`ca.pem`) and the server's `cert.pem` and `key.pem`. Every
/// test of this file gets the same ones: the extra CAs are set once per process (from
/// `upstream_ca_file` of the first server started).
fn certs() -> tempfile::TempDir {
    const FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];
    static PEMS: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    let pems = PEMS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            make_cert(dir.path()),
            "openssl could not make a certificate"
        );
        FILES.map(|f| std::fs::read(dir.path().join(f)).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    for (f, pem) in FILES.iter().zip(pems) {
        std::fs::write(dir.path().join(f), pem).unwrap();
    }
    dir
}

/// A server configuration with the single upstream `up`, trusting the CA in `certs`.
fn cfg(certs: &Path, up: String) -> pinas_dns::DnsConfig {
    pinas_dns::DnsConfig {
        upstreams: vec![up],
        upstream_ca_file: Some(certs.join("ca.pem")),
        upstream_timeout_ms: 3000,
        ..Default::default()
    }
}

/// When the test DoT server closes a connection.
#[derive(Clone, Copy)]
enum Close {
    /// Only when the client does, like a server with a long idle timeout.
    Never,
    /// Right after its n-th answer, without a TLS close_notify.
    After(usize),
    /// After this long without a query, with a TLS close_notify.
    Idle(Duration),
}

/// A DoT server on loopback answering 10.8.8.8, any number of queries per connection;
/// returns its port and the number of TCP connections it accepted.
async fn dot_server(dir: &Path, close: Close) -> (u16, Arc<AtomicUsize>) {
    let acc = acceptor(dir, b"dot");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let acc = acc.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acc.accept(tcp).await else {
                    return;
                };
                let mut answered = 0;
                loop {
                    let len = match close {
                        Close::Idle(idle) => match tokio::time::timeout(idle, s.read_u16()).await {
                            Ok(len) => len,
                            Err(_) => {
                                let _ = s.shutdown().await;
                                return;
                            }
                        },
                        _ => s.read_u16().await,
                    };
                    let Ok(len) = len else { return };
                    let mut q = vec![0; len as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let a = answer(&q, Ipv4Addr::new(10, 8, 8, 8));
                    let _ = s.write_all(&(a.len() as u16).to_be_bytes()).await;
                    let _ = s.write_all(&a).await;
                    let _ = s.flush().await;
                    answered += 1;
                    if matches!(close, Close::After(n) if answered == n) {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// A DoH server (HTTP/1.1 POST /dns-query, keep-alive) on loopback answering 10.8.8.9;
/// returns its port and the number of TCP connections it accepted.
async fn doh_server(dir: &Path) -> (u16, Arc<AtomicUsize>) {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    let acc = acceptor(dir, b"http/1.1");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let acc = acc.clone();
            tokio::spawn(async move {
                let Ok(s) = acc.accept(tcp).await else { return };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let ok = req.method() == hyper::Method::POST
                        && req.uri().path() == "/dns-query"
                        && req.headers().get("content-type").map(|v| v.as_bytes())
                            == Some(b"application/dns-message");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let resp = if ok {
                        hyper::Response::builder()
                            .header("content-type", "application/dns-message")
                            .body(Full::new(bytes::Bytes::from(answer(
                                &body,
                                Ipv4Addr::new(10, 8, 8, 9),
                            ))))
                    } else {
                        hyper::Response::builder()
                            .status(400)
                            .body(Full::new(bytes::Bytes::new()))
                    };
                    Ok::<_, std::convert::Infallible>(resp.unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (port, accepted)
}

/// Asks `s` for `n` different names, one after the other, and checks each answer names
/// the question and carries `ip`.
async fn ask_many(s: &Server, prefix: &str, n: usize, ip: &str) {
    for i in 0..n {
        let name = format!("{prefix}{i}.example");
        let out = s.dig(&[&name, "A"]).await;
        let got: Vec<_> = answers(&out)
            .into_iter()
            .map(|(owner, _, rtype, data)| (owner, rtype, data))
            .collect();
        assert_eq!(
            got,
            [(format!("{name}."), "A".to_string(), ip.to_string())],
            "{out}"
        );
    }
}

/// The only upstream's health and failure count, from `GET /upstreams`.
async fn upstream_health(s: &Server) -> (bool, u64) {
    let (_, ups) = s.api(axum::http::Method::GET, "/upstreams", None).await;
    (
        ups[0]["healthy"].as_bool().unwrap(),
        ups[0]["failures"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_and_https_upstreams() {
    require!(require_tools(&["dig", "openssl"]));
    let certs = certs();
    let (dot, _) = dot_server(certs.path(), Close::Never).await;
    let (doh, _) = doh_server(certs.path()).await;

    let s = Server::start(cfg(certs.path(), format!("tls://127.0.0.1:{dot}#dot.test"))).await;
    assert_eq!(s.short("over-tls.example", "A").await, ["10.8.8.8"]);
    let (_, ups) = s.api(axum::http::Method::GET, "/upstreams", None).await;
    assert_eq!(ups[0]["address"], format!("tls://127.0.0.1:{dot}#dot.test"));

    let s = Server::start(cfg(
        certs.path(),
        format!("https://doh.test:{doh}/dns-query#127.0.0.1"),
    ))
    .await;
    assert_eq!(s.short("over-https.example", "A").await, ["10.8.8.9"]);

    // A certificate for another name is refused: SERVFAIL, not an answer.
    let s = Server::start(cfg(
        certs.path(),
        format!("tls://127.0.0.1:{dot}#other.test"),
    ))
    .await;
    let out = s.dig(&["wrong-name.example", "A"]).await;
    assert_eq!(status_of(&out), "SERVFAIL", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_connections_are_reused() {
    require!(require_tools(&["dig", "openssl"]));
    let certs = certs();
    let (dot, accepted) = dot_server(certs.path(), Close::Never).await;
    let s = Server::start(cfg(certs.path(), format!("tls://127.0.0.1:{dot}#dot.test"))).await;
    ask_many(&s, "reuse-tls-", 20, "10.8.8.8").await;
    let n = accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "20 queries took {n} connections");
    assert_eq!(upstream_health(&s).await, (true, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_server_closing_a_connection_costs_no_failure() {
    require!(require_tools(&["dig", "openssl"]));
    let certs = certs();
    // Closed after every third answer: the next query finds its idle connection dead.
    let (dot, accepted) = dot_server(certs.path(), Close::After(3)).await;
    let s = Server::start(cfg(certs.path(), format!("tls://127.0.0.1:{dot}#dot.test"))).await;
    ask_many(&s, "closed-tls-", 10, "10.8.8.8").await;
    let n = accepted.load(Ordering::SeqCst);
    assert!(n >= 4, "10 queries, 3 per connection, took {n} connections");
    assert_eq!(upstream_health(&s).await, (true, 0));

    // Closed (with close_notify) after 500 ms without a query.
    let (dot, accepted) = dot_server(certs.path(), Close::Idle(Duration::from_millis(500))).await;
    let s = Server::start(cfg(certs.path(), format!("tls://127.0.0.1:{dot}#dot.test"))).await;
    assert_eq!(s.short("idle-1.example", "A").await, ["10.8.8.8"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.short("idle-2.example", "A").await, ["10.8.8.8"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(upstream_health(&s).await, (true, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_connections_are_reused() {
    require!(require_tools(&["dig", "openssl"]));
    let certs = certs();
    let (doh, accepted) = doh_server(certs.path()).await;
    let s = Server::start(cfg(
        certs.path(),
        format!("https://doh.test:{doh}/dns-query#127.0.0.1"),
    ))
    .await;
    ask_many(&s, "reuse-https-", 20, "10.8.8.9").await;
    let n = accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "20 queries took {n} connections");
    assert_eq!(upstream_health(&s).await, (true, 0));
}
