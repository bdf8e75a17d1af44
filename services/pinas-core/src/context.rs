//! What every role's code gets: configuration, paths, database and event bus.

use std::sync::Arc;

use crate::{db::Db, Config, EventBus, Paths};

/// Shared handles of a running PiNAS process, built once at start-up.
pub struct Context {
    pub config: Config,
    pub paths: Paths,
    pub db: Db,
    pub events: EventBus,
}

impl Context {
    /// Opens the database named by `config` and builds the context.
    ///
    /// # Errors
    /// [`crate::db::DbError`] when the database cannot be opened or migrated.
    pub fn open(config: Config) -> Result<Arc<Context>, crate::db::DbError> {
        let paths = Paths::new(&config);
        let db = Db::open(&paths.db)?;
        let events = EventBus::new(Some(db.clone()));
        Ok(Arc::new(Context {
            config,
            paths,
            db,
            events,
        }))
    }
}
