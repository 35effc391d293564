//! Typed extractors shared by every collection: path refs validated as
//! ULIDs, the authenticated unit of work, `If-Match`, pagination and query
//! strings. Each rejects with the data API's [`Problem`].

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use super::DataState;
use crate::api::auth::bearer_token;
use crate::api::problem::Problem;
use crate::records::auth::{self, Actor};
use crate::records::page::{Cursor, DEFAULT_LIMIT, MAX_LIMIT};
use crate::records::{RecordError, Tx};
use crate::stores::postgres::Postgres;

/// A ULID in its canonical form (26 upper-case Crockford characters), as
/// every ref strata hands out.
pub fn parse_ref(field: &str, value: &str) -> Result<String, Problem> {
    match value.parse::<ulid::Ulid>() {
        Ok(parsed) if parsed.to_string() == value => Ok(value.to_string()),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_ref",
            format!("{field} must be a ULID (26 upper-case Crockford base32 characters)"),
        )
        .with_errors(vec![crate::api::problem::FieldError {
            field: field.to_string(),
            message: "not a ULID".to_string(),
        }])),
    }
}

#[derive(Deserialize)]
struct RawTenantPath {
    #[serde(rename = "tenantRef")]
    tenant_ref: String,
}

#[derive(Deserialize)]
struct RawRecordPath {
    #[serde(rename = "tenantRef")]
    tenant_ref: String,
    #[serde(rename = "ref")]
    record_ref: String,
}

fn path_problem(rejection: axum::extract::rejection::PathRejection) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        rejection.body_text(),
    )
}

/// `{tenantRef}` of a collection's path.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's ref (ULID).
    #[param(rename = "tenantRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub tenant_ref: String,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<RawTenantPath>::from_request_parts(parts, state)
            .await
            .map_err(path_problem)?;
        Ok(TenantPath {
            tenant_ref: parse_ref("tenantRef", &raw.tenant_ref)?,
        })
    }
}

/// `{tenantRef}` and `{ref}` of a record's path.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RecordPath {
    /// The tenant's ref (ULID).
    #[param(rename = "tenantRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub tenant_ref: String,
    /// The record's ref (ULID).
    #[param(rename = "ref", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub record_ref: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RecordPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<RawRecordPath>::from_request_parts(parts, state)
            .await
            .map_err(path_problem)?;
        Ok(RecordPath {
            tenant_ref: parse_ref("tenantRef", &raw.tenant_ref)?,
            record_ref: parse_ref("ref", &raw.record_ref)?,
        })
    }
}

/// The unit of work of an authenticated request: a PostgreSQL transaction
/// (through PgBouncer) in which the token was checked and the tenant of
/// the path set for row-level security, in one round trip after `BEGIN`.
/// Read-only for GET. Dropping it without [`Work::commit`] rolls back.
pub struct Work {
    pub tx: Tx,
    pub pg: Postgres,
    pub tenant_id: uuid::Uuid,
    pub tenant_ref: String,
    pub actor: Actor,
}

impl Work {
    pub async fn commit(self) -> Result<(), Problem> {
        self.tx
            .commit()
            .await
            .map_err(|e| Problem::from(RecordError::from(e)))
    }
}

impl FromRequestParts<DataState> for Work {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &DataState) -> Result<Self, Problem> {
        // The token first: a request without one learns nothing else.
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| Problem::unauthorized("missing bearer token"))?
            .to_string();
        let TenantPath { tenant_ref } = TenantPath::from_request_parts(parts, state).await?;
        let pg = state.postgres()?.clone();
        let read_only = parts.method == Method::GET || parts.method == Method::HEAD;
        let session = auth::begin(&pg, &token, &tenant_ref, read_only).await?;
        Ok(Work {
            tx: session.tx,
            pg,
            tenant_id: session.tenant_id,
            tenant_ref,
            actor: session.actor,
        })
    }
}

/// `If-Match`: the version (ETag) the client last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Absent,
    /// `*`: any current version.
    Any,
    /// A strong entity tag, without its quotes.
    Tag(String),
}

impl IfMatch {
    /// The version to check, if any.
    pub fn version(&self) -> Option<&str> {
        match self {
            IfMatch::Tag(tag) => Some(tag),
            _ => None,
        }
    }

    /// For writes that must not overwrite blindly: 428 without `If-Match`.
    pub fn required(&self) -> Result<Option<&str>, Problem> {
        match self {
            IfMatch::Absent => Err(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the ETag of the version you read (or *)",
            )),
            other => Ok(other.version()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch::Absent);
        };
        let value = value.to_str().unwrap_or_default().trim();
        if value == "*" {
            return Ok(IfMatch::Any);
        }
        // Only one strong tag: weak tags never match for If-Match (RFC 9110
        // section 13.1.1), a list would be a client that lost track. A
        // malformed header is a bad request (400), not a stale version (412).
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(tag) if !tag.is_empty() && tag.bytes().all(is_etagc) => {
                Ok(IfMatch::Tag(tag.to_string()))
            }
            _ => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_if_match",
                "If-Match must be one strong ETag as sent by strata (\"...\") or *",
            )
            .with_errors(vec![crate::api::problem::FieldError {
                field: "If-Match".to_string(),
                message: "not one strong ETag or *".to_string(),
            }])),
        }
    }
}

/// A character of an entity tag (RFC 9110 `etagc`, without obs-text).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b)
}

/// What [`IfMatch`] accepts, for the document: `*` or one strong ETag.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|"[!#-~]+")$"#;

fn if_match_parameter(required: bool, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name("If-Match")
        .parameter_in(ParameterIn::Header)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(IF_MATCH_PATTERN)),
        ))
        .build()
}

/// Documents an optional `If-Match` (`params(RecordPath, IfMatch)`).
impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![if_match_parameter(
            false,
            "If sent: the ETag last read (or *); a stale one is 412",
        )]
    }
}

/// Documents a required `If-Match` (`params(RecordPath, IfMatchRequired)`);
/// the handler extracts [`IfMatch`] and calls [`IfMatch::required`].
pub struct IfMatchRequired;

impl IntoParams for IfMatchRequired {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![if_match_parameter(
            true,
            "The ETag last read, or *; 428 without it, 412 if stale",
        )]
    }
}

/// The ETag header value of a version.
pub fn etag(version: &str) -> String {
    format!("\"{version}\"")
}

/// A query string parsed into `T`; a bad one is 422 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(deserializer)
            .map(QueryParams)
            .map_err(|e| Problem::invalid_field(&e.path().to_string(), e.inner().to_string()))
    }
}

/// The pagination parameters every list takes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Rows per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page (opaque).
    pub cursor: Option<String>,
}

impl Paging {
    /// The validated limit and cursor.
    pub fn resolve(&self) -> Result<(u32, Option<Cursor>), Problem> {
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                return Err(Problem::invalid_field(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                ));
            }
        };
        let cursor = match &self.cursor {
            None => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                Problem::invalid_field("cursor", "not a cursor strata handed out")
            })?),
        };
        Ok((limit, cursor))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let QueryParams(paging) = QueryParams::<Paging>::from_request_parts(parts, state).await?;
        Ok(paging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn if_match(value: &str) -> Result<IfMatch, Problem> {
        let request = axum::http::Request::builder()
            .header(header::IF_MATCH, value)
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        IfMatch::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn if_match_is_star_or_one_strong_tag_else_400() {
        assert_eq!(if_match("*").await.expect("*"), IfMatch::Any);
        assert_eq!(
            if_match("\"01ABC-3\"").await.expect("tag"),
            IfMatch::Tag("01ABC-3".into())
        );
        for bad in ["abc", "\"\"", "\"a b\"", "W/\"x\"", "\"a\", \"b\"", "null"] {
            let refused = if_match(bad).await.expect_err(bad);
            assert_eq!(
                (refused.status, refused.code.as_str()),
                (400, "invalid_if_match")
            );
        }
    }
}
