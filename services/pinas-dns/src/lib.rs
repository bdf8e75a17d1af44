//! PiNAS DNS role: the home-network DNS server (`pinas dns`).
//!
//! It owns port 53 (UDP and TCP) on the box: local records (A, AAAA, CNAME, PTR,
//! wildcards), conditional forwarding of local domains to the router, the DNS switch
//! record (`nas.home` follows the NAS while it is awake and the companion while it
//! sleeps), blocklists in hosts, domain, wildcard and adblock syntax with an allowlist and
//! a denylist, a TTL-honouring cache, forwarding to upstreams with failover, and a query
//! log with statistics, Prometheus metrics and a Pi-hole compatible summary. Its control
//! API is served on the role socket and proxied by the web role as `/api/dns/...`.
//!
//! It does not own the web UI, authentication, or DHCP: the router keeps handing out
//! addresses and is told (by the user) to announce PiNAS as the DNS server.
//!
//! The server is hickory-server with this crate's own [`handler::Handler`]; decisions that
//! run on every query read lock-free snapshots ([`state::DnsState`]).

pub mod api;
pub mod blocking;
pub mod blocklists;
pub mod cache;
pub mod config;
pub mod domains;
pub mod error;
pub mod handler;
pub mod inflight;
pub mod lists;
pub mod metrics;
pub mod networks;
pub mod pihole;
pub mod querylog;
pub mod records;
pub mod rrl;
pub mod rules;
pub mod settings;
pub mod state;
pub mod store;
pub mod testing;
pub mod udp;
pub mod upstream;
pub mod zone;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use std::path::{Path, PathBuf};

use pinas_core::db::Db;
use pinas_core::{Config, EventBus};

pub use api::ApiDoc;
pub use config::DnsConfig;
pub use error::DnsError;
pub use state::DnsState;

/// How long an idle TCP client may keep its connection (RFC 7766 section 6.2.3 suggests
/// seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Binds `udp_sockets` UDP sockets (`SO_REUSEPORT`) and one TCP listener on `addr`. For
/// port 0, UDP picks the port and TCP takes the same; when that port is taken for TCP
/// (by an outgoing connection, say), UDP picks another, up to 16 times.
///
/// # Errors
/// [`DnsError`] naming the address when either bind fails (port in use, no permission).
pub async fn bind(
    addr: SocketAddr,
    udp_sockets: usize,
) -> Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener), DnsError> {
    let fail = |proto: &str, e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        } else {
            ""
        };
        DnsError::unavailable(
            "dns_bind_failed",
            format!("cannot listen on {proto} {addr}: {e}{hint}"),
        )
    };
    let mut tries = 0;
    loop {
        let udp = udp::bind_reuseport(addr, udp_sockets).map_err(|e| fail("UDP", e))?;
        let bound = udp[0].local_addr().map_err(|e| fail("UDP", e))?;
        match tokio::net::TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries < 16 =>
            {
                tries += 1;
            }
            Err(e) => return Err(fail("TCP", e)),
        }
    }
}

/// The parts of a started DNS server, for callers that embed it (tests, `pinas dev`).
pub struct Running {
    pub state: Arc<DnsState>,
    /// The address UDP and TCP listen on (useful with port 0).
    pub addr: SocketAddr,
    server: Server<handler::Handler>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    udp_stop: tokio::sync::watch::Sender<bool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops answering and stops the background tasks.
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.udp_stop.send(true);
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let _ = self.server.shutdown_gracefully().await;
    }
}

/// Starts the DNS server on `listen` with `cfg` and the role's database `db` (see
/// [`store::open`]) in its folder `dir` (`<state_dir>/dns`): loads records, rules, the
/// switch and the local copies of the blocklists, then answers on UDP and TCP, and starts
/// the query-log writer, upstream health checks and the blocklist schedule. Events go to
/// `events`.
///
/// # Errors
/// [`DnsError`] when the configuration is invalid, the database cannot be read, or the
/// address cannot be bound.
pub async fn start(
    db: Db,
    dir: &Path,
    events: EventBus,
    cfg: DnsConfig,
    listen: SocketAddr,
) -> Result<Running, DnsError> {
    let (log_tx, log_rx) = if cfg.query_log {
        let (tx, rx) = tokio::sync::mpsc::channel(querylog::CHANNEL_CAPACITY);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    if let Some(ca) = &cfg.upstream_ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            DnsError::invalid(
                "invalid_config",
                format!("dns.upstream_ca_file {}: {e}", ca.display()),
            )
        })?;
        upstream::set_extra_ca(&pem).map_err(|e| {
            DnsError::invalid(
                "invalid_config",
                format!("dns.upstream_ca_file {}: {e}", ca.display()),
            )
        })?;
    }
    let state = DnsState::new(cfg, db, events, dir.to_path_buf(), log_tx)?;
    {
        let st = state.clone();
        tokio::task::spawn_blocking(move || blocklists::rebuild(&st))
            .await
            .map_err(|e| DnsError::internal(format!("loading blocklists failed: {e}")))??;
    }
    // One UDP loop per core (at most 4): a Pi 5 has 4, a Pi 3B+ 4 slower ones.
    let loops = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let (udp, tcp) = bind(listen, loops).await?;
    let addr = tcp
        .local_addr()
        .map_err(|e| DnsError::internal(e.to_string()))?;
    let h = handler::Handler {
        state: state.clone(),
    };
    let mut server = Server::new(h.clone());
    server.register_listener(tcp, TCP_IDLE, 64);
    let mut tasks = Vec::new();
    let (udp_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut udp_threads = Vec::new();
    for sock in udp {
        let t = udp::spawn_thread(sock, h.clone(), stop_rx.clone())
            .map_err(|e| DnsError::internal(format!("cannot start a DNS thread: {e}")))?;
        udp_threads.push(t);
    }
    tracing::info!(%addr, udp_loops = loops, "DNS listening on UDP and TCP");

    if let Some(rx) = log_rx {
        tasks.push(tokio::spawn(querylog::writer(
            state.db.clone(),
            rx,
            state.cfg.query_log_max_rows,
        )));
        let st = state.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (db, days, max) = (
                    st.db.clone(),
                    st.settings.load().settings.query_log_retention_days as u32,
                    st.cfg.query_log_max_rows,
                );
                let r = tokio::task::spawn_blocking(move || {
                    store::prune_log(&db, days, max, pinas_core::events::now_ms())
                })
                .await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "cannot prune the DNS query log");
                }
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        }));
    }
    {
        let st = state.clone();
        let every = Duration::from_secs(st.cfg.health_check_interval_secs.max(1));
        tasks.push(tokio::spawn(async move {
            let mut last_networks = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                st.forwarder.check_health().await;
                if last_networks.elapsed() >= Duration::from_secs(60) {
                    last_networks = std::time::Instant::now();
                    let st = st.clone();
                    let _ = tokio::task::spawn_blocking(move || st.refresh_networks()).await;
                }
            }
        }));
    }
    tasks.push(tokio::spawn(blocklists::schedule(state.clone())));
    tasks.push(tokio::spawn(blocking::timer(state.clone())));
    // Each thread's allocator arena keeps what bursts freed; hand it back now and then so
    // the resident size stays near what is in use.
    tasks.push(tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            blocklists::release_memory();
        }
    }));
    Ok(Running {
        state,
        addr,
        server,
        tasks,
        udp_stop,
        udp_threads,
    })
}

/// Where `pinas dns` reads `config.toml`: `$CREDENTIALS_DIRECTORY/config.toml` when
/// systemd passed it as a credential (`LoadCredential=config.toml:...`), so the role
/// needs no read access to the state folder's copy; `None` otherwise (the usual
/// `<state_dir>/config.toml`, or `PINAS_CONFIG_PATH`, which wins over both). `env` looks
/// up an environment variable.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if env("PINAS_CONFIG_PATH").is_some() {
        return None;
    }
    let dir = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    let p = Path::new(&dir).join("config.toml");
    p.is_file().then_some(p)
}

/// Runs the DNS server (UDP+TCP on `dns.listen`) and the control API on
/// `<run_dir>/dns.sock` until `shutdown` resolves. Everything it writes is under
/// `<state_dir>/dns/` (created 0700) and the socket: it opens no other role's files, so
/// it can run as its own user with only those two paths writable. Events go to `events`.
///
/// `dns.listen` defaults to `0.0.0.0:53` on the device and `127.0.0.1:5353` when
/// `config.dev` is set.
///
/// # Errors
/// [`DnsError`] when `[dns]` is invalid, the role's folder or database cannot be opened,
/// the port or the socket cannot be bound, or the control socket fails.
pub async fn run(
    config: &Config,
    events: EventBus,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    let cfg: DnsConfig = config
        .section("dns")
        .map_err(|e| DnsError::invalid("invalid_config", e.to_string()))?;
    cfg.validate(config.dev)
        .map_err(|e| DnsError::invalid("invalid_config", e.to_string()))?;
    let listen = cfg
        .listen_addr(config.dev)
        .map_err(|e| DnsError::invalid("invalid_config", e.to_string()))?;
    let dir = store::role_dir(&config.paths.state_dir);
    let legacy = config.db_path();
    let db = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || store::open(&dir, Some(&legacy)))
            .await
            .map_err(|e| DnsError::internal(format!("opening the DNS database failed: {e}")))??
    };
    let running = start(db, &dir, events.clone(), cfg, listen).await?;
    let socket = pinas_core::Paths::new(config).role_socket("dns");
    let router = api::router(running.state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let control = tokio::spawn({
        let events = events.clone();
        let socket = socket.clone();
        async move {
            let r = pinas_core::role::serve_socket(&socket, router, events, async {
                let _ = rx.await;
            })
            .await;
            if let Err(e) = &r {
                // DNS keeps answering without its control API; say so at once.
                tracing::error!(socket = %socket.display(), error = %e, "DNS control API stopped");
            }
            r
        }
    });
    tracing::info!(socket = %socket.display(), "DNS control API listening");
    shutdown.await;
    let _ = tx.send(());
    running.stop().await;
    match control.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DnsError::unavailable(
            "dns_socket_failed",
            format!("control socket {}: {e}", socket.display()),
        )),
        Err(e) => Err(DnsError::internal(format!(
            "control socket task failed: {e}"
        ))),
    }
}
