//! The live state of the DNS role: what the query path reads, and the operations the
//! control API performs on it (records, forwarding rules, allow/deny rules, the switch).
//!
//! Everything the query path reads is an immutable snapshot behind an `ArcSwap`: a change
//! builds a new snapshot from the database and swaps it in, so queries never take a lock
//! and never see a half-applied change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pinas_core::db::Db;
use pinas_core::events::now_ms;
use pinas_core::EventBus;

use crate::error::DnsError;
use serde::{Deserialize, Serialize};

use crate::blocking::{self, BlockingState};
use crate::cache::Cache;
use crate::config::DnsConfig;
use crate::domains::{DomainSet, DomainSetBuilder};
use crate::lists;
use crate::metrics::Metrics;
use crate::networks::{self, AllowedNetworks};
use crate::querylog::LogSender;
use crate::rrl::RateLimiter;
use crate::settings::{self, DnsSettings};
use crate::store;
use crate::upstream::{Forwarder, UpstreamAddr};
use crate::zone::{self, ForwardRule, LocalType, LocalZone};

/// Where the switch record points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Nas,
    Companion,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Nas => "nas",
            Target::Companion => "companion",
        }
    }
}

/// The switch: target, why, and since when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SwitchState {
    /// The name that follows the switch.
    pub name: String,
    pub target: Target,
    pub reason: String,
    /// Unix milliseconds of the last change (0: never changed).
    pub changed_at_ms: i64,
    /// What the name answers now.
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    pub ttl_secs: u32,
}

/// The settings in force and where they come from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsState {
    #[serde(flatten)]
    pub settings: DnsSettings,
    /// Unix milliseconds when the settings were last saved through the API; `null` while
    /// the values of `[dns]` in `config.toml` apply.
    pub saved_at_ms: Option<i64>,
}

/// Shared state of a running DNS role.
pub struct DnsState {
    /// `[dns]` from `config.toml`. For the values in [`DnsSettings`], read
    /// [`DnsState::settings`] instead: saved settings take precedence.
    pub cfg: DnsConfig,
    /// Upstreams, cache limits, blocking mode and retention in force.
    pub settings: ArcSwap<SettingsState>,
    /// Serialises settings changes, so the database and the live state agree.
    pub settings_lock: std::sync::Mutex<()>,
    /// The blocking switch.
    pub blocking: ArcSwap<BlockingState>,
    /// `blocking.enabled`, read on every query.
    pub blocking_on: AtomicBool,
    /// Wakes the timer task on every blocking change.
    pub blocking_changed: tokio::sync::Notify,
    /// Serialises blocking changes.
    pub blocking_lock: std::sync::Mutex<()>,
    /// The Pi-hole v5 API token (64 hex characters).
    pub pihole_token: ArcSwap<String>,
    pub db: Db,
    pub events: EventBus,
    /// The role's folder, `<state_dir>/dns`: database, blocklists, token.
    pub dir: std::path::PathBuf,
    pub blocked: ArcSwap<DomainSet>,
    pub allow: ArcSwap<DomainSet>,
    pub deny: ArcSwap<DomainSet>,
    pub zone: ArcSwap<LocalZone>,
    pub switch: ArcSwap<SwitchState>,
    /// Normalized switch name, compared on every query.
    pub switch_name: String,
    pub cache: Cache,
    pub forwarder: Forwarder,
    pub metrics: Metrics,
    pub log: Option<LogSender>,
    /// Serialises blocklist updates.
    pub update_lock: tokio::sync::Mutex<()>,
    /// This host's address, for switch targets without configured addresses.
    pub own_ip: IpAddr,
    /// Clients answered (from `allowed_networks` and this host's subnets); read on every
    /// query.
    pub allowed: ArcSwap<AllowedNetworks>,
    /// Response-rate limits per client network over UDP.
    pub rrl: RateLimiter,
    /// Upstream queries under way, joined by identical questions.
    pub inflight: crate::inflight::InFlight,
    /// The counts of the unauthenticated Pi-hole summary, read at most every few seconds.
    pub pihole_summary: crate::pihole::SummaryCache,
}

/// The address this host uses to reach other hosts: the source address the kernel picks
/// for a route to a private address. `connect` on UDP sends no packet.
pub fn own_ip() -> IpAddr {
    let guess = || -> std::io::Result<IpAddr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddr::from((Ipv4Addr::new(192, 168, 0, 1), 53)))?;
        Ok(s.local_addr()?.ip())
    };
    guess().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

impl DnsState {
    /// Builds the state from `cfg` and the database: settings saved through the API
    /// (over `cfg`), records, rules, the switch, the blocking switch (turned back on when
    /// its timer ended while the role was stopped) and the Pi-hole API token (created the
    /// first time) are loaded; blocklists start empty and are loaded by
    /// [`crate::blocklists::rebuild`].
    ///
    /// # Errors
    /// [`DnsError`] when the configuration is invalid or the database cannot be read.
    pub fn new(
        cfg: DnsConfig,
        db: Db,
        events: EventBus,
        dir: std::path::PathBuf,
        log: Option<LogSender>,
    ) -> Result<Arc<Self>, DnsError> {
        let upstreams = cfg
            .upstream_addrs()
            .map_err(|e| DnsError::invalid("invalid_config", e.to_string()))?;
        let from_file = DnsSettings::from_config(&cfg);
        let file_limits = crate::cache::Limits {
            capacity: cfg.cache_size,
            min_ttl_secs: cfg.cache_min_ttl_secs,
            max_ttl_secs: cfg.cache_max_ttl_secs,
            negative_ttl_secs: cfg.negative_ttl_secs,
        };
        let (live, upstreams, limits) = match settings::load(&db)? {
            Some((saved, at)) => match saved.validate() {
                Ok(c) => {
                    let limits = c.cache_limits();
                    (
                        SettingsState {
                            settings: c.settings,
                            saved_at_ms: Some(at),
                        },
                        c.upstreams,
                        limits,
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "saved DNS settings are invalid; using config.toml");
                    (
                        SettingsState {
                            settings: from_file,
                            saved_at_ms: None,
                        },
                        upstreams,
                        file_limits,
                    )
                }
            },
            None => (
                SettingsState {
                    settings: from_file,
                    saved_at_ms: None,
                },
                upstreams,
                file_limits,
            ),
        };
        let cache = Cache::new(limits);
        let forwarder = Forwarder::new(&upstreams, Duration::from_millis(cfg.upstream_timeout_ms));
        let blocking_state = blocking::load(&db)?;
        let token = crate::pihole::load_or_create(&dir)?;
        let switch_name = crate::domains::normalize(&cfg.switch.name).ok_or_else(|| {
            DnsError::invalid(
                "invalid_config",
                format!("dns.switch.name {:?} is not a domain name", cfg.switch.name),
            )
        })?;
        let own = own_ip();
        let allowed = AllowedNetworks::parse(
            &live.settings.allowed_networks,
            &networks::interface_networks(),
        )
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "allowed networks are invalid; answering local networks only");
            AllowedNetworks::parse(&networks::default_list(), &networks::interface_networks())
                .unwrap_or_default()
        });
        let rrl = RateLimiter::new(
            live.settings.rate_limit_per_sec.min(u32::MAX.into()) as u32,
            live.settings.rate_limit_slip.min(u32::MAX.into()) as u32,
        );
        let st = DnsState {
            allowed: ArcSwap::from_pointee(allowed),
            rrl,
            inflight: Default::default(),
            pihole_summary: Default::default(),
            switch: ArcSwap::from_pointee(SwitchState {
                name: switch_name.clone(),
                target: Target::Nas,
                reason: String::new(),
                changed_at_ms: 0,
                addresses: Vec::new(),
                ttl_secs: cfg.switch.ttl_secs,
            }),
            switch_name,
            cfg,
            settings: ArcSwap::from_pointee(live),
            settings_lock: std::sync::Mutex::new(()),
            blocking_on: AtomicBool::new(blocking_state.enabled),
            blocking: ArcSwap::from_pointee(blocking_state),
            blocking_changed: tokio::sync::Notify::new(),
            blocking_lock: std::sync::Mutex::new(()),
            pihole_token: ArcSwap::from_pointee(token),
            db,
            events,
            dir,
            blocked: ArcSwap::from_pointee(DomainSet::default()),
            allow: ArcSwap::from_pointee(DomainSet::default()),
            deny: ArcSwap::from_pointee(DomainSet::default()),
            zone: ArcSwap::from_pointee(LocalZone::default()),
            cache,
            forwarder,
            metrics: Metrics::default(),
            log,
            update_lock: tokio::sync::Mutex::new(()),
            own_ip: own,
        };
        st.reload_zone()?;
        st.reload_rules()?;
        st.load_switch()?;
        if st.expire_blocking_timer()? {
            tracing::info!(
                "DNS blocking turned back on: its timer ended while the role was stopped"
            );
        }
        Ok(Arc::new(st))
    }

    // ---- settings ----

    /// Validates `new`, saves it, and applies it at once: the new upstream set (with its
    /// health checks), the cache resized (and emptied when upstreams or TTL bounds
    /// changed), the blocked answer, the query-log retention. Emits
    /// `dns.settings.changed`. Nothing is applied when validation or saving fails.
    ///
    /// # Errors
    /// 422 `invalid_settings` naming the field (see [`DnsSettings::validate`]);
    /// [`DnsError`] when the database cannot be written.
    pub fn apply_settings(&self, new: DnsSettings) -> Result<SettingsState, DnsError> {
        let checked = new.validate()?;
        let _serial = self.settings_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.settings.load_full();
        let at = settings::save(&self.db, &checked.settings)?;
        let limits = checked.cache_limits();
        if old.settings.upstreams != checked.settings.upstreams {
            self.forwarder.set_upstreams(&checked.upstreams);
            // Answers from the old upstreams must not outlive them.
            self.cache.clear();
        }
        self.cache.set_limits(limits);
        self.allowed.store(Arc::new(AllowedNetworks::new(
            &checked.networks,
            &networks::interface_networks(),
        )));
        self.rrl.set(
            checked.settings.rate_limit_per_sec as u32,
            checked.settings.rate_limit_slip as u32,
        );
        let live = SettingsState {
            settings: checked.settings,
            saved_at_ms: Some(at),
        };
        self.settings.store(Arc::new(live.clone()));
        tracing::info!(upstreams = ?live.settings.upstreams, "DNS settings changed");
        // A shorter retention applies at once.
        let days = live.settings.query_log_retention_days as u32;
        if let Err(e) = store::prune_log(&self.db, days, self.cfg.query_log_max_rows, now_ms()) {
            tracing::warn!(error = %e, "cannot prune the DNS query log");
        }
        self.events.emit(
            "dns.settings.changed",
            serde_json::to_value(&live).unwrap_or_default(),
        );
        Ok(live)
    }

    /// Whether queries from `ip` are answered (see [`crate::networks`]).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.load().allows(ip)
    }

    /// Re-reads this host's interface subnets (they change with DHCP and cables) into
    /// the allowed networks, when `local` is among them.
    pub fn refresh_networks(&self) {
        let live = self.settings.load();
        if let Ok(new) = AllowedNetworks::parse(
            &live.settings.allowed_networks,
            &networks::interface_networks(),
        ) {
            if **self.allowed.load() != new {
                tracing::info!(networks = ?new.networks(), "DNS allowed networks changed");
                self.allowed.store(Arc::new(new));
            }
        }
    }

    /// Replaces the Pi-hole API token with a new random one and returns it.
    ///
    /// # Errors
    /// [`DnsError`] when the database cannot be written (the old token then stays).
    pub fn regenerate_pihole_token(&self) -> Result<String, DnsError> {
        let t = crate::pihole::regenerate(&self.dir)?;
        self.pihole_token.store(Arc::new(t.clone()));
        tracing::info!("Pi-hole API token regenerated");
        Ok(t)
    }

    /// Directory of downloaded blocklists: `<state>/dns/lists`.
    pub fn lists_dir(&self) -> std::path::PathBuf {
        self.dir.join("lists")
    }

    // ---- local records and forwarding rules ----

    /// Rebuilds the local zone from `dns_records` and `dns_forwards`, and clears the cache
    /// (a cached upstream answer must not hide a new local record).
    ///
    /// # Errors
    /// [`DnsError`] on database errors.
    pub fn reload_zone(&self) -> Result<(), DnsError> {
        let (rows, forwards) = store::zone_rows(&self.db)?;
        let mut recs = Vec::new();
        for (name, t, value, ttl) in rows {
            let Some(t) = LocalType::parse(&t) else {
                continue;
            };
            match zone::validate(&name, t, &value) {
                Ok((owner, data)) => recs.push((owner, data, ttl.clamp(0, u32::MAX as i64) as u32)),
                Err((_, msg)) => tracing::warn!(%name, %msg, "skipping invalid local record"),
            }
        }
        let mut fwd = Vec::new();
        for (domain, server) in forwards {
            match server.parse::<UpstreamAddr>() {
                Ok(server) => fwd.push(ForwardRule {
                    domain: domain.to_ascii_lowercase(),
                    server,
                }),
                Err(msg) => tracing::warn!(%domain, %msg, "skipping invalid forwarding rule"),
            }
        }
        self.zone.store(Arc::new(LocalZone::new(recs, fwd)));
        self.cache.clear();
        Ok(())
    }

    // ---- allow and deny rules ----

    /// Rebuilds the allowlist and denylist from `dns_rules`.
    ///
    /// # Errors
    /// [`DnsError`] on database errors.
    pub fn reload_rules(&self) -> Result<(), DnsError> {
        let mut allow = DomainSetBuilder::default();
        let mut deny = DomainSetBuilder::default();
        for rule in store::rules(&self.db, None)? {
            let Ok((name, how)) = lists::parse_pattern(&rule.pattern) else {
                continue;
            };
            if rule.kind == "allow" {
                allow.insert(&name, how);
            } else {
                deny.insert(&name, how);
            }
        }
        self.allow.store(Arc::new(allow.build()));
        self.deny.store(Arc::new(deny.build()));
        self.cache.clear();
        Ok(())
    }

    // ---- the switch ----

    fn addresses_for(&self, t: Target) -> Vec<IpAddr> {
        let configured = match t {
            Target::Nas => &self.cfg.switch.nas_addresses,
            Target::Companion => &self.cfg.switch.companion_addresses,
        };
        if configured.is_empty() {
            vec![self.own_ip]
        } else {
            configured.clone()
        }
    }

    fn load_switch(&self) -> Result<(), DnsError> {
        let row = store::switch(&self.db)?;
        let (target, reason, at) = match row {
            Some((t, r, at)) => (
                if t == "companion" {
                    Target::Companion
                } else {
                    Target::Nas
                },
                r,
                at,
            ),
            None => (Target::Nas, String::new(), 0),
        };
        self.switch.store(Arc::new(SwitchState {
            name: self.switch_name.clone(),
            target,
            reason,
            changed_at_ms: at,
            addresses: self.addresses_for(target),
            ttl_secs: self.cfg.switch.ttl_secs,
        }));
        Ok(())
    }

    /// Points the switch record at `target`, persists it, and emits `dns.switch.changed`
    /// with `{target, previous, reason, addresses}`. Takes effect on the next query.
    ///
    /// # Errors
    /// 422 `invalid_reason` when `reason` is longer than 500 bytes; [`DnsError`] when the
    /// database cannot be written (the switch is then unchanged).
    pub fn set_switch(&self, target: Target, reason: &str) -> Result<SwitchState, DnsError> {
        if reason.len() > 500 {
            return Err(DnsError::invalid(
                "invalid_reason",
                "the reason is longer than 500 characters",
            )
            .with_field("reason"));
        }
        let now = now_ms();
        store::save_switch(&self.db, target.as_str(), reason, now)?;
        let previous = self.switch.load().target;
        let new = SwitchState {
            name: self.switch_name.clone(),
            target,
            reason: reason.to_string(),
            changed_at_ms: now,
            addresses: self.addresses_for(target),
            ttl_secs: self.cfg.switch.ttl_secs,
        };
        self.switch.store(Arc::new(new.clone()));
        tracing::info!(
            target = target.as_str(),
            previous = previous.as_str(),
            reason,
            "DNS switch changed"
        );
        self.events.emit(
            "dns.switch.changed",
            serde_json::json!({
                "name": new.name,
                "target": target,
                "previous": previous,
                "reason": reason,
                "addresses": new.addresses,
            }),
        );
        Ok(new)
    }
}
