//! Mounting data filesystems under `<disks_dir>/<label or uuid>`, remembering them in the
//! `mounts` table and mounting them again at start and when their disk comes back.

use std::path::{Path, PathBuf};

use pinas_core::Context;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::disks::{self, FoundFs};
use crate::error::StorageError;
use crate::host::{HostError, MountSpec, Mounter};
use crate::mountinfo;

/// Filesystem types PiNAS mounts and creates.
pub const SUPPORTED_FS: [&str; 6] = ["ext4", "btrfs", "xfs", "exfat", "vfat", "ntfs"];

/// Group that owns share folders and files on filesystems without Unix permissions
/// (`users`, gid 100 on Debian): every PiNAS user has it as primary group.
pub const USERS_GID: u32 = 100;

/// A data filesystem PiNAS mounts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MountInfo {
    pub uuid: String,
    /// Where it is (or will be) mounted.
    pub mount_point: String,
    pub fs_type: String,
    pub label: String,
    /// Device node while attached, else null.
    pub device: Option<String>,
    /// True while it is mounted.
    pub mounted: bool,
}

/// Checks the shape of a filesystem UUID: 1–64 hex digits and dashes (blkid prints
/// `1234-ABCD` for FAT, 16 hex digits for NTFS, RFC 4122 form for the others).
///
/// # Errors
/// [`StorageError::InvalidUuid`].
pub fn check_uuid(uuid: &str) -> Result<(), StorageError> {
    let ok = !uuid.is_empty()
        && uuid.len() <= 64
        && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && uuid.chars().any(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidUuid(uuid.to_string()))
    }
}

/// The folder name for a filesystem: its label made safe for a path, else its UUID.
pub fn dir_name(label: &str, uuid: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    // No hidden folder, no `.` or `..`: strip leading dots and underscores.
    let clean = clean
        .trim_start_matches(['.', '_'])
        .trim_end_matches('_')
        .to_string();
    if clean.is_empty() {
        uuid.to_string()
    } else {
        clean
    }
}

fn stored(ctx: &Context, uuid: &str) -> Result<Option<(String, String, String)>, StorageError> {
    Ok(ctx
        .db
        .conn()
        .query_row(
            "SELECT mount_point, fs_type, COALESCE(label, '') FROM mounts WHERE uuid = ?1 COLLATE NOCASE",
            [uuid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

/// The stored mounts, with their current state.
///
/// # Errors
/// Database errors.
pub fn list_mounts(ctx: &Context) -> Result<Vec<MountInfo>, StorageError> {
    let rows: Vec<(String, String, String, String)> = {
        let conn = ctx.db.conn();
        let mut st = conn.prepare(
            "SELECT uuid, mount_point, fs_type, COALESCE(label, '') FROM mounts ORDER BY mount_point",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let table = mountinfo::read().unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|(uuid, mp, fs_type, label)| MountInfo {
            device: disks::find_by_uuid(&uuid)
                .ok()
                .flatten()
                .map(|f| f.device.display().to_string()),
            mounted: mountinfo::is_mount_point(&table, Path::new(&mp)),
            uuid,
            mount_point: mp,
            fs_type,
            label,
        })
        .collect())
}

/// Mounts filesystem `uuid` under `<disks_dir>` and remembers it.
///
/// Mounting a filesystem PiNAS already mounted returns its mount again.
///
/// # Errors
/// [`StorageError::InvalidUuid`], [`StorageError::FilesystemNotFound`],
/// [`StorageError::UnsupportedFilesystem`], [`StorageError::MountedElsewhere`],
/// [`StorageError::SystemDisk`] for a filesystem on the disk that holds the system,
/// [`StorageError::NotPermitted`] when not root, [`StorageError::Failed`].
pub fn mount_uuid(ctx: &Context, uuid: &str) -> Result<MountInfo, StorageError> {
    check_uuid(uuid)?;
    let fs = disks::find_by_uuid(uuid)?
        .ok_or_else(|| StorageError::FilesystemNotFound(uuid.to_string()))?;
    if !SUPPORTED_FS.contains(&fs.fs_type.as_str()) {
        return Err(StorageError::UnsupportedFilesystem(fs.fs_type));
    }
    let disks_dir = &ctx.paths.disks_dir;
    let table = mountinfo::read().unwrap_or_default();
    if let Some(m) = current_mount(&fs, &table) {
        if m.starts_with(disks_dir) {
            remember(ctx, &fs, &m)?;
            return Ok(info(&fs, &m, true));
        }
        return Err(StorageError::MountedElsewhere {
            uuid: fs.uuid,
            mount_point: m.display().to_string(),
        });
    }
    refuse_system_disk(ctx, &fs)?;
    let mp = match stored(ctx, &fs.uuid)? {
        Some((mp, _, _)) => PathBuf::from(mp),
        None => choose_mount_point(ctx, &fs, &table)?,
    };
    mount_at(ctx, &fs, &mp)?;
    remember(ctx, &fs, &mp)?;
    let out = info(&fs, &mp, true);
    ctx.events.emit(
        "storage.mounted",
        serde_json::to_value(&out).unwrap_or_default(),
    );
    tracing::info!(uuid = %fs.uuid, device = %fs.device.display(), mount_point = %mp.display(), "mounted");
    Ok(out)
}

/// Refuses a filesystem on a disk that holds the running system (boot, root, the other
/// system slot, /storage, swap): mounting its boot partition or the inactive slot under
/// the data disks would let a share rewrite what the device boots.
fn refuse_system_disk(ctx: &Context, fs: &FoundFs) -> Result<(), StorageError> {
    let device = fs.device.display().to_string();
    let disks = disks::list_disks(&ctx.paths.disks_dir)?;
    match disks.iter().find(|d| d.device_paths().any(|p| p == device)) {
        Some(d) if d.system => Err(StorageError::SystemDisk(d.path.clone())),
        _ => Ok(()),
    }
}

fn info(fs: &FoundFs, mp: &Path, mounted: bool) -> MountInfo {
    MountInfo {
        uuid: fs.uuid.clone(),
        mount_point: mp.display().to_string(),
        fs_type: fs.fs_type.clone(),
        label: fs.label.clone(),
        device: Some(fs.device.display().to_string()),
        mounted,
    }
}

fn current_mount(fs: &FoundFs, table: &[mountinfo::MountEntry]) -> Option<PathBuf> {
    let meta = std::fs::metadata(&fs.device).ok();
    let rdev = meta.map(|m| std::os::unix::fs::MetadataExt::rdev(&m));
    table
        .iter()
        .filter(|m| {
            rdev.is_some_and(|r| {
                nix::sys::stat::major(r) as u32 == m.major
                    && nix::sys::stat::minor(r) as u32 == m.minor
            }) || Path::new(&m.source) == fs.device
        })
        .map(|m| m.mount_point.clone())
        .next()
}

fn choose_mount_point(
    ctx: &Context,
    fs: &FoundFs,
    table: &[mountinfo::MountEntry],
) -> Result<PathBuf, StorageError> {
    let base = dir_name(&fs.label, &fs.uuid);
    let taken = |p: &Path| -> Result<bool, StorageError> {
        let in_db: bool = ctx.db.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM mounts WHERE mount_point = ?1)",
            [p.display().to_string()],
            |r| r.get(0),
        )?;
        let nonempty = std::fs::read_dir(p)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        Ok(in_db || mountinfo::is_mount_point(table, p) || nonempty)
    };
    let first = ctx.paths.disks_dir.join(&base);
    if !taken(&first)? {
        return Ok(first);
    }
    let short: String = fs.uuid.chars().filter(|c| *c != '-').take(8).collect();
    Ok(ctx.paths.disks_dir.join(format!("{base}-{short}")))
}

fn remember(ctx: &Context, fs: &FoundFs, mp: &Path) -> Result<(), StorageError> {
    ctx.db.conn().execute(
        "INSERT INTO mounts (uuid, mount_point, fs_type, label) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(uuid) DO UPDATE SET mount_point = excluded.mount_point,
           fs_type = excluded.fs_type, label = excluded.label",
        params![fs.uuid, mp.display().to_string(), fs.fs_type, fs.label],
    )?;
    Ok(())
}

/// True when the running kernel lists filesystem type `fs` (built in or loaded).
fn kernel_has(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// Mounts `fs` at `mp` (created if missing) with `nosuid,nodev,noatime`. Filesystems
/// without Unix owners (FAT, exFAT, NTFS) get owner root, group `users`, mode 0775/0664
/// so every PiNAS user may write. Which process mounts is [`Mounter::for_context`]'s
/// choice.
fn mount_at(ctx: &Context, fs: &FoundFs, mp: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(mp).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            StorageError::NotPermitted(format!("cannot create {}", mp.display()))
        }
        _ => StorageError::Failed(format!("cannot create {}: {e}", mp.display())),
    })?;
    let spec = mount_spec(fs, mp);
    let res = Mounter::for_context(ctx).mount(&spec);
    let Err(e) = res else { return Ok(()) };
    // Only an empty folder is removed: never data written beneath a mount point.
    let _ = std::fs::remove_dir(mp);
    Err(match e {
        HostError::NotPermitted => {
            StorageError::NotPermitted(format!("cannot mount {}", fs.device.display()))
        }
        // The kernel loads a filesystem's module when a mount asks for it: a type it
        // still does not list after the attempt is one it cannot mount at all.
        _ if !spec.fuse && !kernel_has(&spec.fs_type) => StorageError::Failed(format!(
            "the running kernel cannot mount {} filesystems (no {} support in /proc/filesystems, no module to load)",
            fs.fs_type, spec.fs_type
        )),
        HostError::Busy | HostError::Failed(_) => StorageError::Failed(format!(
            "cannot mount {} ({}) at {}: {}",
            fs.device.display(),
            fs.fs_type,
            mp.display(),
            match e {
                HostError::Failed(m) => m,
                _ => "device or resource busy".to_string(),
            }
        )),
    })
}

/// The mount of `fs` at `mp`: the kernel driver for its type, or a FUSE driver for
/// exFAT and NTFS when the kernel has none.
fn mount_spec(fs: &FoundFs, mp: &Path) -> MountSpec {
    let owner_opts = format!("uid=0,gid={USERS_GID},fmask=0002,dmask=0002");
    let (kind, data, fuse): (&str, Option<String>, bool) = match fs.fs_type.as_str() {
        "vfat" => (
            "vfat",
            Some(format!("{owner_opts},utf8,shortname=mixed")),
            false,
        ),
        "exfat" if !kernel_has("exfat") && crate::disks::program_exists("mount.exfat-fuse") => {
            ("exfat-fuse", Some(owner_opts), true)
        }
        "exfat" => ("exfat", Some(owner_opts), false),
        "ntfs" if kernel_has("ntfs3") => ("ntfs3", Some(owner_opts), false),
        "ntfs" => ("ntfs-3g", Some(owner_opts), true),
        other => (other, None, false),
    };
    MountSpec {
        device: fs.device.clone(),
        mount_point: mp.to_path_buf(),
        fs_type: kind.to_string(),
        data,
        fuse,
    }
}

/// The shares whose folder lies on `mp`: `(name, path)`.
fn shares_on(ctx: &Context, mp: &Path) -> Result<Vec<String>, StorageError> {
    let conn = ctx.db.conn();
    let mut st = conn.prepare("SELECT name, path FROM shares ORDER BY name")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, path) = row?;
        if Path::new(&path).starts_with(mp) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Unmounts filesystem `uuid` and forgets it, so it is not mounted again at start.
///
/// Refuses while shares live on it, unless `force`; with `force` a busy filesystem is
/// detached lazily (the kernel finishes when the last file closes).
///
/// # Errors
/// [`StorageError::InvalidUuid`], [`StorageError::NotMounted`],
/// [`StorageError::MountInUse`], [`StorageError::Busy`], [`StorageError::NotPermitted`].
pub fn unmount_uuid(ctx: &Context, uuid: &str, force: bool) -> Result<MountInfo, StorageError> {
    check_uuid(uuid)?;
    let (mp, fs_type, label) =
        stored(ctx, uuid)?.ok_or_else(|| StorageError::NotMounted(uuid.to_string()))?;
    let mp = PathBuf::from(mp);
    let shares = shares_on(ctx, &mp)?;
    if !shares.is_empty() && !force {
        return Err(StorageError::MountInUse {
            mount_point: mp.display().to_string(),
            shares,
        });
    }
    let table = mountinfo::read().unwrap_or_default();
    if mountinfo::is_mount_point(&table, &mp) {
        match Mounter::for_context(ctx).unmount(&mp, force) {
            Ok(()) => {}
            Err(HostError::Busy) => return Err(StorageError::Busy(mp.display().to_string())),
            Err(HostError::NotPermitted) => {
                return Err(StorageError::NotPermitted(format!(
                    "cannot unmount {}",
                    mp.display()
                )))
            }
            Err(HostError::Failed(m)) => {
                return Err(StorageError::Failed(format!(
                    "cannot unmount {}: {m}",
                    mp.display()
                )))
            }
        }
    }
    let real_uuid: String = ctx.db.conn().query_row(
        "SELECT uuid FROM mounts WHERE uuid = ?1 COLLATE NOCASE",
        [uuid],
        |r| r.get(0),
    )?;
    ctx.db
        .conn()
        .execute("DELETE FROM mounts WHERE uuid = ?1", [&real_uuid])?;
    // Only an empty folder is removed: never data that was written beneath a mount.
    let _ = std::fs::remove_dir(&mp);
    let out = MountInfo {
        uuid: real_uuid,
        mount_point: mp.display().to_string(),
        fs_type,
        label,
        device: None,
        mounted: false,
    };
    ctx.events.emit(
        "storage.unmounted",
        serde_json::to_value(&out).unwrap_or_default(),
    );
    tracing::info!(uuid = %out.uuid, mount_point = %mp.display(), "unmounted");
    Ok(out)
}

/// Mounts every stored filesystem whose disk is attached and that is not mounted yet.
/// Returns how many were mounted; failures are logged, not returned, so one bad disk
/// does not stop start-up.
pub fn reapply(ctx: &Context) -> usize {
    let mounts = match list_mounts(ctx) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read stored mounts");
            return 0;
        }
    };
    let mut n = 0;
    for m in mounts.into_iter().filter(|m| !m.mounted) {
        match remount_stored(ctx, &m.uuid) {
            Ok(true) => n += 1,
            Ok(false) => {
                tracing::info!(uuid = %m.uuid, "disk not attached; it is mounted when it appears")
            }
            Err(e) => tracing::warn!(uuid = %m.uuid, error = %e, "cannot mount stored filesystem"),
        }
    }
    n
}

/// Mounts stored filesystem `uuid` at its stored mount point if its disk is attached.
/// `Ok(false)` when it is not stored or not attached.
pub(crate) fn remount_stored(ctx: &Context, uuid: &str) -> Result<bool, StorageError> {
    // The start-up pass and hotplug events may ask for the same filesystem at once:
    // one looks at the mount table and mounts at a time.
    static REMOUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = REMOUNT.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mp, _, _)) = stored(ctx, uuid)? else {
        return Ok(false);
    };
    let Some(fs) = disks::find_by_uuid(uuid)? else {
        return Ok(false);
    };
    let table = mountinfo::read().unwrap_or_default();
    if current_mount(&fs, &table).is_some() {
        return Ok(false);
    }
    let mp = PathBuf::from(mp);
    mount_at(ctx, &fs, &mp)?;
    let out = info(&fs, &mp, true);
    ctx.events.emit(
        "storage.mounted",
        serde_json::to_value(&out).unwrap_or_default(),
    );
    tracing::info!(uuid = %fs.uuid, mount_point = %mp.display(), "mounted stored filesystem");
    Ok(true)
}

/// Detaches a stored mount whose disk was pulled out (the kernel keeps a dead mount
/// otherwise). The mount stays stored, so the disk is mounted again when it returns.
pub(crate) fn detach_removed(ctx: &Context, uuid: &str) {
    let Ok(Some((mp, fs_type, label))) = stored(ctx, uuid) else {
        return;
    };
    let mp = PathBuf::from(mp);
    let table = mountinfo::read().unwrap_or_default();
    if mountinfo::is_mount_point(&table, &mp) && Mounter::for_context(ctx).detach(&mp).is_ok() {
        ctx.events.emit(
            "storage.unmounted",
            serde_json::json!({"uuid": uuid, "mount_point": mp, "fs_type": fs_type,
                               "label": label, "device": null, "mounted": false,
                               "reason": "disk removed"}),
        );
        tracing::warn!(uuid, mount_point = %mp.display(), "disk removed while mounted; detached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shapes() {
        for ok in [
            "e86fee63-836b-4359-8c8f-3ff69bb823ab",
            "1234-ABCD",
            "0123456789ABCDEF",
        ] {
            check_uuid(ok).unwrap();
        }
        for bad in ["", "../etc", "zz", "-", &"a".repeat(65), "abc def"] {
            assert!(check_uuid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folder_names() {
        assert_eq!(dir_name("Photos 2024", "u"), "Photos_2024");
        assert_eq!(dir_name("../..", "u-1"), "u-1");
        assert_eq!(dir_name("", "u-1"), "u-1");
        assert_eq!(dir_name("a/b", "u"), "a_b");
        assert_eq!(dir_name("Données", "u"), "Données");
    }
}
