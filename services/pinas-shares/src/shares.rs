//! Shares: creating, changing and deleting them. Each change is checked by Samba
//! (`testparm`) before anything is stored; the database row and the rendered files
//! change together or not at all, and then smbd and the NFS server reload.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::SharesError;
use crate::model::{self, NewShare, Share, ShareUpdate};
use crate::{render, store, Shares};

type R<T> = Result<T, SharesError>;

/// Checks that every `valid_users` entry names a user or `@group`.
///
/// # Errors
/// [`SharesError::UnknownValidUser`] naming the first that does not.
fn check_valid_users(conn: &Connection, names: &[String]) -> R<()> {
    for n in names {
        let found = match n.strip_prefix('@') {
            Some(g) => store::group_exists(conn, g)?,
            None => store::user_exists(conn, n)?,
        };
        if !found {
            return Err(SharesError::UnknownValidUser(n.clone()));
        }
    }
    Ok(())
}

impl Shares {
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

    /// Every share.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_shares(&self) -> R<Vec<Share>> {
        Ok(store::shares(&self.ctx.db.conn())?)
    }

    /// One share.
    ///
    /// # Errors
    /// [`SharesError::ShareNotFound`].
    pub fn get_share(&self, id: i64) -> R<Share> {
        store::share(&self.ctx.db.conn(), id)?.ok_or(SharesError::ShareNotFound(id))
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
            check_valid_users(&conn, &share.valid_users)?;
            store::shares(&conn)?
        };
        if all.iter().any(|s| s.name.eq_ignore_ascii_case(&share.name)) {
            return Err(SharesError::ShareNameTaken(share.name));
        }
        all.push(share.clone());
        let (conf, exports) = self.prepare(&all)?;
        let created = ensure_folder(Path::new(&share.path))?;
        let result = self.ctx.db.write(|tx| {
            share.id = store::insert_share(tx, &share)?;
            self.write_configs(&conf, &exports)
        });
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
        let mut all = store::shares(&self.ctx.db.conn())?;
        let old = all
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(SharesError::ShareNotFound(id))?;
        let mut share = upd.apply_to(&old);
        share.id = id;
        let path_changed = share.path != old.path;
        self.validate(&mut share, path_changed)?;
        check_valid_users(&self.ctx.db.conn(), &share.valid_users)?;
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
        let result = self.ctx.db.write(|tx| {
            store::update_share(tx, &share)?;
            self.write_configs(&conf, &exports)
        });
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
        let mut all = store::shares(&self.ctx.db.conn())?;
        let old = all
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(SharesError::ShareNotFound(id))?;
        all.retain(|s| s.id != id);
        let (conf, exports) = self.prepare(&all)?;
        let result = self.ctx.db.write(|tx| {
            store::delete_share(tx, id)?;
            self.write_configs(&conf, &exports)
        });
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
        let Ok(all) = store::shares(&self.ctx.db.conn()) else {
            return;
        };
        let conf = render::smb_conf(&self.layout, &all);
        if std::fs::read_to_string(&self.layout.conf).ok().as_deref() != Some(conf.as_str()) {
            let _ = self.write_configs(&conf, &render::exports(&all));
        }
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
