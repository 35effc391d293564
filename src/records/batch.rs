//! What batch writes share: client-supplied refs (the idempotency key of
//! every item), per-item outcomes, and the checks an item gets before any
//! store sees it.
//!
//! Idempotency is by the item's own `ref` (a ULID the client makes, e.g.
//! with any ULID library, and keeps until the write is confirmed): the ref
//! becomes the record's ref, so a retried item finds its record and is
//! reported `existing` instead of being written twice. The first write of
//! a ref wins; a retry is not compared with it.

use std::collections::HashSet;

use serde::Serialize;
use utoipa::ToSchema;

/// What became of one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written by this request.
    Created,
    /// Already there (a retry): nothing was written.
    Existing,
    /// Not written; `error` says why. The other items are not affected.
    Refused,
}

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemError {
    /// Stable: `validation_failed`, `duplicate_ref`, `ref_taken`,
    /// `payload_too_large`, `payload_refused`.
    pub code: String,
    /// The item's field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl ItemError {
    pub fn new(code: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new("validation_failed", Some(field), message)
    }
}

/// One item's result, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemResult {
    /// The item's position in the request (from 0).
    pub index: usize,
    /// The item's ref (as sent).
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// The refs of the items a batch created (not those recorded before).
pub fn created_refs(results: &[ItemResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.outcome == Outcome::Created)
        .map(|r| r.record_ref.clone())
        .collect()
}

impl ItemResult {
    pub fn done(index: usize, record_ref: &str, outcome: Outcome) -> Self {
        Self {
            index,
            record_ref: record_ref.to_string(),
            outcome,
            error: None,
        }
    }

    pub fn refused(index: usize, record_ref: &str, error: ItemError) -> Self {
        Self {
            index,
            record_ref: record_ref.to_string(),
            outcome: Outcome::Refused,
            error: Some(error),
        }
    }
}

/// The results of a whole batch, with counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchReport {
    pub created: usize,
    pub existing: usize,
    pub refused: usize,
    /// One result per item, in request order.
    pub items: Vec<ItemResult>,
}

impl BatchReport {
    pub fn new(mut items: Vec<ItemResult>) -> Self {
        items.sort_by_key(|r| r.index);
        let count = |o: Outcome| items.iter().filter(|r| r.outcome == o).count();
        Self {
            created: count(Outcome::Created),
            existing: count(Outcome::Existing),
            refused: count(Outcome::Refused),
            items,
        }
    }
}

/// A ULID in its canonical form (as strata hands them out).
pub fn is_ulid(text: &str) -> bool {
    matches!(text.parse::<ulid::Ulid>(), Ok(parsed) if parsed.to_string() == text)
}

/// Checks the refs of a batch: each must be a canonical ULID and appear
/// once. Returns the refusals by index.
pub fn check_refs<'a>(refs: impl Iterator<Item = &'a str>) -> Vec<(usize, ItemError)> {
    let mut seen = HashSet::new();
    let mut refused = Vec::new();
    for (index, record_ref) in refs.enumerate() {
        if !is_ulid(record_ref) {
            refused.push((
                index,
                ItemError::invalid(
                    "ref",
                    "must be a ULID (26 upper-case Crockford base32 characters)",
                ),
            ));
        } else if !seen.insert(record_ref) {
            refused.push((
                index,
                ItemError::new(
                    "duplicate_ref",
                    Some("ref"),
                    "the same ref appears earlier in this batch",
                ),
            ));
        }
    }
    refused
}

/// The outcome PostgreSQL reported for a row of a batch insert.
pub fn outcome_of(index: usize, record_ref: &str, reported: &str) -> ItemResult {
    match reported {
        "created" => ItemResult::done(index, record_ref, Outcome::Created),
        "existing" => ItemResult::done(index, record_ref, Outcome::Existing),
        "no_activity" => ItemResult::refused(
            index,
            record_ref,
            ItemError::invalid("activityRef", "no such activity"),
        ),
        _ => ItemResult::refused(
            index,
            record_ref,
            // Another tenant's record has this ref (refs are unique across
            // tenants); a client only gets here by reusing a ref it did not
            // make for this tenant.
            ItemError::new(
                "ref_taken",
                Some("ref"),
                "this ref is in use by another record; make a new ULID",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_must_be_canonical_ulids_and_unique() {
        let a = ulid::Ulid::generate().to_string();
        let lower = a.to_ascii_lowercase();
        let refs = [a.as_str(), "nope", a.as_str(), lower.as_str()];
        let refused = check_refs(refs.into_iter());
        let codes: Vec<(usize, &str)> =
            refused.iter().map(|(i, e)| (*i, e.code.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                (1, "validation_failed"),
                (2, "duplicate_ref"),
                (3, "validation_failed")
            ]
        );
    }

    #[test]
    fn a_report_counts_and_orders_its_items() {
        let report = BatchReport::new(vec![
            ItemResult::done(2, "c", Outcome::Existing),
            ItemResult::refused(1, "b", ItemError::invalid("x", "bad")),
            ItemResult::done(0, "a", Outcome::Created),
        ]);
        assert_eq!((report.created, report.existing, report.refused), (1, 1, 1));
        assert_eq!(
            report.items.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(
            outcome_of(0, "a", "ref_taken")
                .error
                .map(|e| e.code)
                .as_deref(),
            Some("ref_taken")
        );
    }
}
