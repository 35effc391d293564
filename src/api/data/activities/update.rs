use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;

use super::json::{ActivityView, UpdateActivity};
use crate::api::data::body::JsonBody;
use crate::api::data::extract::{IfMatch, RecordPath, Work, etag};
use crate::api::problem::Problem;
use crate::audit::{self, Action, Change, Diff, Entity};
use crate::records::activities;

/// Change an activity (If-Match required)
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenantRef}/activities/{ref}",
    tag = "activities",
    params(RecordPath, ("If-Match" = String, Header, description = "The ETag last read, or *")),
    request_body = UpdateActivity,
    responses(
        (status = 200, description = "The changed activity", body = ActivityView, headers(
            ("ETag" = String, description = "Its new version"),
        )),
        (status = 412, description = "If-Match is stale", body = Problem,
         content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn update(
    mut work: Work,
    path: RecordPath,
    if_match: IfMatch,
    JsonBody(body): JsonBody<UpdateActivity>,
) -> Result<impl IntoResponse, Problem> {
    let version = if_match.required()?;
    let changes = body.into_changes()?;
    let changed = activities::update(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &path.record_ref,
        version,
        &changes,
    )
    .await?;
    let version = etag(&changed.after.version);
    let view = ActivityView::from(changed.after);
    audit::record(
        &mut work.tx,
        &Change {
            tenant_id: work.tenant_id,
            entity: Entity::ACTIVITIES,
            entity_ref: path.record_ref,
            action: Action::Update,
            actor: work.actor.token_name.clone(),
            diff: Diff::changed(&ActivityView::from(changed.before), &view)?,
        },
    )
    .await?;
    work.commit().await?;
    Ok(([(header::ETAG, version)], Json(view)))
}
