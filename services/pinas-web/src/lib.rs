//! The PiNAS web role: the HTTP(S) API and the browser UI's files.
//!
//! It owns the first-boot setup, accounts' sessions (login, CSRF, rate limit), system
//! information and metrics, the event WebSocket `/api/ws`, the OpenAPI document, serving
//! the static UI, and proxying `/api/<role>/...` to the Unix sockets of the roles that
//! [`pinas_core::roles`] lists. Storage, shares and the other roles are not imported
//! here: the binary hands their routers, OpenAPI documents and service reports to
//! [`WebApp`], so this crate stays a leaf.

mod auth;
pub mod certificate;
mod errors;
pub mod limit;
mod listen;
mod openapi;
mod proxy;
mod setup;
mod state;
mod static_files;
mod system;
mod ws;

use std::sync::Arc;

use axum::routing::{any, get, post};
use axum::Router;
use pinas_core::Context;

pub use listen::{serve, ListenConfig};
pub use state::{AccountHook, ServiceSource, ServiceState, ServiceStatus};

use state::AppState;

/// Builder of the web application from the pieces other roles contribute.
pub struct WebApp {
    ctx: Arc<Context>,
    routers: Vec<Router>,
    openapi: utoipa::openapi::OpenApi,
    services: Vec<Arc<dyn ServiceSource>>,
    account_hooks: Vec<Arc<dyn AccountHook>>,
}

impl WebApp {
    /// A web app with only the web role's own routes.
    pub fn new(ctx: Arc<Context>) -> Self {
        WebApp {
            ctx,
            routers: Vec::new(),
            openapi: openapi::base(),
            services: Vec::new(),
            account_hooks: Vec::new(),
        }
    }

    /// Adds a role's routes (full `/api/...` paths, state applied). They run behind the
    /// session and CSRF checks, with `Extension<CurrentUser>` available.
    pub fn with_router(mut self, router: Router, doc: utoipa::openapi::OpenApi) -> Self {
        self.routers.push(router);
        self.openapi.merge(doc);
        self
    }

    /// Adds the OpenAPI document of a proxied role, its paths prefixed with `/api/<role>`.
    /// A role that the registry does not proxy is left out (and logged): its paths would
    /// answer 404.
    pub fn with_proxied_doc(mut self, role: &str, doc: utoipa::openapi::OpenApi) -> Self {
        if !pinas_core::roles::proxied().any(|r| r.name == role) {
            tracing::error!(
                role,
                "not a proxied role in pinas_core::roles; its API is not documented"
            );
            return self;
        }
        self.openapi
            .merge(openapi::prefixed(doc, &format!("/api/{role}")));
        self
    }

    /// Adds a reporter for `GET /api/system/services`.
    pub fn with_services(mut self, source: Arc<dyn ServiceSource>) -> Self {
        self.services.push(source);
        self
    }

    /// Adds a hook told about passwords the web role sets (e.g. the setup admin's).
    pub fn with_account_hook(mut self, hook: Arc<dyn AccountHook>) -> Self {
        self.account_hooks.push(hook);
        self
    }

    /// The OpenAPI document of everything added so far.
    pub fn openapi(&self) -> &utoipa::openapi::OpenApi {
        &self.openapi
    }

    /// Builds the router and starts the background samplers (system stats every 2 s,
    /// role event relays). Call inside a tokio runtime.
    pub fn build(self) -> Router {
        let state = AppState::new(self.ctx, self.services, self.account_hooks, &self.openapi);
        state::spawn_background(&state);
        let mut protected = Router::new()
            .route("/api/auth/me", get(auth::me))
            .route(
                "/api/auth/me/preferences",
                get(auth::get_preferences).put(auth::put_preferences),
            )
            .route("/api/system/info", get(system::info))
            .route("/api/system/services", get(system::services))
            .route("/api/system/reboot", post(system::reboot))
            .route("/api/system/shutdown", post(system::shutdown))
            .route("/api/events", get(system::events))
            .route("/api/ws", get(ws::handler));
        // Only roles that exist: `/api/<anything else>` stays a JSON 404.
        for role in pinas_core::roles::proxied() {
            let name = role.name;
            protected = protected
                .route(&format!("/api/{name}"), any(proxy::handler))
                .route(&format!("/api/{name}/{{*rest}}"), any(proxy::handler));
        }
        // The remote share with local fallback is the companion's, under the storage API.
        if pinas_core::roles::proxied().any(|r| r.name == "companion") {
            protected = protected.route("/api/storage/remote/{*rest}", any(proxy::storage_remote));
        }
        let protected = self
            .routers
            .into_iter()
            .fold(protected.with_state(state.clone()), Router::merge)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_session,
            ));
        let mut public = Router::new()
            .route("/api/system/health", get(system::health))
            .route("/api/setup", get(setup::status).post(setup::complete))
            // The wizard needs it before setup is done.
            .route("/api/system/timezones", get(setup::timezones))
            .route("/api/auth/login", post(auth::login))
            .route("/api/auth/logout", post(auth::logout))
            .route("/api/openapi.json", get(openapi::serve))
            .route("/metrics", get(system::metrics))
            .route("/admin/api.php", get(proxy::pihole_v5))
            .route("/api", any(errors::api_not_found))
            .route("/api/{*rest}", any(errors::api_not_found));
        if pinas_core::roles::proxied().any(|r| r.name == "companion") {
            for (alias, _) in pinas_core::roles::COMPANION_ALIASES {
                public = public.route(alias, post(proxy::companion_alias));
            }
        }
        let public = public.with_state(state.clone());
        public
            .merge(protected)
            .fallback_service(static_files::service(&state.ctx.config.web.static_dir))
            .layer(axum::middleware::map_response(errors::json_errors))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
            .layer(tower_http::trace::TraceLayer::new_for_http())
    }
}
