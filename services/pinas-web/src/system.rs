//! System information, services, health, Prometheus metrics, power actions, event log.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pinas_core::auth::CurrentUser;
use pinas_core::{Error, Event};
use serde::{Deserialize, Serialize};
use sysinfo::{Components, CpuRefreshKind, MemoryRefreshKind, Networks, RefreshKind, System};

use crate::state::{AppState, ServiceState, ServiceStatus};

/// Memory in bytes.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Memory {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

/// One temperature sensor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Temperature {
    pub label: String,
    pub celsius: f32,
}

/// Byte counters of one network interface since boot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The periodic part of system information (also the `system.stats.update` payload).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StatsSnapshot {
    /// Whole-system CPU use over the last sampling interval, 0–100.
    pub cpu_percent: f32,
    pub load_avg: [f64; 3],
    pub memory: Memory,
    pub temperatures: Vec<Temperature>,
    pub network: Vec<InterfaceCounters>,
    pub uptime_secs: u64,
}

/// Samples CPU, memory, sensors and interfaces; CPU % needs two samples, so one sampler
/// lives for the process and is sampled every 2 s.
pub struct Sampler {
    sys: System,
    networks: Networks,
    components: Components,
}

impl Sampler {
    pub fn new() -> Self {
        Sampler {
            sys: System::new_with_specifics(
                RefreshKind::nothing()
                    .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                    .with_memory(MemoryRefreshKind::nothing().with_ram()),
            ),
            networks: Networks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
        }
    }

    pub fn sample(&mut self) -> StatsSnapshot {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        self.networks.refresh(true);
        self.components.refresh(false);
        let load = System::load_average();
        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let mut network: Vec<_> = self
            .networks
            .iter()
            .map(|(name, d)| InterfaceCounters {
                name: name.clone(),
                rx_bytes: d.total_received(),
                tx_bytes: d.total_transmitted(),
            })
            .collect();
        network.sort_by(|a, b| a.name.cmp(&b.name));
        StatsSnapshot {
            cpu_percent: self.sys.global_cpu_usage(),
            load_avg: [load.one, load.five, load.fifteen],
            memory: Memory {
                total_bytes: total,
                used_bytes: total.saturating_sub(available),
                available_bytes: available,
            },
            temperatures: self
                .components
                .iter()
                .filter_map(|c| {
                    Some(Temperature {
                        label: c.label().to_string(),
                        celsius: c.temperature()?,
                    })
                })
                .collect(),
            network,
            uptime_secs: System::uptime(),
        }
    }
}

/// `GET /api/system/info` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemInfo {
    pub version: String,
    pub hostname: String,
    /// e.g. `Raspberry Pi 5 Model B Rev 1.0`, from the device tree or DMI.
    pub board_model: String,
    pub kernel: String,
    pub roles: Vec<String>,
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// The board's model: device-tree model on ARM boards, DMI product name elsewhere.
pub fn board_model() -> String {
    for p in [
        "/proc/device-tree/model",
        "/sys/firmware/devicetree/base/model",
        "/sys/class/dmi/id/product_name",
    ] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "unknown".into()
}

/// Host name, board, kernel, uptime, CPU, load, memory, temperatures, interface counters.
#[utoipa::path(get, path = "/api/system/info", tag = "system",
    responses((status = 200, body = SystemInfo), (status = 401, body = pinas_core::error::ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Json<SystemInfo> {
    let stats = state
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let host = state.host.read().unwrap_or_else(|e| e.into_inner()).clone();
    Json(SystemInfo {
        version: pinas_core::VERSION.into(),
        hostname: host.hostname,
        board_model: state.board_model.clone(),
        kernel: state.kernel.clone(),
        roles: host.roles,
        stats,
    })
}

/// The services PiNAS manages and their state: the roles of [`pinas_core::roles::ROLES`]
/// that this box's setup roles run (every role before setup), in registry order, then
/// what the in-process roles report (Samba, NFS). A role with a socket is `running`
/// when its socket accepts a connection, `stopped` otherwise.
#[utoipa::path(get, path = "/api/system/services", tag = "system",
    responses((status = 200, body = [ServiceStatus])))]
pub async fn services(State(state): State<AppState>) -> Json<Vec<ServiceStatus>> {
    use pinas_core::roles::{Process, SetupRole, ROLES};
    let setup: Vec<SetupRole> = {
        let host = state.host.read().unwrap_or_else(|e| e.into_inner());
        host.roles
            .iter()
            .filter_map(|r| SetupRole::parse(r))
            .collect()
    };
    let mut out = Vec::new();
    for role in ROLES.iter().filter(|r| r.enabled_for(&setup)) {
        match role.process {
            // This process.
            Process::Own { socket: false, .. } if role.name == "web" => {
                out.push(ServiceStatus {
                    name: role.name.into(),
                    state: ServiceState::Running,
                    detail: format!("API on {}", state.ctx.config.web.bind_address),
                });
            }
            Process::Own {
                socket: true, unit, ..
            } => {
                let sock = state.ctx.paths.role_socket(role.name);
                let up = tokio::net::UnixStream::connect(&sock).await.is_ok();
                out.push(ServiceStatus {
                    name: role.name.into(),
                    state: if up {
                        ServiceState::Running
                    } else {
                        ServiceState::Stopped
                    },
                    detail: if up {
                        format!("control socket {}", sock.display())
                    } else {
                        format!("not answering on {} ({unit})", sock.display())
                    },
                });
            }
            // In-web roles report their daemons through the sources below.
            Process::Own { .. } | Process::InWeb => {}
        }
    }
    for src in &state.services {
        out.extend(src.services());
    }
    Json(out)
}

/// `GET /api/system/health` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
    pub version: String,
    pub setup_done: bool,
}

/// Liveness and readiness; no login needed.
#[utoipa::path(get, path = "/api/system/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = state
        .ctx
        .db
        .conn()
        .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
        .is_ok();
    let body = Health {
        status: if db_ok { "ok" } else { "database_unavailable" }.into(),
        version: pinas_core::VERSION.into(),
        setup_done: state.is_setup_done(),
    };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// The system figures of `s` as an OpenMetrics registry (metric names as exposed:
/// `pinas_build_info`, `pinas_up`, `pinas_cpu_usage_percent`, `pinas_load1`,
/// `pinas_memory_total_bytes`, `pinas_memory_available_bytes`, `pinas_uptime_seconds`,
/// `pinas_network_receive_bytes_total` and `pinas_network_transmit_bytes_total` per
/// `interface`, `pinas_temperature_celsius` per `sensor`).
fn metrics_registry(s: &StatsSnapshot) -> prometheus_client::registry::Registry {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
    use prometheus_client::metrics::info::Info;
    use std::sync::atomic::AtomicU64;

    type Labels = Vec<(&'static str, String)>;
    // Help texts without a final period: the encoder adds one.
    let mut r = prometheus_client::registry::Registry::default();
    r.register(
        "pinas_build",
        "PiNAS version",
        Info::new(vec![("version", pinas_core::VERSION)]),
    );
    r.register(
        "pinas_up",
        "1 when the web role is serving",
        ConstGauge::new(1),
    );
    r.register(
        "pinas_cpu_usage_percent",
        "Whole-system CPU use, 0-100",
        ConstGauge::new(f64::from(s.cpu_percent)),
    );
    r.register(
        "pinas_load1",
        "1-minute load average",
        ConstGauge::new(s.load_avg[0]),
    );
    let bytes = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    r.register(
        "pinas_memory_total_bytes",
        "Total RAM",
        bytes(s.memory.total_bytes),
    );
    r.register(
        "pinas_memory_available_bytes",
        "RAM available for new work",
        bytes(s.memory.available_bytes),
    );
    r.register(
        "pinas_uptime_seconds",
        "Time since boot",
        bytes(s.uptime_secs),
    );
    // Counters are named without `_total`: the exposition adds it to each sample.
    for (name, help, value) in [
        (
            "pinas_network_receive_bytes",
            "Bytes received per interface",
            (|n: &InterfaceCounters| n.rx_bytes) as fn(&InterfaceCounters) -> u64,
        ),
        (
            "pinas_network_transmit_bytes",
            "Bytes sent per interface",
            |n: &InterfaceCounters| n.tx_bytes,
        ),
    ] {
        // Totals since boot, read from the kernel: a fresh counter each scrape holds them.
        let counters = Family::<Labels, Counter>::default();
        for n in &s.network {
            counters
                .get_or_create(&vec![("interface", n.name.clone())])
                .inc_by(value(n));
        }
        r.register(name, help, counters);
    }
    let temps = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for t in &s.temperatures {
        temps
            .get_or_create(&vec![("sensor", t.label.clone())])
            .set(f64::from(t.celsius));
    }
    r.register("pinas_temperature_celsius", "Sensor temperature", temps);
    r
}

/// The system figures in the OpenMetrics text format (which Prometheus reads), encoded
/// by `prometheus-client`.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, Error> {
    let s = state
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut out = String::with_capacity(2048);
    prometheus_client::encoding::text::encode(&mut out, &metrics_registry(&s))
        .map_err(|e| Error::internal(format!("cannot encode metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    ))
}

async fn power_action(
    state: &AppState,
    user: &CurrentUser,
    verb: &str,
) -> Result<StatusCode, Error> {
    user.require_admin()?;
    if state.ctx.config.dev {
        return Err(Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_in_dev",
            format!(
                "{verb} is not available in pinas dev: it would {verb} the development machine"
            ),
        ));
    }
    state.ctx.events.emit(
        "notification.new",
        serde_json::json!({"level":"warning","title":format!("System {verb}"),"message":format!("{} asked for a {verb}", user.0.name)}),
    );
    let status = tokio::process::Command::new("systemctl")
        .arg(if verb == "reboot" {
            "reboot"
        } else {
            "poweroff"
        })
        .arg("--no-block")
        .status()
        .await
        .map_err(|e| Error::internal(format!("cannot run systemctl: {e}")))?;
    if !status.success() {
        return Err(Error::internal(format!(
            "systemctl {verb} failed: {status}"
        )));
    }
    Ok(StatusCode::ACCEPTED)
}

/// Reboots the device (through systemd). 501 in `pinas dev`.
#[utoipa::path(post, path = "/api/system/reboot", tag = "system",
    responses((status = 202, description = "Rebooting"), (status = 501, body = pinas_core::error::ErrorBody)))]
pub async fn reboot(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
) -> Result<StatusCode, Error> {
    power_action(&state, &user, "reboot").await
}

/// Powers the device off (through systemd). 501 in `pinas dev`.
#[utoipa::path(post, path = "/api/system/shutdown", tag = "system",
    responses((status = 202, description = "Shutting down"), (status = 501, body = pinas_core::error::ErrorBody)))]
pub async fn shutdown(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
) -> Result<StatusCode, Error> {
    power_action(&state, &user, "shutdown").await
}

/// `GET /api/events` query.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// How many events, newest first (1–1000, default 100).
    pub limit: Option<u32>,
}

/// The event log, newest first.
#[utoipa::path(get, path = "/api/events", tag = "system", params(EventsQuery),
    responses((status = 200, body = [Event])))]
pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, Error> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.ctx.events.recent(limit)?))
}
