//! Integration payloads: what an integration sent or received, appended to
//! MongoDB `integration_payloads` (TTL `mongo.integration_payloads_ttl_days`
//! on `createdOn`) and listed newest first by integration or by the entity
//! they concern. Pages are keyset on `refId` (a ULID made at append, so in
//! creation order to the millisecond), descending.

use std::collections::BTreeMap;

use mongodb::bson::{self, Bson, Document, doc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::mongo_error;
use crate::records::RecordError;
use crate::stores::mongo::Mongo;

pub const PAYLOADS: &str = "integration_payloads";

/// Which way a payload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A payload to append.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewIntegrationPayload {
    /// The tenant's integration it belongs to.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub integration_ref: String,
    pub direction: Direction,
    /// The kind of record it concerns (e.g. `blog_posts`), with `entityRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$")]
    pub entity: Option<String>,
    /// The record it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub entity_ref: Option<String>,
    /// Any JSON, at most `api.max_payload_bytes`.
    pub payload: Value,
}

/// A stored payload.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationPayload {
    #[serde(rename = "ref")]
    pub record_ref: String,
    pub integration_ref: String,
    pub direction: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
    /// As sent (numbers, strings, arrays, objects; MongoDB keeps JSON's
    /// shape).
    pub payload: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Appends a payload for `tenant_ref` (its integration was checked by the
/// caller, in PostgreSQL).
pub async fn append(
    mongo: &Mongo,
    tenant_ref: &str,
    new: &NewIntegrationPayload,
    max_payload_bytes: usize,
) -> Result<IntegrationPayload, RecordError> {
    let size = serde_json::to_vec(&new.payload).map_or(usize::MAX, |v| v.len());
    if size > max_payload_bytes {
        return Err(RecordError::InvalidField {
            field: "payload".into(),
            message: format!(
                "{size} bytes of JSON, at most {max_payload_bytes} (api.max_payload_bytes)"
            ),
        });
    }
    if super::has_nul_key(&new.payload) {
        return Err(RecordError::InvalidField {
            field: "payload".into(),
            message: "object keys must not contain NUL characters".into(),
        });
    }
    let payload = bson::to_bson(&new.payload).map_err(|e| RecordError::InvalidField {
        field: "payload".into(),
        message: e.to_string(),
    })?;
    let record_ref = next_ref();
    let created = bson::DateTime::now();
    let mut document = doc! {
        "tenantId": tenant_ref,
        "refId": &record_ref,
        "createdOn": created,
        "deletedOn": Bson::Null,
        "integrationRef": &new.integration_ref,
        "direction": new.direction.as_str(),
        "payload": payload,
    };
    if let (Some(entity), Some(entity_ref)) = (&new.entity, &new.entity_ref) {
        document.insert("entity", entity);
        document.insert("entityRef", entity_ref);
    }
    mongo
        .database()
        .collection::<Document>(PAYLOADS)
        .insert_one(document)
        .await
        .map_err(mongo_error)?;
    Ok(IntegrationPayload {
        record_ref,
        integration_ref: new.integration_ref.clone(),
        direction: new.direction,
        entity: new.entity.clone(),
        entity_ref: new.entity_ref.clone(),
        payload: new.payload.clone(),
        created_at: to_utc(&created),
    })
}

/// A ULID greater than every one this process made before, so that one
/// instance's appends list in their order even within a millisecond.
fn next_ref() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let made = match GENERATOR.lock() {
        Ok(mut generator) => generator.generate().ok(),
        Err(_) => None,
    };
    // Overflow (2^80 refs in one millisecond) or a poisoned lock: a plain
    // ULID, ordered to the millisecond.
    made.unwrap_or_else(ulid::Ulid::generate).to_string()
}

/// What to list.
#[derive(Debug, Clone)]
pub enum Scope {
    Integration(String),
    Entity(String),
}

/// One page, newest first, after the ref `before` (exclusive); the bool
/// says whether more follow.
pub async fn list(
    mongo: &Mongo,
    tenant_ref: &str,
    scope: &Scope,
    before: Option<&str>,
    limit: u32,
) -> Result<(Vec<IntegrationPayload>, bool), RecordError> {
    let mut filter = match scope {
        Scope::Integration(r) => doc! {"tenantId": tenant_ref, "integrationRef": r},
        Scope::Entity(r) => doc! {"tenantId": tenant_ref, "entityRef": r},
    };
    filter.insert("deletedOn", Bson::Null);
    if let Some(before) = before {
        filter.insert("refId", doc! {"$lt": before});
    }
    let mut cursor = mongo
        .database()
        .collection::<Document>(PAYLOADS)
        .find(filter)
        .sort(doc! {"refId": -1})
        .limit(i64::from(limit) + 1)
        .await
        .map_err(mongo_error)?;
    let mut items = Vec::new();
    while cursor.advance().await.map_err(mongo_error)? {
        let document: Document = cursor.deserialize_current().map_err(mongo_error)?;
        items.push(view(document));
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok((items, more))
}

fn to_utc(time: &bson::DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or_default()
}

fn view(document: Document) -> IntegrationPayload {
    let text = |key: &str| document.get_str(key).ok().map(str::to_string);
    IntegrationPayload {
        record_ref: text("refId").unwrap_or_default(),
        integration_ref: text("integrationRef").unwrap_or_default(),
        direction: if document.get_str("direction") == Ok("outbound") {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        entity: text("entity"),
        entity_ref: text("entityRef"),
        payload: document
            .get("payload")
            .cloned()
            .map_or(Value::Null, Bson::into_relaxed_extjson),
        created_at: document
            .get_datetime("createdOn")
            .map(to_utc)
            .unwrap_or_default(),
    }
}

/// The TTL (seconds) of each collection that has one, as the server has
/// it (for `/admin/status`).
pub async fn ttls(mongo: &Mongo) -> Result<BTreeMap<String, u64>, RecordError> {
    let mut ttls = BTreeMap::new();
    for collection in ["tool_call_logs", PAYLOADS, "entity_diffs"] {
        let mut indexes = mongo
            .database()
            .collection::<Document>(collection)
            .list_indexes()
            .await
            .map_err(mongo_error)?;
        while indexes.advance().await.map_err(mongo_error)? {
            let index = indexes.deserialize_current().map_err(mongo_error)?;
            if let Some(after) = index.options.and_then(|o| o.expire_after) {
                ttls.insert(collection.to_string(), after.as_secs());
            }
        }
    }
    Ok(ttls)
}
