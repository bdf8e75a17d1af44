//! The web UI's first certificate: self-signed, made by `pinas web` itself on the first
//! start of a fresh storage partition.
//!
//! ECDSA P-256 with SHA-256 (rcgen on ring), subject `CN=<hostname>.local, O=PiNAS`,
//! subject alternative names `<hostname>.local`, `<hostname>`, `localhost` and
//! `127.0.0.1`, valid from 2020-01-01 to 2049-12-31: a Pi has no battery clock, so the
//! first boot may run on a clock far from the real date, and the certificate must hold
//! either way. Browsers ask the user to trust it once; a real certificate can replace
//! both files at any time.

use std::path::Path;

use pinas_core::fsutil::write_atomic;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

/// PEM certificate and PEM PKCS#8 private key.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a self-signed certificate for `hostname` (a validated host name label).
///
/// # Errors
/// rcgen's, for a host name that is not a valid DNS name.
pub fn self_signed(hostname: &str) -> Result<SelfSigned, rcgen::Error> {
    let local = format!("{hostname}.local");
    let mut params = CertificateParams::new(vec![
        local.clone(),
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, local);
    dn.push(DnType::OrganizationName, "PiNAS");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes a self-signed certificate for `hostname` to `cert` and `key` unless both exist.
/// The key is written first (mode 0600), each file atomically, so an interrupted first
/// start never leaves a certificate without its key. Returns true when it made them.
///
/// # Errors
/// I/O errors writing the files; a host name rcgen refuses.
pub fn ensure(cert: &Path, key: &Path, hostname: &str) -> anyhow::Result<bool> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let made = self_signed(hostname)?;
    write_atomic(key, made.key_pem.as_bytes(), 0o600)?;
    write_atomic(cert, made.cert_pem.as_bytes(), 0o644)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_certificate_rustls_serves() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = (d.path().join("tls/cert.pem"), d.path().join("tls/key.pem"));
        assert!(ensure(&cert, &key, "nas-lab").unwrap());
        assert!(!ensure(&cert, &key, "nas-lab").unwrap(), "kept once made");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The listener's own loader accepts the pair.
        crate::listen::tls_config(&cert, &key).unwrap();
        // openssl reads the names and dates back.
        pinas_testkit::require!(pinas_testkit::require_tools(&["openssl"]));
        let out = std::process::Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-enddate",
                "-in",
            ])
            .arg(&cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CN = nas-lab.local"), "{text}");
        assert!(text.contains("DNS:nas-lab.local"), "{text}");
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        assert!(text.contains("2049"), "{text}");
    }
}
