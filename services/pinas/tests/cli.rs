//! The `pinas` binary's command line: version, help, and start-up refusing bad config.

use std::process::Command;

fn pinas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pinas"))
}

#[test]
fn version_and_help() {
    let out = pinas().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pinas {}", env!("CARGO_PKG_VERSION"))
    );
    let out = pinas().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["dev", "web", "dns"] {
        assert!(help.contains(cmd), "--help does not list {cmd}: {help}");
    }
}

fn dev_with_config(config: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let out = pinas()
        .arg("dev")
        .arg("--state")
        .arg(dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let before = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert_eq!(before, config, "start-up must not rewrite config.toml");
    assert!(
        !dir.path().join("pinas.db").exists(),
        "a refused start must not create state"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_config_stops_start_up_naming_key_and_value() {
    let (code, err) = dev_with_config("[smb]\nport = \"many\"\n", &[]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("smb.port") && err.contains("many"), "{err}");

    let (code, err) = dev_with_config("[web\nbind_address =", &[]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("config.toml") && err.contains("not valid"),
        "{err}"
    );

    let (code, err) = dev_with_config("", &[("PINAS_BIND_ADDRESS", "localhost")]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("PINAS_BIND_ADDRESS") && err.contains("localhost"),
        "{err}"
    );

    let (code, err) = dev_with_config("", &[("PINAS_LOG_LEVEL", "chatty")]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("log.level") && err.contains("chatty"), "{err}");
}
