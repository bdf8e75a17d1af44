//! Creating a filesystem on a disk or partition, as a background task that reports
//! `task.progress` events `{task_id,label,percent,done,error}`.

use std::path::PathBuf;
use std::sync::Arc;

use pinas_core::Context;
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use utoipa::ToSchema;

use crate::disks;
use crate::error::StorageError;
use crate::mount::SUPPORTED_FS;

/// `POST /api/storage/format` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatRequest {
    /// Device node of a disk or partition, e.g. `/dev/sda1`.
    pub device: String,
    /// `ext4`, `btrfs`, `xfs`, `exfat`, `vfat` or `ntfs`.
    pub fs_type: String,
    /// Volume label; may be empty.
    #[serde(default)]
    pub label: String,
    /// The identity of the disk the user chose, as `GET /api/storage/disks` shows it in
    /// `format_confirm`: the disk's serial number or the UUID of the filesystem now on
    /// `device`; the device path only for a device that has neither. A device path can
    /// name another disk after a replug, so the path alone does not confirm.
    pub confirm: String,
}

/// The answer to a started task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskStarted {
    /// Identifies this task's `task.progress` events.
    pub task_id: String,
}

/// Checks a label against the limits of `fs_type` (bytes; FAT labels are 11
/// characters of uppercase letters, digits and `_-`).
///
/// # Errors
/// [`StorageError::InvalidLabel`], [`StorageError::UnsupportedFilesystem`].
pub fn check_label(fs_type: &str, label: &str) -> Result<(), StorageError> {
    let max = match fs_type {
        "ext4" => 16,
        "xfs" => 12,
        "btrfs" => 255,
        "exfat" => 15,
        "vfat" => 11,
        "ntfs" => 128,
        other => return Err(StorageError::UnsupportedFilesystem(other.to_string())),
    };
    let bad = |reason: String| StorageError::InvalidLabel {
        fs_type: fs_type.to_string(),
        reason,
    };
    let len = if fs_type == "exfat" {
        label.encode_utf16().count()
    } else {
        label.len()
    };
    if len > max {
        return Err(bad(format!("at most {max} characters")));
    }
    if label
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\' || c == '"')
    {
        return Err(bad("no control characters, slashes or quotes".into()));
    }
    if fs_type == "vfat"
        && !label
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_- ".contains(c))
    {
        return Err(bad(
            "use uppercase letters, digits, '_', '-' and spaces".into()
        ));
    }
    Ok(())
}

/// The `mkfs` command line for `fs_type` (forcing over an old signature, quiet).
fn mkfs_command(
    fs_type: &str,
    device: &str,
    label: &str,
    whole_disk: bool,
) -> (String, Vec<String>) {
    let mut a: Vec<String> = Vec::new();
    let prog = match fs_type {
        "ext4" => {
            a.extend(["-F", "-q", "-m", "0", "-L", label].map(String::from));
            "mkfs.ext4"
        }
        "btrfs" => {
            a.extend(["-f", "-q", "-L", label].map(String::from));
            "mkfs.btrfs"
        }
        "xfs" => {
            a.extend(["-f", "-q", "-L", label].map(String::from));
            "mkfs.xfs"
        }
        "exfat" => {
            a.extend(["-L", label].map(String::from));
            "mkfs.exfat"
        }
        "vfat" => {
            if whole_disk {
                a.push("-I".into());
            }
            if !label.is_empty() {
                a.extend(["-n", label].map(String::from));
            }
            "mkfs.vfat"
        }
        _ => {
            a.extend(["-F", "-f", "-q", "-L", label].map(String::from));
            "mkfs.ntfs"
        }
    };
    if label.is_empty() && fs_type != "vfat" {
        // `-L ""` is refused by some mkfs: drop the pair.
        if let Some(i) = a.iter().position(|x| x == "-L") {
            a.drain(i..i + 2);
        }
    }
    a.push(device.to_string());
    (prog.to_string(), a)
}

/// Checks `req` and starts formatting; returns the task id at once.
///
/// # Errors
/// [`StorageError::ConfirmMismatch`], [`StorageError::UnsupportedFilesystem`],
/// [`StorageError::InvalidLabel`], [`StorageError::UnknownDevice`],
/// [`StorageError::SystemDisk`], [`StorageError::DeviceInUse`].
pub fn start_format(ctx: &Arc<Context>, req: FormatRequest) -> Result<TaskStarted, StorageError> {
    if !SUPPORTED_FS.contains(&req.fs_type.as_str()) {
        return Err(StorageError::UnsupportedFilesystem(req.fs_type));
    }
    check_label(&req.fs_type, &req.label)?;
    let all = disks::list_disks(&ctx.paths.disks_dir)?;
    let disk = all
        .iter()
        .find(|d| d.device_paths().any(|p| p == req.device))
        .ok_or_else(|| StorageError::UnknownDevice(req.device.clone()))?;
    let ids = disk.confirm_ids(&req.device);
    let confirmed = ids
        .iter()
        .any(|id| id.eq_ignore_ascii_case(req.confirm.trim()));
    if !confirmed {
        let expected = if disk.serial.is_empty() && ids.first() == Some(&req.device) {
            format!(
                "the device path {:?} (it has no serial number or filesystem)",
                req.device
            )
        } else if disk.serial.is_empty() {
            "the UUID of its filesystem".to_string()
        } else {
            "the disk's serial number".to_string()
        };
        return Err(StorageError::ConfirmMismatch {
            device: req.device,
            expected,
        });
    }
    if disk.system {
        return Err(StorageError::SystemDisk(disk.path.clone()));
    }
    let whole_disk = disk.path == req.device;
    let in_use = if whole_disk {
        disk.mounted || disk.held
    } else {
        let p = disk.partitions.iter().find(|p| p.path == req.device);
        p.and_then(|p| p.filesystem.as_ref())
            .is_some_and(|f| f.mount_point.is_some())
            || std::fs::read_dir(
                PathBuf::from("/sys/class/block")
                    .join(req.device.trim_start_matches("/dev/"))
                    .join("holders"),
            )
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    if in_use {
        return Err(StorageError::DeviceInUse(req.device));
    }
    let task_id = pinas_core::auth::new_token()[..16].to_string();
    let ctx = ctx.clone();
    let id = task_id.clone();
    tokio::spawn(async move { run_format(ctx, id, req, whole_disk).await });
    Ok(TaskStarted { task_id })
}

async fn run_format(ctx: Arc<Context>, task_id: String, req: FormatRequest, whole_disk: bool) {
    let label = format!("Formatting {} as {}", req.device, req.fs_type);
    let progress = |percent: u8, done: bool, error: Option<String>| {
        ctx.events.emit(
            "task.progress",
            serde_json::json!({"task_id": task_id, "label": label, "percent": percent,
                               "done": done, "error": error}),
        );
    };
    progress(0, false, None);
    tracing::info!(device = %req.device, fs_type = %req.fs_type, "formatting");
    let (mkfs, mkfs_args) = mkfs_command(&req.fs_type, &req.device, &req.label, whole_disk);
    let steps: Vec<(String, Vec<String>, u8)> = vec![
        ("wipefs".into(), vec!["-a".into(), req.device.clone()], 10),
        (mkfs, mkfs_args, 80),
    ];
    for (prog, args, percent) in steps {
        match Command::new(&prog).args(&args).output().await {
            Ok(out) if out.status.success() => progress(percent, false, None),
            Ok(out) => {
                let msg = format!(
                    "{prog} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                tracing::warn!(device = %req.device, "{msg}");
                return progress(100, true, Some(msg));
            }
            Err(e) => {
                return progress(100, true, Some(format!("cannot run {prog}: {e}")));
            }
        }
    }
    // udev watches block devices (OPTIONS+="watch" in its 60-block.rules): mkfs closing
    // the device makes it read the new signature. Wait until its database has it, so
    // listings show it at once. udev drops its watch while it handles an event of the
    // device, so mkfs closing it while udev still reads what wipefs left goes unseen:
    // every 2 s without the new signature, the device is opened for writing and closed
    // (nothing written), which udev's watch takes as a change. (`udevadm trigger` would
    // write to /sys, which the web role's unit keeps read-only.) Without a udev daemon,
    // listings probe with blkid.
    if crate::disks::udev_alive() {
        let dev = req.device.clone();
        let seen = tokio::task::spawn_blocking(move || {
            // The whole signature: udev may have read the device while mkfs was still
            // writing it (a FAT's serial number is in its boot sector, its label in the
            // root folder written after).
            let Some(want) = disks::probe_blkid(std::path::Path::new(&dev)) else {
                return false;
            };
            let start = std::time::Instant::now();
            let mut poked = start;
            while start.elapsed() < std::time::Duration::from_secs(30) {
                // Labels compared by presence: udev's ID_FS_LABEL is blkid's with spaces
                // and other unsafe characters replaced.
                if disks::udev_signature(&dev).is_some_and(|u| {
                    u.fs_type == want.fs_type
                        && u.uuid == want.uuid
                        && u.label.is_empty() == want.label.is_empty()
                }) {
                    return true;
                }
                if poked.elapsed() >= std::time::Duration::from_secs(2) {
                    if let Err(e) = std::fs::OpenOptions::new().write(true).open(&dev) {
                        tracing::debug!(device = %dev, error = %e, "cannot open the device to have udev read it");
                    }
                    poked = std::time::Instant::now();
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            false
        })
        .await
        .unwrap_or(false);
        if seen {
            progress(95, false, None);
        } else {
            tracing::warn!(device = %req.device, "udev did not show the new filesystem within 30 s");
        }
    }
    tracing::info!(device = %req.device, "formatted");
    progress(100, true, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        check_label("ext4", "data").unwrap();
        check_label("vfat", "MY_DISK").unwrap();
        assert!(check_label("vfat", "lower").is_err());
        assert!(check_label("ext4", &"x".repeat(17)).is_err());
        assert!(check_label("xfs", "a/b").is_err());
        assert!(matches!(
            check_label("zfs", "x"),
            Err(StorageError::UnsupportedFilesystem(_))
        ));
    }

    #[test]
    fn mkfs_lines() {
        let (p, a) = mkfs_command("ext4", "/dev/sdb1", "data", false);
        assert_eq!(p, "mkfs.ext4");
        assert_eq!(a, ["-F", "-q", "-m", "0", "-L", "data", "/dev/sdb1"]);
        let (_, a) = mkfs_command("xfs", "/dev/sdb", "", true);
        assert_eq!(a, ["-f", "-q", "/dev/sdb"]);
        let (_, a) = mkfs_command("vfat", "/dev/sdb", "", true);
        assert_eq!(a, ["-I", "/dev/sdb"]);
    }
}
