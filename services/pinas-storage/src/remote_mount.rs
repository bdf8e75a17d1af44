//! Mounting the companion's remote share on its request.
//!
//! The companion role (`pinas companion`) runs as its own user without the right to
//! mount, in a mount namespace of its own; a mount made there would not be seen by smbd
//! either. The web role, which already has data disks mounted by PID 1 in the host's
//! namespace ([`crate::host`]), mounts the companion's remote share (SMB or NFS, its
//! NAS's share) on its request, and nothing else:
//!
//! - the request comes over a Unix socket in a folder only root and the companion's
//!   group can pass through, and the caller's user is the kernel's word for it
//!   (`SO_PEERCRED`): any other user is refused;
//! - the file system type is `cifs` or `nfs`; the source is `//host/share` or
//!   `host:/path`; every option is from an allow-list ([`check_options`]); the mount
//!   point named is the companion's one fixed mount point;
//! - the mount is made at a root-owned folder ([`Policy::host_mount_point`]) that the
//!   companion's unit binds at its mount point, so the companion cannot swap the folder
//!   for a link to somewhere else between the check and the mount;
//! - the SMB account is read from the companion's credentials file (a regular file of
//!   the companion's, mode 0600, not a link, only `username=`, `password=`, `domain=`
//!   lines), copied to a root-only file for mount.cifs, and that copy is removed after
//!   the mount: the password is never on a command line;
//! - `nosuid`, `nodev` and `noexec` are always added, and for SMB the files' owner the
//!   companion's user (it moves files into the share with rsync, which sets their times
//!   and modes: only an owner may), group `users`, modes 0664/0775 (as FAT data disks:
//!   every PiNAS user may write).
//!
//! The protocol is one JSON line each way: a [`Request`], then a [`Response`].

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use crate::host::{HostError, MountSpec, Mounter};
use crate::mount::USERS_GID;
use crate::mountinfo;

/// The socket's folder beside the run folder (`/run/pinas-remote-mount`, outside
/// `/run/pinas`, which the companion's unit replaces with its own runtime folder): made
/// by tmpfiles.d (root, group of the companion, 0710) on an image whose companion unit
/// uses it; the web role serves the socket only when the folder exists.
pub const SOCKET_DIR_SUFFIX: &str = "-remote-mount";
/// The socket's name in that folder.
pub const SOCKET_NAME: &str = "remote-mount.sock";
/// The companion's user.
pub const COMPANION_USER: &str = "pinas-companion";

/// A request: mount or unmount the remote share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Mount {
        /// `cifs` or `nfs`.
        fs_type: String,
        /// `//host/share` or `host:/export`.
        source: String,
        /// The companion's mount point (the one it is allowed).
        mount_point: PathBuf,
        options: Vec<String>,
    },
    Unmount {
        mount_point: PathBuf,
    },
}

/// The answer: `{"ok":true}` or `{"ok":false,"code":...,"error":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    fn ok() -> Response {
        Response {
            ok: true,
            code: None,
            error: None,
        }
    }
}

/// A refused or failed request: a code (`forbidden`, `invalid_request`,
/// `invalid_fs_type`, `invalid_source`, `invalid_mount_point`, `invalid_option`,
/// `invalid_credentials`, `mount_failed`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        Response {
            ok: false,
            code: Some(r.code.to_string()),
            error: Some(r.message),
        }
    }
}

/// Who may ask, and for what.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The companion's uid: the only caller served.
    pub allowed_uid: u32,
    /// The mount point as the companion names it (`<remote_dir>/mnt`).
    pub mount_point: PathBuf,
    /// Where PID 1 mounts: a root-owned folder the companion's unit binds at
    /// `mount_point` (the same path where there is no such unit).
    pub host_mount_point: PathBuf,
    /// The companion's credentials file (`<remote_dir>/credentials`).
    pub credentials: PathBuf,
    /// Folder for the root-only copy of the credentials, made while mounting.
    pub private_dir: PathBuf,
}

/// A checked mount: what [`Exec::mount`] is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub fs_type: String,
    pub source: String,
    pub at: PathBuf,
    /// The options to mount with (the credentials option names the root-only copy).
    pub options: Vec<String>,
    /// The credentials file contents to put in the root-only copy.
    pub credentials: Option<String>,
}

/// Performs checked mounts; [`SystemExec`] on the device.
pub trait Exec: Send + Sync {
    /// Mounts `c`, the credentials (if any) already in the file its options name.
    ///
    /// # Errors
    /// What the mount said.
    fn mount(&self, c: &Checked) -> Result<(), String>;
    /// Detaches what is mounted at `at` (lazily); nothing mounted is fine.
    ///
    /// # Errors
    /// What the unmount said.
    fn unmount(&self, at: &Path) -> Result<(), String>;
}

/// Mounts through PID 1 (a transient mount unit) when systemd runs the machine, else
/// with the file system's mount helper (`mount.cifs`, `mount.nfs`).
pub struct SystemExec {
    mounter: Mounter,
}

impl SystemExec {
    pub fn new(systemd: bool) -> SystemExec {
        SystemExec {
            mounter: if systemd {
                Mounter::Systemd
            } else {
                Mounter::Kernel
            },
        }
    }
}

fn host_error(e: HostError) -> String {
    match e {
        HostError::NotPermitted => "not permitted".into(),
        HostError::Busy => "busy".into(),
        HostError::Failed(m) => m,
    }
}

impl Exec for SystemExec {
    fn mount(&self, c: &Checked) -> Result<(), String> {
        // The generic flags (nosuid,nodev,noatime) come from MountSpec::options; the
        // helper form runs mount.<type>, which reads the credentials file itself.
        let spec = MountSpec {
            device: PathBuf::from(&c.source),
            mount_point: c.at.clone(),
            fs_type: c.fs_type.clone(),
            data: Some(c.options.join(",")),
            fuse: true,
        };
        self.mounter.mount(&spec).map_err(host_error)
    }

    fn unmount(&self, at: &Path) -> Result<(), String> {
        let table = mountinfo::read().unwrap_or_default();
        if !mountinfo::is_mount_point(&table, at) {
            return Ok(());
        }
        self.mounter.detach(at).map_err(host_error)
    }
}

const SMB_VERSIONS: &[&str] = &["3.1.1", "3.11", "3.02", "3.0", "3", "2.1", "2.0", "1.0"];
const NFS_VERSIONS: &[&str] = &["4.2", "4.1", "4.0", "4", "3"];

fn host_ok(h: &str) -> bool {
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map_or(h, |v6| v6);
    !h.is_empty()
        && h.len() <= 253
        && (h.parse::<std::net::IpAddr>().is_ok()
            || h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

fn plain(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c == ',' || c == '\\')
}

/// Checks the source for `fs_type`: `//host/share` (one share name, no slashes) for
/// cifs, `host:/path` (no `..`, no spaces) for nfs.
///
/// # Errors
/// `invalid_source`.
pub fn check_source(fs_type: &str, source: &str) -> Result<(), Refusal> {
    let ok = match fs_type {
        "cifs" => source.strip_prefix("//").is_some_and(|rest| {
            rest.split_once('/').is_some_and(|(h, share)| {
                host_ok(h) && plain(share) && !share.contains('/') && share.len() <= 80
            })
        }),
        _ => {
            // The last ':' before the path: IPv6 hosts are bracketed.
            source.split_once(":/").is_some_and(|(h, path)| {
                host_ok(h)
                    && path.len() < 1024
                    && (path.is_empty() || plain(path))
                    && !path.contains(char::is_whitespace)
                    && !path.split('/').any(|c| c == "..")
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(refuse(
            "invalid_source",
            format!("{source:?} is not a {fs_type} source (//host/share or host:/path)"),
        ))
    }
}

fn number_in(v: &str, lo: u32, hi: u32) -> bool {
    v.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
}

/// Checks every option against the allow-list of `fs_type` and returns the options to
/// mount with (the forced ones added), and whether the credentials file is named.
///
/// cifs: `credentials=<the companion's file>` or `guest`, `vers=`, `soft`,
/// `echo_interval=1..600`, `iocharset=utf8`, `noserverino`, `_netdev`; nfs: `vers=`,
/// `soft`, `timeo=1..600`, `retrans=0..10`, `_netdev`; both `port=1..65535`. Added: `nosuid,nodev,noexec`,
/// and for cifs `uid=<owner_uid>,gid=100,file_mode=0664,dir_mode=0775`.
///
/// # Errors
/// `invalid_option` naming the option.
pub fn check_options(
    fs_type: &str,
    options: &[String],
    credentials: &Path,
    owner_uid: u32,
) -> Result<(Vec<String>, bool), Refusal> {
    let mut out = Vec::new();
    let mut creds = false;
    for o in options {
        let (k, v) = o
            .split_once('=')
            .map_or((o.as_str(), None), |(k, v)| (k, Some(v)));
        let ok = match (fs_type, k, v) {
            ("cifs", "credentials", Some(p)) => {
                creds = Path::new(p) == credentials;
                creds
            }
            ("cifs", "guest" | "noserverino", None) => true,
            ("cifs", "iocharset", Some("utf8")) => true,
            ("cifs", "echo_interval", Some(n)) => number_in(n, 1, 600),
            ("cifs", "vers", Some(v)) => SMB_VERSIONS.contains(&v),
            ("nfs", "vers", Some(v)) => NFS_VERSIONS.contains(&v),
            ("nfs", "timeo", Some(n)) => number_in(n, 1, 600),
            ("nfs", "retrans", Some(n)) => number_in(n, 0, 10),
            (_, "soft" | "_netdev", None) => true,
            (_, "port", Some(n)) => number_in(n, 1, 65535),
            _ => false,
        };
        if !ok {
            return Err(refuse(
                "invalid_option",
                format!("the option {o:?} is not allowed for {fs_type}"),
            ));
        }
        if k != "credentials" && !out.contains(o) {
            out.push(o.clone());
        }
    }
    out.extend(["nosuid", "nodev", "noexec"].map(String::from));
    if fs_type == "cifs" {
        out.extend([
            format!("uid={owner_uid}"),
            format!("gid={USERS_GID}"),
            "file_mode=0664".into(),
            "dir_mode=0775".into(),
        ]);
    }
    Ok((out, creds))
}

/// Reads the companion's credentials file: not a link, a regular file of `uid`, no
/// access for group or others, at most 4 KiB, only `username=`, `password=` and
/// `domain=` lines.
///
/// # Errors
/// `invalid_credentials`.
pub fn read_credentials(path: &Path, uid: u32) -> Result<String, Refusal> {
    let bad = |m: String| refuse("invalid_credentials", m);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let meta = f
        .metadata()
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if !meta.is_file() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(bad(format!(
            "{} must be a regular file of uid {uid} with mode 0600",
            path.display()
        )));
    }
    let mut text = String::new();
    f.take(4097)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if text.len() > 4096
        || !text.lines().all(|l| {
            ["username=", "password=", "domain="]
                .iter()
                .any(|p| l.starts_with(p))
        })
    {
        return Err(bad(format!(
            "{} holds other lines than username=, password= and domain=",
            path.display()
        )));
    }
    Ok(text)
}

fn check_mount_point(p: &Policy, mp: &Path) -> Result<(), Refusal> {
    if mp != p.mount_point {
        return Err(refuse(
            "invalid_mount_point",
            format!(
                "{} is not the remote share's mount point ({})",
                mp.display(),
                p.mount_point.display()
            ),
        ));
    }
    // The host's folder: a real folder, no link on the way.
    let mut cur = PathBuf::new();
    for c in p.host_mount_point.components() {
        cur.push(c);
        let m = std::fs::symlink_metadata(&cur).map_err(|e| {
            refuse(
                "invalid_mount_point",
                format!("{}: {e}", p.host_mount_point.display()),
            )
        })?;
        if m.file_type().is_symlink() || !m.is_dir() {
            return Err(refuse(
                "invalid_mount_point",
                format!("{} is not a folder", cur.display()),
            ));
        }
    }
    Ok(())
}

/// Checks request `r` against `p`.
///
/// # Errors
/// A [`Refusal`] saying what is wrong.
pub fn check(p: &Policy, r: Request) -> Result<Option<Checked>, Refusal> {
    match r {
        Request::Unmount { mount_point } => {
            check_mount_point(p, &mount_point)?;
            Ok(None)
        }
        Request::Mount {
            fs_type,
            source,
            mount_point,
            options,
        } => {
            if fs_type != "cifs" && fs_type != "nfs" {
                return Err(refuse(
                    "invalid_fs_type",
                    format!("the file system type must be cifs or nfs, not {fs_type:?}"),
                ));
            }
            check_source(&fs_type, &source)?;
            check_mount_point(p, &mount_point)?;
            let (mut opts, creds) =
                check_options(&fs_type, &options, &p.credentials, p.allowed_uid)?;
            let credentials = if creds {
                let text = read_credentials(&p.credentials, p.allowed_uid)?;
                opts.insert(
                    0,
                    format!("credentials={}", private_credentials(p).display()),
                );
                Some(text)
            } else {
                None
            };
            Ok(Some(Checked {
                fs_type,
                source,
                at: p.host_mount_point.clone(),
                options: opts,
                credentials,
            }))
        }
    }
}

fn private_credentials(p: &Policy) -> PathBuf {
    p.private_dir.join("remote-credentials")
}

/// Checks and performs one request from a caller of uid `uid`.
pub fn handle(p: &Policy, exec: &dyn Exec, uid: u32, line: &str) -> Response {
    if uid != p.allowed_uid {
        return refuse(
            "forbidden",
            format!(
                "uid {uid} may not ask for mounts (only uid {})",
                p.allowed_uid
            ),
        )
        .into();
    }
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return refuse("invalid_request", format!("not a request: {e}")).into(),
    };
    let checked = match check(p, req) {
        Ok(c) => c,
        Err(r) => return r.into(),
    };
    let Some(c) = checked else {
        return match exec.unmount(&p.host_mount_point) {
            Ok(()) => Response::ok(),
            Err(e) => refuse("mount_failed", e).into(),
        };
    };
    let copy = private_credentials(p);
    if let Some(text) = &c.credentials {
        if let Err(e) = write_root_only(&copy, text) {
            return refuse("mount_failed", format!("credentials copy: {e}")).into();
        }
    }
    let r = exec.mount(&c);
    if c.credentials.is_some() {
        let _ = std::fs::remove_file(&copy);
    }
    match r {
        Ok(()) => {
            tracing::info!(fs_type = %c.fs_type, source = %c.source, at = %c.at.display(), "remote share mounted for the companion");
            Response::ok()
        }
        Err(e) => refuse("mount_failed", e).into(),
    }
}

fn write_root_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Serves requests on `socket` (made 0600, owner the allowed uid) until `stop`.
///
/// # Errors
/// When the socket cannot be bound.
pub async fn serve(
    socket: &Path,
    policy: Policy,
    exec: Arc<dyn Exec>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    // Root may chown; a test server run by a user serves its own uid.
    let _ = std::os::unix::fs::chown(socket, Some(policy.allowed_uid), None);
    let policy = Arc::new(policy);
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "remote mount socket: accept failed");
                    continue;
                }
            },
        };
        let (policy, exec) = (policy.clone(), exec.clone());
        tokio::spawn(async move {
            let uid = match stream.peer_cred() {
                Ok(c) => c.uid(),
                Err(_) => return,
            };
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let mut rd = BufReader::new(rd.take(64 * 1024));
            if rd.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = tokio::task::spawn_blocking(move || {
                handle(&policy, exec.as_ref(), uid, line.trim_end())
            })
            .await
            .unwrap_or_else(|e| refuse("mount_failed", e.to_string()).into());
            if !resp.ok {
                tracing::warn!(uid, code = ?resp.code, error = ?resp.error, "remote mount request refused");
            }
            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
            out.push(b'\n');
            let _ = wr.write_all(&out).await;
        });
    }
}

/// The device's request path, when this image asks for it: the socket folder
/// `<run_dir>-remote-mount` exists (tmpfiles.d makes it where the companion's unit uses
/// it) and so does the companion's user. The mount point is `<remote_dir>/mnt` of
/// `[companion]` (default `<state_dir>/companion/remote/mnt`); PID 1 mounts at
/// `<state_dir>/remote-mnt` (root's, made here), which the companion's unit binds there.
pub fn for_device(ctx: &pinas_core::Context) -> Option<(PathBuf, Policy)> {
    let paths = &ctx.config.paths;
    let mut dir = paths.run_dir.clone().into_os_string();
    dir.push(SOCKET_DIR_SUFFIX);
    let dir = PathBuf::from(dir);
    if ctx.config.dev || !dir.is_dir() {
        return None;
    }
    let user = nix::unistd::User::from_name(COMPANION_USER)
        .ok()
        .flatten()?;
    let remote_dir = ctx
        .config
        .other
        .get("companion")
        .and_then(|c| c.get("remote_dir"))
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.state_dir.join("companion").join("remote"));
    let host_mount_point = paths.state_dir.join("remote-mnt");
    if let Err(e) = std::fs::create_dir_all(&host_mount_point) {
        tracing::warn!(error = %e, path = %host_mount_point.display(), "cannot make the remote share's mount point");
        return None;
    }
    Some((
        dir.join(SOCKET_NAME),
        Policy {
            allowed_uid: user.uid.as_raw(),
            mount_point: remote_dir.join("mnt"),
            host_mount_point,
            credentials: remote_dir.join("credentials"),
            private_dir: paths.run_dir.clone(),
        },
    ))
}

/// Serves the device's request path ([`for_device`]) in the background, if this image
/// asks for it.
pub fn spawn(ctx: &pinas_core::Context) {
    let Some((socket, policy)) = for_device(ctx) else {
        return;
    };
    let exec = Arc::new(SystemExec::new(Path::new("/run/systemd/system").is_dir()));
    tokio::spawn(async move {
        tracing::info!(socket = %socket.display(), "serving the companion's remote mount requests");
        if let Err(e) = serve(&socket, policy, exec, std::future::pending()).await {
            tracing::warn!(error = %e, socket = %socket.display(), "cannot serve the remote mount requests");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        for ok in [
            ("cifs", "//nas.home/video"),
            ("cifs", "//10.0.2.2/spool"),
            ("nfs", "nas:/srv/video"),
            ("nfs", "[fd00::5]:/srv"),
        ] {
            check_source(ok.0, ok.1).unwrap();
        }
        for bad in [
            ("cifs", "//nas/a/b"),
            ("cifs", "/etc"),
            ("cifs", "//nas/a,b"),
            ("cifs", "//-x/a"),
            ("nfs", "nas:/srv/../etc"),
            ("nfs", "nas:srv"),
            ("nfs", "nas:/a b"),
        ] {
            assert_eq!(
                check_source(bad.0, bad.1).unwrap_err().code,
                "invalid_source",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn options_allow_list_and_forced_ones() {
        let creds = Path::new("/c/credentials");
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (out, named) = check_options(
            "cifs",
            &o(&["credentials=/c/credentials", "vers=3.0", "soft", "_netdev"]),
            creds,
            997,
        )
        .unwrap();
        assert!(named);
        assert_eq!(
            out.join(","),
            "vers=3.0,soft,_netdev,nosuid,nodev,noexec,uid=997,gid=100,file_mode=0664,dir_mode=0775"
        );
        let (out, named) = check_options(
            "nfs",
            &o(&["vers=4.2", "timeo=50", "retrans=2"]),
            creds,
            997,
        )
        .unwrap();
        assert!(!named);
        assert_eq!(
            out.join(","),
            "vers=4.2,timeo=50,retrans=2,nosuid,nodev,noexec"
        );
        for bad in [
            ("cifs", "credentials=/etc/shadow"),
            ("cifs", "suid"),
            ("cifs", "uid=1000"),
            ("cifs", "vers=4.2"),
            ("cifs", "echo_interval=0"),
            ("nfs", "guest"),
            ("nfs", "exec"),
            ("nfs", "timeo=99999"),
            ("cifs", "port=0"),
            ("nfs", "port=70000"),
            ("nfs", "vers=3.0"),
        ] {
            let e = check_options(bad.0, &o(&[bad.1]), creds, 997).unwrap_err();
            assert_eq!(e.code, "invalid_option", "{bad:?}");
            assert!(e.message.contains(bad.1), "{}", e.message);
        }
    }
}
