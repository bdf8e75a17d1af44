//! Share and account errors and how the API reports them.

use pinas_core::Error;

/// What can go wrong with shares, users and groups.
#[derive(Debug, thiserror::Error)]
pub enum SharesError {
    /// The share name breaks the naming rules.
    #[error("{0:?} is not a valid share name: use 1-64 letters, digits, spaces, '_', '-' or '.', starting with a letter or digit (reserved: global, homes, printers, ipc$, print$)")]
    InvalidShareName(String),
    /// Another share has this name (names are compared without case, like SMB clients do).
    #[error("a share named {0:?} already exists")]
    ShareNameTaken(String),
    /// The folder is not inside a mounted data disk or the shares root.
    #[error("{0:?} is not inside a mounted data disk or the shares root")]
    PathOutsideRoot(String),
    /// The folder path contains characters Samba or NFS cannot carry.
    #[error("the share path {0:?} contains a character PiNAS cannot write into smb.conf or exports ('%', '\"', or a control character)")]
    InvalidPath(String),
    /// The path names something that is not a folder.
    #[error("{0:?} exists and is not a folder")]
    NotAFolder(String),
    /// A folder above the share blocks other users (e.g. mode 0700).
    #[error("PiNAS users cannot reach {path:?}: {blocker:?} gives others no search permission (chmod o+x {blocker:?}, or choose another folder)")]
    NotReachable { path: String, blocker: String },
    /// An admin tried to delete their own account.
    #[error("you cannot delete your own account")]
    SelfDelete,
    /// The description is too long.
    #[error("the description must have at most 256 characters")]
    InvalidDescription,
    /// A name in `valid_users` is neither a user nor `@group`.
    #[error("{0:?} in valid_users is neither a PiNAS user nor @group")]
    UnknownValidUser(String),
    /// An NFS client is not a host name, address, network or `*`.
    #[error("{0:?} is not an NFS client: use a host name, an IP address, a network like 192.168.1.0/24, or *")]
    InvalidNfsClient(String),
    /// NFS is on but no client is allowed.
    #[error("NFS is enabled but nfs_clients is empty: name the hosts or networks that may mount it (or *)")]
    NfsClientsRequired,
    /// No share has this id.
    #[error("no share with id {0}")]
    ShareNotFound(i64),
    /// Samba's `testparm` rejected the rendered configuration.
    #[error("the new Samba configuration was rejected by testparm, nothing was changed: {0}")]
    ConfigRejected(String),
    /// Group name breaks the rules or is a system group.
    #[error("{0:?} is not a valid group name: use 1-32 lowercase letters, digits, '_', '-' or '.', starting with a letter; system groups (users, root, ...) are reserved")]
    InvalidGroupName(String),
    /// A group with this name exists.
    #[error("group {0:?} already exists")]
    GroupExists(String),
    /// No group with this name.
    #[error("no group {0:?}")]
    GroupNotFound(String),
    /// No user with this name.
    #[error("no user {0:?}")]
    UserNotFound(String),
    /// A user with this name exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// A group named in a request does not exist.
    #[error("group {0:?} does not exist")]
    UnknownGroup(String),
    /// A member named in a request does not exist.
    #[error("user {0:?} does not exist")]
    UnknownMember(String),
    /// The only administrator cannot be removed or demoted.
    #[error("{0:?} is the last administrator; make another user admin first")]
    LastAdmin(String),
    /// Shares name the user or group in their valid users.
    #[error("{name:?} is named in the valid users of shares {shares:?}; remove it there first")]
    InUse { name: String, shares: Vec<String> },
    /// The request is not allowed for this account.
    #[error("{0}")]
    Forbidden(String),
    /// An error from the core (password policy, user name rules, ...).
    #[error("{0}")]
    Core(Error),
    /// A Samba tool failed.
    #[error("{0}")]
    Samba(String),
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// Database error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl From<Error> for SharesError {
    fn from(e: Error) -> Self {
        SharesError::Core(e)
    }
}

impl From<SharesError> for Error {
    fn from(e: SharesError) -> Error {
        use SharesError::*;
        let msg = e.to_string();
        match e {
            InvalidShareName(_) => Error::invalid("invalid_share_name", msg).with_field("name"),
            ShareNameTaken(_) => Error::conflict("share_name_taken", msg).with_field("name"),
            PathOutsideRoot(_) => Error::invalid("share_path_outside_root", msg).with_field("path"),
            InvalidPath(_) => Error::invalid("invalid_share_path", msg).with_field("path"),
            NotAFolder(_) => Error::invalid("share_path_not_folder", msg).with_field("path"),
            NotReachable { .. } => {
                Error::invalid("share_path_not_reachable", msg).with_field("path")
            }
            SelfDelete => Error::conflict("cannot_delete_self", msg),
            InvalidDescription => {
                Error::invalid("invalid_description", msg).with_field("description")
            }
            UnknownValidUser(_) => {
                Error::invalid("unknown_valid_user", msg).with_field("valid_users")
            }
            InvalidNfsClient(_) => {
                Error::invalid("invalid_nfs_client", msg).with_field("nfs_clients")
            }
            NfsClientsRequired => {
                Error::invalid("nfs_clients_required", msg).with_field("nfs_clients")
            }
            ShareNotFound(_) => Error::not_found("share_not_found", msg),
            ConfigRejected(_) => Error::invalid("smb_config_rejected", msg),
            InvalidGroupName(_) => Error::invalid("invalid_group_name", msg).with_field("name"),
            GroupExists(_) => Error::conflict("group_exists", msg).with_field("name"),
            GroupNotFound(_) => Error::not_found("group_not_found", msg),
            UserNotFound(_) => Error::not_found("user_not_found", msg),
            UserExists(_) => Error::conflict("user_exists", msg).with_field("name"),
            UnknownGroup(_) => Error::invalid("unknown_group", msg).with_field("groups"),
            UnknownMember(_) => Error::invalid("unknown_member", msg).with_field("members"),
            LastAdmin(_) => Error::conflict("last_admin", msg),
            InUse { .. } => Error::conflict("in_use_by_share", msg),
            Forbidden(_) => Error::forbidden("admin_required", msg),
            Core(e) => e,
            Samba(m) => Error::internal(m),
            Write { .. } => Error::internal(msg),
            Db(e) => Error::from(e),
        }
    }
}
