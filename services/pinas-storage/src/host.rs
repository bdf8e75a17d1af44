//! Who performs the mount(2) and umount(2) of data filesystems.
//!
//! On the device the web role runs in a mount namespace of its own (`ProtectSystem=strict`
//! and the rest of its unit's sandbox). A filesystem it mounted there itself would stay
//! there: smbd, the NFS server and the console, in the host's namespace, would see an
//! empty folder. So under systemd the mount is asked of PID 1, as a transient mount unit
//! (`systemd-mount`): PID 1 mounts in the host's namespace, and the mount propagates into
//! the web role's namespace, which systemd makes a slave of the host's. The kernel loads
//! a filesystem's module for that mount by itself, so the web role needs no
//! `CAP_SYS_MODULE` either.
//!
//! Without systemd as PID 1 (`pinas dev`, the tests on a development machine or in a
//! container) there is no such namespace and the process mounts with mount(2) itself.
//! [`Mounter::for_context`] is the one place that decides.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags, MsFlags};
use pinas_core::Context;

use crate::mountinfo;

/// What to mount where, the same for both ways of mounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountSpec {
    /// Device node, e.g. `/dev/sda1`.
    pub device: PathBuf,
    /// Absolute mount point.
    pub mount_point: PathBuf,
    /// The type given to mount(2), or with `fuse`, the FUSE driver's name (`ntfs-3g`,
    /// `exfat-fuse`: mount(8) runs `mount.<name>`).
    pub fs_type: String,
    /// Filesystem options (`uid=0,gid=100,...`), without the generic flags.
    pub data: Option<String>,
    /// A FUSE driver, mounted by its `mount.<fs_type>` helper rather than mount(2).
    pub fuse: bool,
}

/// The generic flags of every data mount: no set-uid programs or device nodes from a
/// data disk, no access-time writes.
pub(crate) const FLAGS: &str = "nosuid,nodev,noatime";

impl MountSpec {
    /// The full option string for mount(8) and mount units: [`FLAGS`], then `data`.
    pub fn options(&self) -> String {
        match &self.data {
            Some(d) => format!("{FLAGS},{d}"),
            None => FLAGS.to_string(),
        }
    }

    /// The `systemd-mount` command line: a plain (not automount) transient unit, no
    /// fsck (PiNAS never checked data disks before mounting them), collected once it is
    /// stopped or failed so a later mount at the same place can make the unit again.
    pub fn systemd_mount_args(&self) -> Vec<String> {
        vec![
            "--no-ask-password".into(),
            "--quiet".into(),
            "--automount=no".into(),
            "--fsck=no".into(),
            "--collect".into(),
            format!("--type={}", self.fs_type),
            format!("--options={}", self.options()),
            "--description=PiNAS data filesystem".into(),
            self.device.display().to_string(),
            self.mount_point.display().to_string(),
        ]
    }
}

/// Why a mount or an unmount failed, before the caller words it as a
/// [`crate::StorageError`].
#[derive(Debug)]
pub(crate) enum HostError {
    /// This process may not mount or unmount (not root, or PID 1 refused it).
    NotPermitted,
    /// Files are open on the filesystem.
    Busy,
    /// Anything else, in words (the tool's message or the errno's description).
    Failed(String),
}

/// The way data filesystems are mounted in this process. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mounter {
    /// mount(2) and umount2(2) in this process's namespace.
    Kernel,
    /// Transient mount units, mounted by PID 1 in the host's namespace.
    Systemd,
}

impl Mounter {
    /// Systemd when this is the device (not `pinas dev`) and systemd runs the machine
    /// (`/run/systemd/system` exists, as sd_booted(3) checks).
    pub fn for_context(ctx: &Context) -> Mounter {
        if !ctx.config.dev && Path::new("/run/systemd/system").is_dir() {
            Mounter::Systemd
        } else {
            Mounter::Kernel
        }
    }

    /// Mounts `spec`. The mount point must exist.
    pub fn mount(self, spec: &MountSpec) -> Result<(), HostError> {
        match self {
            Mounter::Systemd => {
                let out = Command::new("systemd-mount")
                    .args(spec.systemd_mount_args())
                    .output()
                    .map_err(|e| HostError::Failed(format!("cannot run systemd-mount: {e}")))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(match tool_error(&out.stderr) {
                        // With --quiet the mount's own words (mount.cifs's, the kernel's)
                        // are only in the mount unit's journal.
                        HostError::Failed(m) if m.is_empty() => HostError::Failed(format!(
                            "the {} mount of {} failed ({}); its reason is in the system journal (journalctl -k, or the mount unit's log)",
                            spec.fs_type,
                            spec.device.display(),
                            out.status
                        )),
                        e => e,
                    })
                }
            }
            Mounter::Kernel if spec.fuse => {
                let prog = format!("mount.{}", spec.fs_type);
                let out = Command::new(&prog)
                    .arg("-o")
                    .arg(spec.options())
                    .arg(&spec.device)
                    .arg(&spec.mount_point)
                    .output()
                    .map_err(|e| HostError::Failed(format!("cannot run {prog}: {e}")))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(HostError::Failed(format!(
                        "{prog}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            }
            Mounter::Kernel => nix::mount::mount(
                Some(spec.device.as_path()),
                &spec.mount_point,
                Some(spec.fs_type.as_str()),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
                spec.data.as_deref(),
            )
            .map_err(errno_error),
        }
    }

    /// Unmounts `mp`. A busy filesystem is [`HostError::Busy`] unless `lazy_if_busy`,
    /// then it is detached at once and the kernel finishes when its last file closes.
    pub fn unmount(self, mp: &Path, lazy_if_busy: bool) -> Result<(), HostError> {
        match self.unmount_once(mp, false) {
            Err(HostError::Busy) if lazy_if_busy => self.unmount_once(mp, true),
            other => other,
        }
    }

    /// Detaches `mp` lazily (a disk that was pulled out: nothing can be flushed anyway).
    pub fn detach(self, mp: &Path) -> Result<(), HostError> {
        self.unmount_once(mp, true)
    }

    fn unmount_once(self, mp: &Path, lazy: bool) -> Result<(), HostError> {
        match self {
            Mounter::Kernel => {
                let flags = if lazy {
                    MntFlags::MNT_DETACH
                } else {
                    MntFlags::empty()
                };
                umount2(mp, flags).map_err(errno_error)
            }
            Mounter::Systemd => {
                // Stopping the mount unit runs umount(8) in the host's namespace. The
                // mount units have no lazy mode that a stop can ask for, so a lazy
                // detach runs `umount --lazy` as a transient service of PID 1.
                let out = if lazy {
                    Command::new("systemd-run")
                        .args([
                            "--quiet",
                            "--wait",
                            "--collect",
                            "--no-ask-password",
                            "--service-type=oneshot",
                            "--description=PiNAS: detach a data filesystem",
                            "--",
                            "umount",
                            "--lazy",
                        ])
                        .arg(mp)
                        .output()
                } else {
                    Command::new("systemd-umount")
                        .args(["--no-ask-password", "--quiet"])
                        .arg(mp)
                        .output()
                }
                .map_err(|e| HostError::Failed(format!("cannot ask systemd to unmount: {e}")))?;
                let table = mountinfo::read().unwrap_or_default();
                if !mountinfo::is_mount_point(&table, mp) {
                    return Ok(());
                }
                match tool_error(&out.stderr) {
                    HostError::NotPermitted => Err(HostError::NotPermitted),
                    // The unit's stop failed and the filesystem is still there: umount(8)
                    // found it busy (its message is in the unit's journal, not here).
                    _ if !lazy => Err(HostError::Busy),
                    e => Err(e),
                }
            }
        }
    }
}

fn errno_error(e: Errno) -> HostError {
    match e {
        Errno::EPERM | Errno::EACCES => HostError::NotPermitted,
        Errno::EBUSY => HostError::Busy,
        e => HostError::Failed(e.desc().to_string()),
    }
}

/// Words a failed systemd tool's stderr. Without the right to manage units, systemd's
/// tools say "Access denied" or ask for "interactive authentication" (polkit, which
/// `--no-ask-password` keeps from prompting).
fn tool_error(stderr: &[u8]) -> HostError {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let lower = text.to_lowercase();
    if lower.contains("access denied") || lower.contains("interactive authentication") {
        HostError::NotPermitted
    } else {
        HostError::Failed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fs_type: &str, data: Option<&str>, fuse: bool) -> MountSpec {
        MountSpec {
            device: "/dev/sdb1".into(),
            mount_point: "/storage/disks/Photos 2024".into(),
            fs_type: fs_type.into(),
            data: data.map(str::to_string),
            fuse,
        }
    }

    #[test]
    fn systemd_mount_keeps_the_flags_and_owner_options() {
        let s = spec("vfat", Some("uid=0,gid=100,fmask=0002,dmask=0002"), false);
        let args = s.systemd_mount_args();
        assert!(args.contains(&"--type=vfat".to_string()), "{args:?}");
        assert!(
            args.contains(
                &"--options=nosuid,nodev,noatime,uid=0,gid=100,fmask=0002,dmask=0002".to_string()
            ),
            "{args:?}"
        );
        // No fsck, no automount: the same mount as mount(2) makes, at once.
        assert!(args.contains(&"--fsck=no".to_string()));
        assert!(args.contains(&"--automount=no".to_string()));
        // What and where come last, as two arguments (no probing, no generated path),
        // a space in the folder name kept inside one argument.
        assert_eq!(
            args[args.len() - 2..],
            ["/dev/sdb1", "/storage/disks/Photos 2024"]
        );
    }

    #[test]
    fn fuse_drivers_go_through_their_mount_helper_type() {
        let s = spec("ntfs-3g", Some("uid=0,gid=100"), true);
        assert!(s
            .systemd_mount_args()
            .contains(&"--type=ntfs-3g".to_string()));
        assert_eq!(s.options(), "nosuid,nodev,noatime,uid=0,gid=100");
        assert_eq!(spec("ext4", None, false).options(), "nosuid,nodev,noatime");
    }

    #[test]
    fn systemd_refusals_are_permission_errors() {
        assert!(matches!(
            tool_error(b"Failed to start transient mount unit: Access denied\n"),
            HostError::NotPermitted
        ));
        assert!(matches!(
            tool_error(
                b"Failed to start transient mount unit: Interactive authentication required.\n"
            ),
            HostError::NotPermitted
        ));
        match tool_error(b"Job for storage-disks-x.mount failed.\n") {
            HostError::Failed(m) => assert_eq!(m, "Job for storage-disks-x.mount failed."),
            e => panic!("{e:?}"),
        }
    }
}
