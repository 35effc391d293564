//! MongoDB collections, validators and indexes: created from the embedded
//! definitions and read back with listCollections/listIndexes; a TTL
//! change applied in place at restart; a changed index rebuilt under its
//! new name; the skills text index built and ranking; S3 keys held to the
//! document's own tenant prefix by the validator.

mod common;

use std::time::Duration;

use mongodb::Database;
use mongodb::bson::{Bson, Document, doc};
use strata::schema::mongo::{self, CollectionDef, canonical};
use strata::stores::Stores;

async fn list(db: &Database, command: Document) -> Vec<Document> {
    let mut cursor = db
        .run_cursor_command(command)
        .await
        .expect("cursor command");
    let mut out = Vec::new();
    while cursor.advance().await.expect("advance") {
        out.push(cursor.deserialize_current().expect("document"));
    }
    out
}

async fn indexes(db: &Database, collection: &str) -> Vec<Document> {
    list(db, doc! { "listIndexes": collection }).await
}

fn named<'a>(indexes: &'a [Document], name: &str) -> Option<&'a Document> {
    indexes.iter().find(|i| i.get_str("name") == Ok(name))
}

fn as_i64(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) => Some(*f as i64),
        _ => None,
    }
}

fn now() -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::now()
}

fn ulid() -> String {
    ulid::Ulid::generate().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_collection_validator_and_index_exists_and_a_rerun_is_a_no_op() {
    let fixture = common::Fixture::new("mongo").await;
    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");

    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let db = stores.mongo.database();
    let defs = mongo::definitions().expect("definitions");
    let collections = list(db, doc! { "listCollections": 1 }).await;
    for def in &defs {
        let listed = collections
            .iter()
            .find(|c| c.get_str("name") == Ok(def.name.as_str()))
            .unwrap_or_else(|| panic!("collection {} missing", def.name));
        let options = listed.get_document("options").expect("options");
        let validator = options.get_document("validator").expect("validator");
        assert_eq!(
            canonical(&Bson::Document(validator.clone())),
            canonical(&Bson::Document(def.validator.clone())),
            "validator of {}",
            def.name
        );
        let on_server = indexes(db, &def.name).await;
        for index in &def.indexes {
            let found = named(&on_server, &index.full_name()).unwrap_or_else(|| {
                panic!(
                    "index {}.{} missing: {on_server:?}",
                    def.name,
                    index.full_name()
                )
            });
            assert_eq!(
                found.get_bool("unique").unwrap_or(false),
                index.unique,
                "{}.{}",
                def.name,
                index.name
            );
            // A text index is listed with the server's internal key
            // ({_fts: "text", _ftsx: 1}) instead of the fields.
            let key = if index.is_text() {
                doc! { "_fts": "text", "_ftsx": 1 }
            } else {
                index.key.clone()
            };
            assert_eq!(
                canonical(&Bson::Document(
                    found.get_document("key").expect("key").clone()
                )),
                canonical(&Bson::Document(key))
            );
        }
    }
    let ttl = |collection: &str| {
        let collection = collection.to_string();
        async move {
            let found = indexes(db, &collection).await;
            found
                .iter()
                .find_map(|i| as_i64(i.get("expireAfterSeconds")))
                .unwrap_or_else(|| panic!("{collection} has no TTL index"))
        }
    };
    assert_eq!(ttl("tool_call_logs").await, 30 * 86_400);
    assert_eq!(ttl("integration_payloads").await, 14 * 86_400);
    assert_eq!(ttl("entity_diffs").await, 365 * 86_400);

    // The validator is enforced.
    let outputs = db.collection::<Document>("activity_outputs");
    let bad = outputs
        .insert_one(doc! { "tenantId": "t", "refId": "nope", "createdOn": now() })
        .await;
    assert_eq!(write_error_code(bad), 121, "an invalid document is refused");
    outputs
        .insert_one(doc! {
            "tenantId": "t", "refId": ulid(), "createdOn": now(), "deletedOn": Bson::Null,
            "activityRef": ulid(), "format": "markdown", "s3Key": "t/activity-outputs/x.md",
            "size": 12_i64, "sha256": "a".repeat(64), "metadata": { "anything": [1, 2] },
        })
        .await
        .expect("a valid document is accepted");
    // A duplicate (tenantId, refId) is refused by the unique index.
    let skills = db.collection::<Document>("skills");
    let skill = doc! { "tenantId": "global", "refId": ulid(), "createdOn": now(), "name": "n", "content": "c" };
    skills.insert_one(skill.clone()).await.expect("first");
    assert_eq!(
        write_error_code(skills.insert_one(skill).await),
        11000,
        "duplicate refId refused"
    );

    // Nothing pending the second time, and nothing to warn about.
    let plan = strata::schema::plan(&stores, &config).await.expect("plan");
    assert!(plan.mongo.is_empty(), "{:?}", plan.mongo);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let (code, out, _) = common::run(fixture.strata(&["check"]));
    assert_eq!(code, Some(0), "check passes\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("OK") && l.contains("mongo") && l.contains("up to date")),
        "{out}"
    );
}

/// The server's code for a refused write: 121 is a document validation
/// failure, 11000 a duplicate key.
fn write_error_code(result: mongodb::error::Result<mongodb::results::InsertOneResult>) -> i32 {
    let error = result.expect_err("the document is refused");
    match *error.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) => e.code,
        ref other => panic!("not a write error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_cannot_point_into_another_tenants_s3_prefix() {
    let fixture = common::Fixture::new("mongokeys").await;
    let stores = fixture.migrated_stores().await;
    let db = stores.mongo.database();
    const DOCUMENT_VALIDATION_FAILURE: i32 = 121;

    let output = |tenant: &str, key: &str| {
        doc! {
            "tenantId": tenant, "refId": ulid(), "createdOn": now(), "activityRef": ulid(),
            "format": "json", "s3Key": key, "size": 1_i64, "sha256": "b".repeat(64),
        }
    };
    let outputs = db.collection::<Document>("activity_outputs");
    outputs
        .insert_one(output("t1", "t1/activity-outputs/a.json"))
        .await
        .expect("a key under the document's own tenant is accepted");
    for foreign in [
        "t2/activity-outputs/a.json",  // another tenant
        "t1x/activity-outputs/a.json", // a tenant whose id starts like it
        "t1",                          // the bare tenant id, no separator
        "x/t1/activity-outputs/a.json",
        "/t1/activity-outputs/a.json",
    ] {
        let refused = outputs.insert_one(output("t1", foreign)).await;
        assert_eq!(
            write_error_code(refused),
            DOCUMENT_VALIDATION_FAILURE,
            "{foreign}"
        );
    }

    let strategies = db.collection::<Document>("strategies_content");
    let strategy = |key: &str| {
        doc! { "tenantId": "t1", "refId": ulid(), "createdOn": now(), "strategyRef": ulid(), "version": 1, "s3Key": key }
    };
    strategies
        .insert_one(strategy("t1/strategies/s/v1.md"))
        .await
        .expect("own prefix");
    assert_eq!(
        write_error_code(
            strategies
                .insert_one(strategy("t2/strategies/s/v1.md"))
                .await
        ),
        DOCUMENT_VALIDATION_FAILURE
    );

    // Research pointers are optional; each present one is checked.
    let research = db.collection::<Document>("onboarding_research");
    let run = |extra: Document| {
        let mut d = doc! { "tenantId": "t1", "refId": ulid(), "createdOn": now(), "onboardingRunRef": ulid() };
        d.extend(extra);
        d
    };
    research
        .insert_one(run(
            doc! { "scrapedTextKey": "t1/onboarding/r/scraped.txt", "researchKey": Bson::Null },
        ))
        .await
        .expect("own prefix, a null pointer, an absent one");
    for field in ["scrapedTextKey", "researchKey", "contextKey"] {
        let mut extra = doc! { "scrapedTextKey": "t1/onboarding/r/scraped.txt" };
        extra.insert(field, "t2/onboarding/r/x.md");
        assert_eq!(
            write_error_code(research.insert_one(run(extra)).await),
            DOCUMENT_VALIDATION_FAILURE,
            "{field}"
        );
    }

    // Updates are validated too: a stored key cannot be moved out.
    let updated = outputs
        .update_one(
            doc! { "tenantId": "t1" },
            doc! { "$set": { "s3Key": "t2/activity-outputs/a.json" } },
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(*updated.kind, mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) if e.code == DOCUMENT_VALIDATION_FAILURE),
        "{updated:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ttl_change_in_config_is_applied_at_restart_keeping_documents() {
    let fixture = common::Fixture::new("mongottl").await;
    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let db = stores.mongo.database();
    let logs = db.collection::<Document>("tool_call_logs");
    for _ in 0..5 {
        logs.insert_one(doc! { "tenantId": "t", "refId": ulid(), "createdOn": now(), "toolCallRef": ulid(), "request": { "q": 1 } })
            .await
            .expect("insert");
    }
    let before = indexes(db, "tool_call_logs").await;
    let ttl_name = before
        .iter()
        .find(|i| i.contains_key("expireAfterSeconds"))
        .and_then(|i| i.get_str("name").ok())
        .expect("ttl index")
        .to_string();

    let mut plan = fixture.strata(&["migrate", "--plan"]);
    plan.env("STRATA_MONGO__TOOL_CALL_LOGS_TTL_DAYS", "45");
    let (code, out, _) = common::run(plan);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("from 30 days to 45 days"), "{out}");

    let (token, hash) = strata::api::auth::new_token().expect("random token");
    let mut serve = fixture.strata(&["serve"]);
    serve
        .env("STRATA_MONGO__TOOL_CALL_LOGS_TTL_DAYS", "45")
        .env("STRATA_ADMIN__TOKEN_SHA256", &hash);
    let mut served = common::serve::Served::start(serve, fixture.admin_addr(), fixture.api_addr());
    assert!(
        served.wait_notification("READY=1", Duration::from_secs(60)),
        "serve became ready\n{}",
        served.stderr()
    );
    let after = indexes(db, "tool_call_logs").await;
    let index = named(&after, &ttl_name).expect("same index, same name");
    assert_eq!(as_i64(index.get("expireAfterSeconds")), Some(45 * 86_400));
    assert_eq!(after.len(), before.len(), "no index added or dropped");
    assert_eq!(
        logs.count_documents(doc! {}).await.expect("count"),
        5,
        "documents survive"
    );

    // /admin/status reports what the boot did.
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/admin/status", served.admin))
        .bearer_auth(&token)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let schema = &status["schema"];
    let applied = schema["applied"].as_array().cloned().unwrap_or_default();
    assert_eq!(applied.len(), 1, "{status}");
    assert!(
        applied[0].as_str().unwrap_or("").contains("45 days"),
        "{status}"
    );
    assert_eq!(schema["warnings"], serde_json::json!([]), "{status}");
    served.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_index_is_built_under_its_new_name_before_the_old_is_dropped() {
    let fixture = common::Fixture::new("mongoidx").await;
    let config = fixture.config();
    let stores = fixture.migrated_stores().await;
    let db = stores.mongo.database();
    let mut defs: Vec<CollectionDef> = mongo::definitions().expect("definitions");

    // A later binary defines tenant_activity differently and tightens a
    // validator: the plan builds the new index, then drops the old one.
    let outputs = defs
        .iter_mut()
        .find(|c| c.name == "activity_outputs")
        .expect("activity_outputs");
    let old_name = outputs.indexes[1].full_name();
    outputs.indexes[1].key = doc! { "tenantId": 1, "activityRef": 1, "createdOn": -1 };
    let new_name = outputs.indexes[1].full_name();
    assert_ne!(old_name, new_name);
    let schema = outputs
        .validator
        .get_document_mut("$jsonSchema")
        .expect("$jsonSchema");
    schema
        .get_array_mut("required")
        .expect("required")
        .push(Bson::String("metadata".into()));

    let plan = mongo::plan(db, &defs, &config).await.expect("plan");
    let steps = plan.steps();
    let create = steps
        .iter()
        .position(|s| s.contains(&new_name))
        .expect("create step");
    let drop = steps
        .iter()
        .position(|s| s.starts_with("drop index") && s.contains(&old_name))
        .expect("drop step");
    assert!(create < drop, "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| s.contains("validator of activity_outputs")),
        "{steps:?}"
    );
    assert_eq!(steps.len(), 3, "{steps:?}");

    mongo::apply(db, &plan, &|_| {}).await.expect("apply");
    let now_listed = indexes(db, "activity_outputs").await;
    assert!(named(&now_listed, &new_name).is_some(), "{now_listed:?}");
    assert!(named(&now_listed, &old_name).is_none(), "{now_listed:?}");
    let collections = list(
        db,
        doc! { "listCollections": 1, "filter": { "name": "activity_outputs" } },
    )
    .await;
    let required = collections[0]
        .get_document("options")
        .and_then(|o| o.get_document("validator"))
        .and_then(|v| v.get_document("$jsonSchema"))
        .and_then(|s| s.get_array("required"))
        .expect("required");
    assert!(required.iter().any(|r| r.as_str() == Some("metadata")));
    assert!(
        mongo::plan(db, &defs, &config)
            .await
            .expect("replan")
            .actions
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_skills_text_index_ranks_name_over_description_over_content() {
    let fixture = common::Fixture::new("mongotext").await;
    let stores = fixture.migrated_stores().await;
    let db = stores.mongo.database();
    let skills = db.collection::<Document>("skills");
    let by_name = doc! { "tenantId": "global", "refId": ulid(), "createdOn": now(), "name": "invoice writer", "description": "drafts documents", "content": "writes text" };
    let by_content = doc! { "tenantId": "t1", "refId": ulid(), "createdOn": now(), "name": "mailer", "description": "sends mail", "content": "may attach an invoice" };
    let by_description = doc! { "tenantId": "t1", "refId": ulid(), "createdOn": now(), "name": "archivist", "description": "files every invoice", "content": "keeps boxes" };
    let unrelated = doc! { "tenantId": "t1", "refId": ulid(), "createdOn": now(), "name": "poet", "description": "verses", "content": "roses" };
    skills
        .insert_many([by_content, by_description, by_name, unrelated])
        .await
        .expect("insert skills");
    let mut cursor = skills
        .find(doc! { "$text": { "$search": "invoice" } })
        .projection(doc! { "name": 1, "score": { "$meta": "textScore" } })
        .sort(doc! { "score": { "$meta": "textScore" } })
        .await
        .expect("text search");
    let mut names = Vec::new();
    while cursor.advance().await.expect("advance") {
        let found: Document = cursor.deserialize_current().expect("doc");
        names.push(found.get_str("name").unwrap_or_default().to_string());
    }
    assert_eq!(
        names,
        vec!["invoice writer", "archivist", "mailer"],
        "name outweighs description outweighs content"
    );
}
