use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;

use super::json::ActivityView;
use crate::api::data::extract::{RecordPath, Work, etag};
use crate::api::problem::Problem;
use crate::records::activities;

/// Get an activity
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenantRef}/activities/{ref}",
    tag = "activities",
    params(RecordPath),
    responses(
        (status = 200, description = "The activity", body = ActivityView, headers(
            ("ETag" = String, description = "Its version, for If-Match"),
        )),
        (status = 404, description = "No such activity (or deleted)", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(mut work: Work, path: RecordPath) -> Result<impl IntoResponse, Problem> {
    let found = activities::get(&work.pg, &mut work.tx, work.tenant_id, &path.record_ref).await?;
    work.commit().await?;
    Ok((
        [(header::ETAG, etag(&found.version))],
        Json(ActivityView::from(found)),
    ))
}
