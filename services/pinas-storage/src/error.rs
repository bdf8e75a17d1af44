//! Storage errors and how the API reports them.

use pinas_core::Error;

/// What can go wrong with disks, mounts and formatting.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The request names no usable filesystem UUID.
    #[error("{0:?} is not a filesystem UUID")]
    InvalidUuid(String),
    /// No block device carries a filesystem with this UUID.
    #[error("no attached disk has a filesystem with UUID {0}")]
    FilesystemNotFound(String),
    /// The filesystem type cannot be mounted or created by PiNAS.
    #[error("filesystem type {0:?} is not supported (use ext4, btrfs, xfs, exfat, vfat or ntfs)")]
    UnsupportedFilesystem(String),
    /// The filesystem is mounted somewhere PiNAS does not manage.
    #[error("filesystem {uuid} is already mounted at {mount_point} by the system")]
    MountedElsewhere { uuid: String, mount_point: String },
    /// The filesystem is not mounted by PiNAS.
    #[error("filesystem {0} is not mounted by PiNAS")]
    NotMounted(String),
    /// Shares live on the filesystem.
    #[error("shares {shares:?} live on {mount_point}; remove them first or unmount with \"force\": true")]
    MountInUse {
        mount_point: String,
        shares: Vec<String>,
    },
    /// The kernel refused to unmount because files are open.
    #[error("{0} is busy (files are open on it); close them or unmount with \"force\": true")]
    Busy(String),
    /// The device is not a disk or partition PiNAS lists.
    #[error("{0:?} is not a disk or partition of this machine")]
    UnknownDevice(String),
    /// `confirm` names neither the disk's serial number nor the filesystem's UUID (nor,
    /// for a device with neither, its path).
    #[error("to format {device}, set \"confirm\" to {expected} as the disk list shows it (its format_confirm)")]
    ConfirmMismatch {
        /// The device asked for.
        device: String,
        /// What would have been accepted, in words.
        expected: String,
    },
    /// The device (or one of its partitions) is mounted or used by another device.
    #[error("{0} is in use (mounted or held by another device); unmount it first")]
    DeviceInUse(String),
    /// The device holds the running system.
    #[error("{0} holds the running system: PiNAS neither formats it nor mounts its filesystems")]
    SystemDisk(String),
    /// The label is not valid for the filesystem type.
    #[error("invalid label for {fs_type}: {reason}")]
    InvalidLabel { fs_type: String, reason: String },
    /// The folder is outside every data filesystem and the shares root.
    #[error("{0:?} is not inside a mounted data disk or the shares root")]
    OutsideRoots(String),
    /// The folder does not exist.
    #[error("folder {0:?} does not exist")]
    FolderNotFound(String),
    /// Mounting or formatting needs privileges this process lacks.
    #[error("{0}: permission denied (PiNAS must run as root to manage disks)")]
    NotPermitted(String),
    /// A system call or command failed.
    #[error("{0}")]
    Failed(String),
    /// Database error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        use StorageError::*;
        let msg = e.to_string();
        match e {
            InvalidUuid(_) => Error::invalid("invalid_uuid", msg).with_field("uuid"),
            FilesystemNotFound(_) => {
                Error::not_found("filesystem_not_found", msg).with_field("uuid")
            }
            UnsupportedFilesystem(_) => {
                Error::invalid("unsupported_filesystem", msg).with_field("fs_type")
            }
            MountedElsewhere { .. } => Error::conflict("mounted_elsewhere", msg).with_field("uuid"),
            NotMounted(_) => Error::not_found("not_mounted", msg).with_field("uuid"),
            MountInUse { .. } => Error::conflict("mount_in_use", msg),
            Busy(_) => Error::conflict("device_busy", msg),
            UnknownDevice(_) => Error::invalid("unknown_device", msg).with_field("device"),
            ConfirmMismatch { .. } => Error::invalid("confirm_mismatch", msg).with_field("confirm"),
            DeviceInUse(_) => Error::conflict("device_in_use", msg).with_field("device"),
            SystemDisk(_) => Error::conflict("system_disk", msg).with_field("device"),
            InvalidLabel { .. } => Error::invalid("invalid_label", msg).with_field("label"),
            OutsideRoots(_) => Error::invalid("folder_outside_roots", msg).with_field("path"),
            FolderNotFound(_) => Error::not_found("folder_not_found", msg).with_field("path"),
            NotPermitted(_) => Error::forbidden("not_permitted", msg),
            Failed(m) => Error::internal(m),
            Db(e) => Error::from(e),
        }
    }
}
