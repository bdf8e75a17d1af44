//! The kernel's table of mounts, `/proc/self/mountinfo` (format: proc(5)).

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Device number of the mounted filesystem (`0:NN` for btrfs and virtual ones).
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that is mounted (`/` unless a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `ext4`, `fuseblk`.
    pub fs_type: String,
    /// Mount source, e.g. `/dev/sda1`.
    pub source: String,
}

/// Reads the current process's mount table.
///
/// # Errors
/// The I/O error of reading `/proc/self/mountinfo`.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// Parses mountinfo text; malformed lines are skipped.
///
/// Fields are split by procfs-core's parser (`MountInfo::from_line`); the kernel's octal
/// escapes in paths (`\040` for a space), which it leaves as they are, are undone here.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let m = procfs_core::process::MountInfo::from_line(line).ok()?;
    let (major, minor) = m.majmin.split_once(':')?;
    Some(MountEntry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root: unescape(&m.root).into(),
        mount_point: unescape(&m.mount_point.to_string_lossy()).into(),
        fs_type: m.fs_type,
        source: m.mount_source.as_deref().map(unescape).unwrap_or_default(),
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `path` is itself a mount point in `mounts`.
pub fn is_mount_point(mounts: &[MountEntry], path: &Path) -> bool {
    mounts.iter().any(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_escapes() {
        let t = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                 40 1 7:0 / /srv/my\\040disk rw shared:3 - ext4 /dev/loop0 rw\n\
                 41 1 0:45 / /b rw - btrfs /dev/sdb1 rw,space_cache\n\
                 garbage\n";
        let m = parse(t);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].major, m[0].minor), (98, 0));
        assert_eq!(m[0].root, Path::new("/mnt1"));
        assert_eq!(m[1].mount_point, Path::new("/srv/my disk"));
        assert_eq!(m[1].source, "/dev/loop0");
        assert_eq!(m[2].fs_type, "btrfs");
        assert!(is_mount_point(&m, Path::new("/b")));
    }

    #[test]
    fn reads_own_table() {
        let m = read().unwrap();
        assert!(m.iter().any(|e| e.mount_point == Path::new("/")));
    }
}
