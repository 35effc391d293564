//! `/admin/skills`: the global skill templates, readable by every tenant
//! (the data API lists and searches them) and writable only here, with
//! the admin token. Each template's text is a MongoDB document
//! (`tenantId: 'global'`) written before the row that points at it.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AdminState;
use super::body::{AdminJson, RefPath};
use crate::api::data::extract::{IfMatch, etag};
use crate::api::data::skills::{check_name, check_slug, check_tags};
use crate::api::problem::Problem;
use crate::logs::skills::{self, GlobalChange, NewGlobal, SkillText};
use crate::records::RecordError;
use crate::records::collections::skills::Skill;
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

pub const TAG: &str = "skills";

/// A new global template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTemplate {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Lower-case letters, digits and inner hyphens, at most 100.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$")]
    pub slug: String,
    /// Default 1; (slug, version) is unique among the templates.
    #[schema(minimum = 1)]
    pub version: Option<i32>,
    /// Searchable (weight 5).
    pub description: Option<String>,
    /// The template's text, searchable (weight 1; the name weighs 10).
    pub content: String,
    #[schema(max_items = 32)]
    pub tags: Option<Vec<String>>,
}

/// What changes (absent: kept). New text is a new document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeTemplate {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub description: Option<String>,
    pub content: Option<String>,
    #[schema(max_items = 32)]
    pub tags: Option<Vec<String>>,
}

/// A template with its text.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    #[serde(flatten)]
    pub skill: Skill,
    pub description: Option<String>,
    pub content: String,
    pub tags: Vec<String>,
}

/// Every live template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<Skill>,
}

fn text_problem(field: &str, text: &str) -> Result<(), Problem> {
    if text.contains('\0') {
        return Err(Problem::invalid_field(field, "must not contain NUL"));
    }
    Ok(())
}

fn stores(state: &AdminState) -> Result<(&Postgres, &Mongo), Problem> {
    let stores = state.ready_stores()?;
    Ok((&stores.postgres, &stores.mongo))
}

fn refused(error: RecordError) -> Problem {
    match error {
        RecordError::NotFound => Problem::not_found("no such template"),
        other => other.into(),
    }
}

fn with_etag(status: StatusCode, skill: &Skill, body: impl Serialize) -> Response {
    (status, [(header::ETAG, etag(&skill.etag))], Json(body)).into_response()
}

#[utoipa::path(
    get,
    path = "/admin/skills",
    tag = TAG,
    operation_id = "listTemplates",
    summary = "List the global skill templates, by slug and version",
    responses((status = 200, description = "Every live template", body = TemplateList))
)]
pub async fn list(State(state): State<AdminState>) -> Result<Json<TemplateList>, Problem> {
    let (pg, _) = stores(&state)?;
    let items = skills::list_globals(pg).await.map_err(refused)?;
    Ok(Json(TemplateList { items }))
}

#[utoipa::path(
    post,
    path = "/admin/skills",
    tag = TAG,
    operation_id = "createTemplate",
    summary = "Create a global skill template (readable and searchable by every tenant)",
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "Created", body = Template, headers(
            ("Location" = String, description = "The template's URL path"),
            ("ETag" = String, description = "Its version, for If-Match"),
        )),
        (status = 409, description = "A template with this slug and version exists",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AdminState>,
    AdminJson(body): AdminJson<CreateTemplate>,
) -> Result<Response, Problem> {
    check_name(&body.name)?;
    check_slug(&body.slug)?;
    text_problem("content", &body.content)?;
    if let Some(description) = &body.description {
        text_problem("description", description)?;
    }
    let version = body.version.unwrap_or(1);
    if version < 1 {
        return Err(Problem::invalid_field("version", "1 or more"));
    }
    let tags = body.tags.unwrap_or_default();
    check_tags(&tags)?;
    let (pg, mongo) = stores(&state)?;
    let new = NewGlobal {
        slug: body.slug,
        version,
        text: SkillText {
            name: body.name,
            description: body.description,
            content: body.content,
            tags,
        },
    };
    let created = skills::create_global(pg, mongo, &new)
        .await
        .map_err(refused)?;
    let location = format!("/admin/skills/{}", created.record_ref);
    let template = Template {
        skill: created.clone(),
        description: new.text.description,
        content: new.text.content,
        tags: new.text.tags,
    };
    let mut response = with_etag(StatusCode::CREATED, &created, template);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/admin/skills/{ref}",
    tag = TAG,
    operation_id = "getTemplate",
    summary = "Get a global skill template with its text",
    params(RefPath),
    responses(
        (status = 200, description = "The template", body = Template,
         headers(("ETag" = String, description = "Its version"))),
        (status = 404, description = "No such template", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AdminState>,
    RefPath(skill_ref): RefPath,
) -> Result<Response, Problem> {
    let (pg, mongo) = stores(&state)?;
    let (skill, text) = skills::get_global(pg, mongo, &skill_ref)
        .await
        .map_err(refused)?;
    let text = text.unwrap_or_default();
    let template = Template {
        skill: skill.clone(),
        description: text.description,
        content: text.content,
        tags: text.tags,
    };
    Ok(with_etag(StatusCode::OK, &skill, template))
}

#[utoipa::path(
    patch,
    path = "/admin/skills/{ref}",
    tag = TAG,
    operation_id = "changeTemplate",
    summary = "Change a global skill template (new text is a new searchable document)",
    params(RefPath, ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = ChangeTemplate,
    responses(
        (status = 200, description = "The changed template", body = Skill,
         headers(("ETag" = String, description = "Its new version"))),
        (status = 404, description = "No such template", body = Problem,
         content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn change(
    State(state): State<AdminState>,
    RefPath(skill_ref): RefPath,
    if_match: IfMatch,
    AdminJson(body): AdminJson<ChangeTemplate>,
) -> Result<Response, Problem> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    for (field, text) in [
        ("content", &body.content),
        ("description", &body.description),
    ] {
        if let Some(text) = text {
            text_problem(field, text)?;
        }
    }
    if let Some(tags) = &body.tags {
        check_tags(tags)?;
    }
    let (pg, mongo) = stores(&state)?;
    let change = GlobalChange {
        name: body.name,
        description: body.description,
        content: body.content,
        tags: body.tags,
    };
    let changed = skills::update_global(pg, mongo, &skill_ref, if_match.version(), &change)
        .await
        .map_err(refused)?;
    Ok(with_etag(StatusCode::OK, &changed, &changed))
}

#[utoipa::path(
    delete,
    path = "/admin/skills/{ref}",
    tag = TAG,
    operation_id = "deleteTemplate",
    summary = "Delete a global skill template (soft: gone from every tenant's reads and searches)",
    params(RefPath, ("If-Match" = Option<String>, Header, description = "The version last read")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such template", body = Problem,
         content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<AdminState>,
    RefPath(skill_ref): RefPath,
    if_match: IfMatch,
) -> Result<StatusCode, Problem> {
    let (pg, mongo) = stores(&state)?;
    skills::delete_global(pg, mongo, &skill_ref, if_match.version())
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}
