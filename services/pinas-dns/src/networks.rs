//! Which clients the DNS server answers: the allowed networks (what Pi-hole calls
//! "Permit only local requests").
//!
//! A server that answers anyone on the Internet is an open resolver, used to amplify
//! attacks on third parties (RFC 5358). By default PiNAS answers only the home network:
//! the entry `local` stands for loopback, the private ranges of RFC 1918, IPv4 and IPv6
//! link-local, IPv6 unique local addresses (RFC 4193) and the subnets of the box's own
//! interfaces. Other entries are networks in CIDR notation (`203.0.113.0/24`,
//! `2001:db8::/32`) or single addresses. Clients elsewhere get REFUSED.
//!
//! Not for: rate limits ([`crate::rrl`]) or who may use the control API.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The entry standing for the home network.
pub const LOCAL: &str = "local";

/// Most entries in the list.
pub const MAX_ENTRIES: usize = 64;

/// The fixed part of `local`: loopback, RFC 1918, link-local, ULA.
const LOCAL_NETS: [&str; 8] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The default list: `["local"]`.
pub fn default_list() -> Vec<String> {
    vec![LOCAL.to_string()]
}

/// An entry that is neither `local` nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not a network (expected \"local\", an address, or a network such as 192.168.1.0/24)")]
pub struct InvalidNetwork {
    pub entry: String,
}

/// One entry, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Local,
    Net(IpNet),
}

/// Parses one entry: `local`, `IP/prefix` (host bits are ignored) or a single `IP`.
///
/// # Errors
/// [`InvalidNetwork`] quoting the entry.
pub fn parse_entry(s: &str) -> Result<Entry, InvalidNetwork> {
    let s = s.trim();
    if s.eq_ignore_ascii_case(LOCAL) {
        return Ok(Entry::Local);
    }
    let net = match s.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => IpNet::from(s.parse::<IpAddr>().map_err(|_| InvalidNetwork {
            entry: s.to_string(),
        })?),
    };
    Ok(Entry::Net(net))
}

/// The subnets of this host's interfaces (addresses with their prefixes), as the kernel
/// reports them now.
pub fn interface_networks() -> Vec<IpNet> {
    let nets = sysinfo::Networks::new_with_refreshed_list();
    let mut out: Vec<IpNet> = nets
        .values()
        .flat_map(|d| d.ip_networks())
        .filter_map(|n| IpNet::new(n.addr, n.prefix).ok())
        .map(|n| n.trunc())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The networks in force, split by family for a quick check on every query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl AllowedNetworks {
    /// Builds the set from checked `entries`, expanding `local` with `interfaces` (see
    /// [`interface_networks`]).
    pub fn new(entries: &[Entry], interfaces: &[IpNet]) -> Self {
        let mut nets: Vec<IpNet> = Vec::new();
        for e in entries {
            match e {
                Entry::Local => {
                    nets.extend(LOCAL_NETS.iter().filter_map(|n| n.parse::<IpNet>().ok()));
                    nets.extend(interfaces.iter().copied());
                }
                Entry::Net(n) => nets.push(*n),
            }
        }
        let nets = IpNet::aggregate(&nets);
        let mut set = AllowedNetworks::default();
        for n in nets {
            match n {
                IpNet::V4(n) => set.v4.push(n),
                IpNet::V6(n) => set.v6.push(n),
            }
        }
        set
    }

    /// Parses and builds in one step.
    ///
    /// # Errors
    /// [`InvalidNetwork`] for the first entry that does not parse.
    pub fn parse(entries: &[String], interfaces: &[IpNet]) -> Result<Self, InvalidNetwork> {
        let parsed = entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(&parsed, interfaces))
    }

    /// Whether `ip` may be answered. IPv4 clients reaching an IPv6 socket
    /// (`::ffff:a.b.c.d`) are checked as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.iter().any(|n| n.contains(&a)),
            IpAddr::V6(a) => self.v6.iter().any(|n| n.contains(&a)),
        }
    }

    /// The networks, aggregated, for display.
    pub fn networks(&self) -> Vec<IpNet> {
        self.v4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(self.v6.iter().map(|n| IpNet::V6(*n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_means_home_networks_and_own_subnets() {
        let own = vec!["203.0.113.0/24".parse().unwrap()];
        let a = AllowedNetworks::parse(&default_list(), &own).unwrap();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.20",
            "169.254.1.1",
            "::1",
            "fd00::20",
            "fe80::1",
            "::ffff:192.168.1.20",
            "203.0.113.9",
        ] {
            assert!(a.allows(ip(ok)), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!a.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn entries_are_networks_or_addresses() {
        let a =
            AllowedNetworks::parse(&["198.51.100.7".into(), "2001:db8::1/48".into()], &[]).unwrap();
        assert!(a.allows(ip("198.51.100.7")));
        assert!(!a.allows(ip("198.51.100.8")));
        assert!(a.allows(ip("2001:db8:0:ffff::1")));
        assert!(!a.allows(ip("127.0.0.1")));
        for bad in ["", "10.0.0.0/33", "lan", "10.0.0/8"] {
            assert_eq!(parse_entry(bad).unwrap_err().entry, bad, "{bad}");
        }
        assert_eq!(parse_entry(" LOCAL ").unwrap(), Entry::Local);
    }
}
