//! The power role's error: what went wrong, with a stable code and, for bad input, the
//! field concerned. Domain code returns it; its one `impl IntoResponse` decides the HTTP
//! status.

use axum::response::{IntoResponse, Response};

use crate::klap::PlugError;

/// An error of the power role.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// A value the caller gave cannot be used (an address, a tariff, an interval): 422.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// The caller may not do this (not an administrator): 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// No such plug: 404.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request clashes with the plug's settings or state (switching not allowed,
    /// the NAS is running, a name already used): 409.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The plug did not do what was asked: 502 with the plug's error code.
    #[error("{0}")]
    Plug(#[from] PlugError),
    /// The role's state folder, database or credentials file cannot be used: 503.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The role's database failed: 500.
    #[error("power database: {0}")]
    Database(#[from] rusqlite::Error),
    /// Anything else; the message says what: 500.
    #[error("{0}")]
    Internal(String),
}

impl PowerError {
    /// [`PowerError::Invalid`] naming `field`.
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        PowerError::Invalid {
            code,
            message: message.into(),
            field: Some(field),
        }
    }

    /// [`PowerError::Forbidden`].
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        PowerError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// [`PowerError::NotFound`] for plug `id`.
    pub fn no_plug(id: i64) -> Self {
        PowerError::NotFound {
            code: "plug_not_found",
            message: format!("there is no plug {id}"),
        }
    }

    /// [`PowerError::Conflict`].
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        PowerError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// [`PowerError::Unavailable`].
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        PowerError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// [`PowerError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        PowerError::Internal(message.into())
    }

    /// The stable code, e.g. `invalid_address`.
    pub fn code(&self) -> &'static str {
        match self {
            PowerError::Invalid { code, .. }
            | PowerError::Forbidden { code, .. }
            | PowerError::NotFound { code, .. }
            | PowerError::Conflict { code, .. }
            | PowerError::Unavailable { code, .. } => code,
            PowerError::Plug(e) => e.code(),
            PowerError::Database(_) | PowerError::Internal(_) => "internal",
        }
    }
}

/// 422 invalid, 403 forbidden, 404 not found, 409 conflict, 502 the plug failed, 503
/// unavailable, 500 otherwise; the body is PiNAS's `{"error":{"code","message","field"}}`.
impl IntoResponse for PowerError {
    fn into_response(self) -> Response {
        use axum::http::StatusCode as S;
        use pinas_core::Error as E;
        let code = self.code();
        let e = match self {
            PowerError::Invalid { message, field, .. } => {
                let e = E::invalid(code, message);
                match field {
                    Some(f) => e.with_field(f),
                    None => e,
                }
            }
            PowerError::Forbidden { message, .. } => E::forbidden(code, message),
            PowerError::NotFound { message, .. } => E::not_found(code, message),
            PowerError::Conflict { message, .. } => E::conflict(code, message),
            PowerError::Plug(e) => E::new(S::BAD_GATEWAY, code, e.to_string()),
            PowerError::Unavailable { message, .. } => E::unavailable(code, message),
            e @ (PowerError::Database(_) | PowerError::Internal(_)) => {
                tracing::warn!(error = %e, "power request failed");
                E::internal(e.to_string())
            }
        };
        e.into_response()
    }
}

/// Runs `f` on tokio's blocking pool (SQLite, files).
///
/// # Errors
/// `f`'s error; 500 when the task panicked.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PowerError> + Send + 'static,
) -> Result<T, PowerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PowerError::internal(format!("power task failed: {e}")))?
}
