//! Finding Tapo plugs on the LAN: the TP-Link Device Protocol (TDP) probe broadcast to
//! UDP port 20002 and the JSON answer each device sends back.
//!
//! The protocol facts come from python-kasa's `kasa/discover.py` (`_AesDiscoveryQuery`,
//! `Discover._get_discovery_json`, `DiscoveryResult`), which cites WithSecure's advisory
//! on the TDP header (labs.withsecure.com, "tp-link-ac1750-pwn2own-2019"):
//!
//! - the probe is a 16-byte header and a JSON payload `{"params":{"rsa_key":"<PEM>"}}`;
//! - the header is, big-endian: version `2` (u8), message type `0` (u8), op code `1`
//!   (probe, u16), the payload's length (u16), flags `0x11` (u8), a zero byte, a random
//!   serial (u32), and a CRC-32 (IEEE) of the whole packet, computed with the field set to
//!   `0x5A6B7C8D` and then written over it;
//! - a device answers from port 20002 with a 16-byte header of its own and a JSON object
//!   `{"error_code":0,"result":{...}}` whose `result` has `device_type`
//!   (`SMART.TAPOPLUG`), `device_model` (`P110(EU)`), `ip`, `mac` (`AA-BB-CC-DD-EE-FF`)
//!   and `mgt_encrypt_schm` (`encrypt_type` `KLAP` or `AES`, `http_port`, `lv`, the
//!   KLAP login version).
//!
//! The RSA key in the probe lets hubs and cameras send an encrypted `encrypt_info`; plugs
//! send everything above in clear, and PiNAS reads nothing else, so the probe carries a
//! fixed public key ([`PUBLIC_KEY_PEM`], made for PiNAS) whose private half is not kept.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PowerError;

/// The UDP port Tapo devices listen on for the probe (and answer from).
pub const PORT: u16 = 20002;
/// How long to listen for answers when the caller does not say, ms.
pub const DEFAULT_WAIT_MS: u64 = 3000;
/// The shortest and longest wait a caller may ask for, ms.
pub const WAIT_RANGE_MS: (u64, u64) = (200, 10_000);
/// Probes sent per target during the wait (UDP may drop one), evenly spread.
pub const PROBES: u32 = 3;

/// The CRC field's value while the CRC is computed.
const INITIAL_CRC: u32 = 0x5A6B_7C8D;

/// An RSA-2048 public key, generated for PiNAS; see the module documentation.
pub const PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA42HLV6WvPt+/NxeR/NLo
VWulmHsAJ15xFhe55N80HcVLfjrQmsJwqn2jH1xy9wSSHlgZIVKaO7HcEDuLWWNz
zEWQhUBSt+SZYsiq3Pjk03KqRT5tmk+0Qkg2GE3r0xcqCBwsO8CHlPc0rg9snY2z
+Vro0fdGCKrAINs9taYhy8n0+1sTGB6LW/YZQlwxHedBR88qMBE+GJ79iX4IPWxG
WoQZDjDW40pFJ22DVHj00Pj2nDn+ulcH1NMfCUV6nHSrdNJV2KtOqrJc+0k6WdpV
1xD7ReVRfRIn9iTdt9Qlncx9BhlSphQOTKKSrjy+8+9ai0zTc2jf1CWAbFJ5fIK8
swIDAQAB
-----END PUBLIC KEY-----
";

/// CRC-32 as zlib computes it (IEEE 802.3 polynomial, reflected, `0xFFFFFFFF` in and
/// out), bit by bit: packets are a few hundred bytes.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A TDP packet: the 16-byte header around `payload` (op code 1), with `serial` and
/// the CRC filled in.
pub fn packet(serial: u32, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut p = Vec::with_capacity(16 + payload.len());
    p.push(2); // version
    p.push(0); // message type
    p.extend_from_slice(&1u16.to_be_bytes()); // op code: probe
    p.extend_from_slice(&len.to_be_bytes());
    p.push(0x11); // flags
    p.push(0);
    p.extend_from_slice(&serial.to_be_bytes());
    p.extend_from_slice(&INITIAL_CRC.to_be_bytes());
    p.extend_from_slice(payload);
    let crc = crc32(&p);
    p[12..16].copy_from_slice(&crc.to_be_bytes());
    p
}

/// The probe PiNAS broadcasts.
pub fn probe(serial: u32) -> Vec<u8> {
    let payload = serde_json::json!({"params": {"rsa_key": PUBLIC_KEY_PEM}}).to_string();
    packet(serial, payload.as_bytes())
}

/// True when `p` is a TDP packet whose header and CRC check out.
pub fn packet_ok(p: &[u8]) -> bool {
    if p.len() < 16 || p[0] != 2 {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
    if p.len() != 16 + len {
        return false;
    }
    let crc = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
    let mut copy = p.to_vec();
    copy[12..16].copy_from_slice(&INITIAL_CRC.to_be_bytes());
    crc32(&copy) == crc
}

/// A device that answered the probe.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Found {
    /// The address the answer came from (what to add the plug with).
    pub ip: String,
    /// `AA:BB:CC:DD:EE:FF`.
    pub mac: String,
    /// The model without its region, e.g. `P110`.
    pub model: String,
    /// As the device names itself, e.g. `P110(EU)`.
    pub device_model: String,
    /// `SMART.TAPOPLUG` for plugs.
    pub device_type: String,
    /// `KLAP` (what PiNAS speaks) or `AES` (securePassthrough, older firmware).
    pub encrypt_type: Option<String>,
    /// The KLAP login version (`2` for v2 handshakes), when it says.
    pub login_version: Option<i64>,
    /// The device's HTTP port, when it says.
    pub http_port: Option<u16>,
    /// True for plugs (`SMART.TAPOPLUG`), the devices PiNAS samples.
    pub is_plug: bool,
    /// The plug already added at this address, if any.
    pub plug_id: Option<i64>,
    pub already_added: bool,
}

/// Reads a device's answer from `from`.
///
/// # Errors
/// A message saying what is wrong with it (too short, not JSON, an error code, fields
/// missing).
pub fn parse_answer(data: &[u8], from: IpAddr) -> Result<Found, String> {
    let body = data.get(16..).ok_or("shorter than a TDP header")?;
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(code) = v.get("error_code").and_then(Value::as_i64) {
        if code != 0 {
            return Err(format!("error code {code}"));
        }
    }
    let r = v.get("result").ok_or("no result")?;
    let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let device_model = text("device_model").ok_or("no device_model")?;
    let device_type = text("device_type").ok_or("no device_type")?;
    let mac = text("mac")
        .ok_or("no mac")?
        .replace('-', ":")
        .to_uppercase();
    let schm = r.get("mgt_encrypt_schm");
    let model = device_model
        .split_once('(')
        .map_or(device_model.as_str(), |(m, _)| m)
        .to_string();
    Ok(Found {
        ip: from.to_string(),
        mac,
        model,
        is_plug: device_type == "SMART.TAPOPLUG",
        device_model,
        device_type,
        encrypt_type: schm
            .and_then(|s| s.get("encrypt_type"))
            .and_then(Value::as_str)
            .map(str::to_string),
        login_version: schm.and_then(|s| s.get("lv")).and_then(Value::as_i64),
        http_port: schm
            .and_then(|s| s.get("http_port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok()),
        plug_id: None,
        already_added: false,
    })
}

/// `POST /api/power/discover`: where to ask and how long to listen. Every field may be
/// left out.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// An IPv4 broadcast address (e.g. `192.168.1.255`) or one device's address;
    /// absent: `255.255.255.255` and the broadcast address of every IPv4 interface.
    pub target: Option<String>,
    /// How long to listen for answers, ms (200 to 10000; 3000 when absent).
    pub wait_ms: Option<u64>,
}

/// The checked request: the addresses to probe and the wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub targets: Vec<SocketAddr>,
    pub wait: Duration,
}

impl DiscoverRequest {
    /// Checks the request and names the targets (port [`PORT`]).
    ///
    /// # Errors
    /// 422 `invalid_target` (field `target`) for anything but an IPv4 address;
    /// 422 `invalid_wait` (field `wait_ms`) outside [`WAIT_RANGE_MS`].
    pub fn plan(&self) -> Result<Plan, PowerError> {
        let wait_ms = self.wait_ms.unwrap_or(DEFAULT_WAIT_MS);
        if !(WAIT_RANGE_MS.0..=WAIT_RANGE_MS.1).contains(&wait_ms) {
            return Err(PowerError::invalid(
                "invalid_wait",
                "wait_ms",
                format!(
                    "wait_ms must be {} to {} ms, not {wait_ms}",
                    WAIT_RANGE_MS.0, WAIT_RANGE_MS.1
                ),
            ));
        }
        let targets = match self.target.as_deref().map(str::trim) {
            Some(t) => {
                let ip: Ipv4Addr = t.parse().map_err(|_| {
                    PowerError::invalid(
                        "invalid_target",
                        "target",
                        format!("{t:?} is not an IPv4 address"),
                    )
                })?;
                if ip.is_unspecified() || ip.is_multicast() {
                    return Err(PowerError::invalid(
                        "invalid_target",
                        "target",
                        format!("{ip} is not a broadcast or device address"),
                    ));
                }
                vec![SocketAddr::from((ip, PORT))]
            }
            None => {
                let mut t = vec![SocketAddr::from((Ipv4Addr::BROADCAST, PORT))];
                t.extend(
                    interface_broadcasts()
                        .into_iter()
                        .map(|b| SocketAddr::from((b, PORT))),
                );
                t.dedup();
                t
            }
        };
        Ok(Plan {
            targets,
            wait: Duration::from_millis(wait_ms),
        })
    }
}

/// The broadcast address of every IPv4 interface that is up (loopback left out).
fn interface_broadcasts() -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<Ipv4Addr> = addrs
        .filter(|a| {
            a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
                && !a
                    .flags
                    .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
        })
        .filter_map(|a| a.broadcast?.as_sockaddr_in().map(|s| s.ip()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Sends the probe to each target [`PROBES`] times over `plan.wait` and collects the
/// answers, one per address, sorted by address. Answers that do not parse are logged
/// and left out.
///
/// # Errors
/// 503 `discovery_failed` when no UDP socket can be opened or no probe could be sent
/// to any target.
pub async fn discover(plan: &Plan) -> Result<Vec<Found>, PowerError> {
    let fail = |m: String| PowerError::unavailable("discovery_failed", m);
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| fail(format!("cannot open a UDP socket: {e}")))?;
    sock.set_broadcast(true)
        .map_err(|e| fail(format!("cannot allow broadcasts: {e}")))?;
    let serial: u32 = rand::random();
    let probe = probe(serial);
    let deadline = tokio::time::Instant::now() + plan.wait;
    let every = plan.wait / PROBES;
    let mut next_probe = tokio::time::Instant::now();
    let mut probes_left = PROBES;
    let mut found: HashMap<IpAddr, Found> = HashMap::new();
    let mut sent_any = false;
    let mut last_error = String::new();
    let mut buf = vec![0u8; 4096];
    loop {
        if probes_left > 0 && tokio::time::Instant::now() >= next_probe {
            for t in &plan.targets {
                match sock.send_to(&probe, t).await {
                    Ok(_) => sent_any = true,
                    Err(e) => {
                        tracing::debug!(target = %t, error = %e, "discovery probe not sent");
                        last_error = format!("{t}: {e}");
                    }
                }
            }
            if !sent_any {
                return Err(fail(format!(
                    "no discovery probe could be sent ({last_error})"
                )));
            }
            probes_left -= 1;
            next_probe += every;
        }
        let until = if probes_left > 0 {
            next_probe.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                if from.port() != PORT || found.contains_key(&from.ip()) {
                    continue;
                }
                match parse_answer(&buf[..n], from.ip()) {
                    Ok(f) => {
                        found.insert(from.ip(), f);
                    }
                    Err(e) => tracing::debug!(from = %from, error = %e, "not a Tapo answer"),
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "discovery receive failed"),
            Err(_) if tokio::time::Instant::now() >= deadline => break,
            Err(_) => {}
        }
    }
    let mut out: Vec<Found> = found.into_values().collect();
    out.sort_by(|a, b| {
        let key = |f: &Found| f.ip.parse::<IpAddr>().ok();
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// The answer a device sends to a probe: a TDP header and `result` (a fixture's
/// `discovery_result`, `{"error_code":0,"result":{...}}` or just the result) with `ip`
/// set to `ip`. The fake plug ([`crate::fake`]) sends it.
pub fn answer(result: &Value, ip: IpAddr) -> Vec<u8> {
    let mut r = result.get("result").unwrap_or(result).clone();
    if let Some(o) = r.as_object_mut() {
        o.insert("ip".into(), Value::String(ip.to_string()));
    }
    let body = serde_json::json!({"error_code": 0, "result": r}).to_string();
    packet(rand::random(), body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        // The check value of CRC-32/ISO-HDLC (zlib's crc32) for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_probe_has_the_tdp_header_and_the_key() {
        let p = probe(0x0102_0304);
        assert_eq!(&p[..4], &[2, 0, 0, 1]);
        let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
        assert_eq!(p.len(), 16 + len);
        assert_eq!(&p[6..12], &[0x11, 0, 1, 2, 3, 4]);
        assert!(packet_ok(&p));
        let v: Value = serde_json::from_slice(&p[16..]).unwrap();
        assert_eq!(v["params"]["rsa_key"], PUBLIC_KEY_PEM);
        // A flipped bit breaks the CRC.
        let mut bad = p.clone();
        bad[20] ^= 1;
        assert!(!packet_ok(&bad));
    }

    #[test]
    fn an_answer_parses_and_junk_does_not() {
        let r = serde_json::json!({"error_code": 0, "result": {
            "device_model": "P110(EU)", "device_type": "SMART.TAPOPLUG",
            "mac": "48-22-54-0a-0b-0c", "ip": "1.2.3.4",
            "mgt_encrypt_schm": {"encrypt_type": "KLAP", "http_port": 80, "lv": 2}}});
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let a = answer(&r, ip);
        assert!(packet_ok(&a));
        let f = parse_answer(&a, ip).unwrap();
        assert_eq!(f.ip, "10.0.0.7");
        assert_eq!(f.mac, "48:22:54:0A:0B:0C");
        assert_eq!(
            (f.model.as_str(), f.device_model.as_str()),
            ("P110", "P110(EU)")
        );
        assert_eq!(f.encrypt_type.as_deref(), Some("KLAP"));
        assert_eq!(
            (f.login_version, f.http_port, f.is_plug),
            (Some(2), Some(80), true)
        );
        assert!(parse_answer(b"short", ip).is_err());
        assert!(parse_answer(&packet(1, b"{\"error_code\":-1}"), ip).is_err());
        assert!(parse_answer(&packet(1, b"not json"), ip).is_err());
    }

    #[test]
    fn the_request_is_checked() {
        let p = DiscoverRequest {
            target: Some("192.168.1.255".into()),
            wait_ms: Some(500),
        }
        .plan()
        .unwrap();
        assert_eq!(p.targets, vec!["192.168.1.255:20002".parse().unwrap()]);
        assert_eq!(p.wait, Duration::from_millis(500));
        let d = DiscoverRequest::default().plan().unwrap();
        assert_eq!(d.targets[0], "255.255.255.255:20002".parse().unwrap());
        assert_eq!(d.wait, Duration::from_millis(DEFAULT_WAIT_MS));
        for (t, w, code) in [
            (Some("nas.local"), None, "invalid_target"),
            (Some("::1"), None, "invalid_target"),
            (Some("0.0.0.0"), None, "invalid_target"),
            (None, Some(50), "invalid_wait"),
            (None, Some(60_000), "invalid_wait"),
        ] {
            let e = DiscoverRequest {
                target: t.map(str::to_string),
                wait_ms: w,
            }
            .plan()
            .unwrap_err();
            assert_eq!(e.code(), code, "{t:?} {w:?}");
        }
    }
}
