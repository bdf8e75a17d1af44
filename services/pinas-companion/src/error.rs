//! The companion role's error: what went wrong, with a stable code and, for bad input,
//! the field concerned. Domain code returns it; its one `impl IntoResponse` below decides
//! the HTTP status.

use axum::response::{IntoResponse, Response};

/// An error of the companion role.
#[derive(Debug, thiserror::Error)]
pub enum CompanionError {
    /// A value the caller gave cannot be used (a bad MAC address, URL, snapshot...): 422.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// No or a wrong pairing token: 401.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// The caller may not do this (not an administrator): 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The thing asked for does not exist (no snapshot yet): 404.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request clashes with the settings (the NAS has no MAC address yet): 409.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The body is larger than the endpoint takes: 413.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// Too many requests or failed attempts from one client: 429, retry after `retry_secs`.
    #[error("{message}")]
    TooMany { message: String, retry_secs: u64 },
    /// Something the role needs is not there (its state folder, the DNS role): 503.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The role's database failed: 500.
    #[error("companion database: {0}")]
    Database(#[from] rusqlite::Error),
    /// Anything else; the message says what: 500.
    #[error("{0}")]
    Internal(String),
}

impl CompanionError {
    /// [`CompanionError::Invalid`] naming `field`.
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        CompanionError::Invalid {
            code,
            message: message.into(),
            field: Some(field),
        }
    }

    /// [`CompanionError::Unauthorized`].
    pub fn unauthorized(message: impl Into<String>) -> Self {
        CompanionError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        }
    }

    /// [`CompanionError::Forbidden`].
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        CompanionError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// [`CompanionError::NotFound`].
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        CompanionError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// [`CompanionError::Conflict`].
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        CompanionError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// [`CompanionError::Unavailable`].
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        CompanionError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// [`CompanionError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        CompanionError::Internal(message.into())
    }

    /// The stable code, e.g. `invalid_mac`.
    pub fn code(&self) -> &'static str {
        match self {
            CompanionError::Invalid { code, .. }
            | CompanionError::Unauthorized { code, .. }
            | CompanionError::Forbidden { code, .. }
            | CompanionError::NotFound { code, .. }
            | CompanionError::Conflict { code, .. }
            | CompanionError::TooLarge { code, .. }
            | CompanionError::Unavailable { code, .. } => code,
            CompanionError::TooMany { .. } => "too_many_requests",
            CompanionError::Database(_) | CompanionError::Internal(_) => "internal",
        }
    }
}

/// 422 invalid, 401 unauthorized, 403 forbidden, 404 not found, 409 conflict, 413 too
/// large, 429 too many (with `Retry-After`), 503 unavailable, 500 otherwise; the body is
/// PiNAS's `{"error":{"code","message","field"}}`.
impl IntoResponse for CompanionError {
    fn into_response(self) -> Response {
        use axum::http::StatusCode as S;
        use pinas_core::Error as E;
        let code = self.code();
        let retry = match &self {
            CompanionError::TooMany { retry_secs, .. } => Some(*retry_secs),
            _ => None,
        };
        let e = match self {
            CompanionError::Invalid { message, field, .. } => {
                let e = E::invalid(code, message);
                match field {
                    Some(f) => e.with_field(f),
                    None => e,
                }
            }
            CompanionError::Unauthorized { message, .. } => E::new(S::UNAUTHORIZED, code, message),
            CompanionError::Forbidden { message, .. } => E::forbidden(code, message),
            CompanionError::NotFound { message, .. } => E::not_found(code, message),
            CompanionError::Conflict { message, .. } => E::conflict(code, message),
            CompanionError::TooLarge { message, .. } => E::new(S::PAYLOAD_TOO_LARGE, code, message),
            CompanionError::TooMany { message, .. } => E::new(S::TOO_MANY_REQUESTS, code, message),
            CompanionError::Unavailable { message, .. } => E::unavailable(code, message),
            e @ (CompanionError::Database(_) | CompanionError::Internal(_)) => {
                tracing::warn!(error = %e, "companion request failed");
                E::internal(e.to_string())
            }
        };
        let mut resp = e.into_response();
        if let Some(secs) = retry {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}
