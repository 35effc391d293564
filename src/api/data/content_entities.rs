//! The split pattern's other entities over HTTP, on the same write and
//! read path as activity outputs ([`super::content`]): onboarding runs'
//! parts, strategy versions, and the content of blog and social posts
//! (which point at an activity output).

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
use super::content::{
    Caller, DeclaredUpload, DirectUpload, OutputUrl, Served, UploadPath, body_type, content_etag,
    content_problem, not_writable, presign, serve, start_direct_upload,
};
use super::extract::{RecordPath, Work, parse_ref};
use crate::api::problem::Problem;
use crate::audit::{Action, Diff};
use crate::content::onboarding::{self, Part, ResearchDocument, StoredPart};
use crate::content::strategies::{self, StrategyDocument};
use crate::content::{Content, ContentError, PointError, Step, checkpoint, outputs};
use crate::records::collections::onboarding_runs::{OnboardingRun, TABLE as RUNS};
use crate::records::collections::strategies::{Strategy, TABLE as STRATEGIES};
use crate::records::table::{self, Table};

pub fn routes() -> OpenApiRouter<DataState> {
    OpenApiRouter::new()
        .routes(routes!(put_run_part, get_run_part))
        .routes(routes!(run_part_url))
        .routes(routes!(start_run_part_upload))
        .routes(routes!(confirm_run_part_upload))
        .routes(routes!(put_strategy_content, get_strategy_content))
        .routes(routes!(strategy_content_url))
        .routes(routes!(start_strategy_upload))
        .routes(routes!(confirm_strategy_upload))
        .routes(routes!(get_blog_post_content))
        .routes(routes!(blog_post_content_url))
        .routes(routes!(get_social_post_content))
        .routes(routes!(social_post_content_url))
}

fn point_problem(table: &Table, entity: &'static str, allowed: &[&str], e: PointError) -> Problem {
    match e {
        PointError::Record(e) => problem(table, e),
        PointError::NotWritable(current) => not_writable(
            entity,
            current,
            allowed.iter().map(|s| s.to_string()).collect(),
        ),
    }
}

/// Reads a record in a short transaction of its own (none is held while
/// a body streams).
async fn current<R: collection::Row>(
    caller: &Caller,
    table: &'static Table,
    record_ref: &str,
) -> Result<R, Problem> {
    let mut work = caller.begin().await?;
    let found: R = table::get(&work.pg, &mut work.tx, work.tenant_id, table, record_ref)
        .await
        .map_err(|e| problem(table, e))?;
    work.commit().await?;
    Ok(found)
}

/// Step three's end, shared: the audit diff, the fault hook, the commit.
async fn audit_and_commit<R: Serialize>(
    mut work: Work,
    table: &'static Table,
    record_ref: &str,
    before: &R,
    after: &R,
    moved: bool,
) -> Result<(), Problem> {
    let action = if moved {
        Action::Transition
    } else {
        Action::Update
    };
    let diff = Diff::changed(before, after)?;
    collection::audit(&mut work, table, record_ref, action, diff).await?;
    checkpoint(Step::Pointer).map_err(content_problem)?;
    work.commit().await?;
    checkpoint(Step::Committed).map_err(content_problem)
}

fn created<T: Serialize>(location: String, sha256: &str, body: T) -> Response {
    let mut response = (
        StatusCode::CREATED,
        [(header::ETAG, content_etag(sha256))],
        Json(body),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

// ---------------------------------------------------------------------
// Onboarding runs

/// A part of an onboarding run's content.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnboardingPart {
    ScrapedText,
    Research,
    ContextFile,
}

impl From<OnboardingPart> for Part {
    fn from(p: OnboardingPart) -> Self {
        match p {
            OnboardingPart::ScrapedText => Part::ScrapedText,
            OnboardingPart::Research => Part::Research,
            OnboardingPart::ContextFile => Part::ContextFile,
        }
    }
}

/// `{tenantRef}`, `{ref}` and `{part}` of a run's part, as documented.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PartParams {
    /// The tenant's ref (ULID).
    #[param(rename = "tenantRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    tenant_ref: String,
    /// The onboarding run's ref (ULID).
    #[param(rename = "ref", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    record_ref: String,
    /// `scraped-text`, `research` or `context-file`.
    #[param(inline)]
    part: OnboardingPart,
}

/// `{tenantRef}`, `{ref}`, `{part}` and `{uploadRef}` of a direct upload
/// of a run's part, as documented.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PartUploadParams {
    /// The tenant's ref (ULID).
    #[param(rename = "tenantRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    tenant_ref: String,
    /// The onboarding run's ref (ULID).
    #[param(rename = "ref", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    record_ref: String,
    /// `scraped-text`, `research` or `context-file`.
    #[param(inline)]
    part: OnboardingPart,
    /// The upload's ref (ULID), from its start.
    #[param(rename = "uploadRef", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    upload_ref: String,
}

/// `{tenantRef}`, `{ref}` and `{part}` of a run's part. The part is judged
/// by [`PartPath::part`], after the token, so that a request without a
/// valid one learns nothing.
#[derive(Debug, Clone)]
pub struct PartPath {
    pub tenant_ref: String,
    pub record_ref: String,
    raw_part: String,
    /// `{uploadRef}`, on a direct upload's confirm.
    pub upload_ref: Option<String>,
}

impl PartPath {
    pub fn part(&self) -> Result<OnboardingPart, Problem> {
        match self.raw_part.as_str() {
            "scraped-text" => Ok(OnboardingPart::ScrapedText),
            "research" => Ok(OnboardingPart::Research),
            "context-file" => Ok(OnboardingPart::ContextFile),
            _ => Err(Problem::not_found(
                "no such part (scraped-text, research, context-file)",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PartPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "tenantRef")]
            tenant_ref: String,
            #[serde(rename = "ref")]
            record_ref: String,
            part: String,
            #[serde(rename = "uploadRef")]
            upload_ref: Option<String>,
        }
        let axum::extract::Path(raw) = axum::extract::Path::<Raw>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
        let tenant_ref = parse_ref("tenantRef", &raw.tenant_ref)?;
        let record_ref = parse_ref("ref", &raw.record_ref)?;
        let upload_ref = match raw.upload_ref {
            Some(upload_ref) => Some(parse_ref("uploadRef", &upload_ref)?),
            None => None,
        };
        Ok(PartPath {
            tenant_ref,
            record_ref,
            raw_part: raw.part,
            upload_ref,
        })
    }
}

/// A part of an onboarding run as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingContent {
    pub part: OnboardingPart,
    /// The run's ref.
    pub run_ref: String,
    /// The run's state after the write.
    pub run_status: String,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 (hex) of the bytes; also the content's ETag.
    pub sha256: String,
    pub written_at: DateTime<Utc>,
}

/// Stores a part of an onboarding run: the scraped text (`text/plain` or
/// `text/markdown`; the run must be scraping, it moves to researching, or
/// researching: replaced), the research (`text/markdown` or
/// `application/json`; researching) or the context file (`text/markdown`
/// or `text/plain`; researching: the run completes). Each write is a new
/// object under `{tenantRef}/onboarding/{runRef}/`; the run's document in
/// `onboarding_research` points at it, and the run's `researchRef` at the
/// document, set in the transaction that moves the run. At most
/// `content.onboarding_max_bytes`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenantRef}/onboarding-runs/{ref}/content/{part}",
    tag = "onboarding-runs",
    operation_id = "putOnboardingRunContent",
    summary = "Store a part of an onboarding run (scraped text, research, context file)",
    params(PartParams),
    request_body(
        description = "The part's bytes",
        content(("text/plain"), ("text/markdown"), ("application/json"))
    ),
    responses(
        (status = 201, description = "Stored; the run moved on where the part ends a stage",
         body = OnboardingContent, headers(
            ("Location" = String, description = "The part's URL path"),
            ("ETag" = String, description = "The SHA-256 of the content"),
        )),
        (status = 404, description = "No such run (or deleted), or no such part",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is in a state that takes no such part",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than content.onboarding_max_bytes",
         body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a media type this part takes",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_run_part(
    State(state): State<DataState>,
    caller: Caller,
    path: PartPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let run: OnboardingRun = current(&caller, &RUNS, &path.record_ref).await?;
    let wire_part = path.part()?;
    let part = Part::from(wire_part);
    run_writable(&run, part)?;
    let limit = content.config().onboarding_max_bytes;
    let media_type = body_type(&headers, part.media_types(), limit)?;
    let stored = onboarding::store(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        part,
        &media_type,
        body.into_data_stream(),
    )
    .await
    .map_err(content_problem)?;
    point_run_part(&caller, &path.record_ref, wire_part, stored).await
}

/// 409 unless the run is in a state that takes the part.
fn run_writable(run: &OnboardingRun, part: Part) -> Result<(), Problem> {
    if part.writable_in().contains(&run.status.as_str()) {
        return Ok(());
    }
    Err(content_problem(ContentError::NotWritable {
        entity: "onboarding run",
        current: run.status.clone(),
        allowed: part.writable_in().iter().map(|s| s.to_string()).collect(),
    }))
}

/// Step three of a part's write (a PUT or a confirmed upload): the run
/// points at its document and moves on where the part ends a stage.
async fn point_run_part(
    caller: &Caller,
    run_ref: &str,
    wire_part: OnboardingPart,
    stored: StoredPart,
) -> Result<Response, Problem> {
    let part = Part::from(wire_part);
    let mut work = caller.begin().await?;
    let (before, after) = onboarding::point(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        run_ref,
        part,
        &work.actor.token_name,
    )
    .await
    .map_err(|e| point_problem(&RUNS, "onboarding run", part.writable_in(), e))?;
    let moved = before.status != after.status;
    audit_and_commit(work, &RUNS, run_ref, &before, &after, moved).await?;
    Ok(run_part_created(
        caller,
        run_ref,
        wire_part,
        &after.status,
        stored,
    ))
}

fn run_part_created(
    caller: &Caller,
    run_ref: &str,
    wire_part: OnboardingPart,
    status: &str,
    stored: StoredPart,
) -> Response {
    let location = format!(
        "/v1/tenants/{}/onboarding-runs/{run_ref}/content/{}",
        caller.tenant_ref,
        Part::from(wire_part).name()
    );
    let sha256 = stored.sha256.clone();
    created(
        location,
        &sha256,
        run_content(wire_part, run_ref, status, stored),
    )
}

/// Starts a direct upload of a part of an onboarding run: a pre-signed PUT
/// for a new key under `{tenantRef}/onboarding/{runRef}/`, with the
/// declared media type (one the part takes) and size (at most
/// `content.onboarding_max_bytes`) bound into the signature. The run must
/// be in a state that takes the part. Nothing points at the upload until
/// it is confirmed; an unconfirmed upload is an orphan.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/onboarding-runs/{ref}/content/{part}/uploads",
    tag = "onboarding-runs",
    operation_id = "startOnboardingRunContentUpload",
    summary = "Start a direct upload of a part of an onboarding run (pre-signed PUT)",
    params(PartParams),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "PUT the bytes to the URL, then confirm", body = DirectUpload),
        (status = 404, description = "No such run (or deleted), or no such part",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is in a state that takes no such part",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unacceptable declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_run_part_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: PartPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let run: OnboardingRun = current(&caller, &RUNS, &path.record_ref).await?;
    let part = Part::from(path.part()?);
    run_writable(&run, part)?;
    let media_type = declared.check(part.media_types(), content.config().onboarding_max_bytes)?;
    let upload_ref = ulid::Ulid::generate().to_string();
    let key = onboarding::upload_key(
        &caller.tenant_ref,
        &path.record_ref,
        part,
        &upload_ref,
        &media_type,
    )
    .map_err(content_problem)?;
    let uploads = format!(
        "/v1/tenants/{}/onboarding-runs/{}/content/{}/uploads",
        caller.tenant_ref,
        path.record_ref,
        part.name()
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

/// Confirms a direct upload of a part: the object must exist with the
/// declared size and SHA-256 (strata reads it back) before the run's
/// document and pointer are written; then the run moves on as with a PUT
/// of the part. Confirming again after a success changes nothing.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/onboarding-runs/{ref}/content/{part}/uploads/{uploadRef}/confirm",
    tag = "onboarding-runs",
    operation_id = "confirmOnboardingRunContentUpload",
    summary = "Confirm a direct upload of a part of an onboarding run",
    params(PartUploadParams),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "Confirmed; the run moved on where the part ends a stage",
         body = OnboardingContent),
        (status = 404, description = "No such run (or deleted), or no such part",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing uploaded yet, or the run takes no such part now",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The upload differs from the declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_run_part_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: PartPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let run: OnboardingRun = current(&caller, &RUNS, &path.record_ref).await?;
    let wire_part = path.part()?;
    let part = Part::from(wire_part);
    let upload_ref = path
        .upload_ref
        .as_deref()
        .ok_or_else(|| Problem::not_found("no upload ref in the path"))?;
    let media_type = declared.check(part.media_types(), content.config().onboarding_max_bytes)?;
    if let Err(not_writable) = run_writable(&run, part) {
        // A confirm repeated after its run moved on: the same answer.
        if run.research_ref.is_none() {
            return Err(not_writable);
        }
        let key = onboarding::upload_key(
            &caller.tenant_ref,
            &path.record_ref,
            part,
            upload_ref,
            &media_type,
        )
        .map_err(content_problem)?;
        let held = onboarding::holding(content, &caller.tenant_ref, &path.record_ref, part, &key)
            .await
            .map_err(content_problem)?;
        return match held {
            Some(stored) => Ok(run_part_created(
                &caller,
                &path.record_ref,
                wire_part,
                &run.status,
                stored,
            )),
            None => Err(not_writable),
        };
    }
    let stored = onboarding::confirm(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        part,
        upload_ref,
        &media_type,
        declared.size,
        &declared.sha256,
    )
    .await
    .map_err(content_problem)?;
    point_run_part(&caller, &path.record_ref, wire_part, stored).await
}

fn run_content(
    part: OnboardingPart,
    run_ref: &str,
    status: &str,
    stored: StoredPart,
) -> OnboardingContent {
    OnboardingContent {
        part,
        run_ref: run_ref.to_string(),
        run_status: status.to_string(),
        content_type: stored.content_type,
        size: stored.size,
        sha256: stored.sha256,
        written_at: stored.written_at,
    }
}

/// A run's part through its pointer: the run (tenant, not deleted) →
/// `researchRef` → the document → the part's key.
async fn run_part_of(
    mut work: Work,
    content: &Content,
    path: &PartPath,
) -> Result<Served, Problem> {
    let run: OnboardingRun = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &RUNS,
        &path.record_ref,
    )
    .await
    .map_err(|e| problem(&RUNS, e))?;
    let tenant_ref = work.tenant_ref.clone();
    work.commit().await?;
    let research_ref = run
        .research_ref
        .ok_or_else(|| Problem::not_found("the run has no content yet"))?;
    let document: ResearchDocument = onboarding::find(content, &tenant_ref, &research_ref)
        .await
        .map_err(content_problem)?;
    let stored = document
        .part(Part::from(path.part()?))
        .ok_or_else(|| Problem::not_found("the run has no such part yet"))?;
    Ok(Served {
        key: stored.key,
        version: stored.version_id,
        content_type: stored.content_type,
        size: stored.size,
        sha256: stored.sha256,
    })
}

/// A part of an onboarding run, streamed through strata (`Content-Type`,
/// `ETag`, `Range`).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/onboarding-runs/{ref}/content/{part}",
    tag = "onboarding-runs",
    operation_id = "getOnboardingRunContent",
    summary = "Read a part of an onboarding run (streamed; Range, ETag)",
    params(
        PartParams,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag held: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The content", headers(
            ("ETag" = String, description = "The SHA-256 of the content"),
        ), content((String = "text/plain"), ("text/markdown"), ("application/json"))),
        (status = 206, description = "The requested range", headers(
            ("Content-Range" = String, description = "Which bytes"),
        ), content((String = "text/plain"), ("text/markdown"), ("application/json"))),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such run, deleted, or no such part stored",
         body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the content",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_run_part(
    State(state): State<DataState>,
    work: Work,
    path: PartPath,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let content = state.content()?;
    let served = run_part_of(work, content, &path).await?;
    serve(content, &served, &headers).await
}

/// A pre-signed GET of a part of an onboarding run, valid
/// `content.presign_expiry_secs`, for exactly that object.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/onboarding-runs/{ref}/content/{part}/url",
    tag = "onboarding-runs",
    operation_id = "getOnboardingRunContentUrl",
    summary = "A pre-signed URL of a part of an onboarding run",
    params(PartParams),
    responses(
        (status = 200, description = "The URL and until when it works", body = OutputUrl),
        (status = 404, description = "No such run, deleted, or no such part stored",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_part_url(
    State(state): State<DataState>,
    work: Work,
    path: PartPath,
) -> Result<Json<OutputUrl>, Problem> {
    let content = state.content()?;
    let served = run_part_of(work, content, &path).await?;
    presign(content, served).await
}

// ---------------------------------------------------------------------
// Strategies

/// A version of a strategy's content as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrategyContent {
    /// The version's ref (ULID): the strategy's `contentRef`.
    #[serde(rename = "ref")]
    pub content_ref: String,
    pub strategy_ref: String,
    /// 1, 2, 3… per strategy (the object is `v{version}.md`).
    pub version: i64,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 (hex) of the bytes; also the content's ETag.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

impl From<&StrategyDocument> for StrategyContent {
    fn from(d: &StrategyDocument) -> Self {
        Self {
            content_ref: d.ref_id.clone(),
            strategy_ref: d.strategy_ref.clone(),
            version: d.version,
            content_type: d.content_type(),
            size: d.size,
            sha256: d.sha256.clone(),
            created_at: d.created_at(),
        }
    }
}

/// Stores a new version of a draft strategy's content (Markdown, at most
/// `content.strategy_max_bytes`) at `{tenantRef}/strategies/{ref}/v{n}.md`
/// and points the strategy's `contentRef` at it in one transaction. Only a
/// draft takes content: what was submitted, approved or activated does not
/// change (409). The version replaced becomes an orphan.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenantRef}/strategies/{ref}/content",
    tag = "strategies",
    operation_id = "putStrategyContent",
    summary = "Store a new version of a draft strategy's content",
    params(RecordPath),
    request_body(description = "The strategy as Markdown", content(("text/markdown"))),
    responses(
        (status = 201, description = "Stored; the strategy points at it", body = StrategyContent, headers(
            ("Location" = String, description = "The content's URL path"),
            ("ETag" = String, description = "The SHA-256 of the content"),
        )),
        (status = 404, description = "No such strategy (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft, or a concurrent write took the version",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than content.strategy_max_bytes",
         body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/markdown",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_strategy_content(
    State(state): State<DataState>,
    caller: Caller,
    path: RecordPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let strategy: Strategy = current(&caller, &STRATEGIES, &path.record_ref).await?;
    strategy_writable(&strategy)?;
    let limit = content.config().strategy_max_bytes;
    let media_type = body_type(&headers, &[strategies::MEDIA_TYPE], limit)?;
    let document = strategies::store(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        &media_type,
        body.into_data_stream(),
    )
    .await
    .map_err(content_problem)?;
    point_strategy(&caller, &path.record_ref, &document).await
}

/// 409 unless the strategy is a draft.
fn strategy_writable(strategy: &Strategy) -> Result<(), Problem> {
    if strategies::WRITABLE_IN.contains(&strategy.status.as_str()) {
        return Ok(());
    }
    Err(content_problem(ContentError::NotWritable {
        entity: "strategy",
        current: strategy.status.clone(),
        allowed: strategies::WRITABLE_IN
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }))
}

/// Step three of a version's write (a PUT or a confirmed upload): the
/// strategy, still a draft, points at it.
async fn point_strategy(
    caller: &Caller,
    strategy_ref: &str,
    document: &StrategyDocument,
) -> Result<Response, Problem> {
    let mut work = caller.begin().await?;
    let (before, after) = strategies::point(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        strategy_ref,
        &document.ref_id,
        &work.actor.token_name,
    )
    .await
    .map_err(|e| point_problem(&STRATEGIES, "strategy", &strategies::WRITABLE_IN, e))?;
    audit_and_commit(work, &STRATEGIES, strategy_ref, &before, &after, false).await?;
    Ok(strategy_created(caller, strategy_ref, document))
}

fn strategy_created(caller: &Caller, strategy_ref: &str, document: &StrategyDocument) -> Response {
    let location = format!(
        "/v1/tenants/{}/strategies/{strategy_ref}/content",
        caller.tenant_ref
    );
    created(location, &document.sha256, StrategyContent::from(document))
}

/// Starts a direct upload of a new version of a draft strategy's content:
/// a pre-signed PUT (Markdown, at most `content.strategy_max_bytes`, type
/// and size bound into the signature) for a new key under
/// `{tenantRef}/strategies/{ref}/uploads/`. The version number is taken
/// when the upload is confirmed. An unconfirmed upload is an orphan.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/strategies/{ref}/content/uploads",
    tag = "strategies",
    operation_id = "startStrategyContentUpload",
    summary = "Start a direct upload of a draft strategy's content (pre-signed PUT)",
    params(RecordPath),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "PUT the bytes to the URL, then confirm", body = DirectUpload),
        (status = 404, description = "No such strategy (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unacceptable declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_strategy_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: RecordPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let strategy: Strategy = current(&caller, &STRATEGIES, &path.record_ref).await?;
    strategy_writable(&strategy)?;
    let media_type = declared.check(
        &[strategies::MEDIA_TYPE],
        content.config().strategy_max_bytes,
    )?;
    let upload_ref = ulid::Ulid::generate().to_string();
    let key = strategies::upload_key(&caller.tenant_ref, &path.record_ref, &upload_ref);
    let uploads = format!(
        "/v1/tenants/{}/strategies/{}/content/uploads",
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

/// Confirms a direct upload of a strategy's content: the object must exist
/// with the declared size and SHA-256 (strata reads it back); it becomes
/// the next version (`v{n}.md`, copied inside S3), its document is
/// written, and the strategy, still a draft, points at it. Confirming
/// again after a success changes nothing.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/strategies/{ref}/content/uploads/{uploadRef}/confirm",
    tag = "strategies",
    operation_id = "confirmStrategyContentUpload",
    summary = "Confirm a direct upload of a draft strategy's content",
    params(UploadPath),
    request_body = DeclaredUpload,
    responses(
        (status = 201, description = "Confirmed; the strategy points at the new version",
         body = StrategyContent),
        (status = 404, description = "No such strategy (or deleted)",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing uploaded yet, not a draft, or a concurrent write took the version",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The upload differs from the declaration",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_strategy_upload(
    State(state): State<DataState>,
    caller: Caller,
    path: UploadPath,
    JsonBody(declared): JsonBody<DeclaredUpload>,
) -> Result<Response, Problem> {
    let content: &Content = state.content()?;
    let strategy: Strategy = current(&caller, &STRATEGIES, &path.record_ref).await?;
    declared.check(
        &[strategies::MEDIA_TYPE],
        content.config().strategy_max_bytes,
    )?;
    if let Err(not_writable) = strategy_writable(&strategy) {
        // A confirm repeated after the strategy moved on: the same answer.
        let done = strategies::confirmed(
            content,
            &caller.tenant_ref,
            &path.record_ref,
            &path.upload_ref,
        )
        .await
        .map_err(content_problem)?;
        return match done {
            Some(document) if strategy.content_ref.as_ref() == Some(&document.ref_id) => {
                Ok(strategy_created(&caller, &path.record_ref, &document))
            }
            _ => Err(not_writable),
        };
    }
    let document = strategies::confirm(
        content,
        &caller.tenant_ref,
        &path.record_ref,
        &path.upload_ref,
        declared.size,
        &declared.sha256,
    )
    .await
    .map_err(content_problem)?;
    point_strategy(&caller, &path.record_ref, &document).await
}

async fn strategy_content_of(
    mut work: Work,
    content: &Content,
    strategy_ref: &str,
) -> Result<Served, Problem> {
    let strategy: Strategy = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &STRATEGIES,
        strategy_ref,
    )
    .await
    .map_err(|e| problem(&STRATEGIES, e))?;
    let tenant_ref = work.tenant_ref.clone();
    work.commit().await?;
    let content_ref = strategy
        .content_ref
        .ok_or_else(|| Problem::not_found("the strategy has no content"))?;
    let document = strategies::find(content, &tenant_ref, &content_ref)
        .await
        .map_err(content_problem)?;
    Ok(Served {
        key: document.s3_key.clone(),
        version: document.version_id(),
        content_type: document.content_type(),
        size: document.size,
        sha256: document.sha256,
    })
}

/// The strategy's current content, streamed through strata
/// (`Content-Type`, `ETag`, `Range`).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/strategies/{ref}/content",
    tag = "strategies",
    operation_id = "getStrategyContent",
    summary = "Read a strategy's content (streamed; Range, ETag)",
    params(
        RecordPath,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag held: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The content", headers(
            ("ETag" = String, description = "The SHA-256 of the content"),
        ), content((String = "text/markdown"))),
        (status = 206, description = "The requested range", headers(
            ("Content-Range" = String, description = "Which bytes"),
        ), content((String = "text/markdown"))),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such strategy, deleted, or no content",
         body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the content",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_strategy_content(
    State(state): State<DataState>,
    work: Work,
    path: RecordPath,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let content = state.content()?;
    let served = strategy_content_of(work, content, &path.record_ref).await?;
    serve(content, &served, &headers).await
}

/// A pre-signed GET of the strategy's current content.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/strategies/{ref}/content/url",
    tag = "strategies",
    operation_id = "getStrategyContentUrl",
    summary = "A pre-signed URL of a strategy's content",
    params(RecordPath),
    responses(
        (status = 200, description = "The URL and until when it works", body = OutputUrl),
        (status = 404, description = "No such strategy, deleted, or no content",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn strategy_content_url(
    State(state): State<DataState>,
    work: Work,
    path: RecordPath,
) -> Result<Json<OutputUrl>, Problem> {
    let content = state.content()?;
    let served = strategy_content_of(work, content, &path.record_ref).await?;
    presign(content, served).await
}

// ---------------------------------------------------------------------
// Blog and social posts: their content is the activity output they point at.

/// The request bodies that carry an `outputRef` (posts; activities, whose
/// pointer a client may also set by hand).
pub trait OutputRefOf {
    /// The pointer the body sets (`None`: it sets none or clears it).
    fn output_ref(&self) -> Option<&str>;
}

macro_rules! output_ref_of {
    (create: $($t:path),*) => {$(
        impl OutputRefOf for $t {
            fn output_ref(&self) -> Option<&str> {
                self.output_ref.as_deref()
            }
        }
    )*};
    (update: $($t:path),*) => {$(
        impl OutputRefOf for $t {
            fn output_ref(&self) -> Option<&str> {
                self.output_ref.as_ref().and_then(|r| r.as_deref())
            }
        }
    )*};
}
output_ref_of!(create:
    crate::records::collections::activities::CreateActivity,
    crate::records::collections::blog_posts::CreateBlogPost,
    crate::records::collections::social_posts::CreateSocialPost
);
output_ref_of!(update:
    crate::records::collections::activities::UpdateActivity,
    crate::records::collections::blog_posts::UpdateBlogPost,
    crate::records::collections::social_posts::UpdateSocialPost
);

/// Refuses a post whose `outputRef` is not an activity output of the
/// tenant (422 naming the field), before anything is written; claims the
/// output otherwise ([`outputs::claim`]), so that a repair running
/// meanwhile cannot take it from under the new pointer.
pub async fn check_output_ref<T: OutputRefOf>(
    state: &DataState,
    tenant_ref: &str,
    body: &T,
) -> Result<(), Problem> {
    let Some(output_ref) = body.output_ref() else {
        return Ok(());
    };
    let content = state.content()?;
    match outputs::claim(content, tenant_ref, output_ref).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Problem::invalid_field(
            "outputRef",
            "must be the ref of an activity output of this tenant",
        )),
        Err(e) => Err(content_problem(e)),
    }
}

async fn post_output<R>(
    mut work: Work,
    content: &Content,
    table: &'static Table,
    record_ref: &str,
) -> Result<Served, Problem>
where
    R: collection::Row + PostOutput,
{
    let post: R = table::get(&work.pg, &mut work.tx, work.tenant_id, table, record_ref)
        .await
        .map_err(|e| problem(table, e))?;
    let tenant_ref = work.tenant_ref.clone();
    work.commit().await?;
    let output_ref = post
        .output()
        .ok_or_else(|| Problem::not_found("the post has no output"))?;
    let document = outputs::find(content, &tenant_ref, &output_ref)
        .await
        .map_err(content_problem)?;
    Ok(Served::from(&document))
}

/// A post record's `outputRef`.
pub trait PostOutput {
    fn output(&self) -> Option<String>;
}

impl PostOutput for crate::records::collections::blog_posts::BlogPost {
    fn output(&self) -> Option<String> {
        self.output_ref.clone()
    }
}

impl PostOutput for crate::records::collections::social_posts::SocialPost {
    fn output(&self) -> Option<String> {
        self.output_ref.clone()
    }
}

macro_rules! post_content_routes {
    ($coll:literal, $noun:literal, $Record:path, $table:path, $get:ident, $url:ident, $get_id:literal, $url_id:literal) => {
        #[doc = concat!("The ", $noun, "'s content: the activity output its `outputRef` points at, streamed (`Content-Type`, `ETag`, `Range`).")]
        #[utoipa::path(
            get,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}/content"),
            tag = $coll,
            operation_id = $get_id,
            summary = concat!("Read a ", $noun, "'s content (its output; streamed)"),
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
                (status = 404, description = "No such post, deleted, or no output",
                 body = Problem, content_type = "application/problem+json"),
                (status = 416, description = "The range lies outside the content",
                 body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $get(
            State(state): State<DataState>,
            work: Work,
            path: RecordPath,
            headers: HeaderMap,
        ) -> Result<Response, Problem> {
            let content = state.content()?;
            let served = post_output::<$Record>(work, content, &$table, &path.record_ref).await?;
            serve(content, &served, &headers).await
        }

        #[doc = concat!("A pre-signed GET of the ", $noun, "'s content (its output).")]
        #[utoipa::path(
            get,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}/content/url"),
            tag = $coll,
            operation_id = $url_id,
            summary = concat!("A pre-signed URL of a ", $noun, "'s content"),
            params(RecordPath),
            responses(
                (status = 200, description = "The URL and until when it works", body = OutputUrl),
                (status = 404, description = "No such post, deleted, or no output",
                 body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $url(
            State(state): State<DataState>,
            work: Work,
            path: RecordPath,
        ) -> Result<Json<OutputUrl>, Problem> {
            let content = state.content()?;
            let served = post_output::<$Record>(work, content, &$table, &path.record_ref).await?;
            presign(content, served).await
        }
    };
}

post_content_routes!(
    "blog-posts",
    "blog post",
    crate::records::collections::blog_posts::BlogPost,
    crate::records::collections::blog_posts::TABLE,
    get_blog_post_content,
    blog_post_content_url,
    "getBlogPostContent",
    "getBlogPostContentUrl"
);
post_content_routes!(
    "social-posts",
    "social post",
    crate::records::collections::social_posts::SocialPost,
    crate::records::collections::social_posts::TABLE,
    get_social_post_content,
    social_post_content_url,
    "getSocialPostContent",
    "getSocialPostContentUrl"
);
