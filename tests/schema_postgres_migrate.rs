//! `strata migrate` on PostgreSQL: every table, constraint, index and
//! policy of SPEC section 2 exists afterwards (read back from pg_catalog);
//! a second run changes nothing and takes no lock; a changed migration and
//! a newer database are refused with names and versions.

mod common;

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use strata::schema::postgres::{LOCK_KEY, Migration, embedded_migrations};

const TENANT_TABLES: [&str; 10] = [
    "activities",
    "blog_posts",
    "social_posts",
    "onboarding_runs",
    "strategies",
    "contracts",
    "tool_calls",
    "skills",
    "integrations",
    "usage_events",
];

async fn superuser(fixture: &common::Fixture) -> PgConnection {
    PgConnection::connect(&fixture.superuser_url())
        .await
        .expect("connect as superuser")
}

fn migrate(fixture: &common::Fixture) -> (Option<i32>, String, String) {
    common::run(fixture.strata(&["migrate"]))
}

async fn history(conn: &mut PgConnection) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT version, name, applied_on::text FROM strata_schema_history ORDER BY version",
    )
    .fetch_all(conn)
    .await
    .expect("read history")
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_database_gets_the_whole_schema_once() {
    let fixture = common::Fixture::new("pgmig").await;

    let (code, out, err) = common::run(fixture.strata(&["migrate", "--plan"]));
    assert_eq!(
        code,
        Some(1),
        "plan on empty stores is pending\n{out}\n{err}"
    );
    for m in embedded_migrations().expect("embedded") {
        assert!(out.contains(&m.name), "plan names {}:\n{out}", m.name);
    }

    let started = Instant::now();
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "migrate\n{out}\n{err}");
    eprintln!("migrate on empty stores took {:?}", started.elapsed());

    let mut db = superuser(&fixture).await;
    // Every table, owned by the migration role, with forced RLS.
    let tables: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .expect("tables");
    for table in TENANT_TABLES.iter().chain(&["tenants"]) {
        let found = tables
            .iter()
            .find(|t| t.0 == *table)
            .unwrap_or_else(|| panic!("table {table} missing: {tables:?}"));
        assert_eq!(found.1, "strata_owner", "{table} owner");
        assert!(
            found.2 && found.3,
            "{table}: RLS enabled and forced: {found:?}"
        );
    }

    // Common columns: id uuid PK, ref_id ULID domain, tenant_id NOT NULL
    // (nullable only for global skills), soft-delete and timestamps.
    for table in TENANT_TABLES.iter().chain(&["tenants"]) {
        let columns: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
             FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(*table)
        .fetch_all(&mut db)
        .await
        .expect("columns");
        let column = |name: &str| {
            columns
                .iter()
                .find(|c| c.0 == name)
                .unwrap_or_else(|| panic!("{table}.{name} missing"))
                .clone()
        };
        assert_eq!(column("id").1, "uuid");
        assert_eq!(column("ref_id").1, "ulid");
        assert!(column("ref_id").2);
        assert!(column("created_on").2 && column("updated_on").2);
        assert!(!column("deleted_on").2);
        if *table != "tenants" {
            assert_eq!(column("tenant_id").1, "uuid");
            assert_eq!(
                column("tenant_id").2,
                *table != "skills",
                "{table}.tenant_id nullability"
            );
        }
    }

    // tenant_id references tenants everywhere.
    let fks: Vec<String> = sqlx::query_scalar(
        "SELECT conrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND confrelid = 'tenants'::regclass",
    )
    .fetch_all(&mut db)
    .await
    .expect("fks");
    for table in TENANT_TABLES {
        assert!(
            fks.iter().any(|t| t == table),
            "{table} lacks FK to tenants: {fks:?}"
        );
    }

    // A ref_id must be a ULID.
    let bad = sqlx::query(
        "INSERT INTO tenants (ref_id, name, slug, plan) VALUES ('not-a-ulid', 'x', 'x', 'p')",
    )
    .execute(&mut db)
    .await;
    assert!(bad.is_err(), "a malformed ULID is refused");

    // Statuses are constrained to their state machines.
    let status_check: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'strategies'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%pending_approval%'",
    )
    .fetch_one(&mut db)
    .await
    .expect("strategies status check");
    for state in ["draft", "approved", "rejected", "active", "superseded"] {
        assert!(status_check.contains(state), "{status_check}");
    }

    // The indexes the queries need.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    .fetch_all(&mut db)
    .await
    .expect("indexes");
    let index = |name: &str| {
        indexes
            .iter()
            .find(|i| i.0 == name)
            .unwrap_or_else(|| panic!("index {name} missing"))
            .1
            .clone()
    };
    let one_active = index("strategies_one_active_per_tenant");
    assert!(
        one_active.contains("UNIQUE") && one_active.contains("'active'"),
        "{one_active}"
    );
    let billing = index("usage_events_billing_idx");
    assert!(
        billing.contains("tenant_id, metric, occurred_on")
            && billing.contains("INCLUDE (quantity)"),
        "{billing}"
    );
    for table in TENANT_TABLES {
        let tenant_ref = index(&format!("{table}_tenant_ref_idx"));
        assert!(tenant_ref.contains("deleted_on IS NULL"), "{tenant_ref}");
        assert!(
            indexes.iter().any(|i| i.0 == format!("{table}_ref_id_key")),
            "{table} ref_id unique"
        );
    }

    // Policies on every table, and the serving role's grants.
    let policies: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_policies")
        .fetch_all(&mut db)
        .await
        .expect("policies");
    for table in TENANT_TABLES.iter().chain(&["tenants"]) {
        assert!(policies.iter().any(|p| p == table), "{table} has no policy");
        let granted: bool = sqlx::query_scalar(
            "SELECT has_table_privilege('strata_app', $1, 'SELECT') AND has_table_privilege('strata_app', $1, 'INSERT') \
             AND has_table_privilege('strata_app', $1, 'UPDATE') AND has_table_privilege('strata_app', $1, 'DELETE')",
        )
        .bind(*table)
        .fetch_one(&mut db)
        .await
        .expect("privileges");
        assert!(granted, "strata_app lacks privileges on {table}");
    }
    let on_history: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('strata_app', 'strata_schema_history', 'SELECT')",
    )
    .fetch_one(&mut db)
    .await
    .expect("history privilege");
    assert!(
        !on_history,
        "the serving role must not read the migration history"
    );

    let first = history(&mut db).await;
    assert_eq!(first.len(), embedded_migrations().expect("embedded").len());

    // Second run: nothing pending, nothing recorded again.
    let (code, out, err) = common::run(fixture.strata(&["migrate", "--plan"]));
    assert_eq!(code, Some(0), "plan after migrate\n{out}\n{err}");
    assert!(out.contains("nothing pending"), "{out}");
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(
        history(&mut db).await,
        first,
        "a second run changes no history"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_lock_is_taken_when_nothing_is_pending() {
    let fixture = common::Fixture::new("pglock").await;
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "{out}\n{err}");

    // Another "instance" holds the schema lock for the whole test.
    let mut holder = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("hold the lock");

    let with_timeout = |cmd: &mut std::process::Command| {
        cmd.env("STRATA_POSTGRES__SCHEMA_LOCK_WAIT_SECS", "1");
    };
    let mut command = fixture.strata(&["migrate"]);
    with_timeout(&mut command);
    let (code, out, err) = common::run(command);
    assert_eq!(
        code,
        Some(0),
        "up to date: must not wait for the lock\n{out}\n{err}"
    );

    // Something pending (a grant revoked by hand) must wait for the lock,
    // and give up after the configured timeout with the key's name.
    let mut db = superuser(&fixture).await;
    sqlx::query("REVOKE DELETE ON activities FROM strata_app")
        .execute(&mut db)
        .await
        .expect("revoke");
    let mut command = fixture.strata(&["migrate"]);
    with_timeout(&mut command);
    let started = Instant::now();
    let (code, out, err) = common::run(command);
    assert_eq!(code, Some(5), "lock timeout\n{out}\n{err}");
    assert!(err.contains("postgres.schema_lock_wait_secs"), "{err}");
    assert!(started.elapsed().as_secs_f64() >= 1.0);

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("release");
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("1 change(s)"), "the grant is restored: {out}");
    let granted: bool =
        sqlx::query_scalar("SELECT has_table_privilege('strata_app', 'activities', 'DELETE')")
            .fetch_one(&mut db)
            .await
            .expect("privilege");
    assert!(granted);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_migration_is_refused_by_name() {
    let fixture = common::Fixture::new("pgchg").await;
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "{out}\n{err}");

    // In a test build: the shipped 0002 with one more statement.
    let mut direct = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    let mut modified = embedded_migrations().expect("embedded");
    let original = modified[1].clone();
    modified[1] = Migration::new(
        &format!("{}.sql", original.name),
        &format!("{}\nSELECT 1;\n", original.sql),
    )
    .expect("valid");
    let refused = strata::schema::postgres::plan(&mut direct, &modified, None)
        .await
        .expect_err("a changed migration is refused");
    assert!(refused.to_string().contains(&original.name), "{refused}");

    // The same file checked out with CRLF line endings is not a change.
    let mut crlf = embedded_migrations().expect("embedded");
    crlf[1] = Migration::new(
        &format!("{}.sql", original.name),
        &original.sql.replace('\n', "\r\n"),
    )
    .expect("valid");
    let plan = strata::schema::postgres::plan(&mut direct, &crlf, None)
        .await
        .expect("same schema");
    assert!(plan.pending.is_empty());

    // The binary, against a database whose record differs.
    sqlx::query("UPDATE strata_schema_history SET checksum = repeat('0', 64) WHERE version = $1")
        .bind(original.version)
        .execute(&mut direct)
        .await
        .expect("tamper");
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(
        err.contains(&original.name) && err.contains("never"),
        "{err}"
    );
    let (code, out, _) = common::run(fixture.strata(&["check"]));
    assert_eq!(code, Some(5), "check reports the refusal\n{out}");
    assert!(out.contains(&original.name), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_database_is_refused_with_both_versions() {
    let fixture = common::Fixture::new("pgnew").await;
    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let mut direct = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    sqlx::query(
        "INSERT INTO strata_schema_history (version, name, checksum, execution_ms, applied_by) \
         VALUES (9001, '9001_from_the_future', 'x', 1, 'strata 99')",
    )
    .execute(&mut direct)
    .await
    .expect("pretend a newer strata migrated");
    let newest = embedded_migrations()
        .expect("embedded")
        .pop()
        .expect("some migration");

    let (code, out, err) = migrate(&fixture);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(
        err.contains("9001_from_the_future") && err.contains(&newest.name),
        "{err}"
    );

    let mut command = fixture.strata(&["serve"]);
    command.stdout(std::process::Stdio::null());
    let (code, _, err) = common::run(command);
    assert_eq!(code, Some(5), "serve refuses to start\n{err}");
    assert!(err.contains("9001"), "{err}");
}
