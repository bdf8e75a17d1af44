//! `config.toml`: PiNAS settings, their defaults, and environment overrides.
//!
//! The file lives at `<state>/config.toml` (`/storage/.pinas/config.toml` on the device)
//! unless `PINAS_CONFIG_PATH` names another. Every key is optional; a missing file means
//! all defaults. Sections this crate does not know (`[dns]`, `[power]`, ...) belong to
//! their roles, which read them with [`Config::section`].
//!
//! ```toml
//! [paths]
//! state_dir = "/storage/.pinas"     # database, secrets, rendered configs
//! db_path = "/storage/.pinas/pinas.db"
//! shares_root = "/storage/shares"   # shares may live here or on a mounted data disk
//! disks_dir = "/storage/disks"      # data filesystems are mounted under it
//!
//! [web]
//! bind_address = "0.0.0.0:80"       # plain HTTP (redirects to HTTPS when TLS is set)
//! https_address = "0.0.0.0:443"     # only used when tls_cert and tls_key exist
//! tls_cert = "/storage/.pinas/tls/cert.pem"
//! tls_key = "/storage/.pinas/tls/key.pem"
//! static_dir = "/usr/share/pinas/www"
//!
//! [log]
//! level = "info"                    # error, warn, info, debug, trace or a filter
//! path = "/storage/.pinas/logs/pinas.log"   # optional; stderr always
//!
//! [smb]
//! enabled = true
//! port = 445
//! ```
//!
//! Environment overrides (highest precedence): `PINAS_CONFIG_PATH`, `PINAS_DB_PATH`,
//! `PINAS_LOG_PATH`, `PINAS_LOG_LEVEL`, `PINAS_BIND_ADDRESS`, `PINAS_SHARES_ROOT`,
//! `PINAS_WEB_DIR`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A configuration that cannot be used; the message names the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has the wrong type.
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key (from the file or the environment) has a value PiNAS cannot use.
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// How the process runs: on the device (system paths) or in development (one folder).
#[derive(Debug, Clone)]
pub enum Mode {
    /// System paths under `/storage` and `/usr/share/pinas`.
    Device,
    /// Everything under `state_dir`, API on localhost, Samba on a high port.
    Dev { state_dir: PathBuf },
}

/// `[paths]`: where state lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    pub state_dir: PathBuf,
    pub db_path: Option<PathBuf>,
    pub shares_root: PathBuf,
    pub disks_dir: PathBuf,
    pub run_dir: PathBuf,
}

/// `[web]`: the HTTP API and UI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub bind_address: String,
    pub https_address: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub static_dir: PathBuf,
}

/// `[log]`: log level and optional log file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub path: Option<PathBuf>,
}

/// `[smb]`: the Samba server PiNAS manages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbConfig {
    pub enabled: bool,
    pub port: u16,
}

/// The whole configuration after defaults, file and environment are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub paths: PathsConfig,
    pub web: WebConfig,
    pub log: LogConfig,
    pub smb: SmbConfig,
    /// Sections owned by other roles, read with [`Config::section`].
    #[serde(flatten)]
    pub other: toml::Table,
    /// Where the file was (or would be) read from.
    #[serde(skip)]
    pub source: PathBuf,
    /// True in `pinas dev`.
    #[serde(skip)]
    pub dev: bool,
}

#[derive(Deserialize, Default)]
struct FileConfig {
    paths: Option<toml::Value>,
    web: Option<toml::Value>,
    log: Option<toml::Value>,
    smb: Option<toml::Value>,
    #[serde(flatten)]
    other: toml::Table,
}

impl Config {
    /// The defaults for `mode`, before any file or environment.
    pub fn defaults(mode: &Mode) -> Config {
        match mode {
            Mode::Device => Config {
                paths: PathsConfig {
                    state_dir: "/storage/.pinas".into(),
                    db_path: None,
                    shares_root: "/storage/shares".into(),
                    disks_dir: "/storage/disks".into(),
                    run_dir: "/run/pinas".into(),
                },
                web: WebConfig {
                    bind_address: "0.0.0.0:80".into(),
                    https_address: "0.0.0.0:443".into(),
                    tls_cert: "/storage/.pinas/tls/cert.pem".into(),
                    tls_key: "/storage/.pinas/tls/key.pem".into(),
                    static_dir: "/usr/share/pinas/www".into(),
                },
                log: LogConfig {
                    level: "info".into(),
                    path: None,
                },
                smb: SmbConfig {
                    enabled: true,
                    port: 445,
                },
                other: toml::Table::new(),
                source: "/storage/.pinas/config.toml".into(),
                dev: false,
            },
            Mode::Dev { state_dir } => Config {
                paths: PathsConfig {
                    state_dir: state_dir.clone(),
                    db_path: None,
                    shares_root: state_dir.join("shares"),
                    disks_dir: state_dir.join("disks"),
                    run_dir: state_dir.join("run"),
                },
                web: WebConfig {
                    bind_address: "127.0.0.1:3000".into(),
                    https_address: String::new(),
                    tls_cert: state_dir.join("tls/cert.pem"),
                    tls_key: state_dir.join("tls/key.pem"),
                    static_dir: "web/build".into(),
                },
                log: LogConfig {
                    level: "info".into(),
                    path: None,
                },
                smb: SmbConfig {
                    enabled: true,
                    port: 4445,
                },
                other: toml::Table::new(),
                source: state_dir.join("config.toml"),
                dev: true,
            },
        }
    }

    /// Loads the configuration for `mode` from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or parsed, or a value is invalid.
    pub fn load(mode: &Mode) -> Result<Config, ConfigError> {
        Self::load_with_env(mode, |k| std::env::var(k).ok())
    }

    /// Like [`Config::load`], with the environment given as a lookup function (for tests).
    pub fn load_with_env(
        mode: &Mode,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Self::defaults(mode);
        if let Some(p) = env("PINAS_CONFIG_PATH") {
            cfg.source = PathBuf::from(p);
        }
        match std::fs::read_to_string(&cfg.source) {
            Ok(text) => cfg.merge_file(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ConfigError::Read {
                    path: cfg.source.clone(),
                    source,
                })
            }
        }
        if let Some(v) = env("PINAS_DB_PATH") {
            cfg.paths.db_path = Some(v.into());
        }
        if let Some(v) = env("PINAS_SHARES_ROOT") {
            cfg.paths.shares_root = v.into();
        }
        if let Some(v) = env("PINAS_BIND_ADDRESS") {
            cfg.web.bind_address = v;
        }
        if let Some(v) = env("PINAS_WEB_DIR") {
            cfg.web.static_dir = v.into();
        }
        if let Some(v) = env("PINAS_LOG_LEVEL") {
            cfg.log.level = v;
        }
        if let Some(v) = env("PINAS_LOG_PATH") {
            cfg.log.path = Some(v.into());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn merge_file(&mut self, text: &str) -> Result<(), ConfigError> {
        let path = self.source.clone();
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string().trim().replace('\n', " "),
        };
        let file: FileConfig = toml::from_str(text).map_err(parse_err)?;
        fn overlay<T: Serialize + DeserializeOwned>(
            base: &mut T,
            v: Option<toml::Value>,
            section: &str,
            path: &Path,
        ) -> Result<(), ConfigError> {
            let Some(v) = v else { return Ok(()) };
            let toml::Value::Table(over) = v else {
                return Err(ConfigError::Invalid {
                    key: section.into(),
                    value: v.to_string(),
                    reason: "expected a table".into(),
                });
            };
            let mut merged = toml::Value::try_from(&*base).expect("config serializes");
            // Apply key by key so an error names the exact key and value.
            for (k, val) in over {
                let table = merged.as_table_mut().expect("config is a table");
                table.insert(k.clone(), val.clone());
                if let Err(e) = T::deserialize(merged.clone()) {
                    return Err(ConfigError::Invalid {
                        key: format!("{section}.{k}"),
                        value: val.to_string(),
                        reason: format!("{} (in {})", e.message(), path.display()),
                    });
                }
            }
            *base = T::deserialize(merged).expect("checked above");
            Ok(())
        }
        overlay(&mut self.paths, file.paths, "paths", &path)?;
        overlay(&mut self.web, file.web, "web", &path)?;
        overlay(&mut self.log, file.log, "log", &path)?;
        overlay(&mut self.smb, file.smb, "smb", &path)?;
        self.other = file.other;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        };
        if self.web.bind_address.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "web.bind_address (PINAS_BIND_ADDRESS)",
                &self.web.bind_address,
                "expected IP:port, e.g. 127.0.0.1:3000",
            ));
        }
        if !self.web.https_address.is_empty()
            && self.web.https_address.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "web.https_address",
                &self.web.https_address,
                "expected IP:port or an empty string",
            ));
        }
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        let lvl = self.log.level.as_str();
        let is_filter = lvl.contains('=') || LEVELS.contains(&lvl);
        if !is_filter {
            return Err(invalid(
                "log.level (PINAS_LOG_LEVEL)",
                lvl,
                "expected error, warn, info, debug or trace",
            ));
        }
        if self.smb.port == 0 {
            return Err(invalid("smb.port", "0", "expected a port from 1 to 65535"));
        }
        for (key, p) in [
            ("paths.state_dir", &self.paths.state_dir),
            (
                "paths.shares_root (PINAS_SHARES_ROOT)",
                &self.paths.shares_root,
            ),
            ("paths.disks_dir", &self.paths.disks_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(invalid(key, "", "expected a path"));
            }
        }
        Ok(())
    }

    /// The database file: `paths.db_path`, or `<state_dir>/pinas.db`.
    pub fn db_path(&self) -> PathBuf {
        self.paths
            .db_path
            .clone()
            .unwrap_or_else(|| self.paths.state_dir.join("pinas.db"))
    }

    /// Reads a role's own section (e.g. `[dns]`) into `T`; a missing section gives
    /// `T::default()`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the section when it does not match `T`.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        match self.other.get(name) {
            None => Ok(T::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    key: format!("[{name}]"),
                    value: v.to_string(),
                    reason: e.message().to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(dir: &Path) -> Mode {
        Mode::Dev {
            state_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn missing_file_gives_dev_defaults() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load_with_env(&dev(d.path()), |_| None).unwrap();
        assert_eq!(c.web.bind_address, "127.0.0.1:3000");
        assert_eq!(c.smb.port, 4445);
        assert_eq!(c.db_path(), d.path().join("pinas.db"));
    }

    #[test]
    fn file_then_env_override() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.toml"),
            "[smb]\nport = 5445\n[web]\nbind_address = \"127.0.0.1:4000\"\n[dns]\nlisten = \"127.0.0.1:5353\"\n",
        )
        .unwrap();
        let c = Config::load_with_env(&dev(d.path()), |k| {
            (k == "PINAS_BIND_ADDRESS").then(|| "127.0.0.1:4001".to_string())
        })
        .unwrap();
        assert_eq!(c.smb.port, 5445);
        assert_eq!(c.web.bind_address, "127.0.0.1:4001");
        #[derive(Deserialize, Default)]
        struct Dns {
            listen: String,
        }
        assert_eq!(c.section::<Dns>("dns").unwrap().listen, "127.0.0.1:5353");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let d = tempfile::tempdir().unwrap();
        let e = Config::load_with_env(&dev(d.path()), |k| {
            (k == "PINAS_BIND_ADDRESS").then(|| "nowhere".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("web.bind_address") && e.contains("nowhere"),
            "{e}"
        );

        std::fs::write(d.path().join("config.toml"), "[smb]\nport = \"many\"\n").unwrap();
        let e = Config::load_with_env(&dev(d.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("smb") && e.contains("port"), "{e}");

        std::fs::write(d.path().join("config.toml"), "[web\nbind_address=").unwrap();
        let e = Config::load_with_env(&dev(d.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.toml"), "{e}");

        std::fs::write(d.path().join("config.toml"), "[web]\nbind_adress = \"x\"\n").unwrap();
        let e = Config::load_with_env(&dev(d.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bind_adress"), "{e}");
    }
}
