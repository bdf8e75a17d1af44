//! First-boot setup: until it is done, only setup, health and auth answer.
//!
//! Setup needs the one-time setup code ([`SetupCode`]), which only someone with the box
//! in hand can read: it is logged by `pinas web` and `pinas dev`, shown by the serial
//! console menu, and written to `<run_dir>/setup.issue` for the HDMI console's login
//! prompt. Setup is never offered while the storage partition could not be mounted and
//! the initramfs put a RAM filesystem (tmpfs) on `/storage` in its place: an admin
//! created then would vanish at the next boot, and the box would be open to setup again.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use pinas_core::auth::{self, Account, Role, SetupCode};
use pinas_core::{Context, Error};
use serde::{Deserialize, Serialize};

use crate::auth::{start_session, too_many_attempts, ClientIp};
use crate::listen::Tls;
use crate::state::AppState;

/// File in `run_dir` with the setup code for the HDMI console's `/etc/issue.d`.
pub const SETUP_ISSUE_FILE: &str = "setup.issue";

/// What the web role knows about pending setup: the code and whether storage is usable.
pub struct SetupGate {
    code: Mutex<Option<SetupCode>>,
    storage_in_ram: bool,
    state_dir: PathBuf,
    run_dir: PathBuf,
}

impl SetupGate {
    /// Prepares setup at start: when it is pending, loads or creates the setup code,
    /// logs it and writes `<run_dir>/setup.issue`; when it is done, removes both files.
    /// On the device (not in dev mode) a state folder on tmpfs means storage fell back to
    /// RAM: no code is made and setup is refused.
    pub fn prepare(ctx: &Context, done: bool) -> SetupGate {
        let state_dir = ctx.paths.state_dir.clone();
        let run_dir = ctx.paths.run_dir.clone();
        let storage_in_ram = !done && !ctx.config.dev && is_ram_filesystem(&state_dir);
        let gate = SetupGate {
            code: Mutex::new(None),
            storage_in_ram,
            state_dir,
            run_dir,
        };
        if done {
            gate.remove_files();
        } else if storage_in_ram {
            tracing::error!(
                path = %gate.state_dir.display(),
                "the storage partition is not mounted (RAM filesystem in its place): setup is not offered"
            );
            gate.write_issue(
                "PiNAS: the storage partition could not be mounted, so setup is not offered.\n\
                 Check the SD card (see the serial console or the boot messages).\n\n",
            );
        } else {
            match SetupCode::load_or_create(&gate.state_dir) {
                Ok(c) => {
                    // The log is where `pinas dev` users and the journal show it.
                    tracing::warn!(
                        "setup is pending: the setup wizard asks for the setup code {}",
                        c.grouped()
                    );
                    gate.write_issue(&format!("PiNAS setup code: {}\n\n", c.grouped()));
                    *gate.code.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot store the setup code in {}: setup cannot be completed",
                    gate.state_dir.display()
                ),
            }
        }
        gate
    }

    /// True when storage fell back to RAM and setup is refused.
    pub fn storage_in_ram(&self) -> bool {
        self.storage_in_ram
    }

    fn write_issue(&self, text: &str) {
        let p = self.run_dir.join(SETUP_ISSUE_FILE);
        if let Err(e) = pinas_core::fsutil::write_atomic(&p, text.as_bytes(), 0o600) {
            tracing::warn!(path = %p.display(), error = %e, "cannot write the console's setup notice");
        }
    }

    fn remove_files(&self) {
        if let Err(e) = SetupCode::remove(&self.state_dir) {
            tracing::warn!(error = %e, "cannot remove the used setup code");
        }
        let _ = std::fs::remove_file(self.run_dir.join(SETUP_ISSUE_FILE));
    }

    fn check(&self, typed: Option<&str>) -> Result<(), Error> {
        let code = self.code.lock().unwrap_or_else(|e| e.into_inner());
        match (code.as_ref(), typed) {
            (Some(c), Some(t)) if c.matches(t) => Ok(()),
            _ => Err(Error::forbidden(
                "setup_code_invalid",
                "missing or wrong setup code: it is shown on the serial console, on a screen \
                 attached to the box, and in the log of pinas web (pinas dev's output)",
            )
            .with_field("setup_code")),
        }
    }

    fn finish(&self) {
        *self.code.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.remove_files();
    }
}

/// True when `path` is on tmpfs or ramfs (`statfs(2)`); false when it cannot be told.
pub fn is_ram_filesystem(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};
    statfs(path).is_ok_and(|s| {
        let t = s.filesystem_type();
        // ramfs has no constant in nix or libc: 0x858458f6 is from linux/magic.h.
        t == TMPFS_MAGIC || t == FsType(0x8584_58f6)
    })
}

/// `GET /api/setup` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SetupStatus {
    pub done: bool,
    /// False when the storage partition could not be mounted (PiNAS runs with its state
    /// in RAM): setup is refused until the box boots with its storage.
    pub storage_available: bool,
}

/// The first administrator.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetupAdmin {
    pub username: String,
    pub password: String,
}

/// `POST /api/setup` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time setup code, e.g. `ABCD-EFGH` (case, spaces and the dash do not
    /// matter).
    #[serde(default)]
    pub setup_code: Option<String>,
    pub admin: SetupAdmin,
    /// RFC 1123 host name label, e.g. `pinas`.
    pub hostname: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
    /// `nas`, `companion`, or both.
    pub roles: Vec<String>,
}

/// Whether first-boot setup is done.
#[utoipa::path(get, path = "/api/setup", tag = "setup", responses((status = 200, body = SetupStatus)))]
pub async fn status(State(state): State<AppState>) -> Json<SetupStatus> {
    Json(SetupStatus {
        done: state.is_setup_done(),
        storage_available: !state.setup.storage_in_ram(),
    })
}

/// Checks a host name: one RFC 1123 label, 1–63 letters, digits and hyphens.
///
/// # Errors
/// 422 `invalid_hostname` (field `hostname`).
pub fn check_hostname(name: &str) -> Result<(), Error> {
    let ok = (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_hostname",
            format!("{name:?} is not a valid host name: use 1-63 letters, digits or '-', not starting or ending with '-'"),
        )
        .with_field("hostname"))
    }
}

const ZONE_TAB: &str = "/usr/share/zoneinfo/tzdata.zi";

/// Every IANA time zone name known to the system's tzdata, sorted, `UTC` included.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_to_string(ZONE_TAB)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            match f.next()? {
                "Z" => f.next().map(str::to_string),
                "L" => f.nth(1).map(str::to_string),
                _ => None,
            }
        })
        .filter(|n| !n.starts_with("Etc/") || n == "Etc/UTC")
        .collect();
    if !names.iter().any(|n| n == "UTC") {
        names.push("UTC".into());
    }
    names.sort();
    names.dedup();
    names
}

/// Checks a time zone name against tzdata (or, without tzdata, its shape).
///
/// # Errors
/// 422 `invalid_timezone` (field `timezone`).
pub fn check_timezone(tz: &str) -> Result<(), Error> {
    let names = zone_names();
    let known = if names.len() > 1 {
        names.iter().any(|n| n == tz)
    } else {
        !tz.is_empty()
            && !tz.contains("..")
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))
    };
    if known {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_timezone",
            format!("{tz:?} is not a known time zone (expected an IANA name such as Europe/Paris)"),
        )
        .with_field("timezone"))
    }
}

/// Every IANA time zone name, for the wizard's picker.
#[utoipa::path(get, path = "/api/system/timezones", tag = "system", responses((status = 200, body = [String])))]
pub async fn timezones() -> Json<Vec<String>> {
    Json(zone_names())
}

/// Completes first-boot setup once: checks the setup code, creates the admin, stores
/// host name, time zone and roles, and logs the admin in.
#[utoipa::path(post, path = "/api/setup", tag = "setup", request_body = SetupRequest,
    responses((status = 200, body = crate::auth::SessionInfo, description = "Done; sets the session cookie"),
              (status = 403, body = pinas_core::error::ErrorBody, description = "setup_code_invalid"),
              (status = 409, body = pinas_core::error::ErrorBody, description = "setup_already_done"),
              (status = 422, body = pinas_core::error::ErrorBody, description = "invalid field (see `field`)"),
              (status = 429, body = pinas_core::error::ErrorBody, description = "too_many_attempts (wrong setup codes)"),
              (status = 503, body = pinas_core::error::ErrorBody, description = "storage_unavailable")))]
pub async fn complete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    tls: Option<Extension<Tls>>,
    Json(req): Json<SetupRequest>,
) -> Result<Response, Error> {
    if state.is_setup_done() {
        return Err(already_done());
    }
    if state.setup.storage_in_ram() {
        return Err(storage_unavailable());
    }
    let attempt = match state.limiter.begin_setup(ip) {
        Ok(a) => a,
        Err(t) => return Ok(too_many_attempts(t, "wrong setup codes")),
    };
    if let Err(e) = state.setup.check(req.setup_code.as_deref()) {
        tracing::info!(%ip, "setup refused: wrong setup code");
        return Err(e);
    }
    state.limiter.succeeded(attempt);
    auth::check_username(&req.admin.username).map_err(|e| e.with_field("admin.username"))?;
    auth::check_password_policy(&req.admin.password).map_err(|e| e.with_field("admin.password"))?;
    check_hostname(&req.hostname)?;
    check_timezone(&req.timezone)?;
    let roles: Vec<String> = pinas_core::roles::parse_setup_roles(&req.roles)
        .map_err(|bad| {
            let names: Vec<_> = pinas_core::roles::SetupRole::ALL
                .iter()
                .map(|r| format!("{:?}", r.as_str()))
                .collect();
            let got = if bad.is_empty() {
                "none".to_string()
            } else {
                format!("{bad:?}")
            };
            Error::invalid(
                "invalid_roles",
                format!(
                    "roles must be one or more of {}, got {got}",
                    names.join(", ")
                ),
            )
            .with_field("roles")
        })?
        .into_iter()
        .map(|r| r.as_str().to_string())
        .collect();
    let hash = {
        let pw = req.admin.password.clone();
        let permit = state.limiter.hashing_permit().await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            auth::hash_password(&pw)
        })
        .await
        .map_err(|e| Error::internal(format!("hash task: {e}")))??
    };
    {
        let mut conn = state.ctx.db.conn();
        let tx = conn.transaction()?;
        let done: Option<String> = tx
            .query_row(
                "SELECT value FROM settings WHERE key = 'setup_done'",
                [],
                |r| r.get(0),
            )
            .ok();
        if done.as_deref() == Some("true") {
            return Err(already_done());
        }
        tx.execute(
            "INSERT OR REPLACE INTO users (name, role, password_hash, created_at) VALUES (?1, 'admin', ?2, ?3)",
            rusqlite::params![req.admin.username, hash, pinas_core::events::now_secs()],
        )?;
        for (k, v) in [
            ("hostname", req.hostname.clone()),
            ("timezone", req.timezone.clone()),
            ("roles", serde_json::to_string(&roles).unwrap_or_default()),
            ("setup_done", "true".to_string()),
        ] {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [k, &v],
            )?;
        }
        tx.commit()?;
    }
    *state.host.write().unwrap_or_else(|e| e.into_inner()) = crate::state::HostFacts {
        hostname: req.hostname.clone(),
        roles: roles.clone(),
    };
    state.setup_done.store(true, Ordering::Release);
    state.setup.finish();
    for hook in state.account_hooks.clone() {
        let (name, pw) = (req.admin.username.clone(), req.admin.password.clone());
        let res = tokio::task::spawn_blocking(move || hook.password_set(&name, &pw)).await;
        if let Ok(Err(e)) | Err(e) = res.map_err(|e| e.to_string()) {
            tracing::warn!(error = %e, "the admin account has no SMB password yet");
            state.ctx.events.emit(
                "notification.new",
                serde_json::json!({"level":"warning","title":"SMB access for the admin","message":format!("Could not give {} an SMB password: {e}. Set the password again in Users once SMB is available.", req.admin.username)}),
            );
        }
    }
    for hook in state.account_hooks.clone() {
        let _ = tokio::task::spawn_blocking(move || hook.setup_done()).await;
    }
    if !state.ctx.config.dev {
        apply_host_settings(&req.hostname, &req.timezone).await;
    }
    state.ctx.events.emit(
        "notification.new",
        serde_json::json!({"level":"info","title":"Setup complete","message":format!("{} is ready", req.hostname)}),
    );
    let account = Account {
        name: req.admin.username,
        role: Role::Admin,
    };
    let (cookie, info) = start_session(&state, account, tls.is_some_and(|t| t.0 .0))?;
    Ok(([(header::SET_COOKIE, cookie)], Json(info)).into_response())
}

fn storage_unavailable() -> Error {
    Error::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the storage partition could not be mounted and PiNAS runs with its state in RAM: \
         setup would be lost at the next boot, so it is not offered. Check or replace the \
         SD card and restart.",
    )
}

fn already_done() -> Error {
    Error::conflict(
        "setup_already_done",
        "setup is already done; log in instead",
    )
}

/// On the device, applies host name and time zone. The root filesystem is read-only:
/// `/etc/hostname` is a bind mount of a file on `/storage` (that file is replaced, see
/// [`write_hostname`]), and `/etc/localtime` is a link to a link on `/storage` (so that link is
/// replaced). hostnamectl and timedatectl would try to replace the files under `/etc`
/// and fail; they are only the fallback for a system laid out otherwise.
async fn apply_host_settings(hostname: &str, timezone: &str) {
    let (h, tz) = (hostname.to_string(), timezone.to_string());
    let res = tokio::task::spawn_blocking(move || (set_hostname(&h), set_timezone(&tz))).await;
    let Ok((h, tz)) = res else { return };
    if let Err(e) = h {
        tracing::warn!(error = %e, "cannot apply the host name; trying hostnamectl");
        run_fallback(&["hostnamectl", "set-hostname", hostname]).await;
    }
    // Avahi announces the name it read at start: restart it so `<hostname>.local`
    // answers now, not after the next boot.
    run_fallback(&["systemctl", "try-restart", "avahi-daemon.service"]).await;
    if let Err(e) = tz {
        tracing::warn!(error = %e, "cannot apply the time zone; trying timedatectl");
        run_fallback(&["timedatectl", "set-timezone", timezone]).await;
    }
}

fn set_hostname(name: &str) -> std::io::Result<()> {
    write_hostname(
        Path::new(PERSISTENT_HOSTNAME),
        Path::new("/etc/hostname"),
        name,
    )?;
    if Path::new("/run/systemd/system").is_dir() {
        return set_kernel_hostname_by_hostnamed(name);
    }
    nix::unistd::sethostname(name).map_err(std::io::Error::from)
}

/// Has systemd-hostnamed set the kernel's host name (its `SetHostname` D-Bus method, as
/// `hostnamectl --transient set-hostname` calls it). On the device the web role's unit
/// has `ProtectHostname=`: this process lives in a UTS namespace of its own, where
/// sethostname(2) would rename only itself. hostnamed reads `/etc/hostname` again first
/// and gives the static name there precedence over the transient one (systemd's
/// `src/hostname/hostnamed.c`, `context_update_kernel_hostname`), so the name
/// [`write_hostname`] just wrote is what the kernel gets.
///
/// Errors: hostnamectl cannot run, or it fails (its message).
fn set_kernel_hostname_by_hostnamed(name: &str) -> std::io::Result<()> {
    let out = std::process::Command::new("hostnamectl")
        .args(["--transient", "set-hostname", name])
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "hostnamectl --transient set-hostname {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The host name file on /storage that the initramfs bind-mounts on `/etc/hostname`.
const PERSISTENT_HOSTNAME: &str = "/storage/.system/hostname";

/// Writes `name` as the host name. The file that lasts, `persistent` (on /storage), is
/// replaced atomically (temporary file, fsync, rename), so a power cut leaves the old
/// name or the new one, never an empty file. `/etc/hostname` (`etc`) is a bind mount of
/// the old file and cannot be renamed over (EBUSY): it is rewritten in place so the
/// running system shows the new name too; that view lasts only until the next boot,
/// which mounts the new file. On a system without `persistent`, `etc` itself is
/// replaced atomically.
fn write_hostname(persistent: &Path, etc: &Path, name: &str) -> std::io::Result<()> {
    use std::io::Write;
    let text = format!("{name}\n");
    if persistent.exists() {
        pinas_core::fsutil::write_atomic(persistent, text.as_bytes(), 0o644)?;
        if std::fs::read_to_string(etc).ok().as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(etc)?;
        f.write_all(text.as_bytes())?;
        return f.sync_all();
    }
    pinas_core::fsutil::write_atomic(etc, text.as_bytes(), 0o644)
}

fn set_timezone(tz: &str) -> std::io::Result<()> {
    set_timezone_at(
        std::path::Path::new("/etc/localtime"),
        std::path::Path::new("/usr/share/zoneinfo"),
        std::path::Path::new("/storage"),
        tz,
    )
}

/// Replaces the link that `localtime` points to (which must lie under `storage`) with a
/// link to `<zoneinfo>/<tz>`, atomically.
fn set_timezone_at(
    localtime: &std::path::Path,
    zoneinfo: &std::path::Path,
    storage: &std::path::Path,
    tz: &str,
) -> std::io::Result<()> {
    let zone = zoneinfo.join(tz);
    if !zone.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no zone file {}", zone.display()),
        ));
    }
    let link = std::fs::read_link(localtime)?;
    if !link.starts_with(storage) {
        return Err(std::io::Error::other(format!(
            "{} points to {}, not into {}",
            localtime.display(),
            link.display(),
            storage.display()
        )));
    }
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&zone, &tmp)?;
    std::fs::rename(&tmp, &link)
}

async fn run_fallback(args: &[&str]) {
    match tokio::process::Command::new(args[0])
        .args(&args[1..])
        .status()
        .await
    {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(cmd = args[0], status = %s, "cannot apply setting"),
        Err(e) => tracing::warn!(cmd = args[0], error = %e, "cannot apply setting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn timezone_replaces_the_link_on_storage() {
        let d = tempfile::tempdir().unwrap();
        let (zi, storage, etc) = (
            d.path().join("zi"),
            d.path().join("storage"),
            d.path().join("etc"),
        );
        for dir in [&zi.join("Europe"), &zi.join("Etc"), &storage, &etc] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(zi.join("Europe/Paris"), "paris").unwrap();
        std::fs::write(zi.join("Etc/UTC"), "utc").unwrap();
        symlink(zi.join("Etc/UTC"), storage.join("localtime")).unwrap();
        symlink(storage.join("localtime"), etc.join("localtime")).unwrap();

        set_timezone_at(&etc.join("localtime"), &zi, &storage, "Europe/Paris").unwrap();
        assert_eq!(
            std::fs::read_to_string(etc.join("localtime")).unwrap(),
            "paris"
        );
        assert!(set_timezone_at(&etc.join("localtime"), &zi, &storage, "Mars/Base").is_err());
        assert_eq!(
            std::fs::read_to_string(etc.join("localtime")).unwrap(),
            "paris"
        );
        // A link that does not lead to /storage is left alone.
        assert!(set_timezone_at(&etc.join("localtime"), &zi, &zi, "Etc/UTC").is_err());
    }

    #[test]
    fn hostname_on_storage_is_replaced_atomically() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let (storage, etc) = (d.path().join("storage"), d.path().join("etc"));
        std::fs::create_dir_all(&storage).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        let (persistent, view) = (storage.join("hostname"), etc.join("hostname"));
        std::fs::write(&persistent, "old\n").unwrap();
        // The running system's view (a bind mount of the old file on the device).
        std::fs::write(&view, "old\n").unwrap();
        let before = std::fs::metadata(&persistent).unwrap().ino();
        write_hostname(&persistent, &view, "newname").unwrap();
        assert_eq!(std::fs::read_to_string(&persistent).unwrap(), "newname\n");
        assert_eq!(std::fs::read_to_string(&view).unwrap(), "newname\n");
        // A new file renamed into place, not the old one truncated and rewritten (which a
        // power cut could leave empty).
        let after = std::fs::metadata(&persistent).unwrap().ino();
        assert_ne!(before, after);
        assert_eq!(
            std::fs::read_dir(&storage).unwrap().count(),
            1,
            "no temp left"
        );

        // Without a file on /storage, /etc/hostname itself is replaced atomically.
        let plain = etc.join("plain");
        std::fs::write(&plain, "old\n").unwrap();
        let before = std::fs::metadata(&plain).unwrap().ino();
        write_hostname(&storage.join("none"), &plain, "other").unwrap();
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "other\n");
        assert_ne!(before, std::fs::metadata(&plain).unwrap().ino());
    }

    #[test]
    fn ram_filesystems_are_recognised() {
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert!(!is_ram_filesystem(d.path()), "the source tree is on a disk");
        // /dev/shm is a tmpfs on every Linux system PiNAS builds on.
        assert!(is_ram_filesystem(Path::new("/dev/shm")));
    }

    #[test]
    fn hostnames() {
        check_hostname("pinas").unwrap();
        check_hostname("nas-2").unwrap();
        for bad in ["", "-a", "a-", "a.b", "a b", &"x".repeat(64)] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
