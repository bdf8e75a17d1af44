//! The remote share with a local fallback: a share of the big NAS (SMB or NFS) mounted
//! with the kernel client, and the `spool` folder whose new files go to it while it is
//! healthy and to a local fallback folder while it is not.
//!
//! Layout under the remote folder (`[companion] remote_dir`): `mnt/` the mount point,
//! `fallback/` the fallback folder, `spool` a symbolic link to whichever of the two takes
//! new files now (`current_storage`), `remote.json` the settings (0600, no password) and
//! `credentials` the SMB account in mount.cifs(8)'s credentials-file format (0600), so
//! the password never appears on a command line or in the process list.
//!
//! Every check ([`Remote::check`]) stats the mount point and writes and removes a hidden
//! probe file in it, on a thread of its own with a time limit: a hung mount (a NAS that
//! went to sleep under a hard mount) makes the check fail after the limit instead of
//! blocking the runtime, and a thread still stuck in a previous probe is not joined by
//! another. A failed check tries to mount again at once (unmounting lazily first). After
//! `remote_failures_before_cooldown` failures in a row the spool stays local for
//! `remote_cooldown_secs` without trying the NAS (a sleeping NAS is not woken by mount
//! attempts every few seconds). When the remote is healthy again and out of its
//! cool-down, the files in the fallback folder move to it with the inbox's mover
//! ([`crate::inbox::Inbox::flush`]): rsync, each file verified by rsync's whole-file
//! checksum, deleted locally only once verified and unchanged.
//!
//! The SMB share `spool` (`[companion] spool_share_dir`, `/storage/shares/spool` on a
//! companion) is a plain local folder: Samba resolves a share's path once per connection,
//! so a share cannot follow the `spool` link from one place to the other. Its files move
//! to the remote with the same mover at every healthy check (every `remote_check_secs`)
//! and stay in the folder while the remote is not healthy: for people it is the spool,
//! with the local fallback built in.
//!
//! Mounting goes through a [`Mounter`]: on the device [`RequestMounter`], which asks the
//! web role over its request socket (this role has no right to mount; the web role has
//! PID 1 mount in the host's namespace, where smbd sees it); elsewhere [`SystemMounter`]
//! (`systemd-mount` when systemd runs the machine, else mount(8)); tests give a mounter
//! of their own.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pinas_core::events::now_ms;
use serde::{Deserialize, Serialize};

use crate::error::CompanionError;
use crate::inbox::Inbox;

/// SMB protocol versions mount.cifs takes (`vers=`).
pub const SMB_VERSIONS: &[&str] = &["3.1.1", "3.11", "3.02", "3.0", "3", "2.1", "2.0", "1.0"];
/// NFS versions mount.nfs takes (`vers=`).
pub const NFS_VERSIONS: &[&str] = &["4.2", "4.1", "4.0", "4", "3"];

/// `smb` (mount.cifs) or `nfs` (mount.nfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    #[default]
    Smb,
    Nfs,
}

/// The remote share's settings as stored and shown (never the password).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoteSettings {
    /// Use the remote share; `false`: the spool stays local.
    pub enabled: bool,
    pub kind: RemoteKind,
    /// The NAS's host name or IP address.
    pub server: String,
    /// SMB: the share's name (`video`); NFS: the export's path (`/srv/video`).
    pub share: String,
    /// SMB only: the account; empty: a guest mount.
    #[serde(default)]
    pub username: String,
    /// `vers=`: SMB `3` by default (the highest SMB 3 dialect both sides speak), NFS `4.2`.
    #[serde(default)]
    pub version: Option<String>,
    /// `port=`: the server's port when not the protocol's own (SMB 445, NFS 2049).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `PUT /api/storage/remote/settings`: the settings and, for SMB, the password (absent:
/// keep the one stored; empty: none).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettingsInput {
    pub enabled: bool,
    /// `smb` or `nfs`.
    pub kind: String,
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub share: String,
    #[serde(default)]
    pub username: String,
    pub password: Option<String>,
    pub version: Option<String>,
    /// The server's port when not the protocol's own (1 to 65535).
    #[serde(default)]
    pub port: Option<u16>,
}

/// `GET /api/storage/remote/settings`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RemoteSettingsView {
    #[serde(flatten)]
    pub settings: RemoteSettings,
    /// True when a password is stored (it is never shown).
    pub password_set: bool,
}

fn bad(code: &'static str, field: &'static str, m: String) -> CompanionError {
    CompanionError::invalid(code, field, m)
}

impl RemoteSettingsInput {
    /// Checks every field.
    ///
    /// # Errors
    /// 422 with the field: `invalid_kind`, `invalid_server`, `invalid_share`,
    /// `invalid_username`, `invalid_password`, `invalid_version`.
    pub fn checked(self) -> Result<(RemoteSettings, Option<String>), CompanionError> {
        let kind = match self.kind.as_str() {
            "smb" => RemoteKind::Smb,
            "nfs" => RemoteKind::Nfs,
            k => {
                return Err(bad(
                    "invalid_kind",
                    "kind",
                    format!("kind must be \"smb\" or \"nfs\", not {k:?}"),
                ))
            }
        };
        let server = self.server.trim().to_string();
        let host_ok = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && (h.parse::<std::net::IpAddr>().is_ok()
                    || h.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && !l.starts_with('-')
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }))
        };
        // Turning the remote off may leave it unset.
        let unset_and_off = |v: &str| v.is_empty() && !self.enabled;
        if !unset_and_off(&server) && !host_ok(&server) {
            return Err(bad(
                "invalid_server",
                "server",
                format!("{server:?} is not a host name or IP address"),
            ));
        }
        let share = self.share.trim().to_string();
        let plain = |s: &str| !s.chars().any(|c| c.is_control() || c == ',');
        let share_ok = match kind {
            RemoteKind::Smb => {
                !share.is_empty()
                    && share.len() <= 80
                    && plain(&share)
                    && !share.contains(['/', '\\'])
            }
            RemoteKind::Nfs => {
                share.starts_with('/')
                    && share.len() <= 1024
                    && plain(&share)
                    && !share.contains(char::is_whitespace)
            }
        };
        if !unset_and_off(&share) && !share_ok {
            return Err(bad(
                "invalid_share",
                "share",
                match kind {
                    RemoteKind::Smb => format!("{share:?} is not an SMB share name (no slashes or commas)"),
                    RemoteKind::Nfs => format!("{share:?} is not an NFS export path (it starts with /, no spaces or commas)"),
                },
            ));
        }
        let username = self.username.trim().to_string();
        if username.len() > 64 || !plain(&username) || username.contains(['=', '\n']) {
            return Err(bad(
                "invalid_username",
                "username",
                "a user name is at most 64 characters, without commas, = or control characters"
                    .into(),
            ));
        }
        if kind == RemoteKind::Nfs && !username.is_empty() {
            return Err(bad(
                "invalid_username",
                "username",
                "NFS mounts take no user name (the NAS's export decides who may mount)".into(),
            ));
        }
        if let Some(p) = &self.password {
            if p.len() > 256 || p.contains(['\n', '\r', '\0']) {
                return Err(bad(
                    "invalid_password",
                    "password",
                    "a password is at most 256 bytes, on one line".into(),
                ));
            }
        }
        let versions = match kind {
            RemoteKind::Smb => SMB_VERSIONS,
            RemoteKind::Nfs => NFS_VERSIONS,
        };
        if let Some(v) = &self.version {
            if !versions.contains(&v.as_str()) {
                return Err(bad(
                    "invalid_version",
                    "version",
                    format!("version must be one of {versions:?}, not {v:?}"),
                ));
            }
        }
        if self.port == Some(0) {
            return Err(bad(
                "invalid_port",
                "port",
                "port must be 1 to 65535".into(),
            ));
        }
        Ok((
            RemoteSettings {
                enabled: self.enabled,
                kind,
                server,
                share,
                username,
                version: self.version,
                port: self.port,
            },
            self.password,
        ))
    }
}

/// What to mount: the file system type, the source and the options (`-o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// `cifs` or `nfs`.
    pub fs_type: &'static str,
    /// `//server/share` or `server:/export`.
    pub source: String,
    pub options: Vec<String>,
}

impl MountSpec {
    /// The mount for `s`, reading the SMB account from `credentials` (never the password
    /// itself). Options: SMB `vers=` (`3` unless set: 3.0 or later, negotiated, so a
    /// server that takes only 3.1.1 works too), `soft` and `echo_interval=10` (a
    /// sleeping NAS makes calls fail within seconds instead of hanging), `iocharset=utf8`,
    /// `noserverino`; NFS `vers=` (4.2 unless set), `soft`, `timeo=50`, `retrans=2`.
    /// Both `_netdev` (systemd orders it after the network).
    pub fn render(s: &RemoteSettings, credentials: &Path, has_account: bool) -> MountSpec {
        match s.kind {
            RemoteKind::Smb => {
                let mut options = vec![if has_account {
                    format!("credentials={}", credentials.display())
                } else {
                    "guest".to_string()
                }];
                options.extend([
                    format!("vers={}", s.version.as_deref().unwrap_or("3")),
                    "soft".into(),
                    "echo_interval=10".into(),
                    "iocharset=utf8".into(),
                    "noserverino".into(),
                    "_netdev".into(),
                ]);
                options.extend(s.port.map(|p| format!("port={p}")));
                MountSpec {
                    fs_type: "cifs",
                    source: format!("//{}/{}", host_for_source(&s.server), s.share),
                    options,
                }
            }
            RemoteKind::Nfs => MountSpec {
                fs_type: "nfs",
                source: format!("{}:{}", host_for_source(&s.server), s.share),
                options: [
                    format!("vers={}", s.version.as_deref().unwrap_or("4.2")),
                    "soft".into(),
                    "timeo=50".into(),
                    "retrans=2".into(),
                    "_netdev".into(),
                ]
                .into_iter()
                .chain(s.port.map(|p| format!("port={p}")))
                .collect(),
            },
        }
    }

    /// `-o`'s value.
    pub fn options(&self) -> String {
        self.options.join(",")
    }
}

fn host_for_source(server: &str) -> String {
    if server.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{server}]")
    } else {
        server.to_string()
    }
}

/// Mounts and unmounts the remote share. Blocking; called on a blocking thread.
pub trait Mounter: Send + Sync {
    /// Mounts `spec` at `at`.
    ///
    /// # Errors
    /// What the mount program said.
    fn mount(&self, spec: &MountSpec, at: &Path) -> Result<(), String>;
    /// Unmounts `at`, lazily (a hung mount is detached, not waited for).
    ///
    /// # Errors
    /// What the unmount program said.
    fn unmount(&self, at: &Path) -> Result<(), String>;
}

/// The device's mounter: through systemd (`systemd-mount`, a transient mount unit, as
/// data disks are mounted) when systemd runs the machine, else mount(8).
#[derive(Debug, Clone, Copy)]
pub struct SystemMounter {
    pub systemd: bool,
}

impl SystemMounter {
    /// Systemd when `/run/systemd/system` exists (sd_booted(3)).
    pub fn detect() -> SystemMounter {
        SystemMounter {
            systemd: Path::new("/run/systemd/system").is_dir(),
        }
    }

    /// The program and arguments that mount `spec` at `at`.
    pub fn mount_command(&self, spec: &MountSpec, at: &Path) -> (&'static str, Vec<String>) {
        if self.systemd {
            (
                "systemd-mount",
                vec![
                    "--no-block".into(),
                    "--collect".into(),
                    format!("--type={}", spec.fs_type),
                    format!("--options={}", spec.options()),
                    spec.source.clone(),
                    at.display().to_string(),
                ],
            )
        } else {
            (
                "mount",
                vec![
                    "-t".into(),
                    spec.fs_type.into(),
                    "-o".into(),
                    spec.options(),
                    spec.source.clone(),
                    at.display().to_string(),
                ],
            )
        }
    }

    /// The program and arguments that unmount `at`.
    pub fn unmount_command(&self, at: &Path) -> (&'static str, Vec<String>) {
        if self.systemd {
            ("systemd-umount", vec![at.display().to_string()])
        } else {
            ("umount", vec!["-l".into(), at.display().to_string()])
        }
    }
}

fn run_program(prog: &str, args: &[String]) -> Result<(), String> {
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{prog} failed ({}): {}",
            out.status,
            err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
        ))
    }
}

impl Mounter for SystemMounter {
    fn mount(&self, spec: &MountSpec, at: &Path) -> Result<(), String> {
        let (prog, args) = self.mount_command(spec, at);
        run_program(prog, &args)
    }

    fn unmount(&self, at: &Path) -> Result<(), String> {
        let (prog, args) = self.unmount_command(at);
        run_program(prog, &args)
    }
}

/// Asks the web role to mount and unmount, over its request socket (pinas-storage's
/// `remote_mount`): on the device, where this role has no right to mount and a mount in
/// its own namespace would not be seen by smbd. One JSON line each way.
#[derive(Debug, Clone)]
pub struct RequestMounter {
    pub socket: PathBuf,
}

impl RequestMounter {
    fn ask(&self, req: &serde_json::Value) -> Result<(), String> {
        use std::io::{BufRead, BufReader};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).map_err(|e| {
            format!(
                "cannot reach the mount service at {}: {e}",
                self.socket.display()
            )
        })?;
        // A mount through PID 1 waits for mount.cifs or mount.nfs, which give up well
        // within this.
        let limit = Some(Duration::from_secs(120));
        let _ = s.set_read_timeout(limit);
        let _ = s.set_write_timeout(limit);
        let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        line.push(b'\n');
        s.write_all(&line)
            .map_err(|e| format!("mount service: {e}"))?;
        let mut answer = String::new();
        BufReader::new(s.take(64 * 1024))
            .read_line(&mut answer)
            .map_err(|e| format!("mount service: {e}"))?;
        let v: serde_json::Value = serde_json::from_str(&answer)
            .map_err(|e| format!("mount service answered {answer:?}: {e}"))?;
        if v["ok"] == serde_json::Value::Bool(true) {
            Ok(())
        } else {
            Err(format!(
                "{} ({})",
                v["error"].as_str().unwrap_or("refused"),
                v["code"].as_str().unwrap_or("?")
            ))
        }
    }
}

impl Mounter for RequestMounter {
    fn mount(&self, spec: &MountSpec, at: &Path) -> Result<(), String> {
        self.ask(&serde_json::json!({
            "op": "mount",
            "fs_type": spec.fs_type,
            "source": spec.source,
            "mount_point": at,
            "options": spec.options,
        }))
    }

    fn unmount(&self, at: &Path) -> Result<(), String> {
        self.ask(&serde_json::json!({"op": "unmount", "mount_point": at}))
    }
}

/// The mounter of `pinas companion`: the web role's request socket when
/// `$PINAS_REMOTE_MOUNT_SOCKET` names one (the device's unit does), else
/// [`SystemMounter::detect`].
pub fn default_mounter() -> Arc<dyn Mounter> {
    match std::env::var_os("PINAS_REMOTE_MOUNT_SOCKET").filter(|p| !p.is_empty()) {
        Some(socket) => Arc::new(RequestMounter {
            socket: socket.into(),
        }),
        None => Arc::new(SystemMounter::detect()),
    }
}

/// True when `path` is a mount point in this process's mount table
/// (`/proc/self/mountinfo`, field 5, octal escapes undone). Reading the table never
/// touches the mounted file system, so it does not hang on a dead mount.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().as_encoded_bytes();
    table.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want)
    })
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Runs `probe` on a thread of its own and waits at most `limit` for it. While an
/// earlier probe is still stuck (`busy`), no new thread is started: the answer is a
/// failure at once.
///
/// # Errors
/// The probe's own error, "did not answer within ..." after `limit`, or "still hangs".
pub async fn probe_with_limit(
    busy: &Arc<AtomicBool>,
    limit: Duration,
    probe: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    if busy.swap(true, Ordering::SeqCst) {
        return Err("the previous health check still hangs on the mount".into());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flag = busy.clone();
    let spawned = std::thread::Builder::new()
        .name("remote-probe".into())
        .spawn(move || {
            let r = probe();
            flag.store(false, Ordering::SeqCst);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        busy.store(false, Ordering::SeqCst);
        return Err(format!("cannot start a health check: {e}"));
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the health check ended without an answer".into()),
        Err(_) => Err(format!(
            "the share did not answer within {} ms",
            limit.as_millis()
        )),
    }
}

/// The health check proper: `mp` is mounted, answers a stat and a listing, and takes a
/// new file (written, synced, removed).
fn probe_mount(mp: &Path) -> Result<(), String> {
    if !is_mount_point(mp) {
        return Err("the share is not mounted".into());
    }
    let meta = std::fs::metadata(mp).map_err(|e| format!("stat: {e}"))?;
    // On the device the mount point is itself a bind mount of an empty root-owned folder
    // (see the companion's unit); the share is mounted on it. A file system of its own
    // there, not the parent's, is the share.
    let parent = mp.parent().unwrap_or(Path::new("/"));
    if std::fs::metadata(parent).is_ok_and(|p| {
        std::os::unix::fs::MetadataExt::dev(&p) == std::os::unix::fs::MetadataExt::dev(&meta)
    }) {
        return Err("the share is not mounted (only the empty mount point is)".into());
    }
    std::fs::read_dir(mp)
        .map_err(|e| format!("listing: {e}"))?
        .next();
    let probe = mp.join(".pinas-probe");
    let mut f = std::fs::File::create(&probe).map_err(|e| format!("writing: {e}"))?;
    f.write_all(b"pinas")
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing: {e}"))?;
    drop(f);
    std::fs::remove_file(&probe).map_err(|e| format!("removing the probe file: {e}"))
}

/// `GET /api/storage/remote/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RemoteStatus {
    /// A remote share is configured and enabled.
    pub network_enabled: bool,
    /// The last check found it mounted, answering and writable.
    pub network_available: bool,
    pub mount_point: String,
    pub fallback_dir: String,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// New files go to the fallback folder now.
    pub using_fallback: bool,
    /// Where new files go now: `mount_point` or `fallback_dir` (the `spool` link points
    /// there).
    pub current_storage: String,
    /// The `spool` link: write here to land in `current_storage`.
    pub spool_path: String,
    /// No mount is tried before this (Unix ms) after too many failures.
    pub cooldown_until_ms: Option<i64>,
    pub last_check_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Files in the fallback folder waiting for the remote, and their bytes.
    pub fallback_files: u64,
    pub fallback_bytes: u64,
    /// When files last moved from the fallback folder or the SMB share's folder to the
    /// remote, and how many.
    pub last_move_at_ms: Option<i64>,
    pub last_moved_files: u64,
    /// The folder of the SMB share `spool`, whose files move to the remote at each
    /// healthy check; `null` when there is none.
    pub share_dir: Option<String>,
    /// Files in that folder waiting for the remote, and their bytes.
    pub share_files: u64,
    pub share_bytes: u64,
}

struct State {
    failures: u32,
    available: bool,
    cooldown_until_ms: Option<i64>,
    last_check_ms: Option<i64>,
    last_error: Option<String>,
    last_move_at_ms: Option<i64>,
    last_moved_files: u64,
}

/// Timings of the remote share (from `[companion]`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub probe_timeout: Duration,
    pub failures_before_cooldown: u32,
    pub cooldown: Duration,
    /// Longest time one move of the fallback files may take.
    pub move_limit: Duration,
}

/// The remote share, its fallback and the state of their checks.
pub struct Remote {
    dir: PathBuf,
    settings: RwLock<RemoteSettings>,
    mounter: RwLock<Arc<dyn Mounter>>,
    timing: Timing,
    state: Mutex<State>,
    busy: Arc<AtomicBool>,
    fallback: Inbox,
    /// The SMB share `spool`'s folder, moved like the fallback folder.
    share: Option<Inbox>,
    /// One check at a time.
    checking: tokio::sync::Mutex<()>,
}

fn unavailable(m: impl Into<String>) -> CompanionError {
    CompanionError::unavailable("remote_state_unavailable", m)
}

/// Writes `data` to `path` with mode 0600 from the start (a temporary file in the same
/// folder, renamed over).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut f = tempfile::NamedTempFile::new_in(dir)?;
    f.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.as_file().sync_all()?;
    f.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Remote {
    /// The remote share kept in `dir` (created with `mnt/` and `fallback/` if missing),
    /// mounted by `mounter`; fallback files must rest `settle` before they move.
    /// Blocking.
    ///
    /// # Errors
    /// 503 `remote_state_unavailable` when the folders cannot be made or the settings
    /// file cannot be read.
    pub fn open(
        dir: PathBuf,
        mounter: Arc<dyn Mounter>,
        timing: Timing,
        settle: Duration,
    ) -> Result<Remote, CompanionError> {
        for sub in ["mnt", "fallback"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| unavailable(format!("{}: {e}", dir.join(sub).display())))?;
        }
        let settings = match std::fs::read(dir.join("remote.json")) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| unavailable(format!("remote.json: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RemoteSettings::default(),
            Err(e) => return Err(unavailable(format!("remote.json: {e}"))),
        };
        let r = Remote {
            fallback: Inbox::new(dir.join("fallback"), settle),
            share: None,
            dir,
            settings: RwLock::new(settings),
            mounter: RwLock::new(mounter),
            timing,
            state: Mutex::new(State {
                failures: 0,
                available: false,
                cooldown_until_ms: None,
                last_check_ms: None,
                last_error: None,
                last_move_at_ms: None,
                last_moved_files: 0,
            }),
            busy: Arc::new(AtomicBool::new(false)),
            checking: tokio::sync::Mutex::new(()),
        };
        // Until the first check, new files stay here.
        r.point_spool(false);
        Ok(r)
    }

    /// Adds the SMB share `spool`'s folder (made if missing): its files move to the remote
    /// at each healthy check, with the fallback folder's. Blocking.
    pub fn with_share_dir(mut self, dir: PathBuf, settle: Duration) -> Remote {
        self.share = Some(Inbox::new(dir, settle));
        self
    }

    /// Replaces the mounter (tests mount something else than a NAS's share).
    pub fn set_mounter(&self, m: Arc<dyn Mounter>) {
        *self.mounter.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    pub fn mount_point(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    pub fn fallback_dir(&self) -> PathBuf {
        self.dir.join("fallback")
    }

    pub fn spool_path(&self) -> PathBuf {
        self.dir.join("spool")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join("credentials")
    }

    pub fn settings(&self) -> RemoteSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn has_password(&self) -> bool {
        std::fs::read_to_string(self.credentials_path())
            .is_ok_and(|c| c.lines().any(|l| l.starts_with("password=") && l.len() > 9))
    }

    /// The settings as the API shows them. Blocking (reads the credentials file).
    pub fn settings_view(&self) -> RemoteSettingsView {
        RemoteSettingsView {
            settings: self.settings(),
            password_set: self.has_password(),
        }
    }

    /// Checks and stores `input` (the password in the credentials file, 0600), unmounts
    /// the old share and forgets failures and cool-down; the next check mounts the new
    /// one. Blocking.
    ///
    /// # Errors
    /// 422 naming the field (see [`RemoteSettingsInput::checked`]); 503 when the files
    /// cannot be written.
    pub fn save(&self, input: RemoteSettingsInput) -> Result<RemoteSettingsView, CompanionError> {
        let (s, password) = input.checked()?;
        let old_password = std::fs::read_to_string(self.credentials_path())
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("password=").map(str::to_string))
            });
        let password = password.or(old_password).unwrap_or_default();
        if s.kind == RemoteKind::Smb && !s.username.is_empty() {
            let creds = format!("username={}\npassword={password}\n", s.username);
            write_private(&self.credentials_path(), creds.as_bytes())
                .map_err(|e| unavailable(format!("credentials: {e}")))?;
        } else if let Err(e) = std::fs::remove_file(self.credentials_path()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(unavailable(format!("credentials: {e}")));
            }
        }
        let json = serde_json::to_vec_pretty(&s).map_err(|e| unavailable(e.to_string()))?;
        write_private(&self.dir.join("remote.json"), &json)
            .map_err(|e| unavailable(format!("remote.json: {e}")))?;
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s.clone();
        self.detach();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.failures = 0;
            st.available = false;
            st.cooldown_until_ms = None;
            st.last_error = None;
        }
        self.point_spool(false);
        tracing::info!(kind = ?s.kind, server = %s.server, share = %s.share, enabled = s.enabled, "remote share settings saved");
        Ok(self.settings_view())
    }

    fn detach(&self) {
        let mp = self.mount_point();
        if is_mount_point(&mp) {
            let m = self
                .mounter
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Err(e) = m.unmount(&mp) {
                tracing::warn!(error = %e, "cannot unmount the remote share");
            }
        }
    }

    /// Points the `spool` link at the mount point (`remote`) or the fallback folder,
    /// atomically (a new link renamed over the old one).
    fn point_spool(&self, remote: bool) {
        let target = if remote { "mnt" } else { "fallback" };
        let link = self.spool_path();
        if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(target)) {
            return;
        }
        let tmp = self.dir.join(".spool.new");
        let _ = std::fs::remove_file(&tmp);
        let r =
            std::os::unix::fs::symlink(target, &tmp).and_then(|()| std::fs::rename(&tmp, &link));
        if let Err(e) = r {
            tracing::warn!(error = %e, link = %link.display(), "cannot point the spool link");
        }
    }

    /// Forgets the failures and the cool-down (the next check tries the NAS at once).
    pub fn reset(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.failures = 0;
        st.cooldown_until_ms = None;
        st.last_error = None;
    }

    /// The status now. Blocking (counts the fallback files).
    pub fn status(&self) -> RemoteStatus {
        let s = self.settings();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let using_fallback = !(s.enabled && st.available);
        let current = if using_fallback {
            self.fallback_dir()
        } else {
            self.mount_point()
        };
        let pending = self.fallback.status("");
        let share = self.share.as_ref().map(|i| i.status(""));
        RemoteStatus {
            network_enabled: s.enabled,
            network_available: s.enabled && st.available,
            mount_point: self.mount_point().display().to_string(),
            fallback_dir: self.fallback_dir().display().to_string(),
            consecutive_failures: st.failures,
            using_fallback,
            current_storage: current.display().to_string(),
            spool_path: self.spool_path().display().to_string(),
            cooldown_until_ms: st.cooldown_until_ms,
            last_check_ms: st.last_check_ms,
            last_error: st.last_error.clone(),
            fallback_files: pending.pending_files,
            fallback_bytes: pending.pending_bytes,
            last_move_at_ms: st.last_move_at_ms,
            last_moved_files: st.last_moved_files,
            share_dir: share.as_ref().map(|s| s.dir.clone()),
            share_files: share.as_ref().map_or(0, |s| s.pending_files),
            share_bytes: share.as_ref().map_or(0, |s| s.pending_bytes),
        }
    }

    /// One health check: probe the mount (mount again when it fails), count failures,
    /// start the cool-down, point the spool link, and move the fallback files once the
    /// remote is healthy. Returns whether the spool's place changed.
    pub async fn check(&self) -> bool {
        let _one = self.checking.lock().await;
        let s = self.settings();
        let was_remote = !self.status_quick_fallback();
        let now = now_ms();
        if !s.enabled {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .available = false;
            self.point_spool(false);
            return was_remote;
        }
        let in_cooldown = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match st.cooldown_until_ms {
                Some(t) if now < t => true,
                Some(_) => {
                    st.cooldown_until_ms = None;
                    false
                }
                None => false,
            }
        };
        if in_cooldown {
            return false;
        }
        let mp = self.mount_point();
        let mut result = {
            let mp = mp.clone();
            probe_with_limit(&self.busy, self.timing.probe_timeout, move || {
                probe_mount(&mp)
            })
            .await
        };
        if let Err(e) = &result {
            tracing::debug!(error = %e, "remote share check failed; mounting again");
            result = self.remount(&s).await;
            if result.is_ok() {
                let mp = mp.clone();
                result = probe_with_limit(&self.busy, self.timing.probe_timeout, move || {
                    probe_mount(&mp)
                })
                .await;
            }
        }
        let ok = result.is_ok();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.last_check_ms = Some(now);
            match result {
                Ok(()) => {
                    st.failures = 0;
                    st.available = true;
                    st.last_error = None;
                }
                Err(e) => {
                    st.failures = st.failures.saturating_add(1);
                    st.available = false;
                    if st.failures >= self.timing.failures_before_cooldown {
                        st.cooldown_until_ms = Some(now + self.timing.cooldown.as_millis() as i64);
                        tracing::warn!(failures = st.failures, error = %e, "remote share unavailable; staying local for the cool-down");
                    } else {
                        tracing::info!(failures = st.failures, error = %e, "remote share unavailable");
                    }
                    st.last_error = Some(e);
                }
            }
        }
        self.point_spool(ok);
        if ok {
            self.move_fallback().await;
        }
        was_remote != ok
    }

    fn status_quick_fallback(&self) -> bool {
        let s = self.settings();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !(s.enabled && st.available)
    }

    async fn remount(&self, s: &RemoteSettings) -> Result<(), String> {
        let spec = MountSpec::render(s, &self.credentials_path(), !s.username.is_empty());
        let m = self
            .mounter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mp = self.mount_point();
        let limit = self.timing.probe_timeout.max(Duration::from_secs(10));
        let task = tokio::task::spawn_blocking(move || {
            if is_mount_point(&mp) {
                m.unmount(&mp)?;
            }
            m.mount(&spec, &mp)
        });
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("mount task failed: {e}")),
            Err(_) => Err(format!("mounting took longer than {} s", limit.as_secs())),
        }
    }

    /// Moves the files of the fallback folder, then of the SMB share's folder, to the
    /// mount with the inbox's mover (see [`Inbox::flush`]).
    async fn move_fallback(&self) {
        let mut moved = 0;
        for (what, mover) in [
            ("fallback folder", Some(&self.fallback)),
            ("spool share", self.share.as_ref()),
        ] {
            let Some(mover) = mover else { continue };
            let dir = mover.dir().to_path_buf();
            let any = tokio::task::spawn_blocking(move || !crate::inbox::scan(&dir).is_empty())
                .await
                .unwrap_or(false);
            if !any || !mover.may_retry(now_ms()) {
                continue;
            }
            let target = self.mount_point().display().to_string();
            match mover.flush(&target, self.timing.move_limit).await {
                Ok(rep) => {
                    moved += rep.moved_files;
                    tracing::info!(
                        from = what,
                        files = rep.moved_files,
                        bytes = rep.moved_bytes,
                        waiting = rep.waiting_files,
                        "files moved to the remote share"
                    );
                }
                Err(e) => {
                    tracing::warn!(from = what, error = %e, "moving files to the remote share failed");
                    self.state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .last_error = Some(e.to_string());
                }
            }
        }
        if moved > 0 {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.last_move_at_ms = Some(now_ms());
            st.last_moved_files = moved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: &str, server: &str, share: &str) -> RemoteSettingsInput {
        RemoteSettingsInput {
            enabled: true,
            kind: kind.into(),
            server: server.into(),
            share: share.into(),
            username: String::new(),
            password: None,
            version: None,
            port: None,
        }
    }

    #[test]
    fn cifs_options_name_the_credentials_file_never_the_password() {
        let mut i = input("smb", "bignas.home", "video");
        i.username = "pi".into();
        i.password = Some("s3cret pass".into());
        let (s, pw) = i.checked().unwrap();
        assert_eq!(pw.as_deref(), Some("s3cret pass"));
        let spec = MountSpec::render(&s, Path::new("/remote/credentials"), true);
        assert_eq!(spec.fs_type, "cifs");
        assert_eq!(spec.source, "//bignas.home/video");
        assert_eq!(
            spec.options(),
            "credentials=/remote/credentials,vers=3,soft,echo_interval=10,iocharset=utf8,noserverino,_netdev"
        );
        for systemd in [true, false] {
            let m = SystemMounter { systemd };
            let (prog, args) = m.mount_command(&spec, Path::new("/remote/mnt"));
            let line = args.join(" ");
            assert!(!line.contains("s3cret"), "{prog} {line}");
            assert!(line.contains("credentials=/remote/credentials"), "{line}");
            assert!(line.ends_with("//bignas.home/video /remote/mnt"), "{line}");
            if systemd {
                assert_eq!(prog, "systemd-mount");
                assert!(args.contains(&"--type=cifs".to_string()));
            } else {
                assert_eq!(&args[..2], ["-t", "cifs"]);
            }
        }
        // A chosen version; a guest mount without an account.
        let mut g = input("smb", "10.0.0.2", "pub");
        g.version = Some("2.1".into());
        let (s, _) = g.checked().unwrap();
        let spec = MountSpec::render(&s, Path::new("/c"), false);
        assert_eq!(spec.options[..2], ["guest", "vers=2.1"]);
        // Another port than 445 (a test server, a NAS behind a forward).
        let mut p = input("smb", "10.0.2.2", "spool");
        p.port = Some(4450);
        let (s, _) = p.checked().unwrap();
        assert_eq!(
            MountSpec::render(&s, Path::new("/c"), false)
                .options
                .last()
                .unwrap(),
            "port=4450"
        );
        let mut z = input("nfs", "nas", "/srv");
        z.port = Some(0);
        assert!(matches!(
            z.checked(),
            Err(CompanionError::Invalid {
                code: "invalid_port",
                ..
            })
        ));
    }

    #[test]
    fn nfs_options_and_ipv6_sources() {
        let (s, _) = input("nfs", "fd00::5", "/srv/video").checked().unwrap();
        let spec = MountSpec::render(&s, Path::new("/c"), false);
        assert_eq!(spec.fs_type, "nfs");
        assert_eq!(spec.source, "[fd00::5]:/srv/video");
        assert_eq!(spec.options(), "vers=4.2,soft,timeo=50,retrans=2,_netdev");
        let mut v3 = input("nfs", "nas", "/export");
        v3.version = Some("3".into());
        let (s, _) = v3.checked().unwrap();
        assert!(MountSpec::render(&s, Path::new("/c"), false).options[0] == "vers=3");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases: Vec<(RemoteSettingsInput, &str, &str)> = vec![
            (input("ftp", "nas", "v"), "invalid_kind", "kind"),
            (input("smb", "", "v"), "invalid_server", "server"),
            (input("smb", "nas home", "v"), "invalid_server", "server"),
            (input("smb", "-nas", "v"), "invalid_server", "server"),
            (input("smb", "nas", "a/b"), "invalid_share", "share"),
            (input("smb", "nas", "a,b"), "invalid_share", "share"),
            (input("smb", "nas", ""), "invalid_share", "share"),
            (input("nfs", "nas", "srv"), "invalid_share", "share"),
            (
                input("nfs", "nas", "/srv/my video"),
                "invalid_share",
                "share",
            ),
            (
                RemoteSettingsInput {
                    username: "a,b".into(),
                    ..input("smb", "nas", "v")
                },
                "invalid_username",
                "username",
            ),
            (
                RemoteSettingsInput {
                    username: "pi".into(),
                    ..input("nfs", "nas", "/srv")
                },
                "invalid_username",
                "username",
            ),
            (
                RemoteSettingsInput {
                    password: Some("one\nusername=root".into()),
                    ..input("smb", "nas", "v")
                },
                "invalid_password",
                "password",
            ),
            (
                RemoteSettingsInput {
                    version: Some("4.2".into()),
                    ..input("smb", "nas", "v")
                },
                "invalid_version",
                "version",
            ),
            (
                RemoteSettingsInput {
                    version: Some("3.0".into()),
                    ..input("nfs", "nas", "/srv")
                },
                "invalid_version",
                "version",
            ),
        ];
        for (i, code, field) in cases {
            let shown = format!("{i:?}");
            match i.checked() {
                Err(CompanionError::Invalid {
                    code: c, field: f, ..
                }) => assert_eq!((c, f), (code, Some(field)), "{shown}"),
                other => panic!("{shown}: {other:?}"),
            }
        }
        // Disabled with nothing set is fine (turning the remote off).
        let off = RemoteSettingsInput {
            enabled: false,
            ..input("smb", "", "")
        };
        assert!(off.checked().is_ok());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/definitely/not/mounted")));
    }

    #[tokio::test]
    async fn a_hung_probe_fails_in_time_and_is_not_joined_by_another() {
        let busy = Arc::new(AtomicBool::new(false));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let t = std::time::Instant::now();
        let r = probe_with_limit(&busy, Duration::from_millis(200), move || {
            // A stat on a dead hard mount: blocks until released.
            let _ = wait.recv();
            Ok(())
        })
        .await;
        assert!(r.unwrap_err().contains("did not answer within 200 ms"));
        assert!(t.elapsed() < Duration::from_secs(2));
        // The stuck thread is still there: the next check fails at once, no new thread.
        let t = std::time::Instant::now();
        let r = probe_with_limit(&busy, Duration::from_secs(5), || Ok(())).await;
        assert!(r.unwrap_err().contains("still hangs"));
        assert!(t.elapsed() < Duration::from_millis(100));
        // Once it comes back, checks run again.
        release.send(()).unwrap();
        for _ in 0..100 {
            if !busy.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe_with_limit(&busy, Duration::from_secs(5), || Ok(()))
            .await
            .unwrap();
    }
}
