//! Forwarding to upstream DNS servers over UDP, TCP, DNS-over-TLS (RFC 7858) and
//! DNS-over-HTTPS (RFC 8484), with health checks and failover.
//!
//! A query goes to the first healthy upstream in the configured order; when it times out
//! or fails, the upstream is marked down and the next one is tried, so one dead upstream
//! costs one timeout, not one per query. Down upstreams are probed in the background
//! ([`Forwarder::check_health`]) and come back when they answer. A truncated UDP answer
//! (TC bit, RFC 1035 section 4.2.1) is retried over TCP (RFC 7766) on the same upstream.
//! Each UDP query uses a fresh socket, so its source port is random (RFC 5452).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The transport of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS-over-TLS, RFC 7858.
    Tls,
    /// DNS-over-HTTPS, RFC 8484 (POST, `application/dns-message`).
    Https,
}

/// An upstream server: `udp://IP:port`, `tcp://IP:port`, `tls://IP:port#name` or
/// `https://host/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    pub transport: Transport,
    /// The server's address; for DoH, the bootstrap address of the host (port 443) when
    /// given with `#IP`, else unspecified and the host name is resolved by the system.
    pub addr: SocketAddr,
    /// DoT: the name its certificate must carry (defaults to the IP). DoH: the URL.
    pub name: Option<Arc<str>>,
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.transport {
            Transport::Udp => write!(f, "udp://{}", self.addr),
            Transport::Tcp => write!(f, "tcp://{}", self.addr),
            Transport::Tls => match &self.name {
                Some(n) => write!(f, "tls://{}#{n}", self.addr),
                None => write!(f, "tls://{}", self.addr),
            },
            Transport::Https => {
                write!(f, "{}", self.name.as_deref().unwrap_or(""))?;
                if !self.addr.ip().is_unspecified() {
                    write!(f, "#{}", self.addr.ip())?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for UpstreamAddr {
    type Err = String;

    /// Accepts `IP`, `IP:port`, `[IPv6]:port`, each optionally prefixed by `udp://` or
    /// `tcp://` (port 53 by default); `tls://IP[:port][#name]` (port 853; the certificate
    /// must name `name`, or the IP when no name is given); `https://host[:port]/path[#IP]`
    /// (`#IP` is the address to connect to, so the host name needs no lookup).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if !s.contains("://") {
            // A bare address: plain DNS over UDP.
            return udp_or_tcp(Transport::Udp, s, 53);
        }
        let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
        let (transport, default_port) = match url.scheme() {
            "udp" => (Transport::Udp, 53),
            "tcp" => (Transport::Tcp, 53),
            "tls" => (Transport::Tls, 853),
            "https" => (Transport::Https, 443),
            _ => return Err("expected udp://, tcp://, tls:// or https://".into()),
        };
        if transport == Transport::Https {
            return https(url);
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
        {
            return Err(
                "expected an IP address with an optional port, e.g. udp://9.9.9.9:53".into(),
            );
        }
        let ip = match url.host() {
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            // Outside http(s) the URL standard keeps hosts opaque: read the address here.
            Some(url::Host::Domain(h)) => h.parse::<IpAddr>().map_err(|_| {
                format!("{h:?} is not an IP address (upstreams are given by address)")
            })?,
            None => return Err("expected an IP address, e.g. tcp://9.9.9.9".into()),
        };
        let port = url.port().unwrap_or(default_port);
        if port == 0 {
            return Err("port 0 is not a valid upstream port".into());
        }
        let name = match url.fragment() {
            Some(n) if transport == Transport::Tls => {
                if crate::domains::normalize(n).is_none() {
                    return Err(format!("{n:?} is not a server name"));
                }
                Some(Arc::<str>::from(n))
            }
            Some(_) => return Err("#name is only for tls:// upstreams".into()),
            None => None,
        };
        Ok(UpstreamAddr {
            transport,
            addr: SocketAddr::new(ip, port),
            name,
        })
    }
}

/// `IP` or `IP:port` / `[IPv6]:port` for plain DNS.
fn udp_or_tcp(transport: Transport, s: &str, port: u16) -> Result<UpstreamAddr, String> {
    let addr = if let Ok(ip) = s.parse::<IpAddr>() {
        SocketAddr::new(ip, port)
    } else {
        s.parse::<SocketAddr>().map_err(|_| {
            "expected an IP address with an optional port, e.g. 9.9.9.9:53".to_string()
        })?
    };
    if addr.port() == 0 {
        return Err("port 0 is not a valid upstream port".into());
    }
    Ok(UpstreamAddr {
        transport,
        addr,
        name: None,
    })
}

/// `https://host[:port]/path[#IP]`: DoH; `#IP` is the address to connect to, so the host
/// name needs no lookup.
fn https(mut url: url::Url) -> Result<UpstreamAddr, String> {
    let usage = "expected https://host/path, e.g. https://dns.quad9.net/dns-query";
    if url.host_str().is_none_or(str::is_empty) || url.path() == "/" {
        return Err(usage.into());
    }
    let ip = match url.fragment() {
        Some(ip) => ip
            .parse::<IpAddr>()
            .map_err(|_| format!("{ip:?} after # is not an IP address"))?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    url.set_fragment(None);
    Ok(UpstreamAddr {
        transport: Transport::Https,
        addr: SocketAddr::new(ip, 443),
        name: Some(url.as_str().into()),
    })
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}: no answer within {1:?}")]
    Timeout(UpstreamAddr, Duration),
    #[error("{0}: {1}")]
    Io(UpstreamAddr, std::io::Error),
    #[error("{0}: malformed answer: {1}")]
    Malformed(UpstreamAddr, String),
    #[error("no upstream is configured")]
    NoUpstream,
}

/// One upstream with its health.
#[derive(Debug)]
pub struct Upstream {
    pub addr: UpstreamAddr,
    healthy: AtomicBool,
    queries: AtomicU64,
    failures: AtomicU64,
    /// Smoothed round-trip time, microseconds.
    rtt_us: AtomicU64,
}

/// The health of one upstream, for the API.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    /// `udp://IP:port` or `tcp://IP:port`.
    pub address: String,
    pub healthy: bool,
    pub queries: u64,
    pub failures: u64,
    /// Smoothed round-trip time, milliseconds.
    pub rtt_ms: f64,
}

impl Upstream {
    fn new(addr: UpstreamAddr) -> Self {
        Upstream {
            addr,
            healthy: AtomicBool::new(true),
            queries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rtt_us: AtomicU64::new(0),
        }
    }

    /// Whether the last exchange (query or probe) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn record_ok(&self, rtt: Duration) {
        let was = self.healthy.swap(true, Ordering::Relaxed);
        if !was {
            tracing::info!(upstream = %self.addr, "upstream is answering again");
        }
        let us = rtt.as_micros() as u64;
        let old = self.rtt_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.rtt_us.store(new, Ordering::Relaxed);
    }

    fn record_failure(&self, e: &ForwardError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(upstream = %self.addr, error = %e, "upstream marked down");
        }
    }

    /// Snapshot for the API.
    pub fn status(&self) -> UpstreamStatus {
        UpstreamStatus {
            address: self.addr.to_string(),
            healthy: self.is_healthy(),
            queries: self.queries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rtt_ms: self.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Builds the wire query sent upstream: random ID, RD set, EDNS with a 1232-byte payload
/// (the DNS Flag Day 2020 recommendation), no DNSSEC OK bit.
pub fn build_query(name: &Name, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(name.clone(), qtype));
    m.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

/// Sends `query` to `up` and returns the answer, checking ID and question.
///
/// # Errors
/// [`ForwardError`] on timeout, socket errors, or an answer that does not parse or does
/// not match.
pub async fn exchange(
    up: &UpstreamAddr,
    query: &Message,
    timeout: Duration,
) -> Result<Message, ForwardError> {
    let bytes = query
        .to_vec()
        .map_err(|e| ForwardError::Malformed(up.clone(), e.to_string()))?;
    let fut = async {
        match up.transport {
            Transport::Udp => {
                let m = exchange_udp(up, &bytes, query).await?;
                if m.metadata.truncation {
                    exchange_tcp(up, &bytes, query).await
                } else {
                    Ok(m)
                }
            }
            Transport::Tcp => exchange_tcp(up, &bytes, query).await,
            Transport::Tls => tls::exchange(up, &bytes, query).await,
            Transport::Https => tls::exchange_https(up, &bytes, query, timeout).await,
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ForwardError::Timeout(up.clone(), timeout)),
    }
}

fn check_answer(
    up: &UpstreamAddr,
    query: &Message,
    buf: &[u8],
) -> Result<Option<Message>, ForwardError> {
    let m =
        Message::from_vec(buf).map_err(|e| ForwardError::Malformed(up.clone(), e.to_string()))?;
    if m.metadata.id != query.metadata.id || m.metadata.message_type != MessageType::Response {
        return Ok(None);
    }
    let same_q = match (m.queries.first(), query.queries.first()) {
        (Some(a), Some(b)) => a.query_type() == b.query_type() && a.name().eq_ignore_root(b.name()),
        // Some servers drop the question on errors; the ID already matched.
        (None, _) => true,
        _ => false,
    };
    Ok(same_q.then_some(m))
}

async fn exchange_udp(
    up: &UpstreamAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, ForwardError> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let local: SocketAddr = match up.addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(up.addr).await.map_err(io)?;
    sock.send(bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // A stray or spoofed datagram is ignored; the timeout bounds the wait.
        if let Ok(Some(m)) = check_answer(up, query, &buf[..n]) {
            return Ok(m);
        }
    }
}

async fn exchange_tcp(
    up: &UpstreamAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, ForwardError> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let s = TcpStream::connect(up.addr).await.map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    exchange_stream(up, s, bytes, query).await
}

/// One length-prefixed exchange on a stream (RFC 1035 section 4.2.2).
async fn exchange_stream(
    up: &UpstreamAddr,
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, ForwardError> {
    let io = |e| ForwardError::Io(up.clone(), e);
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    s.write_all(&out).await.map_err(io)?;
    let len = s.read_u16().await.map_err(io)? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.map_err(io)?;
    check_answer(up, query, &buf)?.ok_or_else(|| {
        ForwardError::Malformed(up.clone(), "answer does not match the question".into())
    })
}

/// The configured upstreams, in order.
pub struct Forwarder {
    /// Replaced whole by [`Forwarder::set_upstreams`]; a query in flight keeps the set it
    /// started with.
    upstreams: arc_swap::ArcSwap<Vec<Arc<Upstream>>>,
    timeout: Duration,
}

impl Forwarder {
    /// Upstreams in order of preference; `timeout` per attempt.
    pub fn new(addrs: &[UpstreamAddr], timeout: Duration) -> Self {
        Forwarder {
            upstreams: arc_swap::ArcSwap::from_pointee(
                addrs
                    .iter()
                    .map(|a| Arc::new(Upstream::new(a.clone())))
                    .collect(),
            ),
            timeout,
        }
    }

    /// The upstreams with their health.
    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    /// Replaces the upstreams, in order. An address that was already in use keeps its
    /// health and counters; a new one starts healthy and joins the health checks.
    pub fn set_upstreams(&self, addrs: &[UpstreamAddr]) {
        let old = self.upstreams();
        let new = addrs
            .iter()
            .map(|a| {
                old.iter()
                    .find(|u| u.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Upstream::new(a.clone())))
            })
            .collect();
        self.upstreams.store(Arc::new(new));
    }

    /// Per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Forwards `query`: healthy upstreams first (in order), then the ones marked down as
    /// a last resort. Returns the answer and the upstream that gave it.
    ///
    /// # Errors
    /// The last upstream's error when none answered; [`ForwardError::NoUpstream`] when
    /// none is configured.
    pub async fn forward(&self, query: &Message) -> Result<(Message, UpstreamAddr), ForwardError> {
        let upstreams = self.upstreams();
        let healthy = upstreams.iter().filter(|u| u.is_healthy());
        let down = upstreams.iter().filter(|u| !u.is_healthy());
        let mut last = ForwardError::NoUpstream;
        for up in healthy.chain(down) {
            up.queries.fetch_add(1, Ordering::Relaxed);
            let t0 = Instant::now();
            match exchange(&up.addr, query, self.timeout).await {
                Ok(m) => {
                    up.record_ok(t0.elapsed());
                    return Ok((m, up.addr.clone()));
                }
                Err(e) => {
                    up.record_failure(&e);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Probes every upstream that is marked down with a root NS query; any answer marks
    /// it up again.
    pub async fn check_health(&self) {
        for up in self.upstreams().iter().filter(|u| !u.is_healthy()) {
            let q = build_query(&Name::root(), RecordType::NS);
            let t0 = Instant::now();
            if exchange(&up.addr, &q, self.timeout).await.is_ok() {
                up.record_ok(t0.elapsed());
            }
        }
    }
}

mod tls;
pub use tls::set_extra_ca;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_upstreams() {
        let u: UpstreamAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(u.to_string(), "udp://9.9.9.9:53");
        let u: UpstreamAddr = "tcp://[::1]:5300".parse().unwrap();
        assert_eq!(u.to_string(), "tcp://[::1]:5300");
        let u: UpstreamAddr = "tls://9.9.9.9#dns.quad9.net".parse().unwrap();
        assert_eq!(u.to_string(), "tls://9.9.9.9:853#dns.quad9.net");
        let u: UpstreamAddr = "https://dns.quad9.net/dns-query#9.9.9.9".parse().unwrap();
        assert_eq!(
            (u.transport, u.addr.to_string()),
            (Transport::Https, "9.9.9.9:443".to_string())
        );
        assert_eq!(u.to_string(), "https://dns.quad9.net/dns-query#9.9.9.9");
        assert!("https:///x".parse::<UpstreamAddr>().is_err());
        assert!("tls://1.1.1.1#bad name".parse::<UpstreamAddr>().is_err());
        assert!("udp://1.1.1.1#x".parse::<UpstreamAddr>().is_err());
        assert!("example.com".parse::<UpstreamAddr>().is_err());
        assert!("1.2.3.4:0".parse::<UpstreamAddr>().is_err());
        assert!("tcp://1.2.3.4:0".parse::<UpstreamAddr>().is_err());
        assert!("tcp://dns.example:53".parse::<UpstreamAddr>().is_err());
        assert!("tcp://1.2.3.4/path".parse::<UpstreamAddr>().is_err());
        assert!("ftp://1.2.3.4".parse::<UpstreamAddr>().is_err());
        let u: UpstreamAddr = "https://doh.test:8443/dns-query#127.0.0.1".parse().unwrap();
        assert_eq!(u.to_string(), "https://doh.test:8443/dns-query#127.0.0.1");
    }
}
