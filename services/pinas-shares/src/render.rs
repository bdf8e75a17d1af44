//! Rendering Samba's `smb.conf`, the NFS exports file and the account files (passwd,
//! group, shadow) from the database. Pure functions: the same rows give the same text.
//!
//! Formats: smb.conf(5) of Samba 4.17, exports(5) of nfs-utils, passwd(5), group(5),
//! shadow(5).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pinas_core::Context;

use crate::model::Share;

/// Primary group of every PiNAS user (`users`, gid 100 on Debian).
pub const USERS_GID: u32 = pinas_storage::mount::USERS_GID;

/// Where the NSS account files live on the device (libnss-extrausers; the image binds
/// this folder from /storage).
pub const EXTRAUSERS_DIR: &str = "/var/lib/extrausers";

/// Where Samba's and NFS's files live, derived from the configuration.
#[derive(Debug, Clone)]
pub struct SambaLayout {
    /// `<state>/samba`.
    pub dir: PathBuf,
    /// The rendered `smb.conf`.
    pub conf: PathBuf,
    /// passdb (`passdb.tdb`) and secrets.
    pub private_dir: PathBuf,
    pub state_dir: PathBuf,
    pub lock_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// `smbd.pid`.
    pub pid_dir: PathBuf,
    pub ncalrpc_dir: PathBuf,
    /// Account files: `<state>/samba` in dev mode (read through nss_wrapper),
    /// [`EXTRAUSERS_DIR`] on the device.
    pub accounts_dir: PathBuf,
    /// The rendered NFS exports file: `<state>/nfs/pinas.exports`.
    pub exports: PathBuf,
    /// Development mode: smbd on `port` on loopback, accounts through nss_wrapper.
    pub dev: bool,
    /// SMB port.
    pub port: u16,
}

impl SambaLayout {
    /// The layout for `ctx`'s configuration.
    pub fn new(ctx: &Context) -> Self {
        Self::for_dir(
            &ctx.paths.samba_dir,
            &ctx.paths.state_dir,
            ctx.config.dev,
            ctx.config.smb.port,
        )
    }

    /// The layout with Samba's files in `dir` and NFS's under `state_dir/nfs`.
    ///
    /// In dev mode every Samba folder is inside `dir`. On the device the passdb and
    /// secrets (`private`) live in `dir` on /storage, and the rest where Debian's Samba
    /// service expects it (`/run/samba`, `/var/lib/samba`, `/var/cache/samba`).
    pub fn for_dir(dir: &Path, state_dir: &Path, dev: bool, port: u16) -> Self {
        let (state, lock, cache, pid) = if dev {
            (
                dir.join("state"),
                dir.join("lock"),
                dir.join("cache"),
                dir.join("run"),
            )
        } else {
            (
                PathBuf::from("/var/lib/samba"),
                PathBuf::from("/run/samba"),
                PathBuf::from("/var/cache/samba"),
                PathBuf::from("/run/samba"),
            )
        };
        SambaLayout {
            conf: dir.join("smb.conf"),
            private_dir: dir.join("private"),
            ncalrpc_dir: pid.join("ncalrpc"),
            state_dir: state,
            lock_dir: lock,
            cache_dir: cache,
            pid_dir: pid,
            accounts_dir: if dev {
                dir.to_path_buf()
            } else {
                EXTRAUSERS_DIR.into()
            },
            exports: state_dir.join("nfs/pinas.exports"),
            dir: dir.to_path_buf(),
            dev,
            port,
        }
    }

    /// Creates Samba's folders (private one mode 0700).
    pub fn create_dirs(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for d in [
            &self.dir,
            &self.state_dir,
            &self.lock_dir,
            &self.cache_dir,
            &self.pid_dir,
            &self.ncalrpc_dir,
        ] {
            std::fs::create_dir_all(d)?;
        }
        std::fs::create_dir_all(&self.private_dir)?;
        std::fs::set_permissions(&self.private_dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(d) = self.exports.parent() {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// The passwd file smbd resolves users from.
    pub fn passwd_file(&self) -> PathBuf {
        self.accounts_dir.join("passwd")
    }

    /// The group file.
    pub fn group_file(&self) -> PathBuf {
        self.accounts_dir.join("group")
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Renders `smb.conf` for `shares` (those with `smb` on).
///
/// Every share forces group `users` and creates files 0664 and folders 2775, so all
/// users allowed on a share can change what the others wrote; `valid users` and
/// `read only` decide who may connect and write.
pub fn smb_conf(layout: &SambaLayout, shares: &[Share]) -> String {
    let mut s = String::new();
    let d = |p: &Path| p.display().to_string();
    let _ = writeln!(
        s,
        "# Written by PiNAS from its database; edits here are overwritten."
    );
    let _ = writeln!(s, "[global]");
    let g = |s: &mut String, k: &str, v: &str| {
        let _ = writeln!(s, "   {k} = {}", single_line(v));
    };
    g(&mut s, "server role", "standalone server");
    g(&mut s, "workgroup", "WORKGROUP");
    g(&mut s, "server string", "PiNAS");
    g(&mut s, "security", "user");
    g(
        &mut s,
        "passdb backend",
        &format!("tdbsam:{}", d(&layout.private_dir.join("passdb.tdb"))),
    );
    g(&mut s, "private dir", &d(&layout.private_dir));
    g(&mut s, "state directory", &d(&layout.state_dir));
    g(&mut s, "lock directory", &d(&layout.lock_dir));
    g(&mut s, "cache directory", &d(&layout.cache_dir));
    g(&mut s, "pid directory", &d(&layout.pid_dir));
    g(&mut s, "ncalrpc dir", &d(&layout.ncalrpc_dir));
    g(&mut s, "map to guest", "Bad User");
    g(&mut s, "guest account", "nobody");
    g(&mut s, "server min protocol", "SMB2_10");
    g(&mut s, "load printers", "no");
    g(&mut s, "printing", "bsd");
    g(&mut s, "printcap name", "/dev/null");
    g(&mut s, "disable spoolss", "yes");
    g(&mut s, "disable netbios", "yes");
    g(&mut s, "unix password sync", "no");
    g(&mut s, "usershare max shares", "0");
    g(&mut s, "log level", "1");
    if layout.dev {
        g(&mut s, "smb ports", &layout.port.to_string());
        g(&mut s, "interfaces", "lo");
        g(&mut s, "bind interfaces only", "yes");
    } else if layout.port != 445 {
        g(&mut s, "smb ports", &layout.port.to_string());
    }
    for sh in shares.iter().filter(|x| x.smb) {
        let _ = writeln!(s, "\n[{}]", sh.name);
        g(&mut s, "path", &smb_path(&sh.path));
        if !sh.description.is_empty() {
            g(&mut s, "comment", &sh.description);
        }
        g(&mut s, "browseable", yes_no(!sh.name.ends_with('$')));
        g(&mut s, "read only", yes_no(sh.read_only));
        g(&mut s, "guest ok", yes_no(sh.guest_ok));
        if !sh.valid_users.is_empty() {
            g(&mut s, "valid users", &sh.valid_users.join(" "));
        }
        g(&mut s, "force group", "users");
        g(&mut s, "create mask", "0664");
        g(&mut s, "directory mask", "2775");
    }
    s
}

/// `value` as one smb.conf line. smb.conf has no escapes: a line whose last
/// non-blank character is `\` continues on the next line (Samba's `params.c`), which
/// would swallow the parameter after it. Those backslashes are dropped, with the blanks
/// Samba would trim anyway.
fn single_line(value: &str) -> &str {
    value.trim_end_matches(|c: char| c == '\\' || c.is_whitespace())
}

/// A share's path as smb.conf can hold it: a folder whose name ends in `\` or a blank
/// gets a trailing `/`, which names the same folder and keeps the line whole.
fn smb_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.ends_with(|c: char| c == '\\' || c.is_whitespace()) {
        format!("{path}/").into()
    } else {
        path.into()
    }
}

/// Renders the NFS exports file for `shares` (those with `nfs` on).
///
/// Every client is squashed to `nobody` with group `users`, which may write the share
/// folders (mode 2775); `read_only` exports `ro`.
pub fn exports(shares: &[Share]) -> String {
    let mut s = String::from("# Written by PiNAS from its database; edits here are overwritten.\n");
    for sh in shares.iter().filter(|x| x.nfs) {
        let opts = format!(
            "{},sync,no_subtree_check,all_squash,anonuid=65534,anongid={USERS_GID}",
            if sh.read_only { "ro" } else { "rw" }
        );
        let clients: Vec<String> = sh
            .nfs_clients
            .iter()
            .map(|c| format!("{c}({opts})"))
            .collect();
        let _ = writeln!(s, "\"{}\" {}", sh.path, clients.join(" "));
    }
    s
}

/// A user as the account files need it.
#[derive(Debug, Clone)]
pub struct UnixUser {
    pub name: String,
    pub uid: u32,
}

/// A group as the account files need it.
#[derive(Debug, Clone)]
pub struct UnixGroup {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Renders `(passwd, group, shadow)`. In dev mode the files stand alone (nss_wrapper
/// reads only them), so they also carry root, nobody and the `users` group.
pub fn account_files(
    dev: bool,
    users: &[UnixUser],
    groups: &[UnixGroup],
) -> (String, String, String) {
    let mut passwd = String::new();
    let mut group = String::new();
    let mut shadow = String::new();
    if dev {
        passwd.push_str("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
        let members: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let _ = writeln!(
            group,
            "root:x:0:\nnogroup:x:65534:\nusers:x:{USERS_GID}:{}",
            members.join(",")
        );
    }
    for u in users {
        let _ = writeln!(
            passwd,
            "{}:x:{}:{USERS_GID}:PiNAS user:/nonexistent:/usr/sbin/nologin",
            u.name, u.uid
        );
        // Locked: PiNAS users log in to the web UI and shares, never to a shell.
        let _ = writeln!(shadow, "{}:!:::::::", u.name);
    }
    for gr in groups {
        let _ = writeln!(group, "{}:x:{}:{}", gr.name, gr.gid, gr.members.join(","));
    }
    (passwd, group, shadow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(name: &str) -> Share {
        Share {
            id: 1,
            name: name.into(),
            path: "/srv/disks/data/media".into(),
            description: "Films".into(),
            read_only: false,
            guest_ok: false,
            valid_users: vec!["alice".into(), "@family".into()],
            smb: true,
            nfs: true,
            nfs_clients: vec!["192.168.1.0/24".into(), "*".into()],
        }
    }

    #[test]
    fn smb_conf_dev() {
        let l = SambaLayout::for_dir(Path::new("/s/samba"), Path::new("/s"), true, 4445);
        let mut hidden = share("backup$");
        hidden.smb = true;
        let mut nfs_only = share("nfsonly");
        nfs_only.smb = false;
        let c = smb_conf(&l, &[share("media"), hidden, nfs_only]);
        assert!(c.contains("smb ports = 4445"));
        assert!(c.contains("passdb backend = tdbsam:/s/samba/private/passdb.tdb"));
        assert!(c.contains("[media]\n   path = /srv/disks/data/media\n"));
        assert!(c.contains("valid users = alice @family"));
        assert!(c.contains(
            "[backup$]\n   path = /srv/disks/data/media\n   comment = Films\n   browseable = no"
        ));
        assert!(!c.contains("[nfsonly]"));
    }

    #[test]
    fn smb_conf_device_default_port() {
        let l = SambaLayout::for_dir(
            Path::new("/storage/.pinas/samba"),
            Path::new("/storage/.pinas"),
            false,
            445,
        );
        let c = smb_conf(&l, &[]);
        assert!(!c.contains("smb ports"));
        assert!(!c.contains("interfaces"));
        assert!(c.contains("passdb backend = tdbsam:/storage/.pinas/samba/private/passdb.tdb"));
        assert!(c.contains("pid directory = /run/samba\n"));
    }

    #[test]
    fn exports_lines() {
        let mut s = share("media");
        s.read_only = true;
        let mut off = share("off");
        off.nfs = false;
        let e = exports(&[s, off]);
        let lines: Vec<&str> = e.lines().skip(1).collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0], "\"/srv/disks/data/media\" 192.168.1.0/24(ro,sync,no_subtree_check,all_squash,anonuid=65534,anongid=100) *(ro,sync,no_subtree_check,all_squash,anonuid=65534,anongid=100)");
    }

    #[test]
    fn accounts() {
        let users = [
            UnixUser {
                name: "alice".into(),
                uid: 2001,
            },
            UnixUser {
                name: "bob".into(),
                uid: 2002,
            },
        ];
        let groups = [UnixGroup {
            name: "family".into(),
            gid: 2001,
            members: vec!["alice".into()],
        }];
        let (p, g, sh) = account_files(true, &users, &groups);
        assert!(p.starts_with("root:x:0:0:"));
        assert!(p.contains("alice:x:2001:100:PiNAS user:/nonexistent:/usr/sbin/nologin\n"));
        assert!(g.contains("users:x:100:alice,bob\n"));
        assert!(g.contains("family:x:2001:alice\n"));
        assert!(sh.contains("bob:!:::::::\n"));
        let (p, g, _) = account_files(false, &users, &groups);
        assert!(!p.contains("root") && !g.contains("users:"));
    }
}
