//! Shared state of the web role, built once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinas_core::Context;

use crate::system::{Sampler, StatsSnapshot};

pub use pinas_core::roles::{ServiceState, ServiceStatus};

/// Something that reports services (Samba, NFS, ...).
pub trait ServiceSource: Send + Sync {
    /// The current status of each service this source manages.
    fn services(&self) -> Vec<ServiceStatus>;
}

/// Told when the web role sets an account's password (the setup wizard's admin), so
/// other services (Samba) can give the account the same password.
pub trait AccountHook: Send + Sync {
    /// `name` now has `password`. Called off the async workers; may block.
    ///
    /// # Errors
    /// A message for the log and the user's notification; the password is set anyway.
    fn password_set(&self, name: &str, password: &str) -> Result<(), String>;

    /// Setup has just finished (roles and the admin account stored). Called off the
    /// async workers after [`AccountHook::password_set`] for the admin; may block.
    fn setup_done(&self) {}
}

/// Settings shown on every `GET /api/system/info`.
#[derive(Clone, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub roles: Vec<String>,
}

pub struct Inner {
    pub ctx: Arc<Context>,
    /// Login and setup-code attempt limits, and the password hashing semaphore.
    pub limiter: crate::limit::Limiter,
    /// The setup code and whether storage is usable, while setup is pending.
    pub setup: crate::setup::SetupGate,
    pub services: Vec<Arc<dyn ServiceSource>>,
    pub account_hooks: Vec<Arc<dyn AccountHook>>,
    pub openapi_json: String,
    pub setup_done: AtomicBool,
    /// Recently checked sessions by token hash (see `auth::lookup_session`).
    pub sessions: Mutex<HashMap<String, (crate::auth::Session, Instant)>>,
    /// Host name and roles, read from the database at start and updated by setup.
    pub host: std::sync::RwLock<HostFacts>,
    pub stats: Mutex<StatsSnapshot>,
    pub sampler: Mutex<Sampler>,
    /// Read once: they do not change while running.
    pub board_model: String,
    pub kernel: String,
}

/// Cheap-to-clone handle on [`Inner`].
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        ctx: Arc<Context>,
        services: Vec<Arc<dyn ServiceSource>>,
        account_hooks: Vec<Arc<dyn AccountHook>>,
        openapi: &utoipa::openapi::OpenApi,
    ) -> Self {
        let done = ctx
            .db
            .setting("setup_done")
            .ok()
            .flatten()
            .is_some_and(|v| v == "true");
        let host = HostFacts {
            hostname: ctx
                .db
                .setting("hostname")
                .ok()
                .flatten()
                .or_else(sysinfo::System::host_name)
                .unwrap_or_default(),
            roles: ctx
                .db
                .setting("roles")
                .ok()
                .flatten()
                .and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or_default(),
        };
        let setup = crate::setup::SetupGate::prepare(&ctx, done);
        let mut sampler = Sampler::new();
        let stats = sampler.sample();
        AppState(Arc::new(Inner {
            ctx,
            limiter: crate::limit::Limiter::new(),
            setup,
            services,
            account_hooks,
            openapi_json: openapi.to_json().unwrap_or_else(|_| "{}".into()),
            setup_done: AtomicBool::new(done),
            sessions: Mutex::new(HashMap::new()),
            host: std::sync::RwLock::new(host),
            stats: Mutex::new(stats),
            sampler: Mutex::new(sampler),
            board_model: crate::system::board_model(),
            kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        }))
    }

    pub fn is_setup_done(&self) -> bool {
        self.setup_done.load(Ordering::Acquire)
    }
}

/// Starts the periodic work of the web role: system stats every 2 s, and, for roles
/// running in other processes, relaying their event streams into this process's bus.
pub fn spawn_background(state: &AppState) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let snap = s.sampler.lock().unwrap_or_else(|e| e.into_inner()).sample();
            let data = serde_json::to_value(&snap).unwrap_or_default();
            *s.stats.lock().unwrap_or_else(|e| e.into_inner()) = snap;
            s.ctx.events.emit("system.stats.update", data);
        }
    });
    if !state.ctx.config.dev {
        for role in pinas_core::roles::proxied() {
            tokio::spawn(crate::proxy::relay_events(state.clone(), role.name));
        }
    }
}
