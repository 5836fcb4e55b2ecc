//! The single mapping from every layer's errors to HTTP statuses and the API's error object.
//! Owns: [`ApiError`]. Never: logs client errors above `debug`; internal errors are logged
//! once here and answered with a generic message.

use crate::registry;
use crate::runtime::{self, Limit};
use hyper::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

/// An error answered in the API spec's error format (section 3.3) with a code of section 4.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error code of the API spec's table.
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// Structured details, or null.
    pub details: Value,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Value::is_null")]
    details: &'a Value,
    timestamp: String,
    request_id: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            allow: None,
            retry_after: None,
        }
    }

    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`: refused for load, not queued.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        let mut error = Self::unavailable(message);
        error.retry_after = Some(retry_after);
        error
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 409 with `INVALID_REQUEST`: the spec has no code of its own for a conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "INVALID_REQUEST", message)
    }

    /// 429 `RATE_LIMITED`.
    pub fn rate_limited(per_minute: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("rate limit of {per_minute} requests per minute reached; see Retry-After"),
        )
    }

    /// 503 `SERVICE_UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            message,
        )
    }

    /// 400 `INVALID_REQUEST`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 408 `TIMEOUT`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "TIMEOUT", message)
    }

    /// 405 `METHOD_NOT_ALLOWED`, with the methods the route has in `Allow`.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[hyper::Method]) -> Self {
        let allow = allowed
            .iter()
            .map(hyper::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on {path}; use {allow}"),
        );
        error.allow = Some(allow);
        error
    }

    /// 413 with `INVALID_REQUEST`: the spec has no code of its own for a too-large body.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_REQUEST",
            format!("request body larger than {limit} bytes (limits.max_body_bytes)"),
        )
    }

    /// 500 `INTERNAL_ERROR` with a generic message; the cause is logged here, once.
    pub fn internal(request_id: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal server error",
        )
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The JSON body.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: &self.message,
                details: &self.details,
                timestamp: super::now_rfc3339(),
                request_id,
            },
        };
        // Serializing a struct of strings and a `Value` cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        match error {
            crate::auth::AuthError::Forbidden { .. } => ApiError::forbidden(error.to_string()),
            crate::auth::AuthError::Missing | crate::auth::AuthError::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", error.to_string())
            }
        }
    }
}

impl From<registry::Error> for ApiError {
    fn from(error: registry::Error) -> Self {
        match error {
            registry::Error::UnknownTool { .. } => ApiError::not_found(error.to_string()),
            registry::Error::AmbiguousTool {
                ref tool,
                ref candidates,
            } => ApiError::invalid_request(error.to_string())
                .with_details(json!({ "action": tool, "candidates": candidates })),
            registry::Error::InvalidArguments { tool, problems } => {
                ApiError::invalid_request(format!("invalid arguments for tool {tool:?}"))
                    .with_details(json!({ "tool": tool, "problems": problems }))
            }
            registry::Error::Runtime(error) => error.into(),
        }
    }
}

impl From<runtime::Error> for ApiError {
    fn from(error: runtime::Error) -> Self {
        let message = error.to_string();
        match &error {
            runtime::Error::LimitExceeded {
                plugin,
                limit,
                value,
                ..
            } => {
                let (status, code) = match limit {
                    Limit::WallTime => (StatusCode::REQUEST_TIMEOUT, "TIMEOUT"),
                    Limit::Concurrency | Limit::InstancePool => {
                        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
                    }
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
                };
                ApiError::new(status, code, message)
                    .with_details(json!({ "plugin": plugin, "limit": limit.key(), "value": value }))
            }
            runtime::Error::Trap { plugin, .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
                    .with_details(json!({ "plugin": plugin }))
            }
            runtime::Error::Compile { .. }
            | runtime::Error::Link { .. }
            | runtime::Error::Host { .. } => ApiError::internal("", &error),
        }
    }
}
