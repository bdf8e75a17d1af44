//! `pinas console`: the status and recovery menu on the serial console.
//!
//! It is what the serial port of a PiNAS box shows, with no login: the serial getty
//! starts it (`serial-getty@.service.d/pinas-console.conf` in the image). Status
//! (version, slot, addresses, the URL of the setup wizard and, while setup is pending,
//! the setup code it asks for; the state of the PiNAS units), an admin password reset
//! (web UI and SMB alike), a static network address (or DHCP again), a reboot, a
//! factory reset after a typed confirmation, and a root shell.
//!
//! It is not a second configuration UI: everything else is done in the web UI. Side
//! effects on the machine go through [`Host`] and all input and output through
//! [`Terminal`], so the menu runs in tests with scripted input and a fake host.

pub mod network;

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use network::StaticAddress;

/// The text a person must type to confirm a factory reset.
pub const FACTORY_RESET_CONFIRMATION: &str = "ERASE";

/// Marker file on the storage partition; the initramfs wipes the partition at the next
/// boot when it is present (see `image/initramfs/init`).
pub const FACTORY_RESET_MARKER: &str = ".factory-reset";

/// Errors of the console. Every variant's text is shown to the person at the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Input that cannot be used, with the reason.
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed: what was being done, and the I/O error.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// A command (reboot, networkctl) could not run or failed.
    #[error("{0}")]
    Command(String),
    /// The PiNAS database refused an operation.
    #[error("{0}")]
    Core(String),
}

/// Where the console finds and puts things. [`Settings::device`] gives the device paths.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Version shown in the status, e.g. `0.1.0`.
    pub version: String,
    /// The PiNAS SQLite database (users and passwords).
    pub db_path: PathBuf,
    /// systemd-networkd's folder for local files (`/etc/systemd/network`, kept on /storage).
    pub network_dir: PathBuf,
    /// The storage partition's mount point (`/storage`).
    pub storage_dir: PathBuf,
    /// Boot facts written by the initramfs (`/run/pinas/boot`: slot, disk, partitions).
    pub boot_info: PathBuf,
    /// The host name file (`/etc/hostname`).
    pub hostname_file: PathBuf,
    /// The PiNAS state folder, where the setup code is while setup is pending.
    pub state_dir: PathBuf,
}

impl Settings {
    /// Device paths, with the database location taken from the PiNAS configuration.
    pub fn device(config: &pinas_core::config::Config) -> Settings {
        Settings {
            version: std::fs::read_to_string("/usr/lib/pinas/version")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string()),
            db_path: config.db_path(),
            network_dir: "/etc/systemd/network".into(),
            storage_dir: "/storage".into(),
            boot_info: "/run/pinas/boot".into(),
            hostname_file: "/etc/hostname".into(),
            state_dir: config.paths.state_dir.clone(),
        }
    }
}

/// The machine the console acts on.
pub trait Host {
    /// Non-loopback addresses as (interface, address), IPv4 first.
    fn addresses(&self) -> Vec<(String, IpAddr)>;
    /// PiNAS-related systemd units as (unit, state such as `active (running)`).
    fn units(&self) -> Vec<(String, String)>;
    /// Runs a command to completion.
    ///
    /// # Errors
    /// [`ConsoleError::Command`] when it cannot start or exits non-zero.
    fn run(&mut self, argv: &[&str]) -> Result<(), ConsoleError>;
    /// Gives the account `name` the Samba (SMB) password `password`, so SMB and the web
    /// UI keep one password.
    ///
    /// # Errors
    /// [`ConsoleError::Command`] when Samba's tools fail.
    fn set_samba_password(&mut self, name: &str, password: &str) -> Result<(), ConsoleError>;
    /// Replaces the menu with a root login shell (on the device it does not return on
    /// success).
    ///
    /// # Errors
    /// [`ConsoleError::Command`] when no shell can be started.
    fn shell(&mut self) -> Result<(), ConsoleError>;
}

/// Where the menu reads and writes.
pub trait Terminal {
    /// Prints `prompt` and reads one line without its newline; `None` at end of input.
    fn line(&mut self, prompt: &str) -> Option<String>;
    /// Like [`Terminal::line`] but without echo (passwords).
    fn secret(&mut self, prompt: &str) -> Option<String>;
    /// Prints text as is.
    fn print(&mut self, text: &str);
}

/// Sets an account's Samba password: `(name, password)`, an error message on failure.
pub type SambaPasswordSetter = Box<dyn Fn(&str, &str) -> Result<(), String>>;

/// The real machine: sysinfo for addresses, systemctl for units, `exec` for the shell,
/// and the Samba password setter the binary wires in (pinas-shares' Samba tools, the
/// same code that sets passwords from the web UI).
pub struct SystemHost {
    /// Sets Samba passwords.
    pub samba_password: SambaPasswordSetter,
}

/// Units listed in the status besides `pinas-*`.
const OTHER_UNITS: &[&str] = &[
    "systemd-networkd.service",
    "avahi-daemon.service",
    "ssh.service",
    "smbd.service",
    "nmbd.service",
    "wsdd2.service",
];

impl Host for SystemHost {
    fn addresses(&self) -> Vec<(String, IpAddr)> {
        let nets = sysinfo::Networks::new_with_refreshed_list();
        let mut out: Vec<(String, IpAddr)> = nets
            .iter()
            .flat_map(|(name, data)| {
                data.ip_networks()
                    .iter()
                    .map(move |n| (name.clone(), n.addr))
                    .collect::<Vec<_>>()
            })
            .filter(|(_, a)| !a.is_loopback())
            .filter(|(_, a)| match a {
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                IpAddr::V4(_) => true,
            })
            .collect();
        out.sort_by_key(|(n, a)| (a.is_ipv6(), n.clone(), *a));
        out
    }

    fn units(&self) -> Vec<(String, String)> {
        let mut args = vec![
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--type=service",
            "pinas-*",
        ];
        args.extend_from_slice(OTHER_UNITS);
        let Ok(out) = Command::new("systemctl").args(&args).output() else {
            return Vec::new();
        };
        parse_list_units(&String::from_utf8_lossy(&out.stdout))
    }

    fn run(&mut self, argv: &[&str]) -> Result<(), ConsoleError> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| ConsoleError::Command("empty command".into()))?;
        let status = Command::new(prog)
            .args(args)
            .status()
            .map_err(|e| ConsoleError::Command(format!("cannot run {prog}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(ConsoleError::Command(format!(
                "{} failed ({status})",
                argv.join(" ")
            )))
        }
    }

    fn set_samba_password(&mut self, name: &str, password: &str) -> Result<(), ConsoleError> {
        (self.samba_password)(name, password).map_err(ConsoleError::Command)
    }

    fn shell(&mut self) -> Result<(), ConsoleError> {
        use std::os::unix::process::CommandExt as _;
        let err = Command::new("/bin/bash").arg("-l").exec();
        Err(ConsoleError::Command(format!(
            "cannot start /bin/bash: {err}"
        )))
    }
}

/// Parses `systemctl list-units --plain --no-legend` lines into (unit, "active (sub)").
pub fn parse_list_units(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let unit = f.next()?.trim_start_matches('●').to_string();
            let _load = f.next()?;
            let active = f.next()?;
            let sub = f.next()?;
            Some((unit, format!("{active} ({sub})")))
        })
        .collect()
}

/// Standard input and output; secrets are read from the terminal without echo.
pub struct StdTerminal;

impl Terminal for StdTerminal {
    fn line(&mut self, prompt: &str) -> Option<String> {
        print!("{prompt}");
        let _ = io::stdout().flush();
        let mut s = String::new();
        match io::stdin().lock().read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    fn secret(&mut self, prompt: &str) -> Option<String> {
        rpassword::prompt_password(prompt).ok()
    }

    fn print(&mut self, text: &str) {
        print!("{text}");
        let _ = io::stdout().flush();
    }
}

/// The menu itself.
pub struct Console<'a, T: Terminal, H: Host> {
    settings: &'a Settings,
    term: T,
    host: H,
}

impl<'a, T: Terminal, H: Host> Console<'a, T, H> {
    /// A console on `term` acting on `host`.
    pub fn new(settings: &'a Settings, term: T, host: H) -> Self {
        Console {
            settings,
            term,
            host,
        }
    }

    /// Shows the menu until the person logs out (or input ends).
    ///
    /// Errors of single actions are shown and the menu goes on; only a failure to start a
    /// shell is returned.
    pub fn run(&mut self) -> Result<(), ConsoleError> {
        let status = self.status();
        self.term.print(&status);
        loop {
            self.term.print(MENU);
            let Some(choice) = self.term.line("Choose [0-7]: ") else {
                return Ok(());
            };
            let result = match choice.trim() {
                "1" => {
                    let s = self.status();
                    self.term.print(&s);
                    Ok(())
                }
                "2" => self.reset_admin_password(),
                "3" => self.set_static_address(),
                "4" => self.use_dhcp(),
                "5" => self.reboot(),
                "6" => self.factory_reset(),
                "7" => return self.host.shell(),
                "0" | "q" | "exit" | "logout" => return Ok(()),
                "" => Ok(()),
                other => Err(ConsoleError::Invalid(format!(
                    "{other:?} is not a menu entry"
                ))),
            };
            if let Err(e) = result {
                self.term.print(&format!("Error: {e}\n"));
            }
        }
    }

    /// The status text: version, slot, addresses, wizard URL, units.
    pub fn status(&self) -> String {
        let s = self.settings;
        let host = std::fs::read_to_string(&s.hostname_file)
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "pinas".into());
        let slot = boot_value(&s.boot_info, "slot").unwrap_or_else(|| "?".into());
        let mut out = String::new();
        let _ = writeln!(out, "\nPiNAS {} on {host} (system slot {slot})", s.version);
        let addrs = self.host.addresses();
        if addrs.is_empty() {
            let _ = writeln!(
                out,
                "Addresses: none yet (no network, or DHCP has not answered)"
            );
        } else {
            let _ = writeln!(out, "Addresses:");
            for (n, a) in &addrs {
                let _ = writeln!(out, "  {n:<10} {a}");
            }
        }
        let url = match addrs.iter().find(|(_, a)| a.is_ipv4()).or(addrs.first()) {
            Some((_, IpAddr::V6(a))) => format!("https://[{a}]/"),
            Some((_, a)) => format!("https://{a}/"),
            None => format!("https://{host}.local/"),
        };
        let _ = writeln!(
            out,
            "Setup wizard and web UI: {url}  (or https://{host}.local/)"
        );
        if let Some(code) = pinas_core::auth::SetupCode::load(&s.state_dir) {
            let _ = writeln!(
                out,
                "Setup code: {}  (the setup wizard asks for it; it works once)",
                code.grouped()
            );
        }
        let units = self.host.units();
        if !units.is_empty() {
            let _ = writeln!(out, "Services:");
            for (u, st) in units {
                let _ = writeln!(out, "  {u:<32} {st}");
            }
        }
        out
    }

    fn ask(&mut self, prompt: &str) -> Result<String, ConsoleError> {
        self.term
            .line(prompt)
            .map(|s| s.trim().to_string())
            .ok_or_else(|| ConsoleError::Invalid("input ended".into()))
    }

    fn confirm(&mut self, prompt: &str) -> Result<bool, ConsoleError> {
        Ok(matches!(
            self.ask(prompt)?.to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }

    /// Sets a new password for an admin account (asks which if there are several).
    fn reset_admin_password(&mut self) -> Result<(), ConsoleError> {
        let db = &self.settings.db_path;
        if !db.exists() {
            return Err(ConsoleError::Invalid(
                "there is no admin account yet: finish the setup wizard in a browser first".into(),
            ));
        }
        let conn = pinas_core::db::open(db)
            .map_err(|e| ConsoleError::Core(format!("cannot open {}: {e}", db.display())))?;
        let admins = pinas_core::auth::admins(&conn)
            .map_err(|e| ConsoleError::Core(format!("cannot read users: {e}")))?;
        let name = match admins.as_slice() {
            [] => {
                return Err(ConsoleError::Invalid(
                    "there is no admin account yet: finish the setup wizard in a browser first"
                        .into(),
                ))
            }
            [one] => one.clone(),
            many => {
                self.term
                    .print(&format!("Admin accounts: {}\n", many.join(", ")));
                let n = self.ask("Which account? ")?;
                if !many.contains(&n) {
                    return Err(ConsoleError::Invalid(format!(
                        "{n:?} is not an admin account"
                    )));
                }
                n
            }
        };
        let p1 = self
            .term
            .secret(&format!("New password for {name}: "))
            .unwrap_or_default();
        let p2 = self.term.secret("Repeat it: ").unwrap_or_default();
        if p1 != p2 {
            return Err(ConsoleError::Invalid(
                "the two passwords differ; nothing changed".into(),
            ));
        }
        // One transaction around both, so the web UI's password changes only if Samba's
        // did too: the two never disagree.
        let mut conn = conn;
        let tx = conn
            .transaction()
            .map_err(|e| ConsoleError::Core(format!("cannot change the password: {e}")))?;
        pinas_core::auth::set_password(&tx, &name, &p1)
            .map_err(|e| ConsoleError::Core(e.message.clone()))?;
        self.host.set_samba_password(&name, &p1).map_err(|e| {
            ConsoleError::Command(format!(
                "the SMB password could not be set, so nothing changed: {e}"
            ))
        })?;
        tx.commit()
            .map_err(|e| ConsoleError::Core(format!("cannot change the password: {e}")))?;
        self.term.print(&format!(
            "Password of {name} changed for the web UI and SMB; its sessions were ended.\n"
        ));
        Ok(())
    }

    fn set_static_address(&mut self) -> Result<(), ConsoleError> {
        let default_if = self
            .host
            .addresses()
            .into_iter()
            .map(|(n, _)| n)
            .next()
            .unwrap_or_else(|| "eth0".into());
        let iface = self.ask(&format!("Interface [{default_if}]: "))?;
        let interface = if iface.is_empty() { default_if } else { iface };
        network::check_interface(&interface)?;
        let (address, prefix_len) =
            network::parse_cidr(&self.ask("Address with prefix (e.g. 192.168.1.20/24): ")?)?;
        let gw = self.ask("Gateway (empty for none): ")?;
        let gateway = if gw.is_empty() {
            None
        } else {
            Some(network::parse_ip(&gw)?)
        };
        let dns_text = self.ask("DNS servers, separated by spaces (empty for none): ")?;
        let dns = dns_text
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(network::parse_ip)
            .collect::<Result<Vec<_>, _>>()?;
        let cfg = StaticAddress {
            interface,
            address,
            prefix_len,
            gateway,
            dns,
        };
        cfg.validate()?;
        self.term.print(&format!("\n{}\n", cfg.render()));
        if !self.confirm("Apply this? [y/N]: ")? {
            self.term.print("Nothing changed.\n");
            return Ok(());
        }
        cfg.write(&self.settings.network_dir)?;
        self.apply_network(&cfg.interface)?;
        self.term.print(&format!(
            "Static address {}/{} set on {}. The web UI is at https://{}/\n",
            cfg.address, cfg.prefix_len, cfg.interface, cfg.address
        ));
        Ok(())
    }

    fn use_dhcp(&mut self) -> Result<(), ConsoleError> {
        if network::remove_static(&self.settings.network_dir)? {
            self.apply_network("")?;
            self.term
                .print("Static address removed: DHCP is used again.\n");
        } else {
            self.term
                .print("No static address was set: DHCP is already in use.\n");
        }
        Ok(())
    }

    fn apply_network(&mut self, iface: &str) -> Result<(), ConsoleError> {
        self.host.run(&["networkctl", "reload"])?;
        if !iface.is_empty() {
            self.host.run(&["networkctl", "reconfigure", iface])?;
        }
        Ok(())
    }

    fn reboot(&mut self) -> Result<(), ConsoleError> {
        if self.confirm("Reboot now? [y/N]: ")? {
            self.term.print("Rebooting.\n");
            self.host.run(&["systemctl", "reboot"])?;
        }
        Ok(())
    }

    fn factory_reset(&mut self) -> Result<(), ConsoleError> {
        self.term.print(
            "A factory reset erases everything on the storage partition: accounts, settings,\n\
             shares on the SD card, keys and certificates. Data disks are not touched.\n",
        );
        let typed = self.ask(&format!("Type {FACTORY_RESET_CONFIRMATION} to confirm: "))?;
        if typed != FACTORY_RESET_CONFIRMATION {
            self.term.print("Not confirmed; nothing changed.\n");
            return Ok(());
        }
        request_factory_reset(&self.settings.storage_dir)?;
        self.term
            .print("Factory reset requested: the storage partition is wiped during this reboot.\n");
        self.host.run(&["systemctl", "reboot"])
    }
}

/// Writes the factory-reset marker on the storage partition (atomically), so the
/// initramfs wipes the partition at the next boot.
///
/// # Errors
/// [`ConsoleError::Io`] when the marker cannot be written.
pub fn request_factory_reset(storage_dir: &Path) -> Result<(), ConsoleError> {
    let p = storage_dir.join(FACTORY_RESET_MARKER);
    pinas_core::fsutil::write_atomic(&p, b"requested by pinas console\n", 0o600)
        .map_err(|e| ConsoleError::Io(format!("cannot write {}", p.display()), e))
}

/// Reads `key` from a `key=value` file such as `/run/pinas/boot`.
pub fn boot_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix('=')
            .map(|v| v.trim().to_string())
    })
}

const MENU: &str = "
  1) Status
  2) Reset the admin password
  3) Set a static network address
  4) Use DHCP again (remove the static address)
  5) Reboot
  6) Factory reset (erase /storage)
  7) Root shell
  0) Log out
";

/// Runs the menu on standard input/output against the real machine; `samba_password`
/// sets Samba passwords (the binary passes pinas-shares' Samba tools).
///
/// # Errors
/// As [`Console::run`].
pub fn run(
    config: &pinas_core::config::Config,
    samba_password: SambaPasswordSetter,
) -> Result<(), ConsoleError> {
    let settings = Settings::device(config);
    Console::new(&settings, StdTerminal, SystemHost { samba_password }).run()
}

#[cfg(test)]
mod tests;
