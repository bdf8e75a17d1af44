//! The plugs an admin adds: their checks, and their Tapo accounts, which are kept out of
//! the database in `<state_dir>/power/credentials.json` (mode 0600, written whole and
//! atomically), never returned by the API and never logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PowerError;
use crate::klap::Credentials;

/// The credentials file's name inside the role's folder.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// A plug to add, as `POST /api/power/plugs` takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewPlug {
    /// Shown to people, 1 to 64 characters, unique, e.g. `NAS`.
    pub name: String,
    /// The plug's IP address or host name, with `:port` when not 80, e.g. `192.168.1.50`.
    pub address: String,
    /// The Tapo account's e-mail address (as in the Tapo app, case-sensitive).
    pub email: String,
    /// The Tapo account's password. Write only.
    pub password: String,
    /// This plug powers the NAS (the mark moves here from another plug).
    #[serde(default)]
    pub is_nas: bool,
    /// Allow admins to switch it on and off from PiNAS (default off).
    #[serde(default)]
    pub switchable: bool,
}

/// Changes to a plug, as `PATCH /api/power/plugs/{id}` takes them: absent fields keep
/// their value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PlugChange {
    pub name: Option<String>,
    pub address: Option<String>,
    pub email: Option<String>,
    /// Write only.
    pub password: Option<String>,
    pub is_nas: Option<bool>,
    pub switchable: Option<bool>,
}

/// `name` trimmed, if it is 1 to 64 characters without control characters.
///
/// # Errors
/// 422 `invalid_plug_name`.
pub fn check_name(name: &str) -> Result<String, PowerError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(PowerError::invalid(
            "invalid_plug_name",
            "name",
            format!("plug name {name:?} must be 1 to 64 characters without control characters"),
        ));
    }
    Ok(n.to_string())
}

/// `address` if it is an IPv4 address or a host name, with an optional `:port` (1 to
/// 65535), or a bracketed IPv6 address (`[fd00::5]:8080`).
///
/// # Errors
/// 422 `invalid_address` naming the value.
pub fn check_address(address: &str) -> Result<String, PowerError> {
    let a = address.trim();
    let bad = || {
        PowerError::invalid(
            "invalid_address",
            "address",
            format!("{address:?} is not a plug address: give an IP address or host name, with :port when not 80"),
        )
    };
    if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
        return if sa.port() == 0 {
            Err(bad())
        } else {
            Ok(sa.to_string())
        };
    }
    if a.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(a.to_string());
    }
    if let Ok(v6) = a.parse::<std::net::Ipv6Addr>() {
        return Ok(format!("[{v6}]"));
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (a, None),
    };
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(bad());
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(a.to_ascii_lowercase())
}

/// The account if both parts are usable.
///
/// # Errors
/// 422 `invalid_email` or `invalid_password`.
pub fn check_credentials(email: &str, password: &str) -> Result<Credentials, PowerError> {
    if email.is_empty()
        || email.len() > 254
        || !email.contains('@')
        || email.chars().any(char::is_control)
    {
        return Err(PowerError::invalid(
            "invalid_email",
            "email",
            "the Tapo account's e-mail address must be 1 to 254 characters with an @",
        ));
    }
    if password.is_empty() || password.len() > 256 {
        return Err(PowerError::invalid(
            "invalid_password",
            "password",
            "the Tapo account's password must be 1 to 256 bytes",
        ));
    }
    Ok(Credentials {
        email: email.to_string(),
        password: password.to_string(),
    })
}

/// The plugs' Tapo accounts by plug id, as kept in `credentials.json`.
#[derive(Debug)]
pub struct Vault {
    path: PathBuf,
    accounts: std::sync::Mutex<BTreeMap<i64, Credentials>>,
}

impl Vault {
    /// Reads `<dir>/credentials.json` (absent: no accounts).
    ///
    /// # Errors
    /// 503 `power_state_unavailable` when it cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Vault, PowerError> {
        let path = dir.join(CREDENTIALS_FILE);
        let accounts = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                PowerError::unavailable(
                    "power_state_unavailable",
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(PowerError::unavailable(
                    "power_state_unavailable",
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        Ok(Vault {
            path,
            accounts: std::sync::Mutex::new(accounts),
        })
    }

    /// Plug `id`'s account.
    pub fn get(&self, id: i64) -> Option<Credentials> {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Sets (`Some`) or removes (`None`) plug `id`'s account and writes the file.
    ///
    /// # Errors
    /// 503 when the file cannot be written (the accounts in memory are left unchanged).
    pub fn set(&self, id: i64, creds: Option<Credentials>) -> Result<(), PowerError> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = accounts.clone();
        match creds {
            Some(c) => next.insert(id, c),
            None => next.remove(&id),
        };
        let json = serde_json::to_vec(&next).map_err(|e| PowerError::internal(e.to_string()))?;
        pinas_core::fsutil::write_atomic(&self.path, &json, 0o600).map_err(|e| {
            PowerError::unavailable(
                "power_state_unavailable",
                format!("cannot write {}: {e}", self.path.display()),
            )
        })?;
        *accounts = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hosts_or_ips_with_an_optional_port() {
        for ok in [
            "192.168.1.50",
            "192.168.1.50:8080",
            "plug-1.lan",
            "Plug.LAN:80",
            "[fd00::5]:80",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        assert_eq!(check_address("fd00::5").unwrap(), "[fd00::5]");
        for bad in [
            "",
            "http://1.2.3.4",
            "1.2.3.4:0",
            "1.2.3.4:99999",
            "a b",
            "host/path",
            "-x.lan",
        ] {
            let e = check_address(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_address", "{bad}");
        }
    }

    #[test]
    fn the_vault_file_is_private_and_survives_a_reload() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::load(dir.path()).unwrap();
        let c = check_credentials("a@example.com", "pw").unwrap();
        v.set(3, Some(c.clone())).unwrap();
        let mode = std::fs::metadata(dir.path().join(CREDENTIALS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Vault::load(dir.path()).unwrap().get(3), Some(c));
        v.set(3, None).unwrap();
        assert_eq!(Vault::load(dir.path()).unwrap().get(3), None);
    }
}
