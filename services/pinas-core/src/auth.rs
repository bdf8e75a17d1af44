//! Auth primitives: password policy and hashing (argon2id), session tokens, accounts.
//!
//! Passwords are hashed with argon2id (RFC 9106) in PHC string format; session tokens are
//! 256 random bits, stored only as their SHA-256 so a copied database grants no session.
//! Accounts live in the `users` table; roles are `admin` and `user`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::events::now_secs;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes (bounds hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May change everything.
    Admin,
    /// May use shares and change their own password.
    User,
}

impl Role {
    /// `"admin"` or `"user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
    /// Parses the database form.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// Checks the password policy.
///
/// # Errors
/// 422 `password_too_short` (fewer than [`MIN_PASSWORD_CHARS`] characters) or
/// `password_too_long`, both with field `password`.
pub fn check_password_policy(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password_too_short",
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        )
        .with_field("password"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "password_too_long",
            format!("the password must have at most {MAX_PASSWORD_BYTES} bytes"),
        )
        .with_field("password"));
    }
    Ok(())
}

/// Checks an account name: 1–32 characters, lowercase letters, digits, `_`, `-`, `.`,
/// starting with a letter or `_` (the portable POSIX user name rules, which Samba and
/// NSS both accept).
///
/// # Errors
/// 422 `invalid_username` with field `name`.
pub fn check_username(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
    const RESERVED: [&str; 8] = [
        "root", "daemon", "bin", "sys", "nobody", "guest", "pinas", "admin_",
    ];
    if !ok || RESERVED.contains(&name) {
        return Err(Error::invalid(
            "invalid_username",
            format!(
                "{name:?} is not a valid user name: use 1-32 lowercase letters, digits, '_', '-' or '.', starting with a letter (reserved: root, nobody, guest, ...)"
            ),
        )
        .with_field("name"));
    }
    Ok(())
}

/// Hashes `password` with argon2id and a random salt, in PHC string format.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash password: {e}")))
}

/// True when `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    hex::encode(random_bytes::<32>())
}

/// SHA-256 of a token, hex: what the database stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An account as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    pub name: String,
    pub role: Role,
}

/// Creates an account.
///
/// # Errors
/// `invalid_username`, the password policy errors, 409 `user_exists`.
pub fn create_account(
    conn: &Connection,
    name: &str,
    role: Role,
    password: &str,
) -> Result<(), Error> {
    check_username(name)?;
    check_password_policy(password)?;
    let hash = hash_password(password)?;
    let n = conn.execute(
        "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO NOTHING",
        params![name, role.as_str(), hash, now_secs()],
    )?;
    if n == 0 {
        return Err(
            Error::conflict("user_exists", format!("user {name:?} already exists"))
                .with_field("name"),
        );
    }
    Ok(())
}

/// Sets a new password and ends the account's sessions.
///
/// # Errors
/// The password policy errors, 404 `user_not_found`.
pub fn set_password(conn: &Connection, name: &str, password: &str) -> Result<(), Error> {
    check_password_policy(password)?;
    let hash = hash_password(password)?;
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE name = ?1",
        params![name, hash],
    )?;
    if n == 0 {
        return Err(Error::not_found(
            "user_not_found",
            format!("no user {name:?}"),
        ));
    }
    conn.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    Ok(())
}

/// Checks a login; `None` for an unknown name or a wrong password (indistinguishable,
/// and the hashing work is done either way so timing does not tell them apart).
pub fn check_login(
    conn: &Connection,
    name: &str,
    password: &str,
) -> Result<Option<Account>, Error> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT role, password_hash FROM users WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((role, hash)) if verify_password(&hash, password) => Ok(Some(Account {
            name: name.to_string(),
            role: Role::parse(&role).unwrap_or(Role::User),
        })),
        Some(_) => Ok(None),
        None => {
            // Same cost as a real check.
            let _ = verify_password(DUMMY_HASH, password);
            Ok(None)
        }
    }
}

const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0YsjzXwo1lF0TtA8pZl9hxFC5ubyGZ6n5Z5pVdXq1mY";

/// The names of all admin accounts.
pub fn admins(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM users WHERE role = 'admin' ORDER BY name")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
    }

    #[test]
    fn policy() {
        assert_eq!(
            check_password_policy("short").unwrap_err().code,
            "password_too_short"
        );
        check_password_policy("longenough").unwrap();
        check_username("alice").unwrap();
        for bad in ["", "Alice", "1abc", "a b", "root", "a/b", &"x".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::db::open(&d.path().join("t.db")).unwrap();
        create_account(&c, "alice", Role::Admin, "password1").unwrap();
        assert_eq!(
            create_account(&c, "alice", Role::User, "password1")
                .unwrap_err()
                .code,
            "user_exists"
        );
        assert!(check_login(&c, "alice", "password1").unwrap().is_some());
        assert!(check_login(&c, "alice", "password2").unwrap().is_none());
        assert!(check_login(&c, "bob", "password1").unwrap().is_none());
        set_password(&c, "alice", "password2").unwrap();
        assert!(check_login(&c, "alice", "password2").unwrap().is_some());
        assert_eq!(admins(&c).unwrap(), vec!["alice"]);
    }
}

/// The logged-in account of a request. The web role's auth layer inserts it into the
/// request extensions before any role router runs; handlers take
/// `Extension<CurrentUser>`.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Account);

impl CurrentUser {
    /// Checks that the account is an admin.
    ///
    /// # Errors
    /// 403 `admin_required`.
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.0.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::forbidden(
                "admin_required",
                "only an administrator may do this",
            ))
        }
    }
}
