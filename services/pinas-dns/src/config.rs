//! The `[dns]` section of `config.toml`.
//!
//! ```toml
//! [dns]
//! listen = "0.0.0.0:53"            # UDP and TCP; pinas dev: 127.0.0.1:5353
//! upstreams = ["9.9.9.9", "tcp://1.1.1.1:53"]   # tried in order: udp:// (default), tcp://,
//!                                  # tls://IP[:853]#name (DoT), https://host/path[#IP] (DoH)
//! upstream_ca_file = "/storage/.pinas/dns/ca.pem"   # extra CA for DoT/DoH, optional
//! upstream_timeout_ms = 1500
//! health_check_interval_secs = 10
//! blocking_mode = "null"           # "null" answers 0.0.0.0 / ::, "nxdomain" answers NXDOMAIN
//! blocked_ttl_secs = 60
//! local_ttl_secs = 300
//! cache_size = 10000               # answers kept (Pi-hole's default too)
//! cache_min_ttl_secs = 0
//! cache_max_ttl_secs = 86400
//! negative_ttl_secs = 300          # cap for NXDOMAIN / empty answers (RFC 2308)
//! blocklist_update_interval_secs = 86400
//! query_log = true
//! query_log_retention_days = 7
//! query_log_max_rows = 1000000
//! allowed_networks = ["local"]     # clients answered; "local" = loopback, RFC 1918,
//!                                  # link-local, IPv6 ULA and the box's own subnets
//! rate_limit_per_sec = 1000        # UDP responses per second per /24 (IPv4) or /56
//!                                  # (IPv6); 0: no limit
//! rate_limit_slip = 2              # over the limit, every 2nd query gets a TC answer
//!
//! [dns.switch]
//! name = "nas.home"
//! nas_addresses = ["192.168.1.10"]
//! companion_addresses = ["192.168.1.11"]
//! ttl_secs = 5
//! ```

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::upstream::UpstreamAddr;

/// How blocked names are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockingMode {
    /// `0.0.0.0` for A, `::` for AAAA, empty NOERROR for other types.
    #[default]
    Null,
    /// NXDOMAIN for every type.
    Nxdomain,
}

/// `[dns.switch]`: the switch record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchConfig {
    /// The name that follows the switch, e.g. `nas.home`.
    pub name: String,
    /// Addresses answered while the target is `nas`.
    #[schema(value_type = Vec<String>)]
    pub nas_addresses: Vec<IpAddr>,
    /// Addresses answered while the target is `companion`.
    #[schema(value_type = Vec<String>)]
    pub companion_addresses: Vec<IpAddr>,
    /// TTL of switch answers, seconds.
    pub ttl_secs: u32,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            name: "nas.home".into(),
            nas_addresses: Vec::new(),
            companion_addresses: Vec::new(),
            ttl_secs: 5,
        }
    }
}

/// The `[dns]` section; every key has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `IP:port` for UDP and TCP. `None` means the mode's default (`0.0.0.0:53` on the
    /// device, `127.0.0.1:5353` in `pinas dev`).
    pub listen: Option<String>,
    /// Upstream servers, tried in order: `9.9.9.9`, `udp://9.9.9.9:53`, `tcp://[::1]:53`.
    pub upstreams: Vec<String>,
    /// Extra CA certificates (PEM) trusted for DoT and DoH upstreams.
    pub upstream_ca_file: Option<std::path::PathBuf>,
    pub upstream_timeout_ms: u64,
    pub health_check_interval_secs: u64,
    pub blocking_mode: BlockingMode,
    pub blocked_ttl_secs: u32,
    pub local_ttl_secs: u32,
    pub cache_size: usize,
    pub cache_min_ttl_secs: u32,
    pub cache_max_ttl_secs: u32,
    pub negative_ttl_secs: u32,
    pub blocklist_update_interval_secs: u64,
    pub query_log: bool,
    pub query_log_retention_days: u32,
    pub query_log_max_rows: u64,
    /// Clients answered: `local`, networks (`203.0.113.0/24`) or addresses.
    pub allowed_networks: Vec<String>,
    /// UDP responses per second per client network; 0: no limit.
    pub rate_limit_per_sec: u32,
    /// Every `rate_limit_slip`-th query over the limit gets a TC answer; 0: never.
    pub rate_limit_slip: u32,
    pub switch: SwitchConfig,
}

/// Default UDP responses per second per client network (/24, /56): far above what a
/// household asks, far below what a reflection attack needs.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 1000;
/// Default slip: every second query over the limit gets a TC answer, as BIND's default.
pub const DEFAULT_RATE_LIMIT_SLIP: u32 = 2;

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: None,
            // Quad9 and Cloudflare: no-logging public resolvers; users change them.
            upstreams: vec!["9.9.9.9".into(), "1.1.1.1".into()],
            upstream_ca_file: None,
            upstream_timeout_ms: 1500,
            health_check_interval_secs: 10,
            blocking_mode: BlockingMode::Null,
            blocked_ttl_secs: 60,
            local_ttl_secs: 300,
            cache_size: 10_000,
            cache_min_ttl_secs: 0,
            cache_max_ttl_secs: 86_400,
            negative_ttl_secs: 300,
            blocklist_update_interval_secs: 86_400,
            query_log: true,
            query_log_retention_days: 7,
            query_log_max_rows: 1_000_000,
            allowed_networks: crate::networks::default_list(),
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_slip: DEFAULT_RATE_LIMIT_SLIP,
            switch: SwitchConfig::default(),
        }
    }
}

/// A `[dns]` value PiNAS cannot use.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for dns.{key}: {value:?} ({reason})")]
pub struct InvalidConfig {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl DnsConfig {
    /// The listen address for this mode.
    ///
    /// # Errors
    /// [`InvalidConfig`] when `listen` is not `IP:port`.
    pub fn listen_addr(&self, dev: bool) -> Result<SocketAddr, InvalidConfig> {
        let s = self
            .listen
            .clone()
            .unwrap_or_else(|| if dev { "127.0.0.1:5353" } else { "0.0.0.0:53" }.to_string());
        s.parse().map_err(|_| InvalidConfig {
            key: "listen",
            value: s,
            reason: "expected IP:port, e.g. 0.0.0.0:53".into(),
        })
    }

    /// The upstreams, parsed.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the first entry that is not a valid upstream.
    pub fn upstream_addrs(&self) -> Result<Vec<UpstreamAddr>, InvalidConfig> {
        self.upstreams
            .iter()
            .map(|u| {
                u.parse().map_err(|reason| InvalidConfig {
                    key: "upstreams",
                    value: u.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// Checks every value; called once at start.
    ///
    /// # Errors
    /// [`InvalidConfig`] for the first bad value.
    pub fn validate(&self, dev: bool) -> Result<(), InvalidConfig> {
        self.listen_addr(dev)?;
        self.upstream_addrs()?;
        let bad = |key, value: String, reason: &str| InvalidConfig {
            key,
            value,
            reason: reason.into(),
        };
        if crate::domains::normalize(&self.switch.name).is_none() {
            return Err(bad(
                "switch.name",
                self.switch.name.clone(),
                "expected a domain name",
            ));
        }
        if self.cache_min_ttl_secs > self.cache_max_ttl_secs {
            return Err(bad(
                "cache_min_ttl_secs",
                self.cache_min_ttl_secs.to_string(),
                "must not exceed cache_max_ttl_secs",
            ));
        }
        for n in &self.allowed_networks {
            if let Err(e) = crate::networks::parse_entry(n) {
                return Err(bad("allowed_networks", n.clone(), &e.to_string()));
            }
        }
        if self.upstream_timeout_ms == 0 {
            return Err(bad("upstream_timeout_ms", "0".into(), "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_modes() {
        let c = DnsConfig::default();
        assert_eq!(c.listen_addr(true).unwrap().to_string(), "127.0.0.1:5353");
        assert_eq!(c.listen_addr(false).unwrap().to_string(), "0.0.0.0:53");
        c.validate(false).unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let c: DnsConfig = toml_like(r#"{"listen":"nope"}"#);
        assert!(c
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("dns.listen"));
        let c: DnsConfig = toml_like(r#"{"upstreams":["ftp://x"]}"#);
        assert!(c
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("dns.upstreams"));
    }

    fn toml_like(json: &str) -> DnsConfig {
        serde_json::from_str(json).unwrap()
    }
}
