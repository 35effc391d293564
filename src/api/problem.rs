//! The data API's one error type: `application/problem+json` (RFC 9457)
//! with a stable machine-readable `code`, field-level `errors` for
//! validation, the request's id, and for a refused transition the current
//! and allowed states. Every route lists it (see `data::openapi`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::records::RecordError;
use crate::records::auth::AuthError;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Seconds a client is told to wait after a transient store failure.
const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 1;

tokio::task_local! {
    /// The id of the request being served (set by the request-id layer), so
    /// that every problem carries it without each caller passing it.
    pub static REQUEST_ID: String;
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: a JSON path into the body (`kind`, `items[0].name`), or a
    /// path or query parameter's name.
    pub field: String,
    pub message: String,
}

/// An error answer (RFC 9457 problem details).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:strata:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the problem type (the same for every occurrence).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable and machine-readable, e.g. `illegal_transition`.
    pub code: String,
    /// The request's `X-Request-Id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field-level validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// For `illegal_transition`: the record's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    /// For `illegal_transition`: the states the record may move to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_states: Option<Vec<String>>,
    #[serde(skip)]
    retry_after_secs: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:strata:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            code: code.to_string(),
            request_id: None,
            errors: Vec::new(),
            current_state: None,
            allowed_states: None,
            retry_after_secs: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn not_found(detail: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }

    /// 422 with one field error.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {message}"),
        )
        .with_errors(vec![FieldError {
            field: field.to_string(),
            message,
        }])
    }

    /// 503 while the server boots (dependency checks, schema upgrade).
    pub fn starting(retry_after_secs: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "strata is starting (checking dependencies or upgrading the schema); retry later",
        )
        .with_retry_after(retry_after_secs)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error; the request id finds it in the log",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = REQUEST_ID.try_with(Clone::clone).ok();
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<RecordError> for Problem {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::NotFound => Problem::not_found("no such record"),
            RecordError::StaleVersion => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "If-Match names a version that is no longer current; read the record again",
            ),
            RecordError::IllegalTransition(refused) => {
                let detail = match &refused.from {
                    Some(from) => format!(
                        "cannot move from {from} to {}; allowed: {}",
                        refused.to,
                        list_or_none(&refused.allowed)
                    ),
                    None => format!(
                        "cannot be created as {}; allowed: {}",
                        refused.to,
                        list_or_none(&refused.allowed)
                    ),
                };
                let mut problem = Problem::new(StatusCode::CONFLICT, "illegal_transition", detail);
                problem.current_state = refused.from;
                problem.allowed_states = Some(refused.allowed);
                problem
            }
            RecordError::Conflict {
                constraint,
                message,
            } => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                with_constraint(&message, constraint),
            ),
            RecordError::InvalidField { field, message } => Problem::invalid_field(&field, message),
            RecordError::Invalid {
                constraint,
                message,
            } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "constraint_violated",
                with_constraint(&message, constraint),
            ),
            RecordError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a store is unavailable; nothing was changed, retry later",
                )
                .with_retry_after(RETRY_AFTER_UNAVAILABLE_SECS)
            }
            RecordError::Store(reason) => {
                tracing::error!(%reason, "store error");
                Problem::internal()
            }
        }
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::UnknownToken => Problem::unauthorized("unknown, revoked or expired token"),
            AuthError::UnknownTenant => Problem::not_found("no such tenant"),
            AuthError::TenantSuspended => Problem::new(
                StatusCode::FORBIDDEN,
                "tenant_suspended",
                "the tenant is suspended",
            ),
            AuthError::Store(e) => e.into(),
        }
    }
}

fn list_or_none(states: &[String]) -> String {
    if states.is_empty() {
        "none (final state)".to_string()
    } else {
        states.join(", ")
    }
}

fn with_constraint(message: &str, constraint: Option<String>) -> String {
    match constraint {
        Some(c) => format!("{message} ({c})"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state_machines::IllegalTransition;

    #[test]
    fn an_illegal_transition_is_409_with_the_allowed_states() {
        let refused = IllegalTransition::from_detail(
            r#"{"entity":"activities","ref":"01J","from":"succeeded","to":"running","allowed":[]}"#,
        )
        .expect("detail");
        let problem = Problem::from(RecordError::IllegalTransition(refused));
        assert_eq!(problem.status, 409);
        assert_eq!(problem.code, "illegal_transition");
        assert_eq!(problem.current_state.as_deref(), Some("succeeded"));
        assert_eq!(problem.allowed_states, Some(vec![]));
    }

    #[test]
    fn store_failures_map_to_their_statuses() {
        let unavailable = Problem::from(RecordError::Unavailable("gone".into()));
        assert_eq!(unavailable.status, 503);
        let response = unavailable.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let invalid = Problem::from(RecordError::Invalid {
            constraint: Some("activities_kind_check".into()),
            message: "violates".into(),
        });
        assert_eq!(invalid.status, 422);
        let conflict = Problem::from(RecordError::Conflict {
            constraint: None,
            message: "duplicate".into(),
        });
        assert_eq!(conflict.status, 409);
        let unauthorized = Problem::from(AuthError::UnknownToken).into_response();
        assert_eq!(unauthorized.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(Problem::from(AuthError::UnknownTenant).status, 404);
        assert_eq!(
            Problem::from(AuthError::TenantSuspended).code,
            "tenant_suspended"
        );
    }
}
