//! PiNAS shares: SMB and NFS shares, and the users and groups who use them.
//!
//! This crate owns the `shares` table, renders Samba's `smb.conf` and the NFS exports
//! file from it (checked with `testparm -s`, swapped in atomically, then smbd reloaded
//! with `smbcontrol` and NFS with `exportfs -ra`), keeps Samba's passdb and the Unix
//! account files (libnss-extrausers on the device, nss_wrapper files in dev mode) in
//! step with PiNAS users and groups, and in dev mode supervises an `smbd` child.
//!
//! A change that Samba rejects leaves the running configuration and the database as
//! they were. It does not own disks or mounts (`pinas-storage`), whose mounted
//! filesystems and the shares root are the only places a share may point to.
//!
//! Routes (behind the web role's session and CSRF checks): `GET/POST /api/shares`,
//! `GET/PUT/DELETE /api/shares/{id}`, `GET/POST /api/users`,
//! `GET/PUT/DELETE /api/users/{name}`, `GET/POST /api/groups`,
//! `GET/PUT/DELETE /api/groups/{name}`.
//!
//! Layout (see docs/roles.md): this file holds the service's lifecycle (start, render,
//! reload, shutdown) and router; [`store`] every SQL statement; [`shares`] and
//! [`accounts`] the changes to shares and to users and groups; [`model`] the share types
//! and their rules; [`render`] the file formats; [`samba`] and [`smbd`] the Samba
//! programs; [`status`] what `GET /api/system/services` shows; [`api`] the handlers.

pub mod accounts;
pub mod api;
mod error;
pub mod model;
pub mod render;
pub mod samba;
pub mod shares;
pub mod smbd;
pub mod status;
pub mod store;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::get;
use axum::Router;
use pinas_core::fsutil::write_atomic;
use pinas_core::Context;

pub use accounts::{Group, GroupUpdate, NewGroup, NewUser, User, UserUpdate};
pub use error::SharesError;
pub use model::{NewShare, Share, ShareUpdate};
use render::SambaLayout;
use samba::SambaTools;
pub use status::{ServiceState, ServiceStatus};

/// The shares service.
pub struct Shares {
    ctx: Arc<Context>,
    layout: SambaLayout,
    tools: SambaTools,
    smbd: Option<Arc<smbd::Smbd>>,
    /// Serialises changes: render, check, write and reload happen one at a time.
    changes: Mutex<()>,
}

type R<T> = Result<T, SharesError>;

impl Shares {
    /// Renders the account files, `smb.conf` and exports from the database, and in dev
    /// mode starts supervising smbd (when Samba is installed and PiNAS runs as root;
    /// otherwise SMB is reported unavailable and everything else works).
    ///
    /// # Errors
    /// Samba's folders or files cannot be written.
    pub async fn start(ctx: Arc<Context>) -> Result<Arc<Shares>, pinas_core::Error> {
        let mut me = Self::build(ctx.clone())?;
        if !ctx.config.dev {
            // On the device Samba's files already exist from the last start: bring them in
            // step with the database and start Samba / the NFS server when shares need
            // them (they are off by default) while the API starts. testparm, systemctl and
            // smbcontrol take seconds on a Pi 3; changes made meanwhile wait on the lock.
            let me = Arc::new(me);
            let bg = me.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = bg.render_all() {
                    tracing::error!(error = %e, "cannot write Samba's configuration");
                }
                bg.reload();
            });
            return Ok(me);
        }
        // A few small files and one testparm run: short enough to do in place.
        me.render_all()?;
        if ctx.config.smb.enabled {
            match &me.tools.usable {
                Ok(()) => me.smbd = Some(smbd::Smbd::spawn(me.tools.clone())),
                Err(why) => tracing::warn!("SMB unavailable: {why}"),
            }
        }
        Ok(Arc::new(me))
    }

    /// The service with its files rendered but no smbd (for tests and tools).
    ///
    /// # Errors
    /// Samba's folders cannot be created.
    pub fn new(ctx: Arc<Context>) -> Result<Arc<Shares>, pinas_core::Error> {
        let me = Self::build(ctx)?;
        me.render_all()?;
        Ok(Arc::new(me))
    }

    fn build(ctx: Arc<Context>) -> Result<Shares, pinas_core::Error> {
        let layout = SambaLayout::new(&ctx);
        layout.create_dirs().map_err(|e| {
            pinas_core::Error::internal(format!("cannot create {}: {e}", layout.dir.display()))
        })?;
        if let Err(e) = std::fs::create_dir_all(&ctx.paths.shares_root) {
            tracing::warn!(path = %ctx.paths.shares_root.display(), error = %e, "cannot create the shares root");
        }
        let tools = SambaTools::new(layout.clone());
        Ok(Shares {
            ctx,
            layout,
            tools,
            smbd: None,
            changes: Mutex::new(()),
        })
    }

    /// Re-renders everything from the database (at start).
    fn render_all(&self) -> Result<(), pinas_core::Error> {
        let _g = self.lock();
        self.write_accounts()?;
        let shares = store::shares(&self.ctx.db.conn()).map_err(SharesError::from)?;
        match self.prepare(&shares) {
            Ok((conf, exports)) => self.write_configs(&conf, &exports)?,
            Err(e) => {
                tracing::error!(error = %e, "stored shares give a Samba configuration testparm rejects; keeping the current smb.conf")
            }
        }
        Ok(())
    }

    /// The routes, with full paths and state applied.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/shares", get(api::list_shares).post(api::create_share))
            .route(
                "/api/shares/{id}",
                get(api::get_share)
                    .put(api::update_share)
                    .delete(api::delete_share),
            )
            .route("/api/users", get(api::list_users).post(api::create_user))
            .route(
                "/api/users/{name}",
                get(api::get_user)
                    .put(api::update_user)
                    .delete(api::delete_user),
            )
            .route("/api/groups", get(api::list_groups).post(api::create_group))
            .route(
                "/api/groups/{name}",
                get(api::get_group)
                    .put(api::update_group)
                    .delete(api::delete_group),
            )
            .with_state(self.clone())
    }

    /// Stops the supervised smbd (dev mode).
    pub async fn shutdown(&self) {
        if let Some(s) = &self.smbd {
            s.shutdown().await;
        }
    }

    /// Where `smb.conf` is rendered.
    pub fn smb_conf_path(&self) -> &Path {
        &self.layout.conf
    }

    /// Where the NFS exports file is rendered.
    pub fn exports_path(&self) -> &Path {
        &self.layout.exports
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prepare(&self, shares: &[Share]) -> R<(String, String)> {
        let conf = render::smb_conf(&self.layout, shares);
        self.tools.check_config(&conf)?;
        Ok((conf, render::exports(shares)))
    }

    fn write_configs(&self, conf: &str, exports: &str) -> R<()> {
        let w = |p: &Path, text: &str| {
            write_atomic(p, text.as_bytes(), 0o644).map_err(|source| SharesError::Write {
                path: p.display().to_string(),
                source,
            })
        };
        w(&self.layout.conf, conf)?;
        w(&self.layout.exports, exports)
    }

    fn reload(&self) {
        // In dev mode there are no units: smbd is our child, and there is no NFS server.
        let (mut smb_on, mut nfs_on) = (true, false);
        if !self.ctx.config.dev {
            let (smb, nfs) = store::protocols_in_use(&self.ctx.db.conn()).unwrap_or((false, false));
            smb_on = self
                .tools
                .sync_unit("smbd.service", smb && self.ctx.config.smb.enabled);
            self.tools.sync_unit("wsdd2.service", smb_on);
            nfs_on = self.tools.sync_unit("nfs-server.service", nfs);
        }
        let running = self.smbd.as_ref().and_then(|s| s.pid());
        if self.ctx.config.dev && running.is_none() {
            return;
        }
        // With smbd off there is nothing to tell (and smbcontrol would wait for it).
        if smb_on && !self.tools.reload_smbd() {
            if let Some(pid) = running {
                // smbcontrol could not reach it: SIGHUP also makes smbd reload.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGHUP,
                );
            } else {
                tracing::warn!("smbd did not answer reload-config; is it running?");
            }
        }
        if nfs_on {
            self.tools.reload_nfs();
        }
    }

    /// Gives new accounts their Unix ids and writes passwd/group(/shadow) for NSS from
    /// the database. Call with the change lock held, after the change is committed.
    fn write_accounts(&self) -> R<()> {
        let (users, groups) = self.ctx.db.write(|tx| {
            store::assign_missing_ids(tx)?;
            store::unix_accounts(tx)
        })?;
        let (passwd, group, shadow) = render::account_files(self.layout.dev, &users, &groups);
        let dir = &self.layout.accounts_dir;
        let w = |name: &str, text: &str, mode: u32| {
            let p = dir.join(name);
            write_atomic(&p, text.as_bytes(), mode).map_err(|source| SharesError::Write {
                path: p.display().to_string(),
                source,
            })
        };
        w("passwd", &passwd, 0o644)?;
        w("group", &group, 0o644)?;
        if !self.layout.dev {
            w("shadow", &shadow, 0o640)?;
        }
        Ok(())
    }
}

/// The shares API's OpenAPI paths and schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api::list_shares, api::create_share, api::get_share, api::update_share, api::delete_share,
          api::list_users, api::create_user, api::get_user, api::update_user, api::delete_user,
          api::list_groups, api::create_group, api::get_group, api::update_group, api::delete_group),
    components(schemas(Share, NewShare, ShareUpdate, User, NewUser, UserUpdate, Group, NewGroup,
        GroupUpdate, ServiceStatus, ServiceState, pinas_core::error::ErrorBody)),
    tags((name = "shares", description = "SMB and NFS shares"),
         (name = "users", description = "NAS users and groups"))
)]
pub struct ApiDoc;
