//! Wiring the roles together for `pinas web` and `pinas dev`.

use std::sync::Arc;

use anyhow::Context as _;
use pinas_core::{Config, Context};
use pinas_web::{ListenConfig, WebApp};

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

fn open_context(config: Config) -> anyhow::Result<Arc<Context>> {
    for dir in [&config.paths.state_dir, &config.paths.shares_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(Context::open(config)?)
}

fn listen_config(config: &Config) -> ListenConfig {
    let http = config.web.bind_address.parse().expect("validated at load");
    let https = (!config.web.https_address.is_empty()
        && config.web.tls_cert.exists()
        && config.web.tls_key.exists())
    .then(|| {
        (
            config.web.https_address.parse().expect("validated at load"),
            config.web.tls_cert.clone(),
            config.web.tls_key.clone(),
        )
    });
    ListenConfig { http, https }
}

/// `pinas web`: the web role alone (other roles run as their own services).
pub async fn web(config: Config) -> anyhow::Result<()> {
    let ctx = open_context(config)?;
    let listen = listen_config(&ctx.config);
    let app = WebApp::new(ctx.clone()).build();
    pinas_web::serve(app, listen, shutdown_signal()).await
}

/// `pinas dns`: the DNS role alone; it keeps answering while `pinas web` restarts.
pub async fn dns(config: Config) -> anyhow::Result<()> {
    let ctx = open_context(config)?;
    pinas_dns::run(ctx, shutdown_signal()).await?;
    Ok(())
}

/// `pinas dev`: every role in one process, state in one folder.
pub async fn dev(config: Config) -> anyhow::Result<()> {
    let ctx = open_context(config)?;
    let listen = listen_config(&ctx.config);
    let app = WebApp::new(ctx.clone()).build();
    eprintln!(
        "PiNAS {} (dev)\n  UI and API  http://{}\n  state       {}",
        pinas_core::VERSION,
        ctx.config.web.bind_address,
        ctx.config.paths.state_dir.display(),
    );
    pinas_web::serve(app, listen, shutdown_signal()).await
}
