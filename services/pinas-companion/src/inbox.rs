//! The inbox: a folder on the companion whose files go to the NAS while it is up, with
//! rsync to the configured target (`rsync://host/module/path`, an rsync daemon, or
//! `user@host:/path` over SSH with the companion's keys).
//!
//! A flush sends the files that are ready; rsync checks every file it sends against a
//! whole-file checksum made while sending (rsync(1), under `--checksum`). Files it did
//! not send (a file of the same size and time was already there) then get rsync's
//! checksum pass (`--checksum`), which compares whole contents and sends again what
//! differs. A file is deleted here only when rsync exited 0 and its itemized output
//! (`%i`) names it as sent or as identical, and it has not changed since the flush began. A failed or cut transfer deletes nothing; rsync writes into a temporary name
//! (and keeps partial data in `.rsync-partial/` for the next try), so no partial file
//! looks complete on the NAS. A file is ready when it was last modified more than
//! `inbox_settle_secs` ago and no process has it open for writing (checked with a read
//! lease, `fcntl(F_SETLEASE)`, where the kernel allows it). Hidden files (starting with
//! `.`) are left alone. Failures are retried with a doubling delay (30 s up to 1 h).

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use pinas_core::events::now_ms;
use serde::Serialize;

use crate::error::CompanionError;

/// How long rsync may see no data before giving up (`--timeout`), seconds.
const IO_TIMEOUT_SECS: u64 = 30;

/// One file waiting in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Path relative to the inbox.
    pub rel: PathBuf,
    pub size_bytes: u64,
    pub mtime_ns: i128,
}

/// `GET /api/companion/inbox`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct InboxStatus {
    /// The inbox folder.
    pub dir: String,
    /// Where files go; empty: nowhere (no flush).
    pub target: String,
    /// Files waiting (ready or not) and their bytes.
    pub pending_files: u64,
    pub pending_bytes: u64,
    /// The last flush that succeeded (Unix ms) and what it moved.
    pub last_flush_at_ms: Option<i64>,
    pub last_flushed_files: u64,
    pub last_flushed_bytes: u64,
    /// Flushes failed in a row, and the last failure.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// No automatic flush before this (Unix ms) after failures.
    pub next_attempt_at_ms: Option<i64>,
    /// The companion's SSH public key (OpenSSH format), for the NAS user's
    /// `authorized_keys` when the target is `user@host:/path`; `null` when it has none.
    /// The private key is never shown.
    pub ssh_public_key: Option<String>,
}

/// What one flush did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct FlushReport {
    /// Files sent, verified and deleted here.
    pub moved_files: u64,
    pub moved_bytes: u64,
    /// Files left for later: still being written, or changed during the flush.
    pub waiting_files: u64,
}

/// The inbox folder and its flush bookkeeping.
pub struct Inbox {
    dir: PathBuf,
    settle: Duration,
    /// The SSH key pair and known_hosts for a `user@host:/path` target.
    ssh: Option<SshFiles>,
    status: Mutex<InboxStatus>,
    /// One flush at a time.
    pub(crate) running: tokio::sync::Mutex<()>,
}

impl Inbox {
    /// The inbox at `dir` (created if missing); files must have rested `settle` before
    /// they move.
    pub fn new(dir: PathBuf, settle: Duration) -> Inbox {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the inbox folder");
        }
        Inbox {
            status: Mutex::new(InboxStatus {
                dir: dir.display().to_string(),
                ..InboxStatus::default()
            }),
            dir,
            settle,
            ssh: None,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The same inbox, reaching SSH targets with the key pair and known_hosts in
    /// `ssh_dir` (see [`SshFiles::prepare`]).
    #[must_use]
    pub fn with_ssh(mut self, ssh: SshFiles) -> Inbox {
        self.ssh = Some(ssh);
        self
    }

    /// The inbox folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The status now, with the pending files counted afresh (blocking: reads the folder).
    pub fn status(&self, target: &str) -> InboxStatus {
        let files = scan(&self.dir);
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.target = target.to_string();
        s.ssh_public_key = self.ssh.as_ref().and_then(SshFiles::public_key);
        s.pending_files = files.len() as u64;
        s.pending_bytes = files.iter().map(|f| f.size_bytes).sum();
        s
    }

    /// True when an automatic flush may run now (no back-off pending).
    pub fn may_retry(&self, now_ms: i64) -> bool {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.next_attempt_at_ms.is_none_or(|t| now_ms >= t)
    }

    /// When the last flush succeeded (Unix ms).
    pub fn last_flush_at_ms(&self) -> Option<i64> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_flush_at_ms
    }

    /// Moves the ready files to `target` with rsync and deletes each here once a
    /// checksum pass finds its copy identical. Records the outcome for [`Inbox::status`].
    ///
    /// # Errors
    /// 409 `inbox_target_missing` without a target; 503 `inbox_flush_failed` when rsync
    /// fails or does not finish within `limit` (nothing is deleted then).
    pub async fn flush(
        &self,
        target: &str,
        limit: Duration,
    ) -> Result<FlushReport, CompanionError> {
        if target.is_empty() {
            return Err(CompanionError::conflict(
                "inbox_target_missing",
                "set the inbox target in the companion settings first",
            ));
        }
        let _one = self.running.lock().await;
        let r = self.flush_inner(target, limit).await;
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match &r {
            Ok(rep) => {
                s.last_flush_at_ms = Some(now_ms());
                s.last_flushed_files = rep.moved_files;
                s.last_flushed_bytes = rep.moved_bytes;
                s.consecutive_failures = 0;
                s.last_error = None;
                s.next_attempt_at_ms = None;
            }
            Err(e) => {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                s.last_error = Some(e.to_string());
                let backoff = 30_000i64 << (s.consecutive_failures - 1).min(7);
                s.next_attempt_at_ms = Some(now_ms() + backoff.min(3_600_000));
                tracing::warn!(error = %e, failures = s.consecutive_failures, "inbox flush failed");
            }
        }
        r
    }

    async fn flush_inner(
        &self,
        target: &str,
        limit: Duration,
    ) -> Result<FlushReport, CompanionError> {
        let dir = self.dir.clone();
        let settle = self.settle;
        let (ready, waiting) = tokio::task::spawn_blocking(move || {
            let all = scan(&dir);
            let total = all.len();
            let ready: Vec<Pending> = all
                .into_iter()
                .filter(|f| is_ready(&dir, f, settle))
                .collect();
            let waiting = total - ready.len();
            (ready, waiting as u64)
        })
        .await
        .map_err(|e| CompanionError::internal(e.to_string()))?;
        if ready.is_empty() {
            return Ok(FlushReport {
                waiting_files: waiting,
                ..FlushReport::default()
            });
        }
        let deadline = tokio::time::Instant::now() + limit;
        // The copy. Each file it sends is checked by rsync itself against a whole-file
        // checksum made while it is sent (rsync(1), under --checksum), and a mismatch
        // makes it send the file again or fail: with exit status 0, every file it lists
        // as sent (`<f`) is verified.
        let list = tempfile_list(ready.iter().map(|f| &f.rel))?;
        let sent = self.rsync(target, list.path(), &[], deadline).await?;
        let mut verified = sent;
        // The rest (rsync saw a file of the same size and time there and skipped it) get
        // rsync's checksum pass: compared by whole content, sent again where they differ.
        let unsure: Vec<&PathBuf> = ready
            .iter()
            .map(|f| &f.rel)
            .filter(|r| !verified.contains(r))
            .collect();
        if !unsure.is_empty() {
            let list = tempfile_list(unsure.into_iter())?;
            let pass = self
                .rsync(target, list.path(), &["--checksum", "-ii"], deadline)
                .await?;
            verified.sent.extend(pass.sent);
            verified.same.extend(pass.same);
        }
        let dir = self.dir.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut rep = FlushReport {
                waiting_files: waiting,
                ..FlushReport::default()
            };
            for f in ready {
                let unchanged = std::fs::symlink_metadata(dir.join(&f.rel))
                    .is_ok_and(|m| m.len() == f.size_bytes && mtime_ns(&m) == f.mtime_ns);
                if !verified.contains(&f.rel) || !unchanged {
                    rep.waiting_files += 1;
                    continue;
                }
                match std::fs::remove_file(dir.join(&f.rel)) {
                    Ok(()) => {
                        rep.moved_files += 1;
                        rep.moved_bytes += f.size_bytes;
                        // Empty folders the file was in go too (not the inbox itself).
                        let mut p = f.rel.parent();
                        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                            if std::fs::remove_dir(dir.join(d)).is_err() {
                                break;
                            }
                            p = d.parent();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(file = %f.rel.display(), error = %e, "cannot delete a flushed inbox file");
                        rep.waiting_files += 1;
                    }
                }
            }
            rep
        })
        .await
        .map_err(|e| CompanionError::internal(e.to_string()))?;
        tracing::info!(
            files = report.moved_files,
            bytes = report.moved_bytes,
            target,
            "inbox flushed"
        );
        Ok(report)
    }

    /// Runs rsync from the inbox to `target` for the files in `list`, with `extra`
    /// options, and reads its itemized output (`%i %n`): the files it sent (`<f`) and,
    /// with `-ii`, those it found identical (`.f`).
    ///
    /// # Errors
    /// 503 `inbox_flush_failed` when rsync cannot start, exits non-zero or passes the
    /// deadline (it is killed then).
    async fn rsync(
        &self,
        target: &str,
        list: &Path,
        extra: &[&str],
        deadline: tokio::time::Instant,
    ) -> Result<Itemized, CompanionError> {
        let mut cmd = tokio::process::Command::new("rsync");
        // -8: names are logged as they are, but for control characters (see escape_name).
        cmd.args(["--archive", "-8", "--from0", "--partial-dir=.rsync-partial"])
            .arg("--out-format=%i %n")
            .arg(format!("--timeout={IO_TIMEOUT_SECS}"))
            .arg(format!("--files-from={}", list.display()))
            .args(extra);
        if target.starts_with("rsync://") {
            cmd.arg("--contimeout=10");
        } else {
            cmd.arg("-e").arg(ssh_command(self.ssh.as_ref()));
        }
        let mut src = self.dir.as_os_str().to_owned();
        src.push("/");
        cmd.arg(src)
            .arg(format!("{}/", target.trim_end_matches('/')))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let out = match tokio::time::timeout_at(deadline, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(fail(format!("cannot run rsync: {e}"))),
            Err(_) => return Err(fail(format!("rsync to {target} did not finish in time"))),
        };
        if !out.status.success() {
            // Over SSH, rsync's last line only says the connection closed; ssh's own
            // reason (a changed host key, a refused key) comes before it.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ssh_reason = stderr
                .lines()
                .find(|l| {
                    l.contains("Host key verification failed")
                        || l.contains("Permission denied")
                        || l.contains("HOST IDENTIFICATION HAS CHANGED")
                })
                .map(|l| {
                    format!(
                        "{}; ",
                        l.trim_matches(|c: char| c == '@' || c.is_whitespace())
                    )
                })
                .unwrap_or_default();
            return Err(fail(format!(
                "rsync to {target} failed ({}): {ssh_reason}{}",
                out.status,
                last_line(&out.stderr)
            )));
        }
        let it = Itemized::parse(&out.stdout);
        tracing::debug!(
            ?extra,
            sent = it.sent.len(),
            same = it.same.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "rsync pass"
        );
        Ok(it)
    }
}

/// The companion's SSH identity for `user@host:/path` targets: `<dir>/id_ed25519` (0600)
/// with its `.pub`, and `<dir>/known_hosts`, where the NAS's host key is pinned.
#[derive(Debug, Clone)]
pub struct SshFiles {
    dir: PathBuf,
}

impl SshFiles {
    /// Makes `dir` (0700) and, when `id_ed25519` is missing, a new Ed25519 key pair
    /// without a passphrase (`ssh-keygen`), the private key 0600. Blocking.
    ///
    /// # Errors
    /// Why the folder or the key could not be made (`ssh-keygen` missing or failing).
    pub fn prepare(dir: PathBuf) -> Result<SshFiles, String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let files = SshFiles { dir };
        let key = files.key();
        if !key.exists() {
            // ssh-keygen writes the private key 0600 itself; a key half-made by an
            // earlier failure would make it ask before overwriting, so it goes first.
            let _ = std::fs::remove_file(key.with_extension("pub"));
            let out = std::process::Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "pinas-companion",
                    "-f",
                ])
                .arg(&key)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ssh-keygen failed ({}): {}",
                    out.status,
                    last_line(&out.stderr)
                ));
            }
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot make {} private: {e}", key.display()))?;
        Ok(files)
    }

    /// The private key's path.
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The known_hosts file's path.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The public key, one line of OpenSSH format; `None` when it cannot be read.
    pub fn public_key(&self) -> Option<String> {
        std::fs::read_to_string(self.key().with_extension("pub"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// The `ssh` command rsync runs (`-e`): no prompts, this key alone, the NAS's host key
/// pinned in the companion's own known_hosts at the first connection and required to
/// match from then on (`StrictHostKeyChecking=accept-new`, ssh_config(5)). rsync splits
/// the command itself at spaces, keeping quoted ones (rsync(1), `--rsh`; no backslash
/// escapes).
fn ssh_command(ssh: Option<&SshFiles>) -> String {
    let mut c = String::from("ssh -o BatchMode=yes -o ConnectTimeout=10");
    if let Some(f) = ssh {
        let q = |p: PathBuf| {
            let p = p.display().to_string();
            if p.contains('\'') {
                format!("\"{p}\"")
            } else {
                format!("'{p}'")
            }
        };
        c.push_str(&format!(
            " -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
            q(f.key()),
            q(f.known_hosts())
        ));
    }
    c
}

/// What rsync's itemized output (`--out-format=%i %n`, rsync(1) "--itemize-changes")
/// says about regular files, by the names it printed (see [`escape_name`]).
#[derive(Debug, Default)]
struct Itemized {
    /// Sent (`<f...`, or `>f...` when the target is local): verified by rsync's
    /// whole-file checksum.
    sent: HashSet<PathBuf>,
    /// Unchanged in content (`.f...`, shown with `-ii`).
    same: HashSet<PathBuf>,
}

impl Itemized {
    fn parse(stdout: &[u8]) -> Itemized {
        use std::os::unix::ffi::OsStrExt;
        let mut it = Itemized::default();
        for line in stdout.split(|b| *b == b'\n') {
            // 11 flag characters, a space, the name.
            let (Some(flags), Some(name)) = (line.get(..11), line.get(12..)) else {
                continue;
            };
            let name = PathBuf::from(std::ffi::OsStr::from_bytes(name));
            match &flags[..2] {
                // `<` sent to a remote host, `>` received by a local copy.
                b"<f" | b">f" => it.sent.insert(name),
                b".f" => it.same.insert(name),
                _ => false,
            };
        }
        it
    }

    fn contains(&self, rel: &Path) -> bool {
        let name = escape_name(rel);
        self.sent.contains(&name) || self.same.contains(&name)
    }
}

/// `rel` as rsync prints it with `-8`: a byte below 0x20 (but tab) becomes `\#ooo`
/// (octal), and so does a backslash that starts `\#` and three digits (rsync's log.c,
/// `filtered_fwrite`). A name that would still not match is never taken as verified.
fn escape_name(rel: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let b = rel.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        let escaped_backslash = c == b'\\'
            && b.get(i + 1) == Some(&b'#')
            && b.get(i + 2..i + 5)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if (c < b' ' && c != b'\t') || escaped_backslash {
            out.extend_from_slice(format!("\\#{c:03o}").as_bytes());
        } else {
            out.push(c);
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

fn fail(message: String) -> CompanionError {
    CompanionError::unavailable("inbox_flush_failed", message)
}

fn last_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// The NUL-separated list of relative paths rsync reads with `--files-from --from0`.
fn tempfile_list<'a>(
    files: impl Iterator<Item = &'a PathBuf>,
) -> Result<tempfile::NamedTempFile, CompanionError> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut f = tempfile::NamedTempFile::new()
        .map_err(|e| CompanionError::internal(format!("cannot write the inbox file list: {e}")))?;
    for p in files {
        f.write_all(p.as_os_str().as_bytes())
            .and_then(|()| f.write_all(b"\0"))
            .map_err(|e| {
                CompanionError::internal(format!("cannot write the inbox file list: {e}"))
            })?;
    }
    f.flush()
        .map_err(|e| CompanionError::internal(e.to_string()))?;
    Ok(f)
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// The regular files under `dir`, hidden ones (and hidden folders) left out, sorted.
pub fn scan(dir: &Path) -> Vec<Pending> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            let r = rel.join(e.file_name());
            if m.is_dir() {
                stack.push(r);
            } else if m.is_file() {
                out.push(Pending {
                    rel: r,
                    size_bytes: m.len(),
                    mtime_ns: mtime_ns(&m),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// True when `f` rested `settle` and nobody has it open for writing.
fn is_ready(dir: &Path, f: &Pending, settle: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    if now - f.mtime_ns < settle.as_nanos() as i128 {
        return false;
    }
    !open_for_writing(&dir.join(&f.rel))
}

/// True when a process has `path` open for writing: the kernel refuses a read lease
/// then (`EAGAIN`). When leases are not allowed here (another owner without
/// `CAP_LEASE`), the settle time alone decides.
fn open_for_writing(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return true;
    };
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is open for the duration of `f`; F_SETLEASE takes an int argument.
    let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if r == 0 {
        // SAFETY: as above; gives the lease back.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_ssh_key_is_made_once_private_and_pinned_by_the_ssh_command() {
        use std::os::unix::fs::PermissionsExt;
        if std::process::Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .is_err()
        {
            eprintln!("skipped: ssh-keygen is not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("my ssh");
        let f = SshFiles::prepare(dir.clone()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.key()), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let public = f.public_key().unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        // kept on the next start
        let again = SshFiles::prepare(dir.clone()).unwrap();
        assert_eq!(again.public_key().unwrap(), public);
        let c = ssh_command(Some(&f));
        assert!(
            c.contains(&format!("-i '{}'", dir.join("id_ed25519").display())),
            "{c}"
        );
        assert!(
            c.contains(&format!(
                "UserKnownHostsFile='{}'",
                dir.join("known_hosts").display()
            )),
            "{c}"
        );
        assert!(
            c.contains("StrictHostKeyChecking=accept-new") && c.contains("IdentitiesOnly=yes"),
            "{c}"
        );
        assert_eq!(
            ssh_command(None),
            "ssh -o BatchMode=yes -o ConnectTimeout=10"
        );
    }

    #[test]
    fn a_file_is_ready_once_it_rested_and_nobody_writes_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub/.hidden")).unwrap();
        std::fs::write(d.path().join("sub/a.txt"), b"a").unwrap();
        std::fs::write(d.path().join(".tmp"), b"x").unwrap();
        std::fs::write(d.path().join("sub/.hidden/x"), b"x").unwrap();
        let mut w = std::fs::File::create(d.path().join("b.bin")).unwrap();
        w.write_all(b"bb").unwrap();
        let files = scan(d.path());
        let names: Vec<_> = files.iter().map(|f| f.rel.to_str().unwrap()).collect();
        assert_eq!(names, ["b.bin", "sub/a.txt"]);
        assert!(
            !is_ready(d.path(), &files[1], Duration::from_secs(60)),
            "too fresh"
        );
        assert!(is_ready(d.path(), &files[1], Duration::ZERO));
        assert!(
            !is_ready(d.path(), &files[0], Duration::ZERO),
            "open for writing"
        );
        drop(w);
        assert!(is_ready(d.path(), &files[0], Duration::ZERO));
    }

    #[test]
    fn rsync_itemized_names_are_matched_as_rsync_escapes_them() {
        let out = b"<f+++++++++ a.txt\n.f          sub/b.bin\ncd+++++++++ sub/\n>f+++++++++ we\\#012ird\n>fc........ x\\#134#123\nsent 10 bytes\n";
        let it = Itemized::parse(out);
        assert!(it.contains(Path::new("a.txt")));
        assert!(it.contains(Path::new("sub/b.bin")));
        assert!(!it.contains(Path::new("sub")), "a folder is no file");
        assert!(it.contains(Path::new("we\nird")));
        assert!(it.contains(Path::new("x\\#123")));
        assert!(!it.contains(Path::new("other")));
    }
}
