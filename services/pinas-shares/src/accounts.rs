//! NAS users and groups in the database: the `users`, `groups` and `group_members`
//! tables (owned by the core for accounts; this crate adds Unix ids and groups).

use pinas_core::auth::Role;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::SharesError;
use crate::model;
use crate::render::{UnixGroup, UnixUser};

/// First Unix uid and gid given to PiNAS users and groups (below are the system's).
pub const FIRST_ID: u32 = 2001;

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

fn groups_of(conn: &Connection, user: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn
        .prepare("SELECT group_name FROM group_members WHERE user_name = ?1 ORDER BY group_name")?;
    let rows = st.query_map([user], |r| r.get(0))?;
    rows.collect()
}

fn members_of(conn: &Connection, group: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn
        .prepare("SELECT user_name FROM group_members WHERE group_name = ?1 ORDER BY user_name")?;
    let rows = st.query_map([group], |r| r.get(0))?;
    rows.collect()
}

/// Every user, by name.
pub fn list_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let rows: Vec<(String, String)> = {
        let mut st = conn.prepare("SELECT name, role FROM users ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    rows.into_iter()
        .map(|(name, role)| {
            Ok(User {
                groups: groups_of(conn, &name)?,
                role: Role::parse(&role).unwrap_or(Role::User),
                name,
            })
        })
        .collect()
}

/// One user.
pub fn get_user(conn: &Connection, name: &str) -> Result<User, SharesError> {
    let role: Option<String> = conn
        .query_row("SELECT role FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    let role = role.ok_or_else(|| SharesError::UserNotFound(name.to_string()))?;
    Ok(User {
        name: name.to_string(),
        role: Role::parse(&role).unwrap_or(Role::User),
        groups: groups_of(conn, name)?,
    })
}

/// Every group, by name.
pub fn list_groups(conn: &Connection) -> rusqlite::Result<Vec<Group>> {
    let rows: Vec<(String, String)> = {
        let mut st = conn.prepare("SELECT name, description FROM groups ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    rows.into_iter()
        .map(|(name, description)| {
            Ok(Group {
                members: members_of(conn, &name)?,
                description,
                name,
            })
        })
        .collect()
}

/// One group.
pub fn get_group(conn: &Connection, name: &str) -> Result<Group, SharesError> {
    let d: Option<String> = conn
        .query_row(
            "SELECT description FROM groups WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    let description = d.ok_or_else(|| SharesError::GroupNotFound(name.to_string()))?;
    Ok(Group {
        name: name.to_string(),
        description,
        members: members_of(conn, name)?,
    })
}

fn exists(conn: &Connection, table: &str, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE name = ?1)"),
        [name],
        |r| r.get(0),
    )
}

/// Replaces `user`'s group memberships.
///
/// # Errors
/// [`SharesError::UnknownGroup`].
pub fn set_user_groups(
    conn: &Connection,
    user: &str,
    groups: &[String],
) -> Result<(), SharesError> {
    for g in groups {
        if !exists(conn, "groups", g)? {
            return Err(SharesError::UnknownGroup(g.clone()));
        }
    }
    conn.execute("DELETE FROM group_members WHERE user_name = ?1", [user])?;
    for g in groups {
        conn.execute(
            "INSERT OR IGNORE INTO group_members (group_name, user_name) VALUES (?1, ?2)",
            params![g, user],
        )?;
    }
    Ok(())
}

/// Replaces `group`'s members.
///
/// # Errors
/// [`SharesError::UnknownMember`].
pub fn set_group_members(
    conn: &Connection,
    group: &str,
    members: &[String],
) -> Result<(), SharesError> {
    for m in members {
        if !exists(conn, "users", m)? {
            return Err(SharesError::UnknownMember(m.clone()));
        }
    }
    conn.execute("DELETE FROM group_members WHERE group_name = ?1", [group])?;
    for m in members {
        conn.execute(
            "INSERT OR IGNORE INTO group_members (group_name, user_name) VALUES (?1, ?2)",
            params![group, m],
        )?;
    }
    Ok(())
}

/// Creates a group with the next free gid.
///
/// # Errors
/// [`SharesError::InvalidGroupName`], [`SharesError::GroupExists`],
/// [`SharesError::UnknownMember`], description longer than 256 characters.
pub fn insert_group(conn: &Connection, g: &NewGroup) -> Result<(), SharesError> {
    check_group_name(&g.name)?;
    if g.description.chars().count() > 256 {
        return Err(SharesError::InvalidDescription);
    }
    if exists(conn, "groups", &g.name)? {
        return Err(SharesError::GroupExists(g.name.clone()));
    }
    for m in &g.members {
        if !exists(conn, "users", m)? {
            return Err(SharesError::UnknownMember(m.clone()));
        }
    }
    let gid = next_id(conn, "groups", "gid")?;
    conn.execute(
        "INSERT INTO groups (name, description, gid) VALUES (?1, ?2, ?3)",
        params![g.name, g.description, gid],
    )?;
    set_group_members(conn, &g.name, &g.members)
}

/// The next free id in `table.col`, at least [`FIRST_ID`].
fn next_id(conn: &Connection, table: &str, col: &str) -> rusqlite::Result<u32> {
    let max: Option<u32> =
        conn.query_row(&format!("SELECT MAX({col}) FROM {table}"), [], |r| r.get(0))?;
    Ok(max.map_or(FIRST_ID, |m| (m + 1).max(FIRST_ID)))
}

/// Gives a uid to users and a gid to groups that have none (accounts made by the
/// setup wizard, for instance).
pub fn assign_missing_ids(conn: &Connection) -> rusqlite::Result<()> {
    for (table, col) in [("users", "uid"), ("groups", "gid")] {
        let names: Vec<String> = {
            let mut st = conn.prepare(&format!(
                "SELECT name FROM {table} WHERE {col} IS NULL ORDER BY name"
            ))?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for n in names {
            let id = next_id(conn, table, col)?;
            conn.execute(
                &format!("UPDATE {table} SET {col} = ?1 WHERE name = ?2"),
                params![id, n],
            )?;
        }
    }
    Ok(())
}

/// Users and groups as the account files need them.
pub fn unix_accounts(conn: &Connection) -> rusqlite::Result<(Vec<UnixUser>, Vec<UnixGroup>)> {
    let users = {
        let mut st =
            conn.prepare("SELECT name, uid FROM users WHERE uid IS NOT NULL ORDER BY uid")?;
        let rows = st.query_map([], |r| {
            Ok(UnixUser {
                name: r.get(0)?,
                uid: r.get(1)?,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let names: Vec<(String, u32)> = {
        let mut st =
            conn.prepare("SELECT name, gid FROM groups WHERE gid IS NOT NULL ORDER BY gid")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let groups = names
        .into_iter()
        .map(|(name, gid)| {
            Ok(UnixGroup {
                members: members_of(conn, &name)?,
                name,
                gid,
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((users, groups))
}

/// Shares whose valid users name `entry` (`alice` or `@family`).
pub fn shares_naming(conn: &Connection, entry: &str) -> rusqlite::Result<Vec<String>> {
    Ok(model::load_all(conn)?
        .into_iter()
        .filter(|s| s.valid_users.iter().any(|v| v == entry))
        .map(|s| s.name)
        .collect())
}

/// How many admins there are.
pub fn admin_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_ids() {
        let d = tempfile::tempdir().unwrap();
        let c = pinas_core::db::open(&d.path().join("t.db")).unwrap();
        pinas_core::auth::create_account(&c, "alice", Role::Admin, "password1").unwrap();
        assign_missing_ids(&c).unwrap();
        insert_group(
            &c,
            &NewGroup {
                name: "family".into(),
                description: "".into(),
                members: vec!["alice".into()],
            },
        )
        .unwrap();
        assert!(matches!(
            insert_group(
                &c,
                &NewGroup {
                    name: "family".into(),
                    description: "".into(),
                    members: vec![]
                }
            ),
            Err(SharesError::GroupExists(_))
        ));
        assert!(matches!(
            insert_group(
                &c,
                &NewGroup {
                    name: "users".into(),
                    description: "".into(),
                    members: vec![]
                }
            ),
            Err(SharesError::InvalidGroupName(_))
        ));
        assert!(matches!(
            insert_group(
                &c,
                &NewGroup {
                    name: "kids".into(),
                    description: "".into(),
                    members: vec!["bob".into()]
                }
            ),
            Err(SharesError::UnknownMember(_))
        ));
        let (users, groups) = unix_accounts(&c).unwrap();
        assert_eq!(users[0].uid, FIRST_ID);
        assert_eq!(groups[0].gid, FIRST_ID);
        assert_eq!(groups[0].members, ["alice"]);
        assert_eq!(get_user(&c, "alice").unwrap().groups, ["family"]);
    }
}
