//! The audit trail: every create, update, transition and delete of a tenant
//! record leaves a diff (who, what, before/after) in MongoDB's
//! `entity_diffs`.
//!
//! A diff is never written to MongoDB by the request. [`record`] appends it
//! to the PostgreSQL outbox (`audit_outbox`, migration 0007) in the
//! request's own transaction, so it commits or rolls back with the change;
//! [`drain`] moves committed rows to MongoDB in the background and deletes
//! them only once MongoDB acknowledged them (write concern majority). So a
//! strata killed right after a commit loses no diff: the row waits in
//! PostgreSQL for the next drain, by this or any other instance.
//! [`history`] reads a record's diffs back, merging rows still pending.

pub mod drain;
pub mod history;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::records::{RecordError, Tx};

/// The tables whose records have an audit trail: the only names that reach
/// SQL text in this module (a private field: no other value can be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity(&'static str);

impl Entity {
    pub const ACTIVITIES: Entity = Entity("activities");
    pub const BLOG_POSTS: Entity = Entity("blog_posts");
    pub const SOCIAL_POSTS: Entity = Entity("social_posts");
    pub const ONBOARDING_RUNS: Entity = Entity("onboarding_runs");
    pub const STRATEGIES: Entity = Entity("strategies");
    pub const CONTRACTS: Entity = Entity("contracts");
    pub const TOOL_CALLS: Entity = Entity("tool_calls");
    pub const SKILLS: Entity = Entity("skills");
    pub const INTEGRATIONS: Entity = Entity("integrations");
    pub const USAGE_EVENTS: Entity = Entity("usage_events");

    /// Every audited table (the outbox's CHECK lists the same).
    pub const ALL: [Entity; 10] = [
        Entity::ACTIVITIES,
        Entity::BLOG_POSTS,
        Entity::SOCIAL_POSTS,
        Entity::ONBOARDING_RUNS,
        Entity::STRATEGIES,
        Entity::CONTRACTS,
        Entity::TOOL_CALLS,
        Entity::SKILLS,
        Entity::INTEGRATIONS,
        Entity::USAGE_EVENTS,
    ];

    /// The entity of a table name, if it is one of [`Entity::ALL`].
    pub fn from_table(table: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.0 == table)
    }

    /// [`Entity::from_table`], or an error for a table without an audit
    /// trail (a bug: every collection's table is in the list).
    pub fn of(table: &str) -> Result<Entity, RecordError> {
        Entity::from_table(table)
            .ok_or_else(|| RecordError::Store(format!("table {table} has no audit trail")))
    }

    /// The table name, which is also `entity` in `entity_diffs`.
    pub fn table(self) -> &'static str {
        self.0
    }
}

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Transition,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Transition => "transition",
            Action::Delete => "delete",
        }
    }
}

/// Before and after, in the API's wire form (the record's view, camelCase):
/// the whole view for a create (`before` null) and a delete (`after` null),
/// only the fields that changed for an update or a transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
}

fn view(value: &impl Serialize) -> Result<Map<String, Value>, RecordError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RecordError::Store(format!(
            "an audited view must be a JSON object, not {other}"
        ))),
        Err(e) => Err(RecordError::Store(format!("audited view: {e}"))),
    }
}

impl Diff {
    /// A created record: its whole view.
    pub fn created(after: &impl Serialize) -> Result<Diff, RecordError> {
        Ok(Diff {
            before: None,
            after: Some(view(after)?),
        })
    }

    /// A deleted record: its whole view as it was.
    pub fn deleted(before: &impl Serialize) -> Result<Diff, RecordError> {
        Ok(Diff {
            before: Some(view(before)?),
            after: None,
        })
    }

    /// A changed record: the fields whose value differs, on both sides (a
    /// field absent on one side is `null` there).
    pub fn changed(before: &impl Serialize, after: &impl Serialize) -> Result<Diff, RecordError> {
        let (old, new) = (view(before)?, view(after)?);
        let mut was = Map::new();
        let mut is = Map::new();
        for key in old
            .keys()
            .chain(new.keys().filter(|k| !old.contains_key(*k)))
        {
            let (a, b) = (
                old.get(key).unwrap_or(&Value::Null),
                new.get(key).unwrap_or(&Value::Null),
            );
            if a != b {
                was.insert(key.clone(), a.clone());
                is.insert(key.clone(), b.clone());
            }
        }
        Ok(Diff {
            before: Some(was),
            after: Some(is),
        })
    }

    /// True when nothing changed (e.g. a transition to the current state).
    pub fn is_empty(&self) -> bool {
        let empty = |side: &Option<Map<String, Value>>| side.as_ref().is_none_or(Map::is_empty);
        empty(&self.before) && empty(&self.after)
    }
}

/// One change of one record, as the audit trail keeps it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The tenant's id (RLS checks the outbox row against the request's
    /// tenant). MongoDB's `tenantId` is the tenant's ref, which the drainer
    /// reads from the `tenants` row of this id: a row cannot name another
    /// tenant's ref.
    pub tenant_id: uuid::Uuid,
    pub entity: Entity,
    /// The record's ref (ULID).
    pub entity_ref: String,
    pub action: Action,
    /// Who made the change: the service token's name.
    pub actor: String,
    pub diff: Diff,
}

impl Change {
    /// A change of a record of `table` (one of [`Entity::ALL`]).
    pub fn new(
        table: &str,
        tenant_id: uuid::Uuid,
        actor: &str,
        entity_ref: &str,
        action: Action,
        diff: Diff,
    ) -> Result<Change, RecordError> {
        Ok(Change {
            tenant_id,
            entity: Entity::of(table)?,
            entity_ref: entity_ref.to_string(),
            action,
            actor: actor.to_string(),
            diff,
        })
    }
}

/// Appends `change` to the outbox in the request's transaction: it reaches
/// MongoDB only if the transaction commits. A change whose diff is empty
/// (nothing changed) leaves no trace.
pub async fn record(tx: &mut Tx, change: &Change) -> Result<(), RecordError> {
    record_all(tx, std::slice::from_ref(change)).await
}

/// [`record`] for many changes (a batch), in one statement.
pub async fn record_all(tx: &mut Tx, changes: &[Change]) -> Result<(), RecordError> {
    let mut rows = Vec::with_capacity(changes.len());
    for (position, change) in changes.iter().enumerate() {
        if change.diff.is_empty() {
            continue;
        }
        let diff = serde_json::to_value(&change.diff)
            .map_err(|e| RecordError::Store(format!("audit diff: {e}")))?;
        rows.push(serde_json::json!({
            "position": position,
            "tenant_id": change.tenant_id,
            "entity": change.entity.table(),
            "entity_ref": change.entity_ref,
            "action": change.action.as_str(),
            "actor": change.actor,
            "diff": diff,
        }));
    }
    if rows.is_empty() {
        return Ok(());
    }
    // An unnamed statement: fit for PgBouncer's transaction pooling. The
    // outbox's sequence follows `position`, so a batch's diffs keep its order.
    sqlx::query(
        "INSERT INTO audit_outbox (tenant_id, entity, entity_ref, action, actor, diff) \
         SELECT tenant_id, entity, entity_ref, action, actor, diff \
         FROM jsonb_to_recordset($1::jsonb) AS x(position integer, tenant_id uuid, entity text, \
              entity_ref text, action text, actor text, diff jsonb) \
         ORDER BY position",
    )
    .persistent(false)
    .bind(serde_json::Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The MongoDB `refId` of an outbox row: a ULID of the row's creation time
/// (ms) and its sequence number, so the same row always gets the same ref
/// (a repeated drain inserts nothing twice) and a record's refs grow with
/// its changes (they order its history).
pub fn diff_ref(created_ms: i64, seq: i64) -> ulid::Ulid {
    // 48 bits of time, then the 64-bit sequence, then 16 zero bits.
    ulid::Ulid::from_parts(created_ms.max(0) as u64, (seq.max(0) as u128) << 16)
}

/// The sequence number inside a [`diff_ref`].
pub fn diff_seq(reference: ulid::Ulid) -> i64 {
    ((reference.random() >> 16) & u128::from(u64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_fields_are_kept() {
        let before = json!({"ref": "A", "kind": "blog", "status": "queued", "error": null});
        let after = json!({"ref": "A", "kind": "post", "status": "queued", "error": "x"});
        let diff = Diff::changed(&before, &after).expect("diff");
        assert_eq!(
            serde_json::to_value(&diff).expect("json"),
            json!({"before": {"kind": "blog", "error": null}, "after": {"kind": "post", "error": "x"}})
        );
        assert!(Diff::changed(&before, &before).expect("diff").is_empty());
        let created = Diff::created(&after).expect("diff");
        assert_eq!(created.before, None);
        assert_eq!(created.after.as_ref().map(Map::len), Some(4));
        assert!(!created.is_empty());
        assert!(Diff::created(&json!("not an object")).is_err());
    }

    #[test]
    fn diff_refs_are_stable_ordered_and_carry_the_sequence() {
        let a = diff_ref(1_700_000_000_000, 41);
        assert_eq!(a, diff_ref(1_700_000_000_000, 41), "same row, same ref");
        assert!(diff_ref(1_700_000_000_000, 42) > a, "same ms: by sequence");
        assert!(diff_ref(1_700_000_000_001, 1) > a, "by time first");
        assert_eq!(diff_seq(a), 41);
        assert_eq!(a.timestamp_ms(), 1_700_000_000_000);
        let text = a.to_string();
        assert_eq!(text.parse::<ulid::Ulid>().ok(), Some(a));
        assert!(text.len() == 26 && text.as_bytes()[0] <= b'7', "{text}");
    }

    #[test]
    fn every_collection_has_an_audit_trail() {
        let tables: Vec<&str> = crate::records::collections::ALL
            .iter()
            .map(|t| t.name)
            .collect();
        for table in &tables {
            assert!(Entity::of(table).is_ok(), "{table}");
        }
        let listed: Vec<&str> = Entity::ALL.iter().map(|e| e.table()).collect();
        assert_eq!(listed, tables, "the same ten, in the same order");
        // The outbox's CHECK names the same tables.
        let migration = include_str!("../../migrations/postgres/0007_audit_outbox.sql");
        for table in &tables {
            assert!(migration.contains(&format!("'{table}'")), "{table}");
        }
    }

    #[test]
    fn entities_come_only_from_the_list() {
        assert_eq!(Entity::from_table("activities"), Some(Entity::ACTIVITIES));
        assert_eq!(Entity::from_table("tenants"), None);
        assert_eq!(Entity::from_table("activities; DROP TABLE x"), None);
    }
}
