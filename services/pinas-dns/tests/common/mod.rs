//! Test harness: a pinas-dns server on a loopback port, dnsmasq upstreams on loopback,
//! dig as the client, and the control router called in-process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pinas_core::EventBus;
use pinas_dns::{DnsConfig, Running};
use tower::ServiceExt;

pub use pinas_testkit::which;

/// A free loopback port for both UDP and TCP (best effort).
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A dnsmasq process answering on 127.0.0.1:port with `--address`/`--host-record` lines.
pub struct Dnsmasq {
    pub port: u16,
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq with `args` (e.g. `--address=/up.test/10.9.9.9`); waits until it answers.
    pub fn start(args: &[&str]) -> Dnsmasq {
        let port = free_port();
        let mut cmd = Command::new(which("dnsmasq").expect("dnsmasq"));
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--local-ttl=300",
            &format!("--port={port}"),
        ]);
        if nix_is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("start dnsmasq");
        let d = Dnsmasq { port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("dnsmasq did not start on port {port}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A running pinas-dns with its state folder (`<dir>/dns`) and event bus.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub events: EventBus,
    pub running: Option<Running>,
    pub addr: SocketAddr,
}

impl Server {
    pub async fn start(cfg: DnsConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, cfg).await
    }

    pub async fn start_in(dir: tempfile::TempDir, cfg: DnsConfig) -> Server {
        let events = EventBus::new(None);
        let state = dir.path().join("dns");
        let db = pinas_dns::store::open(&state, None).unwrap();
        let running = pinas_dns::start(
            db,
            &state,
            events.clone(),
            cfg,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let addr = running.addr;
        Server {
            dir,
            events,
            running: Some(running),
            addr,
        }
    }

    pub fn state(&self) -> &Arc<pinas_dns::DnsState> {
        &self.running.as_ref().unwrap().state
    }

    /// Calls the control API in-process as an administrator (the headers the web role
    /// sets); returns status and JSON body.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        self.api_as(Some(("admin", "admin")), method, path, body)
            .await
    }

    /// As [`Server::api`], with the headers the web role adds for a logged-in user
    /// (`x-pinas-user`, `x-pinas-role`) when `user` is `Some((name, role))`, and none
    /// when it is `None`.
    pub async fn api_as(
        &self,
        user: Option<(&str, &str)>,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let router = pinas_dns::api::router(self.state().clone());
        let mut req = Request::builder().method(method).uri(path);
        if let Some((name, role)) = user {
            req = req
                .header("x-pinas-user", name)
                .header("x-pinas-role", role);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = router.oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    /// Runs dig against this server; returns its whole output.
    pub async fn dig(&self, args: &[&str]) -> String {
        dig(self.addr, args).await
    }

    /// `dig +short name type`, answers as lines.
    pub async fn short(&self, name: &str, qtype: &str) -> Vec<String> {
        self.dig(&["+short", name, qtype])
            .await
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// Runs `dig @addr -p port +tries=1 +time=3 args...` on a blocking thread.
pub async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let mut a = vec![
        format!("@{}", addr.ip()),
        "-p".into(),
        addr.port().to_string(),
        "+tries=1".into(),
        "+time=3".into(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let out = Command::new("dig").args(&a).output().expect("run dig");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// The status word of a full dig output (`NOERROR`, `NXDOMAIN`, ...).
pub fn status_of(out: &str) -> String {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string()
}

/// Answer-section lines of a full dig output, as (name, ttl, type, data).
pub fn answers(out: &str) -> Vec<(String, u32, String, String)> {
    let mut in_answer = false;
    let mut v = Vec::new();
    for line in out.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
            continue;
        }
        if in_answer {
            if line.trim().is_empty() {
                break;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 5 {
                v.push((
                    f[0].to_string(),
                    f[1].parse().unwrap_or(0),
                    f[3].to_string(),
                    f[4..].join(" "),
                ));
            }
        }
    }
    v
}

/// The blocklists the list test loads: the real ones in `$PINAS_TEST_DATA/blocklists`
/// (by default `../shared/data/blocklists` beside the repository) when they are there;
/// otherwise lists with the same six file names, in the same four syntaxes and of about
/// the same sizes, written into `scratch`, so that the test runs on every machine. It
/// says on stderr which it used. The folder returned holds
/// `anudeepnd-{adservers,coinminer,facebook}.hosts`, `hagezi-light.{adblock,wildcard}`
/// and `stevenblack.domains`.
pub fn blocklists(scratch: &Path) -> PathBuf {
    let data = match std::env::var_os("PINAS_TEST_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let real = data.join("blocklists");
    if real.is_dir() {
        eprintln!("blocklists: the real lists in {}", real.display());
        return real.canonicalize().unwrap();
    }
    eprintln!(
        "blocklists: {} is absent; using generated lists in the same syntaxes",
        real.display()
    );
    let dir = scratch.join("blocklists");
    std::fs::create_dir_all(&dir).unwrap();
    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{prefix}{i}.t{}.example", i % 97))
            .collect()
    };
    let write = |file: &str, header: &str, lines: Vec<String>| {
        let mut text = String::from(header);
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        std::fs::write(dir.join(file), text).unwrap();
    };
    let hosts = |prefix: &str, n: usize| {
        names(prefix, n)
            .into_iter()
            .map(|d| format!("0.0.0.0 {d}"))
            .collect::<Vec<_>>()
    };
    let hosts_header = "# Title: generated test list\n127.0.0.1 localhost\n::1 localhost\n\n";
    write(
        "anudeepnd-adservers.hosts",
        hosts_header,
        hosts("ads", 42_500),
    );
    write(
        "anudeepnd-coinminer.hosts",
        hosts_header,
        hosts("coin", 5_900),
    );
    write("anudeepnd-facebook.hosts", hosts_header, hosts("fb", 4_000));
    let light = names("track", 122_000);
    write(
        "hagezi-light.adblock",
        "[Adblock Plus]\n! Title: generated test list\n",
        light.iter().map(|d| format!("||{d}^")).collect(),
    );
    write(
        "hagezi-light.wildcard",
        "# Title: generated test list\n",
        light.iter().map(|d| format!("*.{d}")).collect(),
    );
    let mut domains = names("ads", 40_000);
    domains.extend(names("other", 100_000));
    write("stevenblack.domains", "# generated test list\n", domains);
    dir
}
