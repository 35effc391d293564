//! `GET .../{collection}/{ref}/history`: a record's audit trail, newest
//! first, a page at a time. One generic function ([`history`]) for every
//! collection; [`history_route!`] stamps out a documented handler per
//! collection (the OpenAPI path must be literal), with its table fixed in
//! the code, never taken from the request.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::DataState;
use super::extract::{Paging, RecordPath, Work};
use crate::api::problem::Problem;
use crate::audit::{self, Entity};

/// What happened to the record.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryAction {
    Create,
    Update,
    Transition,
    Delete,
}

/// One change of a record.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The diff's ref (ULID).
    #[serde(rename = "ref")]
    pub diff_ref: String,
    /// `create`, `update`, `transition` or `delete`.
    #[schema(value_type = HistoryAction)]
    pub action: String,
    /// The name of the service token that made the change.
    pub actor: String,
    /// When the change was made (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// The record before, in this API's form: the whole record for a
    /// delete, the changed fields for an update or transition, `null` for
    /// a create.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The record after: the whole record for a create, the changed fields
    /// for an update or transition, `null` for a delete.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<audit::history::Entry> for HistoryEntry {
    fn from(entry: audit::history::Entry) -> Self {
        let side = |name: &str| match entry.diff.get(name) {
            Some(serde_json::Value::Null) | None => None,
            Some(value) => Some(value.clone()),
        };
        Self {
            diff_ref: entry.ref_id.to_string(),
            before: side("before"),
            after: side("after"),
            action: entry.action,
            actor: entry.actor,
            created_at: entry.created_on,
        }
    }
}

/// One page of a record's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    /// The cursor of the next (older) page; absent on the last page.
    pub next: Option<String>,
}

/// The history of a record of `entity`: 404 unless the record (deleted or
/// not) is the tenant's.
pub async fn history(
    entity: Entity,
    state: &DataState,
    mut work: Work,
    path: RecordPath,
    paging: Paging,
) -> Result<Json<HistoryPage>, Problem> {
    let (limit, cursor) = paging.resolve()?;
    let mongo = state.mongo()?;
    let record = audit::history::Record {
        entity,
        tenant_id: work.tenant_id,
        tenant_ref: &work.tenant_ref,
        entity_ref: &path.record_ref,
    };
    let page = audit::history::read(
        &work.pg,
        &mut work.tx,
        mongo,
        &record,
        cursor.as_ref(),
        limit,
    )
    .await?;
    work.commit().await?;
    Ok(Json(HistoryPage {
        items: page.items.into_iter().map(HistoryEntry::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

/// Defines the documented history handler of one collection:
/// `history_route!(fn_name, Entity::X, "/v1/tenants/{tenantRef}/x/{ref}/history", "x")`.
macro_rules! history_route {
    ($name:ident, $entity:expr, $path:tt, $tag:tt) => {
        /// A record's history, newest first, a page at a time
        ///
        /// Every create, update, transition and delete, with the token that
        /// made it and the fields before and after. A deleted record's
        /// history stays readable.
        #[utoipa::path(
                    get,
                    path = $path,
                    tag = $tag,
                    params(RecordPath, Paging),
                    responses(
                        (status = 200, description = "One page, newest first; `next` continues it",
                         body = HistoryPage),
                        (status = 404, description = "No such record", body = Problem,
                         content_type = "application/problem+json"),
                        (status = 422, description = "Invalid parameters", body = Problem,
                         content_type = "application/problem+json"),
                    )
                )]
        pub async fn $name(
            axum::extract::State(state): axum::extract::State<DataState>,
            work: Work,
            path: RecordPath,
            paging: Paging,
        ) -> Result<Json<HistoryPage>, Problem> {
            history($entity, &state, work, path, paging).await
        }
    };
}

history_route!(
    activities,
    Entity::ACTIVITIES,
    "/v1/tenants/{tenantRef}/activities/{ref}/history",
    "activities"
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_history_route_is_documented_with_its_schemas() {
        let document = serde_json::to_value(super::super::document()).expect("json");
        let get = &document["paths"]["/v1/tenants/{tenantRef}/activities/{ref}/history"]["get"];
        assert!(get.is_object(), "{document}");
        for status in ["200", "404", "422", "4XX", "5XX"] {
            assert!(get["responses"][status].is_object(), "{status}: {get}");
        }
        let schemas = &document["components"]["schemas"];
        for schema in ["HistoryPage", "HistoryEntry", "HistoryAction"] {
            assert!(schemas[schema].is_object(), "{schema} missing");
        }
        assert_eq!(
            schemas["HistoryAction"]["enum"],
            serde_json::json!(["create", "update", "transition", "delete"])
        );
    }
}
