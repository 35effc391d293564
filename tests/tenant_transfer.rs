//! `strata tenant export` → `strata tenant import` into empty stores: every
//! row, document and object of the tenant identical (compared by content
//! and checksum), refs kept, states kept (an activity that succeeded, with
//! its output through the split pattern); a corrupted archive is refused
//! and writes nothing.

mod common;

use std::collections::BTreeMap;

use common::api::Api;
use common::{Fixture, run};
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Everything of `tenant_ref` in one fixture's stores, comparable.
async fn snapshot(fixture: &Fixture, tenant_ref: &str) -> BTreeMap<String, String> {
    let stores = fixture.migrated_stores().await;
    let config = fixture.config();
    let mut all = BTreeMap::new();
    let mut tx = stores.postgres.begin_admin().await.expect("admin");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_name = 'tenant_id' \
           AND table_name NOT LIKE 'strata\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("tables");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE ref_id = $1")
        .bind(tenant_ref)
        .fetch_one(&mut *tx)
        .await
        .expect("the tenant");
    all.insert(
        "postgres/tenants".into(),
        sqlx::query_scalar::<_, String>("SELECT row_to_json(t)::text FROM tenants t WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .expect("tenant row"),
    );
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t WHERE tenant_id = $1 ORDER BY 1"
        )))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        all.insert(format!("postgres/{table}"), rows.join("\n"));
    }
    for collection in strata::schema::mongo::definitions().expect("collections") {
        let mut cursor = stores
            .mongo
            .database()
            .collection::<Document>(&collection.name)
            .find(doc! {"tenantId": tenant_ref})
            .sort(doc! {"refId": 1})
            .await
            .expect("find");
        let mut docs = Vec::new();
        while cursor.advance().await.expect("next") {
            let d = cursor.deserialize_current().expect("doc");
            docs.push(Bson::Document(d).into_canonical_extjson().to_string());
        }
        all.insert(format!("mongo/{}", collection.name), docs.join("\n"));
    }
    for bucket in strata::schema::s3::definitions().expect("buckets") {
        let name = config.s3.bucket_name(&bucket.purpose);
        let listed = stores
            .s3
            .client()
            .list_objects_v2()
            .bucket(&name)
            .prefix(format!("{tenant_ref}/"))
            .send()
            .await
            .expect("list");
        for object in listed.contents() {
            let key = object.key().expect("key");
            let body = stores
                .s3
                .client()
                .get_object()
                .bucket(&name)
                .key(key)
                .send()
                .await
                .expect("get")
                .body
                .collect()
                .await
                .expect("bytes")
                .into_bytes();
            all.insert(
                format!("s3/{}/{key}", bucket.purpose),
                hex::encode(Sha256::digest(&body)),
            );
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_into_empty_stores_is_identical_and_corruption_is_refused() {
    let api = Api::start("transfer-src", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let v1 = |rest: &str| format!("/v1/tenants/{tenant}/{rest}");
    // Records in several states, and content through the split pattern.
    let activity = api
        .post(
            &v1("activities"),
            &token,
            json!({"kind": "k", "status": "running"}),
        )
        .await;
    let activity_ref = activity.body["ref"].as_str().expect("ref").to_string();
    let output = api
        .client
        .put(api.url(&v1(&format!("activities/{activity_ref}/output"))))
        .bearer_auth(&token)
        .header("content-type", "text/markdown")
        .body("# Exported\n\nbytes that must come back identical\n")
        .send()
        .await
        .expect("write output");
    assert_eq!(output.status().as_u16(), 201);
    let post = api
        .post(
            &v1("blog-posts"),
            &token,
            json!({"title": "t", "activityRef": activity_ref}),
        )
        .await;
    assert_eq!(post.status, 201, "{post:?}");
    let strategy = api.post(&v1("strategies"), &token, json!({})).await;
    let strategy_ref = strategy.body["ref"].as_str().expect("ref");
    for to in ["pending_approval", "approved", "active"] {
        let moved = api
            .post(
                &v1(&format!("strategies/{strategy_ref}/transitions")),
                &token,
                json!({"to": to}),
            )
            .await;
        assert_eq!(moved.status, 200, "{moved:?}");
    }
    // The audit diffs of these writes reach MongoDB first (the outbox
    // drains within a second), so the source stands still for the snapshot.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut tx = api.pg.begin_admin().await.expect("admin");
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_outbox")
            .fetch_one(&mut *tx)
            .await
            .expect("outbox");
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox never drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let source = snapshot(&api.fixture, &tenant).await;
    assert!(
        source
            .get("mongo/entity_diffs")
            .is_some_and(|d| !d.is_empty()),
        "the audit trail is part of the export"
    );
    assert!(
        source.keys().any(|k| k.starts_with("s3/content/")),
        "{source:?}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("acme.tar");
    let (code, out, err) = run(api.fixture.strata(&[
        "tenant",
        "export",
        &tenant,
        "--output",
        archive.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, Some(0), "{out}\n{err}");

    // Into empty stores (another database, MongoDB database and buckets).
    let target = Fixture::new("transfer-dst").await;
    target.migrated_stores().await;
    let (code, out, err) =
        run(target.strata(&["tenant", "import", archive.to_str().expect("utf-8")]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let imported = snapshot(&target, &tenant).await;
    assert_eq!(imported, source, "the import differs from the source");

    // Importing the same tenant again is refused.
    let (code, _, err) =
        run(target.strata(&["tenant", "import", archive.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already exists"), "{err}");

    // A corrupted archive (one byte of the output changed) is refused
    // before anything is written.
    let mut bytes = std::fs::read(&archive).expect("read archive");
    let at = bytes
        .windows(b"bytes that must come back".len())
        .position(|w| w == b"bytes that must come back")
        .expect("the output's bytes in the archive");
    bytes[at] ^= 0x20;
    let corrupted = dir.path().join("corrupted.tar");
    std::fs::write(&corrupted, &bytes).expect("write");
    let empty = Fixture::new("transfer-bad").await;
    let stores = empty.migrated_stores().await;
    let (code, _, err) =
        run(empty.strata(&["tenant", "import", corrupted.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sha256"), "{err}");
    let mut tx = stores.postgres.begin_admin().await.expect("admin");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(tenants, 0, "nothing written");
}
