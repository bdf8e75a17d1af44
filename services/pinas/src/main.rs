//! `pinas`: the PiNAS multi-call binary. It parses arguments and wires the role crates
//! together; every capability lives in a library crate under `services/`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pinas_core::config::{Config, Mode};

mod run;

#[derive(Parser)]
#[command(
    name = "pinas",
    version,
    about = "PiNAS appliance services",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process with state in a local folder (development).
    Dev {
        /// State folder (database, config.toml, Samba files, mounts).
        #[arg(long, default_value = ".pinas-dev")]
        state: PathBuf,
        /// Also run a fake Tapo P110 on loopback, added as the NAS's plug, so the power
        /// role has data to show.
        #[arg(long)]
        demo_plug: bool,
    },
    /// Run the web role: HTTP(S) API and UI (pinas-web.service).
    Web,
    /// Run the DNS role: DNS on dns.listen (UDP+TCP, default 0.0.0.0:53) with blocklists,
    /// local records and the switch record (pinas-dns.service).
    Dns,
    /// Run the companion role: Wake-on-LAN, heartbeat and handshake with the big NAS, its
    /// snapshot, and the DNS switch that follows it (pinas-companion.service).
    Companion,
    /// Run the power role: Tapo P110 plugs polled over KLAP, power and energy history,
    /// NAS running time and cost (pinas-power.service).
    Power,
    /// On the big NAS: tell its companion about shutdowns and starts (pinas-agent.service
    /// runs `coming-online` at boot and `going-offline` at shutdown).
    Agent {
        /// The agent's settings (companion_url, token_file, timeout_secs).
        #[arg(long, default_value = pinas_companion::agent::CONFIG_PATH)]
        config: PathBuf,
        #[command(subcommand)]
        action: AgentAction,
    },
    /// Serial console menu: status, admin password reset, network, reboot, factory reset.
    Console,
    /// List the roles PiNAS has (name, where it runs, systemd unit, setup roles that run
    /// it), or with `--units` only the systemd units to enable.
    Roles {
        /// Print only the units of the roles the given setup roles run, one per line
        /// (every role's unit when none is given); the image build enables these.
        #[arg(long)]
        units: bool,
        /// Setup roles: `nas`, `companion`.
        #[arg(value_name = "SETUP_ROLE")]
        setup: Vec<String>,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum AgentAction {
    /// Send the snapshot and nas-going-offline; wait for the acknowledgement (at most the
    /// timeout: the shutdown goes on either way).
    GoingOffline,
    /// Send nas-coming-online, retrying until the timeout while the network comes up.
    ComingOnline,
    /// Send the snapshot only.
    Snapshot,
}

/// `pinas agent`: runs on the big NAS, not on a PiNAS companion, so it needs no PiNAS
/// configuration. Exits 0 when the companion acknowledged, 1 otherwise (logged); a
/// going-offline that fails still lets the shutdown go on, since it never waits longer
/// than the timeout.
fn agent(config: &std::path::Path, action: AgentAction) -> std::process::ExitCode {
    use pinas_companion::agent::{collect, Agent, AgentConfig};
    init_logging(&Config::defaults(&Mode::Device));
    let agent = match AgentConfig::load(config).and_then(|c| Agent::new(&c)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pinas agent: {e}");
            return std::process::ExitCode::from(78); // EX_CONFIG
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let smb_conf = std::path::Path::new("/etc/samba/smb.conf");
    let result = rt.block_on(async {
        match action {
            AgentAction::GoingOffline => agent.going_offline(&collect(smb_conf)).await.map(|ack| {
                format!(
                    "the companion acknowledged; the DNS switch points at it ({})",
                    ack["dns_switch"]["addresses"]
                )
            }),
            AgentAction::ComingOnline => agent.coming_online().await.map(|ack| {
                format!(
                    "the companion acknowledged; the DNS switch points at this NAS ({})",
                    ack["dns_switch"]["addresses"]
                )
            }),
            AgentAction::Snapshot => agent
                .send_snapshot(&collect(smb_conf))
                .await
                .map(|()| "the companion stored the snapshot".to_string()),
        }
    });
    match result {
        Ok(msg) => {
            tracing::info!("{msg}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("pinas agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `pinas roles`: the registry, for people and for the image build. Needs no config.
fn roles(units: bool, setup: &[String]) -> std::process::ExitCode {
    use pinas_core::roles::{self, Process, ROLES};
    let setup = if setup.is_empty() {
        Vec::new()
    } else {
        match roles::parse_setup_roles(setup) {
            Ok(s) => s,
            Err(bad) => {
                eprintln!("pinas: unknown setup role {bad:?}: expected nas or companion");
                return std::process::ExitCode::from(64); // EX_USAGE
            }
        }
    };
    if units {
        for u in roles::units_for(&setup) {
            println!("{u}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    for r in ROLES.iter().filter(|r| r.enabled_for(&setup)) {
        let runs = match r.process {
            Process::Own {
                subcommand, unit, ..
            } => format!("pinas {subcommand} ({unit})"),
            Process::InWeb => "in pinas web".to_string(),
        };
        let by: Vec<_> = r.enabled_by.iter().map(|s| s.as_str()).collect();
        println!(
            "{:<8} {:<38} {:<14} {}",
            r.name,
            runs,
            by.join(","),
            r.summary
        );
    }
    std::process::ExitCode::SUCCESS
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Roles { units, setup } = &cli.command {
        return roles(*units, setup);
    }
    if let Command::Agent { config, action } = &cli.command {
        return agent(config, *action);
    }
    let mode = match &cli.command {
        Command::Dev { state, .. } => Mode::Dev {
            state_dir: absolute(state),
        },
        _ => Mode::Device,
    };
    let env = |k: &str| std::env::var(k).ok();
    let loaded = match &cli.command {
        // systemd hands the DNS, companion and power roles their config.toml as a
        // credential.
        Command::Dns | Command::Companion | Command::Power => {
            Config::load_with_env(&mode, |k| match k {
                "PINAS_CONFIG_PATH" => {
                    env(k).or_else(|| pinas_dns::config_path(env).map(|p| p.display().to_string()))
                }
                _ => env(k),
            })
        }
        _ => Config::load(&mode),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pinas: configuration error: {e}");
            return std::process::ExitCode::from(78); // EX_CONFIG
        }
    };
    init_logging(&config);
    // One worker per core PiNAS may run on, at most two: more workers than cores only
    // time-slice against each other, and a request queued on a descheduled worker waits
    // a whole slice (milliseconds). available_parallelism honours CPU affinity and
    // cgroup quotas.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        match cli.command {
            Command::Dev { demo_plug, .. } => run::dev(config, demo_plug).await,
            Command::Web => run::web(config).await,
            Command::Dns => run::dns(config).await,
            Command::Companion => run::companion(config).await,
            Command::Power => run::power(config).await,
            Command::Console => {
                pinas_console::run(&config, run::samba_password_setter(&config)).map_err(Into::into)
            }
            Command::Roles { .. } | Command::Agent { .. } => {
                unreachable!("answered before the configuration is read")
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinas: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn init_logging(config: &Config) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    // hickory-server logs every DNS request at info; keep it to warnings unless asked.
    let level = if config.log.level.contains("hickory") {
        config.log.level.clone()
    } else {
        format!(
            "{},hickory_server=warn,hickory_proto=warn,hickory_net=warn",
            config.log.level
        )
    };
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let file = config.log.path.as_ref().and_then(|p| {
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open log file {}", p.display()))
            .map_err(|e| eprintln!("pinas: {e:#}"))
            .ok()
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr));
    match file {
        Some(f) => registry
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f)),
            )
            .init(),
        None => registry.init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The registry and the subcommands agree: every role with its own process can be
    /// started, and every long-running subcommand is a registered role.
    #[test]
    fn every_registered_process_has_its_subcommand() {
        let cli = super::Cli::command();
        let subcommands: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        for role in pinas_core::roles::ROLES {
            if let Some(sub) = role.subcommand() {
                assert!(
                    subcommands.contains(&sub),
                    "no `pinas {sub}` for role {}",
                    role.name
                );
            }
        }
        // Tools and development entry points, not roles with a unit.
        let not_roles = ["dev", "console", "roles", "agent", "help"];
        for sub in subcommands.iter().filter(|s| !not_roles.contains(s)) {
            assert!(
                pinas_core::roles::ROLES
                    .iter()
                    .any(|r| r.subcommand() == Some(sub)),
                "`pinas {sub}` runs a role that the registry does not list"
            );
        }
    }
}
