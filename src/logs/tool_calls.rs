//! Tool-call batch ingest: the full request/response payloads go to
//! `tool_call_logs` with one unordered `insert_many`, then the summaries
//! to `tool_calls` in ONE PostgreSQL statement (the rows travel as one
//! `jsonb` array), in the request's transaction.
//!
//! Idempotent by the calls' own refs: a call's ref is its summary's ref
//! and its payload document's `refId` (so `payloadRef` = the call's ref).
//! A retried batch finds its payloads (duplicate keys, ignored) and its
//! summaries (`existing`) and writes only what is missing, which is also
//! how a batch interrupted between the two stores is completed. A summary
//! is written only after its payload was acknowledged, so `payloadRef`
//! never names a payload that was not written (the TTL on
//! `tool_call_logs` removes payloads later; the summaries stay).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{DUPLICATE_KEY, mongo_error};
use crate::records::batch::{ItemError, ItemResult, check_refs, is_ulid, outcome_of};
use crate::records::collections::tool_calls::ToolCallStatus;
use crate::records::{RecordError, Tx};
use crate::stores::mongo::Mongo;
use crate::stores::postgres::Postgres;

pub const LOGS: &str = "tool_call_logs";

/// One tool call to record, with its payloads.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToolCall {
    /// The call's ref, made by the client (a ULID): its idempotency key,
    /// and the ref of its payload document.
    #[serde(rename = "ref")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub record_ref: String,
    #[schema(min_length = 1, max_length = 200)]
    pub tool_name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub method: String,
    /// Default `started`; a final state for a call that has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolCallStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
    /// Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub duration_ms: Option<i32>,
    /// The full request (any JSON). With `response`, at most
    /// `api.max_payload_bytes` of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The full response (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

impl NewToolCall {
    fn has_payload(&self) -> bool {
        self.request.is_some() || self.response.is_some()
    }
}

fn text_error(field: &str, value: &str) -> Option<ItemError> {
    let chars = value.chars().count();
    if !(1..=200).contains(&chars) {
        Some(ItemError::invalid(field, "must be 1 to 200 characters"))
    } else if value.contains('\0') {
        Some(ItemError::invalid(field, "must not contain NUL characters"))
    } else {
        None
    }
}

fn check(call: &NewToolCall) -> Option<ItemError> {
    if !is_ulid(&call.record_ref) {
        return Some(ItemError::invalid("ref", "must be a ULID"));
    }
    if let Some(error) =
        text_error("toolName", &call.tool_name).or_else(|| text_error("method", &call.method))
    {
        return Some(error);
    }
    if call.activity_ref.as_deref().is_some_and(|r| !is_ulid(r)) {
        return Some(ItemError::invalid("activityRef", "must be a ULID"));
    }
    if call.duration_ms.is_some_and(|d| d < 0) {
        return Some(ItemError::invalid("durationMs", "must not be negative"));
    }
    None
}

/// What the request's schema states, for every call: one bad call refuses
/// the whole batch (422 naming `{list}[i].field`) before anything is
/// written.
pub fn validate(calls: &[NewToolCall], list: &str) -> Result<(), RecordError> {
    for (index, call) in calls.iter().enumerate() {
        if let Some(error) = check(call) {
            return Err(RecordError::InvalidField {
                field: format!("{list}[{index}].{}", error.field.unwrap_or_default()),
                message: error.message,
            });
        }
    }
    Ok(())
}

/// The payload document of a call, or why it cannot be one.
fn payload_document(
    tenant_ref: &str,
    call: &NewToolCall,
    max_payload_bytes: usize,
) -> Result<Document, ItemError> {
    let payload = json!({"request": call.request, "response": call.response});
    let size = serde_json::to_vec(&payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_payload_bytes {
        return Err(ItemError::new(
            "payload_too_large",
            None,
            format!(
                "request and response are {size} bytes of JSON, at most {max_payload_bytes} (api.max_payload_bytes)"
            ),
        ));
    }
    // BSON keys are C strings: a NUL in one fails the whole insert in the
    // driver, not this document, so it is refused here, for this call alone.
    if [&call.request, &call.response]
        .into_iter()
        .flatten()
        .any(super::has_nul_key)
    {
        return Err(ItemError::new(
            "payload_refused",
            None,
            "object keys in request and response must not contain NUL characters".to_string(),
        ));
    }
    let as_bson = |value: &Option<Value>| match value {
        None => Ok(Bson::Null),
        Some(v) => bson::to_bson(v),
    };
    let (request, response) = match (as_bson(&call.request), as_bson(&call.response)) {
        (Ok(request), Ok(response)) => (request, response),
        (Err(e), _) | (_, Err(e)) => {
            return Err(ItemError::new("payload_refused", None, e.to_string()));
        }
    };
    Ok(doc! {
        "tenantId": tenant_ref,
        "refId": &call.record_ref,
        "toolCallRef": &call.record_ref,
        "createdOn": bson::DateTime::now(),
        "deletedOn": Bson::Null,
        "request": request,
        "response": response,
    })
}

/// Writes the payload documents; returns the refusals by call index.
/// Duplicates (a retry) count as written. A failure that is not about one
/// document (the server went away, a write concern error) fails the whole
/// batch before any summary is written.
async fn write_payloads(
    mongo: &Mongo,
    documents: Vec<(usize, Document)>,
) -> Result<Vec<(usize, ItemError)>, RecordError> {
    if documents.is_empty() {
        return Ok(Vec::new());
    }
    let (calls, documents): (Vec<usize>, Vec<Document>) = documents.into_iter().unzip();
    let written = mongo
        .database()
        .collection::<Document>(LOGS)
        .insert_many(documents)
        .ordered(false)
        .await;
    let error = match written {
        Ok(_) => return Ok(Vec::new()),
        Err(error) => error,
    };
    let ErrorKind::InsertMany(failure) = error.kind.as_ref() else {
        return Err(mongo_error(error));
    };
    if failure.write_concern_error.is_some() {
        return Err(RecordError::Unavailable(format!(
            "{LOGS}: the write was not acknowledged as configured: {error}"
        )));
    }
    let mut refused = Vec::new();
    for write in failure.write_errors.iter().flatten() {
        if write.code == DUPLICATE_KEY {
            continue;
        }
        let Some(call) = calls.get(write.index) else {
            return Err(RecordError::Store(format!("{LOGS}: {}", write.message)));
        };
        refused.push((
            *call,
            ItemError::new(
                "payload_refused",
                None,
                format!("MongoDB refused the payload: {}", write.message),
            ),
        ));
    }
    Ok(refused)
}

/// Ingests a batch for the tenant (`tenant_ref` names it in MongoDB);
/// see the module documentation. One result per call, in order.
pub async fn ingest(
    pg: &Postgres,
    tx: &mut Tx,
    mongo: &Mongo,
    tenant: (uuid::Uuid, &str),
    calls: &[NewToolCall],
    max_payload_bytes: usize,
) -> Result<Vec<ItemResult>, RecordError> {
    let (tenant_id, tenant_ref) = tenant;
    validate(calls, "calls")?;
    let mut refused: HashMap<usize, ItemError> =
        check_refs(calls.iter().map(|c| c.record_ref.as_str()))
            .into_iter()
            .collect();
    let mut documents = Vec::new();
    for (index, call) in calls.iter().enumerate() {
        if refused.contains_key(&index) || !call.has_payload() {
            continue;
        }
        match payload_document(tenant_ref, call, max_payload_bytes) {
            Ok(document) => documents.push((index, document)),
            Err(error) => {
                refused.insert(index, error);
            }
        }
    }
    refused.extend(write_payloads(mongo, documents).await?);

    let mut rows = Vec::with_capacity(calls.len());
    for (index, call) in calls.iter().enumerate() {
        if refused.contains_key(&index) {
            continue;
        }
        let status = call.status.unwrap_or(ToolCallStatus::Started);
        rows.push(json!({
            "i": index,
            "ref": call.record_ref,
            "tool_name": call.tool_name,
            "method": call.method,
            "status": serde_json::to_value(status).unwrap_or(Value::Null),
            "activity_ref": call.activity_ref,
            "started_at": call.started_at,
            "duration_ms": call.duration_ms,
            "payload_ref": call.has_payload().then_some(&call.record_ref),
        }));
    }
    let mut results: Vec<ItemResult> = refused
        .into_iter()
        .map(|(index, error)| ItemResult::refused(index, &calls[index].record_ref, error))
        .collect();
    if !rows.is_empty() {
        for (index, outcome) in write_summaries(pg, tx, tenant_id, rows).await? {
            let index = index as usize;
            results.push(outcome_of(index, &calls[index].record_ref, &outcome));
        }
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

/// The summaries in one statement; the outcome per row (see
/// [`outcome_of`]). A finished call gets its finish time from its start
/// and duration, as a single create does.
async fn write_summaries(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    rows: Vec<Value>,
) -> Result<Vec<(i32, String)>, RecordError> {
    Ok(pg
        .query_as(
            "WITH input AS ( \
               SELECT * FROM jsonb_to_recordset($2::jsonb) AS x( \
                 i integer, ref text, tool_name text, method text, status text, \
                 activity_ref text, started_at timestamptz, duration_ms integer, payload_ref text) \
             ), resolved AS ( \
               SELECT input.*, a.id AS activity_id FROM input \
               LEFT JOIN activities a ON a.tenant_id = $1 \
                 AND a.ref_id = input.activity_ref AND a.deleted_on IS NULL \
             ), inserted AS ( \
               INSERT INTO tool_calls (ref_id, tenant_id, activity_id, tool_name, method, status, \
                                       started_on, duration_ms, finished_on, payload_ref) \
               SELECT r.ref, $1, r.activity_id, r.tool_name, r.method, r.status, \
                      coalesce(r.started_at, now()), r.duration_ms, \
                      CASE WHEN r.status <> 'started' THEN coalesce(r.started_at, now()) \
                           + make_interval(secs => coalesce(r.duration_ms, 0) / 1000.0) END, \
                      r.payload_ref \
               FROM resolved r WHERE r.activity_ref IS NULL OR r.activity_id IS NOT NULL \
               ON CONFLICT (ref_id) DO NOTHING \
               RETURNING ref_id::text AS ref \
             ) \
             SELECT r.i, CASE \
                 WHEN r.activity_ref IS NOT NULL AND r.activity_id IS NULL THEN 'no_activity' \
                 WHEN n.ref IS NOT NULL THEN 'created' \
                 WHEN e.ref_id IS NOT NULL THEN 'existing' \
                 ELSE 'ref_taken' END \
             FROM resolved r \
             LEFT JOIN inserted n ON n.ref = r.ref \
             LEFT JOIN tool_calls e ON e.tenant_id = $1 AND e.ref_id = r.ref \
             ORDER BY r.i",
        )
        .bind(tenant_id)
        .bind(Value::Array(rows))
        .fetch_all(&mut **tx)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(request: Option<Value>) -> NewToolCall {
        NewToolCall {
            record_ref: ulid::Ulid::generate().to_string(),
            tool_name: "search".into(),
            method: "query".into(),
            status: None,
            activity_ref: None,
            started_at: None,
            duration_ms: None,
            request,
            response: None,
        }
    }

    #[test]
    fn a_nul_in_a_payload_key_is_refused_for_that_call_alone() {
        let nested = call(Some(json!({"a": [{"b\u{0}c": 1}]})));
        let refused = payload_document("T", &nested, 1024).expect_err("a NUL key");
        assert_eq!(refused.code, "payload_refused");
        let in_value = call(Some(json!({"a": "b\u{0}c"})));
        assert!(
            payload_document("T", &in_value, 1024).is_ok(),
            "only keys are C strings"
        );
    }

    #[test]
    fn payloads_over_the_limit_are_refused_alone() {
        let small = call(Some(json!({"q": "x"})));
        let document = payload_document("T", &small, 1024).expect("fits");
        assert_eq!(
            document.get_str("refId").ok(),
            Some(small.record_ref.as_str())
        );
        assert_eq!(
            document.get_str("toolCallRef").ok(),
            Some(small.record_ref.as_str())
        );
        let large = call(Some(json!({"q": "x".repeat(2000)})));
        let refused = payload_document("T", &large, 1024).expect_err("too large");
        assert_eq!(refused.code, "payload_too_large");
        let huge = call(Some(json!(u64::MAX)));
        assert_eq!(
            payload_document("T", &huge, 1024)
                .expect_err("no BSON for it")
                .code,
            "payload_refused"
        );
    }

    #[test]
    fn invalid_calls_refuse_the_batch_naming_the_field() {
        let mut bad = call(None);
        bad.method = String::new();
        let refused = validate(&[call(None), bad], "calls").expect_err("invalid");
        assert!(
            matches!(&refused, RecordError::InvalidField { field, .. } if field == "calls[1].method"),
            "{refused:?}"
        );
    }
}
