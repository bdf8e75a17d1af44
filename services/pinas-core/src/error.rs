//! The error every PiNAS HTTP API answers with.
//!
//! Body: `{"error":{"code":"share_path_outside_root","message":"...","field":"path"}}`,
//! where `code` is a stable snake_case identifier for programs, `message` is for people,
//! and `field` (optional) names the request field the error concerns so a form can show
//! the message next to it. Role crates keep their own `thiserror` enums and convert into
//! this type at the HTTP boundary.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An API error: HTTP status, stable code, human message, optional field.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub field: Option<Cow<'static, str>>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The JSON body of an error response, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The `error` object of [`ErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case identifier, e.g. `share_path_outside_root`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
    /// The request field concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Error {
    /// An error with any status.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// Names the request field this error concerns.
    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401: not logged in.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "log in first")
    }
    /// 403: logged in but not allowed.
    pub fn forbidden(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 404: no such thing.
    pub fn not_found(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 409: conflicts with the current state.
    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 422: well-formed but invalid.
    pub fn invalid(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 500: PiNAS failed; the message says what it was doing.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    /// 503: a component PiNAS depends on is not available.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        tracing::error!(error = %e, "database error");
        Error::internal(format!("database error: {e}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into_owned(),
                message: self.message,
                field: self.field.map(Cow::into_owned),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Runs `f` on tokio's blocking pool (SQLite, mount(2), Samba's tools: work that must not
/// hold an async worker) and turns its error into an API [`Error`]. A task that panicked
/// becomes a 500 naming `what` (e.g. `"storage"`).
///
/// # Errors
/// `f`'s error, converted; 500 `internal` when the task panicked.
pub async fn run_blocking<T, E>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Error>
where
    T: Send + 'static,
    E: Into<Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("{what} task failed: {e}")))?
        .map_err(Into::into)
}
