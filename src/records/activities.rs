//! Activities (SPEC section 2): queued → running → succeeded / failed /
//! cancelled. Every query names the tenant AND runs in a transaction whose
//! `strata.tenant_id` row-level security enforces: a missing WHERE clause
//! would still see no other tenant's row.

use chrono::{DateTime, Utc};

use super::page::{Cursor, Page};
use super::{RecordError, Tx};
use crate::stores::postgres::Postgres;

/// The table, which is also the state machine's entity name.
pub const ENTITY: &str = "activities";

/// An activity as stored (without `id` and `tenant_id`, which never leave
/// strata).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Activity {
    pub ref_id: String,
    pub kind: String,
    pub status: String,
    pub started_on: Option<DateTime<Utc>>,
    pub finished_on: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub output_ref: Option<String>,
    pub created_on: DateTime<Utc>,
    pub updated_on: DateTime<Utc>,
    /// Changes with every write of the row (its xmin, the writing
    /// transaction, with updated_on): the ETag.
    pub version: String,
}

const COLUMNS: &str = "a.ref_id::text AS ref_id, a.kind, a.status, a.started_on, a.finished_on, \
     a.error, a.output_ref::text AS output_ref, a.created_on, a.updated_on, \
     substr(md5(a.xmin::text || ':' || a.updated_on::text), 1, 20) AS version";

fn sql(template: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(template.replace("{COLUMNS}", COLUMNS))
}

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub kind: String,
    /// `None`: queued. PostgreSQL refuses any state an activity may not be
    /// created in.
    pub status: Option<String>,
    pub output_ref: Option<String>,
}

pub async fn create(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    new: &NewActivity,
) -> Result<Activity, RecordError> {
    Ok(pg
        .query_as(sql(
            "INSERT INTO activities AS a (ref_id, tenant_id, kind, status, started_on, output_ref) \
             VALUES ($1, $2, $3, coalesce($4, 'queued'), \
                     CASE WHEN $4 = 'running' THEN now() END, $5) \
             RETURNING {COLUMNS}",
        ))
        .bind(ulid::Ulid::generate().to_string())
        .bind(tenant_id)
        .bind(&new.kind)
        .bind(&new.status)
        .bind(&new.output_ref)
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn get(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    ref_id: &str,
) -> Result<Activity, RecordError> {
    pg.query_as(sql("SELECT {COLUMNS} FROM activities a \
         WHERE a.tenant_id = $1 AND a.ref_id = $2 AND a.deleted_on IS NULL"))
        .bind(tenant_id)
        .bind(ref_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(RecordError::NotFound)
}

/// Locks the row for the rest of the transaction and checks the version
/// the client last saw, if it sent one.
async fn lock(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    ref_id: &str,
    if_match: Option<&str>,
) -> Result<Activity, RecordError> {
    let current: Activity = pg
        .query_as(sql("SELECT {COLUMNS} FROM activities a \
             WHERE a.tenant_id = $1 AND a.ref_id = $2 AND a.deleted_on IS NULL FOR UPDATE"))
        .bind(tenant_id)
        .bind(ref_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(RecordError::NotFound)?;
    match if_match {
        Some(version) if version != current.version => Err(RecordError::StaleVersion),
        _ => Ok(current),
    }
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

pub async fn list(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Page<Activity>, RecordError> {
    // Unnamed statements are planned with their values, so the `IS NULL`
    // branches fold away and the (tenant_id, [status,] ref_id) indexes apply.
    let rows: Vec<Activity> = pg
        .query_as(sql("SELECT {COLUMNS} FROM activities a \
             WHERE a.tenant_id = $1 AND a.deleted_on IS NULL \
               AND ($2::text IS NULL OR a.ref_id > $2) \
               AND ($3::text IS NULL OR a.status = $3) \
               AND ($4::timestamptz IS NULL OR a.created_on >= $4) \
               AND ($5::timestamptz IS NULL OR a.created_on < $5) \
             ORDER BY a.ref_id LIMIT $6"))
        .bind(tenant_id)
        .bind(after.map(|c| c.after.to_string()))
        .bind(&filter.status)
        .bind(filter.created_from)
        .bind(filter.created_before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut **tx)
        .await?;
    Ok(Page::from_rows(rows, limit, |a| {
        a.ref_id.parse().unwrap_or_default()
    }))
}

/// A change of one activity: the row as locked, then as written (for the
/// audit trail).
#[derive(Debug, Clone)]
pub struct Changed {
    pub before: Activity,
    pub after: Activity,
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears a
/// nullable one. The status changes only through [`transition`].
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub kind: Option<String>,
    pub error: Option<Option<String>>,
    pub output_ref: Option<Option<String>>,
}

pub async fn update(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    ref_id: &str,
    if_match: Option<&str>,
    changes: &Changes,
) -> Result<Changed, RecordError> {
    let before = lock(pg, tx, tenant_id, ref_id, if_match).await?;
    let after = pg
        .query_as(sql("UPDATE activities AS a SET \
               kind = coalesce($3, a.kind), \
               error = CASE WHEN $4 THEN $5 ELSE a.error END, \
               output_ref = CASE WHEN $6 THEN $7 ELSE a.output_ref END \
             WHERE a.tenant_id = $1 AND a.ref_id = $2 AND a.deleted_on IS NULL \
             RETURNING {COLUMNS}"))
        .bind(tenant_id)
        .bind(ref_id)
        .bind(&changes.kind)
        .bind(changes.error.is_some())
        .bind(changes.error.clone().flatten())
        .bind(changes.output_ref.is_some())
        .bind(changes.output_ref.clone().flatten())
        .fetch_one(&mut **tx)
        .await?;
    Ok(Changed { before, after })
}

/// Moves the activity to `to`. PostgreSQL's trigger refuses an illegal
/// move (ST409, with the allowed states); two concurrent transitions
/// serialise on the row lock, and the second one is judged from the first
/// one's result. Moving to the current state changes nothing (`before` and
/// `after` are the same).
pub async fn transition(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    ref_id: &str,
    to: &str,
    error: Option<&str>,
    if_match: Option<&str>,
) -> Result<Changed, RecordError> {
    let before = lock(pg, tx, tenant_id, ref_id, if_match).await?;
    if before.status == to {
        return Ok(Changed {
            after: before.clone(),
            before,
        });
    }
    let after = pg
        .query_as(sql("UPDATE activities AS a SET \
               status = $3, \
               started_on = CASE WHEN $3 = 'running' THEN coalesce(a.started_on, now()) \
                                 ELSE a.started_on END, \
               finished_on = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled') THEN now() \
                                  ELSE a.finished_on END, \
               error = coalesce($4, a.error) \
             WHERE a.tenant_id = $1 AND a.ref_id = $2 AND a.deleted_on IS NULL \
             RETURNING {COLUMNS}"))
        .bind(tenant_id)
        .bind(ref_id)
        .bind(to)
        .bind(error)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Changed { before, after })
}

/// Soft delete: the row stays (for audit and purges) but is invisible to
/// gets and lists from now on. Returns the activity as it was.
pub async fn delete(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    ref_id: &str,
    if_match: Option<&str>,
) -> Result<Activity, RecordError> {
    let before = lock(pg, tx, tenant_id, ref_id, if_match).await?;
    pg.query(
        "UPDATE activities SET deleted_on = now() \
         WHERE tenant_id = $1 AND ref_id = $2 AND deleted_on IS NULL",
    )
    .bind(tenant_id)
    .bind(ref_id)
    .execute(&mut **tx)
    .await?;
    Ok(before)
}
