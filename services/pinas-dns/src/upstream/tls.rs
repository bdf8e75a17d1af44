//! Encrypted upstreams: DNS-over-TLS (RFC 7858) and DNS-over-HTTPS (RFC 8484).
//!
//! Certificates are checked against the system's CA store (Debian's ca-certificates),
//! plus an optional extra CA file (`dns.upstream_ca_file`) for private resolvers. Each
//! query opens its own connection: simple and robust for a home network's rate; the
//! cache absorbs repeats.

use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{check_answer, exchange_stream, ForwardError, UpstreamAddr};

static EXTRA_CA: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
static HTTP: OnceLock<reqwest::Client> = OnceLock::new();

/// Trusts the CA certificates in PEM `pem` for encrypted upstreams, besides the system
/// store. Call before the first encrypted query; later calls are ignored.
///
/// # Errors
/// A message when `pem` holds no certificate.
pub fn set_extra_ca(pem: &[u8]) -> Result<(), String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    let _ = EXTRA_CA.set(certs);
    Ok(())
}

fn roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    for c in EXTRA_CA.get().into_iter().flatten() {
        let _ = roots.add(c.clone());
    }
    roots
}

fn config() -> Arc<ClientConfig> {
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .with_root_certificates(roots())
                .with_no_client_auth();
            // RFC 7858 section 3.2 recommends the "dot" ALPN.
            c.alpn_protocols = vec![b"dot".to_vec()];
            Arc::new(c)
        })
        .clone()
}

/// One query over TLS to `up` (`tls://IP:port#name`).
pub(super) async fn exchange(
    up: &UpstreamAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, ForwardError> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let name = match up.name.as_deref() {
        Some(n) => ServerName::try_from(n.to_string()),
        None => Ok(ServerName::IpAddress(up.addr.ip().into())),
    }
    .map_err(|e| ForwardError::Malformed(up.clone(), format!("server name: {e}")))?;
    let tcp = TcpStream::connect(up.addr).await.map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    let tls = TlsConnector::from(config())
        .connect(name, tcp)
        .await
        .map_err(io)?;
    exchange_stream(up, tls, bytes, query).await
}

fn http() -> reqwest::Client {
    HTTP.get_or_init(|| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("PiNAS/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(2);
        for c in EXTRA_CA.get().into_iter().flatten() {
            if let Ok(cert) = reqwest::Certificate::from_der(c) {
                b = b.add_root_certificate(cert);
            }
        }
        b.build().unwrap_or_default()
    })
    .clone()
}

/// One query over HTTPS (RFC 8484 POST) to `up` (`https://host/path[#IP]`).
pub(super) async fn exchange_https(
    up: &UpstreamAddr,
    bytes: &[u8],
    query: &Message,
    timeout: std::time::Duration,
) -> Result<Message, ForwardError> {
    let url = up.name.as_deref().unwrap_or("");
    let fail = |e: String| ForwardError::Malformed(up.clone(), e);
    let mut client = http();
    if !up.addr.ip().is_unspecified() {
        // Connect to the bootstrap address without asking any resolver (possibly
        // ourselves) for the host name.
        let host = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        let host = host.host_str().unwrap_or("").to_string();
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .resolve(&host, up.addr)
            .user_agent(concat!("PiNAS/", env!("CARGO_PKG_VERSION")));
        for c in EXTRA_CA.get().into_iter().flatten() {
            if let Ok(cert) = reqwest::Certificate::from_der(c) {
                b = b.add_root_certificate(cert);
            }
        }
        client = b.build().map_err(|e| fail(e.to_string()))?;
    }
    let resp = client
        .post(url)
        .header("content-type", "application/dns-message")
        .header("accept", "application/dns-message")
        .timeout(timeout)
        .body(bytes.to_vec())
        .send()
        .await
        .map_err(|e| fail(format!("{e}")))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
    // DoH answers carry ID 0 when the query did (RFC 8484 section 4.1); ours keep theirs.
    check_answer(up, query, &body)?.ok_or_else(|| fail("answer does not match the question".into()))
}
