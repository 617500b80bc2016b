//! Every failure the API can answer with, and the one place that maps each
//! to its HTTP status and stable machine code.
//!
//! Each concern has its own error type (`RequestError`, `IdError`,
//! `TransitionError`, `WaitError`, `ConfigError`); `From` impls here turn them
//! into an [`ApiError`], whose [`ApiError::status`] and [`ErrorCode::as_str`]
//! are the wire contract.

use crate::config::ConfigError;
use crate::id::IdError;
use crate::longpoll::WaitError;
use crate::request::RequestError;
use crate::session::TransitionError;

/// Stable machine codes. Never rename one: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the body is not valid JSON (or not a JSON object).
    InvalidJson,
    /// 413: the body exceeds the configured limit.
    BodyTooLarge,
    /// 415: a Content-Type other than JSON.
    UnsupportedMediaType,
    /// 400: a required field is absent (or null).
    MissingField,
    /// 400: a field is an empty string.
    EmptyField,
    /// 400: a field has the wrong JSON type.
    InvalidType,
    /// 400: a field is longer than its limit.
    FieldTooLong,
    /// 400: a field we do not know.
    UnknownField,
    /// 400: a field holds control characters or is otherwise malformed.
    InvalidField,
    /// 400: `wait` is not a whole number of seconds.
    InvalidWait,
    /// 400: a malformed query string parameter other than `wait`.
    InvalidQuery,
    /// 400: a path id (sid, keyId, pid) that cannot exist.
    InvalidId,
    /// 401: no bearer token, or one we do not know.
    Unauthorized,
    /// 404: no such session for this key's PID.
    SessionNotFound,
    /// 404: no such PID.
    PidNotFound,
    /// 404: no such key.
    KeyNotFound,
    /// 404: no link for that id in this PID.
    LinkNotFound,
    /// 404: the PID has no webhook.
    WebhookNotFound,
    /// 400: a `returnUrl` whose origin the PID did not register.
    ReturnUrlNotAllowed,
    /// 400: a webhook URL the operator's allowed origins do not cover (or not https).
    WebhookUrlNotAllowed,
    /// An import line that is not a valid record (the message names the line).
    InvalidImport,
    /// 404: no such route (also: the admin API when it is disabled).
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the PID already exists.
    PidExists,
    /// 409: the session expired.
    SessionExpired,
    /// 409: the session was cancelled.
    SessionCancelled,
    /// 409: the session already completed.
    SessionCompleted,
    /// 409: the session completed with different ids.
    CompletionConflict,
    /// 429: the key's create quota is used up (`Retry-After`).
    QuotaExceeded,
    /// 429: too many open streams for this key.
    TooManyStreams,
    /// 500: the service is misconfigured (message names the variable).
    ConfigError,
    /// 500: a bug; the message says what.
    InternalError,
    /// 503: the store (Redis) is unreachable (`Retry-After`).
    StoreUnavailable,
}

impl ErrorCode {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            BodyTooLarge => "body_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MissingField => "missing_field",
            EmptyField => "empty_field",
            InvalidType => "invalid_type",
            FieldTooLong => "field_too_long",
            UnknownField => "unknown_field",
            InvalidField => "invalid_field",
            InvalidWait => "invalid_wait",
            InvalidQuery => "invalid_query",
            InvalidId => "invalid_id",
            Unauthorized => "unauthorized",
            SessionNotFound => "session_not_found",
            PidNotFound => "pid_not_found",
            KeyNotFound => "key_not_found",
            LinkNotFound => "link_not_found",
            WebhookNotFound => "webhook_not_found",
            ReturnUrlNotAllowed => "return_url_not_allowed",
            WebhookUrlNotAllowed => "webhook_url_not_allowed",
            InvalidImport => "invalid_import",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            PidExists => "pid_exists",
            SessionExpired => "session_expired",
            SessionCancelled => "session_cancelled",
            SessionCompleted => "session_completed",
            CompletionConflict => "completion_conflict",
            QuotaExceeded => "quota_exceeded",
            TooManyStreams => "too_many_streams",
            ConfigError => "config_error",
            InternalError => "internal_error",
            StoreUnavailable => "store_unavailable",
        }
    }

    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson | MissingField | EmptyField | InvalidType | FieldTooLong | UnknownField
            | InvalidField | InvalidWait | InvalidQuery | InvalidId | WebhookUrlNotAllowed
            | InvalidImport | ReturnUrlNotAllowed => 400,
            Unauthorized => 401,
            SessionNotFound | PidNotFound | KeyNotFound | LinkNotFound | WebhookNotFound
            | NotFound => 404,
            MethodNotAllowed => 405,
            PidExists | SessionExpired | SessionCancelled | SessionCompleted
            | CompletionConflict => 409,
            BodyTooLarge => 413,
            UnsupportedMediaType => 415,
            QuotaExceeded | TooManyStreams => 429,
            ConfigError | InternalError => 500,
            StoreUnavailable => 503,
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 33] = {
        use ErrorCode::*;
        [
            InvalidJson,
            BodyTooLarge,
            UnsupportedMediaType,
            MissingField,
            EmptyField,
            InvalidType,
            FieldTooLong,
            UnknownField,
            InvalidField,
            InvalidWait,
            InvalidQuery,
            InvalidId,
            Unauthorized,
            SessionNotFound,
            PidNotFound,
            KeyNotFound,
            LinkNotFound,
            WebhookNotFound,
            WebhookUrlNotAllowed,
            InvalidImport,
            ReturnUrlNotAllowed,
            NotFound,
            MethodNotAllowed,
            PidExists,
            SessionExpired,
            SessionCancelled,
            SessionCompleted,
            CompletionConflict,
            QuotaExceeded,
            TooManyStreams,
            ConfigError,
            InternalError,
            StoreUnavailable,
        ]
    };
}

/// An API failure: a code, a message, and what the response needs besides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}", code = .code.as_str())]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a `Retry-After` (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A 500 for a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InternalError, message)
    }

    /// 404 for a session this key cannot see (absent, or another PID's).
    pub fn session_not_found() -> Self {
        ApiError::new(ErrorCode::SessionNotFound, "no such verification session")
    }

    /// 401 with the standard message.
    pub fn unauthorized() -> Self {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing or invalid API key: send `Authorization: Bearer <key>`",
        )
    }

    /// 503 for an unreachable store.
    pub fn store_unavailable(retry_after_secs: u64) -> Self {
        ApiError::new(
            ErrorCode::StoreUnavailable,
            "the session store is unavailable; retry shortly",
        )
        .with_retry_after(retry_after_secs)
    }

    /// 429 for an exhausted quota.
    pub fn quota_exceeded(retry_after_secs: u64) -> Self {
        ApiError::new(
            ErrorCode::QuotaExceeded,
            "this key's verification-session quota is used up for the current window",
        )
        .with_retry_after(retry_after_secs)
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Seconds for a `Retry-After` header, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        use RequestError as R;
        let message = e.to_string();
        let (code, field) = match e {
            R::NotJson { .. } | R::NotAnObject => (ErrorCode::InvalidJson, None),
            R::TooLarge { .. } => (ErrorCode::BodyTooLarge, None),
            R::UnsupportedMediaType { .. } => (ErrorCode::UnsupportedMediaType, None),
            R::Missing { field } => (ErrorCode::MissingField, Some(field)),
            R::Empty { field } => (ErrorCode::EmptyField, Some(field)),
            R::WrongType { field, .. } => (ErrorCode::InvalidType, Some(field)),
            R::TooLong { field, .. } => (ErrorCode::FieldTooLong, Some(field)),
            R::Unknown { field } => (ErrorCode::UnknownField, Some(field)),
            R::ControlCharacters { field } | R::Invalid { field, .. } => {
                (ErrorCode::InvalidField, Some(field))
            }
        };
        let err = ApiError::new(code, message);
        match field {
            Some(f) => err.with_field(f),
            None => err,
        }
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        ApiError::new(ErrorCode::InvalidId, e.to_string())
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        let code = match e {
            TransitionError::Expired { .. } => ErrorCode::SessionExpired,
            TransitionError::Cancelled => ErrorCode::SessionCancelled,
            TransitionError::AlreadyCompleted => ErrorCode::SessionCompleted,
            TransitionError::CompletionConflict => ErrorCode::CompletionConflict,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<WaitError> for ApiError {
    fn from(e: WaitError) -> Self {
        let code = match e {
            WaitError::Wait { .. } => ErrorCode::InvalidWait,
            WaitError::Query { .. } => ErrorCode::InvalidQuery,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(ErrorCode::ConfigError, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = BTreeSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!((400..=599).contains(&c.status()));
        }
    }

    #[test]
    fn error_envelope_shape() {
        let e = ApiError::quota_exceeded(30);
        let json = crate::wire::error_json(&e, crate::Timestamp::from_millis(0));
        assert_eq!(
            json,
            format!(
                r#"{{"status":429,"error":{{"code":"quota_exceeded","message":"{}"}},"timestamp":"1970-01-01T00:00:00.000Z","version":"{}"}}"#,
                e.message(),
                crate::wire::SERVICE_VERSION
            )
        );
        assert_eq!(e.retry_after_secs(), Some(30));
    }
}
