//! `/v1/tenants/{tenantRef}/activities`: one file per operation, wire types
//! in `json.rs`, the SQL in `crate::records::activities`.

mod create;
mod delete;
mod get;
pub mod json;
mod list;
mod transitions;
mod update;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::DataState;

pub const TAG: &str = "activities";

pub fn routes() -> OpenApiRouter<DataState> {
    OpenApiRouter::new()
        .routes(routes!(list::list, create::create))
        .routes(routes!(get::get, update::update, delete::delete))
        .routes(routes!(transitions::transition))
        .routes(routes!(super::history::activities))
}

/// Where a created activity lives.
fn location(tenant_ref: &str, record_ref: &str) -> String {
    format!("/v1/tenants/{tenant_ref}/activities/{record_ref}")
}
