use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;

use super::json::{ActivityView, UpdateActivity};
use crate::api::data::body::JsonBody;
use crate::api::data::extract::{IfMatch, IfMatchRequired, RecordPath, Work, etag};
use crate::api::problem::Problem;
use crate::records::activities;

/// Change an activity (If-Match required)
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenantRef}/activities/{ref}",
    tag = "activities",
    params(RecordPath, IfMatchRequired),
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
    work.commit().await?;
    Ok((
        [(header::ETAG, etag(&changed.version))],
        Json(ActivityView::from(changed)),
    ))
}
