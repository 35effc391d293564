//! Reading a record's audit trail, newest first, a page at a time.
//!
//! The record must be the tenant's (checked on its row in the request's
//! transaction, so row-level security applies; a soft-deleted record keeps
//! its readable history). The diffs come from MongoDB's `entity_diffs` and,
//! so that a client reads its own writes, from the rows still pending in
//! the outbox. The outbox is read first: the drainer deletes a row only
//! after MongoDB acknowledged it, so a row gone from the outbox by then is
//! in MongoDB when it is read next. A row in both is listed once.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::Hint;
use serde_json::Value;

use super::drain::COLLECTION;
use super::{Action, Entity, diff_ref, diff_seq};
use crate::records::page::{Cursor, Page};
use crate::records::{RecordError, Tx};
use crate::stores::Failure;
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

/// One diff of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub ref_id: ulid::Ulid,
    pub action: String,
    pub actor: String,
    pub created_on: DateTime<Utc>,
    /// `{"before": ..., "after": ...}`
    pub diff: Value,
}

/// Where a record is read from.
pub struct Record<'a> {
    pub entity: Entity,
    pub tenant_id: uuid::Uuid,
    /// MongoDB's `tenantId`.
    pub tenant_ref: &'a str,
    pub entity_ref: &'a str,
}

fn mongo_error(error: mongodb::error::Error) -> RecordError {
    if Failure::of_mongo(&error).is_transient() {
        RecordError::Unavailable(error.to_string())
    } else {
        RecordError::Store(error.to_string())
    }
}

/// A page of the record's diffs, newest first; `after` continues a page
/// (older than its last diff).
pub async fn read(
    pg: &Postgres,
    tx: &mut Tx,
    mongo: &Mongo,
    record: &Record<'_>,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Page<Entry>, RecordError> {
    // The table name comes from the fixed list of `Entity`, never from input.
    let (exists,): (bool,) = pg
        .query_as(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE tenant_id = $1 AND ref_id = $2)",
            record.entity.table()
        )))
        .bind(record.tenant_id)
        .bind(record.entity_ref)
        .fetch_one(&mut **tx)
        .await?;
    if !exists {
        return Err(RecordError::NotFound);
    }
    let fetch = i64::from(limit) + 1;
    let mut entries = pending(pg, tx, record, after, fetch).await?;
    let stored = stored(mongo, record, after, fetch).await?;
    for entry in stored {
        if !entries.iter().any(|e| e.ref_id == entry.ref_id) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.ref_id));
    entries.truncate(fetch as usize);
    Ok(Page::from_rows(entries, limit, |e| e.ref_id))
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    seq: i64,
    created_ms: i64,
    created_on: DateTime<Utc>,
    action: String,
    actor: String,
    diff: Value,
}

/// The record's rows still in the outbox (row-level security: only this
/// tenant's), in the order of their refs.
async fn pending(
    pg: &Postgres,
    tx: &mut Tx,
    record: &Record<'_>,
    after: Option<&Cursor>,
    fetch: i64,
) -> Result<Vec<Entry>, RecordError> {
    let rows: Vec<PendingRow> = pg
        .query_as(
            "SELECT seq, created_ms, created_on, action, actor, diff FROM ( \
                 SELECT seq, floor(extract(epoch FROM created_on) * 1000)::int8 AS created_ms, \
                        created_on, action, actor, diff \
                 FROM audit_outbox \
                 WHERE tenant_id = $1 AND entity = $2 AND entity_ref = $3) o \
             WHERE $4::int8 IS NULL OR (created_ms, seq) < ($4, $5) \
             ORDER BY created_ms DESC, seq DESC LIMIT $6",
        )
        .bind(record.tenant_id)
        .bind(record.entity.table())
        .bind(record.entity_ref)
        .bind(after.map(|c| c.after.timestamp_ms() as i64))
        .bind(after.map(|c| diff_seq(c.after)))
        .bind(fetch)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Entry {
            ref_id: diff_ref(r.created_ms, r.seq),
            action: r.action,
            actor: r.actor,
            // MongoDB keeps milliseconds: so does the pending copy.
            created_on: DateTime::from_timestamp_millis(r.created_ms).unwrap_or(r.created_on),
            diff: r.diff,
        })
        .collect())
}

/// The record's diffs in MongoDB, newest first.
async fn stored(
    mongo: &Mongo,
    record: &Record<'_>,
    after: Option<&Cursor>,
    fetch: i64,
) -> Result<Vec<Entry>, RecordError> {
    let mut filter = doc! {
        "tenantId": record.tenant_ref,
        "entity": record.entity.table(),
        "entityRef": record.entity_ref,
    };
    if let Some(cursor) = after {
        // A ref's time is its createdOn: the bound keeps the index range tight.
        filter.insert("refId", doc! { "$lt": cursor.after.to_string() });
        filter.insert(
            "createdOn",
            doc! { "$lte": bson::DateTime::from_millis(cursor.after.timestamp_ms() as i64) },
        );
    }
    let mut cursor = mongo
        .database()
        .collection::<Document>(COLLECTION)
        .find(filter)
        .sort(doc! { "createdOn": -1, "refId": -1 })
        .limit(fetch)
        // The index by record and time, whatever its (hashed) name.
        .hint(Hint::Keys(
            doc! { "tenantId": 1, "entity": 1, "entityRef": 1, "createdOn": 1 },
        ))
        .await
        .map_err(mongo_error)?;
    let mut entries = Vec::new();
    while cursor.advance().await.map_err(mongo_error)? {
        let document = cursor
            .deserialize_current()
            .map_err(|e| RecordError::Store(format!("entity_diffs: {e}")))?;
        match entry(&document) {
            Some(entry) => entries.push(entry),
            None => tracing::warn!(
                ref_id = document.get_str("refId").unwrap_or_default(),
                "skipping an entity_diffs document strata cannot read"
            ),
        }
    }
    Ok(entries)
}

fn entry(document: &Document) -> Option<Entry> {
    let text = |key: &str| document.get_str(key).ok().map(str::to_string);
    let created = document.get_datetime("createdOn").ok()?;
    // Only the actions strata writes (the API documents exactly these).
    let action = text("action").filter(|a| {
        [
            Action::Create,
            Action::Update,
            Action::Transition,
            Action::Delete,
        ]
        .iter()
        .any(|known| known.as_str() == a)
    })?;
    Some(Entry {
        ref_id: document.get_str("refId").ok()?.parse().ok()?,
        action,
        actor: text("actor")?,
        created_on: DateTime::from_timestamp_millis(created.timestamp_millis())?,
        diff: match document.get("diff")? {
            diff @ Bson::Document(_) => diff.clone().into_relaxed_extjson(),
            _ => return None,
        },
    })
}
