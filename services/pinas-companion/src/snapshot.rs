//! The NAS's metadata snapshot: what the companion shows people while the NAS sleeps.
//!
//! The NAS sends it (`POST /api/companion/snapshot`, usually from `pinas agent` at
//! shutdown) as JSON of at most [`MAX_BYTES`]. Schema version 1:
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "hostname": "bignas",
//!   "taken_at_ms": 1732230000123,
//!   "system": {"os": "Debian GNU/Linux 13", "kernel": "6.12.0", "uptime_secs": 86400},
//!   "disks": [{"mount_point": "/srv/data", "size_bytes": 4000000000000, "used_bytes": 1200000000000}],
//!   "shares": [{"name": "media", "path": "/srv/data/media", "protocol": "smb"}],
//!   "services": [{"name": "smbd", "state": "running"}],
//!   "events": [{"ts": 1732229990000, "type": "share.created", "message": "media"}]
//! }
//! ```
//!
//! `schema_version` and `hostname` are required; every list may be missing or empty.
//! Fields this version does not know are kept as sent, so a newer NAS loses nothing.
//! The companion stores the body unchanged with the time it arrived, replacing the
//! previous snapshot in one statement.

use serde::{Deserialize, Serialize};

use crate::error::CompanionError;
use crate::store::SnapshotRow;

/// Largest snapshot accepted, bytes (1 MiB).
pub const MAX_BYTES: usize = 1 << 20;
/// The schema versions this companion understands.
pub const SCHEMA_VERSIONS: [u32; 1] = [1];

/// Schema version 1 (see the module documentation).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub schema_version: u32,
    /// The NAS's host name (1 to 253 bytes).
    pub hostname: String,
    /// When the NAS took it, Unix milliseconds.
    #[serde(default)]
    pub taken_at_ms: Option<i64>,
    #[serde(default)]
    pub system: Option<SystemInfo>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub shares: Vec<Share>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub events: Vec<SnapshotEvent>,
}

/// The NAS's system.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SnapshotSystemInfo)]
pub struct SystemInfo {
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub uptime_secs: Option<u64>,
}

/// A mounted filesystem's usage.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SnapshotDisk)]
pub struct Disk {
    pub mount_point: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
}

/// A share the NAS serves.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SnapshotShare)]
pub struct Share {
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    /// `smb`, `nfs`, ...
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A service and its state (`running`, `stopped`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SnapshotService)]
pub struct Service {
    pub name: String,
    pub state: String,
}

/// One of the NAS's last events.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotEvent {
    /// Unix milliseconds.
    pub ts: i64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// Checks a snapshot body and makes the row to store, stamped `now_ms`.
///
/// # Errors
/// 413 `snapshot_too_large` over [`MAX_BYTES`]; 422 `invalid_snapshot` (not JSON, or not
/// the schema: the message says where) or `unsupported_snapshot_version`.
pub fn accept(body: &[u8], now_ms: i64) -> Result<SnapshotRow, CompanionError> {
    if body.len() > MAX_BYTES {
        return Err(too_large());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        CompanionError::invalid(
            "invalid_snapshot",
            "body",
            format!("the snapshot is not JSON: {e}"),
        )
    })?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    match version {
        Some(v) if SCHEMA_VERSIONS.contains(&(v as u32)) && v <= u32::MAX as u64 => {}
        Some(v) => {
            return Err(CompanionError::invalid(
                "unsupported_snapshot_version",
                "schema_version",
                format!(
                "snapshot schema version {v} is not one this companion knows ({SCHEMA_VERSIONS:?})"
            ),
            ))
        }
        None => {
            return Err(CompanionError::invalid(
                "invalid_snapshot",
                "schema_version",
                "the snapshot has no schema_version number",
            ))
        }
    }
    let s: Snapshot = serde_json::from_value(value).map_err(|e| {
        CompanionError::invalid(
            "invalid_snapshot",
            "body",
            format!("the snapshot does not match schema version 1: {e}"),
        )
    })?;
    if s.hostname.is_empty() || s.hostname.len() > 253 {
        return Err(CompanionError::invalid(
            "invalid_snapshot",
            "hostname",
            "the snapshot's hostname must be 1 to 253 bytes",
        ));
    }
    Ok(SnapshotRow {
        schema_version: s.schema_version,
        body: String::from_utf8_lossy(body).into_owned(),
        size_bytes: body.len() as i64,
        received_at_ms: now_ms,
    })
}

/// The 413 a too-large snapshot gets.
pub fn too_large() -> CompanionError {
    CompanionError::TooLarge {
        code: "snapshot_too_large",
        message: format!("the snapshot is larger than {MAX_BYTES} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_checked_against_the_schema() {
        let ok = br#"{"schema_version":1,"hostname":"bignas","disks":[{"mount_point":"/srv","size_bytes":10,"used_bytes":3}],"future":{"x":1}}"#;
        let row = accept(ok, 5).unwrap();
        assert_eq!((row.schema_version, row.received_at_ms), (1, 5));
        assert_eq!(
            row.body.as_bytes(),
            ok,
            "stored as sent, unknown fields kept"
        );
        let code = |b: &[u8]| accept(b, 0).unwrap_err().code();
        assert_eq!(code(b"not json"), "invalid_snapshot");
        assert_eq!(code(br#"{"hostname":"x"}"#), "invalid_snapshot");
        assert_eq!(
            code(br#"{"schema_version":2,"hostname":"x"}"#),
            "unsupported_snapshot_version"
        );
        assert_eq!(
            code(br#"{"schema_version":1,"hostname":""}"#),
            "invalid_snapshot"
        );
        assert_eq!(
            code(br#"{"schema_version":1,"hostname":"x","disks":[{"mount_point":1}]}"#),
            "invalid_snapshot"
        );
        let big = vec![b' '; MAX_BYTES + 1];
        assert_eq!(code(&big), "snapshot_too_large");
    }
}
