//! The DNS control API, served on the role socket (`/run/pinas/dns.sock`): thin axum
//! handlers that extract the request, call the domain ([`crate::records`],
//! [`crate::rules`], [`crate::blocklists`], [`crate::pihole`], ...) and map the result.
//! A [`DnsError`]'s HTTP status is decided here, once, in its `IntoResponse`.
//!
//! The web role authenticates the user and proxies `/api/dns/<rest>` to `/<rest>` here,
//! so routes are at the socket root while the OpenAPI document ([`ApiDoc`]) names them as
//! the browser sees them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use pinas_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::blocking::{BlockingInput, BlockingState};
use crate::blocklists::{self, Blocklist, BlocklistInput, BlocklistPatch, LoadReport};
use crate::config::BlockingMode;
use crate::error::DnsError;
use crate::pihole::{self, PiholeParams, PiholeSummary};
use crate::querylog::{self, Bucket, LogFilter, LogRow, Stats, StatsParams, Status, Top};
use crate::records::{self, ForwardInput, RecordInput};
use crate::rules::{self, RuleFilter, RuleInput, RuleKind};
use crate::settings::{DnsSettings, SettingsInput};
use crate::state::{DnsState, SettingsState, SwitchState, Target};
use crate::store::{run_blocking, ForwardRow, LocalRecordRow, RuleRow};
use crate::upstream::UpstreamStatus;
use crate::zone::LocalType;

type ApiResult<T> = Result<T, DnsError>;
type St = State<Arc<DnsState>>;

impl From<DnsError> for pinas_core::Error {
    fn from(e: DnsError) -> Self {
        use pinas_core::Error as E;
        let (code, field) = (e.code(), e.field());
        let out = match &e {
            DnsError::Invalid { message, .. } => E::invalid(code, message.clone()),
            DnsError::NotFound { message, .. } => E::not_found(code, message.clone()),
            DnsError::Conflict { message, .. } => E::conflict(code, message.clone()),
            DnsError::Forbidden { message, .. } => E::forbidden(code, message.clone()),
            DnsError::Unavailable { message, .. } => E::unavailable(code, message.clone()),
            DnsError::Database(_) | DnsError::Internal(_) => E::internal(e.to_string()),
        };
        match field {
            Some(f) => out.with_field(f),
            None => out,
        }
    }
}

/// 422 invalid input, 404 not found, 409 conflict, 403 forbidden, 503 unavailable, 500
/// otherwise; the body is PiNAS's `{"error":{"code","message","field"}}`.
impl IntoResponse for DnsError {
    fn into_response(self) -> Response {
        if matches!(self, DnsError::Database(_) | DnsError::Internal(_)) {
            tracing::warn!(error = %self, "DNS control request failed");
        }
        pinas_core::Error::from(self).into_response()
    }
}

/// The control router; state is the running role's.
///
/// Every route but the Pi-hole summary needs the caller's role in `x-pinas-role`, which
/// the web role sets for every proxied request (see [`access`]): reads need any role,
/// changes and anything that shows clients' lookups (query log, statistics) or a secret
/// (the Pi-hole token) need `admin`. A request without the header is refused, so a
/// caller that reaches the socket some other way is never taken for an administrator.
pub fn router(st: Arc<DnsState>) -> Router {
    let admin_reads = Router::new()
        .route("/querylog", get(get_querylog))
        .route("/stats", get(get_stats))
        .route(
            "/pihole/token",
            get(get_pihole_token).post(post_pihole_token),
        )
        .route_layer(axum::middleware::from_fn(require_admin_role));
    let members = Router::new()
        .route("/records", get(get_records).post(post_record))
        .route("/records/{id}", put(put_record).delete(delete_record))
        .route("/forwards", get(get_forwards).post(post_forward))
        .route("/forwards/{id}", axum::routing::delete(delete_forward))
        .route("/switch", get(get_switch).post(post_switch))
        .route("/blocklists", get(get_blocklists).post(post_blocklist))
        .route("/blocklists/update", post(post_blocklists_update))
        .route(
            "/blocklists/{id}",
            put(put_blocklist).delete(delete_blocklist),
        )
        .route("/rules", get(get_rules).post(post_rule))
        .route("/rules/{id}", axum::routing::delete(delete_rule))
        .route("/upstreams", get(get_upstreams))
        .route("/cache/flush", post(post_cache_flush))
        .route("/metrics", get(get_metrics))
        .route("/blocking", get(get_blocking).post(post_blocking))
        .route("/settings", get(get_settings).put(put_settings))
        .route_layer(axum::middleware::from_fn(require_role));
    Router::new()
        .merge(admin_reads)
        .merge(members)
        // Counts only, never names or clients; Pi-hole v5 serves it without a login.
        .route("/pihole/api.php", get(get_pihole))
        .with_state(st)
}

/// Who may call the control API, from the headers the web role sets.
pub mod access {
    use axum::http::{HeaderMap, Method};

    use crate::error::DnsError;

    /// The role the web role named in `x-pinas-role`.
    ///
    /// # Errors
    /// 403 `role_required` when the header is missing or not text: the caller did not
    /// come through the web role, which always sets it.
    pub fn role(headers: &HeaderMap) -> Result<&str, DnsError> {
        headers
            .get("x-pinas-role")
            .and_then(|v| v.to_str().ok())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                DnsError::forbidden(
                    "role_required",
                    "the caller's role is unknown (x-pinas-role is missing)",
                )
            })
    }

    /// Checks that the caller may use `method`: reads need any role, changes `admin`.
    ///
    /// # Errors
    /// 403 `role_required` (no role) or `admin_required` (a change by a non-admin).
    pub fn check(headers: &HeaderMap, method: &Method, admin_only: bool) -> Result<(), DnsError> {
        let role = role(headers)?;
        let read = matches!(*method, Method::GET | Method::HEAD);
        if (admin_only || !read) && role != "admin" {
            return Err(DnsError::forbidden(
                "admin_required",
                "only an administrator may do this",
            ));
        }
        Ok(())
    }
}

async fn require_role(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, DnsError> {
    access::check(req.headers(), req.method(), false)?;
    Ok(next.run(req).await)
}

async fn require_admin_role(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, DnsError> {
    access::check(req.headers(), req.method(), true)?;
    Ok(next.run(req).await)
}

// ---- local records ----

/// Lists local records.
#[utoipa::path(get, path = "/api/dns/records", tag = "dns", responses((status = 200, body = [LocalRecordRow])))]
pub async fn get_records(State(st): St) -> ApiResult<Json<Vec<LocalRecordRow>>> {
    Ok(Json(run_blocking(move || records::list(&st)).await?))
}

/// Adds a local record; it answers from the next query on.
#[utoipa::path(post, path = "/api/dns/records", tag = "dns", request_body = RecordInput,
    responses((status = 201, body = LocalRecordRow),
        (status = 409, description = "name_is_switch", body = ErrorBody),
        (status = 422, description = "invalid_record", body = ErrorBody)))]
pub async fn post_record(
    State(st): St,
    Json(r): Json<RecordInput>,
) -> ApiResult<(StatusCode, Json<LocalRecordRow>)> {
    let row = run_blocking(move || records::create(&st, &r)).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Replaces a local record.
#[utoipa::path(put, path = "/api/dns/records/{id}", tag = "dns", request_body = RecordInput,
    params(("id" = i64, Path)),
    responses((status = 200, body = LocalRecordRow), (status = 404, description = "record_not_found", body = ErrorBody),
        (status = 422, description = "invalid_record", body = ErrorBody)))]
pub async fn put_record(
    State(st): St,
    Path(id): Path<i64>,
    Json(r): Json<RecordInput>,
) -> ApiResult<Json<LocalRecordRow>> {
    Ok(Json(
        run_blocking(move || records::replace(&st, id, &r)).await?,
    ))
}

/// Deletes a local record.
#[utoipa::path(delete, path = "/api/dns/records/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "record_not_found", body = ErrorBody)))]
pub async fn delete_record(State(st): St, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    run_blocking(move || records::delete(&st, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- conditional forwarding ----

/// Lists conditional forwarding rules.
#[utoipa::path(get, path = "/api/dns/forwards", tag = "dns", responses((status = 200, body = [ForwardRow])))]
pub async fn get_forwards(State(st): St) -> ApiResult<Json<Vec<ForwardRow>>> {
    Ok(Json(run_blocking(move || records::forwards(&st)).await?))
}

/// Sends a local domain (and/or its reverse zone) to another server, usually the router.
#[utoipa::path(post, path = "/api/dns/forwards", tag = "dns", request_body = ForwardInput,
    responses((status = 201, body = [ForwardRow]), (status = 409, description = "forward_exists", body = ErrorBody),
        (status = 422, description = "invalid_forward", body = ErrorBody)))]
pub async fn post_forward(
    State(st): St,
    Json(f): Json<ForwardInput>,
) -> ApiResult<(StatusCode, Json<Vec<ForwardRow>>)> {
    let rows = run_blocking(move || records::add_forward(&st, &f)).await?;
    Ok((StatusCode::CREATED, Json(rows)))
}

/// Deletes a conditional forwarding rule.
#[utoipa::path(delete, path = "/api/dns/forwards/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "forward_not_found", body = ErrorBody)))]
pub async fn delete_forward(State(st): St, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    run_blocking(move || records::delete_forward(&st, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- the switch ----

/// Where to point the switch record, and why.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchInput {
    pub target: Target,
    #[serde(default)]
    pub reason: String,
}

/// The switch record's state.
#[utoipa::path(get, path = "/api/dns/switch", tag = "dns", responses((status = 200, body = SwitchState)))]
pub async fn get_switch(State(st): St) -> Json<SwitchState> {
    Json((**st.switch.load()).clone())
}

/// Flips the switch record; the next query gets the new address. Emits `dns.switch.changed`.
#[utoipa::path(post, path = "/api/dns/switch", tag = "dns", request_body = SwitchInput,
    responses((status = 200, body = SwitchState), (status = 422, description = "invalid_reason", body = ErrorBody)))]
pub async fn post_switch(
    State(st): St,
    Json(s): Json<SwitchInput>,
) -> ApiResult<Json<SwitchState>> {
    Ok(Json(
        run_blocking(move || st.set_switch(s.target, &s.reason)).await?,
    ))
}

// ---- blocklists ----

/// Lists blocklist subscriptions with their domain and bad-line counts.
#[utoipa::path(get, path = "/api/dns/blocklists", tag = "dns", responses((status = 200, body = [Blocklist])))]
pub async fn get_blocklists(State(st): St) -> ApiResult<Json<Vec<Blocklist>>> {
    Ok(Json(run_blocking(move || blocklists::all(&st)).await?))
}

/// Subscribes to a list and downloads it now (the previous set keeps answering meanwhile).
#[utoipa::path(post, path = "/api/dns/blocklists", tag = "dns", request_body = BlocklistInput,
    responses((status = 201, body = LoadReport), (status = 409, description = "blocklist_exists", body = ErrorBody),
        (status = 422, description = "invalid_url", body = ErrorBody)))]
pub async fn post_blocklist(
    State(st): St,
    Json(b): Json<BlocklistInput>,
) -> ApiResult<(StatusCode, Json<LoadReport>)> {
    Ok((
        StatusCode::CREATED,
        Json(blocklists::subscribe(&st, b).await?),
    ))
}

/// Renames, enables or disables a subscription, and reloads the set.
#[utoipa::path(put, path = "/api/dns/blocklists/{id}", tag = "dns", request_body = BlocklistPatch, params(("id" = i64, Path)),
    responses((status = 200, body = LoadReport), (status = 404, description = "blocklist_not_found", body = ErrorBody)))]
pub async fn put_blocklist(
    State(st): St,
    Path(id): Path<i64>,
    Json(p): Json<BlocklistPatch>,
) -> ApiResult<Json<LoadReport>> {
    Ok(Json(blocklists::patch(&st, id, p).await?))
}

/// Unsubscribes from a list, deletes its copy and reloads the set.
#[utoipa::path(delete, path = "/api/dns/blocklists/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 200, body = LoadReport), (status = 404, description = "blocklist_not_found", body = ErrorBody)))]
pub async fn delete_blocklist(State(st): St, Path(id): Path<i64>) -> ApiResult<Json<LoadReport>> {
    Ok(Json(blocklists::unsubscribe(&st, id).await?))
}

/// Downloads every enabled list now and swaps in the new set. A list that cannot be
/// downloaded keeps its previous copy; its `last_error` says why.
#[utoipa::path(post, path = "/api/dns/blocklists/update", tag = "dns", responses((status = 200, body = LoadReport)))]
pub async fn post_blocklists_update(State(st): St) -> ApiResult<Json<LoadReport>> {
    Ok(Json(blocklists::update(&st, true).await?))
}

// ---- allow and deny ----

/// Lists the allowlist and denylist.
#[utoipa::path(get, path = "/api/dns/rules", tag = "dns", params(RuleFilter), responses((status = 200, body = [RuleRow])))]
pub async fn get_rules(
    State(st): St,
    Query(f): Query<RuleFilter>,
) -> ApiResult<Json<Vec<RuleRow>>> {
    Ok(Json(run_blocking(move || rules::list(&st, f.kind)).await?))
}

/// Adds an allowlist or denylist entry; the allowlist wins over lists and the denylist.
#[utoipa::path(post, path = "/api/dns/rules", tag = "dns", request_body = RuleInput,
    responses((status = 201, body = RuleRow), (status = 409, description = "rule_exists", body = ErrorBody),
        (status = 422, description = "invalid_pattern", body = ErrorBody)))]
pub async fn post_rule(
    State(st): St,
    Json(r): Json<RuleInput>,
) -> ApiResult<(StatusCode, Json<RuleRow>)> {
    let row = run_blocking(move || rules::add(&st, r)).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Deletes an allowlist or denylist entry.
#[utoipa::path(delete, path = "/api/dns/rules/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "rule_not_found", body = ErrorBody)))]
pub async fn delete_rule(State(st): St, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    run_blocking(move || rules::delete(&st, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- query log, statistics, health ----

/// The query log, newest first, filtered. Admin only: it shows every client's lookups.
#[utoipa::path(get, path = "/api/dns/querylog", tag = "dns", params(LogFilter), responses((status = 200, body = [LogRow]),
    (status = 403, description = "admin_required, role_required", body = ErrorBody)))]
pub async fn get_querylog(
    State(st): St,
    Query(f): Query<LogFilter>,
) -> ApiResult<Json<Vec<LogRow>>> {
    Ok(Json(run_blocking(move || querylog::list(&st, &f)).await?))
}

/// Totals, blocked share, top domains, top blocked, top clients and queries over time.
/// Admin only: the top lists name clients and what they looked up.
#[utoipa::path(get, path = "/api/dns/stats", tag = "dns", params(StatsParams), responses((status = 200, body = Stats),
    (status = 403, description = "admin_required, role_required", body = ErrorBody)))]
pub async fn get_stats(State(st): St, Query(p): Query<StatsParams>) -> ApiResult<Json<Stats>> {
    Ok(Json(
        run_blocking(move || querylog::window_stats(&st, &p)).await?,
    ))
}

/// Upstreams and their health.
#[utoipa::path(get, path = "/api/dns/upstreams", tag = "dns", responses((status = 200, body = [UpstreamStatus])))]
pub async fn get_upstreams(State(st): St) -> Json<Vec<UpstreamStatus>> {
    Json(
        st.forwarder
            .upstreams()
            .iter()
            .map(|u| u.status())
            .collect(),
    )
}

/// Drops every cached answer.
#[utoipa::path(post, path = "/api/dns/cache/flush", tag = "dns", responses((status = 204)))]
pub async fn post_cache_flush(State(st): St) -> StatusCode {
    st.cache.clear();
    StatusCode::NO_CONTENT
}

/// Prometheus metrics (OpenMetrics text format).
#[utoipa::path(get, path = "/api/dns/metrics", tag = "dns", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn get_metrics(State(st): St) -> ApiResult<Response> {
    let body = crate::metrics::render_state(&st)
        .map_err(|e| DnsError::internal(format!("cannot encode metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response())
}

// ---- the Pi-hole v5 API ----

/// Pi-hole v5 compatible API (`/admin/api.php`), as Pi-hole v5's `api.php` answers (see
/// [`pihole::api_php`]): the summary over the last 24 hours (read from the query log at
/// most every few seconds), `status`, `versions`, and with the token `enable` and
/// `disable`. Always 200.
#[utoipa::path(get, path = "/api/dns/pihole/api.php", tag = "dns", params(PiholeParams),
    responses((status = 200, body = PiholeSummary)))]
pub async fn get_pihole(
    State(st): St,
    Query(p): Query<PiholeParams>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(pihole::api_php(&st, p).await?))
}

/// The Pi-hole v5 API token, for Home Assistant's Pi-hole integration ("API key").
#[derive(Debug, Serialize, ToSchema)]
pub struct PiholeToken {
    /// 64 hexadecimal characters.
    pub token: String,
}

/// Shows the Pi-hole v5 API token. Admin only.
#[utoipa::path(get, path = "/api/dns/pihole/token", tag = "dns",
    responses((status = 200, body = PiholeToken), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn get_pihole_token(State(st): St) -> Json<PiholeToken> {
    Json(PiholeToken {
        token: (**st.pihole_token.load()).clone(),
    })
}

/// Replaces the Pi-hole v5 API token with a new random one; the old one stops working at
/// once. Admin only.
#[utoipa::path(post, path = "/api/dns/pihole/token", tag = "dns",
    responses((status = 200, body = PiholeToken), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn post_pihole_token(State(st): St) -> ApiResult<Json<PiholeToken>> {
    let token = run_blocking(move || st.regenerate_pihole_token()).await?;
    Ok(Json(PiholeToken { token }))
}

// ---- the blocking switch ----

/// The blocking switch: whether blocklists and the denylist apply, and until when they
/// are off.
#[utoipa::path(get, path = "/api/dns/blocking", tag = "dns", responses((status = 200, body = BlockingState)))]
pub async fn get_blocking(State(st): St) -> Json<BlockingState> {
    Json((**st.blocking.load()).clone())
}

/// Turns blocking on or off; the next query follows. While off, blocked names are
/// forwarded like any other (local records, the switch and conditional forwarding still
/// answer). Emits `dns.blocking.changed`. Admin only.
#[utoipa::path(post, path = "/api/dns/blocking", tag = "dns", request_body = BlockingInput,
    responses((status = 200, body = BlockingState),
        (status = 422, description = "invalid_duration (field duration_s), invalid_reason", body = ErrorBody)))]
pub async fn post_blocking(
    State(st): St,
    headers: HeaderMap,
    Json(b): Json<BlockingInput>,
) -> ApiResult<Json<BlockingState>> {
    // Who is asking, as the web role tells it.
    let by = headers
        .get("x-pinas-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    Ok(Json(
        run_blocking(move || crate::blocking::set_from_request(&st, &b, &by)).await?,
    ))
}

// ---- settings ----

/// Upstreams, cache limits, the blocked answer, query-log retention, allowed networks and
/// the rate limit in force, and whether they were saved through the API (`saved_at_ms`)
/// or come from `config.toml`.
#[utoipa::path(get, path = "/api/dns/settings", tag = "dns", responses((status = 200, body = SettingsState)))]
pub async fn get_settings(State(st): St) -> Json<SettingsState> {
    Json((**st.settings.load()).clone())
}

/// Saves the settings and applies them without a restart: the new upstreams (with health
/// checks), the cache resized (emptied when upstreams or TTL bounds change), the blocked
/// answer, the retention, the allowed networks and the rate limit. From then on they take
/// precedence over `config.toml`. A bad value changes nothing. Emits
/// `dns.settings.changed`. Admin only.
#[utoipa::path(put, path = "/api/dns/settings", tag = "dns", request_body = SettingsInput,
    responses((status = 200, body = SettingsState),
        (status = 422, description = "invalid_settings, with the field", body = ErrorBody)))]
pub async fn put_settings(
    State(st): St,
    Json(s): Json<SettingsInput>,
) -> ApiResult<Json<SettingsState>> {
    Ok(Json(
        run_blocking(move || {
            let current = st.settings.load().settings.clone();
            st.apply_settings(s.over(&current))
        })
        .await?,
    ))
}

/// The OpenAPI description of the DNS control API, as the browser sees it (`/api/dns/...`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_records, post_record, put_record, delete_record,
        get_forwards, post_forward, delete_forward,
        get_switch, post_switch,
        get_blocklists, post_blocklist, put_blocklist, delete_blocklist, post_blocklists_update,
        get_rules, post_rule, delete_rule,
        get_querylog, get_stats, get_upstreams, post_cache_flush, get_metrics, get_pihole,
        get_blocking, post_blocking, get_settings, put_settings, get_pihole_token, post_pihole_token
    ),
    components(schemas(
        LocalRecordRow, RecordInput, LocalType, ForwardRow, ForwardInput, SwitchInput, SwitchState, Target,
        Blocklist, BlocklistInput, BlocklistPatch, LoadReport, RuleRow, RuleInput, RuleKind, LogRow,
        Stats, Top, Bucket, Status, UpstreamStatus, PiholeSummary, ErrorBody,
        BlockingState, BlockingInput, DnsSettings, SettingsInput, SettingsState, BlockingMode, PiholeToken
    )),
    tags((name = "dns", description = "Home-network DNS: local records, the switch record, blocklists, query log"))
)]
pub struct ApiDoc;
