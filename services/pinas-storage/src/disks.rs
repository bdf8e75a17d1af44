//! Block devices: what is attached, from sysfs and the udev database (never lsblk text).
//!
//! A disk is a block device of devtype `disk`; its partitions are the `partition` devices
//! whose parent it is. Filesystem type, label and UUID come from udev's blkid probe
//! (`ID_FS_*` properties), so a device udev has not processed yet shows no filesystem
//! until `udevadm trigger`/`settle` (or hotplug) has run. When no udev daemon answers on
//! its control socket (containers, a crashed udevd), the udev database is stale or
//! empty, and each device is probed directly with `blkid -p` instead. RAM disks, zram
//! and empty loop devices are skipped; loop devices with a backing file are listed
//! (tests use them).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use udev::{Device, Enumerator};
use utoipa::ToSchema;

use crate::error::StorageError;
use crate::mountinfo::{self, MountEntry};

/// A filesystem found on a disk or partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Filesystem {
    /// blkid's type name: `ext4`, `btrfs`, `xfs`, `exfat`, `vfat`, `ntfs`, ...
    pub fs_type: String,
    /// Volume label, empty when none.
    pub label: String,
    /// Filesystem UUID as blkid prints it (the key for mount and unmount).
    pub uuid: String,
    /// Where it is mounted (the PiNAS mount point first), or null.
    pub mount_point: Option<String>,
    /// Used space in bytes, when mounted.
    pub used_bytes: Option<u64>,
    /// Space available to unprivileged users in bytes, when mounted.
    pub free_bytes: Option<u64>,
}

/// A partition of a disk.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`.
    pub name: String,
    /// Device node, e.g. `/dev/sda1`.
    pub path: String,
    pub size_bytes: u64,
    pub filesystem: Option<Filesystem>,
    /// What `POST /api/storage/format` takes as `confirm` for this partition: the disk's
    /// serial number, else the filesystem UUID, else the device path.
    pub format_confirm: String,
}

/// A disk: a whole block device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `mmcblk0`, `loop3`.
    pub name: String,
    /// Device node, e.g. `/dev/sda`.
    pub path: String,
    /// Model as the device reports it, empty when unknown.
    pub model: String,
    /// Serial number, empty when unknown.
    pub serial: String,
    pub size_bytes: u64,
    /// How it is attached: `usb`, `ata`, `nvme`, `mmc`, `virtio`, `loop`, `scsi` or `unknown`.
    pub transport: String,
    /// True for spinning disks.
    pub rotational: bool,
    /// True for removable media (SD cards in readers, some USB sticks).
    pub removable: bool,
    /// True when it holds the running system (root, boot, /storage, swap): never formatted.
    pub system: bool,
    /// A filesystem on the whole disk (no partition table), or null.
    pub filesystem: Option<Filesystem>,
    pub partitions: Vec<Partition>,
    /// What `POST /api/storage/format` takes as `confirm` for the whole disk: its serial
    /// number, else the UUID of the filesystem on the whole disk, else the device path.
    pub format_confirm: String,
    /// Mounted anywhere (the disk or a partition).
    #[serde(skip)]
    pub(crate) mounted: bool,
    /// Held by another block device (device-mapper, md RAID).
    #[serde(skip)]
    pub(crate) held: bool,
}

impl Disk {
    /// The identities that confirm formatting `device` (this disk or one of its
    /// partitions): the disk's serial number and the UUID of the filesystem now on
    /// `device`, those that exist; the device path only when neither does. Empty when
    /// `device` is not on this disk.
    ///
    /// Device paths are handed out again when disks come and go (`/dev/sdb` may be
    /// another disk a minute later), so a confirmation must name the disk itself.
    pub fn confirm_ids(&self, device: &str) -> Vec<String> {
        let fs = if device == self.path {
            self.filesystem.as_ref()
        } else {
            match self.partitions.iter().find(|p| p.path == device) {
                Some(p) => p.filesystem.as_ref(),
                None => return Vec::new(),
            }
        };
        let ids: Vec<String> = [Some(&self.serial), fs.map(|f| &f.uuid)]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        if ids.is_empty() {
            vec![device.to_string()]
        } else {
            ids
        }
    }

    /// The disk's and partitions' device paths.
    pub fn device_paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.partitions.iter().map(|p| p.path.as_str()))
    }
}

fn os(s: Option<&OsStr>) -> Option<String> {
    s.map(|v| v.to_string_lossy().trim().to_string())
        .filter(|v| !v.is_empty())
}

fn sysfs_text(dev: &Device, rel: &str) -> Option<String> {
    std::fs::read_to_string(dev.syspath().join(rel))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn size_bytes(dev: &Device) -> u64 {
    // sysfs `size` is always in 512-byte sectors, whatever the logical block size.
    sysfs_text(dev, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        * 512
}

fn devnum(dev: &Device) -> Option<(u32, u32)> {
    let n = dev.devnum()?;
    Some((
        nix::sys::stat::major(n) as u32,
        nix::sys::stat::minor(n) as u32,
    ))
}

fn devnode(dev: &Device) -> String {
    dev.devnode()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("/dev/{}", dev.sysname().to_string_lossy()))
}

/// Mounts of `dev` (by device number, or by mount source for btrfs and FUSE).
fn mounts_of<'a>(dev: &Device, mounts: &'a [MountEntry]) -> Vec<&'a MountEntry> {
    let num = devnum(dev);
    let node = devnode(dev);
    mounts
        .iter()
        .filter(|m| {
            num == Some((m.major, m.minor))
                || m.source == node
                || (m.source.starts_with("/dev/")
                    && std::fs::canonicalize(&m.source).is_ok_and(|p| p == Path::new(&node)))
        })
        .collect()
}

/// Filesystem signature of one device: blkid's `TYPE`, `LABEL`, `UUID` of a device whose
/// `USAGE` is `filesystem` (swap, RAID members and partition tables are not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    pub fs_type: String,
    pub label: String,
    pub uuid: String,
}

/// Where filesystem signatures come from: udev's database while its daemon runs,
/// otherwise a direct `blkid -p` probe of each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Udev,
    Blkid,
}

impl Source {
    /// [`Source::Udev`] when `systemd-udevd` accepts a connection on
    /// `/run/udev/control` (the check `udevadm control --ping` makes).
    pub fn detect() -> Source {
        if udev_alive() {
            Source::Udev
        } else {
            Source::Blkid
        }
    }
}

/// True when a udev daemon listens on its control socket. A socket file left by a
/// daemon that died refuses the connection.
pub fn udev_alive() -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let Ok(addr) = UnixAddr::new("/run/udev/control") else {
        return false;
    };
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).is_ok()
}

/// The filesystem signature of device node `node` (`/dev/sdb1`) as udev's database has
/// it, which is what listings read while udev runs. None when udev has none.
pub fn udev_signature(node: &str) -> Option<Signature> {
    let name = node.strip_prefix("/dev/")?;
    let dev = Device::from_syspath(&Path::new("/sys/class/block").join(name)).ok()?;
    signature(&dev, Source::Udev)
}

/// The filesystem signature of `dev`, from `source`.
pub fn signature(dev: &Device, source: Source) -> Option<Signature> {
    match source {
        Source::Udev => {
            if os(dev.property_value("ID_FS_USAGE")).as_deref() != Some("filesystem") {
                return None;
            }
            Some(Signature {
                fs_type: os(dev.property_value("ID_FS_TYPE"))?,
                label: os(dev.property_value("ID_FS_LABEL")).unwrap_or_default(),
                uuid: os(dev.property_value("ID_FS_UUID")).unwrap_or_default(),
            })
        }
        Source::Blkid => probe_blkid(Path::new(&devnode(dev))),
    }
}

/// Probes `node` with `blkid -p -o export` (low-level superblock probe, no cache).
/// None when it carries no filesystem, cannot be read, or blkid is missing.
pub fn probe_blkid(node: &Path) -> Option<Signature> {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(node)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    // blkid exits 2 when it finds nothing.
    if !out.status.success() {
        return None;
    }
    parse_blkid_export(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `blkid -o export` output (`KEY=value` lines, values with shell escapes).
fn parse_blkid_export(text: &str) -> Option<Signature> {
    let mut sig = Signature::default();
    let mut usage = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unescape_export(v);
        match k {
            "TYPE" => sig.fs_type = v,
            "LABEL" => sig.label = v,
            "UUID" => sig.uuid = v,
            "USAGE" => usage = Some(v),
            _ => {}
        }
    }
    (usage.as_deref() == Some("filesystem") && !sig.fs_type.is_empty()).then_some(sig)
}

/// blkid's export format escapes shell-special characters with a backslash.
fn unescape_export(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn filesystem(
    dev: &Device,
    source: Source,
    mounts: &[MountEntry],
    disks_dir: &Path,
) -> Option<Filesystem> {
    let sig = signature(dev, source)?;
    let mut mine = mounts_of(dev, mounts);
    mine.sort_by_key(|m| {
        (
            !m.mount_point.starts_with(disks_dir),
            m.root != Path::new("/"),
        )
    });
    let mount_point = mine.first().map(|m| m.mount_point.clone());
    let (used_bytes, free_bytes) = match mount_point.as_deref().map(space) {
        Some(Some((u, f))) => (Some(u), Some(f)),
        _ => (None, None),
    };
    Some(Filesystem {
        fs_type: sig.fs_type,
        label: sig.label,
        uuid: sig.uuid,
        mount_point: mount_point.map(|p| p.display().to_string()),
        used_bytes,
        free_bytes,
    })
}

/// `(used, available)` bytes of the filesystem mounted at `mp`.
pub fn space(mp: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(mp).ok()?;
    let frsize = s.fragment_size() as u64;
    let used = (s.blocks() as u64).saturating_sub(s.blocks_free() as u64) * frsize;
    Some((used, s.blocks_available() as u64 * frsize))
}

fn swaps() -> HashSet<String> {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn skipped(dev: &Device) -> bool {
    let name = dev.sysname().to_string_lossy();
    if name.starts_with("ram") || name.starts_with("zram") {
        return true;
    }
    if name.starts_with("loop") && sysfs_text(dev, "loop/backing_file").is_none() {
        return true;
    }
    size_bytes(dev) == 0
}

fn transport(dev: &Device, name: &str) -> String {
    let by_name = [
        ("nvme", "nvme"),
        ("mmcblk", "mmc"),
        ("loop", "loop"),
        ("vd", "virtio"),
    ];
    for (prefix, t) in by_name {
        if name.starts_with(prefix) {
            return t.into();
        }
    }
    os(dev.property_value("ID_BUS")).unwrap_or_else(|| "unknown".into())
}

fn model(dev: &Device, name: &str) -> String {
    if name.starts_with("loop") {
        return sysfs_text(dev, "loop/backing_file")
            .map(|f| format!("Loop device ({f})"))
            .unwrap_or_else(|| "Loop device".into());
    }
    sysfs_text(dev, "device/model")
        .or_else(|| sysfs_text(dev, "device/name"))
        .or_else(|| os(dev.property_value("ID_MODEL")).map(|m| m.replace('_', " ")))
        .unwrap_or_default()
}

/// The serial number: udev's (SCSI, SATA, USB, NVMe), else the kernel's, which virtio
/// disks show in the block device's own folder and SD cards in their device's.
fn serial(dev: &Device) -> String {
    os(dev.property_value("ID_SERIAL_SHORT"))
        .or_else(|| sysfs_text(dev, "serial"))
        .or_else(|| sysfs_text(dev, "device/serial"))
        .unwrap_or_default()
}

fn has_holders(dev: &Device) -> bool {
    std::fs::read_dir(dev.syspath().join("holders"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

fn scan_block() -> Result<Vec<Device>, StorageError> {
    let err =
        |e: std::io::Error| StorageError::Failed(format!("cannot read the udev database: {e}"));
    let mut en = Enumerator::new().map_err(err)?;
    en.match_subsystem("block").map_err(err)?;
    Ok(en.scan_devices().map_err(err)?.collect())
}

/// Lists the attached disks with their partitions and filesystems, sorted by name.
///
/// `disks_dir` is where PiNAS mounts data filesystems: mounts elsewhere make a disk a
/// system disk.
///
/// # Errors
/// [`StorageError::Failed`] when the udev database cannot be read.
pub fn list_disks(disks_dir: &Path) -> Result<Vec<Disk>, StorageError> {
    let mounts = mountinfo::read().unwrap_or_default();
    let swaps = swaps();
    let devices = scan_block()?;
    let source = Source::detect();
    let is = |d: &Device, t: &str| d.devtype() == Some(OsStr::new(t));
    let mut disks = Vec::new();
    for d in devices.iter().filter(|d| is(d, "disk") && !skipped(d)) {
        let name = d.sysname().to_string_lossy().into_owned();
        let parts: Vec<&Device> = devices
            .iter()
            .filter(|p| is(p, "partition"))
            .filter(|p| p.parent().is_some_and(|pp| pp.syspath() == d.syspath()))
            .collect();
        let all: Vec<&Device> = std::iter::once(d).chain(parts.iter().copied()).collect();
        let all_mounts: Vec<&MountEntry> = all.iter().flat_map(|x| mounts_of(x, &mounts)).collect();
        let system = all_mounts
            .iter()
            .any(|m| !m.mount_point.starts_with(disks_dir))
            || all.iter().any(|x| swaps.contains(&devnode(x)));
        let mut partitions: Vec<Partition> = parts
            .iter()
            .map(|p| Partition {
                name: p.sysname().to_string_lossy().into_owned(),
                path: devnode(p),
                size_bytes: size_bytes(p),
                filesystem: filesystem(p, source, &mounts, disks_dir),
                format_confirm: String::new(),
            })
            .collect();
        partitions.sort_by_key(|p| natural_key(&p.name));
        disks.push(Disk {
            path: devnode(d),
            model: model(d, &name),
            serial: serial(d),
            size_bytes: size_bytes(d),
            transport: transport(d, &name),
            rotational: sysfs_text(d, "queue/rotational").as_deref() == Some("1"),
            removable: sysfs_text(d, "removable").as_deref() == Some("1"),
            system,
            filesystem: filesystem(d, source, &mounts, disks_dir),
            partitions,
            mounted: !all_mounts.is_empty(),
            held: all.iter().any(|x| has_holders(x)),
            name,
            format_confirm: String::new(),
        });
        let disk = disks.last_mut().expect("just pushed");
        disk.format_confirm = disk.confirm_ids(&disk.path).remove(0);
        for i in 0..disk.partitions.len() {
            let path = disk.partitions[i].path.clone();
            disk.partitions[i].format_confirm = disk.confirm_ids(&path).remove(0);
        }
    }
    disks.sort_by_key(|d| natural_key(&d.name));
    Ok(disks)
}

/// Sorts `sda2` before `sda10`.
fn natural_key(s: &str) -> (String, u64) {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (a, b) = s.split_at(s.len() - digits);
    (a.to_string(), b.parse().unwrap_or(0))
}

/// True when `prog` is an executable in `PATH` or the sbin folders.
pub fn program_exists(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .any(|d| Path::new(d).join(prog).is_file());
    found
}

/// A filesystem found by its UUID.
#[derive(Debug, Clone)]
pub struct FoundFs {
    /// Device node carrying it.
    pub device: PathBuf,
    pub fs_type: String,
    pub label: String,
    pub uuid: String,
}

/// Finds the block device with filesystem `uuid` (compared case-insensitively).
///
/// # Errors
/// [`StorageError::Failed`] when the udev database cannot be read.
pub fn find_by_uuid(uuid: &str) -> Result<Option<FoundFs>, StorageError> {
    let source = Source::detect();
    for d in scan_block()? {
        // Empty loop devices and drives without media have size 0: nothing to probe.
        if size_bytes(&d) == 0 {
            continue;
        }
        let Some(sig) = signature(&d, source) else {
            continue;
        };
        if sig.uuid.eq_ignore_ascii_case(uuid) {
            return Ok(Some(FoundFs {
                device: PathBuf::from(devnode(&d)),
                fs_type: sig.fs_type,
                label: sig.label,
                uuid: sig.uuid,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkid_export_lines() {
        let sig = parse_blkid_export(
            "DEVNAME=/dev/loop3\nLABEL=my\\ disk\nUUID=0b5f-11\nBLOCK_SIZE=4096\nTYPE=ext4\nUSAGE=filesystem\n",
        )
        .unwrap();
        assert_eq!(
            sig,
            Signature {
                fs_type: "ext4".into(),
                label: "my disk".into(),
                uuid: "0b5f-11".into()
            }
        );
        assert_eq!(
            parse_blkid_export("DEVNAME=/dev/sda2\nUUID=x\nTYPE=swap\nUSAGE=other\n"),
            None
        );
        assert_eq!(parse_blkid_export(""), None);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["sda10", "sda2", "sda", "mmcblk0p1"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["mmcblk0p1", "sda", "sda2", "sda10"]);
    }

    #[test]
    fn lists_this_machine_without_error() {
        // Every machine has a root filesystem on some block device or none (containers);
        // either way listing must work and never include RAM disks.
        let disks = list_disks(Path::new("/nonexistent")).unwrap();
        assert!(disks
            .iter()
            .all(|d| !d.name.starts_with("ram") && !d.name.starts_with("zram")));
    }
}
