//! Menu tests with scripted input and a fake host that records commands.

use super::*;
use std::collections::VecDeque;

struct Script {
    input: VecDeque<String>,
    output: String,
}

impl Script {
    fn new(lines: &[&str]) -> Self {
        Script {
            input: lines.iter().map(|s| s.to_string()).collect(),
            output: String::new(),
        }
    }
}

impl Terminal for &mut Script {
    fn line(&mut self, prompt: &str) -> Option<String> {
        self.output.push_str(prompt);
        self.input.pop_front()
    }
    fn secret(&mut self, prompt: &str) -> Option<String> {
        self.output.push_str(prompt);
        self.input.pop_front()
    }
    fn print(&mut self, text: &str) {
        self.output.push_str(text);
    }
}

#[derive(Default)]
struct FakeHost {
    commands: Vec<String>,
    /// Samba passwords set, as (name, password).
    samba: Vec<(String, String)>,
    samba_fails: bool,
}

impl Host for &mut FakeHost {
    fn addresses(&self) -> Vec<(String, IpAddr)> {
        vec![
            ("eth0".into(), "10.0.2.15".parse().unwrap()),
            ("eth0".into(), "fd00::15".parse().unwrap()),
        ]
    }
    fn units(&self) -> Vec<(String, String)> {
        parse_list_units("pinas-web.service loaded active running PiNAS web\nsmbd.service loaded inactive dead Samba\n")
    }
    fn run(&mut self, argv: &[&str]) -> Result<(), ConsoleError> {
        self.commands.push(argv.join(" "));
        Ok(())
    }
    fn set_samba_password(&mut self, name: &str, password: &str) -> Result<(), ConsoleError> {
        if self.samba_fails {
            return Err(ConsoleError::Command("smbpasswd failed".into()));
        }
        self.samba.push((name.into(), password.into()));
        Ok(())
    }
    fn shell(&mut self) -> Result<(), ConsoleError> {
        self.commands.push("shell".into());
        Ok(())
    }
}

fn settings(dir: &Path) -> Settings {
    std::fs::write(dir.join("boot"), "slot=B\ndisk=/dev/vda\n").unwrap();
    std::fs::write(dir.join("hostname"), "nas1\n").unwrap();
    Settings {
        version: "9.8.7".into(),
        db_path: dir.join("pinas.db"),
        network_dir: dir.join("network"),
        storage_dir: dir.to_path_buf(),
        boot_info: dir.join("boot"),
        hostname_file: dir.join("hostname"),
        state_dir: dir.to_path_buf(),
    }
}

fn session(s: &Settings, lines: &[&str]) -> (String, Vec<String>) {
    let mut script = Script::new(lines);
    let mut host = FakeHost::default();
    Console::new(s, &mut script, &mut host).run().unwrap();
    (script.output, host.commands)
}

#[test]
fn status_shows_version_slot_addresses_wizard_url_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, cmds) = session(&s, &["0"]);
    assert!(out.contains("PiNAS 9.8.7 on nas1 (system slot B)"), "{out}");
    assert!(out.contains("eth0       10.0.2.15"), "{out}");
    assert!(
        out.contains("https://10.0.2.15/  (or https://nas1.local/)"),
        "{out}"
    );
    assert!(
        out.contains("pinas-web.service") && out.contains("active (running)"),
        "{out}"
    );
    assert!(out.contains("inactive (dead)"), "{out}");
    assert!(cmds.is_empty());
    assert!(!out.contains("Setup code"), "no code, no line: {out}");
}

#[test]
fn status_shows_the_setup_code_while_setup_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let code = pinas_core::auth::SetupCode::load_or_create(dir.path()).unwrap();
    let (out, _) = session(&s, &["0"]);
    assert!(
        out.contains(&format!("Setup code: {}", code.grouped())),
        "{out}"
    );
    pinas_core::auth::SetupCode::remove(dir.path()).unwrap();
    let (out, _) = session(&s, &["0"]);
    assert!(!out.contains("Setup code"), "{out}");
}

#[test]
fn unknown_entry_is_an_error_and_the_menu_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, _) = session(&s, &["9", "1"]);
    assert!(out.contains("Error: \"9\" is not a menu entry"), "{out}");
    assert_eq!(
        out.matches("Choose [0-7]").count(),
        3,
        "menu shown again after the error and the status"
    );
}

#[test]
fn factory_reset_needs_the_exact_word() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, cmds) = session(&s, &["6", "erase", "0"]);
    assert!(out.contains("Not confirmed; nothing changed."), "{out}");
    assert!(!dir.path().join(FACTORY_RESET_MARKER).exists());
    assert!(cmds.is_empty());

    let (out, cmds) = session(&s, &["6", "ERASE"]);
    assert!(out.contains("Factory reset requested"), "{out}");
    assert!(dir.path().join(FACTORY_RESET_MARKER).exists());
    assert_eq!(cmds, vec!["systemctl reboot"]);
}

#[test]
fn static_address_is_written_and_applied_and_dhcp_restores() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, cmds) = session(
        &s,
        &[
            "3",
            "",
            "192.168.7.20/24",
            "192.168.7.1",
            "192.168.7.1 9.9.9.9",
            "y",
            "0",
        ],
    );
    let file = std::fs::read_to_string(s.network_dir.join(network::STATIC_FILE)).unwrap();
    assert!(
        file.contains("Name=eth0") && file.contains("Address=192.168.7.20/24"),
        "{file}"
    );
    assert!(
        out.contains("The web UI is at https://192.168.7.20/"),
        "{out}"
    );
    assert_eq!(
        cmds,
        vec!["networkctl reload", "networkctl reconfigure eth0"]
    );

    let (out, cmds) = session(&s, &["4", "0"]);
    assert!(out.contains("DHCP is used again"), "{out}");
    assert!(!s.network_dir.join(network::STATIC_FILE).exists());
    assert_eq!(cmds, vec!["networkctl reload"]);
}

#[test]
fn bad_address_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, cmds) = session(&s, &["3", "eth0", "192.168.7.300/24", "0"]);
    assert!(
        out.contains("Error: \"192.168.7.300\" is not an IPv4 or IPv6 address"),
        "{out}"
    );
    assert!(!s.network_dir.exists());
    assert!(cmds.is_empty());
}

#[test]
fn password_reset_before_setup_points_to_the_wizard() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (out, _) = session(&s, &["2", "0"]);
    assert!(out.contains("finish the setup wizard"), "{out}");
}

#[test]
fn password_reset_changes_the_admin_password() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    {
        let conn = pinas_core::db::open(&s.db_path).unwrap();
        pinas_core::auth::create_account(
            &conn,
            "admin",
            pinas_core::auth::Role::Admin,
            "old password 123",
        )
        .unwrap();
    }
    let (out, _) = session(&s, &["2", "new password 456", "different 789", "0"]);
    assert!(out.contains("the two passwords differ"), "{out}");

    // Samba refuses: nothing changes, so the web UI and SMB never disagree.
    let mut script = Script::new(&["2", "new password 456", "new password 456", "0"]);
    let mut host = FakeHost {
        samba_fails: true,
        ..Default::default()
    };
    Console::new(&s, &mut script, &mut host).run().unwrap();
    assert!(
        script
            .output
            .contains("SMB password could not be set, so nothing changed"),
        "{}",
        script.output
    );
    {
        let conn = pinas_core::db::open(&s.db_path).unwrap();
        assert!(
            pinas_core::auth::check_login(&conn, "admin", "old password 123")
                .unwrap()
                .is_some()
        );
    }

    let mut script = Script::new(&["2", "new password 456", "new password 456", "0"]);
    let mut host = FakeHost::default();
    Console::new(&s, &mut script, &mut host).run().unwrap();
    let out = script.output;
    assert!(out.contains("Password of admin changed"), "{out}");
    assert_eq!(
        host.samba,
        vec![("admin".to_string(), "new password 456".to_string())],
        "the SMB password follows"
    );
    let conn = pinas_core::db::open(&s.db_path).unwrap();
    assert!(
        pinas_core::auth::check_login(&conn, "admin", "new password 456")
            .unwrap()
            .is_some()
    );
    assert!(
        pinas_core::auth::check_login(&conn, "admin", "old password 123")
            .unwrap()
            .is_none()
    );
}

#[test]
fn shell_entry_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let (_, cmds) = session(&s, &["7"]);
    assert_eq!(cmds, vec!["shell"]);
}
