//! MongoDB: the collections, validators and indexes of
//! `migrations/mongo/collections.json`, reconciled declaratively.
//!
//! Index names carry a hash of their definition (`tenant_ref__1a2b3c4d`),
//! so an index whose definition changed is built under its new name before
//! the old one is dropped, and strata only ever drops indexes it named. A
//! TTL is not part of the hash: changing it is a `collMod`, data stays.

use std::collections::BTreeMap;

use mongodb::Database;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, Result as MongoResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config_keys::Setting;
use super::{SchemaError, embedded};
use crate::config::Config;

const SECONDS_PER_DAY: i64 = 86_400;

// Server error codes strata tolerates: racing instances or reruns.
const NAMESPACE_EXISTS: i32 = 48;
const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_NOT_FOUND: i32 = 27;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionsFile {
    #[serde(rename = "//", default)]
    _comment: Vec<String>,
    collections: Vec<CollectionDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionDef {
    pub name: String,
    /// After [`definitions`]: the file's validator with the S3 key rule
    /// of `s3_key_fields` added.
    pub validator: Document,
    /// Fields that hold an S3 key: each must start with the document's
    /// own `tenantId` followed by `/`.
    #[serde(default, rename = "s3KeyFields")]
    pub s3_key_fields: Vec<String>,
    pub indexes: Vec<IndexDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexDef {
    /// The base name; the full name appends the definition's hash.
    pub name: String,
    pub key: Document,
    #[serde(default)]
    pub unique: bool,
    #[serde(default, rename = "default_language")]
    pub default_language: Option<String>,
    #[serde(default)]
    pub weights: Option<Document>,
    #[serde(default)]
    pub partial_filter_expression: Option<Document>,
    /// A number of days, or the configuration key that holds it.
    #[serde(default)]
    pub expire_after_days: Option<Setting<u32>>,
}

impl IndexDef {
    pub fn is_text(&self) -> bool {
        self.key.values().any(|v| v.as_str() == Some("text"))
    }

    /// The name the index has on the server: base name + definition hash.
    pub fn full_name(&self) -> String {
        let mut canon = String::new();
        canon.push_str(&canonical(&Bson::Document(self.key.clone())));
        canon.push_str(&format!(
            "|unique={}|ttl={}",
            self.unique,
            self.expire_after_days.is_some()
        ));
        if let Some(language) = &self.default_language {
            canon.push_str(&format!("|lang={language}"));
        }
        if let Some(weights) = &self.weights {
            canon.push_str("|weights=");
            canon.push_str(&canonical(&Bson::Document(weights.clone())));
        }
        if let Some(filter) = &self.partial_filter_expression {
            canon.push_str("|partial=");
            canon.push_str(&canonical(&Bson::Document(filter.clone())));
        }
        let hash = hex::encode(Sha256::digest(canon.as_bytes()));
        format!("{}__{}", self.name, &hash[..8])
    }

    fn expire_after_seconds(&self, config: &Config) -> Result<Option<i64>, SchemaError> {
        self.expire_after_days
            .as_ref()
            .map(|d| {
                d.resolve(config, embedded::MONGO_COLLECTIONS)
                    .map(|days| i64::from(days) * SECONDS_PER_DAY)
            })
            .transpose()
    }

    fn create_spec(&self, config: &Config) -> Result<Document, SchemaError> {
        let mut spec = doc! { "key": self.key.clone(), "name": self.full_name() };
        if self.unique {
            spec.insert("unique", true);
        }
        if let Some(language) = &self.default_language {
            spec.insert("default_language", language.clone());
        }
        if let Some(weights) = &self.weights {
            spec.insert("weights", weights.clone());
        }
        if let Some(filter) = &self.partial_filter_expression {
            spec.insert("partialFilterExpression", filter.clone());
        }
        if let Some(seconds) = self.expire_after_seconds(config)? {
            spec.insert("expireAfterSeconds", seconds);
        }
        Ok(spec)
    }
}

/// Parses the embedded definitions.
pub fn definitions() -> Result<Vec<CollectionDef>, SchemaError> {
    parse(&embedded::text(embedded::MONGO_COLLECTIONS)?)
}

fn parse(text: &str) -> Result<Vec<CollectionDef>, SchemaError> {
    let mut file: CollectionsFile =
        serde_json::from_str(text).map_err(|e| SchemaError::Embedded {
            file: embedded::MONGO_COLLECTIONS.into(),
            reason: e.to_string(),
        })?;
    for collection in &mut file.collections {
        add_s3_key_rule(collection)?;
        for index in &collection.indexes {
            if index.name.contains("__") {
                return Err(SchemaError::Embedded {
                    file: embedded::MONGO_COLLECTIONS.into(),
                    reason: format!(
                        "index {}.{}: base names must not contain `__` (strata appends the hash)",
                        collection.name, index.name
                    ),
                });
            }
        }
    }
    Ok(file.collections)
}

/// Adds to the validator an `$expr` that refuses a document whose S3 key
/// fields do not start with its own `tenantId` and `/`: a key into another
/// tenant's prefix cannot be stored, whatever the code that writes it.
/// A field that is missing or not a string is left to the `$jsonSchema`.
fn add_s3_key_rule(def: &mut CollectionDef) -> Result<(), SchemaError> {
    if def.s3_key_fields.is_empty() {
        return Ok(());
    }
    let bad = |reason: String| SchemaError::Embedded {
        file: embedded::MONGO_COLLECTIONS.into(),
        reason: format!("collection {}: {reason}", def.name),
    };
    if def.validator.contains_key("$expr") {
        return Err(bad("s3KeyFields and an own $expr cannot be combined".into()));
    }
    let properties = def
        .validator
        .get_document("$jsonSchema")
        .and_then(|s| s.get_document("properties"))
        .map_err(|_| bad("s3KeyFields needs $jsonSchema properties".into()))?;
    let is_string = |path: &str| doc! { "$eq": [ { "$type": path }, "string" ] };
    let mut rules = Vec::new();
    for field in &def.s3_key_fields {
        if !properties.contains_key(field) {
            return Err(bad(format!(
                "s3KeyFields names {field}, which is not a property"
            )));
        }
        let path = format!("${field}");
        // $cond, not $and/$or: only the taken branch is evaluated, so
        // $indexOfCP never sees a non-string.
        rules.push(Bson::Document(doc! { "$cond": [
            { "$not": [ is_string(&path) ] },
            true,
            { "$cond": [
                is_string("$tenantId"),
                { "$eq": [ { "$indexOfCP": [ path, { "$concat": [ "$tenantId", "/" ] } ] }, 0 ] },
                false,
            ] },
        ] }));
    }
    let expr = if rules.len() == 1 {
        rules.remove(0)
    } else {
        Bson::Document(doc! { "$and": rules })
    };
    def.validator.insert("$expr", expr);
    Ok(())
}

/// A stable text form of a BSON value: keys in document order, numbers
/// as numbers whatever their BSON type (the server may answer 1 as a
/// double or an int64).
pub fn canonical(value: &Bson) -> String {
    match value {
        Bson::Document(d) => {
            let fields: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), canonical(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Bson::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
        Bson::Double(f) => f.to_string(),
        Bson::String(s) => json_string(s),
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".into(),
        other => format!("{other}"),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// Is this an index name strata gave (`base__8 hex digits`)?
fn owned_base(name: &str) -> Option<&str> {
    let (base, hash) = name.rsplit_once("__")?;
    (hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !base.is_empty())
        .then_some(base)
}

/// One change to the server.
#[derive(Debug, Clone)]
pub enum Action {
    CreateCollection {
        collection: String,
        validator: Document,
    },
    SetValidator {
        collection: String,
        validator: Document,
    },
    CreateIndex {
        collection: String,
        name: String,
        spec: Document,
        /// The owned index it replaces (same base name, other definition).
        replaces: Option<String>,
    },
    SetTtl {
        collection: String,
        name: String,
        from: Option<i64>,
        to: i64,
    },
    DropIndex {
        collection: String,
        name: String,
        replaced_by: Option<String>,
    },
}

fn days(seconds: i64) -> String {
    if seconds % SECONDS_PER_DAY == 0 {
        format!("{} days", seconds / SECONDS_PER_DAY)
    } else {
        format!("{seconds} s")
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateCollection { collection, .. } => {
                write!(f, "create collection {collection} with its validator")
            }
            Action::SetValidator { collection, .. } => {
                write!(f, "update the validator of {collection} (collMod)")
            }
            Action::CreateIndex {
                collection,
                name,
                spec,
                replaces,
                ..
            } => {
                let key = spec
                    .get_document("key")
                    .map(|k| canonical(&Bson::Document(k.clone())));
                write!(
                    f,
                    "create index {collection}.{name} {}",
                    key.unwrap_or_default()
                )?;
                if spec.get_bool("unique").unwrap_or(false) {
                    f.write_str(" unique")?;
                }
                if let Some(seconds) = spec.get("expireAfterSeconds").and_then(as_i64) {
                    write!(f, " TTL {}", days(seconds))?;
                }
                if let Some(old) = replaces {
                    write!(f, " (replaces {old})")?;
                }
                Ok(())
            }
            Action::SetTtl {
                collection,
                name,
                from,
                to,
            } => {
                let from = from.map_or_else(|| "none".to_string(), days);
                write!(
                    f,
                    "change TTL of {collection}.{name} from {from} to {} (collMod, data kept)",
                    days(*to)
                )
            }
            Action::DropIndex {
                collection,
                name,
                replaced_by,
            } => match replaced_by {
                Some(new) => write!(f, "drop index {collection}.{name} (after {new} is built)"),
                None => write!(f, "drop index {collection}.{name} (no longer defined)"),
            },
        }
    }
}

/// The MongoDB side of a plan.
#[derive(Debug, Clone, Default)]
pub struct MongoPlan {
    pub actions: Vec<Action>,
    pub warnings: Vec<String>,
}

impl MongoPlan {
    pub fn steps(&self) -> Vec<String> {
        self.actions.iter().map(ToString::to_string).collect()
    }
}

fn mongo_error(step: impl Into<String>, error: &mongodb::error::Error) -> SchemaError {
    SchemaError::Store {
        store: "mongo",
        step: step.into(),
        reason: error.kind.to_string(),
        transient: crate::stores::Failure::of_mongo(error).is_transient(),
    }
}

fn error_code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

async fn cursor_documents(db: &Database, command: Document) -> MongoResult<Vec<Document>> {
    let mut cursor = db.run_cursor_command(command).await?;
    let mut out = Vec::new();
    while cursor.advance().await? {
        out.push(cursor.deserialize_current()?);
    }
    Ok(out)
}

/// Compares the server with `defs`; changes nothing.
pub async fn plan(
    db: &Database,
    defs: &[CollectionDef],
    config: &Config,
) -> Result<MongoPlan, SchemaError> {
    let mut plan = MongoPlan::default();
    let listed = cursor_documents(db, doc! { "listCollections": 1, "nameOnly": false })
        .await
        .map_err(|e| mongo_error("listing collections", &e))?;
    let existing: BTreeMap<String, Document> = listed
        .into_iter()
        .filter_map(|c| {
            let name = c.get_str("name").ok()?.to_string();
            let options = c.get_document("options").cloned().unwrap_or_default();
            Some((name, options))
        })
        .collect();

    for def in defs {
        let indexes = match existing.get(&def.name) {
            None => {
                plan.actions.push(Action::CreateCollection {
                    collection: def.name.clone(),
                    validator: def.validator.clone(),
                });
                Vec::new()
            }
            Some(options) => {
                let current = options.get_document("validator").ok();
                let same = current.is_some_and(|v| {
                    canonical(&Bson::Document(v.clone()))
                        == canonical(&Bson::Document(def.validator.clone()))
                }) && options.get_str("validationLevel").unwrap_or("strict") == "strict"
                    && options.get_str("validationAction").unwrap_or("error") == "error";
                if !same {
                    plan.actions.push(Action::SetValidator {
                        collection: def.name.clone(),
                        validator: def.validator.clone(),
                    });
                }
                match cursor_documents(db, doc! { "listIndexes": def.name.clone() }).await {
                    Ok(list) => list,
                    Err(e) if error_code(&e) == Some(NAMESPACE_NOT_FOUND) => Vec::new(),
                    Err(e) => {
                        return Err(mongo_error(format!("listing indexes of {}", def.name), &e));
                    }
                }
            }
        };
        diff_indexes(def, &indexes, config, &mut plan)?;
    }
    Ok(plan)
}

/// The index part of the plan for one collection (pure: unit-tested).
fn diff_indexes(
    def: &CollectionDef,
    existing: &[Document],
    config: &Config,
    plan: &mut MongoPlan,
) -> Result<(), SchemaError> {
    let by_name: BTreeMap<&str, &Document> = existing
        .iter()
        .filter_map(|d| Some((d.get_str("name").ok()?, d)))
        .collect();
    let wanted: Vec<String> = def.indexes.iter().map(IndexDef::full_name).collect();
    let mut drops = Vec::new();
    for (index, full) in def.indexes.iter().zip(&wanted) {
        let ttl = index.expire_after_seconds(config)?;
        if let Some(current) = by_name.get(full.as_str()) {
            if let Some(to) = ttl {
                let from = current.get("expireAfterSeconds").and_then(as_i64);
                if from != Some(to) {
                    plan.actions.push(Action::SetTtl {
                        collection: def.name.clone(),
                        name: full.clone(),
                        from,
                        to,
                    });
                }
            }
            if !index.is_text()
                && let Ok(key) = current.get_document("key")
                && canonical(&Bson::Document(key.clone()))
                    != canonical(&Bson::Document(index.key.clone()))
            {
                plan.warnings.push(format!(
                    "mongo: index {}.{full} exists with another key than strata defines; \
                     drop it by hand so that strata can rebuild it",
                    def.name
                ));
            }
            continue;
        }
        let replaces = by_name
            .keys()
            .find(|n| owned_base(n) == Some(index.name.as_str()))
            .map(|n| n.to_string());
        if let Some(old) = &replaces {
            drops.push(Action::DropIndex {
                collection: def.name.clone(),
                name: old.clone(),
                replaced_by: Some(full.clone()),
            });
        }
        plan.actions.push(Action::CreateIndex {
            collection: def.name.clone(),
            name: full.clone(),
            spec: index.create_spec(config)?,
            replaces,
        });
    }
    for name in by_name.keys() {
        let Some(base) = owned_base(name) else {
            continue;
        };
        let handled = drops
            .iter()
            .any(|d| matches!(d, Action::DropIndex { name: n, .. } if n == name));
        if !handled && !wanted.iter().any(|w| w == name) {
            drops.push(Action::DropIndex {
                collection: def.name.clone(),
                name: name.to_string(),
                replaced_by: wanted.iter().find(|w| owned_base(w) == Some(base)).cloned(),
            });
        }
    }
    // New indexes first, then the drops: queries always have an index.
    plan.actions.extend(drops);
    Ok(())
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default)]
pub struct MongoApplied {
    /// One line per change.
    pub done: Vec<String>,
    /// The plan's warnings (e.g. an index strata cannot rebuild itself).
    pub warnings: Vec<String>,
}

/// Applies a plan computed under the schema lock.
pub async fn apply(
    db: &Database,
    plan: &MongoPlan,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<MongoApplied, SchemaError> {
    let mut done = Vec::new();
    for action in &plan.actions {
        let line = format!("mongo: {action}");
        progress(&line);
        match action {
            Action::CreateCollection {
                collection,
                validator,
            } => {
                let result = db
                    .run_command(doc! {
                        "create": collection.clone(),
                        "validator": validator.clone(),
                        "validationLevel": "strict",
                        "validationAction": "error",
                    })
                    .await;
                match result {
                    Ok(_) => {}
                    // Created meanwhile (another process outside the lock):
                    // the validator is checked on the next plan.
                    Err(e) if error_code(&e) == Some(NAMESPACE_EXISTS) => {}
                    Err(e) => return Err(mongo_error(format!("creating {collection}"), &e)),
                }
            }
            Action::SetValidator {
                collection,
                validator,
            } => {
                db.run_command(doc! {
                    "collMod": collection.clone(),
                    "validator": validator.clone(),
                    "validationLevel": "strict",
                    "validationAction": "error",
                })
                .await
                .map_err(|e| mongo_error(format!("updating the validator of {collection}"), &e))?;
            }
            Action::CreateIndex {
                collection,
                name,
                spec,
                ..
            } => {
                db.run_command(
                    doc! { "createIndexes": collection.clone(), "indexes": [spec.clone()] },
                )
                .await
                .map_err(|e| mongo_error(format!("creating index {collection}.{name}"), &e))?;
            }
            Action::SetTtl {
                collection,
                name,
                to,
                ..
            } => {
                db.run_command(doc! {
                    "collMod": collection.clone(),
                    "index": { "name": name.clone(), "expireAfterSeconds": *to },
                })
                .await
                .map_err(|e| mongo_error(format!("changing the TTL of {collection}.{name}"), &e))?;
            }
            Action::DropIndex {
                collection, name, ..
            } => {
                let result = db
                    .run_command(doc! { "dropIndexes": collection.clone(), "index": name.clone() })
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some(INDEX_NOT_FOUND) => {}
                    Err(e) => {
                        return Err(mongo_error(
                            format!("dropping index {collection}.{name}"),
                            &e,
                        ));
                    }
                }
            }
        }
        done.push(line);
    }
    Ok(MongoApplied {
        done,
        warnings: plan.warnings.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<CollectionDef> {
        definitions().expect("embedded definitions parse")
    }

    fn collection(name: &str) -> CollectionDef {
        defs()
            .into_iter()
            .find(|c| c.name == name)
            .expect("collection defined")
    }

    #[test]
    fn every_spec_collection_is_defined_with_tenant_ref_and_validator() {
        let names: Vec<String> = defs().into_iter().map(|c| c.name).collect();
        for expected in [
            "activity_outputs",
            "onboarding_research",
            "strategies_content",
            "tool_call_logs",
            "skills",
            "integration_payloads",
            "entity_diffs",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        for c in defs() {
            let schema = c
                .validator
                .get_document("$jsonSchema")
                .expect("$jsonSchema");
            let required = schema.get_array("required").expect("required");
            for field in ["tenantId", "refId", "createdOn"] {
                assert!(
                    required.iter().any(|r| r.as_str() == Some(field)),
                    "{}: {field}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn ttl_keys_resolve_from_config() {
        let mut config = Config::default();
        config.mongo.tool_call_logs_ttl_days = 45;
        let logs = collection("tool_call_logs");
        let ttl = logs
            .indexes
            .iter()
            .find(|i| i.expire_after_days.is_some())
            .expect("ttl index");
        assert_eq!(
            ttl.expire_after_seconds(&config).expect("resolves"),
            Some(45 * 86_400)
        );
        for c in defs() {
            for i in &c.indexes {
                i.expire_after_seconds(&Config::default())
                    .expect("every TTL key resolves");
            }
        }
        let unknown: Setting<u32> = Setting::Key("mongo.nope".into());
        let err = unknown
            .resolve(&config, embedded::MONGO_COLLECTIONS)
            .expect_err("unknown key");
        assert!(err.to_string().contains("mongo.nope"), "{err}");
    }

    #[test]
    fn full_names_follow_the_definition_not_the_ttl() {
        let base = IndexDef {
            name: "tenant_ref".into(),
            key: doc! { "tenantId": 1, "refId": 1 },
            unique: true,
            default_language: None,
            weights: None,
            partial_filter_expression: None,
            expire_after_days: None,
        };
        let name = base.full_name();
        assert!(name.starts_with("tenant_ref__") && owned_base(&name) == Some("tenant_ref"));
        // Key order matters for a compound index.
        let mut swapped = base.clone();
        swapped.key = doc! { "refId": 1, "tenantId": 1 };
        assert_ne!(swapped.full_name(), name);
        let mut not_unique = base.clone();
        not_unique.unique = false;
        assert_ne!(not_unique.full_name(), name);
        // Int32 and Int64 1 are the same definition.
        let mut wide = base.clone();
        wide.key = doc! { "tenantId": 1_i64, "refId": 1.0 };
        assert_eq!(wide.full_name(), name);
        let mut ttl_a = base.clone();
        ttl_a.expire_after_days = Some(Setting::Literal(1));
        let mut ttl_b = base.clone();
        ttl_b.expire_after_days = Some(Setting::Key("mongo.entity_diffs_ttl_days".into()));
        assert_eq!(ttl_a.full_name(), ttl_b.full_name());
    }

    #[test]
    fn owned_names_are_recognised() {
        assert_eq!(owned_base("tenant_ref__0123abcd"), Some("tenant_ref"));
        assert_eq!(owned_base("_id_"), None);
        assert_eq!(owned_base("tenantId_1_refId_1"), None);
        assert_eq!(owned_base("x__0123abcz"), None);
    }

    fn listed(index: &IndexDef, config: &Config) -> Document {
        let mut spec = index.create_spec(config).expect("spec");
        spec.insert("v", 2);
        spec
    }

    #[test]
    fn an_up_to_date_collection_plans_nothing() {
        let config = Config::default();
        let logs = collection("tool_call_logs");
        let existing: Vec<Document> = logs.indexes.iter().map(|i| listed(i, &config)).collect();
        let mut plan = MongoPlan::default();
        diff_indexes(&logs, &existing, &config, &mut plan).expect("diff");
        assert!(plan.actions.is_empty(), "{:?}", plan.steps());
    }

    #[test]
    fn a_ttl_change_is_a_collmod() {
        let config = Config::default();
        let logs = collection("tool_call_logs");
        let existing: Vec<Document> = logs.indexes.iter().map(|i| listed(i, &config)).collect();
        let mut longer = config.clone();
        longer.mongo.tool_call_logs_ttl_days = 90;
        let mut plan = MongoPlan::default();
        diff_indexes(&logs, &existing, &longer, &mut plan).expect("diff");
        assert_eq!(plan.actions.len(), 1, "{:?}", plan.steps());
        assert!(
            matches!(plan.actions[0], Action::SetTtl { to, from: Some(f), .. } if to == 90 * 86_400 && f == 30 * 86_400)
        );
        assert!(plan.steps()[0].contains("from 30 days to 90 days"));
    }

    #[test]
    fn a_changed_definition_is_built_before_the_old_is_dropped() {
        let config = Config::default();
        let mut outputs = collection("activity_outputs");
        let existing: Vec<Document> = outputs.indexes.iter().map(|i| listed(i, &config)).collect();
        let old_name = outputs.indexes[1].full_name();
        outputs.indexes[1].key = doc! { "tenantId": 1, "activityRef": 1, "createdOn": -1 };
        let new_name = outputs.indexes[1].full_name();
        let mut plan = MongoPlan::default();
        diff_indexes(&outputs, &existing, &config, &mut plan).expect("diff");
        let steps = plan.steps();
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(
            matches!(&plan.actions[0], Action::CreateIndex { name, replaces: Some(old), .. } if *name == new_name && *old == old_name)
        );
        assert!(matches!(&plan.actions[1], Action::DropIndex { name, .. } if *name == old_name));
    }

    #[test]
    fn foreign_indexes_are_left_alone_and_removed_owned_ones_dropped() {
        let config = Config::default();
        let outputs = collection("activity_outputs");
        let mut existing: Vec<Document> =
            outputs.indexes.iter().map(|i| listed(i, &config)).collect();
        existing.push(doc! { "v": 2, "name": "_id_", "key": { "_id": 1 } });
        existing.push(doc! { "v": 2, "name": "operator_made", "key": { "size": 1 } });
        existing.push(doc! { "v": 2, "name": "retired__0badc0de", "key": { "x": 1 } });
        let mut plan = MongoPlan::default();
        diff_indexes(&outputs, &existing, &config, &mut plan).expect("diff");
        assert_eq!(
            plan.steps(),
            vec!["drop index activity_outputs.retired__0badc0de (no longer defined)"]
        );
    }

    #[test]
    fn every_s3_key_field_is_checked_against_the_tenant() {
        // Any property that names a key ("s3Key", "researchKey", ...) is
        // an S3 key and must be listed, so the rule cannot be forgotten.
        for c in defs() {
            let properties = c
                .validator
                .get_document("$jsonSchema")
                .and_then(|s| s.get_document("properties"))
                .expect("properties");
            for field in properties.keys().filter(|k| k.ends_with("Key")) {
                assert!(
                    c.s3_key_fields.contains(field),
                    "{}.{field} is not in s3KeyFields",
                    c.name
                );
            }
            let expr = c.validator.get("$expr").map(canonical);
            for field in &c.s3_key_fields {
                let expr = expr.as_deref().expect("an $expr");
                assert!(
                    expr.contains(&format!("\"${field}\"")),
                    "{}: {expr}",
                    c.name
                );
            }
        }
        let outputs = collection("activity_outputs");
        assert_eq!(outputs.s3_key_fields, vec!["s3Key"]);
        let research = collection("onboarding_research");
        assert_eq!(research.s3_key_fields.len(), 3);
    }

    #[test]
    fn an_s3_key_field_must_be_a_property() {
        let text = r#"{ "collections": [ { "name": "c",
            "validator": { "$jsonSchema": { "properties": { "s3Key": {} } } },
            "s3KeyFields": ["otherKey"], "indexes": [] } ] }"#;
        let err = parse(text).expect_err("unknown field");
        assert!(err.to_string().contains("otherKey"), "{err}");
    }

    #[test]
    fn canonical_form_is_order_sensitive_and_number_blind() {
        assert_eq!(
            canonical(&Bson::Document(doc! {"a": 1, "b": "x"})),
            r#"{"a":1,"b":"x"}"#
        );
        assert_ne!(
            canonical(&Bson::Document(doc! {"a": 1, "b": 1})),
            canonical(&Bson::Document(doc! {"b": 1, "a": 1}))
        );
        assert_eq!(canonical(&Bson::Double(2.0)), canonical(&Bson::Int64(2)));
    }
}
