use axum::http::StatusCode;

use super::json::ActivityView;
use crate::api::data::extract::{IfMatch, RecordPath, Work};
use crate::api::problem::Problem;
use crate::audit::{self, Action, Change, Diff, Entity};
use crate::records::activities;

/// Delete an activity (soft: it disappears from gets and lists)
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenantRef}/activities/{ref}",
    tag = "activities",
    params(RecordPath, ("If-Match" = Option<String>, Header, description = "If sent: the ETag last read")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such activity (or already deleted)", body = Problem,
         content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    mut work: Work,
    path: RecordPath,
    if_match: IfMatch,
) -> Result<StatusCode, Problem> {
    let deleted = activities::delete(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &path.record_ref,
        if_match.version(),
    )
    .await?;
    audit::record(
        &mut work.tx,
        &Change {
            tenant_id: work.tenant_id,
            entity: Entity::ACTIVITIES,
            entity_ref: path.record_ref,
            action: Action::Delete,
            actor: work.actor.token_name.clone(),
            diff: Diff::deleted(&ActivityView::from(deleted))?,
        },
    )
    .await?;
    work.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
