//! Every SQL statement of the shares role: the `shares` table it owns, the Unix ids,
//! groups and memberships it adds to accounts, and the account rows (`users`, owned by
//! the core) it creates, changes and deletes. Typed rows in and out; no rules here
//! beyond what the schema enforces (the domain modules check names, policies and uses).
//!
//! Each function takes the connection or transaction to run on, so that a caller can
//! group several in one transaction ([`pinas_core::db::Db::write`]).

use pinas_core::auth::Role;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::accounts::{Group, User};
use crate::model::Share;
use crate::render::{UnixGroup, UnixUser};

/// First Unix uid and gid given to PiNAS users and groups (below are the system's).
pub const FIRST_ID: u32 = 2001;

type Result<T> = rusqlite::Result<T>;

// ---- shares ----

fn share_from_row(r: &Row<'_>) -> Result<Share> {
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    Ok(Share {
        id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        description: r.get(3)?,
        read_only: r.get(4)?,
        guest_ok: r.get(5)?,
        valid_users: list(r.get(6)?),
        smb: r.get(7)?,
        nfs: r.get(8)?,
        nfs_clients: list(r.get(9)?),
    })
}

const SHARE_COLUMNS: &str =
    "id, name, path, description, read_only, guest_ok, valid_users, smb, nfs, nfs_clients";

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Every share, by name (without regard to case).
pub fn shares(conn: &Connection) -> Result<Vec<Share>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {SHARE_COLUMNS} FROM shares ORDER BY name COLLATE NOCASE"
    ))?;
    let rows = st.query_map([], share_from_row)?;
    rows.collect()
}

/// The share with `id`, if any.
pub fn share(conn: &Connection, id: i64) -> Result<Option<Share>> {
    conn.query_row(
        &format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?1"),
        [id],
        share_from_row,
    )
    .optional()
}

/// Inserts `s` (its `id` is ignored) and returns the new id.
pub fn insert_share(conn: &Connection, s: &Share) -> Result<i64> {
    conn.execute(
        "INSERT INTO shares (name, path, description, read_only, guest_ok, valid_users, smb, nfs,
                             nfs_clients, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.name,
            s.path,
            s.description,
            s.read_only,
            s.guest_ok,
            json_list(&s.valid_users),
            s.smb,
            s.nfs,
            json_list(&s.nfs_clients),
            pinas_core::events::now_secs(),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes every field of `s` to the row with its id.
pub fn update_share(conn: &Connection, s: &Share) -> Result<()> {
    conn.execute(
        "UPDATE shares SET name = ?2, path = ?3, description = ?4, read_only = ?5, guest_ok = ?6,
                valid_users = ?7, smb = ?8, nfs = ?9, nfs_clients = ?10 WHERE id = ?1",
        params![
            s.id,
            s.name,
            s.path,
            s.description,
            s.read_only,
            s.guest_ok,
            json_list(&s.valid_users),
            s.smb,
            s.nfs,
            json_list(&s.nfs_clients),
        ],
    )?;
    Ok(())
}

/// Deletes the share with `id` (no error when there is none).
pub fn delete_share(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("DELETE FROM shares WHERE id = ?1", [id])?;
    Ok(())
}

/// Whether any share is exported over SMB, and whether any over NFS.
pub fn protocols_in_use(conn: &Connection) -> Result<(bool, bool)> {
    conn.query_row(
        "SELECT COALESCE(SUM(smb), 0) > 0, COALESCE(SUM(nfs), 0) > 0 FROM shares",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Names of the shares whose valid users list `entry` (`alice` or `@family`).
pub fn shares_naming(conn: &Connection, entry: &str) -> Result<Vec<String>> {
    Ok(shares(conn)?
        .into_iter()
        .filter(|s| s.valid_users.iter().any(|v| v == entry))
        .map(|s| s.name)
        .collect())
}

// ---- users ----

/// Whether a user named `name` exists.
pub fn user_exists(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )
}

fn groups_of(conn: &Connection, user: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT group_name FROM group_members WHERE user_name = ?1 ORDER BY group_name",
    )?;
    let rows = st.query_map([user], |r| r.get(0))?;
    rows.collect()
}

/// Every user, by name, with their groups.
pub fn users(conn: &Connection) -> Result<Vec<User>> {
    let rows: Vec<(String, String)> = {
        let mut st = conn.prepare_cached("SELECT name, role FROM users ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_>>()?
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

/// The user named `name`, if any, with their groups.
pub fn user(conn: &Connection, name: &str) -> Result<Option<User>> {
    let role: Option<String> = conn
        .query_row("SELECT role FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(role) = role else {
        return Ok(None);
    };
    Ok(Some(User {
        name: name.to_string(),
        role: Role::parse(&role).unwrap_or(Role::User),
        groups: groups_of(conn, name)?,
    }))
}

/// Inserts an account with an argon2id PHC `password_hash` (see
/// [`pinas_core::auth::hash_password`]). Returns false, changing nothing, when the name
/// is taken.
pub fn insert_user(conn: &Connection, name: &str, role: Role, password_hash: &str) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO NOTHING",
        params![
            name,
            role.as_str(),
            password_hash,
            pinas_core::events::now_secs()
        ],
    )?;
    Ok(n == 1)
}

/// Sets `name`'s role.
pub fn set_role(conn: &Connection, name: &str, role: Role) -> Result<()> {
    conn.execute(
        "UPDATE users SET role = ?2 WHERE name = ?1",
        [name, role.as_str()],
    )?;
    Ok(())
}

/// `name`'s password hash (PHC string), if the user exists.
pub fn password_hash(conn: &Connection, name: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT password_hash FROM users WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// Sets `name`'s password hash and, when `end_sessions`, ends their sessions (a new
/// password logs out every browser that knew the old one).
pub fn set_password_hash(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    end_sessions: bool,
) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE name = ?1",
        [name, password_hash],
    )?;
    if end_sessions {
        conn.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    }
    Ok(())
}

/// Deletes the user named `name` (memberships go with it).
pub fn delete_user(conn: &Connection, name: &str) -> Result<()> {
    conn.execute("DELETE FROM users WHERE name = ?1", [name])?;
    Ok(())
}

/// How many admins there are.
pub fn admin_count(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
        r.get(0)
    })
}

// ---- groups ----

/// Whether a group named `name` exists.
pub fn group_exists(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM groups WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )
}

fn members_of(conn: &Connection, group: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT user_name FROM group_members WHERE group_name = ?1 ORDER BY user_name",
    )?;
    let rows = st.query_map([group], |r| r.get(0))?;
    rows.collect()
}

/// Every group, by name, with its members.
pub fn groups(conn: &Connection) -> Result<Vec<Group>> {
    let rows: Vec<(String, String)> = {
        let mut st = conn.prepare_cached("SELECT name, description FROM groups ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_>>()?
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

/// The group named `name`, if any, with its members.
pub fn group(conn: &Connection, name: &str) -> Result<Option<Group>> {
    let d: Option<String> = conn
        .query_row(
            "SELECT description FROM groups WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    let Some(description) = d else {
        return Ok(None);
    };
    Ok(Some(Group {
        name: name.to_string(),
        description,
        members: members_of(conn, name)?,
    }))
}

/// Inserts a group with the next free gid.
pub fn insert_group(conn: &Connection, name: &str, description: &str) -> Result<()> {
    let gid = next_id(conn, "groups", "gid")?;
    conn.execute(
        "INSERT INTO groups (name, description, gid) VALUES (?1, ?2, ?3)",
        params![name, description, gid],
    )?;
    Ok(())
}

/// Sets a group's description.
pub fn set_group_description(conn: &Connection, name: &str, description: &str) -> Result<()> {
    conn.execute(
        "UPDATE groups SET description = ?2 WHERE name = ?1",
        [name, description],
    )?;
    Ok(())
}

/// Deletes the group named `name` (its memberships go with it, its members stay).
pub fn delete_group(conn: &Connection, name: &str) -> Result<()> {
    conn.execute("DELETE FROM groups WHERE name = ?1", [name])?;
    Ok(())
}

/// Replaces `user`'s memberships with `groups` (which must exist).
pub fn set_user_groups(conn: &Connection, user: &str, groups: &[String]) -> Result<()> {
    conn.execute("DELETE FROM group_members WHERE user_name = ?1", [user])?;
    for g in groups {
        conn.execute(
            "INSERT OR IGNORE INTO group_members (group_name, user_name) VALUES (?1, ?2)",
            params![g, user],
        )?;
    }
    Ok(())
}

/// Replaces `group`'s members with `members` (who must exist).
pub fn set_group_members(conn: &Connection, group: &str, members: &[String]) -> Result<()> {
    conn.execute("DELETE FROM group_members WHERE group_name = ?1", [group])?;
    for m in members {
        conn.execute(
            "INSERT OR IGNORE INTO group_members (group_name, user_name) VALUES (?1, ?2)",
            params![group, m],
        )?;
    }
    Ok(())
}

// ---- Unix ids ----

/// The next free id in `table.col`, at least [`FIRST_ID`]. `table` and `col` are this
/// module's constants, never input.
fn next_id(conn: &Connection, table: &str, col: &str) -> Result<u32> {
    let max: Option<u32> =
        conn.query_row(&format!("SELECT MAX({col}) FROM {table}"), [], |r| r.get(0))?;
    Ok(max.map_or(FIRST_ID, |m| (m + 1).max(FIRST_ID)))
}

/// Gives a uid to users and a gid to groups that have none (accounts made by the
/// setup wizard, for instance).
pub fn assign_missing_ids(conn: &Connection) -> Result<()> {
    for (table, col) in [("users", "uid"), ("groups", "gid")] {
        let names: Vec<String> = {
            let mut st = conn.prepare(&format!(
                "SELECT name FROM {table} WHERE {col} IS NULL ORDER BY name"
            ))?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_>>()?
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

/// Users and groups with their Unix ids, as the account files need them.
pub fn unix_accounts(conn: &Connection) -> Result<(Vec<UnixUser>, Vec<UnixGroup>)> {
    let users = {
        let mut st =
            conn.prepare("SELECT name, uid FROM users WHERE uid IS NOT NULL ORDER BY uid")?;
        let rows = st.query_map([], |r| {
            Ok(UnixUser {
                name: r.get(0)?,
                uid: r.get(1)?,
            })
        })?;
        rows.collect::<Result<Vec<_>>>()?
    };
    let names: Vec<(String, u32)> = {
        let mut st =
            conn.prepare("SELECT name, gid FROM groups WHERE gid IS NOT NULL ORDER BY gid")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_>>()?
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
        .collect::<Result<Vec<_>>>()?;
    Ok((users, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_members_and_accounts() {
        let d = tempfile::tempdir().unwrap();
        let c = pinas_core::db::open(&d.path().join("t.db")).unwrap();
        assert!(insert_user(&c, "alice", Role::Admin, "$argon2id$x").unwrap());
        assert!(!insert_user(&c, "alice", Role::User, "$argon2id$y").unwrap());
        assign_missing_ids(&c).unwrap();
        insert_group(&c, "family", "").unwrap();
        set_group_members(&c, "family", &["alice".into()]).unwrap();
        let (users, groups) = unix_accounts(&c).unwrap();
        assert_eq!(users[0].uid, FIRST_ID);
        assert_eq!(groups[0].gid, FIRST_ID);
        assert_eq!(groups[0].members, ["alice"]);
        assert_eq!(user(&c, "alice").unwrap().unwrap().groups, ["family"]);
        assert_eq!(admin_count(&c).unwrap(), 1);
        delete_user(&c, "alice").unwrap();
        assert!(group(&c, "family").unwrap().unwrap().members.is_empty());
    }
}
