use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::json::{ActivityView, CreateActivity};
use crate::api::data::body::JsonBody;
use crate::api::data::extract::{TenantPath, Work, etag};
use crate::api::problem::Problem;
use crate::audit::{self, Action, Change, Diff, Entity};
use crate::records::activities;

/// Create an activity
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/activities",
    tag = "activities",
    params(TenantPath),
    request_body = CreateActivity,
    responses(
        (status = 201, description = "Created", body = ActivityView, headers(
            ("Location" = String, description = "The new activity's URL path"),
            ("ETag" = String, description = "Its version, for If-Match"),
        )),
        (status = 409, description = "Created in a state it may not start in",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    mut work: Work,
    JsonBody(body): JsonBody<CreateActivity>,
) -> Result<impl IntoResponse, Problem> {
    let new = body.into_new()?;
    let created = activities::create(&work.pg, &mut work.tx, work.tenant_id, &new).await?;
    let location = super::location(&work.tenant_ref, &created.ref_id);
    let version = etag(&created.version);
    let view = ActivityView::from(created);
    audit::record(
        &mut work.tx,
        &Change {
            tenant_id: work.tenant_id,
            entity: Entity::ACTIVITIES,
            entity_ref: view.record_ref.clone(),
            action: Action::Create,
            actor: work.actor.token_name.clone(),
            diff: Diff::created(&view)?,
        },
    )
    .await?;
    work.commit().await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location), (header::ETAG, version)],
        Json(view),
    ))
}
