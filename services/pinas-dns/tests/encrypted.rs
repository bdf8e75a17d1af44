//! DNS-over-TLS and DNS-over-HTTPS upstreams against small loopback servers with a
//! certificate made by openssl for this test (trusted through `upstream_ca_file`).

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use common::*;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
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

/// A DoT server on loopback answering 10.8.8.8; returns its port.
async fn dot_server(dir: &Path) -> u16 {
    let acc = acceptor(dir, b"dot");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let acc = acc.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acc.accept(tcp).await else {
                    return;
                };
                while let Ok(len) = s.read_u16().await {
                    let mut q = vec![0; len as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let a = answer(&q, Ipv4Addr::new(10, 8, 8, 8));
                    let _ = s.write_all(&(a.len() as u16).to_be_bytes()).await;
                    let _ = s.write_all(&a).await;
                }
            });
        }
    });
    port
}

/// A DoH server (HTTP/1.1 POST /dns-query) on loopback answering 10.8.8.9.
async fn doh_server(dir: &Path) -> u16 {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    let acc = acceptor(dir, b"http/1.1");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
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
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_and_https_upstreams() {
    if skip_without(&["dig", "openssl"]) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    assert!(
        make_cert(certs.path()),
        "openssl could not make a certificate"
    );
    let dot = dot_server(certs.path()).await;
    let doh = doh_server(certs.path()).await;

    let cfg = |up: String| pinas_dns::DnsConfig {
        upstreams: vec![up],
        upstream_ca_file: Some(certs.path().join("ca.pem")),
        upstream_timeout_ms: 3000,
        ..Default::default()
    };
    let s = Server::start(cfg(format!("tls://127.0.0.1:{dot}#dot.test"))).await;
    assert_eq!(s.short("over-tls.example", "A").await, ["10.8.8.8"]);
    let (_, ups) = s.api(axum::http::Method::GET, "/upstreams", None).await;
    assert_eq!(ups[0]["address"], format!("tls://127.0.0.1:{dot}#dot.test"));

    let s = Server::start(cfg(format!("https://doh.test:{doh}/dns-query#127.0.0.1"))).await;
    assert_eq!(s.short("over-https.example", "A").await, ["10.8.8.9"]);

    // A certificate for another name is refused: SERVFAIL, not an answer.
    let s = Server::start(cfg(format!("tls://127.0.0.1:{dot}#other.test"))).await;
    let out = s.dig(&["wrong-name.example", "A"]).await;
    assert_eq!(status_of(&out), "SERVFAIL", "{out}");
}
