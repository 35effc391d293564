use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;

use super::json::{ActivityView, Transition};
use crate::api::data::body::JsonBody;
use crate::api::data::extract::{IfMatch, RecordPath, Work, etag};
use crate::api::problem::Problem;
use crate::audit::{self, Action, Change, Diff, Entity};
use crate::records::activities;

/// Move an activity to another state
///
/// PostgreSQL judges the move; an illegal one is 409 `illegal_transition`
/// with `currentState` and `allowedStates`. Of two concurrent moves, the
/// second is judged from the first one's result.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenantRef}/activities/{ref}/transitions",
    tag = "activities",
    params(RecordPath, ("If-Match" = Option<String>, Header, description = "If sent: the ETag last read")),
    request_body = Transition,
    responses(
        (status = 200, description = "The activity in its new state", body = ActivityView, headers(
            ("ETag" = String, description = "Its new version"),
        )),
        (status = 409, description = "Not allowed from the current state", body = Problem,
         content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn transition(
    mut work: Work,
    path: RecordPath,
    if_match: IfMatch,
    JsonBody(body): JsonBody<Transition>,
) -> Result<impl IntoResponse, Problem> {
    let moved = activities::transition(
        &work.pg,
        &mut work.tx,
        work.tenant_id,
        &path.record_ref,
        body.to.as_str(),
        body.error.as_deref(),
        if_match.version(),
    )
    .await?;
    let version = etag(&moved.after.version);
    let view = ActivityView::from(moved.after);
    // A move to the current state changes nothing and leaves no diff.
    audit::record(
        &mut work.tx,
        &Change {
            tenant_id: work.tenant_id,
            entity: Entity::ACTIVITIES,
            entity_ref: path.record_ref,
            action: Action::Transition,
            actor: work.actor.token_name.clone(),
            diff: Diff::changed(&ActivityView::from(moved.before), &view)?,
        },
    )
    .await?;
    work.commit().await?;
    Ok(([(header::ETAG, version)], Json(view)))
}
