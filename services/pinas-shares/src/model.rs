//! Shares: the type stored in the `shares` table (see [`crate::store`]), the request
//! bodies that change them, and the rules their fields follow.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::SharesError;

/// A shared folder, exported over SMB and/or NFS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub id: i64,
    /// Name clients see (`\\pinas\<name>`); unique without regard to case.
    pub name: String,
    /// Absolute folder, resolved (symlinks followed) inside a data disk or the shares root.
    pub path: String,
    pub description: String,
    /// Nobody may write, whatever the folder permissions.
    pub read_only: bool,
    /// Clients without an account may connect as guest.
    pub guest_ok: bool,
    /// User names and `@group` names allowed; empty means every PiNAS user.
    pub valid_users: Vec<String>,
    /// Exported over SMB.
    pub smb: bool,
    /// Exported over NFS.
    pub nfs: bool,
    /// Hosts or networks allowed to mount over NFS (`192.168.1.0/24`, `nas.lan`, `*`).
    pub nfs_clients: Vec<String>,
}

/// `POST /api/shares` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub name: String,
    /// Absolute folder; created (group `users`, setgid, mode 2775) when missing.
    pub path: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub guest_ok: bool,
    #[serde(default)]
    pub valid_users: Vec<String>,
    #[serde(default = "yes")]
    pub smb: bool,
    #[serde(default)]
    pub nfs: bool,
    #[serde(default)]
    pub nfs_clients: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `PUT /api/shares/{id}` body: the fields to change (a whole share object works too).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareUpdate {
    /// Ignored (the id comes from the URL); accepted so a client can send back a share.
    pub id: Option<i64>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub description: Option<String>,
    pub read_only: Option<bool>,
    pub guest_ok: Option<bool>,
    pub valid_users: Option<Vec<String>>,
    pub smb: Option<bool>,
    pub nfs: Option<bool>,
    pub nfs_clients: Option<Vec<String>>,
}

impl ShareUpdate {
    /// `share` with this update's fields applied (path not yet resolved).
    pub fn apply_to(&self, share: &Share) -> Share {
        let mut s = share.clone();
        if let Some(v) = &self.name {
            s.name = v.clone();
        }
        if let Some(v) = &self.path {
            s.path = v.clone();
        }
        if let Some(v) = &self.description {
            s.description = v.clone();
        }
        if let Some(v) = self.read_only {
            s.read_only = v;
        }
        if let Some(v) = self.guest_ok {
            s.guest_ok = v;
        }
        if let Some(v) = &self.valid_users {
            s.valid_users = v.clone();
        }
        if let Some(v) = self.smb {
            s.smb = v;
        }
        if let Some(v) = self.nfs {
            s.nfs = v;
        }
        if let Some(v) = &self.nfs_clients {
            s.nfs_clients = v.clone();
        }
        s
    }
}

impl NewShare {
    /// As a share with id 0 (not stored yet).
    pub fn into_share(self) -> Share {
        Share {
            id: 0,
            name: self.name,
            path: self.path,
            description: self.description,
            read_only: self.read_only,
            guest_ok: self.guest_ok,
            valid_users: self.valid_users,
            smb: self.smb,
            nfs: self.nfs,
            nfs_clients: self.nfs_clients,
        }
    }
}

const RESERVED_SHARE_NAMES: [&str; 5] = ["global", "homes", "printers", "ipc$", "print$"];

/// Checks a share name: 1–64 characters of ASCII letters, digits, space, `_`, `-`, `.`,
/// starting with a letter or digit, not ending with a space, optionally ending with `$`
/// (hidden from browsing); not one of Samba's special section names.
///
/// # Errors
/// [`SharesError::InvalidShareName`].
pub fn check_share_name(name: &str) -> Result<(), SharesError> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 64
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && !body.ends_with(' ')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.".contains(c))
        && !RESERVED_SHARE_NAMES.contains(&name.to_ascii_lowercase().as_str());
    if ok {
        Ok(())
    } else {
        Err(SharesError::InvalidShareName(name.to_string()))
    }
}

/// Checks one NFS client spec (exports(5)): `*`, an IP address, a network in CIDR form,
/// or a host name (wildcards `*` and `?` allowed).
///
/// # Errors
/// [`SharesError::InvalidNfsClient`].
pub fn check_nfs_client(c: &str) -> Result<(), SharesError> {
    let bad = || SharesError::InvalidNfsClient(c.to_string());
    if c == "*" {
        return Ok(());
    }
    if let Some((addr, prefix)) = c.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let p: u8 = prefix.parse().map_err(|_| bad())?;
        return if p <= max { Ok(()) } else { Err(bad()) };
    }
    if c.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host_ok = !c.is_empty()
        && c.len() <= 253
        && !c.starts_with(['-', '.'])
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-.*?".contains(ch));
    if host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks the fields that need no database or filesystem: name, description, NFS
/// clients, path characters. Trims names and drops duplicate list entries.
///
/// # Errors
/// The [`SharesError`] of the first bad field.
pub fn normalize(share: &mut Share) -> Result<(), SharesError> {
    check_share_name(&share.name)?;
    if share.description.chars().count() > 256 {
        return Err(SharesError::InvalidDescription);
    }
    // smb.conf values are single lines.
    share.description = share
        .description
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string();
    if share
        .path
        .chars()
        .any(|c| c.is_control() || c == '%' || c == '"')
    {
        return Err(SharesError::InvalidPath(share.path.clone()));
    }
    dedup(&mut share.valid_users);
    dedup(&mut share.nfs_clients);
    for c in &share.nfs_clients {
        check_nfs_client(c)?;
    }
    if share.nfs && share.nfs_clients.is_empty() {
        return Err(SharesError::NfsClientsRequired);
    }
    Ok(())
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.trim().to_string()));
    for x in v.iter_mut() {
        *x = x.trim().to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_names() {
        for ok in ["media", "Photos 2024", "a", "backup$", "x.y-z_1"] {
            check_share_name(ok).unwrap();
        }
        for bad in [
            "",
            "global",
            "IPC$",
            "homes",
            " x",
            "x ",
            "a/b",
            "a]b",
            "$",
            "-x",
            &"x".repeat(65),
            "a\nb",
            "é",
        ] {
            assert!(check_share_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nfs_clients() {
        for ok in [
            "*",
            "192.168.1.0/24",
            "10.0.0.5",
            "fd00::/8",
            "nas.lan",
            "*.lan",
        ] {
            check_nfs_client(ok).unwrap();
        }
        for bad in ["", "1.2.3.4/33", "a b", "host(rw)", "-x", "1.2.3.4/x"] {
            assert!(check_nfs_client(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn normalize_cleans_and_checks() {
        let mut s = NewShare {
            name: "media".into(),
            path: "/x".into(),
            description: "line1\nline2".into(),
            read_only: false,
            guest_ok: false,
            valid_users: vec!["alice".into(), " alice".into()],
            smb: true,
            nfs: false,
            nfs_clients: vec![],
        }
        .into_share();
        normalize(&mut s).unwrap();
        assert_eq!(s.description, "line1 line2");
        assert_eq!(s.valid_users, ["alice"]);
        s.nfs = true;
        assert!(matches!(
            normalize(&mut s),
            Err(SharesError::NfsClientsRequired)
        ));
        s.nfs = false;
        s.path = "/x%y".into();
        assert!(matches!(
            normalize(&mut s),
            Err(SharesError::InvalidPath(_))
        ));
    }
}
