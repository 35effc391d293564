//! Reconciliation as a background job: one pass over the three stores
//! (dangling pointers, which must be zero, and orphans), then the repair of
//! orphans older than `content.reconcile_grace_hours` (never a locked
//! contract). One instance at a time holds the job's lease; the pass also
//! takes its advisory lock (so a `strata reconcile --repair` by hand and a
//! serving instance never repair at once).

use std::time::Duration;

use serde_json::Value;

use super::{Job, JobError};
use crate::content::Content;
use crate::content::reconcile;
use crate::stores::postgres::Postgres;

pub const NAME: &str = "reconcile";

pub struct Reconcile {
    pg: Postgres,
    content: Content,
    live: crate::ops::reload::Live,
}

impl Reconcile {
    pub fn new(pg: Postgres, content: Content, live: crate::ops::reload::Live) -> Self {
        Self { pg, content, live }
    }
}

impl Job for Reconcile {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.live.borrow().content.reconcile_interval_secs.max(1))
    }

    async fn run(&self) -> Result<Value, JobError> {
        let grace_hours = self.live.borrow().content.reconcile_grace_hours;
        let grace = chrono::Duration::hours(i64::from(grace_hours));
        let ran = reconcile::run_locked(&self.pg, &self.content, grace)
            .await
            .map_err(|e| JobError::Content(e.to_string()))?;
        let Some((report, repaired)) = ran else {
            return Ok(serde_json::json!({"skipped": "a manual reconcile holds the lock"}));
        };
        for d in &report.dangling {
            tracing::error!(from = %d.from, missing = %d.missing, "reconcile: dangling pointer");
        }
        crate::ops::metrics::set_reconcile_findings(&report);
        Ok(serde_json::json!({
            "dangling": report.dangling.len(),
            "orphans": report.orphans.len(),
            "removed": repaired.removed.len(),
            "tooYoung": repaired.too_young.len(),
            "locked": repaired.locked.len(),
        }))
    }
}
