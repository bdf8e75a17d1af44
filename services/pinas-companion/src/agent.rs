//! `pinas agent`: the big NAS's side of the handshake, for a PiNAS `nas` box or any
//! Debian-like Linux.
//!
//! At shutdown ([`Agent::going_offline`]) it sends the NAS's snapshot ([`collect`]) and
//! `nas-going-offline`, and waits for the companion's acknowledgement, which comes once
//! the DNS switch points at the companion; at boot ([`Agent::coming_online`]) it sends
//! `nas-coming-online`. Every call gives up after the configured timeout: a shutdown is
//! never held longer than that, whatever the companion does.
//!
//! Its settings come from `/etc/pinas/agent.toml`:
//!
//! ```toml
//! companion_url = "http://192.168.1.11"      # the companion's web address
//! token_file = "/etc/pinas/agent-token"      # the pairing token (0600), one line
//! timeout_secs = 30                          # longest wait for an answer
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::snapshot::{Disk, Service, Share, Snapshot, SystemInfo};

/// Where the agent reads its settings by default.
pub const CONFIG_PATH: &str = "/etc/pinas/agent.toml";

/// The agent's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The companion's web address, e.g. `http://192.168.1.11` (no path).
    pub companion_url: String,
    /// The file holding the pairing token (its first line).
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// Longest wait for one answer, seconds (1 to 600; default 30).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_token_file() -> PathBuf {
    "/etc/pinas/agent-token".into()
}

fn default_timeout() -> u64 {
    30
}

impl AgentConfig {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// A message naming the file and the bad key or value.
    pub fn load(path: &Path) -> Result<AgentConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let c: AgentConfig = toml::from_str(&text)
            .map_err(|e| format!("{} is not valid: {}", path.display(), e.message()))?;
        let url = url::Url::parse(&c.companion_url).map_err(|e| {
            format!(
                "{}: companion_url {:?}: {e}",
                path.display(),
                c.companion_url
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{}: companion_url {:?} is not an http:// or https:// address",
                path.display(),
                c.companion_url
            ));
        }
        if !(1..=600).contains(&c.timeout_secs) {
            return Err(format!(
                "{}: timeout_secs {} is not between 1 and 600",
                path.display(),
                c.timeout_secs
            ));
        }
        Ok(c)
    }
}

/// A client of one companion.
pub struct Agent {
    base: String,
    token: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl Agent {
    /// An agent for `cfg`; reads the token file.
    ///
    /// # Errors
    /// A message when the token file cannot be read or is empty.
    pub fn new(cfg: &AgentConfig) -> Result<Agent, String> {
        let token = std::fs::read_to_string(&cfg.token_file)
            .map_err(|e| {
                format!(
                    "cannot read the pairing token {}: {e}",
                    cfg.token_file.display()
                )
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(format!(
                "{} holds no pairing token",
                cfg.token_file.display()
            ));
        }
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("pinas-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Agent {
            base: cfg.companion_url.trim_end_matches('/').to_string(),
            token,
            timeout,
            client,
        })
    }

    async fn post(&self, path: &str, body: Option<String>) -> Result<serde_json::Value, String> {
        let url = format!("{}/api/companion/{path}", self.base);
        let mut req = self.client.post(&url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("{url}: no answer within {} s", self.timeout.as_secs())
            } else {
                format!("{url}: {e}")
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: the answer is not JSON: {e}"))
    }

    /// Sends the snapshot.
    ///
    /// # Errors
    /// What went wrong (no answer in time, refused, too large), for the log.
    pub async fn send_snapshot(&self, snapshot: &Snapshot) -> Result<(), String> {
        let body = serde_json::to_string(snapshot).map_err(|e| e.to_string())?;
        self.post("snapshot", Some(body)).await.map(|_| ())
    }

    /// Sends the snapshot (a failure is logged, not fatal), then `nas-going-offline`,
    /// and returns once the companion acknowledges it (the DNS switch points at the
    /// companion). The whole call takes at most twice the timeout.
    ///
    /// # Errors
    /// When the acknowledgement does not come: the caller logs it and lets the shutdown
    /// go on.
    pub async fn going_offline(&self, snapshot: &Snapshot) -> Result<serde_json::Value, String> {
        if let Err(e) = self.send_snapshot(snapshot).await {
            tracing::warn!(error = %e, "the companion did not take the snapshot");
        }
        let ack = self.post("nas-going-offline", None).await?;
        if ack["acknowledged"] != true {
            return Err(format!("the companion did not acknowledge: {ack}"));
        }
        Ok(ack)
    }

    /// Sends `nas-coming-online`, retrying every 2 s while the network comes up, for at
    /// most the timeout.
    ///
    /// # Errors
    /// The last failure when no acknowledgement came in time.
    pub async fn coming_online(&self) -> Result<serde_json::Value, String> {
        let start = Instant::now();
        loop {
            match self.post("nas-coming-online", None).await {
                Ok(ack) if ack["acknowledged"] == true => return Ok(ack),
                Ok(other) => return Err(format!("the companion did not acknowledge: {other}")),
                Err(e) if start.elapsed() + Duration::from_secs(2) < self.timeout => {
                    tracing::info!(error = %e, "companion not reached yet; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The snapshot of this machine now: host name, OS, kernel, uptime, the filesystems
/// mounted from block devices, Samba shares (from `smb_conf`), the state of common NAS
/// services (by `systemctl is-active`, when there is a systemd).
pub fn collect(smb_conf: &Path) -> Snapshot {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nas".into());
    let os = read("/etc/os-release").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
    });
    let kernel = read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string());
    let uptime_secs =
        read("/proc/uptime").and_then(|t| t.split('.').next().and_then(|s| s.parse().ok()));
    let mut disks = Vec::new();
    for line in read("/proc/mounts").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(mp)) = (f.next(), f.next()) else {
            continue;
        };
        if !dev.starts_with("/dev/") || disks.iter().any(|d: &Disk| d.mount_point == mp) {
            continue;
        }
        let mp = mp.replace("\\040", " ");
        if let Ok(st) = nix::sys::statvfs::statvfs(mp.as_str()) {
            // The block counts are 32-bit on some 32-bit targets.
            #[allow(clippy::unnecessary_cast)]
            let (frag, blocks, free) = (
                st.fragment_size() as u64,
                st.blocks() as u64,
                st.blocks_free() as u64,
            );
            let size = blocks * frag;
            let free = free * frag;
            if size > 0 {
                disks.push(Disk {
                    mount_point: mp,
                    size_bytes: size,
                    used_bytes: size.saturating_sub(free),
                });
            }
        }
    }
    Snapshot {
        schema_version: 1,
        hostname,
        taken_at_ms: Some(pinas_core::events::now_ms()),
        system: Some(SystemInfo {
            os,
            kernel,
            uptime_secs,
        }),
        disks,
        shares: smb_shares(&std::fs::read_to_string(smb_conf).unwrap_or_default()),
        services: services(),
        events: Vec::new(),
    }
}

/// The shares of an smb.conf: every section but the special ones, with its `path`.
fn smb_shares(conf: &str) -> Vec<Share> {
    let mut out: Vec<Share> = Vec::new();
    for line in conf.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !matches!(
                name.to_ascii_lowercase().as_str(),
                "global" | "homes" | "printers" | "print$"
            ) {
                out.push(Share {
                    name: name.to_string(),
                    path: None,
                    protocol: Some("smb".into()),
                });
            }
        } else if let Some((k, v)) = line.split_once('=') {
            if k.trim().eq_ignore_ascii_case("path") {
                if let Some(s) = out.last_mut().filter(|s| s.path.is_none()) {
                    s.path = Some(v.trim().to_string());
                }
            }
        }
    }
    out
}

/// The state of the services a NAS commonly runs, by `systemctl is-active`.
fn services() -> Vec<Service> {
    const UNITS: [&str; 6] = [
        "smbd",
        "nfs-server",
        "ssh",
        "pinas-web",
        "syncthing",
        "docker",
    ];
    let Ok(out) = std::process::Command::new("systemctl")
        .arg("is-active")
        .args(UNITS)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .zip(UNITS)
        .filter(|(state, _)| *state != "inactive" && *state != "unknown")
        .map(|(state, name)| Service {
            name: name.to_string(),
            state: state.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_come_from_smb_conf_sections() {
        let s = smb_shares("[global]\nworkgroup = W\n[media]\n path = /srv/media\n[homes]\n[Backup]\npath=/srv/b\n");
        let names: Vec<_> = s
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_deref()))
            .collect();
        assert_eq!(
            names,
            [("media", Some("/srv/media")), ("Backup", Some("/srv/b"))]
        );
    }

    #[test]
    fn this_machine_gives_a_valid_snapshot() {
        let s = collect(Path::new("/nonexistent"));
        let body = serde_json::to_vec(&s).unwrap();
        crate::snapshot::accept(&body, 0).unwrap();
        assert!(!s.hostname.is_empty());
        assert!(s.system.unwrap().kernel.is_some());
    }

    #[test]
    fn the_config_file_is_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agent.toml");
        std::fs::write(&p, "companion_url = \"ftp://x\"\n").unwrap();
        assert!(AgentConfig::load(&p).unwrap_err().contains("ftp://x"));
        std::fs::write(
            &p,
            "companion_url = \"http://10.0.0.11\"\ntimeout_secs = 0\n",
        )
        .unwrap();
        assert!(AgentConfig::load(&p).unwrap_err().contains("timeout_secs"));
        std::fs::write(&p, "companion_url = \"http://10.0.0.11\"\n").unwrap();
        let c = AgentConfig::load(&p).unwrap();
        assert_eq!(
            (c.timeout_secs, c.token_file.to_str()),
            (30, Some("/etc/pinas/agent-token"))
        );
    }
}
