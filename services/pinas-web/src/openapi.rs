//! The OpenAPI 3.1 document of every endpoint, generated from the handlers' annotations
//! (utoipa) and merged with what other roles contribute.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PiNAS API",
        description = "Everything the PiNAS UI can do. Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`. Log in with POST /api/auth/login; send the returned csrf_token as X-CSRF-Token on changes."
    ),
    paths(
        crate::setup::status,
        crate::setup::complete,
        crate::setup::timezones,
        crate::auth::login,
        crate::auth::logout,
        crate::auth::me,
        crate::auth::get_preferences,
        crate::auth::put_preferences,
        crate::system::info,
        crate::system::services,
        crate::system::health,
        crate::system::metrics,
        crate::system::reboot,
        crate::system::shutdown,
        crate::system::events,
    ),
    components(schemas(
        pinas_core::error::ErrorBody,
        pinas_core::Event,
        pinas_core::auth::Role
    ))
)]
struct WebDoc;

/// The web role's own document.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut doc = WebDoc::openapi();
    doc.info.version = pinas_core::VERSION.to_string();
    doc
}

/// `doc` with every path prefixed by `prefix` (for proxied roles, whose routers serve at
/// their socket's root). A path already under `/api/` is kept: the role documents it as
/// the browser sees it (the companion's `/api/storage/remote/...`).
pub fn prefixed(mut doc: utoipa::openapi::OpenApi, prefix: &str) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    for (p, item) in paths {
        let full = if p.starts_with(prefix) || p.starts_with("/api/") {
            p
        } else {
            format!("{prefix}{p}")
        };
        doc.paths.paths.insert(full, item);
    }
    doc
}

/// `GET /api/openapi.json`.
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
}
