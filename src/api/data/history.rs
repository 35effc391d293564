//! `GET .../{collection}/{ref}/history`: a record's audit trail, newest
//! first, a page at a time. One generic function ([`history`]) for every
//! collection; `op_history!` puts a documented handler per collection in
//! front of it (the OpenAPI path must be literal), with its table fixed in
//! the code (the collection's description), never taken from the request.

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

/// The documented history handler of one collection, in the style of the
/// `op_*!` macros of [`super::ops`]: the URL segment, a noun, the table
/// description and the record type.
#[macro_export]
macro_rules! op_history {
    ($coll:literal, $noun:literal, $table:path, $Record:ident) => {
        /// Every create, update, transition and delete, with the token that
        /// made it and the fields before and after. A deleted record's
        /// history stays readable.
        #[utoipa::path(
            get,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}/history"),
            tag = $coll,
            operation_id = concat!("history", stringify!($Record)),
            summary = concat!("The history of a ", $noun, ", newest first, a page at a time"),
            params(
                $crate::api::data::extract::RecordPath,
                $crate::api::data::extract::Paging
            ),
            responses(
                (status = 200, description = "One page, newest first; `next` continues it",
                 body = $crate::api::data::history::HistoryPage),
                (status = 404, description = "No such record",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid parameters",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn history(
            axum::extract::State(state): axum::extract::State<$crate::api::data::DataState>,
            work: $crate::api::data::extract::Work,
            path: $crate::api::data::extract::RecordPath,
            paging: $crate::api::data::extract::Paging,
        ) -> Result<
            axum::Json<$crate::api::data::history::HistoryPage>,
            $crate::api::problem::Problem,
        > {
            let entity = $crate::audit::Entity::of($table.name)?;
            $crate::api::data::history::history(entity, &state, work, path, paging).await
        }
    };
}

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
