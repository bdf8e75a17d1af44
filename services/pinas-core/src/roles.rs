//! The registry of PiNAS roles: the one list the binary, the web proxy, the setup wizard,
//! the services report and the image's enabled units are derived from.
//!
//! A role is a part of PiNAS with an API of its own. Some run in their own process and
//! systemd unit, so that they outlive a restart of the web role (DNS); others are
//! libraries that run inside `pinas web` (storage, shares). A role is listed here when
//! its code exists, never before: the proxy, the services list and the image follow.
//!
//! The *setup roles* ([`SetupRole`]: `nas`, `companion`) are what the first-boot wizard
//! asks for; they choose which of these roles a box runs.

use serde::{Deserialize, Serialize};

/// What the first-boot wizard offers: the kind of box this is. Stored in the `roles`
/// setting as a JSON array of their names, e.g. `["nas"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SetupRole {
    /// Disks, shares, users: the box holds the data.
    Nas,
    /// The always-on box beside a bigger NAS.
    Companion,
}

impl SetupRole {
    /// Every setup role, in the order the wizard shows them.
    pub const ALL: [SetupRole; 2] = [SetupRole::Nas, SetupRole::Companion];

    /// `"nas"` or `"companion"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupRole::Nas => "nas",
            SetupRole::Companion => "companion",
        }
    }

    /// Parses a setup role's name; `None` for anything else.
    pub fn parse(s: &str) -> Option<SetupRole> {
        SetupRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// State of a service PiNAS manages, as `GET /api/system/services` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
    /// It cannot run here (a program is missing, not root, dev mode).
    Unavailable,
}

/// One service's status: a role's process or a daemon a role manages (Samba, NFS),
/// e.g. `{"name":"smb","state":"running","detail":"smbd (pid 42) on port 445"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    /// The role's name (`web`, `dns`) or the daemon's (`smb`, `nfs`).
    pub name: String,
    pub state: ServiceState,
    /// What a person needs to know, e.g. why it is unavailable.
    pub detail: String,
}

/// Where a role's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Its own process: `pinas <subcommand>`, started by `unit`.
    Own {
        /// The `pinas` subcommand that runs it, e.g. `dns`.
        subcommand: &'static str,
        /// Its systemd unit in the image, e.g. `pinas-dns.service`.
        unit: &'static str,
        /// Whether it serves its control API on `<run_dir>/<name>.sock`, which the web
        /// role proxies at `/api/<name>/...` (see [`crate::role::serve_socket`]).
        socket: bool,
    },
    /// A library whose routes `pinas web` serves itself; it restarts with the web role.
    InWeb,
}

/// One role of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    /// Its name: the `/api/<name>` prefix, the socket's file name, the services entry.
    pub name: &'static str,
    /// One line for people: what it does.
    pub summary: &'static str,
    /// Where it runs.
    pub process: Process,
    /// The setup roles that run it: a box runs it when it has any of these.
    pub enabled_by: &'static [SetupRole],
}

impl RoleInfo {
    /// The `pinas` subcommand of a role with its own process.
    pub fn subcommand(&self) -> Option<&'static str> {
        match self.process {
            Process::Own { subcommand, .. } => Some(subcommand),
            Process::InWeb => None,
        }
    }

    /// The systemd unit of a role with its own process.
    pub fn unit(&self) -> Option<&'static str> {
        match self.process {
            Process::Own { unit, .. } => Some(unit),
            Process::InWeb => None,
        }
    }

    /// True when the role serves a control socket that the web role proxies.
    pub fn has_socket(&self) -> bool {
        matches!(self.process, Process::Own { socket: true, .. })
    }

    /// True when a box with `setup` (its setup roles) runs this role. An empty `setup`
    /// (setup not done yet) runs every role, so the wizard's box is complete.
    pub fn enabled_for(&self, setup: &[SetupRole]) -> bool {
        setup.is_empty() || self.enabled_by.iter().any(|r| setup.contains(r))
    }
}

const BOTH: &[SetupRole] = &[SetupRole::Nas, SetupRole::Companion];

/// Every role PiNAS has, the web role first.
pub const ROLES: &[RoleInfo] = &[
    RoleInfo {
        name: "web",
        summary: "HTTP(S) API and UI, accounts, setup wizard, system information",
        process: Process::Own {
            subcommand: "web",
            unit: "pinas-web.service",
            socket: false,
        },
        enabled_by: BOTH,
    },
    RoleInfo {
        name: "dns",
        summary: "DNS server: local records, the switch record, blocklists, cache, forwarding",
        process: Process::Own {
            subcommand: "dns",
            unit: "pinas-dns.service",
            socket: true,
        },
        enabled_by: BOTH,
    },
    RoleInfo {
        name: "companion",
        summary: "the big NAS beside it: Wake-on-LAN, heartbeat, handshake, snapshot, DNS switch",
        process: Process::Own {
            subcommand: "companion",
            unit: "pinas-companion.service",
            socket: true,
        },
        enabled_by: &[SetupRole::Companion],
    },
    RoleInfo {
        name: "power",
        summary: "Tapo P110 plugs: power, energy history, NAS running time and cost",
        process: Process::Own {
            subcommand: "power",
            unit: "pinas-power.service",
            socket: true,
        },
        enabled_by: BOTH,
    },
    RoleInfo {
        name: "storage",
        summary: "disks, filesystems, mounts, hotplug, S.M.A.R.T.",
        process: Process::InWeb,
        enabled_by: &[SetupRole::Nas],
    },
    RoleInfo {
        name: "shares",
        summary: "SMB and NFS shares, NAS users and groups",
        process: Process::InWeb,
        enabled_by: &[SetupRole::Nas],
    },
];

/// Paths under `/api/companion/` that the NAS calls with the pairing token instead of a
/// browser session (`POST` only); the companion role checks the token itself, so the web
/// role lets exactly these through without a session.
pub const COMPANION_TOKEN_PATHS: &[&str] = &[
    "snapshot",
    "nas-going-offline",
    "nas-coming-online",
    "wake-nas",
];

/// Paths of the original companion design that a NAS may already call (`POST`, pairing
/// token), and the companion path each one is: `/api/nas-going-offline` is
/// `/api/companion/nas-going-offline`.
pub const COMPANION_ALIASES: &[(&str, &str)] = &[
    ("/api/nas-going-offline", "nas-going-offline"),
    ("/api/nas-coming-online", "nas-coming-online"),
    ("/api/wake-nas", "wake-nas"),
];

/// The role named `name`.
pub fn get(name: &str) -> Option<&'static RoleInfo> {
    ROLES.iter().find(|r| r.name == name)
}

/// The roles whose control socket the web role proxies at `/api/<name>/...`.
pub fn proxied() -> impl Iterator<Item = &'static RoleInfo> {
    ROLES.iter().filter(|r| r.has_socket())
}

/// The systemd units of the roles a box with `setup` runs (every role's unit when
/// `setup` is empty), in registry order, e.g. `["pinas-web.service", "pinas-dns.service"]`.
pub fn units_for(setup: &[SetupRole]) -> Vec<&'static str> {
    ROLES
        .iter()
        .filter(|r| r.enabled_for(setup))
        .filter_map(RoleInfo::unit)
        .collect()
}

/// Parses the setup roles a client chose (e.g. the wizard's `["nas", "companion"]`):
/// sorted by name, without duplicates.
///
/// # Errors
/// The first name that is not a setup role, or `""` when `names` is empty.
pub fn parse_setup_roles<S: AsRef<str>>(names: &[S]) -> Result<Vec<SetupRole>, String> {
    if names.is_empty() {
        return Err(String::new());
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let r = SetupRole::parse(n.as_ref()).ok_or_else(|| n.as_ref().to_string())?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.as_str());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_subcommands_units_and_sockets_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ROLES {
            assert!(seen.insert(r.name), "role {} listed twice", r.name);
            assert!(!r.enabled_by.is_empty(), "{} runs on no box", r.name);
            if let Process::Own {
                subcommand, unit, ..
            } = r.process
            {
                assert_eq!(unit, format!("pinas-{subcommand}.service"));
            }
        }
        assert_eq!(ROLES[0].name, "web");
    }

    #[test]
    fn units_follow_the_setup_roles() {
        assert_eq!(
            units_for(&[SetupRole::Companion]),
            [
                "pinas-web.service",
                "pinas-dns.service",
                "pinas-companion.service",
                "pinas-power.service"
            ]
        );
        assert_eq!(
            units_for(&[SetupRole::Nas]),
            [
                "pinas-web.service",
                "pinas-dns.service",
                "pinas-power.service"
            ]
        );
        assert_eq!(units_for(&[]), units_for(&SetupRole::ALL));
        assert!(get("storage").unwrap().enabled_for(&[SetupRole::Nas]));
        assert!(!get("storage").unwrap().enabled_for(&[SetupRole::Companion]));
    }

    #[test]
    fn setup_roles_parse_strictly() {
        assert_eq!(
            parse_setup_roles(&["companion", "nas", "nas"]),
            Ok(vec![SetupRole::Companion, SetupRole::Nas])
        );
        assert_eq!(parse_setup_roles(&["power"]), Err("power".to_string()));
        assert_eq!(parse_setup_roles::<&str>(&[]), Err(String::new()));
        assert_eq!(parse_setup_roles(&["NAS"]), Err("NAS".to_string()));
    }
}
