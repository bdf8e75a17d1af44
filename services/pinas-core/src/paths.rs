//! Paths derived from the configuration, so every role finds the same files.

use std::path::PathBuf;

use crate::config::Config;

/// Where PiNAS keeps and finds its files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<state>`: database, secrets, rendered configs.
    pub state_dir: PathBuf,
    /// The SQLite database.
    pub db: PathBuf,
    /// Root folder where shares may live besides mounted data disks.
    pub shares_root: PathBuf,
    /// Data filesystems are mounted at `<disks_dir>/<label or uuid>`.
    pub disks_dir: PathBuf,
    /// Role sockets: `<run_dir>/<role>.sock`.
    pub run_dir: PathBuf,
    /// Samba's files (smb.conf, passdb, locks): `<state>/samba`.
    pub samba_dir: PathBuf,
}

impl Paths {
    /// Derives the paths from `cfg`.
    pub fn new(cfg: &Config) -> Self {
        let state = cfg.paths.state_dir.clone();
        Paths {
            db: cfg.db_path(),
            shares_root: cfg.paths.shares_root.clone(),
            disks_dir: cfg.paths.disks_dir.clone(),
            run_dir: cfg.paths.run_dir.clone(),
            samba_dir: state.join("samba"),
            state_dir: state,
        }
    }

    /// The control socket of `role`, e.g. `/run/pinas/dns.sock`.
    pub fn role_socket(&self, role: &str) -> PathBuf {
        self.run_dir.join(format!("{role}.sock"))
    }
}
