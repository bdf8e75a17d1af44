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

pub mod accounts;
pub mod api;
mod error;
pub mod model;
pub mod render;
pub mod samba;
pub mod smbd;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::get;
use axum::Router;
use pinas_core::auth::{CurrentUser, Role};
use pinas_core::fsutil::write_atomic;
use pinas_core::Context;
use rusqlite::Connection;
use serde::Serialize;
use utoipa::ToSchema;

pub use accounts::{Group, GroupUpdate, NewGroup, NewUser, User, UserUpdate};
pub use error::SharesError;
pub use model::{NewShare, Share, ShareUpdate};
use render::SambaLayout;
use samba::SambaTools;

/// State of a service PiNAS manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
    Unavailable,
}

/// One service's status for `GET /api/system/services`:
/// `{"name":"smb","state":"running","detail":"smbd (pid 42) on 127.0.0.1:4445"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceStatus {
    /// `smb` or `nfs`.
    pub name: String,
    pub state: ServiceState,
    /// What a person needs to know, e.g. why it is unavailable.
    pub detail: String,
}

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
        {
            let conn = self.ctx.db.conn();
            self.write_accounts(&conn)?;
        }
        let shares = model::load_all(&self.ctx.db.conn()).map_err(SharesError::from)?;
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

    /// The status of SMB and NFS.
    pub fn services(&self) -> Vec<ServiceStatus> {
        let smb = match (&self.tools.usable, &self.smbd) {
            _ if !self.ctx.config.smb.enabled => (
                ServiceState::Stopped,
                "disabled in config.toml ([smb] enabled = false)".to_string(),
            ),
            (Err(why), _) => (ServiceState::Unavailable, why.clone()),
            (Ok(()), Some(s)) => s.status(),
            (Ok(()), None) if self.ctx.config.dev => (ServiceState::Stopped, "not started".into()),
            (Ok(()), None) => device_smbd_status(&self.layout),
        };
        let nfs = if self.ctx.config.dev {
            (
                ServiceState::Unavailable,
                format!(
                    "NFS exports are applied on the device only; rendered to {}",
                    self.layout.exports.display()
                ),
            )
        } else if samba::find_program("exportfs").is_none() {
            (
                ServiceState::Unavailable,
                "nfs-kernel-server is not installed".to_string(),
            )
        } else {
            let threads = std::fs::read_to_string("/proc/fs/nfsd/threads").unwrap_or_default();
            if threads.trim().parse::<u32>().unwrap_or(0) > 0 {
                (
                    ServiceState::Running,
                    format!("kernel NFS server, {} threads", threads.trim()),
                )
            } else {
                (
                    ServiceState::Stopped,
                    "the kernel NFS server is not running".to_string(),
                )
            }
        };
        vec![
            ServiceStatus {
                name: "smb".into(),
                state: smb.0,
                detail: smb.1,
            },
            ServiceStatus {
                name: "nfs".into(),
                state: nfs.0,
                detail: nfs.1,
            },
        ]
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

    /// Gives an existing PiNAS account its Unix id and sets its SMB password (for
    /// accounts made outside this crate, e.g. the admin made by the setup wizard, or a
    /// password changed through the web role).
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`], Samba failures.
    pub fn set_samba_password(&self, name: &str, password: &str) -> R<()> {
        let _g = self.lock();
        let conn = self.ctx.db.conn();
        accounts::get_user(&conn, name)?;
        self.write_accounts(&conn)?;
        self.tools.set_password(name, password)
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
            let (smb, nfs) = self
                .ctx
                .db
                .conn()
                .query_row(
                    "SELECT COALESCE(SUM(smb), 0) > 0, COALESCE(SUM(nfs), 0) > 0 FROM shares",
                    [],
                    |r| Ok((r.get::<_, bool>(0)?, r.get::<_, bool>(1)?)),
                )
                .unwrap_or((false, false));
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

    /// Writes passwd/group(/shadow) for NSS from `conn`'s view of the database.
    fn write_accounts(&self, conn: &Connection) -> R<()> {
        accounts::assign_missing_ids(conn)?;
        let (users, groups) = accounts::unix_accounts(conn)?;
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

    fn data_roots(&self) -> Vec<PathBuf> {
        pinas_storage::folders::data_roots(&self.ctx)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Resolves and checks `share.path`, normalises the other fields.
    fn validate(&self, share: &mut Share, path_changed: bool) -> R<()> {
        model::normalize(share)?;
        if path_changed {
            let resolved = pinas_storage::folders::resolve_inside(&share.path, &self.data_roots())
                .map_err(|_| SharesError::PathOutsideRoot(share.path.clone()))?;
            share.path = resolved.display().to_string();
            model::normalize(share)?;
        }
        Ok(())
    }

    // ---- shares ----

    /// Every share.
    pub fn list_shares(&self) -> R<Vec<Share>> {
        Ok(model::load_all(&self.ctx.db.conn())?)
    }

    /// One share.
    ///
    /// # Errors
    /// [`SharesError::ShareNotFound`].
    pub fn get_share(&self, id: i64) -> R<Share> {
        model::load(&self.ctx.db.conn(), id)?.ok_or(SharesError::ShareNotFound(id))
    }

    /// Creates a share: checks it, creates its folder if missing, renders and checks the
    /// configuration, stores it, swaps the files in and reloads smbd and NFS.
    ///
    /// # Errors
    /// [`SharesError::InvalidShareName`], [`SharesError::ShareNameTaken`],
    /// [`SharesError::PathOutsideRoot`], [`SharesError::UnknownValidUser`],
    /// [`SharesError::ConfigRejected`], NFS client errors.
    pub fn create_share(&self, input: NewShare) -> R<Share> {
        let mut share = input.into_share();
        self.validate(&mut share, true)?;
        let _g = self.lock();
        let mut all = {
            let conn = self.ctx.db.conn();
            model::check_valid_users(&conn, &share.valid_users)?;
            model::load_all(&conn)?
        };
        if all.iter().any(|s| s.name.eq_ignore_ascii_case(&share.name)) {
            return Err(SharesError::ShareNameTaken(share.name));
        }
        all.push(share.clone());
        let (conf, exports) = self.prepare(&all)?;
        let created = ensure_folder(Path::new(&share.path))?;
        let result = (|| {
            let mut conn = self.ctx.db.conn();
            let tx = conn.transaction()?;
            share.id = model::insert(&tx, &share)?;
            self.write_configs(&conf, &exports)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            if created {
                let _ = std::fs::remove_dir(&share.path);
            }
            self.restore_configs();
            return Err(e);
        }
        self.reload();
        self.ctx.events.emit(
            "share.created",
            serde_json::to_value(&share).unwrap_or_default(),
        );
        tracing::info!(share = %share.name, path = %share.path, "share created");
        Ok(share)
    }

    /// Changes a share (fields absent from `upd` stay as they are).
    ///
    /// # Errors
    /// As [`Shares::create_share`], and [`SharesError::ShareNotFound`].
    pub fn update_share(&self, id: i64, upd: ShareUpdate) -> R<Share> {
        let _g = self.lock();
        let mut all = model::load_all(&self.ctx.db.conn())?;
        let old = all
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(SharesError::ShareNotFound(id))?;
        let mut share = upd.apply_to(&old);
        share.id = id;
        let path_changed = share.path != old.path;
        self.validate(&mut share, path_changed)?;
        model::check_valid_users(&self.ctx.db.conn(), &share.valid_users)?;
        if all
            .iter()
            .any(|s| s.id != id && s.name.eq_ignore_ascii_case(&share.name))
        {
            return Err(SharesError::ShareNameTaken(share.name));
        }
        for s in all.iter_mut().filter(|s| s.id == id) {
            *s = share.clone();
        }
        let (conf, exports) = self.prepare(&all)?;
        let created = if path_changed {
            ensure_folder(Path::new(&share.path))?
        } else {
            false
        };
        let result = (|| {
            let mut conn = self.ctx.db.conn();
            let tx = conn.transaction()?;
            model::update(&tx, &share)?;
            self.write_configs(&conf, &exports)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            if created {
                let _ = std::fs::remove_dir(&share.path);
            }
            self.restore_configs();
            return Err(e);
        }
        self.reload();
        self.ctx.events.emit(
            "share.updated",
            serde_json::to_value(&share).unwrap_or_default(),
        );
        Ok(share)
    }

    /// Removes a share from SMB and NFS. Its folder and files stay.
    ///
    /// # Errors
    /// [`SharesError::ShareNotFound`], [`SharesError::ConfigRejected`].
    pub fn delete_share(&self, id: i64) -> R<Share> {
        let _g = self.lock();
        let mut all = model::load_all(&self.ctx.db.conn())?;
        let old = all
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(SharesError::ShareNotFound(id))?;
        all.retain(|s| s.id != id);
        let (conf, exports) = self.prepare(&all)?;
        let result = (|| {
            let mut conn = self.ctx.db.conn();
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM shares WHERE id = ?1", [id])?;
            self.write_configs(&conf, &exports)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            self.restore_configs();
            return Err(e);
        }
        self.reload();
        self.ctx.events.emit(
            "share.deleted",
            serde_json::json!({"id": id, "name": old.name}),
        );
        tracing::info!(share = %old.name, "share deleted");
        Ok(old)
    }

    /// After a failed change: the files again match the database.
    fn restore_configs(&self) {
        let Ok(all) = model::load_all(&self.ctx.db.conn()) else {
            return;
        };
        let conf = render::smb_conf(&self.layout, &all);
        if std::fs::read_to_string(&self.layout.conf).ok().as_deref() != Some(conf.as_str()) {
            let _ = self.write_configs(&conf, &render::exports(&all));
        }
    }

    // ---- users ----

    /// Every user.
    pub fn list_users(&self) -> R<Vec<User>> {
        Ok(accounts::list_users(&self.ctx.db.conn())?)
    }

    /// One user.
    pub fn get_user(&self, name: &str) -> R<User> {
        accounts::get_user(&self.ctx.db.conn(), name)
    }

    /// Creates a user: the PiNAS account, the Unix account (primary group `users`) and
    /// the Samba account, or none of them.
    ///
    /// # Errors
    /// `invalid_username`, password policy errors, `user_exists`,
    /// [`SharesError::UnknownGroup`], Samba failures.
    pub fn create_user(&self, input: NewUser) -> R<User> {
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        pinas_core::auth::create_account(&tx, &input.name, input.role, &input.password)?;
        accounts::set_user_groups(&tx, &input.name, &input.groups)?;
        self.write_accounts(&tx)?;
        if let Err(e) = self.tools.set_password(&input.name, &input.password) {
            drop(tx);
            let _ = self.write_accounts(&conn);
            return Err(e);
        }
        let user = accounts::get_user(&tx, &input.name)?;
        tx.commit()?;
        tracing::info!(user = %user.name, role = user.role.as_str(), "user created");
        Ok(user)
    }

    /// Changes a user's password, role or groups. Only an admin may change role and
    /// groups or another user's password; a user may change their own password, giving
    /// the current one (so a session left open does not hand over the account).
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`], [`SharesError::Forbidden`],
    /// [`SharesError::LastAdmin`], [`SharesError::UnknownGroup`], password policy errors,
    /// `current_password_invalid`.
    pub fn update_user(&self, name: &str, upd: UserUpdate, actor: &CurrentUser) -> R<User> {
        let is_admin = actor.require_admin().is_ok();
        if !is_admin && (upd.role.is_some() || upd.groups.is_some() || actor.0.name != name) {
            return Err(SharesError::Forbidden(
                "only an administrator may change other users, roles and groups".into(),
            ));
        }
        if upd.password.is_some() && actor.0.name == name {
            let record = pinas_core::auth::login_record(&self.ctx.db.conn(), name)?;
            pinas_core::auth::check_current_password(record, upd.current_password.as_deref())?;
        }
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        let before = accounts::get_user(&tx, name)?;
        if let Some(role) = upd.role {
            if before.role == Role::Admin && role != Role::Admin && accounts::admin_count(&tx)? <= 1
            {
                return Err(SharesError::LastAdmin(name.to_string()));
            }
            tx.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                [name, role.as_str()],
            )?;
        }
        if let Some(groups) = &upd.groups {
            accounts::set_user_groups(&tx, name, groups)?;
            self.write_accounts(&tx)?;
        }
        if let Some(pw) = &upd.password {
            pinas_core::auth::set_password(&tx, name, pw)?;
            self.write_accounts(&tx)?;
            if let Err(e) = self.tools.set_password(name, pw) {
                drop(tx);
                let _ = self.write_accounts(&conn);
                return Err(e);
            }
        }
        let user = accounts::get_user(&tx, name)?;
        tx.commit()?;
        Ok(user)
    }

    /// Deletes a user everywhere. Refused for oneself, the last admin, and users named
    /// in a share's valid users (so no share silently opens to everyone).
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`], [`SharesError::SelfDelete`],
    /// [`SharesError::LastAdmin`], [`SharesError::InUse`].
    pub fn delete_user(&self, name: &str, actor: &CurrentUser) -> R<()> {
        if actor.0.name == name {
            return Err(SharesError::SelfDelete);
        }
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        let user = accounts::get_user(&tx, name)?;
        if user.role == Role::Admin && accounts::admin_count(&tx)? <= 1 {
            return Err(SharesError::LastAdmin(name.to_string()));
        }
        let shares = accounts::shares_naming(&tx, name)?;
        if !shares.is_empty() {
            return Err(SharesError::InUse {
                name: name.to_string(),
                shares,
            });
        }
        tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
        self.write_accounts(&tx)?;
        tx.commit()?;
        drop(conn);
        self.tools.delete_user(name)?;
        tracing::info!(user = name, "user deleted");
        Ok(())
    }

    // ---- groups ----

    /// Every group.
    pub fn list_groups(&self) -> R<Vec<Group>> {
        Ok(accounts::list_groups(&self.ctx.db.conn())?)
    }

    /// One group.
    pub fn get_group(&self, name: &str) -> R<Group> {
        accounts::get_group(&self.ctx.db.conn(), name)
    }

    /// Creates a group.
    ///
    /// # Errors
    /// [`SharesError::InvalidGroupName`], [`SharesError::GroupExists`],
    /// [`SharesError::UnknownMember`].
    pub fn create_group(&self, input: NewGroup) -> R<Group> {
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        accounts::insert_group(&tx, &input)?;
        self.write_accounts(&tx)?;
        let g = accounts::get_group(&tx, &input.name)?;
        tx.commit()?;
        Ok(g)
    }

    /// Changes a group's description or members.
    ///
    /// # Errors
    /// [`SharesError::GroupNotFound`], [`SharesError::UnknownMember`].
    pub fn update_group(&self, name: &str, upd: GroupUpdate) -> R<Group> {
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        accounts::get_group(&tx, name)?;
        if let Some(d) = &upd.description {
            if d.chars().count() > 256 {
                return Err(SharesError::InvalidDescription);
            }
            tx.execute(
                "UPDATE groups SET description = ?2 WHERE name = ?1",
                [name, d],
            )?;
        }
        if let Some(m) = &upd.members {
            accounts::set_group_members(&tx, name, m)?;
        }
        self.write_accounts(&tx)?;
        let g = accounts::get_group(&tx, name)?;
        tx.commit()?;
        Ok(g)
    }

    /// Deletes a group (its members stay). Refused while a share names `@group`.
    ///
    /// # Errors
    /// [`SharesError::GroupNotFound`], [`SharesError::InUse`].
    pub fn delete_group(&self, name: &str) -> R<()> {
        let _g = self.lock();
        let mut conn = self.ctx.db.conn();
        let tx = conn.transaction()?;
        accounts::get_group(&tx, name)?;
        let shares = accounts::shares_naming(&tx, &format!("@{name}"))?;
        if !shares.is_empty() {
            return Err(SharesError::InUse {
                name: format!("@{name}"),
                shares,
            });
        }
        tx.execute("DELETE FROM groups WHERE name = ?1", [name])?;
        self.write_accounts(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

/// Checks that share users (any uid, group `users`) can pass through every existing
/// folder above `path`: smbd and the NFS server act as them.
///
/// # Errors
/// [`SharesError::NotReachable`] naming the first folder that blocks.
fn check_reachable(path: &Path) -> R<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in path.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = m.mode();
        let ok = mode & 0o001 != 0 || (m.gid() == render::USERS_GID && mode & 0o010 != 0);
        if !ok {
            return Err(SharesError::NotReachable {
                path: path.display().to_string(),
                blocker: dir.display().to_string(),
            });
        }
    }
    Ok(())
}

/// smbd run by systemd on the device: alive when its pid file names a live process.
fn device_smbd_status(layout: &SambaLayout) -> (ServiceState, String) {
    let pid = std::fs::read_to_string(layout.pid_dir.join("smbd.pid"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    match pid {
        Some(p) if nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok() => (
            ServiceState::Running,
            format!("smbd (pid {p}) on port {}", layout.port),
        ),
        _ => (
            ServiceState::Stopped,
            "smbd is not running (systemctl status smbd)".to_string(),
        ),
    }
}

/// Creates `path` if missing, and makes it a share folder: group `users`, setgid,
/// group-writable (mode |= 2775). Returns true when it was created. On filesystems
/// without Unix owners the mount options already give this, and the errors are ignored.
///
/// # Errors
/// [`SharesError::NotAFolder`], [`SharesError::Write`] when it cannot be created.
fn ensure_folder(path: &Path) -> R<bool> {
    check_reachable(path)?;
    let created = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => false,
        Ok(_) => return Err(SharesError::NotAFolder(path.display().to_string())),
        Err(_) => {
            std::fs::create_dir_all(path).map_err(|source| SharesError::Write {
                path: path.display().to_string(),
                source,
            })?;
            true
        }
    };
    if let Err(e) = nix::unistd::chown(
        path,
        None,
        Some(nix::unistd::Gid::from_raw(render::USERS_GID)),
    ) {
        tracing::debug!(path = %path.display(), error = %e, "cannot give the share folder to group users");
    }
    if let Ok(m) = std::fs::metadata(path) {
        let mode = (m.permissions().mode() & 0o7777) | 0o2775;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::debug!(path = %path.display(), error = %e, "cannot set share folder mode");
        }
    }
    Ok(created)
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
