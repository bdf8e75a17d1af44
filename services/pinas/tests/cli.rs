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
    for cmd in ["dev", "web", "dns", "companion"] {
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

/// The image enables `pinas roles --units`: each is a unit file in the rootfs overlay that
/// starts its role's subcommand, and no unit in the overlay starts a `pinas` subcommand
/// that the registry does not list (a role that does not exist).
#[test]
fn rootfs_units_match_the_role_registry() {
    let units_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../rootfs/usr/lib/systemd/system");
    let out = pinas().args(["roles", "--units"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let units: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        units.contains(&"pinas-web.service".to_string()),
        "{units:?}"
    );
    for unit in &units {
        let role = unit
            .strip_prefix("pinas-")
            .and_then(|u| u.strip_suffix(".service"))
            .unwrap_or_else(|| panic!("unexpected unit name {unit}"));
        let text = std::fs::read_to_string(units_dir.join(unit))
            .unwrap_or_else(|e| panic!("{unit} is not in the rootfs overlay: {e}"));
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("ExecStart=/usr/bin/pinas {role}")),
            "{unit} does not start `pinas {role}`"
        );
    }
    for entry in std::fs::read_dir(&units_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            // Drop-in folders such as serial-getty@.service.d.
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if text.contains("ExecStart=/usr/bin/pinas ") {
            assert!(
                units.contains(&name),
                "{name} starts a pinas role that the registry does not list"
            );
        }
    }
}

#[test]
fn roles_lists_units_per_setup_role_and_refuses_unknown_ones() {
    let run = |args: &[&str]| {
        let out = pinas().arg("roles").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["--units", "companion"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "pinas-web.service\npinas-dns.service\npinas-companion.service\npinas-power.service\n"
    );
    let (code, out, _) = run(&["--units", "nas"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "pinas-web.service\npinas-dns.service\npinas-power.service\n"
    );
    let (code, out, _) = run(&[]);
    assert_eq!(code, Some(0));
    for role in ["web", "dns", "companion", "power", "storage", "shares"] {
        assert!(out.lines().any(|l| l.starts_with(role)), "{role}: {out}");
    }
    // A role is not a setup role.
    let (code, out, err) = run(&["--units", "power"]);
    assert_eq!(code, Some(64));
    assert!(out.is_empty() && err.contains("\"power\""), "{err}");
}
