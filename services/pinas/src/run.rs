//! Wiring the roles together for `pinas web` and `pinas dev`.

use std::sync::Arc;

use anyhow::Context as _;
use pinas_core::{Config, Context};
use pinas_shares::Shares;
use pinas_storage::Storage;
use pinas_web::{AccountHook, ListenConfig, ServiceSource, ServiceStatus, WebApp};
use utoipa::OpenApi;

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

/// Reports Samba and NFS from the shares service in `GET /api/system/services`.
struct SharesServices(Arc<Shares>);

impl ServiceSource for SharesServices {
    fn services(&self) -> Vec<ServiceStatus> {
        self.0.services()
    }
}

impl AccountHook for SharesServices {
    fn password_set(&self, name: &str, password: &str) -> Result<(), String> {
        self.0
            .set_samba_password(name, password)
            .map_err(|e| e.to_string())
    }
}

/// Sets Samba passwords for the console's admin password reset, with pinas-shares'
/// Samba tools: the same `smbpasswd` call the web UI's password changes make.
pub fn samba_password_setter(config: &Config) -> pinas_console::SambaPasswordSetter {
    let paths = pinas_core::Paths::new(config);
    let layout = pinas_shares::render::SambaLayout::for_dir(
        &paths.samba_dir,
        &paths.state_dir,
        config.dev,
        config.smb.port,
    );
    let tools = pinas_shares::samba::SambaTools::new(layout);
    Box::new(move |name, password| {
        tools
            .set_password(name, password)
            .map_err(|e| e.to_string())
    })
}

/// The NAS part of the web role: storage and shares, started and added to the app.
async fn nas_app(ctx: &Arc<Context>) -> anyhow::Result<(WebApp, Arc<Shares>)> {
    let storage = Storage::start(ctx.clone()).await?;
    // The companion's remote share, mounted on its request (where the image asks for it).
    pinas_storage::remote_mount::spawn(ctx);
    let shares = Shares::start(ctx.clone()).await?;
    ensure_companion_shares(ctx, &shares);
    let app = WebApp::new(ctx.clone())
        .with_router(storage.router(), pinas_storage::ApiDoc::openapi())
        .with_router(shares.router(), pinas_shares::ApiDoc::openapi())
        .with_proxied_doc("dns", pinas_dns::ApiDoc::openapi())
        .with_proxied_doc("companion", pinas_companion::ApiDoc::openapi())
        .with_proxied_doc("power", pinas_power::ApiDoc::openapi())
        .with_services(Arc::new(SharesServices(shares.clone())))
        .with_account_hook(Arc::new(SharesServices(shares.clone())))
        .with_account_hook(Arc::new(CompanionShares(ctx.clone(), shares.clone())));
    Ok((app, shares))
}

/// Makes the companion's shares as soon as setup chose the `companion` role.
struct CompanionShares(Arc<Context>, Arc<Shares>);

impl AccountHook for CompanionShares {
    fn password_set(&self, _name: &str, _password: &str) -> Result<(), String> {
        Ok(())
    }

    fn setup_done(&self) {
        ensure_companion_shares(&self.0, &self.1);
    }
}

/// On a companion (the `companion` setup role), the SMB shares of the companion's
/// folders (docs/companion.md), each made once if missing: `inbox`
/// (`<shares_root>/inbox`), whose files go to the big NAS when it is up, and `spool`
/// (`<shares_root>/spool`), whose files go to the NAS's share while it is mounted and
/// wait on the companion while it is not. A failure is logged, not fatal.
fn ensure_companion_shares(ctx: &Arc<Context>, shares: &Shares) {
    let companion = ctx
        .db
        .setting("roles")
        .ok()
        .flatten()
        .and_then(|r| serde_json::from_str::<Vec<String>>(&r).ok())
        .is_some_and(|r| r.iter().any(|r| r == "companion"));
    if !companion {
        return;
    }
    let all = match shares.list_shares() {
        Ok(all) => all,
        Err(e) => return tracing::warn!(error = %e, "cannot list the shares"),
    };
    for (name, description) in [
        ("inbox", "Files for the big NAS: moved to it when it is up"),
        (
            "spool",
            "Files for the big NAS's share: moved to it at once while it is up",
        ),
    ] {
        if all.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
            continue;
        }
        let share = pinas_shares::NewShare {
            name: name.into(),
            path: ctx
                .config
                .paths
                .shares_root
                .join(name)
                .display()
                .to_string(),
            description: description.into(),
            read_only: false,
            guest_ok: false,
            valid_users: Vec::new(),
            smb: true,
            nfs: false,
            nfs_clients: Vec::new(),
        };
        if let Err(e) = shares.create_share(share) {
            tracing::warn!(share = name, error = %e, "cannot make the companion's share");
        }
    }
}

/// `pinas web`: the web role (with storage and shares); other roles run as their own
/// services and are reached through their sockets.
pub async fn web(config: Config) -> anyhow::Result<()> {
    let ctx = open_context(config)?;
    // A fresh storage partition has no certificate yet: make the self-signed one here,
    // in milliseconds, rather than in a first-boot unit ahead of the web role.
    let web = &ctx.config.web;
    if !ctx.config.dev && !web.https_address.is_empty() {
        let hostname = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "pinas".into());
        match pinas_web::certificate::ensure(&web.tls_cert, &web.tls_key, &hostname) {
            Ok(true) => {
                tracing::info!(cert = %web.tls_cert.display(), "made the self-signed TLS certificate")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot make the TLS certificate; serving HTTP only")
            }
        }
    }
    let listen = listen_config(&ctx.config);
    let (app, shares) = nas_app(&ctx).await?;
    let result = pinas_web::serve(app.build(), listen, shutdown_signal()).await;
    shares.shutdown().await;
    result
}

/// Seconds after a role's own process starts before its start-up pages go back to the
/// kernel: start-up (configuration, database, socket, first heartbeat or poll) is over
/// well within it.
const STARTUP_SECS: u64 = 10;

/// Once a role that runs as its own process has started, hands the pages only start-up
/// used back to the kernel ([`pinas_core::memory::release_file_pages`]), so its resident
/// set is its steady state (docs/companion.md#figures).
fn release_startup_pages_later() {
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_secs(STARTUP_SECS)).await;
        match tokio::task::spawn_blocking(pinas_core::memory::release_file_pages).await {
            Ok(Ok(bytes)) => {
                tracing::debug!(
                    mib = bytes >> 20,
                    "start-up pages handed back to the kernel"
                )
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "start-up pages not handed back"),
            Err(e) => tracing::debug!(error = %e, "start-up pages not handed back"),
        }
    });
}

/// `pinas dns`: the DNS role alone; it keeps answering while `pinas web` restarts. It
/// opens nothing of the other roles (no shared database), so it runs as its own user.
/// Its events reach browsers through the web role's relay of the role socket.
pub async fn dns(config: Config) -> anyhow::Result<()> {
    release_startup_pages_later();
    pinas_dns::run(&config, pinas_core::EventBus::new(None), shutdown_signal()).await?;
    Ok(())
}

/// `pinas companion`: the companion role alone (its own user, like DNS). It reaches the
/// DNS role through its socket; its events reach browsers through the web role's relay.
pub async fn companion(config: Config) -> anyhow::Result<()> {
    release_startup_pages_later();
    pinas_companion::run(&config, pinas_core::EventBus::new(None), shutdown_signal()).await?;
    Ok(())
}

/// `pinas power`: the power role alone (its own user, like DNS): it polls the plugs and
/// keeps their history; its events reach browsers through the web role's relay.
pub async fn power(config: Config) -> anyhow::Result<()> {
    release_startup_pages_later();
    pinas_power::run(
        &config,
        pinas_core::EventBus::new(None),
        shutdown_signal(),
        None,
    )
    .await?;
    Ok(())
}

/// The first folder above `path` that other users cannot pass through (no `o+x`):
/// Samba serves files as the connecting user, who then cannot reach shares below it.
fn private_ancestor(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(std::path::Path::to_path_buf)
}

/// `pinas dev`: every role in one process, state in one folder.
pub async fn dev(config: Config, demo_plug: bool) -> anyhow::Result<()> {
    let ctx = open_context(config)?;
    if let Some(p) = private_ancestor(&ctx.config.paths.shares_root) {
        eprintln!(
            "pinas: warning: {} is private (no search permission for others), so SMB users \
             cannot reach shares under {}; use `--state` with a folder outside it (e.g. /srv/pinas-dev) \
             or `chmod o+x {}`",
            p.display(),
            ctx.config.paths.shares_root.display(),
            p.display()
        );
    }
    let listen = listen_config(&ctx.config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let dns = {
        let (ctx, stop) = (ctx.clone(), stopped());
        tokio::spawn(async move {
            if let Err(e) = pinas_dns::run(&ctx.config, ctx.events.clone(), stop).await {
                tracing::error!(error = %e, "DNS role stopped; the rest of PiNAS keeps running");
            }
        })
    };
    let companion = {
        let (ctx, stop) = (ctx.clone(), stopped());
        tokio::spawn(async move {
            if let Err(e) = pinas_companion::run(&ctx.config, ctx.events.clone(), stop).await {
                tracing::error!(error = %e, "companion role stopped; the rest of PiNAS keeps running");
            }
        })
    };
    let demo = if demo_plug {
        Some(
            pinas_power::Demo::start()
                .await
                .context("cannot start the demo plug")?,
        )
    } else {
        None
    };
    let demo_line = demo
        .as_ref()
        .map(|d| format!("\n  demo plug   {} (a fake Tapo P110)", d.plug.address()))
        .unwrap_or_default();
    let power = {
        let (ctx, stop) = (ctx.clone(), stopped());
        tokio::spawn(async move {
            let r = pinas_power::run(&ctx.config, ctx.events.clone(), stop, demo.as_ref()).await;
            if let Err(e) = r {
                tracing::error!(error = %e, "power role stopped; the rest of PiNAS keeps running");
            }
        })
    };
    let (app, shares) = nas_app(&ctx).await?;
    let dns_listen = ctx
        .config
        .other
        .get("dns")
        .and_then(|d| d.get("listen"))
        .and_then(|l| l.as_str())
        .unwrap_or("127.0.0.1:5353")
        .to_string();
    // Building the app makes the setup code while setup is pending.
    let router = app.build();
    let setup_code = pinas_core::auth::SetupCode::load(&ctx.config.paths.state_dir)
        .map(|c| {
            format!(
                "\n  setup code  {} (the setup wizard asks for it)",
                c.grouped()
            )
        })
        .unwrap_or_default();
    eprintln!(
        "PiNAS {} (dev)\n  UI and API  http://{}\n  SMB         port {}\n  DNS         {}\n  state       {}{demo_line}{setup_code}",
        pinas_core::VERSION,
        ctx.config.web.bind_address,
        ctx.config.smb.port,
        dns_listen,
        ctx.config.paths.state_dir.display(),
    );
    let web = pinas_web::serve(router, listen, stopped());
    tokio::pin!(web);
    let result = tokio::select! {
        r = &mut web => r,
        _ = shutdown_signal() => {
            let _ = stop_tx.send(true);
            web.await
        }
    };
    let _ = stop_tx.send(true);
    shares.shutdown().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), dns).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), companion).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), power).await;
    result
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use utoipa::OpenApi;

    /// Merging OpenAPI documents keeps the first of two schemas with one name, so a role
    /// type named like another role's would be documented (and typed in the UI) with the
    /// other's fields. Every schema name means one shape.
    #[test]
    fn no_two_roles_document_different_schemas_under_one_name() {
        let docs = [
            ("storage", pinas_storage::ApiDoc::openapi()),
            ("shares", pinas_shares::ApiDoc::openapi()),
            ("dns", pinas_dns::ApiDoc::openapi()),
            ("companion", pinas_companion::ApiDoc::openapi()),
            ("power", pinas_power::ApiDoc::openapi()),
        ];
        let mut seen: BTreeMap<String, (&str, String)> = BTreeMap::new();
        let mut clashes = Vec::new();
        for (role, doc) in &docs {
            let Some(c) = &doc.components else { continue };
            for (name, schema) in &c.schemas {
                let json = serde_json::to_string(schema).expect("a schema serialises");
                match seen.get(name) {
                    Some((other, j)) if *j != json => {
                        clashes.push(format!("{name}: {other} and {role}"))
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(name.clone(), (role, json));
                    }
                }
            }
        }
        assert!(clashes.is_empty(), "schemas named alike: {clashes:?}");
    }
}
