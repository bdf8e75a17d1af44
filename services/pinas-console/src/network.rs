//! Static addresses as systemd-networkd `.network` files.
//!
//! The file format is systemd.network(5). The file is written to the network folder that
//! the initramfs binds from `/storage/.system/network` to `/etc/systemd/network`, so it
//! survives reboots and updates, and sorts before the image's DHCP default
//! (`/usr/lib/systemd/network/80-pinas-ethernet.network`), which it therefore overrides.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use crate::ConsoleError;

/// File name of the static configuration inside the network folder.
pub const STATIC_FILE: &str = "10-pinas-static.network";

/// A static IPv4 or IPv6 address for one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAddress {
    /// Interface name, e.g. `eth0` or `end0`.
    pub interface: String,
    /// The address itself.
    pub address: IpAddr,
    /// Prefix length in bits (0–32 for IPv4, 0–128 for IPv6).
    pub prefix_len: u8,
    /// Default gateway, if any; same family as `address`.
    pub gateway: Option<IpAddr>,
    /// DNS servers, in order.
    pub dns: Vec<IpAddr>,
}

/// Parses `ADDRESS/PREFIX` (e.g. `192.168.1.20/24`, `fd00::20/64`).
///
/// # Errors
/// [`ConsoleError::Invalid`] naming what is wrong: no `/`, not an IP address, or a prefix
/// out of range for the address family.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), ConsoleError> {
    let s = s.trim();
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(ConsoleError::Invalid(format!(
            "{s:?}: give the address with its prefix, like 192.168.1.20/24"
        )));
    };
    // ipnet keeps the host bits, so the host address survives beside its prefix.
    let net: ipnet::IpNet = s.parse().map_err(|_| {
        ConsoleError::Invalid(match (addr.parse::<IpAddr>(), prefix.parse::<u8>()) {
            (Err(_), _) => format!("{addr:?} is not an IPv4 or IPv6 address"),
            (Ok(_), Err(_)) => format!("{prefix:?} is not a prefix length"),
            (Ok(a), Ok(p)) => {
                format!(
                    "prefix /{p} is longer than {} bits",
                    if a.is_ipv4() { 32 } else { 128 }
                )
            }
        })
    })?;
    let (addr, prefix) = (net.addr(), net.prefix_len());
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(ConsoleError::Invalid(format!(
            "{addr} cannot be a host address"
        )));
    }
    Ok((addr, prefix))
}

/// Parses one IP address (gateway or DNS server).
///
/// # Errors
/// [`ConsoleError::Invalid`] when `s` is not an IPv4 or IPv6 address.
pub fn parse_ip(s: &str) -> Result<IpAddr, ConsoleError> {
    s.trim().parse().map_err(|_| {
        ConsoleError::Invalid(format!("{:?} is not an IPv4 or IPv6 address", s.trim()))
    })
}

/// Checks an interface name the way the kernel would accept it (1–15 bytes, no `/`,
/// whitespace or `:`), so it can go into the file unquoted.
///
/// # Errors
/// [`ConsoleError::Invalid`] for an empty, too long or malformed name.
pub fn check_interface(name: &str) -> Result<(), ConsoleError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ConsoleError::Invalid(format!(
            "{name:?} is not an interface name"
        )))
    }
}

impl StaticAddress {
    /// Validates the whole configuration (interface name, gateway family).
    ///
    /// # Errors
    /// [`ConsoleError::Invalid`] describing the first problem.
    pub fn validate(&self) -> Result<(), ConsoleError> {
        check_interface(&self.interface)?;
        if let Some(gw) = self.gateway {
            if gw.is_ipv4() != self.address.is_ipv4() {
                return Err(ConsoleError::Invalid(format!(
                    "gateway {gw} is not the same IP version as {}",
                    self.address
                )));
            }
        }
        Ok(())
    }

    /// The `.network` file text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by `pinas console`: static address for {}.",
            self.interface
        );
        let _ = writeln!(s, "[Match]\nName={}\n", self.interface);
        let _ = writeln!(s, "[Network]\nAddress={}/{}", self.address, self.prefix_len);
        if let Some(gw) = self.gateway {
            let _ = writeln!(s, "Gateway={gw}");
        }
        for d in &self.dns {
            let _ = writeln!(s, "DNS={d}");
        }
        let _ = writeln!(s, "LinkLocalAddressing=ipv6");
        s
    }

    /// Validates and writes the file atomically into `network_dir`.
    ///
    /// # Errors
    /// [`ConsoleError::Invalid`] from [`StaticAddress::validate`]; [`ConsoleError::Io`]
    /// when the file cannot be written.
    pub fn write(&self, network_dir: &Path) -> Result<(), ConsoleError> {
        self.validate()?;
        let path = network_dir.join(STATIC_FILE);
        pinas_core::fsutil::write_atomic(&path, self.render().as_bytes(), 0o644)
            .map_err(|e| ConsoleError::Io(format!("cannot write {}", path.display()), e))
    }
}

/// Removes the static configuration so DHCP applies again. Succeeds if there was none.
///
/// # Errors
/// [`ConsoleError::Io`] when the file exists but cannot be removed.
pub fn remove_static(network_dir: &Path) -> Result<bool, ConsoleError> {
    let path = network_dir.join(STATIC_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ConsoleError::Io(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_accepts_v4_and_v6() {
        assert_eq!(
            parse_cidr("192.168.1.20/24").unwrap(),
            ("192.168.1.20".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr(" fd00::20/64 ").unwrap(),
            ("fd00::20".parse().unwrap(), 64)
        );
    }

    #[test]
    fn cidr_rejects_bad_input_with_reason() {
        for (input, needle) in [
            ("192.168.1.20", "prefix"),
            ("192.168.1.300/24", "not an IPv4"),
            ("10.0.0.1/33", "longer than 32"),
            ("10.0.0.1/x", "prefix length"),
            ("0.0.0.0/8", "cannot be a host"),
            ("fd00::1/129", "longer than 128"),
        ] {
            let e = parse_cidr(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn render_and_write_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let a = StaticAddress {
            interface: "end0".into(),
            address: "192.168.1.20".parse().unwrap(),
            prefix_len: 24,
            gateway: Some("192.168.1.1".parse().unwrap()),
            dns: vec!["192.168.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()],
        };
        a.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(STATIC_FILE)).unwrap();
        assert!(text.contains("[Match]\nName=end0\n"));
        assert!(text.contains(
            "Address=192.168.1.20/24\nGateway=192.168.1.1\nDNS=192.168.1.1\nDNS=9.9.9.9\n"
        ));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert!(remove_static(dir.path()).unwrap());
        assert!(!remove_static(dir.path()).unwrap());
    }

    #[test]
    fn rejects_mixed_families_and_bad_interface() {
        let mut a = StaticAddress {
            interface: "eth0".into(),
            address: "10.0.0.2".parse().unwrap(),
            prefix_len: 8,
            gateway: Some("fd00::1".parse().unwrap()),
            dns: vec![],
        };
        assert!(a
            .validate()
            .unwrap_err()
            .to_string()
            .contains("same IP version"));
        a.gateway = None;
        a.interface = "eth0\nDNS=1.2.3.4".into();
        assert!(a.validate().is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(a.write(dir.path()).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
