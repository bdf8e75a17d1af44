//! A fake Tapo P110 on loopback for tests, the benchmark and `pinas dev --demo-plug`:
//! an HTTP server that speaks real KLAP ([`crate::klap`]: both handshakes, the session
//! cookie with its timeout, AES-CBC with the derived key and IV, sequence numbers and
//! signatures) and answers with a [`Fixture`]'s device responses, with the live values
//! (power, energy counters, relay) from a power curve the caller controls.
//!
//! Switches for tests: [`FakePlug::drop_sessions`] (the next request gets 403, as from a
//! plug that restarted its session table), [`FakePlug::set_online`] (offline: the port
//! refuses new connections and open ones never answer, as a plug that left the Wi-Fi),
//! [`FakePlug::reset_counters`] (midnight, a new month, a reboot). It answers LAN
//! discovery too ([`FakePlug::serve_discovery`]) with the fixture's captured answer.
//!
//! It is not a device emulator: methods other than the fixture's answer error code -1.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::discover;
use crate::fixtures::Fixture;
use crate::klap::{self, Cipher, KlapVersion};

/// A power curve: watts at a time (seconds since the fake started).
pub type Curve = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// How a fake plug is made.
#[derive(Clone)]
pub struct FakeOptions {
    pub fixture: Fixture,
    /// The KLAP version it speaks; `None`: the fixture's ([`Fixture::klap_version`]).
    pub version: Option<KlapVersion>,
    /// The Tapo account it accepts.
    pub email: String,
    pub password: String,
    /// The session lifetime it announces (`TIMEOUT`) and enforces.
    pub session_timeout: Duration,
    /// Where it listens; port 0 picks a free one.
    pub addr: SocketAddr,
}

impl FakeOptions {
    /// A plug at a free loopback port answering with `fixture` for `email`/`password`,
    /// 24 h sessions.
    pub fn new(fixture: Fixture, email: &str, password: &str) -> FakeOptions {
        FakeOptions {
            fixture,
            version: None,
            email: email.into(),
            password: password.into(),
            session_timeout: Duration::from_secs(86_400),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

struct Device {
    curve: Curve,
    started: Instant,
    last: Instant,
    today_wh: f64,
    month_wh: f64,
    on: bool,
}

impl Device {
    fn power_at(&self, t: Instant) -> f64 {
        if self.on {
            (self.curve)(t.duration_since(self.started).as_secs_f64()).max(0.0)
        } else {
            0.0
        }
    }

    fn advance(&mut self) -> f64 {
        let now = Instant::now();
        let p = self.power_at(now);
        let wh = p * now.duration_since(self.last).as_secs_f64() / 3600.0;
        self.today_wh += wh;
        self.month_wh += wh;
        self.last = now;
        p
    }
}

struct Session {
    cipher: Cipher,
    created: Instant,
    last_seq: Option<i32>,
}

type Seeds = ([u8; 16], [u8; 16]);

struct Shared {
    fixture: Fixture,
    version: KlapVersion,
    auth: Vec<u8>,
    timeout: Duration,
    device: Mutex<Device>,
    /// Seeds of handshakes begun (local, remote), by session id.
    pending: Mutex<HashMap<String, Seeds>>,
    sessions: Mutex<HashMap<String, Session>>,
    online: AtomicBool,
    handshakes: AtomicU64,
    requests: AtomicU64,
    probes: AtomicU64,
}

/// A running fake plug. Dropping it stops the server.
pub struct FakePlug {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for FakePlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePlug")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePlug {
    fn drop(&mut self) {
        if let Some(h) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
    }
}

impl FakePlug {
    /// Starts the plug on `opts.addr`, drawing a constant 0 W until told otherwise.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(opts: FakeOptions) -> std::io::Result<FakePlug> {
        let version = opts.version.unwrap_or_else(|| opts.fixture.klap_version());
        let usage = opts.fixture.result("get_energy_usage");
        let counter = |k: &str| {
            usage
                .and_then(|u| u.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        };
        let now = Instant::now();
        let shared = Arc::new(Shared {
            auth: klap::auth_hash(version, &opts.email, &opts.password),
            version,
            timeout: opts.session_timeout,
            device: Mutex::new(Device {
                curve: Arc::new(|_| 0.0),
                started: now,
                last: now,
                today_wh: counter("today_energy"),
                month_wh: counter("month_energy"),
                // Some captured plugs were switched off and would draw nothing: start on.
                on: true,
            }),
            fixture: opts.fixture,
            pending: Mutex::default(),
            sessions: Mutex::default(),
            online: AtomicBool::new(true),
            handshakes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            probes: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind(opts.addr).await?;
        let addr = listener.local_addr()?;
        let plug = FakePlug {
            addr,
            shared,
            server: Mutex::new(None),
        };
        plug.serve(listener);
        Ok(plug)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/app/handshake1", post(handshake1))
            .route("/app/handshake2", post(handshake2))
            .route("/app/request", post(request))
            .with_state(self.shared.clone());
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    /// `host:port` to give [`crate::klap::PlugClient::new`].
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The KLAP version it speaks.
    pub fn version(&self) -> KlapVersion {
        self.shared.version
    }

    /// Draws `watts` from now on (while switched on).
    pub fn set_power_w(&self, watts: f64) {
        self.set_curve(Arc::new(move |_| watts));
    }

    /// Draws `curve(t)` watts, `t` in seconds since the plug started.
    pub fn set_curve(&self, curve: Curve) {
        let mut d = self.shared.device.lock().unwrap_or_else(|e| e.into_inner());
        d.advance();
        d.curve = curve;
    }

    /// The energy counters now: `(today_wh, month_wh)` as the plug reports them.
    pub fn counters(&self) -> (i64, i64) {
        let mut d = self.shared.device.lock().unwrap_or_else(|e| e.into_inner());
        d.advance();
        (d.today_wh as i64, d.month_wh as i64)
    }

    /// Sets the counters to zero: `today` at midnight, both at a new month or a reboot.
    pub fn reset_counters(&self, today: bool, month: bool) {
        let mut d = self.shared.device.lock().unwrap_or_else(|e| e.into_inner());
        d.advance();
        if today {
            d.today_wh = 0.0;
        }
        if month {
            d.month_wh = 0.0;
        }
    }

    /// Whether the relay is on.
    pub fn is_on(&self) -> bool {
        self.shared
            .device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on
    }

    /// Forgets every session: the next request with an old cookie gets 403.
    pub fn drop_sessions(&self) {
        self.shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Takes the plug off the network (`false`: new connections are refused, requests on
    /// open ones never answer) or back on (`true`, same port, sessions forgotten).
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub async fn set_online(&self, online: bool) -> std::io::Result<()> {
        let was = self.shared.online.swap(online, Ordering::SeqCst);
        if was == online {
            return Ok(());
        }
        if !online {
            let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(h) = server {
                h.abort();
                let _ = h.await;
            }
            self.drop_sessions();
            return Ok(());
        }
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error = %e, "fake plug: port still busy");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.serve(listener);
        Ok(())
    }

    /// Handshakes begun (handshake1 requests).
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::Relaxed)
    }

    /// Encrypted requests answered.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Answers discovery probes ([`crate::discover`]) arriving on `socket` (bound to
    /// `0.0.0.0:20002` to hear broadcasts) with the fixture's `discovery_result`, its
    /// `ip` set to `ip`, from that socket, as a plug does. Packets that are not a valid
    /// probe get no answer, nor does anything while the plug is offline. The task ends
    /// when the plug is dropped.
    ///
    /// # Errors
    /// When `socket` cannot be handed to the runtime.
    pub fn serve_discovery(&self, socket: std::net::UdpSocket, ip: IpAddr) -> std::io::Result<()> {
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let shared = Arc::downgrade(&self.shared);
        let result = self
            .shared
            .fixture
            .result("discovery_result")
            .cloned()
            .unwrap_or_else(|| json!({"device_model": "P110(EU)", "device_type": "SMART.TAPOPLUG", "mac": "00-00-00-00-00-00", "mgt_encrypt_schm": {"encrypt_type": "KLAP", "http_port": 80, "lv": 2}}));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Some(s) = shared.upgrade() else { return };
                let p = &buf[..n];
                if !discover::packet_ok(p) || p[2..4] != [0, 1] {
                    continue;
                }
                s.probes.fetch_add(1, Ordering::Relaxed);
                if !s.online.load(Ordering::SeqCst) {
                    continue;
                }
                let _ = socket.send_to(&discover::answer(&result, ip), from).await;
            }
        });
        Ok(())
    }

    /// Valid discovery probes received (answered or not).
    pub fn discovery_probes(&self) -> u64 {
        self.shared.probes.load(Ordering::Relaxed)
    }
}

fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|p| p.trim().strip_prefix("TP_SESSIONID=").map(str::to_string))
}

async fn gate(s: &Shared) {
    if !s.online.load(Ordering::SeqCst) {
        // A plug off the network never answers.
        std::future::pending::<()>().await;
    }
}

async fn handshake1(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    gate(&s).await;
    s.handshakes.fetch_add(1, Ordering::Relaxed);
    let Ok(local) = <[u8; 16]>::try_from(body.as_ref()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let remote: [u8; 16] = rand::random();
    let id = hex::encode(rand::random::<[u8; 16]>()).to_uppercase();
    let proof = klap::handshake1_proof(s.version, &local, &remote, &s.auth);
    s.pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), (local, remote));
    let mut out = remote.to_vec();
    out.extend_from_slice(&proof);
    (
        [(
            header::SET_COOKIE,
            format!("TP_SESSIONID={id};TIMEOUT={}", s.timeout.as_secs()),
        )],
        out,
    )
        .into_response()
}

async fn handshake2(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    gate(&s).await;
    let Some(id) = cookie_id(&headers) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let Some((local, remote)) = s
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
    else {
        return StatusCode::FORBIDDEN.into_response();
    };
    if klap::handshake2_proof(s.version, &local, &remote, &s.auth).as_slice() != body.as_ref() {
        return StatusCode::FORBIDDEN.into_response();
    }
    s.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Session {
            cipher: Cipher::new(&local, &remote, &s.auth),
            created: Instant::now(),
            last_seq: None,
        },
    );
    StatusCode::OK.into_response()
}

#[derive(serde::Deserialize)]
struct Seq {
    seq: i32,
}

async fn request(
    State(s): State<Arc<Shared>>,
    Query(q): Query<Seq>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gate(&s).await;
    let Some(id) = cookie_id(&headers) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let cipher = {
        let mut sessions = s.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let expired = sessions
            .get(&id)
            .is_none_or(|x| x.created.elapsed() >= s.timeout);
        if expired {
            sessions.remove(&id);
            return StatusCode::FORBIDDEN.into_response();
        }
        let session = sessions.get_mut(&id).expect("checked above");
        // A replayed or reordered message is refused.
        if session.last_seq.is_some_and(|l| q.seq.wrapping_sub(l) <= 0) {
            return StatusCode::BAD_REQUEST.into_response();
        }
        let Ok(plain) = session.cipher.open(q.seq, &body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        session.last_seq = Some(q.seq);
        (session.cipher.clone(), plain)
    };
    let (cipher, plain) = cipher;
    let Ok(req) = serde_json::from_slice::<Value>(&plain) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    s.requests.fetch_add(1, Ordering::Relaxed);
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let answer = answer(&s, method, req.get("params"));
    let text = serde_json::to_vec(&answer).expect("JSON");
    cipher.seal(q.seq, &text).into_response()
}

fn answer(s: &Shared, method: &str, params: Option<&Value>) -> Value {
    let mut d = s.device.lock().unwrap_or_else(|e| e.into_inner());
    let watts = d.advance();
    let result = match method {
        "set_device_info" => {
            if let Some(on) = params
                .and_then(|p| p.get("device_on"))
                .and_then(Value::as_bool)
            {
                d.on = on;
            }
            return json!({"error_code": 0});
        }
        "get_energy_usage" => s.fixture.result(method).cloned().map(|mut u| {
            u["current_power"] = json!((watts * 1000.0).round() as i64);
            u["today_energy"] = json!(d.today_wh as i64);
            u["month_energy"] = json!(d.month_wh as i64);
            u
        }),
        "get_current_power" => s
            .fixture
            .result(method)
            .map(|_| json!({"current_power": watts.round() as i64})),
        "get_device_info" => s.fixture.result(method).cloned().map(|mut i| {
            i["device_on"] = json!(d.on);
            i
        }),
        "get_device_usage" => s.fixture.result(method).cloned().map(|mut u| {
            u["power_usage"]["today"] = json!(d.today_wh as i64);
            u
        }),
        other => s.fixture.result(other).cloned(),
    };
    match result {
        Some(r) => json!({"error_code": 0, "result": r}),
        None => json!({"error_code": -1}),
    }
}
