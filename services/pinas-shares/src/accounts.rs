//! NAS users and groups: a PiNAS account is also a Unix account (for NSS: extrausers on
//! the device, nss_wrapper in dev mode) and a Samba account, kept in step here.
//!
//! Slow work never runs inside a database transaction: the password is hashed (argon2id)
//! before the transaction opens, and `smbpasswd` runs after it commits. When Samba then
//! refuses, a second short transaction undoes the change, so the account exists
//! everywhere or nowhere. Meanwhile other requests read and write the database freely.

use pinas_core::auth::{CurrentUser, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::SharesError;
use crate::{store, Shares};

pub use crate::store::FIRST_ID;

type R<T> = Result<T, SharesError>;

/// A PiNAS user as the API shows it (never a password or hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// PiNAS groups the user belongs to.
    pub groups: Vec<String>,
}

/// `POST /api/users` body.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1–32 lowercase letters, digits, `_`, `-`, `.`, starting with a letter.
    pub name: String,
    /// At least 8 characters. Used for the web UI and for SMB.
    pub password: String,
    #[serde(default = "user_role")]
    pub role: Role,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn user_role() -> Role {
    Role::User
}

/// `PUT /api/users/{name}` body: any of the fields.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub password: Option<String>,
    /// Required when an account changes its own password (admins too): the password it
    /// has now. Not needed to set another user's password.
    pub current_password: Option<String>,
    pub role: Option<Role>,
    pub groups: Option<Vec<String>>,
}

/// A group of PiNAS users, usable as `@name` in a share's valid users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub name: String,
    pub description: String,
    pub members: Vec<String>,
}

/// `POST /api/groups` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
}

/// `PUT /api/groups/{name}` body: any of the fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    pub description: Option<String>,
    pub members: Option<Vec<String>>,
}

/// Groups of the system that PiNAS groups may not shadow.
const SYSTEM_GROUPS: [&str; 16] = [
    "root",
    "users",
    "nogroup",
    "nobody",
    "wheel",
    "sudo",
    "adm",
    "staff",
    "daemon",
    "sys",
    "disk",
    "sambashare",
    "shadow",
    "systemd-journal",
    "admin",
    "pinas",
];

/// Checks a group name: the user name rules, and not a system group.
///
/// # Errors
/// [`SharesError::InvalidGroupName`].
pub fn check_group_name(name: &str) -> Result<(), SharesError> {
    if pinas_core::auth::check_username(name).is_err() || SYSTEM_GROUPS.contains(&name) {
        return Err(SharesError::InvalidGroupName(name.to_string()));
    }
    Ok(())
}

/// Checks that every name in `names` is a group.
///
/// # Errors
/// [`SharesError::UnknownGroup`] naming the first that is not.
fn check_groups_exist(conn: &rusqlite::Connection, names: &[String]) -> R<()> {
    for g in names {
        if !store::group_exists(conn, g)? {
            return Err(SharesError::UnknownGroup(g.clone()));
        }
    }
    Ok(())
}

/// Checks that every name in `names` is a user.
///
/// # Errors
/// [`SharesError::UnknownMember`] naming the first that is not.
fn check_members_exist(conn: &rusqlite::Connection, names: &[String]) -> R<()> {
    for m in names {
        if !store::user_exists(conn, m)? {
            return Err(SharesError::UnknownMember(m.clone()));
        }
    }
    Ok(())
}

fn check_description(d: &str) -> R<()> {
    if d.chars().count() > 256 {
        return Err(SharesError::InvalidDescription);
    }
    Ok(())
}

/// Checks a new password and hashes it (argon2id, about a second on a Pi 3): call it
/// before any database transaction opens.
fn hash_new_password(password: &str) -> R<String> {
    pinas_core::auth::check_password_policy(password)?;
    Ok(pinas_core::auth::hash_password(password)?)
}

impl Shares {
    // ---- users ----

    /// Every user.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_users(&self) -> R<Vec<User>> {
        Ok(store::users(&self.ctx.db.conn())?)
    }

    /// One user.
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`].
    pub fn get_user(&self, name: &str) -> R<User> {
        store::user(&self.ctx.db.conn(), name)?
            .ok_or_else(|| SharesError::UserNotFound(name.to_string()))
    }

    /// Creates a user: the PiNAS account, the Unix account (primary group `users`) and
    /// the Samba account, or none of them.
    ///
    /// # Errors
    /// `invalid_username`, password policy errors, `user_exists`,
    /// [`SharesError::UnknownGroup`], Samba failures.
    pub fn create_user(&self, input: NewUser) -> R<User> {
        pinas_core::auth::check_username(&input.name)?;
        let hash = hash_new_password(&input.password)?;
        let _g = self.lock();
        self.ctx.db.write(|tx| {
            check_groups_exist(tx, &input.groups)?;
            if !store::insert_user(tx, &input.name, input.role, &hash)? {
                return Err(SharesError::UserExists(input.name.clone()));
            }
            store::set_user_groups(tx, &input.name, &input.groups)?;
            Ok(())
        })?;
        let samba = self
            .write_accounts()
            .and_then(|()| self.tools.set_password(&input.name, &input.password));
        if let Err(e) = samba {
            let _ = self.ctx.db.write(|tx| store::delete_user(tx, &input.name));
            let _ = self.write_accounts();
            return Err(e);
        }
        let user = self.get_user(&input.name)?;
        tracing::info!(user = %user.name, role = user.role.as_str(), "user created");
        Ok(user)
    }

    /// Changes a user's password, role or groups. Only an admin may change role and
    /// groups or another user's password; a user may change their own password, giving
    /// the current one (so a session left open does not hand over the account). A new
    /// password ends the user's sessions.
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`], [`SharesError::Forbidden`],
    /// [`SharesError::LastAdmin`], [`SharesError::UnknownGroup`], password policy errors,
    /// `current_password_invalid`, Samba failures (then nothing changed).
    pub fn update_user(&self, name: &str, upd: UserUpdate, actor: &CurrentUser) -> R<User> {
        let is_admin = actor.require_admin().is_ok();
        if !is_admin && (upd.role.is_some() || upd.groups.is_some() || actor.0.name != name) {
            return Err(SharesError::Forbidden(
                "only an administrator may change other users, roles and groups".into(),
            ));
        }
        if upd.password.is_some() && actor.0.name == name {
            // The connection goes back before the (slow) password check.
            let record = pinas_core::auth::login_record(&self.ctx.db.conn(), name)?;
            pinas_core::auth::check_current_password(record, upd.current_password.as_deref())?;
        }
        let hash = upd.password.as_deref().map(hash_new_password).transpose()?;
        let _g = self.lock();
        let (before, old_hash) = self.ctx.db.write(|tx| {
            let before = store::user(tx, name)?
                .ok_or_else(|| SharesError::UserNotFound(name.to_string()))?;
            let old_hash = store::password_hash(tx, name)?.unwrap_or_default();
            if let Some(role) = upd.role {
                if before.role == Role::Admin && role != Role::Admin && store::admin_count(tx)? <= 1
                {
                    return Err(SharesError::LastAdmin(name.to_string()));
                }
                store::set_role(tx, name, role)?;
            }
            if let Some(groups) = &upd.groups {
                check_groups_exist(tx, groups)?;
                store::set_user_groups(tx, name, groups)?;
            }
            if let Some(hash) = &hash {
                store::set_password_hash(tx, name, hash, true)?;
            }
            Ok::<_, SharesError>((before, old_hash))
        })?;
        let mut result = self.write_accounts();
        if let (Ok(()), Some(pw)) = (&result, &upd.password) {
            result = self.tools.set_password(name, pw);
        }
        if let Err(e) = result {
            let _ = self.ctx.db.write(|tx| {
                store::set_role(tx, name, before.role)?;
                store::set_user_groups(tx, name, &before.groups)?;
                store::set_password_hash(tx, name, &old_hash, false)
            });
            let _ = self.write_accounts();
            return Err(e);
        }
        self.get_user(name)
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
        self.ctx.db.write(|tx| {
            let user = store::user(tx, name)?
                .ok_or_else(|| SharesError::UserNotFound(name.to_string()))?;
            if user.role == Role::Admin && store::admin_count(tx)? <= 1 {
                return Err(SharesError::LastAdmin(name.to_string()));
            }
            let shares = store::shares_naming(tx, name)?;
            if !shares.is_empty() {
                return Err(SharesError::InUse {
                    name: name.to_string(),
                    shares,
                });
            }
            store::delete_user(tx, name)?;
            Ok(())
        })?;
        self.write_accounts()?;
        self.tools.delete_user(name)?;
        tracing::info!(user = name, "user deleted");
        Ok(())
    }

    /// Gives an existing PiNAS account its Unix id and sets its SMB password (for
    /// accounts made outside this crate, e.g. the admin made by the setup wizard, or a
    /// password changed through the web role).
    ///
    /// # Errors
    /// [`SharesError::UserNotFound`], Samba failures.
    pub fn set_samba_password(&self, name: &str, password: &str) -> R<()> {
        let _g = self.lock();
        self.get_user(name)?;
        self.write_accounts()?;
        self.tools.set_password(name, password)
    }

    // ---- groups ----

    /// Every group.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_groups(&self) -> R<Vec<Group>> {
        Ok(store::groups(&self.ctx.db.conn())?)
    }

    /// One group.
    ///
    /// # Errors
    /// [`SharesError::GroupNotFound`].
    pub fn get_group(&self, name: &str) -> R<Group> {
        store::group(&self.ctx.db.conn(), name)?
            .ok_or_else(|| SharesError::GroupNotFound(name.to_string()))
    }

    /// Creates a group with the next free gid.
    ///
    /// # Errors
    /// [`SharesError::InvalidGroupName`], [`SharesError::GroupExists`],
    /// [`SharesError::UnknownMember`], [`SharesError::InvalidDescription`].
    pub fn create_group(&self, input: NewGroup) -> R<Group> {
        check_group_name(&input.name)?;
        check_description(&input.description)?;
        let _g = self.lock();
        self.ctx.db.write(|tx| {
            if store::group_exists(tx, &input.name)? {
                return Err(SharesError::GroupExists(input.name.clone()));
            }
            check_members_exist(tx, &input.members)?;
            store::insert_group(tx, &input.name, &input.description)?;
            store::set_group_members(tx, &input.name, &input.members)?;
            Ok(())
        })?;
        self.write_accounts()?;
        self.get_group(&input.name)
    }

    /// Changes a group's description or members.
    ///
    /// # Errors
    /// [`SharesError::GroupNotFound`], [`SharesError::UnknownMember`],
    /// [`SharesError::InvalidDescription`].
    pub fn update_group(&self, name: &str, upd: GroupUpdate) -> R<Group> {
        if let Some(d) = &upd.description {
            check_description(d)?;
        }
        let _g = self.lock();
        self.ctx.db.write(|tx| {
            if !store::group_exists(tx, name)? {
                return Err(SharesError::GroupNotFound(name.to_string()));
            }
            if let Some(d) = &upd.description {
                store::set_group_description(tx, name, d)?;
            }
            if let Some(m) = &upd.members {
                check_members_exist(tx, m)?;
                store::set_group_members(tx, name, m)?;
            }
            Ok(())
        })?;
        self.write_accounts()?;
        self.get_group(name)
    }

    /// Deletes a group (its members stay). Refused while a share names `@group`.
    ///
    /// # Errors
    /// [`SharesError::GroupNotFound`], [`SharesError::InUse`].
    pub fn delete_group(&self, name: &str) -> R<()> {
        let _g = self.lock();
        self.ctx.db.write(|tx| {
            if !store::group_exists(tx, name)? {
                return Err(SharesError::GroupNotFound(name.to_string()));
            }
            let entry = format!("@{name}");
            let shares = store::shares_naming(tx, &entry)?;
            if !shares.is_empty() {
                return Err(SharesError::InUse {
                    name: entry,
                    shares,
                });
            }
            store::delete_group(tx, name)?;
            Ok(())
        })?;
        self.write_accounts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(check_group_name("family").is_ok());
        for bad in ["users", "root", "Family", "", "-x", "sudo"] {
            assert!(
                matches!(check_group_name(bad), Err(SharesError::InvalidGroupName(_))),
                "{bad}"
            );
        }
    }
}
