//! The DNS role's error: what went wrong, with a stable code and, for bad input, the
//! field concerned. Domain code returns it; [`crate::api`] maps it to an HTTP status once.

/// An error of the DNS role.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A value the caller gave cannot be used (a bad record, URL, setting...).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// The thing asked for does not exist (a record id, a blocklist id...).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The change clashes with what exists (a duplicate, the switch name...).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// The caller may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Something the role needs is not there (a port, its state folder, its socket).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The role's database failed.
    #[error("DNS database: {0}")]
    Database(#[from] rusqlite::Error),
    /// Anything else; the message says what.
    #[error("{0}")]
    Internal(String),
}

impl DnsError {
    /// [`DnsError::Invalid`] without a field.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        DnsError::Invalid {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// [`DnsError::NotFound`].
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        DnsError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// [`DnsError::Conflict`] without a field.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DnsError::Conflict {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// [`DnsError::Forbidden`].
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        DnsError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// [`DnsError::Unavailable`].
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        DnsError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// [`DnsError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        DnsError::Internal(message.into())
    }

    /// Names the request field an [`DnsError::Invalid`] or [`DnsError::Conflict`]
    /// concerns; other kinds are returned unchanged.
    pub fn with_field(mut self, name: &'static str) -> Self {
        if let DnsError::Invalid { field, .. } | DnsError::Conflict { field, .. } = &mut self {
            *field = Some(name);
        }
        self
    }

    /// The stable code, e.g. `invalid_record`.
    pub fn code(&self) -> &'static str {
        match self {
            DnsError::Invalid { code, .. }
            | DnsError::NotFound { code, .. }
            | DnsError::Conflict { code, .. }
            | DnsError::Forbidden { code, .. }
            | DnsError::Unavailable { code, .. } => code,
            DnsError::Database(_) | DnsError::Internal(_) => "internal",
        }
    }

    /// The field concerned, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DnsError::Invalid { field, .. } | DnsError::Conflict { field, .. } => *field,
            _ => None,
        }
    }
}

/// True when `e` is a UNIQUE (or other constraint) violation: the row exists already.
pub fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}
