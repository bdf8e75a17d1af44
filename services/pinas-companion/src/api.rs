//! The companion's control API on its socket (`/run/pinas/companion.sock`): thin axum
//! handlers that extract, call the domain and map the result. The web role proxies
//! `/api/companion/<rest>` to `/<rest>` here; the OpenAPI document ([`ApiDoc`]) names
//! routes as the browser sees them.
//!
//! Who may call what:
//! - people, through the web role, which names them in `x-pinas-role`: reads need any
//!   role; settings, pairing and wake need `admin` ([`Member`], [`Admin`]);
//! - the NAS, with the pairing token as `Authorization: Bearer <token>` and no session:
//!   `POST /snapshot`, `/nas-going-offline`, `/nas-coming-online`, `/wake-nas`
//!   ([`Paired`]). These are limited per client (the address the web role names in
//!   `x-pinas-client`): 5 failed token checks or 60 requests a minute, then 429.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pinas_core::error::ErrorBody;
use pinas_core::events::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::CompanionError;
use crate::inbox::{FlushReport, InboxStatus};
use crate::nas::{Ack, WakeStarted};
use crate::remote::{RemoteSettingsInput, RemoteSettingsView, RemoteStatus};
use crate::snapshot::{self, MAX_BYTES};
use crate::store::{self, run_blocking, StateRow};
use crate::usage::{self, Period, UsageBucket};
use crate::{Companion, Settings, SettingsView, Status};

type St = State<Arc<Companion>>;
type ApiResult<T> = Result<T, CompanionError>;

/// The control router.
pub fn router(c: Arc<Companion>) -> Router {
    Router::new()
        .route("/status", get(get_status))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/pairing", get(get_pairing))
        .route("/pairing/token", post(post_pairing_token))
        .route("/wake", post(post_wake))
        .route("/history", get(get_history))
        .route("/inbox", get(get_inbox))
        .route("/inbox/flush", post(post_inbox_flush))
        .route("/usage", get(get_usage))
        .route(
            "/snapshot",
            get(get_snapshot)
                .post(post_snapshot)
                // Read by hand below, to answer 413 in PiNAS's error shape.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/nas-going-offline", post(post_going_offline))
        .route("/nas-coming-online", post(post_coming_online))
        .route("/wake-nas", post(post_wake_nas))
        .route("/remote/status", get(get_remote_status))
        .route("/remote/reset", post(post_remote_reset))
        .route(
            "/remote/settings",
            get(get_remote_settings).put(put_remote_settings),
        )
        .with_state(c)
}

/// A signed-in person of any role, named by the web role in `x-pinas-role`.
pub struct Member(pub String);
/// An administrator, named by the web role.
pub struct Admin(pub String);
/// The NAS, by the pairing token.
pub struct Paired;

fn role(parts: &Parts) -> Result<String, CompanionError> {
    parts
        .headers
        .get("x-pinas-role")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            CompanionError::forbidden(
                "role_required",
                "the caller's role is unknown (x-pinas-role is missing)",
            )
        })
}

fn user(parts: &Parts) -> String {
    parts
        .headers
        .get("x-pinas-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("an administrator")
        .to_string()
}

impl<S: Send + Sync> FromRequestParts<S> for Member {
    type Rejection = CompanionError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        role(parts).map(Member)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = CompanionError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if role(parts)? != "admin" {
            return Err(CompanionError::forbidden(
                "admin_required",
                "only an administrator may do this",
            ));
        }
        Ok(Admin(user(parts)))
    }
}

impl FromRequestParts<Arc<Companion>> for Paired {
    type Rejection = CompanionError;
    async fn from_request_parts(
        parts: &mut Parts,
        c: &Arc<Companion>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .headers
            .get("x-pinas-client")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("local")
            .to_string();
        let now = Instant::now();
        c.limiter.begin(&client, now)?;
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(e) = c.pairing.verify(auth) {
            c.limiter.failed(&client, now);
            tracing::info!(client, "refused a handshake request: {e}");
            return Err(e);
        }
        Ok(Paired)
    }
}

/// The NAS as the companion sees it: state, last heartbeat, DNS switch.
#[utoipa::path(get, path = "/api/companion/status", tag = "companion",
    responses((status = 200, body = Status)))]
pub async fn get_status(_: Member, State(c): St) -> ApiResult<Json<Status>> {
    Ok(Json(c.status().await?))
}

/// The settings (admin).
#[utoipa::path(get, path = "/api/companion/settings", tag = "companion",
    responses((status = 200, body = SettingsView), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn get_settings(_: Admin, State(c): St) -> Json<SettingsView> {
    Json(c.settings_view())
}

/// Replaces the settings (admin); they apply at once. Emits `companion.settings.changed`.
#[utoipa::path(put, path = "/api/companion/settings", tag = "companion", request_body = Settings,
    responses((status = 200, body = SettingsView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 422, description = "invalid_mac, invalid_ip, invalid_health_url, invalid_interval, invalid_misses, invalid_timeout, invalid_inbox_target, invalid_secureon_password, invalid_name", body = ErrorBody)))]
pub async fn put_settings(
    _: Admin,
    State(c): St,
    Json(s): Json<Settings>,
) -> ApiResult<Json<SettingsView>> {
    Ok(Json(run_blocking(move || c.save_settings(s)).await?))
}

/// Whether a pairing token exists, and since when.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingView {
    pub paired: bool,
    /// Unix ms.
    pub created_at_ms: Option<i64>,
}

/// A new pairing token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    /// 64 hex characters; the NAS sends it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// Whether the companion is paired (admin). The token itself is never shown again.
#[utoipa::path(get, path = "/api/companion/pairing", tag = "companion",
    responses((status = 200, body = PairingView), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn get_pairing(_: Admin, State(c): St) -> Json<PairingView> {
    let at = c.pairing.created_at_ms();
    Json(PairingView {
        paired: at.is_some(),
        created_at_ms: at,
    })
}

/// Makes a new pairing token (admin) and shows it once; the previous one stops working.
#[utoipa::path(post, path = "/api/companion/pairing/token", tag = "companion",
    responses((status = 201, body = NewToken), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn post_pairing_token(_: Admin, State(c): St) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let (token, created_at_ms) = run_blocking(move || c.rotate_token()).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            token,
            created_at_ms,
        }),
    ))
}

/// Sends the magic packet (admin) and follows the health URL until it answers or the
/// wake timeout passes, with `task.progress` events.
#[utoipa::path(post, path = "/api/companion/wake", tag = "companion",
    responses((status = 202, body = WakeStarted),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 409, description = "nas_mac_missing", body = ErrorBody),
        (status = 503, description = "wol_failed", body = ErrorBody)))]
pub async fn post_wake(
    Admin(who): Admin,
    State(c): St,
) -> ApiResult<(StatusCode, Json<WakeStarted>)> {
    let w = c.wake(&format!("wake requested by {who}")).await?;
    Ok((StatusCode::ACCEPTED, Json(w)))
}

/// The inbox: pending files and bytes, the last flush, failures in a row.
#[utoipa::path(get, path = "/api/companion/inbox", tag = "companion",
    responses((status = 200, body = InboxStatus)))]
pub async fn get_inbox(_: Member, State(c): St) -> ApiResult<Json<InboxStatus>> {
    Ok(Json(run_blocking(move || Ok(c.inbox_status())).await?))
}

/// Flushes the inbox to the NAS now (admin) and answers what moved.
#[utoipa::path(post, path = "/api/companion/inbox/flush", tag = "companion",
    responses((status = 200, body = FlushReport),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 409, description = "inbox_target_missing", body = ErrorBody),
        (status = 503, description = "inbox_flush_failed", body = ErrorBody)))]
pub async fn post_inbox_flush(_: Admin, State(c): St) -> ApiResult<Json<FlushReport>> {
    Ok(Json(
        c.flush_inbox(std::time::Duration::from_secs(3600)).await?,
    ))
}

/// The history's window.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryParams {
    /// Days back from now (1 to 366; default 7).
    pub days: Option<u32>,
}

/// The NAS's state transitions of the last `days` days, oldest first (the first row may
/// be the state in force at the window's start).
#[utoipa::path(get, path = "/api/companion/history", tag = "companion", params(HistoryParams),
    responses((status = 200, body = [StateRow]), (status = 422, description = "invalid_days", body = ErrorBody)))]
pub async fn get_history(
    _: Member,
    State(c): St,
    Query(p): Query<HistoryParams>,
) -> ApiResult<Json<Vec<StateRow>>> {
    let days = p.days.unwrap_or(7);
    if !(1..=366).contains(&days) {
        return Err(CompanionError::invalid(
            "invalid_days",
            "days",
            format!("days {days} is not between 1 and 366"),
        ));
    }
    let from = now_ms() - i64::from(days) * 86_400_000;
    let db = c.db.clone();
    Ok(Json(
        run_blocking(move || store::history(&db, from, 100_000)).await?,
    ))
}

/// The usage query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UsageParams {
    /// `day` (default), `week` or `month`.
    pub period: Option<Period>,
    /// How many periods, ending with the current one (1 to 366; default 7).
    pub count: Option<u32>,
}

/// How long and how often the NAS ran, per day, week or month (UTC), from its state
/// history.
#[utoipa::path(get, path = "/api/companion/usage", tag = "companion", params(UsageParams),
    responses((status = 200, body = [UsageBucket]), (status = 422, description = "invalid_count", body = ErrorBody)))]
pub async fn get_usage(
    _: Member,
    State(c): St,
    Query(p): Query<UsageParams>,
) -> ApiResult<Json<Vec<UsageBucket>>> {
    let period = p.period.unwrap_or(Period::Day);
    let count = p.count.unwrap_or(7);
    if !(1..=366).contains(&count) {
        return Err(CompanionError::invalid(
            "invalid_count",
            "count",
            format!("count {count} is not between 1 and 366"),
        ));
    }
    let now = now_ms();
    let mut first = now;
    for _ in 0..count {
        first = usage::period_bounds(period, first).0 - 1;
    }
    let db = c.db.clone();
    let history = run_blocking(move || store::history(&db, first + 1, 1_000_000)).await?;
    Ok(Json(usage::usage(&history, period, count, now)))
}

/// The last snapshot, as `GET /api/companion/snapshot` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    pub schema_version: u32,
    /// When it arrived, Unix ms.
    pub received_at_ms: i64,
    /// Seconds since it arrived.
    pub age_secs: i64,
    pub size_bytes: i64,
    /// The snapshot as the NAS sent it.
    pub snapshot: serde_json::Value,
}

/// The NAS's last snapshot, for every signed-in person.
#[utoipa::path(get, path = "/api/companion/snapshot", tag = "companion",
    responses((status = 200, body = SnapshotView), (status = 404, description = "no_snapshot", body = ErrorBody)))]
pub async fn get_snapshot(_: Member, State(c): St) -> ApiResult<Json<SnapshotView>> {
    let db = c.db.clone();
    let row = run_blocking(move || store::snapshot(&db))
        .await?
        .ok_or_else(|| {
            CompanionError::not_found("no_snapshot", "the NAS has sent no snapshot yet")
        })?;
    let now = now_ms();
    Ok(Json(SnapshotView {
        schema_version: row.schema_version,
        received_at_ms: row.received_at_ms,
        age_secs: (now - row.received_at_ms).max(0) / 1000,
        size_bytes: row.size_bytes,
        snapshot: serde_json::from_str(&row.body).unwrap_or(serde_json::Value::Null),
    }))
}

/// What the companion answers a snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotStored {
    pub stored: bool,
    pub received_at_ms: i64,
    pub size_bytes: i64,
}

/// The NAS sends its metadata snapshot (pairing token; schema in docs/companion.md; at
/// most 1 MiB). Stored whole, replacing the previous one.
#[utoipa::path(post, path = "/api/companion/snapshot", tag = "companion",
    request_body(content = crate::snapshot::Snapshot, content_type = "application/json"),
    security(("pairing_token" = [])),
    responses((status = 200, body = SnapshotStored),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 413, description = "snapshot_too_large", body = ErrorBody),
        (status = 422, description = "invalid_snapshot, unsupported_snapshot_version", body = ErrorBody),
        (status = 429, description = "too_many_requests", body = ErrorBody)))]
pub async fn post_snapshot(
    _: Paired,
    State(c): St,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<SnapshotStored>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(snapshot::too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BYTES)
        .await
        .map_err(|_| snapshot::too_large())?;
    let row = snapshot::accept(&bytes, now_ms())?;
    let out = SnapshotStored {
        stored: true,
        received_at_ms: row.received_at_ms,
        size_bytes: row.size_bytes,
    };
    let db = c.db.clone();
    run_blocking(move || store::save_snapshot(&db, &row)).await?;
    c.events.emit(
        "companion.snapshot.received",
        serde_json::json!({"received_at_ms": out.received_at_ms, "size_bytes": out.size_bytes}),
    );
    Ok(Json(out))
}

/// The NAS is shutting down (pairing token): the DNS switch goes to the companion, and
/// the answer comes only once that is in force. Repeating it changes nothing more.
#[utoipa::path(post, path = "/api/companion/nas-going-offline", tag = "companion",
    security(("pairing_token" = [])),
    responses((status = 200, body = Ack),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 429, description = "too_many_requests", body = ErrorBody),
        (status = 503, description = "dns_unavailable: not acknowledged", body = ErrorBody)))]
pub async fn post_going_offline(_: Paired, State(c): St) -> ApiResult<Json<Ack>> {
    Ok(Json(c.going_offline().await?))
}

/// The NAS has started (pairing token): the DNS switch goes back to the NAS, then the
/// answer. Repeating it changes nothing more.
#[utoipa::path(post, path = "/api/companion/nas-coming-online", tag = "companion",
    security(("pairing_token" = [])),
    responses((status = 200, body = Ack),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 429, description = "too_many_requests", body = ErrorBody),
        (status = 503, description = "dns_unavailable: not acknowledged", body = ErrorBody)))]
pub async fn post_coming_online(_: Paired, State(c): St) -> ApiResult<Json<Ack>> {
    Ok(Json(c.coming_online().await?))
}

/// Wakes the NAS for a paired caller (pairing token), as `POST /wake` does for an admin.
#[utoipa::path(post, path = "/api/companion/wake-nas", tag = "companion",
    security(("pairing_token" = [])),
    responses((status = 202, body = WakeStarted),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 409, description = "nas_mac_missing", body = ErrorBody),
        (status = 429, description = "too_many_requests", body = ErrorBody)))]
pub async fn post_wake_nas(_: Paired, State(c): St) -> ApiResult<Response> {
    let w = c.wake("wake requested with the pairing token").await?;
    Ok((StatusCode::ACCEPTED, Json(w)).into_response())
}

/// The remote share and its local fallback: whether it is set up and answering, where
/// new files go now, failures in a row, the cool-down, fallback files waiting. Served by
/// the companion role; the web role forwards `/api/storage/remote/...` here.
#[utoipa::path(get, path = "/api/storage/remote/status", tag = "companion",
    responses((status = 200, body = RemoteStatus), (status = 403, description = "role_required", body = ErrorBody)))]
pub async fn get_remote_status(_: Member, State(c): St) -> ApiResult<Json<RemoteStatus>> {
    Ok(Json(run_blocking(move || Ok(c.remote().status())).await?))
}

/// Forgets the failures and the cool-down and checks the remote share at once (admin);
/// answers the status after that check.
#[utoipa::path(post, path = "/api/storage/remote/reset", tag = "companion",
    responses((status = 200, body = RemoteStatus), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn post_remote_reset(Admin(who): Admin, State(c): St) -> ApiResult<Json<RemoteStatus>> {
    tracing::info!(by = %who, "remote share reset");
    c.remote().reset();
    Ok(Json(c.check_remote().await?))
}

/// The remote share's settings (admin): kind, server, share, user name, version, and
/// whether a password is stored (never the password).
#[utoipa::path(get, path = "/api/storage/remote/settings", tag = "companion",
    responses((status = 200, body = RemoteSettingsView), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn get_remote_settings(_: Admin, State(c): St) -> ApiResult<Json<RemoteSettingsView>> {
    Ok(Json(
        run_blocking(move || Ok(c.remote().settings_view())).await?,
    ))
}

/// Replaces the remote share's settings (admin): the password goes to a credentials
/// file (0600) and is never shown; absent, the stored one is kept. The old share is
/// unmounted and the new one mounted by the check that follows.
#[utoipa::path(put, path = "/api/storage/remote/settings", tag = "companion", request_body = RemoteSettingsInput,
    responses((status = 200, body = RemoteSettingsView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 422, description = "invalid_kind, invalid_server, invalid_share, invalid_username, invalid_password, invalid_version, invalid_body", body = ErrorBody)))]
pub async fn put_remote_settings(
    Admin(who): Admin,
    State(c): St,
    Json(v): Json<serde_json::Value>,
) -> ApiResult<Json<RemoteSettingsView>> {
    let input: RemoteSettingsInput =
        serde_json::from_value(v).map_err(|e| CompanionError::Invalid {
            code: "invalid_body",
            message: format!("the request body does not fit: {e}"),
            field: None,
        })?;
    tracing::info!(by = %who, "remote share settings changed");
    let c2 = c.clone();
    let view = run_blocking(move || c2.remote().save(input)).await?;
    let _ = c.check_remote().await?;
    Ok(Json(view))
}

/// The companion role's OpenAPI document (paths as the browser sees them).
#[derive(OpenApi)]
#[openapi(
    paths(get_status, get_settings, put_settings, get_pairing, post_pairing_token, post_wake,
        get_history, get_inbox, post_inbox_flush, get_usage, get_snapshot, post_snapshot, post_going_offline,
        post_coming_online, post_wake_nas, get_remote_status, post_remote_reset,
        get_remote_settings, put_remote_settings),
    components(schemas(Status, Settings, SettingsView, PairingView, NewToken, WakeStarted,
        StateRow, InboxStatus, FlushReport, UsageBucket, Period, SnapshotView, SnapshotStored, Ack,
        crate::snapshot::Snapshot, crate::nas::NasState, crate::nas::Heartbeat,
        crate::dnsswitch::SwitchView, crate::dnsswitch::Target, RemoteStatus,
        RemoteSettingsInput, RemoteSettingsView, crate::remote::RemoteSettings,
        crate::remote::RemoteKind)),
    tags((name = "companion", description = "The companion: the big NAS's state, Wake-on-LAN, heartbeat, handshake and snapshot"))
)]
pub struct ApiDoc;
