//! Auth primitives: password policy and hashing (argon2id), session tokens, accounts.
//!
//! Passwords are hashed with argon2id (RFC 9106) in PHC string format; session tokens are
//! 256 random bits, stored only as their SHA-256 so a copied database grants no session.
//! Accounts live in the `users` table; roles are `admin` and `user`.
//!
//! The one-time setup code (see [`SetupCode`]) also lives here, so the web role, which
//! checks it, and the serial console, which shows it, read the same file.

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
/// 422 `password_too_short` (fewer than [`MIN_PASSWORD_CHARS`] characters),
/// `password_too_long`, or `password_control_character` (a control character such as a
/// newline or an escape, which a terminal or `smbpasswd -s`, reading one line per
/// password, would cut or interpret), all with field `password`.
pub fn check_password_policy(password: &str) -> Result<(), Error> {
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(
            "password_control_character",
            "the password must not contain control characters (newline, tab, escape, ...)",
        )
        .with_field("password"));
    }
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

/// Checks that `password` is the current password of `record`'s account (from
/// [`login_record`]), before the account changes its own password. Hashes: call it
/// without holding the database lock.
///
/// # Errors
/// 403 `current_password_invalid` (field `current_password`) when it is missing or
/// wrong; 404 `user_not_found` when `record` is `None`.
pub fn check_current_password(
    record: Option<LoginRecord>,
    password: Option<&str>,
) -> Result<(), Error> {
    let record = record.ok_or_else(|| Error::not_found("user_not_found", "no such user"))?;
    match password {
        Some(p) if verify_password(&record.hash, p) => Ok(()),
        _ => Err(Error::forbidden(
            "current_password_invalid",
            "to change your own password, give your current password (current_password)",
        )
        .with_field("current_password")),
    }
}

/// Checks a login; `None` for an unknown name or a wrong password (indistinguishable,
/// and the hashing work is done either way so timing does not tell them apart).
///
/// It hashes while `conn` is borrowed; where the connection is shared, use
/// [`login_record`] under the lock and [`verify_login`] after releasing it.
pub fn check_login(
    conn: &Connection,
    name: &str,
    password: &str,
) -> Result<Option<Account>, Error> {
    Ok(verify_login(login_record(conn, name)?, password))
}

/// What a login is checked against: the account and its password hash.
pub struct LoginRecord {
    account: Account,
    hash: String,
}

/// Reads `name`'s login record (`None` when there is no such account). Quick: no hashing.
///
/// # Errors
/// Database errors.
pub fn login_record(conn: &Connection, name: &str) -> Result<Option<LoginRecord>, Error> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT role, password_hash FROM users WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(role, hash)| LoginRecord {
        account: Account {
            name: name.to_string(),
            role: Role::parse(&role).unwrap_or(Role::User),
        },
        hash,
    }))
}

/// Checks `password` against a record from [`login_record`] (argon2id: tens of
/// milliseconds). For a missing record a dummy hash is checked, so an unknown name takes
/// as long as a wrong password.
pub fn verify_login(record: Option<LoginRecord>, password: &str) -> Option<Account> {
    match record {
        Some(r) if verify_password(&r.hash, password) => Some(r.account),
        Some(_) => None,
        None => {
            let _ = verify_password(DUMMY_HASH, password);
            None
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

/// The one-time code that authorizes `POST /api/setup`.
///
/// While setup is pending, whoever first reaches the web UI on the LAN could otherwise
/// become the administrator. The code is shown only where someone with the box in hand
/// can read it (serial console, HDMI console, `pinas dev`'s output), as Home Assistant
/// and Jellyfin do. It is 8 characters from [`SETUP_CODE_ALPHABET`] (about 40 bits),
/// shown grouped as `ABCD-EFGH`, and kept in `<state_dir>/setup-code` (mode 0600) from
/// its creation until setup completes, so it stays the same across restarts.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

/// Letters and digits of a setup code: no `0`/`O`, `1`/`I`/`L`, or `U`/`V`, which are
/// easy to misread on a serial console font.
pub const SETUP_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTWXYZ23456789";
/// Characters in a setup code (without the dash).
pub const SETUP_CODE_CHARS: usize = 8;
/// File name of the setup code in the state folder.
pub const SETUP_CODE_FILE: &str = "setup-code";

impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: keep it out of debug logs.
        f.write_str("SetupCode(..)")
    }
}

impl SetupCode {
    /// A new random code.
    pub fn generate() -> SetupCode {
        use rand::Rng;
        let mut rng = rand::rng();
        SetupCode(
            (0..SETUP_CODE_CHARS)
                .map(|_| {
                    SETUP_CODE_ALPHABET[rng.random_range(0..SETUP_CODE_ALPHABET.len())] as char
                })
                .collect(),
        )
    }

    /// Reads what a person typed: case, spaces and dashes do not matter. `None` when it
    /// is not 8 characters of the alphabet.
    pub fn parse(text: &str) -> Option<SetupCode> {
        let s: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        (s.len() == SETUP_CODE_CHARS && s.bytes().all(|b| SETUP_CODE_ALPHABET.contains(&b)))
            .then_some(SetupCode(s))
    }

    /// The code as shown to people: `ABCD-EFGH`.
    pub fn grouped(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// True when `typed` is this code, compared in constant time (`subtle`), so response
    /// times do not reveal how many leading characters were right.
    pub fn matches(&self, typed: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Some(t) = SetupCode::parse(typed) else {
            return false;
        };
        bool::from(self.0.as_bytes().ct_eq(t.0.as_bytes()))
    }

    /// The path of the code in `state_dir`.
    pub fn path(state_dir: &std::path::Path) -> std::path::PathBuf {
        state_dir.join(SETUP_CODE_FILE)
    }

    /// Reads the code from `<state_dir>/setup-code`; `None` when there is none (or the
    /// file holds no valid code).
    pub fn load(state_dir: &std::path::Path) -> Option<SetupCode> {
        std::fs::read_to_string(Self::path(state_dir))
            .ok()
            .and_then(|t| SetupCode::parse(&t))
    }

    /// The stored code, or a new one written atomically with mode 0600.
    ///
    /// # Errors
    /// I/O errors writing the file.
    pub fn load_or_create(state_dir: &std::path::Path) -> std::io::Result<SetupCode> {
        if let Some(c) = Self::load(state_dir) {
            return Ok(c);
        }
        let c = SetupCode::generate();
        crate::fsutil::write_atomic(
            &Self::path(state_dir),
            format!("{}\n", c.grouped()).as_bytes(),
            0o600,
        )?;
        Ok(c)
    }

    /// Removes the stored code (setup is done). A missing file is not an error.
    ///
    /// # Errors
    /// Other I/O errors.
    pub fn remove(state_dir: &std::path::Path) -> std::io::Result<()> {
        match std::fs::remove_file(Self::path(state_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_code_is_stable_private_and_forgiving() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        assert!(SetupCode::load(d.path()).is_none());
        let c = SetupCode::load_or_create(d.path()).unwrap();
        let meta = std::fs::metadata(SetupCode::path(d.path())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(SetupCode::load_or_create(d.path()).unwrap(), c, "stable");
        let g = c.grouped();
        assert_eq!(g.len(), 9);
        assert!(c.matches(&g));
        assert!(c.matches(&g.to_lowercase().replace('-', " ")));
        assert!(!c.matches(""));
        assert!(!c.matches("AAAA-AAAA") || g == "AAAA-AAAA");
        assert!(!format!("{c:?}").contains(&g[..4]));
        SetupCode::remove(d.path()).unwrap();
        SetupCode::remove(d.path()).unwrap();
        assert!(SetupCode::load(d.path()).is_none());
        assert!(
            SetupCode::parse("ABCD-EFG0").is_none(),
            "0 is not in the alphabet"
        );
    }

    #[test]
    fn current_password_is_required() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::db::open(&d.path().join("t.db")).unwrap();
        create_account(&c, "alice", Role::User, "password1").unwrap();
        let rec = || login_record(&c, "alice").unwrap();
        check_current_password(rec(), Some("password1")).unwrap();
        for wrong in [None, Some("password2"), Some("")] {
            let e = check_current_password(rec(), wrong).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), &*e.code),
                (403, "current_password_invalid")
            );
        }
    }

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
        for bad in [
            "line\nbreak!",
            "tab\there!",
            "esc\u{1b}[2Jxx",
            "nul\0nul-nul",
        ] {
            assert_eq!(
                check_password_policy(bad).unwrap_err().code,
                "password_control_character",
                "{bad:?}"
            );
        }
        check_password_policy("ünïcödé pass").unwrap();
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
