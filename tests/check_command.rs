//! `strata check` on healthy stores: every check listed, schema drift
//! reported as pending until `migrate`, then all OK; `--json` for machines.

mod common;

use common::{Fixture, run};

fn check_json(fixture: &Fixture) -> (Option<i32>, serde_json::Value) {
    let (code, stdout, stderr) = run(fixture.strata(&["check", "--json"]));
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, report)
}

fn outcomes<'a>(report: &'a serde_json::Value, component: &str) -> Vec<(&'a str, &'a str)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["component"] == component)
        .map(|c| {
            (
                c["check"].as_str().unwrap_or(""),
                c["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

#[tokio::test]
async fn check_reports_drift_until_migrate_then_passes() {
    let fixture = Fixture::new("check").await;

    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(1), "pending schema changes exit 1: {report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 1);
    for (dependency, expected) in [
        (
            "postgres",
            &[
                "reachable",
                "version",
                "serving_role",
                "direct",
                "privileges",
            ][..],
        ),
        ("mongo", &["reachable", "version", "privileges"]),
        ("s3", &["reachable", "object_lock"]),
    ] {
        let seen = outcomes(&report, dependency);
        for check in expected {
            assert!(
                seen.contains(&(*check, "ok")),
                "{dependency} {check}: {report}"
            );
        }
        assert!(
            seen.contains(&("schema", "pending")),
            "{dependency} drift: {report}"
        );
    }

    let (code, stdout, stderr) = run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    for store in ["postgres", "mongo", "s3"] {
        assert!(
            outcomes(&report, store).contains(&("schema", "ok")),
            "{store}: {report}"
        );
    }
    let failed: Vec<_> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] == "fail" || c["outcome"] == "pending")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    // The text form: one line per check, each starting with its outcome.
    let (code, stdout, _) = run(fixture.strata(&["check"]));
    assert_eq!(code, Some(0));
    assert!(stdout.lines().count() >= 10, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| ["OK", "WARN"].iter().any(|t| l.starts_with(t))),
        "{stdout}"
    );
}

/// MongoDB 6.x boots but is past its end of life: `check` says so; 7.0 and
/// later do not get the warning. The expectation follows the version the
/// server itself reports, so it holds for any STRATA_TEST_MONGO_URL.
#[tokio::test]
async fn check_warns_about_a_mongodb_below_the_supported_version() {
    let fixture = Fixture::new("checkmongo").await;
    let client = mongodb::Client::with_uri_str(&common::deps().mongo_url)
        .await
        .expect("mongo client");
    let build_info = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "buildInfo": 1 })
        .await
        .expect("buildInfo");
    let version = build_info.get_str("version").expect("version").to_string();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("a numeric major version");

    let (_, report) = check_json(&fixture);
    let mongo: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["component"] == "mongo")
        .collect();
    assert!(
        mongo.iter().any(|c| c["check"] == "version"
            && c["outcome"] == "ok"
            && c["detail"].as_str().unwrap_or("").contains(&version)),
        "{report}"
    );
    let eol: Vec<_> = mongo
        .iter()
        .filter(|c| {
            c["outcome"] == "warn" && c["detail"].as_str().unwrap_or("").contains("end of life")
        })
        .collect();
    if major < 7 {
        assert_eq!(eol.len(), 1, "MongoDB {version} is warned about: {report}");
        let detail = eol[0]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(&version) && detail.contains("7.0 is the supported target"),
            "{detail}"
        );
    } else {
        assert!(eol.is_empty(), "MongoDB {version} is supported: {report}");
    }
}

/// What a store holds, as far as the schema goes: enough to see a write.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    buckets: Vec<String>,
    /// Per collection: options (validator), indexes, document count.
    collections: Vec<(String, String, String, u64)>,
    /// Rows of strata_schema_history (None: no such table yet).
    history_rows: Option<i64>,
    /// Every relation outside the system schemas, with kind and grants.
    relations: String,
}

async fn snapshot(fixture: &Fixture, stores: &strata::stores::Stores) -> Snapshot {
    use mongodb::bson::{Bson, Document, doc};
    use sqlx::Connection;
    use strata::schema::mongo::canonical;

    let listed = stores
        .s3
        .client()
        .list_buckets()
        .send()
        .await
        .expect("list buckets");
    let prefix = format!("{}-", fixture.bucket_prefix);
    let mut buckets: Vec<String> = listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    buckets.sort();

    let db = stores.mongo.database();
    let all = |command: Document| async move {
        let mut cursor = db.run_cursor_command(command).await.expect("cursor");
        let mut out = Vec::new();
        while cursor.advance().await.expect("advance") {
            out.push(cursor.deserialize_current().expect("document"));
        }
        out
    };
    let mut collections = Vec::new();
    for listed in all(doc! { "listCollections": 1 }).await {
        let name = listed.get_str("name").expect("name").to_string();
        let options = canonical(&Bson::Document(
            listed.get_document("options").cloned().unwrap_or_default(),
        ));
        let indexes: Vec<String> = all(doc! { "listIndexes": &name })
            .await
            .into_iter()
            .map(|i| canonical(&Bson::Document(i)))
            .collect();
        let count = db
            .collection::<Document>(&name)
            .count_documents(doc! {})
            .await
            .expect("count");
        collections.push((name, options, indexes.join(";"), count));
    }
    collections.sort();

    let mut pg = sqlx::PgConnection::connect(&fixture.superuser_url())
        .await
        .expect("connect");
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('strata_schema_history') IS NOT NULL")
            .fetch_one(&mut pg)
            .await
            .expect("history table lookup");
    let history_rows = if exists {
        Some(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM strata_schema_history")
                .fetch_one(&mut pg)
                .await
                .expect("history rows"),
        )
    } else {
        None
    };
    let relations: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || \
         coalesce(c.relacl::text, '-'), ',' ORDER BY n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
    )
    .fetch_one(&mut pg)
    .await
    .expect("relations");
    let _ = pg.close().await;
    Snapshot {
        buckets,
        collections,
        history_rows,
        relations: relations.unwrap_or_default(),
    }
}

fn object_lock_detail(report: &serde_json::Value) -> String {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["component"] == "s3" && c["check"] == "object_lock")
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no object_lock check: {report}"))
        .to_string()
}

/// `check` and `migrate --plan` only read: on fresh stores the Object Lock
/// probe bucket is gone again, on current stores Object Lock is read from
/// the contracts bucket (no probe at all) and no store changes.
#[tokio::test(flavor = "multi_thread")]
async fn check_and_plan_write_nothing() {
    let fixture = Fixture::new("readonly").await;
    let config = fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");

    let empty = snapshot(&fixture, &stores).await;
    assert!(
        empty.buckets.is_empty() && empty.history_rows.is_none(),
        "{empty:?}"
    );
    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(1), "pending: {report}");
    let detail = object_lock_detail(&report);
    assert!(
        detail.contains("creates buckets with Object Lock"),
        "{detail}"
    );
    assert!(
        !report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["detail"].as_str().unwrap_or("").contains("probe bucket")),
        "the probe bucket was removed: {report}"
    );
    let (code, out, err) = run(fixture.strata(&["migrate", "--plan"]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(
        snapshot(&fixture, &stores).await,
        empty,
        "fresh stores untouched"
    );

    let (code, out, err) = run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}{err}");
    let current = snapshot(&fixture, &stores).await;
    assert_eq!(current.buckets.len(), 2, "{current:?}");
    assert!(current.collections.len() >= 7, "{current:?}");
    assert!(current.history_rows.is_some_and(|n| n > 0), "{current:?}");

    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(0), "{report}");
    let contracts = config.s3.bucket_name("contracts");
    assert_eq!(
        object_lock_detail(&report),
        format!("bucket {contracts} has Object Lock"),
        "read from the contracts bucket, not probed"
    );
    let (code, out, err) = run(fixture.strata(&["migrate", "--plan"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("nothing pending"), "{out}");
    assert_eq!(
        snapshot(&fixture, &stores).await,
        current,
        "current stores untouched"
    );
}
