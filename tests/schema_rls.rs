//! Row-level security through PgBouncer (transaction pooling): a
//! transaction in tenant A's context cannot see, change or delete tenant
//! B's rows even without a WHERE on tenant_id; global skills are visible to
//! both but writable by neither; no (or a malformed) tenant setting sees
//! nothing; the setting never leaks into the next transaction; nothing the
//! serving role can set opens the administrative path.

mod common;

use sqlx::PgConnection;
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
/// one global skill written on the administrative path.
async fn seed(pg: &Postgres) -> (Uuid, Uuid) {
    let (a, _) = common::create_tenant(pg, "alpha").await;
    let (b, _) = common::create_tenant(pg, "beta").await;
    for (tenant, slug) in [(a, "alpha"), (b, "beta")] {
        let mut tx = pg.begin_tenant(tenant).await.expect("begin tenant");
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
    let mut tx = pg.begin_admin().await.expect("begin admin");
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
    let (a, b) = seed(pg).await;

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
    // A tenant reads its own row and may not change it (suspension is the
    // administrative path's work), nor create another tenant.
    assert_eq!(
        rows(
            pg,
            &mut tx,
            "UPDATE tenants SET status = 'active' WHERE id = $1",
            a
        )
        .await,
        0
    );
    pg.query("SAVEPOINT tenant_insert")
        .execute(&mut *tx)
        .await
        .expect("savepoint");
    let created = pg
        .query("INSERT INTO tenants (ref_id, name, slug, plan) VALUES ($1, 'x', 'x', 'basic')")
        .bind(ulid())
        .execute(&mut *tx)
        .await;
    assert!(is_rls_violation(created), "a tenant cannot create tenants");
    pg.query("ROLLBACK TO SAVEPOINT tenant_insert")
        .execute(&mut *tx)
        .await
        .expect("rollback to savepoint");
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
    let (a, _) = seed(pg).await;

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

    // The administrative path (the migration role) sees every tenant.
    let mut tx = pg.begin_admin().await.expect("begin admin");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
        .fetch_one(&mut *tx)
        .await
        .expect("admin count");
    assert_eq!(seen, 4);
    tx.rollback().await.expect("rollback");

    // Nothing the serving role can set lifts isolation: not the old admin
    // setting, not row_security (refused for a role subject to RLS).
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
    let mut tx = pg.begin().await.expect("begin");
    pg.query("SELECT set_config('row_security', 'off', true)")
        .execute(&mut *tx)
        .await
        .expect("set row_security");
    let bypass = pg
        .query_as::<(i64,)>("SELECT count(*) FROM activities")
        .fetch_one(&mut *tx)
        .await;
    assert_eq!(
        common::sqlstate(&bypass).as_deref(),
        Some("42501"),
        "row_security = off must be refused, not obeyed: {bypass:?}"
    );
    tx.rollback().await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tenant_setting_does_not_leak_through_pgbouncer() {
    // One client connection to PgBouncer, so both transactions below run
    // on the server connection PgBouncer hands it; the backend pid proves
    // that they shared one.
    let fixture = common::Fixture::new("rlsleak").await;
    let stores = fixture.migrated_stores().await;
    let (a, _) = seed(&stores.postgres).await;
    let mut config = fixture.config();
    config.postgres.pool_size = 1;
    let pg = Postgres::new(&config.postgres).expect("pool of one");
    let mut shared = 0;
    for round in 0..20 {
        let mut tx = pg.begin_tenant(a).await.expect("begin A");
        let (pid, seen): (i32, i64) = pg
            .query_as("SELECT pg_backend_pid(), (SELECT count(*) FROM activities)")
            .fetch_one(&mut *tx)
            .await
            .expect("as A");
        assert_eq!(seen, 2, "round {round}");
        tx.commit().await.expect("commit");
        let mut tx = pg.begin().await.expect("begin");
        let (next_pid, setting, seen): (i32, Option<String>, i64) = pg
            .query_as(
                "SELECT pg_backend_pid(), current_setting('strata.tenant_id', true), \
                        (SELECT count(*) FROM activities)",
            )
            .fetch_one(&mut *tx)
            .await
            .expect("without a tenant");
        tx.commit().await.expect("commit");
        assert_eq!(setting.unwrap_or_default(), "", "round {round}");
        assert_eq!(seen, 0, "round {round}");
        if pid == next_pid {
            shared += 1;
        }
    }
    // With a single client connection and PgBouncer's LIFO reuse, the
    // rounds run on one server connection; a test that never shared one
    // would prove nothing.
    assert!(
        shared >= 10,
        "only {shared} of 20 rounds shared a server connection"
    );
    pg.close().await;
}
