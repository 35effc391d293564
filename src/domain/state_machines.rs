//! The status state machines of SPEC section 2.
//!
//! PostgreSQL holds them as data (`strata_transitions`, migration 0005) and
//! refuses any other status change with SQLSTATE [`ILLEGAL_TRANSITION`].
//! [`TRANSITIONS`] is the same table for pure logic; the test
//! `state_machines_in_postgres` proves the two agree.

use serde::Deserialize;

/// The SQLSTATE of PostgreSQL's refusal of a status change; the API answers
/// 409 with the allowed next states.
pub const ILLEGAL_TRANSITION: &str = "ST409";

/// `(entity, from, to)`: `from = None` means a row may be created in `to`.
/// The entity is the table name.
pub const TRANSITIONS: &[(&str, Option<&str>, &str)] = &[
    ("tenants", None, "active"),
    ("tenants", Some("active"), "suspended"),
    ("tenants", Some("suspended"), "active"),
    ("tenants", Some("active"), "deleted"),
    ("tenants", Some("suspended"), "deleted"),
    ("activities", None, "queued"),
    ("activities", None, "running"),
    ("activities", Some("queued"), "running"),
    ("activities", Some("queued"), "cancelled"),
    ("activities", Some("running"), "succeeded"),
    ("activities", Some("running"), "failed"),
    ("activities", Some("running"), "cancelled"),
    ("blog_posts", None, "draft"),
    ("blog_posts", Some("draft"), "in_review"),
    ("blog_posts", Some("in_review"), "approved"),
    ("blog_posts", Some("in_review"), "changes_requested"),
    ("blog_posts", Some("changes_requested"), "draft"),
    ("blog_posts", Some("approved"), "scheduled"),
    ("blog_posts", Some("scheduled"), "published"),
    ("blog_posts", Some("draft"), "archived"),
    ("blog_posts", Some("in_review"), "archived"),
    ("blog_posts", Some("changes_requested"), "archived"),
    ("blog_posts", Some("approved"), "archived"),
    ("blog_posts", Some("scheduled"), "archived"),
    ("blog_posts", Some("published"), "archived"),
    ("social_posts", None, "draft"),
    ("social_posts", Some("draft"), "approved"),
    ("social_posts", Some("approved"), "scheduled"),
    ("social_posts", Some("scheduled"), "published"),
    ("social_posts", Some("scheduled"), "failed"),
    ("social_posts", Some("failed"), "scheduled"),
    ("social_posts", Some("draft"), "archived"),
    ("social_posts", Some("approved"), "archived"),
    ("social_posts", Some("scheduled"), "archived"),
    ("social_posts", Some("published"), "archived"),
    ("social_posts", Some("failed"), "archived"),
    ("onboarding_runs", None, "pending"),
    ("onboarding_runs", Some("pending"), "scraping"),
    ("onboarding_runs", Some("scraping"), "researching"),
    ("onboarding_runs", Some("researching"), "completed"),
    ("onboarding_runs", Some("pending"), "failed"),
    ("onboarding_runs", Some("scraping"), "failed"),
    ("onboarding_runs", Some("researching"), "failed"),
    ("strategies", None, "draft"),
    ("strategies", Some("draft"), "pending_approval"),
    ("strategies", Some("pending_approval"), "approved"),
    ("strategies", Some("pending_approval"), "rejected"),
    ("strategies", Some("approved"), "active"),
    ("strategies", Some("active"), "superseded"),
    ("contracts", None, "pending"),
    ("contracts", Some("pending"), "accepted"),
    ("contracts", Some("pending"), "declined"),
    ("contracts", Some("pending"), "expired"),
    ("tool_calls", None, "started"),
    ("tool_calls", None, "succeeded"),
    ("tool_calls", None, "failed"),
    ("tool_calls", None, "timed_out"),
    ("tool_calls", Some("started"), "succeeded"),
    ("tool_calls", Some("started"), "failed"),
    ("tool_calls", Some("started"), "timed_out"),
    ("integrations", None, "connected"),
    ("integrations", Some("connected"), "error"),
    ("integrations", Some("error"), "connected"),
    ("integrations", Some("connected"), "disconnected"),
    ("integrations", Some("error"), "disconnected"),
];

/// The entities that have a state machine.
pub fn entities() -> Vec<&'static str> {
    let mut all: Vec<&str> = TRANSITIONS.iter().map(|(e, _, _)| *e).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The states `entity` may move to from `from` (`None`: the states it may
/// be created in), sorted.
pub fn allowed_next(entity: &str, from: Option<&str>) -> Vec<&'static str> {
    let mut next: Vec<&str> = TRANSITIONS
        .iter()
        .filter(|(e, f, _)| *e == entity && *f == from)
        .map(|(_, _, to)| *to)
        .collect();
    next.sort_unstable();
    next
}

/// Whether `entity` may go from `from` to `to` (`from = None`: be created
/// in `to`). Staying in the same state is not a transition and always holds.
pub fn allows(entity: &str, from: Option<&str>, to: &str) -> bool {
    from == Some(to)
        || TRANSITIONS
            .iter()
            .any(|(e, f, t)| *e == entity && *f == from && *t == to)
}

/// PostgreSQL's refusal of a status change, read from the JSON DETAIL of an
/// [`ILLEGAL_TRANSITION`] error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IllegalTransition {
    pub entity: String,
    #[serde(rename = "ref")]
    pub record_ref: Option<String>,
    /// `None` when a row was being created.
    pub from: Option<String>,
    pub to: String,
    pub allowed: Vec<String>,
}

impl IllegalTransition {
    pub fn from_detail(detail: &str) -> Option<Self> {
        serde_json::from_str(detail).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_changes_of_the_spec_are_refused() {
        for (entity, from, to) in [
            ("blog_posts", "published", "draft"),
            ("contracts", "declined", "accepted"),
            ("contracts", "expired", "accepted"),
            ("strategies", "superseded", "active"),
            ("integrations", "disconnected", "connected"),
            ("tenants", "deleted", "active"),
            ("activities", "succeeded", "running"),
        ] {
            assert!(!allows(entity, Some(from), to), "{entity}: {from} -> {to}");
        }
        assert!(allows("strategies", Some("approved"), "active"));
        assert!(allows("blog_posts", Some("published"), "archived"));
        assert!(allows("social_posts", Some("failed"), "scheduled"));
    }

    #[test]
    fn every_entity_has_a_creation_state_and_every_state_is_reachable() {
        for entity in entities() {
            assert!(!allowed_next(entity, None).is_empty(), "{entity}");
            for (_, from, _) in TRANSITIONS.iter().filter(|(e, _, _)| *e == entity) {
                if let Some(from) = from {
                    assert!(
                        TRANSITIONS
                            .iter()
                            .any(|(e, _, to)| *e == entity && to == from),
                        "{entity}: {from} cannot be reached"
                    );
                }
            }
        }
    }

    #[test]
    fn terminal_states_have_no_next_state() {
        assert!(allowed_next("tenants", Some("deleted")).is_empty());
        assert!(allowed_next("contracts", Some("accepted")).is_empty());
        assert_eq!(
            allowed_next("strategies", Some("pending_approval")),
            ["approved", "rejected"]
        );
    }

    #[test]
    fn a_refusal_detail_is_parsed() {
        let detail = r#"{"entity" : "strategies", "ref" : "01ARZ3NDEKTSV4RRFFQ69G5FAW", "from" : "draft", "to" : "active", "allowed" : ["pending_approval"]}"#;
        let refusal = IllegalTransition::from_detail(detail).expect("parses");
        assert_eq!(refusal.from.as_deref(), Some("draft"));
        assert_eq!(refusal.allowed, ["pending_approval"]);
        let created = r#"{"entity":"tool_calls","ref":"01ARZ3NDEKTSV4RRFFQ69G5FAW","from":null,"to":"nope","allowed":["failed","started","succeeded","timed_out"]}"#;
        assert_eq!(
            IllegalTransition::from_detail(created).map(|r| r.from),
            Some(None)
        );
        assert!(IllegalTransition::from_detail("not json").is_none());
    }
}
