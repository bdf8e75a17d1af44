//! DNS settings that can change while the role runs: upstreams, cache limits, how blocked
//! names are answered, how long the query log is kept, which clients are answered and
//! how fast.
//!
//! `[dns]` in `config.toml` gives their defaults. Once an admin saves settings through
//! the API they are kept in the database (`dns_settings`) and take precedence over the
//! file from then on, at every start. Everything else in `[dns]` (listen address,
//! timeouts, the switch, ...) is read from the file only.
//!
//! Not for: validating the whole `[dns]` section ([`crate::config`] does that at start).

use crate::error::DnsError;
use pinas_core::db::Db;
use pinas_core::events::now_ms;
use serde::{Deserialize, Serialize};

use crate::cache::Limits;
use crate::config::{BlockingMode, DnsConfig};
use crate::upstream::UpstreamAddr;

/// Most upstreams in the list.
pub const MAX_UPSTREAMS: usize = 16;
/// Largest cache, in answers (about 1 KiB each on average).
pub const MAX_CACHE_SIZE: u64 = 1_000_000;
/// Largest TTL bound the cache accepts, seconds (7 days).
pub const MAX_TTL_SECS: u64 = 604_800;
/// Longest query-log retention, days.
pub const MAX_RETENTION_DAYS: u64 = 365;

/// The live DNS settings, as `GET /api/dns/settings` shows them and
/// `PUT /api/dns/settings` takes them (every field required; other fields, such as the
/// `saved_at_ms` that `GET` adds, are ignored, so a client can send back what it read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DnsSettings {
    /// Upstream servers, tried in order (1 to 16): `9.9.9.9`, `udp://IP:port`,
    /// `tcp://IP:port`, `tls://IP[:port]#name`, `https://host/path[#IP]`.
    pub upstreams: Vec<String>,
    /// Most answers kept in the cache (1 to 1 000 000).
    pub cache_size: u64,
    /// Shortest time an answer is cached, seconds (0 to 604 800, at most
    /// `cache_max_ttl_secs`).
    pub cache_min_ttl_secs: u64,
    /// Longest time an answer is cached, seconds (1 to 604 800).
    pub cache_max_ttl_secs: u64,
    /// Longest time an NXDOMAIN or empty answer is cached, seconds (0 to 604 800).
    pub negative_ttl_secs: u64,
    /// `null` answers blocked names with `0.0.0.0` / `::`, `nxdomain` with NXDOMAIN.
    pub blocking_mode: BlockingMode,
    /// Days the query log is kept (1 to 365).
    pub query_log_retention_days: u64,
    /// Clients answered (1 to 64 entries): `local` (loopback, private and link-local
    /// ranges, IPv6 ULA, and the box's own subnets), networks such as `203.0.113.0/24`,
    /// or addresses. Others get REFUSED. Absent in settings saved by earlier versions:
    /// `["local"]`.
    #[serde(default = "crate::networks::default_list")]
    pub allowed_networks: Vec<String>,
    /// UDP responses per second per client network (/24, /56) before queries are
    /// dropped (0: no limit; at most 1 000 000). Absent: 1000.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_sec: u64,
    /// Over the limit, every `rate_limit_slip`-th query gets an empty truncated answer
    /// so a real client retries over TCP (0: never; at most 10). Absent: 2.
    #[serde(default = "default_slip")]
    pub rate_limit_slip: u64,
}

/// What `PUT /api/dns/settings` takes: every field of [`DnsSettings`]; the allowed
/// networks and the rate limit may be left out (a client that does not know them yet),
/// and then keep their current values rather than falling back to defaults.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SettingsInput {
    pub upstreams: Vec<String>,
    pub cache_size: u64,
    pub cache_min_ttl_secs: u64,
    pub cache_max_ttl_secs: u64,
    pub negative_ttl_secs: u64,
    pub blocking_mode: BlockingMode,
    pub query_log_retention_days: u64,
    /// See [`DnsSettings::allowed_networks`]; absent: unchanged.
    pub allowed_networks: Option<Vec<String>>,
    /// See [`DnsSettings::rate_limit_per_sec`]; absent: unchanged.
    pub rate_limit_per_sec: Option<u64>,
    /// See [`DnsSettings::rate_limit_slip`]; absent: unchanged.
    pub rate_limit_slip: Option<u64>,
}

impl SettingsInput {
    /// The settings this input asks for, taking what it leaves out from `current`.
    pub fn over(self, current: &DnsSettings) -> DnsSettings {
        DnsSettings {
            upstreams: self.upstreams,
            cache_size: self.cache_size,
            cache_min_ttl_secs: self.cache_min_ttl_secs,
            cache_max_ttl_secs: self.cache_max_ttl_secs,
            negative_ttl_secs: self.negative_ttl_secs,
            blocking_mode: self.blocking_mode,
            query_log_retention_days: self.query_log_retention_days,
            allowed_networks: self
                .allowed_networks
                .unwrap_or_else(|| current.allowed_networks.clone()),
            rate_limit_per_sec: self
                .rate_limit_per_sec
                .unwrap_or(current.rate_limit_per_sec),
            rate_limit_slip: self.rate_limit_slip.unwrap_or(current.rate_limit_slip),
        }
    }
}

fn default_rate_limit() -> u64 {
    crate::config::DEFAULT_RATE_LIMIT_PER_SEC.into()
}

fn default_slip() -> u64 {
    crate::config::DEFAULT_RATE_LIMIT_SLIP.into()
}

/// Largest rate limit, responses per second.
pub const MAX_RATE_LIMIT: u64 = 1_000_000;
/// Largest slip.
pub const MAX_SLIP: u64 = 10;

/// Settings that passed [`DnsSettings::validate`], with the upstreams parsed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub settings: DnsSettings,
    pub upstreams: Vec<UpstreamAddr>,
    pub networks: Vec<crate::networks::Entry>,
}

impl Checked {
    /// The cache limits these settings ask for.
    pub fn cache_limits(&self) -> Limits {
        let s = &self.settings;
        Limits {
            capacity: s.cache_size as usize,
            min_ttl_secs: s.cache_min_ttl_secs as u32,
            max_ttl_secs: s.cache_max_ttl_secs as u32,
            negative_ttl_secs: s.negative_ttl_secs as u32,
        }
    }
}

fn invalid(field: &'static str, message: String) -> DnsError {
    DnsError::invalid("invalid_settings", message).with_field(field)
}

impl DnsSettings {
    /// The values `[dns]` in `config.toml` gives.
    pub fn from_config(cfg: &DnsConfig) -> Self {
        DnsSettings {
            upstreams: cfg.upstreams.clone(),
            cache_size: cfg.cache_size as u64,
            cache_min_ttl_secs: cfg.cache_min_ttl_secs.into(),
            cache_max_ttl_secs: cfg.cache_max_ttl_secs.into(),
            negative_ttl_secs: cfg.negative_ttl_secs.into(),
            blocking_mode: cfg.blocking_mode,
            query_log_retention_days: cfg.query_log_retention_days.into(),
            allowed_networks: cfg.allowed_networks.clone(),
            rate_limit_per_sec: cfg.rate_limit_per_sec.into(),
            rate_limit_slip: cfg.rate_limit_slip.into(),
        }
    }

    /// Checks every field; upstreams are trimmed.
    ///
    /// # Errors
    /// 422 `invalid_settings` with `field` naming the first bad value: `upstreams`
    /// (empty, more than 16, or an entry that is not an upstream; the message quotes it),
    /// `cache_size`, `cache_min_ttl_secs` (above `cache_max_ttl_secs`),
    /// `cache_max_ttl_secs`, `negative_ttl_secs`, `query_log_retention_days`,
    /// `rate_limit_per_sec`, `rate_limit_slip` (out of range), `allowed_networks` (empty,
    /// more than 64, or an entry that is not a network; the message quotes it).
    pub fn validate(mut self) -> Result<Checked, DnsError> {
        self.upstreams = self
            .upstreams
            .iter()
            .map(|u| u.trim().to_string())
            .collect();
        if self.upstreams.is_empty() {
            return Err(invalid(
                "upstreams",
                "add at least one upstream server".into(),
            ));
        }
        if self.upstreams.len() > MAX_UPSTREAMS {
            return Err(invalid(
                "upstreams",
                format!("at most {MAX_UPSTREAMS} upstream servers"),
            ));
        }
        let mut upstreams = Vec::with_capacity(self.upstreams.len());
        for u in &self.upstreams {
            let addr: UpstreamAddr = u
                .parse()
                .map_err(|reason: String| invalid("upstreams", format!("{u:?}: {reason}")))?;
            if upstreams.contains(&addr) {
                return Err(invalid("upstreams", format!("{u:?} is listed twice")));
            }
            upstreams.push(addr);
        }
        if !(1..=MAX_CACHE_SIZE).contains(&self.cache_size) {
            return Err(invalid(
                "cache_size",
                format!("the cache holds 1 to {MAX_CACHE_SIZE} answers"),
            ));
        }
        if !(1..=MAX_TTL_SECS).contains(&self.cache_max_ttl_secs) {
            return Err(invalid(
                "cache_max_ttl_secs",
                format!("the longest cache time is 1 to {MAX_TTL_SECS} seconds"),
            ));
        }
        if self.cache_min_ttl_secs > self.cache_max_ttl_secs {
            return Err(invalid(
                "cache_min_ttl_secs",
                format!(
                    "the shortest cache time ({} s) is above the longest ({} s)",
                    self.cache_min_ttl_secs, self.cache_max_ttl_secs
                ),
            ));
        }
        if self.negative_ttl_secs > MAX_TTL_SECS {
            return Err(invalid(
                "negative_ttl_secs",
                format!("the negative cache time is 0 to {MAX_TTL_SECS} seconds"),
            ));
        }
        if !(1..=MAX_RETENTION_DAYS).contains(&self.query_log_retention_days) {
            return Err(invalid(
                "query_log_retention_days",
                format!("the query log is kept 1 to {MAX_RETENTION_DAYS} days"),
            ));
        }
        self.allowed_networks = self
            .allowed_networks
            .iter()
            .map(|n| n.trim().to_string())
            .collect();
        if self.allowed_networks.is_empty() {
            return Err(invalid(
                "allowed_networks",
                "add at least one network (\"local\" for the home network)".into(),
            ));
        }
        if self.allowed_networks.len() > crate::networks::MAX_ENTRIES {
            return Err(invalid(
                "allowed_networks",
                format!("at most {} networks", crate::networks::MAX_ENTRIES),
            ));
        }
        let networks = self
            .allowed_networks
            .iter()
            .map(|n| crate::networks::parse_entry(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("allowed_networks", e.to_string()))?;
        if self.rate_limit_per_sec > MAX_RATE_LIMIT {
            return Err(invalid(
                "rate_limit_per_sec",
                format!("the rate limit is 0 (none) to {MAX_RATE_LIMIT} responses per second"),
            ));
        }
        if self.rate_limit_slip > MAX_SLIP {
            return Err(invalid(
                "rate_limit_slip",
                format!("the slip is 0 (never) to {MAX_SLIP}"),
            ));
        }
        Ok(Checked {
            settings: self,
            upstreams,
            networks,
        })
    }
}

/// The settings saved through the API and when (Unix ms), if any.
///
/// # Errors
/// [`DnsError`] when the database cannot be read. A saved value that no longer parses is
/// logged and ignored (the file's values apply).
pub fn load(db: &Db) -> Result<Option<(DnsSettings, i64)>, DnsError> {
    let row = crate::store::settings(db)?;
    Ok(row.and_then(
        |(json, at)| match serde_json::from_str::<DnsSettings>(&json) {
            Ok(s) => Some((s, at)),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable saved DNS settings");
                None
            }
        },
    ))
}

/// Saves `s`; returns the time saved (Unix ms).
///
/// # Errors
/// [`DnsError`] when the database cannot be written.
pub fn save(db: &Db, s: &DnsSettings) -> Result<i64, DnsError> {
    let now = now_ms();
    let json = serde_json::to_string(s).map_err(|e| DnsError::internal(e.to_string()))?;
    crate::store::save_settings(db, &json, now)?;
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> DnsSettings {
        DnsSettings::from_config(&DnsConfig::default())
    }

    fn field(s: DnsSettings) -> String {
        s.validate().unwrap_err().field().unwrap().to_string()
    }

    #[test]
    fn defaults_pass_and_bad_values_name_the_field() {
        let c = good().validate().unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(
            field(DnsSettings {
                upstreams: vec!["ftp://x".into()],
                ..good()
            }),
            "upstreams"
        );
        assert_eq!(
            field(DnsSettings {
                upstreams: vec![],
                ..good()
            }),
            "upstreams"
        );
        assert_eq!(
            field(DnsSettings {
                upstreams: vec!["9.9.9.9".into(), "udp://9.9.9.9:53".into()],
                ..good()
            }),
            "upstreams"
        );
        assert_eq!(
            field(DnsSettings {
                cache_size: 0,
                ..good()
            }),
            "cache_size"
        );
        assert_eq!(
            field(DnsSettings {
                cache_min_ttl_secs: 600,
                cache_max_ttl_secs: 60,
                ..good()
            }),
            "cache_min_ttl_secs"
        );
        assert_eq!(
            field(DnsSettings {
                query_log_retention_days: 0,
                ..good()
            }),
            "query_log_retention_days"
        );
        for nets in [vec![], vec!["local".to_string(), "10.0.0.0/33".into()]] {
            assert_eq!(
                field(DnsSettings {
                    allowed_networks: nets,
                    ..good()
                }),
                "allowed_networks"
            );
        }
        assert_eq!(
            field(DnsSettings {
                rate_limit_slip: 11,
                ..good()
            }),
            "rate_limit_slip"
        );
    }
}
