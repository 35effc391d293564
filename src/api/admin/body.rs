//! What the admin routes read from a request: a JSON body (the data API's
//! parser: unknown fields refused, depth-limited, the offending field
//! named), query strings and path refs, each refused as a [`Problem`].

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::api::data::body::parse;
use crate::api::data::extract::parse_ref;
use crate::api::problem::Problem;

/// Admin bodies are flat documents.
const MAX_JSON_DEPTH: u32 = 8;

pub struct AdminJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AdminJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
                )
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
            }
        })?;
        parse(&bytes, MAX_JSON_DEPTH).map(AdminJson)
    }
}

/// A query string, refused as 400 `invalid_query` naming what is wrong.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}

/// `{ref}` of a path: a canonical ULID, else 400 `invalid_ref`.
#[derive(Debug, Clone, IntoParams)]
#[into_params(names("ref"), parameter_in = Path)]
pub struct RefPath(
    /// The tenant's or token's ref (ULID).
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for RefPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
        parse_ref("ref", &raw).map(RefPath)
    }
}
