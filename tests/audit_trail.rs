//! The audit trail against the real servers: every change of an activity
//! leaves one diff in MongoDB's entity_diffs through the PostgreSQL outbox
//! (migration 0007); history pages; another tenant gets 404; a rolled-back
//! change leaves nothing; the outbox is append-only for tenants; a repeated
//! drain inserts nothing twice; and `strata serve` killed with SIGKILL at
//! random points under concurrent writes loses no committed change's diff.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::api::{Api, assert_problem};
use common::serve::Served;
use mongodb::bson::{Bson, Document, doc};
use reqwest::Method;
use serde_json::{Value, json};
use strata::audit::{self, Action, Change, Diff, Entity, drain};
use strata::records::admin::{self, TokenScope};
use strata::stores::postgres::Postgres;

/// Hang detectors, not timing assertions.
const DRAINED: Duration = Duration::from_secs(60);
const BOOT: Duration = Duration::from_secs(120);

/// Polls `probe` until it yields a value; fails after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mongo(api_or_db: &str) -> mongodb::Collection<Document> {
    mongodb::Client::with_uri_str(&common::deps().mongo_url)
        .await
        .expect("mongo client")
        .database(api_or_db)
        .collection(drain::COLLECTION)
}

/// Every diff of `entity_ref`, oldest first.
async fn diffs_of(diffs: &mongodb::Collection<Document>, entity_ref: &str) -> Vec<Document> {
    let mut cursor = diffs
        .find(doc! { "entityRef": entity_ref })
        .sort(doc! { "refId": 1 })
        .await
        .expect("find diffs");
    let mut all = Vec::new();
    while cursor.advance().await.expect("next diff") {
        all.push(cursor.deserialize_current().expect("a document"));
    }
    all
}

/// The outbox rows a tenant's transaction sees.
async fn count(pg: &Postgres, tx: &mut strata::records::Tx) -> i64 {
    pg.query_as::<(i64,)>("SELECT count(*) FROM audit_outbox")
        .fetch_one(&mut **tx)
        .await
        .expect("count")
        .0
}

async fn outbox_rows(pg: &Postgres) -> i64 {
    drain::backlog(pg).await.expect("backlog").rows
}

/// Waits until the outbox is empty (every committed diff is in MongoDB).
async fn wait_drained(pg: &Postgres) {
    eventually("the outbox drained", DRAINED, || async {
        (outbox_rows(pg).await == 0).then_some(())
    })
    .await;
}

/// A service token with a name of our choosing (the diffs' actor).
async fn named_token(pg: &Postgres, tenant: Option<&str>, name: &str) -> String {
    let (secret, _) = strata::api::auth::new_token().expect("random token");
    let scope = match tenant {
        Some(t) => TokenScope::Tenant(t.to_string()),
        None => TokenScope::AllTenants,
    };
    admin::create_token(pg, &secret, name, &scope, None)
        .await
        .expect("create token");
    secret
}

fn diff_side<'d>(document: &'d Document, side: &str) -> Option<&'d Document> {
    document
        .get_document("diff")
        .expect("diff")
        .get_document(side)
        .ok()
}

fn keys(side: Option<&Document>) -> Vec<String> {
    let mut keys: Vec<String> = side
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn is_ulid(text: &str) -> bool {
    text.parse::<ulid::Ulid>()
        .is_ok_and(|u| u.to_string() == text)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_leaves_one_diff_and_history_reads_them() {
    let api = Api::start("audit-act", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = named_token(&api.pg, Some(&tenant), "audit-writer").await;
    let diffs = mongo(&api.fixture.mongo_database).await;
    let base = format!("/v1/tenants/{tenant}/activities");

    let created = api.post(&base, &token, json!({"kind": "blog"})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let acked = Instant::now();
    let record = created.body["ref"].as_str().expect("ref").to_string();
    let one = format!("{base}/{record}");
    eventually("the create's diff in MongoDB", DRAINED, || async {
        (diffs_of(&diffs, &record).await.len() == 1).then_some(())
    })
    .await;
    eprintln!(
        "commit → diff visible in MongoDB: {:?} (drainer poll {:?})",
        acked.elapsed(),
        drain::POLL
    );

    let etag = created.header("etag").expect("etag").to_string();
    let updated = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"kind": "blog-post"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    let moved = api
        .post(
            &format!("{one}/transitions"),
            &token,
            json!({"to": "running"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    // A move to the current state changes nothing: no diff.
    let same = api
        .post(
            &format!("{one}/transitions"),
            &token,
            json!({"to": "running"}),
        )
        .await;
    assert_eq!(same.status, 200, "{same:?}");
    let deleted = api
        .call(Method::DELETE, &one, Some(&token), None, &[])
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");

    // Read-your-writes: the history has every change at once, drained or not.
    let history = api.get(&format!("{one}/history"), &token).await;
    assert_eq!(history.status, 200, "{history:?}");
    let actions: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["delete", "transition", "update", "create"]);
    assert!(history.body.get("next").is_none_or(Value::is_null));

    wait_drained(&api.pg).await;
    let stored = diffs_of(&diffs, &record).await;
    let actions: Vec<&str> = stored
        .iter()
        .map(|d| d.get_str("action").expect("action"))
        .collect();
    assert_eq!(actions, ["create", "update", "transition", "delete"]);
    for d in &stored {
        assert_eq!(d.get_str("tenantId"), Ok(tenant.as_str()), "{d}");
        assert_eq!(d.get_str("entity"), Ok("activities"), "{d}");
        assert_eq!(d.get_str("actor"), Ok("audit-writer"), "{d}");
        assert!(is_ulid(d.get_str("refId").expect("refId")), "{d}");
        assert!(d.get_datetime("createdOn").is_ok(), "{d}");
    }
    let [create, update, transition, delete] = &stored[..] else {
        unreachable!("four diffs")
    };
    // create: the whole view after, nothing before.
    assert_eq!(
        create.get_document("diff").expect("diff").get("before"),
        Some(&Bson::Null)
    );
    let after = diff_side(create, "after").expect("after");
    assert_eq!(after.get_str("ref"), Ok(record.as_str()));
    assert_eq!(after.get_str("kind"), Ok("blog"));
    assert_eq!(after.get_str("status"), Ok("queued"));
    assert!(after.contains_key("createdAt") && !after.contains_key("tenantId"));
    // update: only what changed (and when).
    assert_eq!(keys(diff_side(update, "before")), ["kind", "updatedAt"]);
    assert_eq!(keys(diff_side(update, "after")), ["kind", "updatedAt"]);
    assert_eq!(
        diff_side(update, "before").and_then(|d| d.get_str("kind").ok()),
        Some("blog")
    );
    assert_eq!(
        diff_side(update, "after").and_then(|d| d.get_str("kind").ok()),
        Some("blog-post")
    );
    // transition: the status (and what moves with it), not the kind.
    assert_eq!(
        keys(diff_side(transition, "after")),
        ["startedAt", "status", "updatedAt"]
    );
    assert_eq!(
        diff_side(transition, "before").and_then(|d| d.get_str("status").ok()),
        Some("queued")
    );
    assert_eq!(
        diff_side(transition, "after").and_then(|d| d.get_str("status").ok()),
        Some("running")
    );
    // delete: the whole view before, nothing after.
    let before = diff_side(delete, "before").expect("before");
    assert_eq!(before.get_str("kind"), Ok("blog-post"));
    assert_eq!(before.get_str("status"), Ok("running"));
    assert_eq!(
        delete.get_document("diff").expect("diff").get("after"),
        Some(&Bson::Null)
    );

    // The history of the (deleted) record, now all from MongoDB, in the
    // API's form: the same diffs, newest first.
    let history = api.get(&format!("{one}/history"), &token).await;
    assert_eq!(history.status, 200, "{history:?}");
    let items = history.body["items"].as_array().expect("items");
    let refs: Vec<&str> = items
        .iter()
        .map(|i| i["ref"].as_str().expect("ref"))
        .collect();
    let mut expected: Vec<&str> = stored
        .iter()
        .map(|d| d.get_str("refId").expect("refId"))
        .collect();
    expected.reverse();
    assert_eq!(refs, expected);
    assert_eq!(items[3]["before"], Value::Null);
    assert_eq!(items[3]["after"]["kind"], "blog");
    assert_eq!(
        items[2]["before"],
        json!({"kind": "blog", "updatedAt": items[2]["before"]["updatedAt"]})
    );
    assert_eq!(items[0]["after"], Value::Null);
    assert_eq!(items[0]["actor"], "audit-writer");
    assert!(
        items[0]["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{items:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_newest_first_and_refuses_other_tenants() {
    let api = Api::start("audit-page", &[]).await;
    let tenant = api.tenant("acme").await;
    let other = api.tenant("other").await;
    let token = named_token(&api.pg, Some(&tenant), "writer").await;
    let other_token = named_token(&api.pg, Some(&other), "intruder").await;
    let platform = named_token(&api.pg, None, "platform").await;
    let base = format!("/v1/tenants/{tenant}/activities");

    let created = api.post(&base, &token, json!({"kind": "k0"})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let record = created.body["ref"].as_str().expect("ref").to_string();
    let one = format!("{base}/{record}");
    for i in 1..10 {
        let reply = api
            .call(
                Method::PATCH,
                &one,
                Some(&token),
                Some(&json!({"kind": format!("k{i}")})),
                &[("if-match", "*")],
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    // Pages of 3: 3 + 3 + 3 + 1, newest first, each diff once. Read at
    // once (partly from the outbox), then again once all is in MongoDB.
    let read_all = || async {
        let mut kinds = Vec::new();
        let mut refs = Vec::new();
        let mut sizes = Vec::new();
        let mut path = format!("{one}/history?limit=3");
        loop {
            let page = api.get(&path, &token).await;
            assert_eq!(page.status, 200, "{page:?}");
            let items = page.body["items"].as_array().expect("items").clone();
            sizes.push(items.len());
            for item in &items {
                refs.push(item["ref"].as_str().expect("ref").to_string());
                kinds.push(item["after"]["kind"].as_str().expect("kind").to_string());
            }
            match page.body["next"].as_str() {
                Some(next) => path = format!("{one}/history?limit=3&cursor={next}"),
                None => break,
            }
        }
        (sizes, refs, kinds)
    };
    let (sizes, refs, kinds) = read_all().await;
    assert_eq!(sizes, [3, 3, 3, 1]);
    let expected: Vec<String> = (0..10).rev().map(|i| format!("k{i}")).collect();
    assert_eq!(kinds, expected, "newest first");
    let mut sorted = refs.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(refs, sorted, "refs descending, none twice");
    wait_drained(&api.pg).await;
    assert_eq!(
        read_all().await,
        (sizes, refs, kinds),
        "the same from MongoDB"
    );

    // Paging parameters are checked.
    for bad in ["limit=0", "limit=201", "cursor=nope"] {
        assert_problem(
            &api.get(&format!("{one}/history?{bad}"), &token).await,
            422,
            "validation_failed",
        );
    }
    // No such record, a malformed ref, no token.
    let unknown = ulid::Ulid::generate().to_string();
    assert_problem(
        &api.get(&format!("{base}/{unknown}/history"), &token).await,
        404,
        "not_found",
    );
    assert_problem(
        &api.get(&format!("{base}/nope/history"), &token).await,
        400,
        "invalid_ref",
    );
    let anonymous = api
        .call(Method::GET, &format!("{one}/history"), None, None, &[])
        .await;
    assert_problem(&anonymous, 401, "unauthorized");

    // Another tenant: its token on our path, our ref under its path, and a
    // platform token under the wrong tenant: 404, and nothing of ours.
    for (path, token) in [
        (format!("{one}/history"), &other_token),
        (
            format!("/v1/tenants/{other}/activities/{record}/history"),
            &other_token,
        ),
        (
            format!("/v1/tenants/{other}/activities/{record}/history"),
            &platform,
        ),
    ] {
        let reply = api.get(&path, token).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert!(!reply.text.contains("k0") && !reply.text.contains("writer"));
    }
    // The platform token under the right tenant reads it.
    let allowed = api.get(&format!("{one}/history?limit=1"), &platform).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.body["items"][0]["after"]["kind"], "k9");

    // The route is in the served document.
    let document = api.get("/v1/openapi.json", &token).await;
    assert!(
        document.body["paths"]["/v1/tenants/{tenantRef}/activities/{ref}/history"]["get"]
            .is_object(),
        "history is documented"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_and_rolled_back_changes_leave_no_diff() {
    let api = Api::start("audit-rollback", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = named_token(&api.pg, Some(&tenant), "writer").await;
    let diffs = mongo(&api.fixture.mongo_database).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let created = api.post(&base, &token, json!({"kind": "blog"})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let record = created.body["ref"].as_str().expect("ref").to_string();
    let one = format!("{base}/{record}");

    // Refused requests: an illegal transition, a stale If-Match, a bad body.
    let illegal = api
        .post(
            &format!("{one}/transitions"),
            &token,
            json!({"to": "succeeded"}),
        )
        .await;
    assert_problem(&illegal, 409, "illegal_transition");
    let stale = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"kind": "x"})),
            &[("if-match", "\"0000\"")],
        )
        .await;
    assert_problem(&stale, 412, "precondition_failed");
    let invalid = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"kind": ""})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&invalid, 422, "validation_failed");

    // A change rolled back after its diff was appended: record a diff for
    // another ref in a tenant transaction and roll it back.
    let (tenant_id,) = {
        let mut tx = api.pg.begin_admin().await.expect("admin");
        let row: (uuid::Uuid,) = api
            .pg
            .query_as("SELECT id FROM tenants WHERE ref_id = $1")
            .bind(&tenant)
            .fetch_one(&mut *tx)
            .await
            .expect("tenant id");
        tx.commit().await.expect("commit");
        row
    };
    let ghost = ulid::Ulid::generate().to_string();
    let mut tx = api.pg.begin_tenant(tenant_id).await.expect("tenant tx");
    audit::record(
        &mut tx,
        &Change {
            tenant_id,
            entity: Entity::ACTIVITIES,
            entity_ref: ghost.clone(),
            action: Action::Create,
            actor: "writer".into(),
            diff: Diff::created(&json!({"ref": ghost, "kind": "ghost"})).expect("diff"),
        },
    )
    .await
    .expect("append");
    tx.rollback().await.expect("rollback");

    // A barrier: a later change; once its diff is in MongoDB and the outbox
    // is empty, anything committed before it is there too.
    let barrier = api
        .post(
            &format!("{one}/transitions"),
            &token,
            json!({"to": "running"}),
        )
        .await;
    assert_eq!(barrier.status, 200, "{barrier:?}");
    wait_drained(&api.pg).await;
    let stored = diffs_of(&diffs, &record).await;
    let actions: Vec<&str> = stored
        .iter()
        .map(|d| d.get_str("action").expect("action"))
        .collect();
    assert_eq!(actions, ["create", "transition"], "{stored:?}");
    assert!(diffs_of(&diffs, &ghost).await.is_empty(), "rolled back");
    assert_eq!(
        diffs.count_documents(doc! {}).await.expect("count"),
        2,
        "nothing else"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_is_append_only_for_tenants_and_drains_idempotently() {
    // No `serve`: no drainer but the passes this test makes.
    let fixture = common::Fixture::new("audit-outbox").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (a, a_ref) = common::create_tenant(pg, "a").await;
    let (b, _) = common::create_tenant(pg, "b").await;
    let change = |tenant_id, entity_ref: &str| Change {
        tenant_id,
        entity: Entity::ACTIVITIES,
        entity_ref: entity_ref.to_string(),
        action: Action::Update,
        actor: "writer".into(),
        diff: Diff::changed(&json!({"kind": "x"}), &json!({"kind": "y"})).expect("diff"),
    };
    let first = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_tenant(a).await.expect("tenant a");
    audit::record(&mut tx, &change(a, &first))
        .await
        .expect("append");
    tx.commit().await.expect("commit");

    // Tenant b sees none of a's pending rows; a cannot change or remove its
    // own, nor append for b.
    let mut tx = pg.begin_tenant(b).await.expect("tenant b");
    assert_eq!(count(pg, &mut tx).await, 0);
    tx.rollback().await.expect("rollback");
    let mut tx = pg.begin_tenant(a).await.expect("tenant a");
    assert_eq!(count(pg, &mut tx).await, 1);
    for statement in [
        "DELETE FROM audit_outbox",
        "UPDATE audit_outbox SET actor = 'someone else'",
    ] {
        let changed = pg
            .query(statement)
            .execute(&mut *tx)
            .await
            .expect(statement)
            .rows_affected();
        assert_eq!(changed, 0, "{statement}");
    }
    let foreign = audit::record(&mut tx, &change(b, &first)).await;
    assert!(
        matches!(foreign, Err(strata::records::RecordError::Store(ref m)) if m.contains("42501")),
        "{foreign:?}"
    );
    tx.rollback().await.expect("rollback");

    // A crash between the MongoDB insert and the outbox delete, replayed:
    // the document is already there; the next pass inserts nothing twice.
    let diffs = stores
        .mongo
        .database()
        .collection::<Document>(drain::COLLECTION);
    let mut tx = pg.begin_admin().await.expect("admin");
    let (seq, ms): (i64, i64) = pg
        .query_as(
            "SELECT seq, floor(extract(epoch FROM created_on) * 1000)::int8 FROM audit_outbox",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("row");
    tx.commit().await.expect("commit");
    let ref_id = audit::diff_ref(ms, seq).to_string();
    diffs
        .insert_one(doc! {
            "tenantId": &a_ref, "refId": &ref_id,
            "createdOn": mongodb::bson::DateTime::from_millis(ms),
            "entity": "activities", "entityRef": &first, "action": "update",
            "actor": "writer", "diff": { "before": { "kind": "x" }, "after": { "kind": "y" } },
        })
        .await
        .expect("the first attempt's insert");
    let second = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_tenant(a).await.expect("tenant a");
    audit::record(&mut tx, &change(a, &second))
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    assert_eq!(
        drain::drain_once(pg, &stores.mongo).await.expect("drain"),
        2
    );
    assert_eq!(
        drain::drain_once(pg, &stores.mongo).await.expect("drain"),
        0
    );
    assert_eq!(outbox_rows(pg).await, 0);
    assert_eq!(
        diffs
            .count_documents(doc! { "refId": &ref_id })
            .await
            .expect("count"),
        1
    );
    let stored = diffs_of(&diffs, &second).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].get_str("tenantId"), Ok(a_ref.as_str()));
    assert_eq!(diffs.count_documents(doc! {}).await.expect("count"), 2);
    stores.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_go_on_while_mongodb_is_down_and_their_diffs_follow() {
    // MongoDB reached through a relay that the test closes and reopens.
    let url = url::Url::parse(&common::deps().mongo_url).expect("mongo url");
    let target =
        std::net::SocketAddr::from(([127, 0, 0, 1], url.port_or_known_default().expect("port")));
    let mut relay = common::relay::Relay::new(target);
    relay.start().await;
    let mut through = url.clone();
    through.set_port(Some(relay.port)).expect("port");
    // Talk to this address only, not to the members the server lists.
    through
        .query_pairs_mut()
        .append_pair("directConnection", "true");
    let api = Api::start("audit-outage", &[("STRATA_MONGO__URL", through.as_str())]).await;
    let tenant = api.tenant("acme").await;
    let token = named_token(&api.pg, Some(&tenant), "writer").await;
    let diffs = mongo(&api.fixture.mongo_database).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let created = api.post(&base, &token, json!({"kind": "blog"})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let record = created.body["ref"].as_str().expect("ref").to_string();
    let one = format!("{base}/{record}");
    wait_drained(&api.pg).await;

    // MongoDB gone: writes still succeed (they only touch PostgreSQL) and
    // their diffs wait in the outbox.
    relay.stop().await;
    for i in 0..5 {
        let reply = api
            .call(
                Method::PATCH,
                &one,
                Some(&token),
                Some(&json!({"kind": format!("k{i}")})),
                &[("if-match", "*")],
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let backlog = drain::backlog(&api.pg).await.expect("backlog");
    assert_eq!(backlog.rows, 5, "{backlog:?}");
    assert!(backlog.oldest_age.is_some(), "{backlog:?}");

    // Back: the drainer catches up.
    relay.start().await;
    let back = Instant::now();
    wait_drained(&api.pg).await;
    eprintln!("MongoDB back → outbox drained in {:?}", back.elapsed());
    let stored = diffs_of(&diffs, &record).await;
    let kinds: Vec<&str> = stored
        .iter()
        .filter_map(|d| diff_side(d, "after").and_then(|a| a.get_str("kind").ok()))
        .collect();
    assert_eq!(kinds, ["blog", "k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(
        drain::backlog(&api.pg).await.expect("backlog"),
        drain::Backlog {
            rows: 0,
            oldest_age: None
        }
    );
}

/// The steps every worker takes with a record, one request each; a step
/// is tried only after the previous one was acknowledged.
const STEPS: [&str; 6] = [
    "create",
    "update u1",
    "transition running",
    "update u2",
    "transition succeeded",
    "delete",
];

/// Which step a stored diff is (by action and what it changed).
fn step_of(document: &Document) -> usize {
    let after = |field: &str| diff_side(document, "after").and_then(|d| d.get_str(field).ok());
    match (
        document.get_str("action").expect("action"),
        after("kind"),
        after("status"),
    ) {
        ("create", ..) => 0,
        ("update", Some("u1"), _) => 1,
        ("transition", _, Some("running")) => 2,
        ("update", Some("u2"), _) => 3,
        ("transition", _, Some("succeeded")) => 4,
        ("delete", ..) => 5,
        other => panic!("a diff no worker made: {other:?} {document}"),
    }
}

/// The last step a record's row shows committed.
fn last_step(kind: &str, status: &str, deleted: bool) -> usize {
    match (kind, status, deleted) {
        (_, _, true) => 5,
        (_, "succeeded", _) => 4,
        ("u2", "running", _) => 3,
        ("u1", "running", _) => 2,
        ("u1", "queued", _) => 1,
        ("blog", "queued", _) => 0,
        other => panic!("a row no worker made: {other:?}"),
    }
}

#[derive(Default)]
struct Ledger {
    /// (record, step) acknowledged with a 2xx.
    acked: HashSet<(String, usize)>,
}

/// One worker: records through all steps, concurrently with the others,
/// while strata is killed and restarted under it.
async fn worker(
    client: reqwest::Client,
    base: String,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    counters: Vec<Arc<AtomicUsize>>,
    running: Arc<AtomicBool>,
) {
    let mut current: Option<(String, usize)> = None;
    while running.load(Ordering::Relaxed) {
        let (record, step) = match &current {
            None => (None, 0),
            Some((r, s)) => (Some(r.clone()), s + 1),
        };
        let one = |r: &Option<String>| format!("{base}/{}", r.as_deref().unwrap_or_default());
        let request = match step {
            0 => client.post(&base).json(&json!({"kind": "blog"})),
            1 | 3 => client
                .patch(one(&record))
                .header("if-match", "*")
                .json(&json!({"kind": if step == 1 { "u1" } else { "u2" }})),
            2 | 4 => client
                .post(format!("{}/transitions", one(&record)))
                .json(&json!({"to": if step == 2 { "running" } else { "succeeded" }})),
            _ => client.delete(one(&record)),
        };
        let reply = request.bearer_auth(&token).send().await;
        let ok = match reply {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                Some(body)
            }
            _ => None,
        };
        match ok {
            Some(body) => {
                let record = match record {
                    Some(r) => r,
                    None => match body["ref"].as_str() {
                        Some(r) => r.to_string(),
                        None => {
                            current = None;
                            continue;
                        }
                    },
                };
                ledger
                    .lock()
                    .expect("ledger")
                    .acked
                    .insert((record.clone(), step));
                for counter in &counters {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                current = (step < 5).then_some((record, step));
            }
            None => {
                // Unknown outcome (killed mid-request, or refused while it
                // restarts): leave this record where it is.
                current = None;
                // Pacing while strata restarts, not synchronisation.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// xorshift64*: where the kills land, replayable.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("STRATA_TEST_AUDIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("kill seed: STRATA_TEST_AUDIT_SEED={seed}");
        Rng(seed)
    }

    /// Uniform in [low, high].
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        low + r % (high - low + 1)
    }
}

const WORKERS: usize = 8;
const KILLS: usize = 8;
const MIN_ACKED: usize = 300;

#[tokio::test(flavor = "multi_thread")]
async fn killed_with_sigkill_under_writes_no_committed_change_loses_its_diff() {
    let started = Instant::now();
    let mut rng = Rng::from_env();
    let mut api = Api::start("audit-kill", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = named_token(&api.pg, Some(&tenant), "kill-writer").await;
    // A second instance that is never killed: both drain the same outbox,
    // and it drains what the killed one committed.
    let steady_addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (steady_api, steady_admin) = (
        steady_addr(common::free_port()),
        steady_addr(common::free_port()),
    );
    let mut command = api.fixture.strata(&["serve"]);
    command
        .env("STRATA_API__LISTEN", steady_api.to_string())
        .env("STRATA_ADMIN__LISTEN", steady_admin.to_string());
    let mut steady = Served::start(command, steady_admin, steady_api);
    assert!(
        steady.wait_notification("READY=1", BOOT),
        "the second strata serve did not start:\n{}",
        steady.stderr()
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // All acknowledged changes, and those acknowledged by the killed instance.
    let acked = Arc::new(AtomicUsize::new(0));
    let acked_by_victim = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            // Three of four workers on the instance that is killed.
            let (server, counters) = if i % 4 == 3 {
                (&steady.api, vec![acked.clone()])
            } else {
                (
                    &api.served.api,
                    vec![acked.clone(), acked_by_victim.clone()],
                )
            };
            tokio::spawn(worker(
                client.clone(),
                format!("{server}/v1/tenants/{tenant}/activities"),
                token.clone(),
                ledger.clone(),
                counters,
                running.clone(),
            ))
        })
        .collect();

    let mut acked_at_kill = Vec::new();
    // Diffs committed but not yet in MongoDB when strata died.
    let mut pending_at_kill = Vec::new();
    for _ in 0..KILLS {
        // A random point while changes commit: the choice of the moment,
        // not a wait for anything.
        // A random point among commits: after 10-60 more acknowledged
        // changes (a condition polled with a deadline), then 0-30 ms more.
        let target = acked_by_victim.load(Ordering::Relaxed) + rng.between(10, 60) as usize;
        eventually("changes acknowledged before a kill", BOOT, || {
            let n = acked_by_victim.load(Ordering::Relaxed);
            async move { (n >= target).then_some(()) }
        })
        .await;
        // Where the kill lands, not a wait for anything.
        tokio::time::sleep(Duration::from_millis(rng.between(0, 30))).await;
        api.served.child.kill().expect("SIGKILL strata");
        api.served.child.wait().expect("reap strata");
        acked_at_kill.push(acked_by_victim.load(Ordering::Relaxed));
        pending_at_kill.push(outbox_rows(&api.pg).await);
        let mut served = Served::start(
            api.fixture.strata(&["serve"]),
            api.fixture.admin_addr(),
            api.fixture.api_addr(),
        );
        assert!(
            served.wait_notification("READY=1", BOOT),
            "strata serve did not restart:\n{}",
            served.stderr()
        );
        api.served = served;
    }
    eventually(
        "enough acknowledged changes",
        Duration::from_secs(120),
        || {
            let n = acked.load(Ordering::Relaxed);
            async move { (n >= MIN_ACKED).then_some(()) }
        },
    )
    .await;
    running.store(false, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let load_done = Instant::now();
    wait_drained(&api.pg).await;
    eprintln!(
        "{} changes acknowledged ({:?} by the killed instance at its {KILLS} kills, outbox rows \
         left by each kill {:?}), outbox drained {:?} after the load stopped; whole test {:?}",
        acked.load(Ordering::Relaxed),
        acked_at_kill,
        pending_at_kill,
        load_done.elapsed(),
        started.elapsed()
    );
    assert!(
        acked_at_kill.windows(2).any(|w| w[1] > w[0]),
        "changes were acknowledged between kills: {acked_at_kill:?}"
    );

    // Every record row (deleted or not) and how far it got.
    let mut tx = api.pg.begin_admin().await.expect("admin");
    let rows: Vec<(String, String, String, bool)> = api
        .pg
        .query_as(
            "SELECT a.ref_id::text, a.kind, a.status, a.deleted_on IS NOT NULL \
             FROM activities a JOIN tenants t ON t.id = a.tenant_id WHERE t.ref_id = $1",
        )
        .bind(&tenant)
        .fetch_all(&mut *tx)
        .await
        .expect("rows");
    tx.commit().await.expect("commit");
    let committed: HashMap<String, usize> = rows
        .iter()
        .map(|(r, kind, status, deleted)| (r.clone(), last_step(kind, status, *deleted)))
        .collect();

    // Every diff, by record and step.
    let diffs = mongo(&api.fixture.mongo_database).await;
    let mut cursor = diffs.find(doc! {}).await.expect("find");
    let mut stored: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut total = 0;
    while cursor.advance().await.expect("next") {
        let document = cursor.deserialize_current().expect("document");
        assert_eq!(document.get_str("tenantId"), Ok(tenant.as_str()));
        assert_eq!(document.get_str("actor"), Ok("kill-writer"));
        stored
            .entry(
                document
                    .get_str("entityRef")
                    .expect("entityRef")
                    .to_string(),
            )
            .or_default()
            .push(step_of(&document));
        total += 1;
    }

    // Diffs only for records that exist...
    for record in stored.keys() {
        assert!(
            committed.contains_key(record),
            "a diff of no record: {record}"
        );
    }
    // ...and every committed change of every record has exactly one diff,
    // acknowledged or not; none for a change that did not commit.
    for (record, last) in &committed {
        let mut steps = stored.get(record).cloned().unwrap_or_default();
        steps.sort();
        let expected: Vec<usize> = (0..=*last).collect();
        assert_eq!(
            steps, expected,
            "record {record}: committed through {:?}, diffs {steps:?}",
            STEPS[*last]
        );
    }
    // Every acknowledged change committed (so it has its diff, above).
    let ledger = ledger.lock().expect("ledger");
    for (record, step) in &ledger.acked {
        let last = committed
            .get(record)
            .unwrap_or_else(|| panic!("acknowledged {:?} of {record}: no row", STEPS[*step]));
        assert!(
            step <= last,
            "acknowledged {:?} of {record}, row at {:?}",
            STEPS[*step],
            STEPS[*last]
        );
    }
    assert!(ledger.acked.len() >= MIN_ACKED);
    assert!(total >= ledger.acked.len(), "{total} diffs");

    // Both instances stop in order, drainers included.
    for served in [steady, api.served] {
        let stderr = served.stderr();
        assert_eq!(served.stop(), Some(0), "{stderr}");
    }
}
