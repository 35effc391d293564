//! Skills with searchable text: create, update and delete keep the
//! MongoDB document and the PostgreSQL row in step (document first, see
//! [`crate::logs::skills`]); `GET .../skills:search` is the full-text
//! search. Get and list are the generic ones.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::DataState;
use super::body::JsonBody;
use super::collection::{self, problem};
use super::extract::{IfMatch, QueryParams, RecordPath, Work};
use crate::api::problem::Problem;
use crate::logs::skills::{self, Query, SkillHit, SkillText};
use crate::records::collections::skills::{CreateSkill, Skill, TABLE, UpdateSkill};
use crate::records::table;

const MAX_TAG_CHARS: usize = 64;

pub(crate) fn check_tags(tags: &[String]) -> Result<(), Problem> {
    for (i, tag) in tags.iter().enumerate() {
        if !(1..=MAX_TAG_CHARS).contains(&tag.chars().count()) || tag.contains('\0') {
            return Err(Problem::invalid_field(
                &format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

const MAX_NAME_CHARS: usize = 200;

/// The skill's name, checked before its document is written (MongoDB's
/// validator and PostgreSQL's check would refuse it later, half-way).
pub(crate) fn check_name(name: &str) -> Result<(), Problem> {
    if (1..=MAX_NAME_CHARS).contains(&name.chars().count()) && !name.contains('\0') {
        return Ok(());
    }
    Err(Problem::invalid_field(
        "name",
        format!("1 to {MAX_NAME_CHARS} characters"),
    ))
}

/// The slug, as PostgreSQL's check has it.
pub(crate) fn check_slug(slug: &str) -> Result<(), Problem> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let ok = (1..=100).contains(&slug.len())
        && slug.chars().all(allowed)
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        return Ok(());
    }
    Err(Problem::invalid_field(
        "slug",
        "lower-case letters, digits and inner hyphens, at most 100",
    ))
}

fn pointer_and_text() -> Problem {
    Problem::invalid_field(
        "contentRef",
        "give either contentRef or content/description/tags (strata then sets contentRef)",
    )
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/skills",
    tag = "skills",
    operation_id = "createSkill",
    summary = "Create a skill (with searchable text)",
    params(super::extract::TenantPath),
    request_body = CreateSkill,
    responses(
        (status = 201, description = "Created", body = Skill, headers(
            ("Location" = String, description = "The new record's URL path"),
            ("ETag" = String, description = "Its version, for If-Match"),
        )),
        (status = 409, description = "A duplicate (slug and version)",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    work: Work,
    State(state): State<DataState>,
    JsonBody(body): JsonBody<CreateSkill>,
) -> Result<Response, Problem> {
    check_name(&body.name)?;
    check_slug(&body.slug)?;
    let mut values = Map::new();
    values.insert("name".into(), json!(body.name));
    values.insert("slug".into(), json!(body.slug));
    if let Some(version) = body.version {
        values.insert("version".into(), json!(version));
    }
    let searchable = body.content.is_some() || body.description.is_some() || body.tags.is_some();
    match (&body.content_ref, searchable) {
        (Some(_), true) => return Err(pointer_and_text()),
        (Some(pointer), false) => {
            values.insert("contentRef".into(), json!(pointer));
        }
        (None, true) => {
            let tags = body.tags.unwrap_or_default();
            check_tags(&tags)?;
            let text = SkillText {
                name: body.name,
                description: body.description,
                content: body.content.unwrap_or_default(),
                tags,
            };
            let content_ref = skills::write(state.mongo()?, &work.tenant_ref, &text).await?;
            values.insert("contentRef".into(), json!(content_ref));
        }
        (None, false) => {}
    }
    collection::create::<Skill>(work, &TABLE, Value::Object(values)).await
}

#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenantRef}/skills/{ref}",
    tag = "skills",
    operation_id = "updateSkill",
    summary = "Change a skill (If-Match required); new text is a new searchable document",
    params(RecordPath, super::extract::IfMatchRequired),
    request_body = UpdateSkill,
    responses(
        (status = 200, description = "The changed record", body = Skill, headers(
            ("ETag" = String, description = "Its new version"),
        )),
        (status = 404, description = "No such record (or deleted, or a global template)",
         body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields",
         body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    mut work: Work,
    State(state): State<DataState>,
    path: RecordPath,
    if_match: IfMatch,
    JsonBody(body): JsonBody<UpdateSkill>,
) -> Result<Response, Problem> {
    let version = if_match.required()?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let mut values = Map::new();
    if let Some(name) = &body.name {
        values.insert("name".into(), json!(name));
    }
    let new_text = body.content.is_some() || body.description.is_some() || body.tags.is_some();
    if body.content_ref.is_some() && new_text {
        return Err(pointer_and_text());
    }
    if let Some(pointer) = &body.content_ref {
        values.insert("contentRef".into(), json!(pointer));
    }
    // The tenant's own row (404 for a global template), at the version the
    // client read.
    let current: Skill = table::lock(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &TABLE,
        &path.record_ref,
        version,
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    let mongo = state.mongo()?;
    let old = match (&current.content_ref, body.content_ref.is_none()) {
        (Some(pointer), true) => skills::read(mongo, &work.tenant_ref, pointer)
            .await?
            .map(|text| (pointer.clone(), text)),
        _ => None,
    };
    // A new document when the text changes, or the name of a skill whose
    // document repeats it.
    if new_text || (body.name.is_some() && old.is_some()) {
        let base = old.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
        let tags = body.tags.clone().unwrap_or(base.tags);
        check_tags(&tags)?;
        let text = SkillText {
            name: body.name.clone().unwrap_or(current.name.clone()),
            description: body.description.clone().or(base.description),
            content: body.content.clone().unwrap_or(base.content),
            tags,
        };
        let content_ref = skills::write(mongo, &work.tenant_ref, &text).await?;
        values.insert("contentRef".into(), json!(content_ref));
    }
    let superseded = old
        .filter(|_| values.contains_key("contentRef"))
        .map(|(pointer, _)| pointer);
    let tenant_ref = work.tenant_ref.clone();
    let response =
        collection::update::<Skill>(work, &TABLE, path, if_match, Value::Object(values)).await?;
    if let Some(pointer) = superseded {
        // Search already ignores it (no row points at it); this is tidiness.
        if let Err(e) = skills::mark_deleted(mongo, &tenant_ref, &pointer).await {
            tracing::warn!(error = %e, "could not mark a superseded skill document deleted");
        }
    }
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenantRef}/skills/{ref}",
    tag = "skills",
    operation_id = "deleteSkill",
    summary = "Delete a skill (soft: it disappears from gets, lists and searches)",
    params(RecordPath, IfMatch),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such record (or already deleted, or a global template)",
         body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    mut work: Work,
    State(state): State<DataState>,
    path: RecordPath,
    if_match: IfMatch,
) -> Result<StatusCode, Problem> {
    let current: Skill = table::get(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &TABLE,
        &path.record_ref,
    )
    .await
    .map_err(|e| problem(&TABLE, e))?;
    let tenant_ref = work.tenant_ref.clone();
    let status = collection::delete::<Skill>(work, &TABLE, path, if_match).await?;
    if let (Some(pointer), false) = (&current.content_ref, current.global)
        && let Ok(mongo) = state.mongo()
        && let Err(e) = skills::mark_deleted(mongo, &tenant_ref, pointer).await
    {
        tracing::warn!(error = %e, "could not mark a deleted skill's document deleted");
    }
    Ok(status)
}

const SEARCH_CURSOR: &str = "s1:";
const MAX_OFFSET: u64 = 10_000;

/// A search's parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words to find (MongoDB text search: stemmed English words,
    /// `"a phrase"`, `-excluded`).
    #[param(min_length = 1, max_length = 500)]
    pub q: String,
    /// Only skills with every one of these tags (comma-separated).
    pub tags: Option<String>,
    /// Hits per page (1–50, default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page (opaque).
    pub cursor: Option<String>,
}

/// A page of hits, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillHits {
    pub items: Vec<SkillHit>,
    /// The cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl SearchParams {
    fn resolve(self) -> Result<Query, Problem> {
        let text = self.q.trim().to_string();
        if text.is_empty() || self.q.chars().count() > 500 || text.contains('\0') {
            return Err(Problem::invalid_field("q", "must be 1 to 500 characters"));
        }
        let limit = match self.limit {
            None => 20,
            Some(n @ 1..=50) => n,
            Some(_) => return Err(Problem::invalid_field("limit", "must be from 1 to 50")),
        };
        let offset = match &self.cursor {
            None => 0,
            Some(cursor) => hex::decode(cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.strip_prefix(SEARCH_CURSOR).and_then(|n| n.parse().ok()))
                .filter(|n| *n <= MAX_OFFSET)
                .ok_or_else(|| {
                    Problem::invalid_field("cursor", "not a cursor strata handed out")
                })?,
        };
        let tags: Vec<String> = self
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        check_tags(&tags)?;
        Ok(Query {
            text,
            tags,
            offset,
            limit,
        })
    }
}

/// The tenant's skills and the global templates, ranked by MongoDB's text
/// score (name 10, description 5, content 1); soft-deleted skills and
/// other tenants' never appear.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/skills:search",
    tag = "skills",
    operation_id = "searchSkills",
    summary = "Full-text search over the tenant's skills and the global templates",
    params(super::extract::TenantPath, SearchParams),
    responses(
        (status = 200, description = "A page of hits, best first", body = SkillHits),
        (status = 422, description = "Invalid parameters",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    mut work: Work,
    State(state): State<DataState>,
    QueryParams(params): QueryParams<SearchParams>,
) -> Result<Json<SkillHits>, Problem> {
    let query = params.resolve()?;
    let hits = skills::search(
        &work.pg,
        &mut work.tx,
        state.mongo()?,
        (work.tenant_id, &work.tenant_ref),
        &query,
    )
    .await?;
    work.commit().await?;
    let next_offset = query.offset + u64::from(query.limit);
    let next = (hits.more && next_offset <= MAX_OFFSET)
        .then(|| hex::encode(format!("{SEARCH_CURSOR}{next_offset}")));
    Ok(Json(SkillHits {
        items: hits.items,
        next,
    }))
}
