//! The companion's settings: the `[companion]` section of `config.toml` and the live
//! settings an admin changes through the API.
//!
//! ```toml
//! [companion]
//! nas_name = "bignas"                  # shown to people
//! nas_mac = "aa:bb:cc:dd:ee:ff"        # for Wake-on-LAN
//! nas_ip = "192.168.1.10"              # picks the interface the magic packet leaves by
//! health_url = "http://192.168.1.10/api/system/health"   # any 2xx means "up"
//! heartbeat_interval_secs = 30
//! misses_before_takeover = 3           # missed heartbeats before the DNS switch moves
//! wake_timeout_secs = 90
//! inbox_target = ""                    # rsync://host/module/path or user@host:/path
//! health_timeout_ms = 3000             # file only: one health check's time limit
//! wol_ports = [9, 7]                   # file only: UDP ports the magic packet goes to
//! inbox_dir = "/storage/shares/inbox"  # file only: the inbox folder
//! inbox_interval_secs = 300            # file only: flushes while the NAS is online
//! inbox_settle_secs = 10               # file only: a file rests this long before it moves
//! inbox_handshake_wait_secs = 20       # file only: coming-online waits this long for the flush
//! inbox_ssh_dir = "/storage/.pinas/companion/ssh"  # file only: the SSH key pair and known_hosts of an SSH inbox target
//! remote_dir = "/storage/.pinas/companion/remote"  # file only: the remote share's mount point, fallback folder, spool link
//! remote_check_secs = 10               # file only: between two health checks of the remote share
//! remote_probe_timeout_ms = 3000       # file only: one health check's time limit
//! remote_failures_before_cooldown = 3  # file only: failed checks in a row before the cool-down
//! remote_cooldown_secs = 300           # file only: how long it then stays local
//! spool_share_dir = "/storage/shares/spool"  # file only: the SMB share `spool`'s folder, moved to the remote share
//! ```
//!
//! `[companion]` gives the defaults. Once an admin saves settings through the API they are
//! kept in the role's database and win over the file from then on; the keys marked "file
//! only" are read from the file alone. Every change applies at once: the next
//! heartbeat uses the new URL and interval.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::CompanionError;
use crate::wol::Mac;

/// Shortest heartbeat interval, seconds.
pub const MIN_INTERVAL_SECS: u64 = 1;
/// Longest heartbeat interval and wake timeout, seconds (one hour).
pub const MAX_INTERVAL_SECS: u64 = 3600;
/// Most missed heartbeats before takeover that can be asked for.
pub const MAX_MISSES: u32 = 100;
/// Longest text setting (name, URL, inbox target), bytes.
pub const MAX_TEXT_BYTES: usize = 512;

/// The live settings, as `GET /api/companion/settings` shows them and
/// `PUT /api/companion/settings` takes them. Every field but `secureon_password` is
/// required on `PUT`; fields a client does not know are ignored, so it can send back
/// what it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CompanionSettings)]
pub struct Settings {
    /// The NAS's name, shown to people (1 to 64 characters), e.g. `bignas`.
    pub nas_name: String,
    /// The NAS's Ethernet address for Wake-on-LAN, `aa:bb:cc:dd:ee:ff` (`-` or no
    /// separators also accepted, stored lower case with `:`); empty: not set.
    pub nas_mac: String,
    /// The NAS's IPv4 address; the magic packet goes to the broadcast address of the
    /// interface that reaches it. Empty: `255.255.255.255`.
    pub nas_ip: String,
    /// `http://` or `https://` URL that answers 2xx while the NAS is up; empty: no
    /// heartbeat.
    pub health_url: String,
    /// Seconds between heartbeats (1 to 3600; default 30).
    pub heartbeat_interval_secs: u64,
    /// Missed heartbeats in a row before the DNS switch goes to the companion (1 to 100;
    /// default 3).
    pub misses_before_takeover: u32,
    /// Seconds a wake waits for the health URL to answer (1 to 3600; default 90).
    pub wake_timeout_secs: u64,
    /// Where inbox files go: `rsync://host/module/path` or `user@host:/path`; empty:
    /// no inbox flush.
    pub inbox_target: String,
    /// SecureOn password sent after the magic packet: 4 or 6 bytes as hex, `:` or `-`
    /// between bytes allowed. Write only: `GET` answers `secureon_password_set`; on `PUT`
    /// absent or `null` keeps it, `""` clears it.
    #[serde(default, skip_serializing)]
    pub secureon_password: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nas_name: "nas".into(),
            nas_mac: String::new(),
            nas_ip: String::new(),
            health_url: String::new(),
            heartbeat_interval_secs: 30,
            misses_before_takeover: 3,
            wake_timeout_secs: 90,
            inbox_target: String::new(),
            secureon_password: None,
        }
    }
}

/// The `[companion]` section: the settings' defaults plus what only the file sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanionConfig {
    pub nas_name: String,
    pub nas_mac: String,
    pub nas_ip: String,
    pub health_url: String,
    pub heartbeat_interval_secs: u64,
    pub misses_before_takeover: u32,
    pub wake_timeout_secs: u64,
    pub inbox_target: String,
    pub secureon_password: String,
    /// Time limit of one health check, milliseconds (100 to 60 000).
    pub health_timeout_ms: u64,
    /// UDP ports the magic packet is sent to (1 to 4 ports).
    pub wol_ports: Vec<u16>,
    /// The inbox folder; default `<shares_root>/inbox`.
    pub inbox_dir: Option<std::path::PathBuf>,
    /// Seconds between inbox flushes while the NAS is online (10 to 86 400).
    pub inbox_interval_secs: u64,
    /// Seconds a file must rest unmodified before it moves (0 to 3600).
    pub inbox_settle_secs: u64,
    /// Longest time `nas-coming-online` waits for the inbox flush before it switches and
    /// answers (the rest goes with the next flush), seconds (1 to 600).
    pub inbox_handshake_wait_secs: u64,
    /// The companion's SSH key pair (`id_ed25519`, made at start when missing, 0600)
    /// and `known_hosts` (the NAS's host key, pinned at the first connection), used for
    /// a `user@host:/path` inbox target; default `<role dir>/ssh`.
    pub inbox_ssh_dir: Option<std::path::PathBuf>,
    /// The remote share's folder (mount point `mnt`, fallback folder `fallback`, the
    /// `spool` link, its settings and credentials); default `<role dir>/remote`.
    pub remote_dir: Option<std::path::PathBuf>,
    /// Seconds between two health checks of the remote share (1 to 3600).
    pub remote_check_secs: u64,
    /// Time limit of one health check of the remote share, ms (100 to 60 000).
    pub remote_probe_timeout_ms: u64,
    /// Failed checks in a row before the remote share rests (1 to 100).
    pub remote_failures_before_cooldown: u32,
    /// How long the spool stays local after that, seconds (1 to 86 400).
    pub remote_cooldown_secs: u64,
    /// The folder of the SMB share `spool`: its files move to the remote share at each
    /// healthy check and wait there otherwise; `pinas companion` defaults it to
    /// `<shares_root>/spool`, none when unset elsewhere.
    pub spool_share_dir: Option<std::path::PathBuf>,
}

impl Default for CompanionConfig {
    fn default() -> Self {
        let s = Settings::default();
        CompanionConfig {
            nas_name: s.nas_name,
            nas_mac: s.nas_mac,
            nas_ip: s.nas_ip,
            health_url: s.health_url,
            heartbeat_interval_secs: s.heartbeat_interval_secs,
            misses_before_takeover: s.misses_before_takeover,
            wake_timeout_secs: s.wake_timeout_secs,
            inbox_target: s.inbox_target,
            secureon_password: String::new(),
            health_timeout_ms: 3000,
            wol_ports: vec![9, 7],
            inbox_dir: None,
            inbox_interval_secs: 300,
            inbox_settle_secs: 10,
            inbox_handshake_wait_secs: 20,
            inbox_ssh_dir: None,
            remote_dir: None,
            remote_check_secs: 10,
            remote_probe_timeout_ms: 3000,
            remote_failures_before_cooldown: 3,
            remote_cooldown_secs: 300,
            spool_share_dir: None,
        }
    }
}

impl CompanionConfig {
    /// The settings this file gives, checked.
    ///
    /// # Errors
    /// [`CompanionError::Invalid`] naming `companion.<key>` and the bad value.
    pub fn settings(&self) -> Result<Settings, CompanionError> {
        if !(100..=60_000).contains(&self.health_timeout_ms) {
            return Err(CompanionError::invalid(
                "invalid_config",
                "health_timeout_ms",
                format!(
                    "companion.health_timeout_ms = {} is not between 100 and 60000",
                    self.health_timeout_ms
                ),
            ));
        }
        if self.wol_ports.is_empty() || self.wol_ports.len() > 4 || self.wol_ports.contains(&0) {
            return Err(CompanionError::invalid(
                "invalid_config",
                "wol_ports",
                format!(
                    "companion.wol_ports = {:?} must list 1 to 4 ports, none 0",
                    self.wol_ports
                ),
            ));
        }
        for (key, v, lo, hi) in [
            ("inbox_interval_secs", self.inbox_interval_secs, 10, 86_400),
            ("inbox_settle_secs", self.inbox_settle_secs, 0, 3600),
            (
                "inbox_handshake_wait_secs",
                self.inbox_handshake_wait_secs,
                1,
                600,
            ),
            ("remote_check_secs", self.remote_check_secs, 1, 3600),
            (
                "remote_probe_timeout_ms",
                self.remote_probe_timeout_ms,
                100,
                60_000,
            ),
            (
                "remote_failures_before_cooldown",
                u64::from(self.remote_failures_before_cooldown),
                1,
                100,
            ),
            ("remote_cooldown_secs", self.remote_cooldown_secs, 1, 86_400),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(CompanionError::invalid(
                    "invalid_config",
                    key,
                    format!("companion.{key} = {v} is not between {lo} and {hi}"),
                ));
            }
        }
        let s = Settings {
            nas_name: self.nas_name.clone(),
            nas_mac: self.nas_mac.clone(),
            nas_ip: self.nas_ip.clone(),
            health_url: self.health_url.clone(),
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            misses_before_takeover: self.misses_before_takeover,
            wake_timeout_secs: self.wake_timeout_secs,
            inbox_target: self.inbox_target.clone(),
            secureon_password: Some(self.secureon_password.clone()),
        };
        s.checked().map_err(|e| match e {
            CompanionError::Invalid { message, field, .. } => CompanionError::Invalid {
                code: "invalid_config",
                message: format!("companion.{}: {message}", field.unwrap_or("?")),
                field,
            },
            e => e,
        })
    }
}

impl Settings {
    /// The settings normalised (MAC lower case with `:`, trimmed text), or the first
    /// bad field.
    ///
    /// # Errors
    /// 422 with the field: `invalid_name`, `invalid_mac`, `invalid_ip`,
    /// `invalid_health_url`, `invalid_interval`, `invalid_misses`, `invalid_timeout`,
    /// `invalid_inbox_target`, `invalid_secureon_password`.
    pub fn checked(mut self) -> Result<Settings, CompanionError> {
        self.nas_name = self.nas_name.trim().to_string();
        if self.nas_name.is_empty()
            || self.nas_name.chars().count() > 64
            || self.nas_name.chars().any(char::is_control)
        {
            return Err(CompanionError::invalid(
                "invalid_name",
                "nas_name",
                format!(
                    "NAS name {:?} must be 1 to 64 printable characters",
                    self.nas_name
                ),
            ));
        }
        let mac = self.nas_mac.trim();
        self.nas_mac = if mac.is_empty() {
            String::new()
        } else {
            Mac::parse(mac)
                .map_err(|m| CompanionError::invalid("invalid_mac", "nas_mac", m))?
                .to_string()
        };
        self.nas_ip = self.nas_ip.trim().to_string();
        if !self.nas_ip.is_empty() && !matches!(self.nas_ip.parse::<IpAddr>(), Ok(IpAddr::V4(_))) {
            return Err(CompanionError::invalid(
                "invalid_ip",
                "nas_ip",
                format!("NAS address {:?} is not an IPv4 address", self.nas_ip),
            ));
        }
        self.health_url = self.health_url.trim().to_string();
        if !self.health_url.is_empty() {
            let ok = self.health_url.len() <= MAX_TEXT_BYTES
                && url::Url::parse(&self.health_url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(CompanionError::invalid(
                    "invalid_health_url",
                    "health_url",
                    format!(
                        "health URL {:?} is not an http:// or https:// URL with a host",
                        self.health_url
                    ),
                ));
            }
        }
        let range = MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS;
        if !range.contains(&self.heartbeat_interval_secs) {
            return Err(CompanionError::invalid(
                "invalid_interval",
                "heartbeat_interval_secs",
                format!(
                    "heartbeat interval {} s is not between 1 and 3600",
                    self.heartbeat_interval_secs
                ),
            ));
        }
        if !(1..=MAX_MISSES).contains(&self.misses_before_takeover) {
            return Err(CompanionError::invalid(
                "invalid_misses",
                "misses_before_takeover",
                format!(
                    "misses before takeover {} is not between 1 and 100",
                    self.misses_before_takeover
                ),
            ));
        }
        if !range.contains(&self.wake_timeout_secs) {
            return Err(CompanionError::invalid(
                "invalid_timeout",
                "wake_timeout_secs",
                format!(
                    "wake timeout {} s is not between 1 and 3600",
                    self.wake_timeout_secs
                ),
            ));
        }
        self.inbox_target = self.inbox_target.trim().to_string();
        if !self.inbox_target.is_empty() && !inbox_target_ok(&self.inbox_target) {
            return Err(CompanionError::invalid(
                "invalid_inbox_target",
                "inbox_target",
                format!(
                    "inbox target {:?} is neither rsync://host/module[/path] nor user@host:/path",
                    self.inbox_target
                ),
            ));
        }
        if let Some(p) = &self.secureon_password {
            let p = p.trim();
            self.secureon_password = Some(if p.is_empty() {
                String::new()
            } else {
                crate::wol::parse_secureon(p).map(hex_bytes).map_err(|m| {
                    CompanionError::invalid("invalid_secureon_password", "secureon_password", m)
                })?
            });
        }
        Ok(self)
    }
}

fn hex_bytes(b: Vec<u8>) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `rsync://host/module[/path]` or `[user@]host:/absolute/path`, without spaces,
/// quotes or control characters (it becomes an rsync argument).
fn inbox_target_ok(t: &str) -> bool {
    if t.len() > MAX_TEXT_BYTES
        || t.starts_with('-')
        || t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'\"`;$\\".contains(c))
    {
        return false;
    }
    if let Some(rest) = t.strip_prefix("rsync://") {
        let mut parts = rest.splitn(2, '/');
        let host = parts.next().unwrap_or("");
        let module = parts.next().unwrap_or("");
        return !host.is_empty() && !module.is_empty() && !module.starts_with('/');
    }
    match t.split_once(":/") {
        Some((host, _)) => {
            let host = host.rsplit('@').next().unwrap_or("");
            !host.is_empty() && !host.contains('/')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_normalised_and_checked_field_by_field() {
        let s = Settings {
            nas_mac: "AA-BB-CC-DD-EE-0F".into(),
            nas_ip: " 192.168.1.10 ".into(),
            health_url: "http://192.168.1.10/api/system/health".into(),
            inbox_target: "rsync://bignas/inbox/companion".into(),
            secureon_password: Some("01-02-03-04".into()),
            ..Settings::default()
        }
        .checked()
        .unwrap();
        assert_eq!(s.nas_mac, "aa:bb:cc:dd:ee:0f");
        assert_eq!(s.nas_ip, "192.168.1.10");
        assert_eq!(s.secureon_password.as_deref(), Some("01:02:03:04"));

        let bad = |s: Settings| match s.checked() {
            Err(CompanionError::Invalid { field, .. }) => field.unwrap(),
            other => panic!("accepted: {other:?}"),
        };
        let d = Settings::default;
        assert_eq!(
            bad(Settings {
                nas_mac: "aa:bb:cc".into(),
                ..d()
            }),
            "nas_mac"
        );
        assert_eq!(
            bad(Settings {
                nas_ip: "::1".into(),
                ..d()
            }),
            "nas_ip"
        );
        assert_eq!(
            bad(Settings {
                health_url: "ftp://x/".into(),
                ..d()
            }),
            "health_url"
        );
        assert_eq!(
            bad(Settings {
                heartbeat_interval_secs: 0,
                ..d()
            }),
            "heartbeat_interval_secs"
        );
        assert_eq!(
            bad(Settings {
                misses_before_takeover: 0,
                ..d()
            }),
            "misses_before_takeover"
        );
        assert_eq!(
            bad(Settings {
                wake_timeout_secs: 4000,
                ..d()
            }),
            "wake_timeout_secs"
        );
        assert_eq!(
            bad(Settings {
                nas_name: " ".into(),
                ..d()
            }),
            "nas_name"
        );
        for t in [
            "-e sh",
            "bignas:relative",
            "rsync://host",
            "a b@h:/x",
            "h:/x;rm",
        ] {
            assert_eq!(
                bad(Settings {
                    inbox_target: t.into(),
                    ..d()
                }),
                "inbox_target",
                "{t}"
            );
        }
        assert!(inbox_target_ok("pinas@bignas:/srv/inbox"));
        assert_eq!(
            bad(Settings {
                secureon_password: Some("01:02:03".into()),
                ..d()
            }),
            "secureon_password"
        );
    }

    #[test]
    fn the_file_names_the_key() {
        let c = CompanionConfig {
            nas_mac: "zz".into(),
            ..CompanionConfig::default()
        };
        let e = c.settings().unwrap_err().to_string();
        assert!(e.contains("companion.nas_mac") && e.contains("zz"), "{e}");
        let c = CompanionConfig {
            wol_ports: vec![],
            ..CompanionConfig::default()
        };
        assert!(c.settings().unwrap_err().to_string().contains("wol_ports"));
    }
}
