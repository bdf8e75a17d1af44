//! Running Samba's tools: `testparm` to check a configuration, `smbpasswd` to keep the
//! passdb in step with PiNAS users, `smbcontrol` to reload smbd, `exportfs` for NFS.
//!
//! In dev mode every tool runs with Debian's nss_wrapper (cwrap) preloaded, pointed at
//! the passwd/group files PiNAS renders, so Samba sees PiNAS users without any account
//! being added to the host.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::SharesError;
use crate::render::SambaLayout;

/// Where Debian's nss_wrapper library may be.
const NSS_WRAPPER_CANDIDATES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/arm-linux-gnueabihf/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
];

/// Finds `prog` in `PATH` and the sbin folders.
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

/// Samba's command-line tools with the environment they need.
#[derive(Debug, Clone)]
pub struct SambaTools {
    pub layout: SambaLayout,
    /// Extra environment (nss_wrapper in dev mode).
    pub env: Vec<(String, String)>,
    /// `Err(reason)` when PiNAS cannot manage Samba users and smbd here.
    pub usable: Result<(), String>,
}

impl SambaTools {
    /// Tools for `layout`; checks that Samba is installed, that nss_wrapper is there in
    /// dev mode, and that the process is root (smbd must switch to each user).
    pub fn new(layout: SambaLayout) -> Self {
        let mut env = Vec::new();
        let mut usable = Ok(());
        if find_program("smbd").is_none() || find_program("smbpasswd").is_none() {
            usable = Err(
                "Samba is not installed (Debian packages samba and samba-common-bin)".to_string(),
            );
        } else if !nix::unistd::geteuid().is_root() {
            usable = Err("smbd must run as root to act as each share user; run pinas dev as root (sudo) to serve SMB".to_string());
        }
        if layout.dev {
            match NSS_WRAPPER_CANDIDATES
                .iter()
                .find(|p| Path::new(p).exists())
            {
                Some(lib) => {
                    env.push(("LD_PRELOAD".into(), lib.to_string()));
                    env.push((
                        "NSS_WRAPPER_PASSWD".into(),
                        layout.passwd_file().display().to_string(),
                    ));
                    env.push((
                        "NSS_WRAPPER_GROUP".into(),
                        layout.group_file().display().to_string(),
                    ));
                }
                None if usable.is_ok() => {
                    usable = Err("nss_wrapper is not installed (Debian package libnss-wrapper); dev mode needs it to give Samba its users".to_string());
                }
                None => {}
            }
        }
        SambaTools {
            layout,
            env,
            usable,
        }
    }

    /// A command for `prog` with this environment.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new(find_program(prog).unwrap_or_else(|| PathBuf::from(prog)));
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Checks `conf` text with `testparm -s`. Unknown parameters count as errors.
    /// Without testparm (Samba not installed) the check is skipped: nothing reads the file.
    ///
    /// # Errors
    /// [`SharesError::ConfigRejected`] with testparm's complaint.
    pub fn check_config(&self, conf: &str) -> Result<(), SharesError> {
        if find_program("testparm").is_none() {
            tracing::debug!("testparm not installed; smb.conf not checked");
            return Ok(());
        }
        let tmp = self
            .layout
            .dir
            .join(format!(".smb.conf.check-{}", std::process::id()));
        std::fs::write(&tmp, conf).map_err(|source| SharesError::Write {
            path: tmp.display().to_string(),
            source,
        })?;
        let out = self
            .command("testparm")
            .arg("-s")
            .arg(&tmp)
            .stdin(Stdio::null())
            .output();
        let _ = std::fs::remove_file(&tmp);
        let out = out.map_err(|e| SharesError::Samba(format!("cannot run testparm: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                l.contains("Unknown parameter")
                    || l.contains("not boolean")
                    || l.contains("Error")
                    || l.contains("Ignoring")
                    || l.contains("Invalid")
            })
            .collect();
        if !out.status.success() || stderr.contains("Unknown parameter") {
            let msg = if complaints.is_empty() {
                stderr.trim().to_string()
            } else {
                complaints.join("; ")
            };
            return Err(SharesError::ConfigRejected(msg));
        }
        Ok(())
    }

    fn run_with_stdin(&self, prog: &str, args: &[&str], stdin: &str) -> Result<(), SharesError> {
        let mut child = self
            .command(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SharesError::Samba(format!("cannot run {prog}: {e}")))?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| SharesError::Samba(format!("{prog} failed: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            // The password went in through stdin only; the output never carries it.
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Err(SharesError::Samba(format!(
                "{prog} {} failed: {}",
                args.join(" "),
                text.trim()
            )))
        }
    }

    /// Sets `name`'s Samba password, adding the passdb entry if needed
    /// (`smbpasswd -s -a`; the password goes through stdin, never the command line).
    ///
    /// # Errors
    /// [`SharesError::Samba`] when smbpasswd fails; nothing when Samba is unusable here
    /// (logged: the account then works for the web UI only).
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), SharesError> {
        if let Err(why) = &self.usable {
            tracing::warn!(user = name, "Samba password not set: {why}");
            return Ok(());
        }
        let conf = self.layout.conf.display().to_string();
        let input = format!("{password}\n{password}\n");
        self.run_with_stdin("smbpasswd", &["-c", &conf, "-s", "-a", name], &input)
    }

    /// Removes `name` from the passdb (a missing entry is not an error).
    ///
    /// # Errors
    /// None today: failures are logged, since the Unix account is gone anyway.
    pub fn delete_user(&self, name: &str) -> Result<(), SharesError> {
        if self.usable.is_err() {
            return Ok(());
        }
        let conf = self.layout.conf.display().to_string();
        if let Err(e) = self.run_with_stdin("smbpasswd", &["-c", &conf, "-x", name], "") {
            tracing::warn!(user = name, error = %e, "cannot remove Samba account");
        }
        Ok(())
    }

    /// Names in the passdb (`pdbedit -L`).
    pub fn passdb_users(&self) -> Vec<String> {
        if self.usable.is_err() {
            return Vec::new();
        }
        self.command("pdbedit")
            .arg("-s")
            .arg(&self.layout.conf)
            .arg("-L")
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.split(':').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asks the running smbd to reload its configuration (`smbcontrol smbd
    /// reload-config`). Returns false when no smbd answered.
    pub fn reload_smbd(&self) -> bool {
        if find_program("smbcontrol").is_none() {
            return false;
        }
        self.command("smbcontrol")
            .arg("-s")
            .arg(&self.layout.conf)
            .args(["smbd", "reload-config"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// On the device, starts `unit` (e.g. `smbd.service`) when `wanted` and stops it
    /// otherwise, through systemctl. Samba and the NFS server stay off until the first
    /// share needs them, so an appliance without shares exposes nothing. Units are not
    /// enabled (the root filesystem is read-only): `pinas web` applies this at every start.
    /// Returns whether the unit is now active.
    pub fn sync_unit(&self, unit: &str, wanted: bool) -> bool {
        if self.layout.dev {
            return false;
        }
        let active = Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .is_ok_and(|s| s.success());
        if active == wanted {
            return active;
        }
        let verb = if wanted { "start" } else { "stop" };
        match Command::new("systemctl")
            .args([verb, "--no-block", unit])
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => tracing::info!(unit, verb, "service changed"),
            Ok(o) => {
                tracing::warn!(unit, verb, stderr = %String::from_utf8_lossy(&o.stderr).trim(), "systemctl failed")
            }
            Err(e) => tracing::warn!(unit, error = %e, "cannot run systemctl"),
        }
        wanted
    }

    /// Applies the exports file with `exportfs -ra` (device only).
    pub fn reload_nfs(&self) {
        if self.layout.dev {
            return;
        }
        match Command::new(find_program("exportfs").unwrap_or_else(|| "exportfs".into()))
            .arg("-ra")
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "exportfs -ra failed")
            }
            Err(e) => tracing::warn!(error = %e, "cannot run exportfs (install nfs-kernel-server)"),
        }
    }
}
