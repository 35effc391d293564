//! The outbox drainer: moves committed `audit_outbox` rows to MongoDB's
//! `entity_diffs`, every strata instance running one.
//!
//! One pass: on the administrative path (the migration role sees every
//! tenant's rows), lock up to [`BATCH`] rows `FOR UPDATE SKIP LOCKED`,
//! insert their documents into MongoDB (unordered, write concern majority,
//! journaled), and delete from the outbox exactly the rows MongoDB
//! acknowledged, in the same PostgreSQL transaction that locked them.
//!
//! - **Idempotent.** A document's `refId` is derived from its row
//!   ([`super::diff_ref`]) and unique per tenant in MongoDB. If strata dies
//!   between the insert and the delete, the rows stay (the transaction
//!   rolls back); the next pass inserts them again and MongoDB refuses each
//!   as a duplicate (11000), which counts as acknowledged.
//! - **Several instances.** `SKIP LOCKED`: each pass takes rows no other
//!   pass holds; a killed instance's locks go with its connection.
//! - **Prompt.** An idle drainer looks again every [`POLL`], so a committed
//!   diff reaches MongoDB within about [`POLL`] plus one pass while both
//!   stores answer; a full batch is followed at once by the next one. After
//!   a failure it waits [`POLL`], doubling up to [`MAX_BACKOFF`].

use std::collections::HashSet;
use std::time::Duration;

use mongodb::bson::{self, Document, doc};
use mongodb::error::{ErrorKind, InsertManyError};
use mongodb::options::{Acknowledgment, WriteConcern};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::diff_ref;
use crate::records::RecordError;
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

/// The MongoDB collection of the audit trail.
pub const COLLECTION: &str = "entity_diffs";
/// How long an idle drainer waits before it looks again.
pub const POLL: Duration = Duration::from_millis(100);
/// The longest wait after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Rows per pass.
pub const BATCH: usize = 500;
/// How long MongoDB may take to replicate a batch to a majority.
const MAJORITY_TIMEOUT: Duration = Duration::from_secs(10);
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("postgres: {0}")]
    Postgres(#[from] RecordError),
    #[error("mongo: {0}")]
    Mongo(String),
}

impl From<sqlx::Error> for DrainError {
    fn from(error: sqlx::Error) -> Self {
        DrainError::Postgres(error.into())
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    created_ms: i64,
    tenant_ref: String,
    entity: String,
    entity_ref: String,
    action: String,
    actor: String,
    diff: serde_json::Value,
}

impl Row {
    fn document(&self) -> Result<Document, bson::ser::Error> {
        Ok(doc! {
            "tenantId": &self.tenant_ref,
            "refId": diff_ref(self.created_ms, self.seq).to_string(),
            "createdOn": bson::DateTime::from_millis(self.created_ms),
            "entity": &self.entity,
            "entityRef": &self.entity_ref,
            "action": &self.action,
            "actor": &self.actor,
            "diff": bson::to_document(&self.diff)?,
        })
    }
}

fn majority() -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .w_timeout(MAJORITY_TIMEOUT)
        .build()
}

/// One pass: moves up to [`BATCH`] rows; returns how many left the outbox.
pub async fn drain_once(pg: &Postgres, mongo: &Mongo) -> Result<usize, DrainError> {
    let mut tx = pg.begin_admin().await?;
    // The tenant's ref comes from its row, not from the outbox row.
    let rows: Vec<Row> = pg
        .query_as(
            "SELECT o.seq, floor(extract(epoch FROM o.created_on) * 1000)::int8 AS created_ms, \
                    t.ref_id::text AS tenant_ref, o.entity, o.entity_ref::text AS entity_ref, \
                    o.action, o.actor, o.diff \
             FROM audit_outbox o JOIN tenants t ON t.id = o.tenant_id \
             ORDER BY o.seq LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
        )
        .bind(BATCH as i64)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let mut seqs = Vec::with_capacity(rows.len());
    let mut documents = Vec::with_capacity(rows.len());
    for row in &rows {
        match row.document() {
            Ok(document) => {
                seqs.push(row.seq);
                documents.push(document);
            }
            // Cannot happen for a JSON object (the outbox's CHECK); kept in
            // the outbox, where the backlog shows it.
            Err(e) => tracing::error!(seq = row.seq, error = %e, "audit diff is not storable"),
        }
    }
    let refused = insert(mongo, documents).await?;
    let done: Vec<i64> = seqs
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused.contains(i))
        .map(|(_, seq)| *seq)
        .collect();
    pg.query("DELETE FROM audit_outbox WHERE seq = ANY($1)")
        .bind(&done)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.len())
}

/// Inserts the documents; returns the indexes of those MongoDB refused for
/// another reason than being there already. An error means nothing is
/// known to be acknowledged by a majority.
async fn insert(mongo: &Mongo, documents: Vec<Document>) -> Result<HashSet<usize>, DrainError> {
    if documents.is_empty() {
        return Ok(HashSet::new());
    }
    let result = mongo
        .database()
        .collection::<Document>(COLLECTION)
        .insert_many(documents)
        .ordered(false)
        .write_concern(majority())
        .await;
    let error = match result {
        Ok(_) => return Ok(HashSet::new()),
        Err(error) => error,
    };
    match *error.kind {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(ref errors),
            write_concern_error: None,
            ..
        }) => {
            let refused: HashSet<usize> = errors
                .iter()
                .filter(|e| e.code != DUPLICATE_KEY)
                .map(|e| e.index)
                .collect();
            for e in errors.iter().filter(|e| e.code != DUPLICATE_KEY) {
                // The outbox's checks mirror the validator: a bug if seen.
                tracing::error!(code = e.code, message = %e.message, "MongoDB refused an audit diff");
            }
            Ok(refused)
        }
        _ => Err(DrainError::Mongo(error.to_string())),
    }
}

/// The outbox's backlog, for metrics and alerts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Rows not yet in MongoDB.
    pub rows: i64,
    /// The age of the oldest of them.
    pub oldest_age: Option<Duration>,
}

pub async fn backlog(pg: &Postgres) -> Result<Backlog, RecordError> {
    let mut tx = pg.begin_admin().await?;
    let (rows, oldest_secs): (i64, Option<f64>) = pg
        .query_as(
            "SELECT count(*), \
                    extract(epoch FROM clock_timestamp() - min(created_on))::float8 \
             FROM audit_outbox",
        )
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Backlog {
        rows,
        oldest_age: oldest_secs.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

/// A running drainer; [`Drainer::stop`] ends it in order.
pub struct Drainer {
    stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl Drainer {
    /// Asks the drainer to stop: it finishes its pass, makes one last pass
    /// (so this instance's last diffs need not wait for another one) and
    /// ends. Await [`Drainer::task`], bounded.
    pub fn stop(self) -> JoinHandle<()> {
        // An error means the task already ended.
        let _ = self.stop.send(true);
        self.task
    }
}

/// Starts the drainer of this instance.
pub fn spawn(pg: Postgres, mongo: Mongo) -> Drainer {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(pg, mongo, stopped));
    Drainer { stop, task }
}

async fn run(pg: Postgres, mongo: Mongo, mut stopped: watch::Receiver<bool>) {
    let mut backoff = POLL;
    let mut stopping = false;
    loop {
        let wait = match drain_once(&pg, &mongo).await {
            Ok(moved) => {
                backoff = POLL;
                // A full batch: more may wait.
                if moved == BATCH { Duration::ZERO } else { POLL }
            }
            Err(e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64,
                               "audit drain failed; the diffs stay in the outbox");
                wait
            }
        };
        if wait.is_zero() {
            continue;
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Err: the handle is gone, which also means stop.
            _ = stopped.wait_for(|stop| *stop) => stopping = true,
        }
    }
}
