//! Wake-on-LAN: the magic packet and where it is sent.
//!
//! The packet (AMD's "Magic Packet Technology" white paper, 1995) is 6 bytes of `0xFF`
//! followed by the target's 6-byte MAC address 16 times (102 bytes), optionally followed
//! by a 4- or 6-byte SecureOn password that some network cards require. It is sent as a
//! UDP datagram to the broadcast address of the interface that reaches the NAS, on
//! ports 9 (discard) and 7 (echo), the ones network cards and tools commonly use.
//!
//! Not for: deciding when to wake the NAS ([`crate::nas`] does).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

/// An Ethernet (EUI-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabbccddeeff` (any case).
    ///
    /// # Errors
    /// A message naming the text when it is not 6 bytes of hex in one of these forms.
    pub fn parse(text: &str) -> Result<Mac, String> {
        let bytes = parse_hex_bytes(text)
            .filter(|b| b.len() == 6)
            .ok_or_else(|| {
                format!("{text:?} is not a MAC address (six hex bytes, e.g. aa:bb:cc:dd:ee:ff)")
            })?;
        let mut m = [0u8; 6];
        m.copy_from_slice(&bytes);
        Ok(Mac(m))
    }
}

impl fmt::Display for Mac {
    /// Lower case with `:` between bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Hex bytes separated by `:` or `-` (all the same), or not separated at all.
fn parse_hex_bytes(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    let parts: Vec<&str> = if t.contains(':') {
        t.split(':').collect()
    } else if t.contains('-') {
        t.split('-').collect()
    } else {
        if !t.len().is_multiple_of(2) || !t.is_ascii() {
            return None;
        }
        (0..t.len()).step_by(2).map(|i| &t[i..i + 2]).collect()
    };
    parts
        .iter()
        .map(|p| {
            (p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect()
}

/// Parses a SecureOn password: 4 or 6 hex bytes, written like a MAC address.
///
/// # Errors
/// A message naming the text otherwise.
pub fn parse_secureon(text: &str) -> Result<Vec<u8>, String> {
    parse_hex_bytes(text)
        .filter(|b| b.len() == 4 || b.len() == 6)
        .ok_or_else(|| format!("{text:?} is not a SecureOn password (4 or 6 hex bytes)"))
}

/// The magic packet for `mac`: 102 bytes, or 106 / 108 with a SecureOn `password`.
pub fn magic_packet(mac: Mac, password: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(108);
    p.extend_from_slice(&[0xFF; 6]);
    for _ in 0..16 {
        p.extend_from_slice(&mac.0);
    }
    p.extend_from_slice(password);
    p
}

/// The broadcast address of the local interface that reaches `nas` (by the routing
/// table: the source address the kernel picks for it, then that interface's netmask).
/// `None` for `nas`: `255.255.255.255`, also when no interface holds the address.
pub fn broadcast_for(nas: Option<Ipv4Addr>) -> Ipv4Addr {
    let Some(nas) = nas else {
        return Ipv4Addr::BROADCAST;
    };
    let local = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| {
            s.connect((nas, 9))?;
            s.local_addr()
        })
        .ok()
        .and_then(|a| match a {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        });
    let Some(local) = local else {
        return Ipv4Addr::BROADCAST;
    };
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Ipv4Addr::BROADCAST;
    };
    for ifa in addrs {
        let Some(a) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        if a.ip() != local {
            continue;
        }
        if let Some(b) = ifa.broadcast.as_ref().and_then(|b| b.as_sockaddr_in()) {
            return b.ip();
        }
        if let Some(m) = ifa.netmask.as_ref().and_then(|m| m.as_sockaddr_in()) {
            return Ipv4Addr::from(u32::from(local) | !u32::from(m.ip()));
        }
    }
    Ipv4Addr::BROADCAST
}

/// Sends `packet` to `broadcast` on each of `ports`, from a socket allowed to broadcast.
/// Returns where it went, e.g. `["192.168.1.255:9", "192.168.1.255:7"]`.
///
/// # Errors
/// The I/O error of the first send that fails (no route, no permission), with the
/// address in the message.
pub fn send(packet: &[u8], broadcast: Ipv4Addr, ports: &[u16]) -> Result<Vec<String>, String> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.set_broadcast(true)
        .map_err(|e| format!("cannot enable broadcast: {e}"))?;
    let mut sent = Vec::with_capacity(ports.len());
    for &port in ports {
        let to = SocketAddrV4::new(broadcast, port);
        sock.send_to(packet, to)
            .map_err(|e| format!("cannot send the magic packet to {to}: {e}"))?;
        sent.push(to.to_string());
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_the_usual_forms_only() {
        let m = Mac([0xaa, 0xbb, 0xcc, 0x01, 0x02, 0x0f]);
        for t in ["aa:bb:cc:01:02:0f", "AA-BB-CC-01-02-0F", "aabbcc01020f"] {
            assert_eq!(Mac::parse(t), Ok(m), "{t}");
        }
        for t in [
            "",
            "aa:bb:cc:01:02",
            "aa:bb:cc:01:02:0f:00",
            "aa:bb-cc:01:02:0f",
            "gg:bb:cc:01:02:0f",
            "a:bb:cc:01:02:0f0",
        ] {
            assert!(Mac::parse(t).is_err(), "{t}");
        }
        assert_eq!(m.to_string(), "aa:bb:cc:01:02:0f");
    }

    #[test]
    fn the_packet_is_sync_then_sixteen_macs_then_the_password() {
        let m = Mac([1, 2, 3, 4, 5, 6]);
        let p = magic_packet(m, &[]);
        assert_eq!(p.len(), 102);
        assert_eq!(&p[..6], &[0xFF; 6]);
        for i in 0..16 {
            assert_eq!(&p[6 + i * 6..12 + i * 6], &m.0);
        }
        let p = magic_packet(m, &parse_secureon("de:ad:be:ef:00:01").unwrap());
        assert_eq!(p.len(), 108);
        assert_eq!(&p[102..], &[0xde, 0xad, 0xbe, 0xef, 0, 1]);
        assert!(parse_secureon("01:02:03").is_err());
    }

    #[test]
    fn loopback_nas_gets_the_loopback_broadcast_and_the_packet_arrives() {
        // The interface that reaches 127.0.0.1 is lo (127.0.0.1/8).
        let b = broadcast_for(Some(Ipv4Addr::LOCALHOST));
        assert!(
            b == Ipv4Addr::new(127, 255, 255, 255) || b == Ipv4Addr::BROADCAST,
            "{b}"
        );
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let port = rx.local_addr().unwrap().port();
        let p = magic_packet(Mac([9, 8, 7, 6, 5, 4]), &[]);
        let sent = send(&p, Ipv4Addr::LOCALHOST, &[port]).unwrap();
        assert_eq!(sent, [format!("127.0.0.1:{port}")]);
        let mut buf = [0u8; 200];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &p[..]);
        assert_eq!(broadcast_for(None), Ipv4Addr::BROADCAST);
    }
}
