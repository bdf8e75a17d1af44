//! Shared foundation of every PiNAS role.
//!
//! `pinas-core` owns what all roles agree on: the configuration file and its environment
//! overrides ([`config`]), where state lives ([`paths`]), the SQLite database with its
//! embedded migrations ([`db`]), the event envelope sent to browsers ([`events`]), the
//! error type every HTTP API answers with ([`error`]), password hashing and session tokens
//! ([`auth`]), atomic file writes ([`fsutil`]), and the registry of roles ([`roles`]) that
//! the binary, the web proxy, setup, the services list and the image are derived from.
//!
//! It does not own any role's behaviour: DNS, storage, shares and the web API live in
//! their own crates and depend on this one, never on each other.

pub mod auth;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod memory;
pub mod paths;
pub mod role;
pub mod roles;

pub use config::Config;
pub use context::Context;
pub use error::{Error, Result};
pub use events::{Event, EventBus};
pub use paths::Paths;

/// The PiNAS version, from the workspace's `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
