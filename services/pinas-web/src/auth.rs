//! Login, logout, sessions, CSRF and the login rate limits.
//!
//! The session is a random 256-bit token in the `pinas_session` cookie (HttpOnly,
//! SameSite=Strict, Secure over TLS), stored hashed in `sessions`. A session ends after
//! [`SESSION_IDLE_SECS`] without a request, and at the latest [`SESSION_TTL_SECS`] after
//! login. Every state-changing request (POST, PUT, PATCH, DELETE) after login must carry
//! the session's CSRF token in `X-CSRF-Token`; login returns it and `GET /api/auth/me`
//! repeats it. Login attempts are limited per client network and per account (see
//! [`crate::limit`]); over the limit the answer is 429 `too_many_attempts` with
//! `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use pinas_core::auth::{self, Account, CurrentUser};
use pinas_core::events::now_secs;
use pinas_core::Error;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::limit::TooMany;
use crate::listen::Tls;
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pinas_session";
/// How long a session lasts at most after login, in seconds, however much it is used.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;
/// How long a session lasts without a request, in seconds.
pub const SESSION_IDLE_SECS: i64 = 3600;
/// A session's idle deadline is moved forward at most this often, in seconds, so a busy
/// dashboard does not write to the database on every request.
const SESSION_TOUCH_SECS: i64 = 60;

/// `POST /api/auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// What login, setup and `GET /api/auth/me` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub user: Account,
    /// Send it back in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
}

/// A session row.
#[derive(Clone)]
pub struct Session {
    account: Account,
    csrf_token: String,
}

/// The client's address (loopback when unknown, e.g. in in-process tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        ))
    }
}

/// The session token from the request's `Cookie` headers (RFC 6265 parsing by the
/// `cookie` crate).
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for `token`; an empty token with `max_age_secs` 0 clears it.
fn session_cookie(token: &str, max_age_secs: i64, tls: bool) -> HeaderValue {
    let c = cookie::Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(tls)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("a hex token makes an ASCII cookie")
}

/// How long a checked session is trusted without asking the database again. Short, so a
/// password change or an account deletion (which delete the rows) ends sessions at once
/// for practical purposes, while a busy dashboard does not queue on the database lock.
const SESSION_CACHE_SECS: u64 = 2;

fn lookup_session(state: &AppState, token: &str) -> Result<Option<Session>, Error> {
    let hash = auth::token_hash(token);
    {
        let cache = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, at)) = cache.get(&hash) {
            if at.elapsed().as_secs() < SESSION_CACHE_SECS {
                return Ok(Some(s.clone()));
            }
        }
    }
    let found = lookup_session_db(state, &hash)?;
    let mut cache = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
    match &found {
        Some(s) => {
            if cache.len() >= 1024 {
                cache.clear();
            }
            cache.insert(hash, (s.clone(), std::time::Instant::now()));
        }
        None => {
            cache.remove(&hash);
        }
    }
    Ok(found)
}

fn lookup_session_db(state: &AppState, hash: &str) -> Result<Option<Session>, Error> {
    let conn = state.ctx.db.conn();
    let now = now_secs();
    let row = conn
        .prepare_cached(
            "SELECT s.user_name, u.role, s.csrf_token, s.created_at, s.expires_at FROM sessions s
             JOIN users u ON u.name = s.user_name
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.created_at > ?3",
        )?
        .query_row(params![hash, now, now - SESSION_TTL_SECS], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((name, role, csrf_token, created_at, expires_at)) = row else {
        return Ok(None);
    };
    let idle_deadline = (now + SESSION_IDLE_SECS).min(created_at + SESSION_TTL_SECS);
    if idle_deadline - expires_at >= SESSION_TOUCH_SECS {
        conn.prepare_cached("UPDATE sessions SET expires_at = ?2 WHERE token_hash = ?1")?
            .execute(params![hash, idle_deadline])?;
    }
    Ok(Some(Session {
        account: Account {
            name,
            role: auth::Role::parse(&role).unwrap_or(auth::Role::User),
        },
        csrf_token,
    }))
}

/// Creates a session for `account`; returns the cookie to set and the session info.
pub fn start_session(
    state: &AppState,
    account: Account,
    tls: bool,
) -> Result<(HeaderValue, SessionInfo), Error> {
    let token = auth::new_token();
    let csrf = auth::new_token();
    let now = now_secs();
    {
        let conn = state.ctx.db.conn();
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1 OR created_at <= ?2",
            [now, now - SESSION_TTL_SECS],
        )?;
        conn.execute(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                auth::token_hash(&token),
                account.name,
                csrf,
                now,
                now + SESSION_IDLE_SECS
            ],
        )?;
    }
    Ok((
        session_cookie(&token, SESSION_TTL_SECS, tls),
        SessionInfo {
            user: account,
            csrf_token: csrf,
        },
    ))
}

/// 429 `too_many_attempts` with `Retry-After`.
pub fn too_many_attempts(t: TooMany, what: &str) -> Response {
    let whose = if t.account {
        "for this account"
    } else {
        "from your network"
    };
    let mut resp = Error::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!(
            "too many {what} {whose}; try again in {} s",
            t.retry_after_secs
        ),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs));
    resp
}

/// Log in.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionInfo, description = "Logged in; sets the session cookie"),
              (status = 401, body = pinas_core::error::ErrorBody, description = "invalid_credentials"),
              (status = 429, body = pinas_core::error::ErrorBody, description = "too_many_attempts")))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    tls: Option<Extension<Tls>>,
    Json(req): Json<LoginRequest>,
) -> Result<Response, Error> {
    // Counted before hashing: parallel guesses cannot all start before the first fails.
    let attempt = match state.limiter.begin_login(ip, &req.username) {
        Ok(a) => a,
        Err(t) => {
            tracing::info!(%ip, user = %req.username, "login refused: too many attempts");
            return Ok(too_many_attempts(t, "login attempts"));
        }
    };
    let (name, password) = (req.username, req.password);
    if password.len() > auth::MAX_PASSWORD_BYTES {
        return Err(invalid_credentials());
    }
    let record = auth::login_record(&state.ctx.db.conn(), &name)?;
    let permit = state.limiter.hashing_permit().await;
    // argon2 takes tens of milliseconds: keep it off the async workers, and out of the
    // database lock.
    let account = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        auth::verify_login(record, &password)
    })
    .await
    .map_err(|e| Error::internal(format!("login task: {e}")))?;
    let Some(account) = account else {
        tracing::info!(%ip, user = %name, "failed login");
        return Err(invalid_credentials());
    };
    state.limiter.succeeded(attempt);
    let (cookie, info) = start_session(&state, account, tls.is_some_and(|t| t.0 .0))?;
    Ok(([(header::SET_COOKIE, cookie)], Json(info)).into_response())
}

fn invalid_credentials() -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong user name or password",
    )
}

/// Log out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out")))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = session_token(&headers) {
        let hash = auth::token_hash(&token);
        state
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash);
        state
            .ctx
            .db
            .conn()
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [hash])?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie("", 0, false))],
    )
        .into_response())
}

/// The logged-in account and its CSRF token.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = SessionInfo), (status = 401, body = pinas_core::error::ErrorBody)))]
pub async fn me(
    Extension(user): Extension<CurrentUser>,
    Extension(csrf): Extension<CsrfToken>,
) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: user.0,
        csrf_token: csrf.0,
    })
}

/// The CSRF token of the request's session.
#[derive(Clone)]
pub struct CsrfToken(pub String);

/// The logged-in account's UI preferences (window layout, ...): any JSON object.
#[utoipa::path(get, path = "/api/auth/me/preferences", tag = "auth",
    responses((status = 200, body = Object)))]
pub async fn get_preferences(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
) -> Result<Json<serde_json::Value>, Error> {
    let text: String = state.ctx.db.conn().query_row(
        "SELECT preferences FROM users WHERE name = ?1",
        [&user.0.name],
        |r| r.get(0),
    )?;
    Ok(Json(serde_json::from_str(&text).unwrap_or_default()))
}

/// Replaces the logged-in account's UI preferences (a JSON object, at most 64 KiB).
#[utoipa::path(put, path = "/api/auth/me/preferences", tag = "auth", request_body = Object,
    responses((status = 200, body = Object), (status = 422, body = pinas_core::error::ErrorBody)))]
pub async fn put_preferences(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Json(prefs): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, Error> {
    let text = prefs.to_string();
    if !prefs.is_object() || text.len() > 64 * 1024 {
        return Err(Error::invalid(
            "invalid_preferences",
            "preferences must be a JSON object of at most 64 KiB",
        ));
    }
    state.ctx.db.conn().execute(
        "UPDATE users SET preferences = ?2 WHERE name = ?1",
        params![user.0.name, text],
    )?;
    Ok(Json(prefs))
}

/// Middleware for every protected route: setup must be done, the session cookie must be
/// valid, and state-changing requests must carry the CSRF token.
pub async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, Error> {
    let path = req.uri().path();
    // The NAS's handshake with the companion: the companion checks the pairing token
    // (and rate-limits it) itself, so these exact paths need no session.
    if crate::proxy::is_companion_token_path(req.method(), path) {
        return Ok(next.run(req).await);
    }
    if !state.is_setup_done() && !path.starts_with("/api/auth/") {
        return Err(Error::conflict(
            "setup_required",
            "PiNAS is not set up yet: finish the setup wizard first (POST /api/setup)",
        ));
    }
    let token = session_token(req.headers()).ok_or_else(Error::unauthorized)?;
    let session = lookup_session(&state, &token)?.ok_or_else(Error::unauthorized)?;
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(Error::forbidden(
                "csrf_token_invalid",
                "missing or wrong X-CSRF-Token header (get it from GET /api/auth/me)",
            ));
        }
    }
    // An account changing its own user record may be changing its password, which its
    // current password must authorize (the users API checks it): count such requests
    // per account before they run, and give back those not refused.
    let own_record = req.method() == Method::PUT
        && req.uri().path().strip_prefix("/api/users/") == Some(session.account.name.as_str());
    let attempt = if own_record {
        match state.limiter.begin_current_password(&session.account.name) {
            Ok(a) => Some(a),
            Err(t) => return Ok(too_many_attempts(t, "wrong current passwords")),
        }
    } else {
        None
    };
    req.extensions_mut().insert(CsrfToken(session.csrf_token));
    req.extensions_mut().insert(CurrentUser(session.account));
    let resp = next.run(req).await;
    if let Some(a) = attempt {
        if resp.status() != StatusCode::FORBIDDEN {
            state.limiter.succeeded(a);
        }
    }
    Ok(resp)
}

/// Compares in constant time (`subtle`), so response times do not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}
