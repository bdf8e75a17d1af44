//! Encrypted upstreams: DNS-over-TLS (RFC 7858) and DNS-over-HTTPS (RFC 8484).
//!
//! Certificates are checked against the system's CA store (Debian's ca-certificates),
//! plus an optional extra CA file (`dns.upstream_ca_file`) for private resolvers.
//!
//! Connections are reused, as RFC 7858 section 3.4 and RFC 7766 section 6.2.1 ask:
//! - DoT: each upstream (address and server name) keeps up to [`MAX_IDLE_PER_UPSTREAM`]
//!   idle TLS connections for [`IDLE_TIMEOUT`]. A query takes one (or opens one), sends
//!   one length-prefixed message, reads the answer, and gives the connection back only
//!   when the whole exchange succeeded. When a reused connection turns out to have been
//!   closed by the server while idle (end of file, reset or broken pipe on the write or
//!   on the answer's length), the query is sent once more on a fresh connection, so a
//!   server's idle timeout never marks the upstream down. No pipelining: one query at a
//!   time per connection.
//! - DoH: one HTTP client per (host, bootstrap address), kept for the life of the
//!   process, so its pool reuses HTTP/1.1 keep-alive and HTTP/2 connections.
//!
//! The extra CAs never change once set (the first [`set_extra_ca`] wins, and the live
//! settings do not include `upstream_ca_file`), so no pooled connection or cached client
//! was made with CAs other than the current ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{check_answer, ForwardError, UpstreamAddr};

/// Most idle DoT connections kept per upstream.
const MAX_IDLE_PER_UPSTREAM: usize = 2;
/// How long an idle DoT connection (or a DoH client's idle connection) is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Most cached DoH clients; the list of upstreams is at most 16 long, so this is only
/// reached after many changes of the settings, and then the cache starts over.
const MAX_HTTP_CLIENTS: usize = 32;

static EXTRA_CA: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
static HTTP: OnceLock<reqwest::Client> = OnceLock::new();

/// A DoT upstream as the pool knows it: where to connect and the name to check.
type PoolKey = (SocketAddr, Option<Arc<str>>);
type Conn = TlsStream<TcpStream>;
/// Idle connections per upstream, newest last, with the time each was given back.
type Idle = HashMap<PoolKey, Vec<(Conn, Instant)>>;

/// Idle DoT connections. The lock is only held to take or give back a connection, never
/// across network I/O.
static POOL: OnceLock<Mutex<Idle>> = OnceLock::new();
/// DoH clients for URLs with a bootstrap address, by (host, address).
static HTTP_BOOTSTRAP: OnceLock<Mutex<HashMap<(String, SocketAddr), reqwest::Client>>> =
    OnceLock::new();

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

/// One query over TLS to `up` (`tls://IP:port#name`), on an idle connection when one
/// is pooled, else on a new one; retried once on a new connection when the idle one had
/// been closed by the server.
pub(super) async fn exchange(
    up: &UpstreamAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, ForwardError> {
    let key: PoolKey = (up.addr, up.name.clone());
    if let Some(mut conn) = take_idle(&key) {
        match exchange_on(up, &mut conn, bytes, query).await {
            Ok(m) => {
                give_back(key, conn);
                return Ok(m);
            }
            Err(Failure::Closed(e)) => {
                tracing::debug!(
                    upstream = %up,
                    error = %e,
                    "idle connection was closed by the server, reconnecting"
                );
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    let mut conn = connect(up).await?;
    match exchange_on(up, &mut conn, bytes, query).await {
        Ok(m) => {
            give_back(key, conn);
            Ok(m)
        }
        Err(Failure::Closed(e) | Failure::Other(e)) => Err(e),
    }
}

fn pool() -> MutexGuard<'static, Idle> {
    POOL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The most recently used idle connection to `key`, unless it has been idle too long.
fn take_idle(key: &PoolKey) -> Option<Conn> {
    let mut pool = pool();
    let idle = pool.get_mut(key)?;
    let (conn, since) = idle.pop()?;
    if since.elapsed() < IDLE_TIMEOUT {
        Some(conn)
    } else {
        // Older ones were given back earlier still.
        idle.clear();
        None
    }
}

/// Keeps `conn` for the next query to `key`, when there is room; forgets connections
/// idle for too long, of any upstream (including ones no longer configured).
fn give_back(key: PoolKey, conn: Conn) {
    let now = Instant::now();
    let mut pool = pool();
    pool.retain(|_, idle| {
        idle.retain(|(_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
        !idle.is_empty()
    });
    let idle = pool.entry(key).or_default();
    if idle.len() < MAX_IDLE_PER_UPSTREAM {
        idle.push((conn, now));
    }
}

async fn connect(up: &UpstreamAddr) -> Result<Conn, ForwardError> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let name = match up.name.as_deref() {
        Some(n) => ServerName::try_from(n.to_string()),
        None => Ok(ServerName::IpAddress(up.addr.ip().into())),
    }
    .map_err(|e| ForwardError::Malformed(up.clone(), format!("server name: {e}")))?;
    let tcp = TcpStream::connect(up.addr).await.map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    TlsConnector::from(config())
        .connect(name, tcp)
        .await
        .map_err(io)
}

/// Why an exchange on a DoT connection failed.
enum Failure {
    /// The connection was already closed by the server when the query was sent: the
    /// query is worth sending again on a new connection.
    Closed(ForwardError),
    Other(ForwardError),
}

/// One length-prefixed exchange (RFC 7858 section 3.3, RFC 1035 section 4.2.2) on `s`,
/// which stays usable for the next one when this succeeds.
async fn exchange_on(
    up: &UpstreamAddr,
    s: &mut Conn,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, Failure> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let closed = |e: std::io::Error| {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => Failure::Closed(io(e)),
            _ => Failure::Other(io(e)),
        }
    };
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    s.write_all(&out).await.map_err(closed)?;
    s.flush().await.map_err(closed)?;
    let len = s.read_u16().await.map_err(closed)? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| Failure::Other(io(e)))?;
    check_answer(up, query, &buf)
        .map_err(Failure::Other)?
        .ok_or_else(|| {
            Failure::Other(ForwardError::Malformed(
                up.clone(),
                "answer does not match the question".into(),
            ))
        })
}

/// A client builder with the PiNAS user agent, a small pool and the extra CAs.
fn http_builder() -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("PiNAS/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(MAX_IDLE_PER_UPSTREAM)
        .pool_idle_timeout(IDLE_TIMEOUT);
    for c in EXTRA_CA.get().into_iter().flatten() {
        if let Ok(cert) = reqwest::Certificate::from_der(c) {
            b = b.add_root_certificate(cert);
        }
    }
    b
}

fn http() -> reqwest::Client {
    HTTP.get_or_init(|| http_builder().build().unwrap_or_default())
        .clone()
}

/// The client that connects to `addr` for `host`, without asking any resolver (possibly
/// ourselves) for the host name; made on first use, then shared.
fn http_bootstrap(host: &str, addr: SocketAddr) -> Result<reqwest::Client, reqwest::Error> {
    let clients = || {
        HTTP_BOOTSTRAP
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    let key = (host.to_string(), addr);
    if let Some(c) = clients().get(&key) {
        return Ok(c.clone());
    }
    // Built without the lock: reading the system's CA store takes a while.
    let c = http_builder().resolve(host, addr).build()?;
    let mut clients = clients();
    if clients.len() >= MAX_HTTP_CLIENTS {
        clients.clear();
    }
    Ok(clients.entry(key).or_insert(c).clone())
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
    let client = if up.addr.ip().is_unspecified() {
        http()
    } else {
        let host = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        http_bootstrap(host.host_str().unwrap_or(""), up.addr).map_err(|e| fail(e.to_string()))?
    };
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
