//! The power role's control API on its socket (`/run/pinas/power.sock`): thin axum
//! handlers that extract, call the domain and map the result. The web role proxies
//! `/api/power/<rest>` to `/<rest>` here; the OpenAPI document ([`ApiDoc`]) names routes
//! as the browser sees them.
//!
//! Who may call what (the web role names the signed-in person's role in
//! `x-pinas-role`): reads need any role ([`Member`]); adding, changing, removing and
//! switching plugs and saving settings need `admin` ([`Admin`]).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pinas_core::error::ErrorBody;
use pinas_core::events::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::companion::NasBelief;
use crate::config::{Settings, Tariff, TariffPeriod};
use crate::discover::{DiscoverRequest, Found};
use crate::energy::{Period, UsageRow};
use crate::error::{run_blocking, PowerError};
use crate::plugs::{NewPlug, PlugChange};
use crate::store::{self, Gap, Point, Resolution};
use crate::{NasPower, NasView, PlugStatus, PlugView, Power, Problem, SettingsView};

type St = State<Arc<Power>>;
type ApiResult<T> = Result<T, PowerError>;

/// The control router.
pub fn router(p: Arc<Power>) -> Router {
    Router::new()
        .route("/plugs", get(get_plugs).post(post_plug))
        .route(
            "/plugs/{id}",
            get(get_plug).patch(patch_plug).delete(delete_plug),
        )
        .route("/plugs/{id}/switch", post(post_switch))
        .route("/plugs/{id}/samples", get(get_samples))
        .route("/plugs/{id}/usage", get(get_usage))
        .route("/discover", post(post_discover))
        .route("/nas", get(get_nas))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/metrics", get(get_metrics))
        .with_state(p)
}

/// A signed-in person of any role, named by the web role in `x-pinas-role`.
pub struct Member;
/// An administrator, named by the web role (`x-pinas-user` is logged).
pub struct Admin(pub String);

fn role(parts: &Parts) -> Result<&str, PowerError> {
    parts
        .headers
        .get("x-pinas-role")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            PowerError::forbidden(
                "role_required",
                "the caller's role is unknown (x-pinas-role is missing)",
            )
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Member {
    type Rejection = PowerError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        role(parts).map(|_| Member)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = PowerError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if role(parts)? != "admin" {
            return Err(PowerError::forbidden(
                "admin_required",
                "only an administrator may do this",
            ));
        }
        let user = parts
            .headers
            .get("x-pinas-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("an administrator");
        Ok(Admin(user.to_string()))
    }
}

/// A JSON body whose rejection is a 422 in PiNAS's error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = PowerError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(PowerError::Invalid {
                code: "invalid_body",
                message: match e {
                    JsonRejection::JsonDataError(e) => {
                        format!("the request body does not fit: {}", e.body_text())
                    }
                    other => other.body_text(),
                },
                field: None,
            }),
        }
    }
}

/// Every plug with its status (never its Tapo account).
#[utoipa::path(get, path = "/api/power/plugs", tag = "power",
    responses((status = 200, body = [PlugView]), (status = 403, description = "role_required", body = ErrorBody)))]
pub async fn get_plugs(_: Member, State(p): St) -> ApiResult<Json<Vec<PlugView>>> {
    Ok(Json(run_blocking(move || p.plugs()).await?))
}

/// Adds a plug (admin) and starts polling it. Emits `power.plug.added`.
#[utoipa::path(post, path = "/api/power/plugs", tag = "power", request_body = NewPlug,
    responses((status = 201, body = PlugView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 409, description = "plug_name_taken, plug_address_taken", body = ErrorBody),
        (status = 422, description = "invalid_plug_name, invalid_address, invalid_email, invalid_password, invalid_body", body = ErrorBody)))]
pub async fn post_plug(
    _: Admin,
    State(p): St,
    Body(new): Body<NewPlug>,
) -> ApiResult<(StatusCode, Json<PlugView>)> {
    let v = run_blocking(move || p.add_plug(new)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// One plug with its status.
#[utoipa::path(get, path = "/api/power/plugs/{id}", tag = "power",
    params(("id" = i64, Path)),
    responses((status = 200, body = PlugView), (status = 404, description = "plug_not_found", body = ErrorBody)))]
pub async fn get_plug(_: Member, State(p): St, Path(id): Path<i64>) -> ApiResult<Json<PlugView>> {
    Ok(Json(run_blocking(move || p.plug(id)).await?))
}

/// Changes a plug (admin): absent fields keep their value. Emits `power.plug.changed`.
#[utoipa::path(patch, path = "/api/power/plugs/{id}", tag = "power", request_body = PlugChange,
    params(("id" = i64, Path)),
    responses((status = 200, body = PlugView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "plug_not_found", body = ErrorBody),
        (status = 409, description = "plug_name_taken, plug_address_taken", body = ErrorBody),
        (status = 422, description = "invalid_plug_name, invalid_address, invalid_email, invalid_password", body = ErrorBody)))]
pub async fn patch_plug(
    _: Admin,
    State(p): St,
    Path(id): Path<i64>,
    Body(c): Body<PlugChange>,
) -> ApiResult<Json<PlugView>> {
    Ok(Json(run_blocking(move || p.change_plug(id, c)).await?))
}

/// Removes a plug with its history and account (admin). Emits `power.plug.removed`.
#[utoipa::path(delete, path = "/api/power/plugs/{id}", tag = "power",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "plug_not_found", body = ErrorBody)))]
pub async fn delete_plug(_: Admin, State(p): St, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    run_blocking(move || p.remove_plug(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/power/plugs/{id}/switch`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchRequest {
    /// `true` switches the relay on, `false` off.
    pub on: bool,
}

/// Switches a plug on or off (admin, and only plugs that allow it). The NAS's plug is
/// not switched off while the companion says the NAS is up, nor while it draws at least
/// the NAS threshold. Emits `power.plug.switched`.
#[utoipa::path(post, path = "/api/power/plugs/{id}/switch", tag = "power", request_body = SwitchRequest,
    params(("id" = i64, Path)),
    responses((status = 200, body = PlugView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "plug_not_found", body = ErrorBody),
        (status = 409, description = "plug_not_switchable, nas_running, plug_account_missing", body = ErrorBody),
        (status = 502, description = "plug_unreachable, plug_credentials_rejected, plug_protocol_error, plug_device_error", body = ErrorBody)))]
pub async fn post_switch(
    Admin(who): Admin,
    State(p): St,
    Path(id): Path<i64>,
    Body(r): Body<SwitchRequest>,
) -> ApiResult<Json<PlugView>> {
    Ok(Json(p.switch(id, r.on, &who).await?))
}

/// A time range; `to_ms` defaults to now, `from_ms` to an hour (samples) or 30 days
/// (usage) before it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Range {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// `raw`, `minute` or `hour`; absent: the finest one that still holds the range.
    pub resolution: Option<Resolution>,
    /// `day` (default) or `month`.
    pub period: Option<Period>,
}

const MAX_SPAN_MS: i64 = 400 * 86_400_000;

fn range(r: &Range, default_ms: i64) -> Result<(i64, i64), PowerError> {
    let to = r.to_ms.unwrap_or_else(now_ms);
    let from = r.from_ms.unwrap_or(to - default_ms);
    if from >= to || to - from > MAX_SPAN_MS {
        return Err(PowerError::invalid(
            "invalid_range",
            "from_ms",
            format!("from_ms {from} must be before to_ms {to}, at most 400 days apart"),
        ));
    }
    Ok((from, to))
}

/// `GET /api/power/plugs/{id}/samples`: points and the gaps among them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    pub resolution: Resolution,
    pub from_ms: i64,
    pub to_ms: i64,
    pub points: Vec<Point>,
    /// Times without samples; charts leave them empty.
    pub gaps: Vec<Gap>,
}

/// A plug's power over a time range: every sample (kept a day by default), 1-minute
/// means (30 days) or 1-hour means (kept), with the gaps.
#[utoipa::path(get, path = "/api/power/plugs/{id}/samples", tag = "power",
    params(("id" = i64, Path), Range),
    responses((status = 200, body = Series), (status = 404, description = "plug_not_found", body = ErrorBody),
        (status = 422, description = "invalid_range", body = ErrorBody)))]
pub async fn get_samples(
    _: Member,
    State(p): St,
    Path(id): Path<i64>,
    Query(q): Query<Range>,
) -> ApiResult<Json<Series>> {
    let (from, to) = range(&q, 3_600_000)?;
    let s = p.settings();
    let res = q.resolution.unwrap_or_else(|| {
        let now = now_ms();
        if to - from <= 6 * 3_600_000 && from >= now - i64::from(s.raw_retention_hours) * 3_600_000
        {
            Resolution::Raw
        } else if to - from <= 8 * 86_400_000
            && from >= now - i64::from(s.minute_retention_days) * 86_400_000
        {
            Resolution::Minute
        } else {
            Resolution::Hour
        }
    });
    let db = p.db.clone();
    let (points, gaps) = run_blocking(move || {
        store::plug(&db, id)?;
        Ok((
            store::series(&db, id, res, from, to)?,
            store::gaps(&db, id, from, to)?,
        ))
    })
    .await?;
    Ok(Json(Series {
        resolution: res,
        from_ms: from,
        to_ms: to,
        points,
        gaps,
    }))
}

/// `GET /api/power/plugs/{id}/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub period: Period,
    pub currency: String,
    /// The threshold `active_secs` counts above, W.
    pub threshold_w: f64,
    pub rows: Vec<UsageRow>,
}

/// A plug's energy, cost and running time per day or month (local time).
#[utoipa::path(get, path = "/api/power/plugs/{id}/usage", tag = "power",
    params(("id" = i64, Path), Range),
    responses((status = 200, body = Usage), (status = 404, description = "plug_not_found", body = ErrorBody),
        (status = 422, description = "invalid_range", body = ErrorBody)))]
pub async fn get_usage(
    _: Member,
    State(p): St,
    Path(id): Path<i64>,
    Query(q): Query<Range>,
) -> ApiResult<Json<Usage>> {
    let (from, to) = range(&q, 30 * 86_400_000)?;
    let period = q.period.unwrap_or(Period::Day);
    let s = p.settings();
    let rows = run_blocking(move || p.usage(id, period, from, to)).await?;
    Ok(Json(Usage {
        period,
        currency: s.currency.clone(),
        threshold_w: s.nas_threshold_w,
        rows,
    }))
}

/// Looks for Tapo plugs on the LAN (admin): UDP probes to port 20002 (broadcast, or
/// one address), answers collected for `wait_ms`; each device found says whether it is
/// already added. Takes as long as the wait.
#[utoipa::path(post, path = "/api/power/discover", tag = "power", request_body = DiscoverRequest,
    responses((status = 200, body = [Found]),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 422, description = "invalid_target, invalid_wait, invalid_body", body = ErrorBody),
        (status = 503, description = "discovery_failed", body = ErrorBody)))]
pub async fn post_discover(
    _: Admin,
    State(p): St,
    Body(r): Body<DiscoverRequest>,
) -> ApiResult<Json<Vec<Found>>> {
    Ok(Json(p.discover(r).await?))
}

/// The NAS's plug now: power, active/standby/off by the thresholds, what the companion
/// believes, and since when they disagree (the NAS draws power while the companion
/// believes it is off).
#[utoipa::path(get, path = "/api/power/nas", tag = "power",
    responses((status = 200, body = NasView), (status = 403, description = "role_required", body = ErrorBody)))]
pub async fn get_nas(_: Member, State(p): St) -> ApiResult<Json<NasView>> {
    Ok(Json(run_blocking(move || p.nas()).await?))
}

/// The settings: sampling, retention, NAS threshold, tariff.
#[utoipa::path(get, path = "/api/power/settings", tag = "power",
    responses((status = 200, body = SettingsView), (status = 403, description = "role_required", body = ErrorBody)))]
pub async fn get_settings(_: Member, State(p): St) -> Json<SettingsView> {
    Json(p.settings_view())
}

/// Replaces the settings (admin); they apply at once. Emits `power.settings.changed`.
#[utoipa::path(put, path = "/api/power/settings", tag = "power", request_body = Settings,
    responses((status = 200, body = SettingsView),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 422, description = "invalid_setting (with the field), invalid_body", body = ErrorBody)))]
pub async fn put_settings(
    _: Admin,
    State(p): St,
    Body(s): Body<Settings>,
) -> ApiResult<Json<SettingsView>> {
    Ok(Json(run_blocking(move || p.save_settings(s)).await?))
}

/// Prometheus metrics (OpenMetrics text): `pinas_power_watts`, `pinas_energy_wh_total`
/// and `pinas_power_plug_up`, each per `plug` name.
#[utoipa::path(get, path = "/api/power/metrics", tag = "power",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn get_metrics(_: Member, State(p): St) -> ApiResult<Response> {
    let plugs = run_blocking(move || p.plugs()).await?;
    let body = crate::metrics::render(&plugs)
        .map_err(|e| PowerError::internal(format!("cannot encode metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response())
}

#[derive(OpenApi)]
#[openapi(
    paths(get_plugs, post_plug, post_discover, get_plug, patch_plug, delete_plug, post_switch, get_samples,
        get_usage, get_nas, get_settings, put_settings, get_metrics),
    components(schemas(DiscoverRequest, Found, PlugView, PlugStatus, Problem, NewPlug, PlugChange, SwitchRequest,
        Series, Point, Gap, Resolution, Usage, UsageRow, Period, Settings, SettingsView,
        Tariff, TariffPeriod, crate::store::PlugRow, crate::sampler::DeviceInfo,
        crate::klap::KlapVersion, NasView, NasPower, NasBelief)),
    tags((name = "power", description = "Tapo plugs: power, energy, cost and the NAS's running time"))
)]
pub struct ApiDoc;
