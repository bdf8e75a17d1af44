//! The console's admin password reset against Samba's real passdb: afterwards SMB takes
//! the new password, as the web UI does. Needs root and Samba's tools (smbpasswd,
//! pdbedit), and Debian's nss_wrapper, which dev mode uses to give Samba its users.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::process::Command;

use pinas_console::{Console, ConsoleError, Host, Settings, Terminal};
use pinas_core::auth::Role;
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use pinas_shares::render::SambaLayout;
use pinas_shares::samba::SambaTools;
use pinas_shares::{NewUser, Shares};
use pinas_testkit::{require, require_root, require_tools, Skip};

struct Script(VecDeque<String>, String);

impl Terminal for &mut Script {
    fn line(&mut self, prompt: &str) -> Option<String> {
        self.1.push_str(prompt);
        self.0.pop_front()
    }
    fn secret(&mut self, prompt: &str) -> Option<String> {
        self.line(prompt)
    }
    fn print(&mut self, text: &str) {
        self.1.push_str(text);
    }
}

/// A machine whose only real part is Samba: the same tools `pinas console` is given.
struct SambaHost(SambaTools);

impl Host for SambaHost {
    fn addresses(&self) -> Vec<(String, IpAddr)> {
        Vec::new()
    }
    fn units(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn run(&mut self, argv: &[&str]) -> Result<(), ConsoleError> {
        panic!("the reset runs no command: {argv:?}")
    }
    fn set_samba_password(&mut self, name: &str, password: &str) -> Result<(), ConsoleError> {
        self.0
            .set_password(name, password)
            .map_err(|e| ConsoleError::Command(e.to_string()))
    }
    fn shell(&mut self) -> Result<(), ConsoleError> {
        panic!("no shell here")
    }
}

/// The NT hash (MD4 of the password, unsalted) of each passdb entry, from `pdbedit -w`.
fn nt_hashes(tools: &SambaTools) -> Vec<(String, String)> {
    let out = Command::new("pdbedit")
        .envs(tools.env.iter().map(|(k, v)| (k, v)))
        .arg("-s")
        .arg(&tools.layout.conf)
        .args(["-L", "-w"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3).then(|| (f[0].to_string(), f[3].to_string()))
        })
        .collect()
}

fn hash_of(hashes: &[(String, String)], name: &str) -> String {
    hashes
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not in the passdb: {hashes:?}"))
        .1
        .clone()
}

#[test]
fn password_reset_sets_the_smb_password_too() {
    require!(require_root("smbpasswd writes Samba's passdb as root"));
    require!(require_tools(&["smbd", "smbpasswd", "pdbedit"]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::defaults(&Mode::Dev {
        state_dir: dir.path().to_path_buf(),
    });
    let ctx = Context::open(cfg).unwrap();
    let tools = SambaTools::new(SambaLayout::new(&ctx));
    require!(tools.usable.clone().map_err(Skip::new));
    let shares = Shares::new(ctx.clone()).unwrap();
    for (name, role, password) in [
        ("admin", Role::Admin, "old password 123"),
        // Another account with the password the admin will get: the same NT hash.
        ("probe", Role::User, "new password 456"),
    ] {
        shares
            .create_user(NewUser {
                name: name.into(),
                password: password.into(),
                role,
                groups: Vec::new(),
            })
            .unwrap();
    }
    let before = nt_hashes(&tools);
    assert_ne!(hash_of(&before, "admin"), hash_of(&before, "probe"));

    let settings = Settings {
        version: "test".into(),
        db_path: ctx.paths.db.clone(),
        network_dir: dir.path().join("network"),
        storage_dir: dir.path().to_path_buf(),
        boot_info: dir.path().join("boot"),
        hostname_file: dir.path().join("hostname"),
        state_dir: dir.path().to_path_buf(),
    };
    let mut script = Script(
        ["2", "new password 456", "new password 456", "0"]
            .map(String::from)
            .into(),
        String::new(),
    );
    Console::new(&settings, &mut script, SambaHost(tools.clone()))
        .run()
        .unwrap();
    assert!(
        script.1.contains("changed for the web UI and SMB"),
        "{}",
        script.1
    );
    let after = nt_hashes(&tools);
    assert_eq!(
        hash_of(&after, "admin"),
        hash_of(&after, "probe"),
        "Samba has the admin's new password"
    );
    let conn = pinas_core::db::open(&ctx.paths.db).unwrap();
    assert!(
        pinas_core::auth::check_login(&conn, "admin", "new password 456")
            .unwrap()
            .is_some()
    );
}
