//! The DNS control API, served on the role socket (`/run/pinas/dns.sock`).
//!
//! The web role authenticates the user (admin for changes) and proxies `/api/dns/<rest>`
//! to `/<rest>` here, so routes are at the socket root while the OpenAPI document
//! ([`ApiDoc`]) names them as the browser sees them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use pinas_core::error::ErrorBody;
use pinas_core::events::{now_ms, now_secs};
use pinas_core::Error;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::blocking::BlockingState;
use crate::blocklists::{self, Blocklist, LoadReport};
use crate::config::BlockingMode;
use crate::lists;
use crate::pihole;
use crate::querylog::{self, LogFilter, LogRow, Stats};
use crate::settings::DnsSettings;
use crate::state::{DnsState, SettingsState, SwitchState, Target};
use crate::upstream::{UpstreamAddr, UpstreamStatus};
use crate::zone::{self, LocalType};

type ApiResult<T> = Result<T, Error>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    pinas_core::error::run_blocking("DNS", f).await
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
    use pinas_core::Error;

    /// The role the web role named in `x-pinas-role`.
    ///
    /// # Errors
    /// 403 `role_required` when the header is missing or not text: the caller did not
    /// come through the web role, which always sets it.
    pub fn role(headers: &HeaderMap) -> Result<&str, Error> {
        headers
            .get("x-pinas-role")
            .and_then(|v| v.to_str().ok())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::forbidden(
                    "role_required",
                    "the caller's role is unknown (x-pinas-role is missing)",
                )
            })
    }

    /// Checks that the caller may use `method`: reads need any role, changes `admin`.
    ///
    /// # Errors
    /// 403 `role_required` (no role) or `admin_required` (a change by a non-admin).
    pub fn check(headers: &HeaderMap, method: &Method, admin_only: bool) -> Result<(), Error> {
        let role = role(headers)?;
        let read = matches!(*method, Method::GET | Method::HEAD);
        if (admin_only || !read) && role != "admin" {
            return Err(Error::forbidden(
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
) -> Result<Response, Error> {
    access::check(req.headers(), req.method(), false)?;
    Ok(next.run(req).await)
}

async fn require_admin_role(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, Error> {
    access::check(req.headers(), req.method(), true)?;
    Ok(next.run(req).await)
}

// ---- local records ----

/// A local record.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocalRecordRow {
    pub id: i64,
    /// Owner name, e.g. `printer.home` or `*.lab.home`.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: LocalType,
    /// Address for A/AAAA, target name for CNAME/PTR.
    pub value: String,
    pub ttl_secs: u32,
    pub comment: String,
}

/// A record to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordInput {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: LocalType,
    pub value: String,
    /// Defaults to `dns.local_ttl_secs`.
    pub ttl_secs: Option<u32>,
    #[serde(default)]
    pub comment: String,
}

fn check_record(st: &DnsState, r: &RecordInput) -> ApiResult<(String, String, u32)> {
    let (owner, _) = zone::validate(&r.name, r.rtype, &r.value)
        .map_err(|(field, msg)| Error::invalid("invalid_record", msg).with_field(field))?;
    if owner == st.switch_name {
        return Err(Error::conflict(
            "name_is_switch",
            format!("{owner} is the switch record; change it with /api/dns/switch"),
        )
        .with_field("name"));
    }
    let value = match r.rtype {
        LocalType::A | LocalType::Aaaa => r.value.trim().to_string(),
        _ => crate::domains::normalize(r.value.trim()).unwrap_or_default(),
    };
    Ok((owner, value, r.ttl_secs.unwrap_or(st.cfg.local_ttl_secs)))
}

fn read_records(st: &DnsState, id: Option<i64>) -> ApiResult<Vec<LocalRecordRow>> {
    let conn = st.db.conn();
    let mut s = conn.prepare("SELECT id, name, type, value, ttl_secs, comment FROM dns_records WHERE ?1 IS NULL OR id = ?1 ORDER BY name, type, id")?;
    let rows = s.query_map([id], |r| {
        Ok(LocalRecordRow {
            id: r.get(0)?,
            name: r.get(1)?,
            rtype: LocalType::parse(&r.get::<_, String>(2)?).unwrap_or(LocalType::A),
            value: r.get(3)?,
            ttl_secs: r.get::<_, i64>(4)? as u32,
            comment: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lists local records.
#[utoipa::path(get, path = "/api/dns/records", tag = "dns", responses((status = 200, body = [LocalRecordRow])))]
pub async fn get_records(State(st): State<Arc<DnsState>>) -> ApiResult<Json<Vec<LocalRecordRow>>> {
    Ok(Json(blocking(move || read_records(&st, None)).await?))
}

/// Adds a local record; it answers from the next query on.
#[utoipa::path(post, path = "/api/dns/records", tag = "dns", request_body = RecordInput,
    responses((status = 201, body = LocalRecordRow),
        (status = 409, description = "name_is_switch", body = ErrorBody),
        (status = 422, description = "invalid_record", body = ErrorBody)))]
pub async fn post_record(
    State(st): State<Arc<DnsState>>,
    Json(r): Json<RecordInput>,
) -> ApiResult<(StatusCode, Json<LocalRecordRow>)> {
    let row = blocking(move || {
        let (name, value, ttl) = check_record(&st, &r)?;
        let id = {
            let conn = st.db.conn();
            conn.execute(
                "INSERT INTO dns_records (name, type, value, ttl_secs, comment, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![name, r.rtype.as_str(), value, ttl, r.comment, now_secs()],
            )?;
            conn.last_insert_rowid()
        };
        st.reload_zone()?;
        st.events.emit("dns.records.changed", serde_json::json!({ "id": id, "action": "created" }));
        read_records(&st, Some(id))?.pop().ok_or_else(|| Error::internal("record vanished"))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Replaces a local record.
#[utoipa::path(put, path = "/api/dns/records/{id}", tag = "dns", request_body = RecordInput,
    params(("id" = i64, Path)),
    responses((status = 200, body = LocalRecordRow), (status = 404, description = "record_not_found", body = ErrorBody),
        (status = 422, description = "invalid_record", body = ErrorBody)))]
pub async fn put_record(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
    Json(r): Json<RecordInput>,
) -> ApiResult<Json<LocalRecordRow>> {
    Ok(Json(
        blocking(move || {
            let (name, value, ttl) = check_record(&st, &r)?;
            let n = st.db.conn().execute(
                "UPDATE dns_records SET name = ?1, type = ?2, value = ?3, ttl_secs = ?4, comment = ?5 WHERE id = ?6",
                rusqlite::params![name, r.rtype.as_str(), value, ttl, r.comment, id],
            )?;
            if n == 0 {
                return Err(Error::not_found("record_not_found", format!("no local record {id}")));
            }
            st.reload_zone()?;
            st.events.emit("dns.records.changed", serde_json::json!({ "id": id, "action": "updated" }));
            read_records(&st, Some(id))?.pop().ok_or_else(|| Error::internal("record vanished"))
        })
        .await?,
    ))
}

/// Deletes a local record.
#[utoipa::path(delete, path = "/api/dns/records/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "record_not_found", body = ErrorBody)))]
pub async fn delete_record(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        if st
            .db
            .conn()
            .execute("DELETE FROM dns_records WHERE id = ?1", [id])?
            == 0
        {
            return Err(Error::not_found(
                "record_not_found",
                format!("no local record {id}"),
            ));
        }
        st.reload_zone()?;
        st.events.emit(
            "dns.records.changed",
            serde_json::json!({ "id": id, "action": "deleted" }),
        );
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

// ---- conditional forwarding ----

/// A conditional forwarding rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForwardRow {
    pub id: i64,
    /// A domain (`home`) or reverse zone (`1.168.192.in-addr.arpa`).
    pub domain: String,
    /// `udp://IP:port` or `tcp://IP:port`.
    pub server: String,
    pub comment: String,
}

/// A forwarding rule to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ForwardInput {
    /// A domain, or an IPv4 network (/8, /16, /24) for its reverse zone.
    pub domain: String,
    /// The router's address, e.g. `192.168.1.1`.
    pub server: String,
    #[serde(default)]
    pub comment: String,
}

fn read_forwards(st: &DnsState) -> ApiResult<Vec<ForwardRow>> {
    let conn = st.db.conn();
    let mut s =
        conn.prepare("SELECT id, domain, server, comment FROM dns_forwards ORDER BY domain")?;
    let rows = s.query_map([], |r| {
        Ok(ForwardRow {
            id: r.get(0)?,
            domain: r.get(1)?,
            server: r.get(2)?,
            comment: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lists conditional forwarding rules.
#[utoipa::path(get, path = "/api/dns/forwards", tag = "dns", responses((status = 200, body = [ForwardRow])))]
pub async fn get_forwards(State(st): State<Arc<DnsState>>) -> ApiResult<Json<Vec<ForwardRow>>> {
    Ok(Json(blocking(move || read_forwards(&st)).await?))
}

/// Sends a local domain (and/or its reverse zone) to another server, usually the router.
#[utoipa::path(post, path = "/api/dns/forwards", tag = "dns", request_body = ForwardInput,
    responses((status = 201, body = [ForwardRow]), (status = 409, description = "forward_exists", body = ErrorBody),
        (status = 422, description = "invalid_forward", body = ErrorBody)))]
pub async fn post_forward(
    State(st): State<Arc<DnsState>>,
    Json(f): Json<ForwardInput>,
) -> ApiResult<(StatusCode, Json<Vec<ForwardRow>>)> {
    let domain = zone::forward_domain(&f.domain)
        .map_err(|m| Error::invalid("invalid_forward", m).with_field("domain"))?;
    let server: UpstreamAddr = f
        .server
        .parse()
        .map_err(|m: String| Error::invalid("invalid_forward", m).with_field("server"))?;
    let rows = blocking(move || {
        let res = st.db.conn().execute(
            "INSERT INTO dns_forwards (domain, server, comment, created_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![domain, server.to_string(), f.comment, now_secs()],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                return Err(Error::conflict("forward_exists", format!("{domain} is already forwarded")).with_field("domain"));
            }
            r => r?,
        };
        st.reload_zone()?;
        read_forwards(&st)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(rows)))
}

/// Deletes a conditional forwarding rule.
#[utoipa::path(delete, path = "/api/dns/forwards/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "forward_not_found", body = ErrorBody)))]
pub async fn delete_forward(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        if st
            .db
            .conn()
            .execute("DELETE FROM dns_forwards WHERE id = ?1", [id])?
            == 0
        {
            return Err(Error::not_found(
                "forward_not_found",
                format!("no forwarding rule {id}"),
            ));
        }
        st.reload_zone()?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
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
pub async fn get_switch(State(st): State<Arc<DnsState>>) -> Json<SwitchState> {
    Json((**st.switch.load()).clone())
}

/// Flips the switch record; the next query gets the new address. Emits `dns.switch.changed`.
#[utoipa::path(post, path = "/api/dns/switch", tag = "dns", request_body = SwitchInput,
    responses((status = 200, body = SwitchState), (status = 422, description = "invalid_reason", body = ErrorBody)))]
pub async fn post_switch(
    State(st): State<Arc<DnsState>>,
    Json(s): Json<SwitchInput>,
) -> ApiResult<Json<SwitchState>> {
    if s.reason.len() > 500 {
        return Err(
            Error::invalid("invalid_reason", "the reason is longer than 500 characters")
                .with_field("reason"),
        );
    }
    Ok(Json(
        blocking(move || st.set_switch(s.target, &s.reason)).await?,
    ))
}

// ---- blocklists ----

/// A blocklist subscription to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlocklistInput {
    /// `https://...`, `http://...`, `file:///...` or an absolute path.
    pub url: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Changes to a subscription.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlocklistPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
}

/// Lists blocklist subscriptions with their domain and bad-line counts.
#[utoipa::path(get, path = "/api/dns/blocklists", tag = "dns", responses((status = 200, body = [Blocklist])))]
pub async fn get_blocklists(State(st): State<Arc<DnsState>>) -> ApiResult<Json<Vec<Blocklist>>> {
    Ok(Json(blocking(move || blocklists::all(&st)).await?))
}

/// Subscribes to a list and downloads it now (the previous set keeps answering meanwhile).
#[utoipa::path(post, path = "/api/dns/blocklists", tag = "dns", request_body = BlocklistInput,
    responses((status = 201, body = LoadReport), (status = 409, description = "blocklist_exists", body = ErrorBody),
        (status = 422, description = "invalid_url", body = ErrorBody)))]
pub async fn post_blocklist(
    State(st): State<Arc<DnsState>>,
    Json(b): Json<BlocklistInput>,
) -> ApiResult<(StatusCode, Json<LoadReport>)> {
    let url = blocklists::validate_url(&b.url)?;
    let st2 = st.clone();
    blocking(move || {
        let res = st2.db.conn().execute(
            "INSERT INTO dns_blocklists (url, name, enabled, created_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![url, b.name, b.enabled, now_secs()],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(
                    Error::conflict("blocklist_exists", format!("{url} is already subscribed"))
                        .with_field("url"),
                )
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(blocklists::update(&st, true).await?),
    ))
}

/// Renames, enables or disables a subscription, and reloads the set.
#[utoipa::path(put, path = "/api/dns/blocklists/{id}", tag = "dns", request_body = BlocklistPatch, params(("id" = i64, Path)),
    responses((status = 200, body = LoadReport), (status = 404, description = "blocklist_not_found", body = ErrorBody)))]
pub async fn put_blocklist(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
    Json(p): Json<BlocklistPatch>,
) -> ApiResult<Json<LoadReport>> {
    let st2 = st.clone();
    blocking(move || {
        let n = st2.db.conn().execute(
            "UPDATE dns_blocklists SET name = COALESCE(?1, name), enabled = COALESCE(?2, enabled) WHERE id = ?3",
            rusqlite::params![p.name, p.enabled, id],
        )?;
        if n == 0 {
            return Err(Error::not_found("blocklist_not_found", format!("no blocklist {id}")));
        }
        Ok(())
    })
    .await?;
    Ok(Json(blocklists::update(&st, false).await?))
}

/// Unsubscribes from a list, deletes its copy and reloads the set.
#[utoipa::path(delete, path = "/api/dns/blocklists/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 200, body = LoadReport), (status = 404, description = "blocklist_not_found", body = ErrorBody)))]
pub async fn delete_blocklist(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
) -> ApiResult<Json<LoadReport>> {
    let st2 = st.clone();
    blocking(move || {
        if st2
            .db
            .conn()
            .execute("DELETE FROM dns_blocklists WHERE id = ?1", [id])?
            == 0
        {
            return Err(Error::not_found(
                "blocklist_not_found",
                format!("no blocklist {id}"),
            ));
        }
        let _ = std::fs::remove_file(st2.lists_dir().join(format!("{id}.txt")));
        Ok(())
    })
    .await?;
    Ok(Json(blocklists::update(&st, false).await?))
}

/// Downloads every enabled list now and swaps in the new set. A list that cannot be
/// downloaded keeps its previous copy; its `last_error` says why.
#[utoipa::path(post, path = "/api/dns/blocklists/update", tag = "dns", responses((status = 200, body = LoadReport)))]
pub async fn post_blocklists_update(
    State(st): State<Arc<DnsState>>,
) -> ApiResult<Json<LoadReport>> {
    Ok(Json(blocklists::update(&st, true).await?))
}

// ---- allow and deny ----

/// An allowlist or denylist entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleRow {
    pub id: i64,
    /// `allow` or `deny`.
    pub kind: String,
    /// `name` or `*.name`.
    pub pattern: String,
    pub comment: String,
}

/// An entry to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleInput {
    /// `allow` or `deny`.
    pub kind: RuleKind,
    /// `ads.example.com` (that name) or `*.example.com` (it and all subdomains).
    pub pattern: String,
    #[serde(default)]
    pub comment: String,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Allow,
    Deny,
}

/// Filter for [`get_rules`].
#[derive(Debug, Deserialize, IntoParams)]
pub struct RuleFilter {
    pub kind: Option<RuleKind>,
}

fn read_rules(st: &DnsState, kind: Option<RuleKind>) -> ApiResult<Vec<RuleRow>> {
    let kind = kind.map(|k| match k {
        RuleKind::Allow => "allow",
        RuleKind::Deny => "deny",
    });
    let conn = st.db.conn();
    let mut s = conn.prepare("SELECT id, kind, pattern, comment FROM dns_rules WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, pattern")?;
    let rows = s.query_map([kind], |r| {
        Ok(RuleRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            pattern: r.get(2)?,
            comment: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lists the allowlist and denylist.
#[utoipa::path(get, path = "/api/dns/rules", tag = "dns", params(RuleFilter), responses((status = 200, body = [RuleRow])))]
pub async fn get_rules(
    State(st): State<Arc<DnsState>>,
    Query(f): Query<RuleFilter>,
) -> ApiResult<Json<Vec<RuleRow>>> {
    Ok(Json(blocking(move || read_rules(&st, f.kind)).await?))
}

/// Adds an allowlist or denylist entry; the allowlist wins over lists and the denylist.
#[utoipa::path(post, path = "/api/dns/rules", tag = "dns", request_body = RuleInput,
    responses((status = 201, body = RuleRow), (status = 409, description = "rule_exists", body = ErrorBody),
        (status = 422, description = "invalid_pattern", body = ErrorBody)))]
pub async fn post_rule(
    State(st): State<Arc<DnsState>>,
    Json(r): Json<RuleInput>,
) -> ApiResult<(StatusCode, Json<RuleRow>)> {
    let (name, how) = lists::parse_pattern(&r.pattern)
        .map_err(|m| Error::invalid("invalid_pattern", m).with_field("pattern"))?;
    let pattern = match how {
        crate::domains::Match::Subtree => format!("*.{name}"),
        crate::domains::Match::Exact => name,
    };
    let kind = match r.kind {
        RuleKind::Allow => "allow",
        RuleKind::Deny => "deny",
    };
    let row = blocking(move || {
        let res = st.db.conn().execute(
            "INSERT INTO dns_rules (kind, pattern, comment, created_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![kind, pattern, r.comment, now_secs()],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::conflict(
                    "rule_exists",
                    format!("{pattern} is already on the {kind} list"),
                )
                .with_field("pattern"));
            }
            r => r?,
        };
        let id = st.db.conn().last_insert_rowid();
        st.reload_rules()?;
        st.events.emit(
            "dns.rules.changed",
            serde_json::json!({ "id": id, "kind": kind, "action": "created" }),
        );
        Ok(RuleRow {
            id,
            kind: kind.into(),
            pattern,
            comment: r.comment,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Deletes an allowlist or denylist entry.
#[utoipa::path(delete, path = "/api/dns/rules/{id}", tag = "dns", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "rule_not_found", body = ErrorBody)))]
pub async fn delete_rule(
    State(st): State<Arc<DnsState>>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        if st
            .db
            .conn()
            .execute("DELETE FROM dns_rules WHERE id = ?1", [id])?
            == 0
        {
            return Err(Error::not_found("rule_not_found", format!("no rule {id}")));
        }
        st.reload_rules()?;
        st.events.emit(
            "dns.rules.changed",
            serde_json::json!({ "id": id, "action": "deleted" }),
        );
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

// ---- query log, statistics, health ----

/// The query log, newest first, filtered. Admin only: it shows every client's lookups.
#[utoipa::path(get, path = "/api/dns/querylog", tag = "dns", params(LogFilter), responses((status = 200, body = [LogRow]),
    (status = 403, description = "admin_required, role_required", body = ErrorBody)))]
pub async fn get_querylog(
    State(st): State<Arc<DnsState>>,
    Query(f): Query<LogFilter>,
) -> ApiResult<Json<Vec<LogRow>>> {
    Ok(Json(
        blocking(move || Ok(querylog::list(&st.db, &f)?)).await?,
    ))
}

/// Window for [`get_stats`].
#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsParams {
    /// Hours back from now (default 24, at most 24 × retention days).
    pub hours: Option<u32>,
    /// Entries per top list (default 10, at most 100).
    pub top: Option<u32>,
}

/// Totals, blocked share, top domains, top blocked, top clients and queries over time.
/// Admin only: the top lists name clients and what they looked up.
#[utoipa::path(get, path = "/api/dns/stats", tag = "dns", params(StatsParams), responses((status = 200, body = Stats),
    (status = 403, description = "admin_required, role_required", body = ErrorBody)))]
pub async fn get_stats(
    State(st): State<Arc<DnsState>>,
    Query(p): Query<StatsParams>,
) -> ApiResult<Json<Stats>> {
    let hours = p.hours.unwrap_or(24).clamp(
        1,
        24 * (st.settings.load().settings.query_log_retention_days as u32).max(1),
    ) as i64;
    let top = p.top.unwrap_or(10).clamp(1, 100);
    // About 144 points whatever the window, at least 10 minutes each.
    let bucket = (hours * 3600 / 144).max(600);
    Ok(Json(
        blocking(move || {
            Ok(querylog::stats(
                &st.db,
                now_ms() - hours * 3_600_000,
                top,
                bucket,
            )?)
        })
        .await?,
    ))
}

/// Upstreams and their health.
#[utoipa::path(get, path = "/api/dns/upstreams", tag = "dns", responses((status = 200, body = [UpstreamStatus])))]
pub async fn get_upstreams(State(st): State<Arc<DnsState>>) -> Json<Vec<UpstreamStatus>> {
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
pub async fn post_cache_flush(State(st): State<Arc<DnsState>>) -> StatusCode {
    st.cache.clear();
    StatusCode::NO_CONTENT
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/api/dns/metrics", tag = "dns", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn get_metrics(State(st): State<Arc<DnsState>>) -> Response {
    let healthy = st
        .forwarder
        .upstreams()
        .iter()
        .filter(|u| u.is_healthy())
        .count();
    let blocking = st.blocking.load();
    let body = st.metrics.render(&[
        (
            "pinas_dns_blocked_domains",
            "Distinct names on the blocklists.",
            st.blocked.load().len() as f64,
        ),
        (
            "pinas_dns_cache_entries",
            "Answers in the cache.",
            st.cache.len() as f64,
        ),
        (
            "pinas_dns_upstreams_healthy",
            "Upstreams answering.",
            healthy as f64,
        ),
        (
            "pinas_dns_blocking_enabled",
            "1 while blocklists and the denylist apply, 0 while blocking is off.",
            if blocking.enabled { 1.0 } else { 0.0 },
        ),
        (
            "pinas_dns_blocking_disabled_until_seconds",
            "Unix time when blocking turns back on by itself; 0 when no timer runs.",
            blocking.until.unwrap_or(0) as f64,
        ),
    ]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Pi-hole v5 `api.php?summaryRaw` / `summary` (FTL v5 era), for dashboards and Home
/// Assistant's Pi-hole integration.
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)] // the field names are Pi-hole's
pub struct PiholeSummary {
    pub domains_being_blocked: serde_json::Value,
    pub dns_queries_today: serde_json::Value,
    pub ads_blocked_today: serde_json::Value,
    pub ads_percentage_today: serde_json::Value,
    pub unique_domains: serde_json::Value,
    pub queries_forwarded: serde_json::Value,
    pub queries_cached: serde_json::Value,
    pub clients_ever_seen: serde_json::Value,
    pub unique_clients: serde_json::Value,
    pub dns_queries_all_types: serde_json::Value,
    pub reply_NODATA: serde_json::Value,
    pub reply_NXDOMAIN: serde_json::Value,
    pub reply_CNAME: serde_json::Value,
    pub reply_IP: serde_json::Value,
    pub privacy_level: u8,
    pub status: String,
    pub gravity_last_updated: serde_json::Value,
}

/// Pi-hole v5 API query string. Read-only without a token: `summaryRaw`, `summary`
/// (formatted numbers), `status`, `versions`. With `auth=<token>`: `enable`, and
/// `disable` or `disable=<seconds>` (0 or no number: until enabled again; at most 86400).
#[derive(Debug, Deserialize, IntoParams)]
pub struct PiholeParams {
    #[serde(rename = "summaryRaw")]
    pub summary_raw: Option<String>,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub versions: Option<String>,
    /// Turns blocking on (needs `auth`).
    pub enable: Option<String>,
    /// Turns blocking off, for that many seconds when a number is given (needs `auth`).
    pub disable: Option<String>,
    /// The Pi-hole API token (`GET /api/dns/pihole/token`).
    pub auth: Option<String>,
}

fn pihole_number(n: f64, raw: bool, percent: bool) -> serde_json::Value {
    if raw {
        if percent {
            serde_json::json!(n)
        } else {
            serde_json::json!(n as i64)
        }
    } else if percent {
        serde_json::json!(format!("{n:.1}"))
    } else {
        // Pi-hole formats with thousands separators.
        let s = (n as i64).to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        serde_json::json!(out)
    }
}

/// The Pi-hole v5 summary over the last 24 hours; `raw` numbers or formatted strings.
async fn pihole_summary(st: &Arc<DnsState>, raw: bool) -> ApiResult<PiholeSummary> {
    let st2 = st.clone();
    let (s, ever, nodata, nx) = blocking(move || {
        let s = querylog::stats(&st2.db, now_ms() - 86_400_000, 1, 3600)?;
        let conn = st2.db.conn();
        let ever: i64 = conn.query_row(
            "SELECT COUNT(DISTINCT client) FROM dns_query_log",
            [],
            |r| r.get(0),
        )?;
        let since = now_ms() - 86_400_000;
        let nx: i64 = conn.query_row(
            "SELECT COUNT(*) FROM dns_query_log WHERE ts_ms >= ?1 AND rcode = 'NXDOMAIN'",
            [since],
            |r| r.get(0),
        )?;
        Ok((s, ever, 0i64, nx))
    })
    .await?;
    let lists = blocking({
        let st = st.clone();
        move || blocklists::all(&st)
    })
    .await?;
    let last = lists.iter().filter_map(|l| l.updated_at).max();
    let n = |v: i64| pihole_number(v as f64, raw, false);
    let gravity = match last {
        Some(t) => {
            let rel = (now_secs() - t).max(0);
            serde_json::json!({ "file_exists": true, "absolute": t,
                "relative": { "days": rel / 86400, "hours": rel % 86400 / 3600, "minutes": rel % 3600 / 60 } })
        }
        None => serde_json::json!({ "file_exists": false }),
    };
    let body = PiholeSummary {
        domains_being_blocked: n(st.blocked.load().len() as i64),
        dns_queries_today: n(s.total),
        ads_blocked_today: n(s.blocked),
        ads_percentage_today: pihole_number(s.blocked_percent, raw, true),
        unique_domains: n(s.unique_domains),
        queries_forwarded: n(s.forwarded),
        queries_cached: n(s.cached + s.local),
        clients_ever_seen: n(ever),
        unique_clients: n(s.unique_clients),
        dns_queries_all_types: n(s.total),
        reply_NODATA: n(nodata),
        reply_NXDOMAIN: n(nx),
        reply_CNAME: n(0),
        reply_IP: n(s.total - nx),
        privacy_level: 0,
        status: pihole_status(st).into(),
        gravity_last_updated: gravity,
    };
    Ok(body)
}

fn pihole_status(st: &DnsState) -> &'static str {
    if st.blocking_on() {
        "enabled"
    } else {
        "disabled"
    }
}

/// Pi-hole v5 compatible API (`/admin/api.php`), as Pi-hole v5's `api.php` answers:
/// `?summaryRaw` / `?summary` (also with no query at all) give the summary over the
/// last 24 hours with `status`; `?status` gives `{"status":"enabled"}` or
/// `{"status":"disabled"}`; `?enable&auth=TOKEN` and `?disable[=SECONDS]&auth=TOKEN`
/// change the blocking switch and answer with the new `status`. Without a valid token
/// `enable` and `disable` are ignored, and a request that asked for nothing else gets
/// `[]`, as Pi-hole v5 answers. Always 200.
#[utoipa::path(get, path = "/api/dns/pihole/api.php", tag = "dns", params(PiholeParams),
    responses((status = 200, body = PiholeSummary)))]
pub async fn get_pihole(
    State(st): State<Arc<DnsState>>,
    Query(p): Query<PiholeParams>,
) -> ApiResult<Response> {
    let authed = p
        .auth
        .as_deref()
        .is_some_and(|t| pihole::tokens_match(t, &st.pihole_token.load()));
    let mut data = serde_json::Map::new();
    if p.enable.is_some() && authed {
        let st2 = st.clone();
        blocking(move || {
            st2.set_blocking(true, None, pihole::BY_PIHOLE_API, "Pi-hole API: enable")
        })
        .await?;
        data.insert("status".into(), "enabled".into());
    } else if let Some(d) = p.disable.as_deref().filter(|_| authed) {
        let off_for = pihole::disable_secs(d)
            .map(|s| std::time::Duration::from_secs(s.min(crate::blocking::MAX_DISABLE_SECS)));
        let st2 = st.clone();
        blocking(move || {
            st2.set_blocking(
                false,
                off_for,
                pihole::BY_PIHOLE_API,
                "Pi-hole API: disable",
            )
        })
        .await?;
        data.insert("status".into(), "disabled".into());
    } else if p.versions.is_some() {
        let v = concat!("pinas-", env!("CARGO_PKG_VERSION"));
        for (k, val) in [
            ("core_update", serde_json::json!(false)),
            ("web_update", serde_json::json!(false)),
            ("FTL_update", serde_json::json!(false)),
            ("core_current", serde_json::json!(v)),
            ("web_current", serde_json::json!(v)),
            ("FTL_current", serde_json::json!(v)),
        ] {
            data.insert(k.into(), val);
        }
    }
    if p.status.is_some() {
        data.insert("status".into(), pihole_status(&st).into());
    }
    let nothing_asked = p.summary_raw.is_none()
        && p.summary.is_none()
        && p.status.is_none()
        && p.versions.is_none()
        && p.enable.is_none()
        && p.disable.is_none()
        && p.auth.is_none();
    if p.summary_raw.is_some() || p.summary.is_some() || nothing_asked {
        let summary = pihole_summary(&st, p.summary.is_none()).await?;
        if let serde_json::Value::Object(m) =
            serde_json::to_value(summary).map_err(|e| Error::internal(e.to_string()))?
        {
            data.extend(m);
        }
    }
    if data.is_empty() {
        // PHP's json_encode of an empty array.
        return Ok(Json(serde_json::json!([])).into_response());
    }
    Ok(Json(serde_json::Value::Object(data)).into_response())
}

// ---- the blocking switch ----

/// Who is asking, as the web role tells it (`x-pinas-user`).
fn caller(headers: &HeaderMap) -> String {
    headers
        .get("x-pinas-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string()
}

/// Turn blocking on, or off (for `duration_s` seconds, or until turned on again).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlockingInput {
    pub enabled: bool,
    /// Only with `enabled: false`: seconds until blocking turns back on by itself, 1 to
    /// 86400. Absent: off until turned on again.
    pub duration_s: Option<i64>,
    /// Why, in words (at most 500 characters); shown in the event log.
    #[serde(default)]
    pub reason: String,
}

/// The blocking switch: whether blocklists and the denylist apply, and until when they
/// are off.
#[utoipa::path(get, path = "/api/dns/blocking", tag = "dns", responses((status = 200, body = BlockingState)))]
pub async fn get_blocking(State(st): State<Arc<DnsState>>) -> Json<BlockingState> {
    Json((**st.blocking.load()).clone())
}

/// Turns blocking on or off; the next query follows. While off, blocked names are
/// forwarded like any other (local records, the switch and conditional forwarding still
/// answer). Emits `dns.blocking.changed`. Admin only.
#[utoipa::path(post, path = "/api/dns/blocking", tag = "dns", request_body = BlockingInput,
    responses((status = 200, body = BlockingState),
        (status = 422, description = "invalid_duration (field duration_s), invalid_reason", body = ErrorBody)))]
pub async fn post_blocking(
    State(st): State<Arc<DnsState>>,
    headers: HeaderMap,
    Json(b): Json<BlockingInput>,
) -> ApiResult<Json<BlockingState>> {
    if b.reason.len() > 500 {
        return Err(
            Error::invalid("invalid_reason", "the reason is longer than 500 characters")
                .with_field("reason"),
        );
    }
    let off_for = match b.duration_s {
        None => None,
        Some(d) if !b.enabled && (1..=crate::blocking::MAX_DISABLE_SECS as i64).contains(&d) => {
            Some(std::time::Duration::from_secs(d as u64))
        }
        Some(_) => {
            return Err(Error::invalid(
                "invalid_duration",
                format!(
                    "duration_s is 1 to {} seconds, and only when turning blocking off",
                    crate::blocking::MAX_DISABLE_SECS
                ),
            )
            .with_field("duration_s"))
        }
    };
    let by = caller(&headers);
    Ok(Json(
        blocking(move || st.set_blocking(b.enabled, off_for, &by, &b.reason)).await?,
    ))
}

// ---- settings ----

/// Upstreams, cache limits, the blocked answer and query-log retention in force, and
/// whether they were saved through the API (`saved_at_ms`) or come from `config.toml`.
#[utoipa::path(get, path = "/api/dns/settings", tag = "dns", responses((status = 200, body = SettingsState)))]
pub async fn get_settings(State(st): State<Arc<DnsState>>) -> Json<SettingsState> {
    Json((**st.settings.load()).clone())
}

/// Saves the settings and applies them without a restart: the new upstreams (with health
/// checks), the cache resized (emptied when upstreams or TTL bounds change), the blocked
/// answer, the retention. From then on they take precedence over `config.toml`. A bad
/// value changes nothing. Emits `dns.settings.changed`. Admin only.
#[utoipa::path(put, path = "/api/dns/settings", tag = "dns", request_body = DnsSettings,
    responses((status = 200, body = SettingsState),
        (status = 422, description = "invalid_settings, with the field", body = ErrorBody)))]
pub async fn put_settings(
    State(st): State<Arc<DnsState>>,
    Json(s): Json<DnsSettings>,
) -> ApiResult<Json<SettingsState>> {
    Ok(Json(
        blocking(move || {
            let live = st.apply_settings(s)?;
            let days = live.settings.query_log_retention_days as u32;
            if let Err(e) = querylog::prune(&st.db, days, st.cfg.query_log_max_rows, now_ms()) {
                tracing::warn!(error = %e, "cannot prune the DNS query log");
            }
            Ok(live)
        })
        .await?,
    ))
}

// ---- the Pi-hole API token ----

/// The Pi-hole v5 API token, for Home Assistant's Pi-hole integration ("API key").
#[derive(Debug, Serialize, ToSchema)]
pub struct PiholeToken {
    /// 64 hexadecimal characters.
    pub token: String,
}

/// Shows the Pi-hole v5 API token. Admin only.
#[utoipa::path(get, path = "/api/dns/pihole/token", tag = "dns",
    responses((status = 200, body = PiholeToken), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn get_pihole_token(State(st): State<Arc<DnsState>>) -> ApiResult<Json<PiholeToken>> {
    Ok(Json(PiholeToken {
        token: (**st.pihole_token.load()).clone(),
    }))
}

/// Replaces the Pi-hole v5 API token with a new random one; the old one stops working at
/// once. Admin only.
#[utoipa::path(post, path = "/api/dns/pihole/token", tag = "dns",
    responses((status = 200, body = PiholeToken), (status = 403, description = "admin_required", body = ErrorBody)))]
pub async fn post_pihole_token(State(st): State<Arc<DnsState>>) -> ApiResult<Json<PiholeToken>> {
    let token = blocking(move || st.regenerate_pihole_token()).await?;
    Ok(Json(PiholeToken { token }))
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
        Stats, querylog::Top, querylog::Bucket, querylog::Status, UpstreamStatus, PiholeSummary, ErrorBody,
        BlockingState, BlockingInput, DnsSettings, SettingsState, BlockingMode, PiholeToken
    )),
    tags((name = "dns", description = "Home-network DNS: local records, the switch record, blocklists, query log"))
)]
pub struct ApiDoc;
