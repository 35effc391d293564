//! The operations every collection shares, written once: create, get,
//! list, update (PATCH with If-Match), transition and soft delete over a
//! [`Table`] description. The `op_*!` macros put a thin, documented
//! handler per collection in front of them, so that each route carries its
//! own OpenAPI operation (path, types, responses) generated from the same
//! types the handler uses. Every change appends its audit diff
//! ([`crate::audit::record`]) in the request's transaction, before the
//! commit.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use utoipa::ToSchema;

use super::extract::{IfMatch, Paging, RecordPath, Work, etag};
use crate::api::problem::Problem;
use crate::audit::{self, Action, Change, Diff};
use crate::records::RecordError;
use crate::records::table::{self, Filter, Table, Versioned};

/// What a record type must be to be served.
pub trait Row:
    for<'r> sqlx::FromRow<'r, PgRow> + Serialize + Versioned + Send + Unpin + 'static
{
}
impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Serialize + Versioned + Send + Unpin + 'static
{
}

/// One page of records.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage<T: ToSchema> {
    pub items: Vec<T>,
    /// The cursor of the next page; absent on the last page.
    pub next: Option<String>,
}

/// Where a record lives.
pub fn location(table: &Table, tenant_ref: &str, record_ref: &str) -> String {
    format!("/v1/tenants/{tenant_ref}/{}/{record_ref}", table.collection)
}

/// A refusal, with the field named when PostgreSQL's constraint says which.
pub fn problem(table: &Table, error: RecordError) -> Problem {
    match &error {
        RecordError::Invalid {
            constraint: Some(constraint),
            message,
        } => match table.field_of_constraint(constraint) {
            Some(field) => Problem::invalid_field(&field, message.clone()),
            None => error.into(),
        },
        _ => error.into(),
    }
}

/// A typed body as the wire object the generic layer works on.
fn values(body: &impl Serialize) -> Result<Map<String, Value>, Problem> {
    match serde_json::to_value(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Problem::internal()),
    }
}

fn with_etag<R: Row>(status: StatusCode, record: &R) -> Response {
    (
        status,
        [(header::ETAG, etag(record.version()))],
        Json(record),
    )
        .into_response()
}

/// Appends one change of a `table` record to the audit outbox, in the
/// request's transaction (see [`crate::audit`]). Routes outside these
/// generic operations call it too, so that every change has its diff.
pub async fn audit(
    work: &mut Work,
    table: &Table,
    record_ref: &str,
    action: Action,
    diff: Diff,
) -> Result<(), Problem> {
    let change = Change::new(
        table.name,
        work.tenant_id,
        &work.actor.token_name,
        record_ref,
        action,
        diff,
    )?;
    audit::record(&mut work.tx, &change).await?;
    Ok(())
}

/// Audits the records a batch created: their views read back in one query,
/// their diffs appended in one statement.
pub async fn audit_created<R: Row>(
    work: &mut Work,
    table: &Table,
    created: &[String],
) -> Result<(), Problem> {
    let rows: Vec<R> = table::get_many(&work.pg, &mut work.tx, work.tenant_id, table, created)
        .await
        .map_err(|e| problem(table, e))?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        changes.push(Change::new(
            table.name,
            work.tenant_id,
            &work.actor.token_name,
            row.record_ref(),
            Action::Create,
            Diff::created(row)?,
        )?);
    }
    audit::record_all(&mut work.tx, &changes).await?;
    Ok(())
}

pub async fn create<R: Row>(
    mut work: Work,
    table: &'static Table,
    body: impl Serialize,
) -> Result<Response, Problem> {
    let values = values(&body)?;
    let created: R = crate::ops::metrics::store_op(
        "postgres",
        "record_create",
        table::create(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &values,
            &work.actor.token_name,
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    let location = location(table, &work.tenant_ref, created.record_ref());
    audit(
        &mut work,
        table,
        created.record_ref(),
        Action::Create,
        Diff::created(&created)?,
    )
    .await?;
    work.commit().await?;
    let mut response = with_etag(StatusCode::CREATED, &created);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

pub async fn get<R: Row>(
    mut work: Work,
    table: &'static Table,
    path: RecordPath,
) -> Result<Response, Problem> {
    let found: R = crate::ops::metrics::store_op(
        "postgres",
        "record_get",
        table::get(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &path.record_ref,
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    work.commit().await?;
    Ok(with_etag(StatusCode::OK, &found))
}

/// The filters every list takes, however a collection's query type spells
/// its status.
pub struct ListQuery {
    pub status: Option<Value>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

pub async fn list<R: Row + ToSchema>(
    mut work: Work,
    table: &'static Table,
    paging: Paging,
    query: ListQuery,
) -> Result<Json<RecordPage<R>>, Problem> {
    let (limit, cursor) = paging.resolve()?;
    let filter = Filter {
        status: query.status.and_then(|s| s.as_str().map(str::to_string)),
        created_from: query.created_from,
        created_before: query.created_before,
    };
    let page: crate::records::page::Page<R> = crate::ops::metrics::store_op(
        "postgres",
        "record_list",
        table::list(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &filter,
            cursor.as_ref(),
            limit,
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    work.commit().await?;
    Ok(Json(RecordPage {
        items: page.items,
        next: page.next.map(|c| c.encode()),
    }))
}

pub async fn update<R: Row>(
    mut work: Work,
    table: &'static Table,
    path: RecordPath,
    if_match: IfMatch,
    body: impl Serialize,
) -> Result<Response, Problem> {
    let version = if_match.required()?;
    let values = values(&body)?;
    let (before, after): (R, R) = crate::ops::metrics::store_op(
        "postgres",
        "record_update",
        table::update(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &path.record_ref,
            version,
            &values,
            &work.actor.token_name,
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    // Nothing changed (no field given): no diff.
    audit(
        &mut work,
        table,
        &path.record_ref,
        Action::Update,
        Diff::changed(&before, &after)?,
    )
    .await?;
    work.commit().await?;
    Ok(with_etag(StatusCode::OK, &after))
}

pub async fn transition<R: Row>(
    mut work: Work,
    table: &'static Table,
    path: RecordPath,
    if_match: IfMatch,
    body: impl Serialize,
) -> Result<Response, Problem> {
    let mut values = values(&body)?;
    let to = match values.remove("to") {
        Some(Value::String(to)) => to,
        _ => return Err(Problem::invalid_field("to", "must be a state")),
    };
    let moved: table::Moved<R> = crate::ops::metrics::store_op(
        "postgres",
        "record_transition",
        table::transition(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &path.record_ref,
            &to,
            if_match.version(),
            &values,
            &work.actor.token_name,
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    // Records that moved first (a superseded strategy) have their own diffs.
    for (other_before, other_after) in &moved.moved_first {
        let diff = Diff::changed(other_before, other_after)?;
        let other = other_after.record_ref();
        audit(&mut work, table, other, Action::Transition, diff).await?;
    }
    // A move to the current state changes nothing: no diff.
    let diff = Diff::changed(&moved.before, &moved.after)?;
    audit(&mut work, table, &path.record_ref, Action::Transition, diff).await?;
    work.commit().await?;
    Ok(with_etag(StatusCode::OK, &moved.after))
}

pub async fn delete<R: Row>(
    mut work: Work,
    table: &'static Table,
    path: RecordPath,
    if_match: IfMatch,
) -> Result<StatusCode, Problem> {
    let before: R = crate::ops::metrics::store_op(
        "postgres",
        "record_delete",
        table::delete(
            &work.pg,
            &mut work.tx,
            work.tenant_id,
            table,
            &path.record_ref,
            if_match.version(),
        ),
    )
    .await
    .map_err(|e| problem(table, e))?;
    audit(
        &mut work,
        table,
        &path.record_ref,
        Action::Delete,
        Diff::deleted(&before)?,
    )
    .await?;
    work.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query parameters of a list with a status filter.
#[macro_export]
macro_rules! list_filter {
    ($name:ident, $status:ident) => {
        #[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
        #[serde(rename_all = "camelCase")]
        #[into_params(parameter_in = Query, rename_all = "camelCase")]
        pub struct $name {
            /// Only records in this state.
            pub status: Option<$status>,
            /// Only records created at or after this time (RFC 3339).
            pub created_from: Option<chrono::DateTime<chrono::Utc>>,
            /// Only records created before this time (RFC 3339).
            pub created_before: Option<chrono::DateTime<chrono::Utc>>,
        }

        impl From<$name> for $crate::api::data::collection::ListQuery {
            fn from(f: $name) -> Self {
                Self {
                    status: f.status.and_then(|s| serde_json::to_value(s).ok()),
                    created_from: f.created_from,
                    created_before: f.created_before,
                }
            }
        }
    };
    ($name:ident) => {
        #[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
        #[serde(rename_all = "camelCase")]
        #[into_params(parameter_in = Query, rename_all = "camelCase")]
        pub struct $name {
            /// Only records created at or after this time (RFC 3339).
            pub created_from: Option<chrono::DateTime<chrono::Utc>>,
            /// Only records created before this time (RFC 3339).
            pub created_before: Option<chrono::DateTime<chrono::Utc>>,
        }

        impl From<$name> for $crate::api::data::collection::ListQuery {
            fn from(f: $name) -> Self {
                Self {
                    status: None,
                    created_from: f.created_from,
                    created_before: f.created_before,
                }
            }
        }
    };
}
