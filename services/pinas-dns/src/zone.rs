//! Local records (A, AAAA, CNAME, PTR, wildcards) and conditional forwarding rules.
//!
//! Built from the database into an immutable [`LocalZone`] that the query path reads
//! without locks. Wildcards follow RFC 4592 loosely: `*.lab.home` answers any name below
//! `lab.home` that has no record of its own; the nearest wildcard wins. A and AAAA
//! records also answer the matching reverse (PTR) name, as Pi-hole's local DNS does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record};
use serde::{Deserialize, Serialize};

use crate::domains;
use crate::upstream::UpstreamAddr;

/// A record type PiNAS serves locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LocalType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "PTR")]
    Ptr,
}

impl LocalType {
    /// The name stored in the database: `A`, `AAAA`, `CNAME`, `PTR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalType::A => "A",
            LocalType::Aaaa => "AAAA",
            LocalType::Cname => "CNAME",
            LocalType::Ptr => "PTR",
        }
    }

    /// Parses the database name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "A" => LocalType::A,
            "AAAA" => LocalType::Aaaa,
            "CNAME" => LocalType::Cname,
            "PTR" => LocalType::Ptr,
            _ => return None,
        })
    }
}

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ptr(String),
}

/// Checks a record as a user entered it and returns the normalized owner name and data.
///
/// `name` may start with `*.` for a wildcard (not for PTR). A and AAAA values must be
/// addresses of that family; CNAME and PTR values must be domain names; a CNAME may not
/// point at itself.
///
/// # Errors
/// `(field, message)` naming the request field at fault.
pub fn validate(
    name: &str,
    rtype: LocalType,
    value: &str,
) -> Result<(String, LocalData), (&'static str, String)> {
    let (body, wildcard) = match name.trim().strip_prefix("*.") {
        Some(b) => (b, true),
        None => (name.trim(), false),
    };
    let Some(mut owner) = domains::normalize(body) else {
        return Err((
            "name",
            format!("{name:?} is not a domain name (wildcards look like *.lab.home)"),
        ));
    };
    if wildcard {
        if rtype == LocalType::Ptr {
            return Err(("name", "PTR records cannot be wildcards".into()));
        }
        owner = format!("*.{owner}");
    }
    let value = value.trim();
    let data = match rtype {
        LocalType::A => LocalData::A(
            value
                .parse()
                .map_err(|_| ("value", format!("{value:?} is not an IPv4 address")))?,
        ),
        LocalType::Aaaa => LocalData::Aaaa(
            value
                .parse()
                .map_err(|_| ("value", format!("{value:?} is not an IPv6 address")))?,
        ),
        LocalType::Cname | LocalType::Ptr => {
            let target = domains::normalize(value)
                .ok_or_else(|| ("value", format!("{value:?} is not a domain name")))?;
            if rtype == LocalType::Cname && target == owner {
                return Err(("value", "a CNAME cannot point at itself".into()));
            }
            if rtype == LocalType::Cname {
                LocalData::Cname(target)
            } else {
                LocalData::Ptr(target)
            }
        }
    };
    Ok((owner, data))
}

/// One record in the zone.
#[derive(Debug, Clone)]
pub struct LocalRecord {
    pub data: LocalData,
    pub ttl_secs: u32,
}

/// What the zone says about a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The name is not local.
    NotLocal,
    /// The chain of owner names and records answering the question (CNAMEs first, the
    /// final records last); `continue_with` is set when the chain ends in a CNAME whose
    /// target is not local and must be resolved upstream.
    Answer {
        records: Vec<(String, LocalData, u32)>,
        continue_with: Option<String>,
    },
}

/// A conditional forwarding rule: names in `domain` go to `server`.
#[derive(Debug, Clone)]
pub struct ForwardRule {
    pub domain: String,
    pub server: UpstreamAddr,
}

/// The local records and forwarding rules in force.
#[derive(Debug, Default)]
pub struct LocalZone {
    exact: HashMap<String, Vec<LocalRecord>>,
    /// Ready-made answers for names without a CNAME, by type (A, AAAA, PTR): the common
    /// case is answered by reference, without building records per query.
    ready: HashMap<String, [Option<Arc<[Record]>>; 3]>,
    /// Keyed by the part after `*.`.
    wildcards: HashMap<String, Vec<LocalRecord>>,
    forwards: Vec<ForwardRule>,
}

/// The reverse-lookup name of an address (RFC 1035 section 3.5, RFC 3596 section 2.5),
/// without the trailing dot.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                use std::fmt::Write;
                let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// Turns `192.168.1.0/24` (a /8, /16 or /24) into its reverse zone `1.168.192.in-addr.arpa`;
/// anything else is normalized as a domain name.
///
/// # Errors
/// A message when the input is neither.
pub fn forward_domain(input: &str) -> Result<String, String> {
    let input = input.trim();
    if let Some((ip, len)) = input.split_once('/') {
        let ip: Ipv4Addr = ip.parse().map_err(|_| {
            format!("{input:?}: only IPv4 networks are accepted, e.g. 192.168.1.0/24")
        })?;
        let o = ip.octets();
        return match len {
            "8" => Ok(format!("{}.in-addr.arpa", o[0])),
            "16" => Ok(format!("{}.{}.in-addr.arpa", o[1], o[0])),
            "24" => Ok(format!("{}.{}.{}.in-addr.arpa", o[2], o[1], o[0])),
            _ => Err(format!("{input:?}: the prefix length must be 8, 16 or 24")),
        };
    }
    domains::normalize(input)
        .ok_or_else(|| format!("{input:?} is not a domain name or an IPv4 network"))
}

impl LocalZone {
    /// Builds the zone from `(owner, data, ttl)` rows and forwarding rules.
    pub fn new(
        records: impl IntoIterator<Item = (String, LocalData, u32)>,
        forwards: Vec<ForwardRule>,
    ) -> Self {
        let mut z = LocalZone {
            forwards,
            ..Default::default()
        };
        let mut reverse = Vec::new();
        for (owner, data, ttl) in records {
            match &data {
                LocalData::A(ip) if !owner.starts_with("*.") => {
                    reverse.push((reverse_name((*ip).into()), owner.clone(), ttl))
                }
                LocalData::Aaaa(ip) if !owner.starts_with("*.") => {
                    reverse.push((reverse_name((*ip).into()), owner.clone(), ttl))
                }
                _ => {}
            }
            let rec = LocalRecord {
                data,
                ttl_secs: ttl,
            };
            match owner.strip_prefix("*.") {
                Some(base) => z.wildcards.entry(base.to_string()).or_default().push(rec),
                None => z.exact.entry(owner).or_default().push(rec),
            }
        }
        // Automatic PTRs only where the user did not write one.
        for (rev, target, ttl) in reverse {
            let e = z.exact.entry(rev).or_default();
            if e.iter()
                .all(|r| !matches!(&r.data, LocalData::Ptr(t) if *t == target))
            {
                e.push(LocalRecord {
                    data: LocalData::Ptr(target),
                    ttl_secs: ttl,
                });
            }
        }
        z.forwards
            .sort_by_key(|f| std::cmp::Reverse(f.domain.len()));
        for (owner, recs) in &z.exact {
            if recs
                .iter()
                .any(|r| matches!(r.data, LocalData::Cname(_)) || r.ttl_secs == 0)
            {
                continue;
            }
            let Ok(mut name) = Name::from_ascii(owner) else {
                continue;
            };
            name.set_fqdn(true);
            let mut by_type: [Vec<Record>; 3] = Default::default();
            for r in recs {
                let (i, d) = match &r.data {
                    LocalData::A(ip) => (0, RData::A(A(*ip))),
                    LocalData::Aaaa(ip) => (1, RData::AAAA(AAAA(*ip))),
                    LocalData::Ptr(t) => match Name::from_ascii(format!("{t}.")) {
                        Ok(t) => (2, RData::PTR(PTR(t))),
                        Err(_) => continue,
                    },
                    LocalData::Cname(_) => continue,
                };
                by_type[i].push(Record::from_rdata(name.clone(), r.ttl_secs, d));
            }
            let ready = by_type.map(|v| (!v.is_empty()).then(|| Arc::from(v)));
            z.ready.insert(owner.clone(), ready);
        }
        z
    }

    /// The ready-made answer for `name` and `qtype` (A, AAAA or PTR) when the name has
    /// records of that type and no CNAME; `None` sends the caller to [`LocalZone::lookup`].
    pub fn ready(
        &self,
        name: &str,
        qtype: hickory_proto::rr::RecordType,
    ) -> Option<&Arc<[Record]>> {
        use hickory_proto::rr::RecordType as T;
        let i = match qtype {
            T::A => 0,
            T::AAAA => 1,
            T::PTR => 2,
            _ => return None,
        };
        self.ready.get(name)?[i].as_ref()
    }

    /// True when there is no record and no forwarding rule.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty() && self.forwards.is_empty()
    }

    fn records_at(&self, name: &str) -> Option<&[LocalRecord]> {
        if let Some(r) = self.exact.get(name) {
            return Some(r);
        }
        if self.wildcards.is_empty() {
            return None;
        }
        domains::parents(name).find_map(|p| self.wildcards.get(p).map(Vec::as_slice))
    }

    /// Answers `name` (normalized) for `qtype` from local data, following CNAMEs within the
    /// zone (at most 8 steps, which also stops loops).
    pub fn lookup(&self, name: &str, qtype: hickory_proto::rr::RecordType) -> Lookup {
        use hickory_proto::rr::RecordType as T;
        if self.exact.is_empty() && self.wildcards.is_empty() {
            return Lookup::NotLocal;
        }
        let Some(first) = self.records_at(name) else {
            return Lookup::NotLocal;
        };
        let mut out = Vec::new();
        let mut owner = name.to_string();
        let mut recs = first;
        for _ in 0..8 {
            let cname = recs.iter().find_map(|r| match &r.data {
                LocalData::Cname(t) => Some((t, r.ttl_secs)),
                _ => None,
            });
            match cname {
                Some((target, ttl)) if qtype != T::CNAME => {
                    out.push((owner.clone(), LocalData::Cname(target.clone()), ttl));
                    match self.records_at(target) {
                        Some(next) => {
                            owner = target.clone();
                            recs = next;
                            continue;
                        }
                        None => {
                            return Lookup::Answer {
                                records: out,
                                continue_with: Some(target.clone()),
                            };
                        }
                    }
                }
                _ => {
                    for r in recs {
                        let t = match r.data {
                            LocalData::A(_) => T::A,
                            LocalData::Aaaa(_) => T::AAAA,
                            LocalData::Cname(_) => T::CNAME,
                            LocalData::Ptr(_) => T::PTR,
                        };
                        if t == qtype || qtype == T::ANY {
                            out.push((owner.clone(), r.data.clone(), r.ttl_secs));
                        }
                    }
                    return Lookup::Answer {
                        records: out,
                        continue_with: None,
                    };
                }
            }
        }
        Lookup::Answer {
            records: out,
            continue_with: None,
        }
    }

    /// The conditional forwarding rule for `name`, most specific domain first.
    pub fn forward_for(&self, name: &str) -> Option<&ForwardRule> {
        self.forwards.iter().find(|f| {
            name == f.domain
                || (name.len() > f.domain.len()
                    && name.ends_with(&f.domain)
                    && name.as_bytes()[name.len() - f.domain.len() - 1] == b'.')
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RecordType as T;

    fn zone() -> LocalZone {
        let rows = [
            ("printer.home", "A", "192.168.1.20"),
            ("printer.home", "AAAA", "fd00::20"),
            ("www.home", "CNAME", "web.home"),
            ("web.home", "CNAME", "printer.home"),
            ("*.lab.home", "A", "192.168.1.30"),
            ("special.lab.home", "A", "192.168.1.31"),
            ("ext.home", "CNAME", "example.org"),
            ("loop1.home", "CNAME", "loop2.home"),
            ("loop2.home", "CNAME", "loop1.home"),
        ];
        let recs = rows.iter().map(|(n, t, v)| {
            let (o, d) = validate(n, LocalType::parse(t).unwrap(), v).unwrap();
            (o, d, 300)
        });
        LocalZone::new(
            recs,
            vec![ForwardRule {
                domain: "1.168.192.in-addr.arpa".into(),
                server: "127.0.0.1:5300".parse().unwrap(),
            }],
        )
    }

    #[test]
    fn a_aaaa_and_nodata() {
        let z = zone();
        let Lookup::Answer { records, .. } = z.lookup("printer.home", T::A) else {
            panic!()
        };
        assert_eq!(
            records,
            [(
                "printer.home".into(),
                LocalData::A("192.168.1.20".parse().unwrap()),
                300
            )]
        );
        let Lookup::Answer { records, .. } = z.lookup("printer.home", T::MX) else {
            panic!()
        };
        assert!(records.is_empty());
        assert_eq!(z.lookup("nothere.home", T::A), Lookup::NotLocal);
    }

    #[test]
    fn cname_chain_wildcard_and_ptr() {
        let z = zone();
        let Lookup::Answer {
            records,
            continue_with,
        } = z.lookup("www.home", T::A)
        else {
            panic!()
        };
        assert_eq!(records.len(), 3);
        assert_eq!(continue_with, None);
        let Lookup::Answer { records, .. } = z.lookup("a.b.lab.home", T::A) else {
            panic!()
        };
        assert_eq!(records[0].1, LocalData::A("192.168.1.30".parse().unwrap()));
        let Lookup::Answer { records, .. } = z.lookup("special.lab.home", T::A) else {
            panic!()
        };
        assert_eq!(records[0].1, LocalData::A("192.168.1.31".parse().unwrap()));
        assert_eq!(z.lookup("lab.home", T::A), Lookup::NotLocal);
        let Lookup::Answer { records, .. } = z.lookup("20.1.168.192.in-addr.arpa", T::PTR) else {
            panic!()
        };
        assert_eq!(records[0].1, LocalData::Ptr("printer.home".into()));
        let Lookup::Answer { continue_with, .. } = z.lookup("ext.home", T::A) else {
            panic!()
        };
        assert_eq!(continue_with.as_deref(), Some("example.org"));
        // A loop ends after 8 steps instead of spinning.
        let Lookup::Answer { records, .. } = z.lookup("loop1.home", T::A) else {
            panic!()
        };
        assert_eq!(records.len(), 8);
    }

    #[test]
    fn ready_answers_match_lookup() {
        let z = zone();
        let r = z.ready("printer.home", T::A).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name.to_ascii(), "printer.home.");
        assert!(z.ready("printer.home", T::MX).is_none());
        assert!(
            z.ready("www.home", T::A).is_none(),
            "CNAME owners take the slow path"
        );
        assert!(
            z.ready("a.lab.home", T::A).is_none(),
            "wildcards take the slow path"
        );
        let p = z.ready("20.1.168.192.in-addr.arpa", T::PTR).unwrap();
        assert_eq!(
            p[0].data,
            RData::PTR(PTR(Name::from_ascii("printer.home.").unwrap()))
        );
    }

    #[test]
    fn forwards_and_validation() {
        let z = zone();
        assert!(z.forward_for("5.1.168.192.in-addr.arpa").is_some());
        assert!(z.forward_for("51.168.192.in-addr.arpa").is_none());
        assert_eq!(
            forward_domain("192.168.1.0/24").unwrap(),
            "1.168.192.in-addr.arpa"
        );
        assert_eq!(forward_domain("Home.").unwrap(), "home");
        assert!(forward_domain("10.0.0.0/12").is_err());
        assert_eq!(
            validate("x.home", LocalType::A, "::1").unwrap_err().0,
            "value"
        );
        assert_eq!(
            validate("bad name", LocalType::A, "1.2.3.4").unwrap_err().0,
            "name"
        );
        assert!(validate("*.x.home", LocalType::Ptr, "a.home").is_err());
        assert_eq!(
            reverse_name("::1".parse().unwrap()),
            format!("1.{}ip6.arpa", "0.".repeat(31))
        );
    }
}
