//! The split pattern over HTTP: thin handlers in front of
//! [`crate::content`]. A write authenticates and checks the record in one
//! short transaction, streams the body to S3 and MongoDB with no
//! PostgreSQL connection held, then writes the pointer and moves the state
//! machine in a second transaction (the token is checked again there).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::DataState;
use super::body::JsonBody;
use super::collection::{self, problem};
use super::extract::{RecordPath, TenantPath, Work, parse_ref};
use crate::api::auth::bearer_token;
use crate::api::problem::Problem;
use crate::audit::{Action, Diff};
use crate::content::outputs::{self, OutputDocument, WRITABLE_FROM};
use crate::content::{Content, ContentError, Step, checkpoint, essence};
use crate::records::auth;
use crate::records::collections::activities::{Activity, TABLE};
use crate::records::table;
use crate::stores::postgres::Postgres;

/// Seconds a client is told to wait after a transient store failure.
const RETRY_AFTER_SECS: u32 = 1;

pub fn routes() -> OpenApiRouter<DataState> {
    OpenApiRouter::new()
        .routes(routes!(put_output, get_output))
        .routes(routes!(output_url))
        .routes(routes!(start_upload))
        .routes(routes!(confirm_upload))
        .routes(routes!(accept_contract))
        .routes(routes!(contract_pdf))
}

/// The problem for a split-path failure.
pub fn content_problem(error: ContentError) -> Problem {
    match error {
        ContentError::TooLarge { limit } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the {limit} bytes accepted here"),
        ),
        ContentError::UnsupportedType { given, accepted } => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{given:?} is not accepted here; send one of {accepted}"),
        ),
        ContentError::Body(reason) => Problem::new(
            StatusCode::BAD_REQUEST,
            "incomplete_body",
            format!("the body could not be read to its end: {reason}"),
        ),
        ContentError::NotFound(what) => Problem::not_found(what),
        ContentError::RangeNotSatisfiable => Problem::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "the range lies outside the content",
        ),
        ContentError::Unavailable(reason) => {
            tracing::warn!(%reason, "store unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "a store is unavailable; no pointer was written, retry later",
            )
            .with_retry_after(RETRY_AFTER_SECS)
        }
        ContentError::Store(reason) => {
            tracing::error!(%reason, "store error");
            Problem::internal()
        }
        ContentError::UploadMissing => Problem::new(
            StatusCode::CONFLICT,
            "upload_missing",
            "nothing was uploaded with this upload's URL (yet); PUT the bytes first",
        ),
        ContentError::Mismatch { field, message } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "upload_mismatch",
            format!("the upload differs from what was declared: {field}: {message}"),
        )
        .with_errors(vec![crate::api::problem::FieldError {
            field: field.to_string(),
            message,
        }]),
        ContentError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "conflict", detail),
        ContentError::NotWritable {
            entity,
            current,
            allowed,
        } => not_writable(entity, current, allowed),
        ContentError::Fault(step) => {
            tracing::error!(step, "injected fault");
            Problem::internal()
        }
    }
}

/// 409 for content written to a record in a state that takes none.
pub fn not_writable(entity: &str, current: String, allowed: Vec<String>) -> Problem {
    let mut refused = Problem::new(
        StatusCode::CONFLICT,
        "illegal_transition",
        format!(
            "content is written to a {entity} in state {}; this one is {current}",
            allowed.join(" or ")
        ),
    );
    refused.current_state = Some(current);
    refused.allowed_states = Some(allowed);
    refused
}

/// The media type a write's `Content-Type` names (no parameters), checked
/// against `accepted`, and its declared length against `limit`: both
/// refused before any byte is read.
pub fn body_type(headers: &HeaderMap, accepted: &[&str], limit: u64) -> Result<String, Problem> {
    let media_type = essence(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    if !accepted.contains(&media_type.as_str()) {
        return Err(content_problem(ContentError::UnsupportedType {
            given: media_type,
            accepted: accepted.join(", "),
        }));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(content_problem(ContentError::TooLarge { limit }));
    }
    Ok(media_type)
}

/// What a read serves: one object, pinned to the version its document
/// recorded, with that document's media type and SHA-256.
pub struct Served {
    pub key: String,
    pub version: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

impl From<&OutputDocument> for Served {
    fn from(d: &OutputDocument) -> Self {
        Served {
            key: d.s3_key.clone(),
            version: d.version_id(),
            content_type: d.content_type(),
            size: d.size,
            sha256: d.sha256.clone(),
        }
    }
}

/// The object's bytes streamed through strata: `Content-Type`, an `ETag`
/// (the SHA-256; `If-None-Match` answers 304) and one `Range`.
pub async fn serve(
    content: &Content,
    served: &Served,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let etag = content_etag(&served.sha256);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let range = single_range(headers);
    let object = content
        .open_version(&served.key, served.version.as_deref(), range.as_deref())
        .await
        .map_err(content_problem)?;
    Ok(streamed(object, served.content_type.clone(), etag))
}

/// A pre-signed GET of exactly the object (and version) served.
pub async fn presign(content: &Content, served: Served) -> Result<Json<OutputUrl>, Problem> {
    let presigned = content
        .presign_get_version(&served.key, served.version.as_deref())
        .await
        .map_err(content_problem)?;
    Ok(Json(OutputUrl {
        url: presigned.url,
        expires_at: presigned.expires_at,
        content_type: served.content_type,
        size: served.size,
        sha256: served.sha256,
    }))
}

/// The caller of a split write: the token and tenant, checked each time a
/// transaction is opened with [`Caller::begin`].
pub struct Caller {
    token: String,
    pub tenant_ref: String,
    pg: Postgres,
}

impl FromRequestParts<DataState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &DataState) -> Result<Self, Problem> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| Problem::unauthorized("missing bearer token"))?
            .to_string();
        let TenantPath { tenant_ref } = TenantPath::from_request_parts(parts, state).await?;
        Ok(Caller {
            token,
            tenant_ref,
            pg: state.postgres()?.clone(),
        })
    }
}

impl Caller {
    /// A unit of work for this caller (the token checked again).
    pub async fn begin(&self) -> Result<Work, Problem> {
        let session = auth::begin(&self.pg, &self.token, &self.tenant_ref, false).await?;
        Ok(Work {
            tx: session.tx,
            pg: self.pg.clone(),
            tenant_id: session.tenant_id,
            tenant_ref: self.tenant_ref.clone(),
            actor: session.actor,
        })
    }
}

/// An activity's output as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityOutput {
    /// The output's ref (ULID): the activity's `outputRef`.
    #[serde(rename = "ref")]
    pub output_ref: String,
    pub activity_ref: String,
    /// `markdown` or `json`.
    pub format: String,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 (hex) of the bytes; also the content's ETag.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

impl From<&OutputDocument> for ActivityOutput {
    fn from(d: &OutputDocument) -> Self {
        Self {
            output_ref: d.ref_id.clone(),
            activity_ref: d.activity_ref.clone(),
            format: d.format.clone(),
            content_type: d.content_type(),
            size: d.size,
            sha256: d.sha256.clone(),
            created_at: d.created_at(),
        }
    }
}

/// A pre-signed GET of stored content (an output, a strategy version, an
/// onboarding run's part).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputUrl {
    /// A GET of exactly this object (and version), straight from S3.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

pub fn content_etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Stores the activity's output (Markdown or JSON) and moves the activity
/// from running to succeeded with `outputRef` pointing at it, in one
/// transaction; a succeeded activity gets its output replaced. The body is
/// streamed to S3 (never held whole); its size is limited by
/// `content.activity_output_max_bytes`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/output",
    tag = "activities",
    operation_id = "putActivityOutput",
    summary = "Store an activity's output; the activity succeeds",
    params(RecordPath),
    request_body(
        description = "The output: Markdown or JSON",
        content(("text/markdown"), ("application/json"))
    ),
    responses(
        (status = 201, description = "Stored; the activity succeeded", body = ActivityOutput, headers(
            ("Location" = String, description = "The output's URL path"),
            ("ETag" = String, description = "The SHA-256 of the content"),
        )),
        (status = 404, description = "No such activity (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The activity is neither running nor succeeded",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the configured limit",
         body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a media type accepted for outputs",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_output(
    State(state): State<DataState>,
    caller: Caller,
    path: RecordPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    check_writable(&caller, &path.record_ref).await?;

    let accepted: Vec<&str> = content
        .config()
        .activity_output_types
        .iter()
        .map(String::as_str)
        .collect();
    let limit = content.config().activity_output_max_bytes;
    let media_type = body_type(&headers, &accepted, limit)?;
    let document = outputs::store(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        &media_type,
        body.into_data_stream(),
    )
    .await
    .map_err(content_problem)?;

    point_and_commit(&caller, &path.record_ref, &document.ref_id).await?;
    Ok(created_output(&caller, &path.record_ref, &document))
}

/// Refuses (before any byte is stored) an output for an activity that is
/// neither running nor succeeded. The transaction ends here: no
/// PostgreSQL connection is held while a body streams.
async fn check_writable(caller: &Caller, activity_ref: &str) -> Result<(), Problem> {
    let mut work = caller.begin().await?;
    let activity: Activity =
        table::get(&work.pg, &mut work.tx, work.tenant_id, &TABLE, activity_ref)
            .await
            .map_err(|e| problem(&TABLE, e))?;
    work.commit().await?;
    if WRITABLE_FROM.contains(&activity.status.as_str()) {
        return Ok(());
    }
    let mut refused = Problem::new(
        StatusCode::CONFLICT,
        "illegal_transition",
        format!(
            "an output is stored for a running (or succeeded) activity; this one is {}",
            activity.status
        ),
    );
    refused.current_state = Some(activity.status);
    refused.allowed_states = Some(vec!["succeeded".to_string()]);
    Err(refused)
}

/// Step three of every output write: the pointer and the state change in
/// one transaction, then the commit.
async fn point_and_commit(
    caller: &Caller,
    activity_ref: &str,
    output_ref: &str,
) -> Result<(), Problem> {
    let mut work = caller.begin().await?;
    let (before, after) = outputs::point(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        activity_ref,
        output_ref,
        &work.actor.token_name,
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    let diff = Diff::changed(&before, &after)?;
    collection::audit(&mut work, &TABLE, activity_ref, Action::Transition, diff).await?;
    checkpoint(Step::Pointer).map_err(content_problem)?;
    work.commit().await?;
    checkpoint(Step::Committed).map_err(content_problem)
}

fn created_output(caller: &Caller, activity_ref: &str, document: &OutputDocument) -> Response {
    let location = format!(
        "/v1/tenants/{}/activities/{activity_ref}/output",
        caller.tenant_ref
    );
    let mut response = (
        StatusCode::CREATED,
        [(header::ETAG, content_etag(&document.sha256))],
        Json(ActivityOutput::from(document)),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The activity's output document, through its pointer (tenant, not deleted).
pub async fn output_of(
    mut work: Work,
    content: &Content,
    activity_ref: &str,
) -> Result<OutputDocument, Problem> {
    let activity: Activity =
        table::get(&work.pg, &mut work.tx, work.tenant_id, &TABLE, activity_ref)
            .await
            .map_err(|e| problem(&TABLE, e))?;
    let tenant_ref = work.tenant_ref.clone();
    work.commit().await?;
    let output_ref = activity
        .output_ref
        .ok_or_else(|| Problem::not_found("the activity has no output"))?;
    outputs::find(content, &tenant_ref, &output_ref)
        .await
        .map_err(content_problem)
}

/// One `bytes=` range as S3 takes it (`a-b`, `a-`, `-n`); anything else
/// (several ranges, other units) is ignored and the whole content served,
/// as RFC 9110 allows.
fn single_range(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = value.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 19;
    let valid = digits(first)
        && digits(last)
        && !(first.is_empty() && last.is_empty())
        && (first.is_empty()
            || last.is_empty()
            || first.parse::<u64>().ok()? <= last.parse::<u64>().ok()?);
    valid.then(|| value.to_string())
}

/// The output's bytes, streamed through strata with its `Content-Type`,
/// an `ETag` (the SHA-256) and `Range` support.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/output",
    tag = "activities",
    operation_id = "getActivityOutput",
    summary = "Read an activity's output (streamed; Range, ETag)",
    params(
        RecordPath,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag held: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The content", headers(
            ("ETag" = String, description = "The SHA-256 of the content"),
        ), content((String = "text/markdown"), ("application/json"))),
        (status = 206, description = "The requested range", headers(
            ("Content-Range" = String, description = "Which bytes"),
        ), content((String = "text/markdown"), ("application/json"))),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such activity, deleted, or no output",
         body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the content",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_output(
    State(state): State<DataState>,
    work: Work,
    path: RecordPath,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let content = state.content()?;
    let document = output_of(work, content, &path.record_ref).await?;
    serve(content, &Served::from(&document), &headers).await
}

/// An object's bytes as the answer, streamed as S3 sends them.
fn streamed(object: crate::content::Object, content_type: String, etag: String) -> Response {
    let status = if object.content_range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let stream = futures_util::stream::unfold(object.body, |mut body| async move {
        body.next()
            .await
            .map(|chunk| (chunk.map_err(std::io::Error::other), body))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let out = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, Some(content_type)),
        (header::ETAG, Some(etag)),
        (header::ACCEPT_RANGES, Some("bytes".to_string())),
        (
            header::CONTENT_LENGTH,
            object.content_length.map(|n| n.to_string()),
        ),
        (header::CONTENT_RANGE, object.content_range),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            out.insert(name, value);
        }
    }
    response
}

/// A pre-signed GET for the output's object, valid for
/// `content.presign_expiry_secs` (at most an hour), for exactly that key.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/output/url",
    tag = "activities",
    operation_id = "getActivityOutputUrl",
    summary = "A pre-signed URL of an activity's output",
    params(RecordPath),
    responses(
        (status = 200, description = "The URL and until when it works", body = OutputUrl),
        (status = 404, description = "No such activity, deleted, or no output",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn output_url(
    State(state): State<DataState>,
    work: Work,
    path: RecordPath,
) -> Result<Json<OutputUrl>, Problem> {
    let content = state.content()?;
    let document = output_of(work, content, &path.record_ref).await?;
    presign(content, Served::from(&document)).await
}

/// `{tenantRef}`, `{ref}` and `{uploadRef}` of a direct upload's path.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UploadPath {
    /// The tenant's ref (ULID).
    #[param(rename = "tenantRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub tenant_ref: String,
    /// The record's ref (ULID).
    #[param(rename = "ref", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub record_ref: String,
    /// The upload's ref (ULID), from its start.
    #[param(rename = "uploadRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub upload_ref: String,
}

impl<S: Send + Sync> FromRequestParts<S> for UploadPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "tenantRef")]
            tenant_ref: String,
            #[serde(rename = "ref")]
            record_ref: String,
            #[serde(rename = "uploadRef")]
            upload_ref: String,
        }
        let axum::extract::Path(raw) = axum::extract::Path::<Raw>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
        Ok(UploadPath {
            tenant_ref: parse_ref("tenantRef", &raw.tenant_ref)?,
            record_ref: parse_ref("ref", &raw.record_ref)?,
            upload_ref: parse_ref("uploadRef", &raw.upload_ref)?,
        })
    }
}

/// What a direct upload will hold (declared when it starts, checked when
/// it is confirmed).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclaredUpload {
    /// One of the media types the entity takes (as its PUT does).
    pub content_type: UploadMediaType,
    /// Bytes (at most the entity's limit, as its PUT).
    #[schema(minimum = 0)]
    pub size: u64,
    /// SHA-256 of the bytes, 64 lower-case hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
}

/// The media types a direct upload may declare (each entity takes some).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub enum UploadMediaType {
    #[serde(rename = "text/markdown")]
    Markdown,
    #[serde(rename = "application/json")]
    Json,
    #[serde(rename = "text/plain")]
    PlainText,
}

impl UploadMediaType {
    fn as_str(self) -> &'static str {
        match self {
            UploadMediaType::Markdown => "text/markdown",
            UploadMediaType::Json => "application/json",
            UploadMediaType::PlainText => "text/plain",
        }
    }
}

impl DeclaredUpload {
    /// The declared media type, if it is `accepted` and the rest holds:
    /// at most `limit` bytes, a well-formed SHA-256.
    pub fn check<A: AsRef<str>>(&self, accepted: &[A], limit: u64) -> Result<String, Problem> {
        let media_type = self.content_type.as_str();
        if !accepted.iter().any(|a| a.as_ref() == media_type) {
            let accepted: Vec<&str> = accepted.iter().map(AsRef::as_ref).collect();
            return Err(Problem::invalid_field(
                "contentType",
                format!("must be one of {}", accepted.join(", ")),
            ));
        }
        if self.size > limit {
            return Err(Problem::invalid_field(
                "size",
                format!("must be at most {limit} bytes"),
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Problem::invalid_field(
                "sha256",
                "must be 64 lower-case hex digits",
            ));
        }
        Ok(media_type.to_string())
    }
}

/// A started direct upload: PUT the bytes to `url` with `headers`, then
/// confirm.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectUpload {
    /// The upload's ref: confirm it at `.../uploads/{ref}/confirm`.
    #[serde(rename = "ref")]
    pub upload_ref: String,
    /// Always `PUT`.
    pub method: String,
    /// Pre-signed for exactly this upload's key, content type and size.
    pub url: String,
    /// Headers the PUT must send as they are (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// The answer to a direct upload's start, for every entity: a pre-signed
/// PUT of exactly `key` (a new key under the tenant's prefix, named by
/// `upload_ref`) with the declared type and size in its signature;
/// `uploads` is the path the upload's confirm lies under.
pub async fn start_direct_upload(
    content: &Content,
    key: &str,
    media_type: &str,
    size: u64,
    upload_ref: String,
    uploads: &str,
) -> Result<Response, Problem> {
    let presigned = content
        .presign_put(key, media_type, size)
        .await
        .map_err(content_problem)?;
    let location = format!("{uploads}/{upload_ref}");
    let mut response = (
        StatusCode::CREATED,
        Json(DirectUpload {
            upload_ref,
            method: "PUT".to_string(),
            url: presigned.url,
            headers: presigned.headers.into_iter().collect(),
            expires_at: presigned.expires_at,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Starts a direct upload of an activity's output: a pre-signed PUT for a
/// new key under the tenant's prefix, with the declared content type and
/// size bound into the signature. Nothing points at the upload until it is
/// confirmed; an unconfirmed upload is an orphan.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/output/uploads",
    tag = "activities",
    operation_id = "startActivityOutputUpload",
    summary = "Start a direct upload of an activity's output (pre-signed PUT)",
    params(RecordPath),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "PUT the bytes to the URL, then confirm", body = DirectUpload),
        (status = 404, description = "No such activity (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The activity is neither running nor succeeded",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unacceptable declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: RecordPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content = state.content()?;
    check_writable(&caller, &path.record_ref).await?;
    let media_type = declared.check(
        &content.config().activity_output_types,
        content.config().activity_output_max_bytes,
    )?;
    let upload_ref = ulid::Ulid::generate().to_string();
    let key = outputs::upload_key(
        &caller.tenant_ref,
        &path.record_ref,
        &upload_ref,
        &media_type,
    )
    .map_err(content_problem)?;
    let uploads = format!(
        "/v1/tenants/{}/activities/{}/output/uploads",
        caller.tenant_ref, path.record_ref
    );
    start_direct_upload(
        content,
        &key,
        &media_type,
        declared.size,
        upload_ref,
        &uploads,
    )
    .await
}

/// Confirms a direct upload: the object must exist with the declared size
/// and SHA-256 (strata reads it back) before the document and the pointer
/// are written; then the activity succeeds, as with a PUT of the output.
/// Confirming again after a success changes nothing.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/output/uploads/{uploadRef}/confirm",
    tag = "activities",
    operation_id = "confirmActivityOutputUpload",
    summary = "Confirm a direct upload; the activity succeeds",
    params(UploadPath),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "Confirmed; the activity succeeded", body = ActivityOutput),
        (status = 404, description = "No such activity (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing uploaded yet, or the activity cannot succeed",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The upload differs from the declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: UploadPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content = state.content()?;
    check_writable(&caller, &path.record_ref).await?;
    let media_type = declared.check(
        &content.config().activity_output_types,
        content.config().activity_output_max_bytes,
    )?;
    let document = outputs::confirm(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        &path.upload_ref,
        &media_type,
        declared.size,
        &declared.sha256,
    )
    .await
    .map_err(content_problem)?;
    point_and_commit(&caller, &path.record_ref, &document.ref_id).await?;
    Ok(created_output(&caller, &path.record_ref, &document))
}

/// Who accepted a contract, as the platform recorded it.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AcceptanceQuery {
    /// The accepting person's name (1–200 characters).
    #[param(min_length = 1, max_length = 200)]
    pub accepted_by_name: String,
    /// Their e-mail address.
    #[param(min_length = 3, max_length = 320, pattern = "^[^@]+@[^@]+$")]
    pub accepted_by_email: String,
    /// The IP address they accepted from.
    pub accepted_ip: String,
    /// Their browser's user agent (1–1000 characters).
    #[param(min_length = 1, max_length = 1000)]
    pub accepted_user_agent: String,
}

fn acceptance_query(query: &str) -> Result<AcceptanceQuery, Problem> {
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| Problem::invalid_field(&e.path().to_string(), e.inner().to_string()))
}

impl AcceptanceQuery {
    fn check(self) -> Result<crate::content::contracts::Acceptance, Problem> {
        let length = |field: &str, value: &str, max: usize| {
            let n = value.chars().count();
            if n == 0 || n > max || value.contains('\0') {
                Err(Problem::invalid_field(
                    field,
                    format!("must be 1–{max} characters"),
                ))
            } else {
                Ok(())
            }
        };
        length("acceptedByName", &self.accepted_by_name, 200)?;
        length("acceptedByEmail", &self.accepted_by_email, 320)?;
        length("acceptedUserAgent", &self.accepted_user_agent, 1000)?;
        let parts: Vec<&str> = self.accepted_by_email.split('@').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(Problem::invalid_field(
                "acceptedByEmail",
                "must be an e-mail address",
            ));
        }
        if self.accepted_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Problem::invalid_field(
                "acceptedIp",
                "must be an IP address",
            ));
        }
        Ok(crate::content::contracts::Acceptance {
            name: self.accepted_by_name,
            email: self.accepted_by_email,
            ip: self.accepted_ip,
            user_agent: self.accepted_user_agent,
        })
    }
}

/// Accepts a pending contract with its signed PDF: the PDF goes into the
/// Object Lock bucket (WORM for `s3.contracts_retention_years`), then the
/// contract moves to accepted with the whole acceptance record (who, when,
/// IP, user agent, SHA-256, S3 version and retain-until) in one
/// transaction. An accepted contract is immutable.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/contracts/{ref}/accept",
    tag = "contracts",
    operation_id = "acceptContract",
    summary = "Accept a contract with its PDF (WORM)",
    params(RecordPath, AcceptanceQuery),
    request_body(description = "The accepted PDF", content(("application/pdf"))),
    responses(
        (status = 200, description = "Accepted", body = crate::records::collections::contracts::Contract, headers(
            ("ETag" = String, description = "Its version"),
        )),
        (status = 404, description = "No such contract (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than content.contract_max_bytes",
         body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/pdf",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid acceptance record",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn accept_contract(
    State(state): State<DataState>,
    caller: Caller,
    path: RecordPath,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    use crate::records::collections::contracts::{Contract, TABLE as CONTRACTS};
    let content = state.content()?;
    let mut work = caller.begin().await?;
    let contract: Contract = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &CONTRACTS,
        &path.record_ref,
    )
    .await
    .map_err(|e| problem(&CONTRACTS, e))?;
    work.commit().await?;
    if contract.status != "pending" {
        let mut refused = Problem::new(
            StatusCode::CONFLICT,
            "illegal_transition",
            format!(
                "only a pending contract is accepted; this one is {}",
                contract.status
            ),
        );
        refused.current_state = Some(contract.status);
        refused.allowed_states = Some(Vec::new());
        return Err(refused);
    }
    // Parsed once the caller and the contract are known, so that an
    // unknown token or record is 401/404 whatever the query says.
    let acceptance = acceptance_query(uri.query().unwrap_or_default())?.check()?;
    let media_type = essence(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    if media_type != crate::content::contracts::MEDIA_TYPE {
        return Err(content_problem(ContentError::UnsupportedType {
            given: media_type,
            accepted: crate::content::contracts::MEDIA_TYPE.to_string(),
        }));
    }
    let limit = content.config().contract_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(content_problem(ContentError::TooLarge { limit }));
    }
    let pdf = crate::content::contracts::store_pdf(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        body.into_data_stream(),
    )
    .await
    .map_err(content_problem)?;
    let mut work = caller.begin().await?;
    let (pending, accepted) = crate::content::contracts::accept(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &path.record_ref,
        &acceptance,
        &pdf,
        &work.actor.token_name,
    )
    .await
    .map_err(|e| problem(&CONTRACTS, e))?;
    let diff = Diff::changed(&pending, &accepted)?;
    collection::audit(
        &mut work,
        &CONTRACTS,
        &path.record_ref,
        Action::Transition,
        diff,
    )
    .await?;
    checkpoint(Step::Pointer).map_err(content_problem)?;
    work.commit().await?;
    checkpoint(Step::Committed).map_err(content_problem)?;
    Ok((
        StatusCode::OK,
        [(header::ETAG, super::extract::etag(&accepted.etag))],
        Json(accepted),
    )
        .into_response())
}

/// The accepted PDF, streamed from the Object Lock bucket (exactly the
/// version recorded at acceptance).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/contracts/{ref}/pdf",
    tag = "contracts",
    operation_id = "getContractPdf",
    summary = "Read an accepted contract's PDF",
    params(
        RecordPath,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023"),
    ),
    responses(
        (status = 200, description = "The PDF", headers(
            ("ETag" = String, description = "Its SHA-256"),
        ), content((String = "application/pdf"))),
        (status = 206, description = "The requested range", headers(
            ("Content-Range" = String, description = "Which bytes"),
        ), content((String = "application/pdf"))),
        (status = 404, description = "No such contract, deleted, or not accepted",
         body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the PDF",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn contract_pdf(
    State(state): State<DataState>,
    mut work: Work,
    path: RecordPath,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    use crate::records::collections::contracts::{Contract, TABLE as CONTRACTS};
    let content = state.content()?;
    let contract: Contract = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &CONTRACTS,
        &path.record_ref,
    )
    .await
    .map_err(|e| problem(&CONTRACTS, e))?;
    let tenant_ref = work.tenant_ref.clone();
    work.commit().await?;
    let (Some(key), Some(version), Some(sha256)) = (
        contract.pdf_s3_key,
        contract.pdf_version_id,
        contract.pdf_sha256,
    ) else {
        return Err(Problem::not_found("the contract has no accepted PDF"));
    };
    if !crate::content::in_prefix(&tenant_ref, &key) {
        return Err(content_problem(ContentError::Store(format!(
            "contract {} has a key outside its tenant's prefix",
            path.record_ref
        ))));
    }
    let object = content
        .contracts()
        .open_version(&key, Some(&version), single_range(&headers).as_deref())
        .await
        .map_err(content_problem)?;
    Ok(streamed(
        object,
        crate::content::contracts::MEDIA_TYPE.to_string(),
        content_etag(&sha256),
    ))
}
