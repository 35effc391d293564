//! Row-level security through PgBouncer (transaction pooling): a
//! transaction in tenant A's context cannot see, change or delete tenant
//! B's rows even without a WHERE on tenant_id; global skills are visible to
//! both but writable by neither; no (or a malformed) tenant setting sees
//! nothing; the setting never leaks into the next transaction.

mod common;

use sqlx::{Connection, PgConnection};
use strata::stores::postgres::Postgres;
use uuid::Uuid;

fn ulid() -> String {
    ulid::Ulid::generate().to_string()
}

async fn count(pg: &Postgres, tx: &mut PgConnection, sql: &'static str) -> i64 {
    pg.query_as::<(i64,)>(sql)
        .fetch_one(tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .0
}

async fn rows(pg: &Postgres, tx: &mut PgConnection, sql: &'static str, tenant: Uuid) -> u64 {
    pg.query(sql)
        .bind(tenant)
        .execute(tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

fn is_rls_violation(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
}

/// Two tenants with two activities, a usage event and a skill each, and
/// one global skill written by a deliberate administrative transaction.
async fn seed(fixture: &common::Fixture, pg: &Postgres) -> (Uuid, Uuid) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (tenant, slug) in [(a, "alpha"), (b, "beta")] {
        let mut tx = pg.begin_tenant(tenant).await.expect("begin tenant");
        pg.query(
            "INSERT INTO tenants (id, ref_id, name, slug, plan) VALUES ($1, $2, $3, $3, 'basic')",
        )
        .bind(tenant)
        .bind(ulid())
        .bind(slug)
        .execute(&mut *tx)
        .await
        .expect("create own tenant row");
        for _ in 0..2 {
            pg.query("INSERT INTO activities (ref_id, tenant_id, kind) VALUES ($1, $2, 'blog')")
                .bind(ulid())
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .expect("insert activity");
        }
        pg.query("INSERT INTO usage_events (ref_id, tenant_id, metric, quantity) VALUES ($1, $2, 'tokens', 10)")
            .bind(ulid())
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .expect("insert usage");
        pg.query("INSERT INTO skills (ref_id, tenant_id, name, slug) VALUES ($1, $2, $3, 'own')")
            .bind(ulid())
            .bind(tenant)
            .bind(format!("{slug} skill"))
            .execute(&mut *tx)
            .await
            .expect("insert own skill");
        tx.commit().await.expect("commit");
    }
    let mut owner = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    let mut tx = owner.begin().await.expect("begin");
    sqlx::query("SELECT set_config('strata.admin', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("admin");
    sqlx::query("INSERT INTO skills (ref_id, tenant_id, name, slug) VALUES ($1, NULL, 'global skill', 'global')")
        .bind(ulid())
        .execute(&mut *tx)
        .await
        .expect("insert global skill");
    tx.commit().await.expect("commit");
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_sees_and_changes_only_its_own_rows() {
    let fixture = common::Fixture::new("rls").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (a, b) = seed(&fixture, pg).await;

    let mut tx = pg.begin_tenant(a).await.expect("begin A");
    assert_eq!(
        count(pg, &mut tx, "SELECT count(*) FROM activities").await,
        2
    );
    assert_eq!(count(pg, &mut tx, "SELECT count(*) FROM tenants").await, 1);
    assert_eq!(
        count(pg, &mut tx, "SELECT count(*) FROM usage_events").await,
        1
    );
    // No WHERE at all: only A's rows change.
    let changed = pg
        .query("UPDATE activities SET kind = 'changed'")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(changed, 2);
    // DELETE with no WHERE at all: only A's rows go (undone by a savepoint;
    // B's rows are counted again in B's context below).
    pg.query("SAVEPOINT no_where")
        .execute(&mut *tx)
        .await
        .expect("savepoint");
    let deleted = pg
        .query("DELETE FROM activities")
        .execute(&mut *tx)
        .await
        .expect("delete")
        .rows_affected();
    assert_eq!(deleted, 2);
    pg.query("ROLLBACK TO SAVEPOINT no_where")
        .execute(&mut *tx)
        .await
        .expect("rollback to savepoint");
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "DELETE FROM activities WHERE tenant_id = $1",
            b
        )
        .await,
        0
    );
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "UPDATE tenants SET plan = 'hijacked' WHERE id = $1",
            b
        )
        .await,
        0
    );
    // Append-only for tenants.
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "UPDATE usage_events SET quantity = 0 WHERE tenant_id = $1",
            a
        )
        .await,
        0
    );
    // Skills: own + global visible, B's not; global not writable.
    assert_eq!(count(pg, &mut tx, "SELECT count(*) FROM skills").await, 2);
    assert_eq!(
        count(
            pg,
            &mut tx,
            "SELECT count(*) FROM skills WHERE tenant_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "UPDATE skills SET name = 'x' WHERE tenant_id IS NULL OR tenant_id = $1",
            b
        )
        .await,
        0
    );
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "DELETE FROM skills WHERE tenant_id IS NULL OR tenant_id = $1",
            b
        )
        .await,
        0
    );
    tx.commit().await.expect("commit A");

    // Writing rows for another tenant (or a global skill) is an error.
    for sql in [
        "INSERT INTO activities (ref_id, tenant_id, kind) VALUES ($2, $1, 'x')",
        "INSERT INTO skills (ref_id, tenant_id, name, slug) VALUES ($2, NULLIF($1, $1), 'g', 'g')",
        "UPDATE activities SET tenant_id = $1 WHERE $2 <> ''",
    ] {
        let mut tx = pg.begin_tenant(a).await.expect("begin A");
        let result = pg.query(sql).bind(b).bind(ulid()).execute(&mut *tx).await;
        assert!(
            is_rls_violation(result),
            "{sql} must violate row-level security"
        );
        tx.rollback().await.expect("rollback");
    }

    // B's rows are untouched.
    let mut tx = pg.begin_tenant(b).await.expect("begin B");
    assert_eq!(
        count(
            pg,
            &mut tx,
            "SELECT count(*) FROM activities WHERE kind = 'blog'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            pg,
            &mut tx,
            "SELECT count(*) FROM tenants WHERE plan = 'basic'"
        )
        .await,
        1
    );
    assert_eq!(count(pg, &mut tx, "SELECT count(*) FROM skills").await, 2);
    tx.commit().await.expect("commit B");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_tenant_nothing_is_visible_and_nothing_leaks() {
    let fixture = common::Fixture::new("rlsnone").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (a, _) = seed(&fixture, pg).await;

    // No setting, an empty one, a malformed one: no rows, no error.
    for setting in [
        None,
        Some(""),
        Some("not-a-uuid"),
        Some("'; DROP TABLE tenants; --"),
    ] {
        let mut tx = pg.begin().await.expect("begin");
        if let Some(value) = setting {
            pg.query("SELECT set_config('strata.tenant_id', $1, true)")
                .bind(value)
                .execute(&mut *tx)
                .await
                .expect("set");
        }
        assert_eq!(
            count(pg, &mut tx, "SELECT count(*) FROM activities").await,
            0,
            "{setting:?}"
        );
        assert_eq!(
            count(pg, &mut tx, "SELECT count(*) FROM tenants").await,
            0,
            "{setting:?}"
        );
        // Global templates are for everyone.
        assert_eq!(
            count(pg, &mut tx, "SELECT count(*) FROM skills").await,
            1,
            "{setting:?}"
        );
        tx.commit().await.expect("commit");
    }

    // Through PgBouncer, server connections are shared: alternate tenant
    // and tenant-less transactions; the setting never carries over.
    for round in 0..40 {
        let mut tx = pg.begin_tenant(a).await.expect("begin A");
        assert_eq!(
            count(pg, &mut tx, "SELECT count(*) FROM activities").await,
            2,
            "round {round}"
        );
        tx.commit().await.expect("commit");
        let mut tx = pg.begin().await.expect("begin");
        assert_eq!(
            count(pg, &mut tx, "SELECT count(*) FROM activities").await,
            0,
            "round {round}"
        );
        tx.commit().await.expect("commit");
    }

    // The owner is subject to RLS too, unless it deliberately asks.
    let mut owner = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
        .fetch_one(&mut owner)
        .await
        .expect("owner count");
    assert_eq!(seen, 0, "FORCE ROW LEVEL SECURITY applies to the owner");
    let mut tx = owner.begin().await.expect("begin");
    sqlx::query("SELECT set_config('strata.admin', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("admin");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
        .fetch_one(&mut *tx)
        .await
        .expect("admin count");
    assert_eq!(seen, 4);
    tx.rollback().await.expect("rollback");

    // The serving role gains nothing from the admin setting.
    let mut tx = pg.begin().await.expect("begin");
    pg.query("SELECT set_config('strata.admin', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("set");
    assert_eq!(
        count(pg, &mut tx, "SELECT count(*) FROM activities").await,
        0
    );
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_active_strategy_per_tenant_and_accepted_contracts_are_immutable() {
    let fixture = common::Fixture::new("rlsrules").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (a, _) = seed(&fixture, pg).await;

    let mut tx = pg.begin_tenant(a).await.expect("begin");
    let insert = "INSERT INTO strategies (ref_id, tenant_id, version, status, approved_by, approved_on) \
                  VALUES ($2, $1, $3, 'active', 'boss', now())";
    pg.query(insert)
        .bind(a)
        .bind(ulid())
        .bind(1)
        .execute(&mut *tx)
        .await
        .expect("first active strategy");
    let second = pg
        .query(insert)
        .bind(a)
        .bind(ulid())
        .bind(2)
        .execute(&mut *tx)
        .await;
    assert!(
        matches!(&second, Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505")),
        "a second active strategy violates the unique index: {second:?}"
    );
    tx.rollback().await.expect("rollback");

    let mut tx = pg.begin_tenant(a).await.expect("begin");
    let contract = ulid();
    pg.query(
        "INSERT INTO contracts (ref_id, tenant_id, template, template_version, status, accepted_by_name, \
         accepted_by_email, accepted_on, accepted_ip, accepted_user_agent, pdf_s3_key, pdf_sha256, \
         pdf_version_id, retain_until) VALUES ($1, $2, 'msa', '1', 'accepted', 'Ann', 'ann@example.com', \
         now(), '192.0.2.1', 'test', 'k', repeat('a', 64), 'v1', now() + interval '7 years')",
    )
    .bind(&contract)
    .bind(a)
    .execute(&mut *tx)
    .await
    .expect("accepted contract");
    tx.commit().await.expect("commit");
    for sql in [
        "UPDATE contracts SET accepted_by_name = 'Bob' WHERE ref_id = $1",
        "DELETE FROM contracts WHERE ref_id = $1",
    ] {
        let mut tx = pg.begin_tenant(a).await.expect("begin");
        let result = pg.query(sql).bind(&contract).execute(&mut *tx).await;
        assert!(
            matches!(&result, Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55000")),
            "{sql}: {result:?}"
        );
        tx.rollback().await.expect("rollback");
    }
}
