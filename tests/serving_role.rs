//! What the serving role is allowed, read from the catalog rather than from
//! a hand-kept list: every table with a tenant_id has row-level security
//! enabled AND forced, the serving role owns nothing and has no privilege
//! on strata's own tables; tenants reach it only through the sanctioned
//! ref → id function.

mod common;

use sqlx::Connection;

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_shows_isolation_on_every_tenant_table_and_nothing_owned() {
    let fixture = common::Fixture::new("catalog").await;
    let _stores = fixture.migrated_stores().await;
    let app = &common::deps().pg_app_user;
    let mut su = sqlx::PgConnection::connect(&fixture.superuser_url())
        .await
        .expect("superuser");

    let tenant_tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
                OR c.relname = 'tenants') \
         ORDER BY 1",
    )
    .fetch_all(&mut su)
    .await
    .expect("tables");
    assert!(tenant_tables.len() >= 11, "{tenant_tables:?}");
    for (table, enabled, forced) in &tenant_tables {
        assert!(
            *enabled && *forced,
            "{table}: enabled={enabled} forced={forced}"
        );
    }

    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT 'table ' || relname FROM pg_class WHERE relowner = $1::regrole \
         UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = $1::regrole \
         UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = $1::regrole \
         UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = $1::regrole",
    )
    .bind(app)
    .fetch_all(&mut su)
    .await
    .expect("owned objects");
    assert!(owned.is_empty(), "the serving role owns {owned:?}");

    let internal: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
         WHERE grantee = $1 AND table_name LIKE 'strata\\_%'",
    )
    .bind(app)
    .fetch_all(&mut su)
    .await
    .expect("grants");
    assert!(internal.is_empty(), "{internal:?}");
    // ...while it does have what serving needs on the tenant tables.
    let granted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.role_table_grants \
         WHERE grantee = $1 AND table_name = 'activities' \
           AND privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')",
    )
    .bind(app)
    .fetch_one(&mut su)
    .await
    .expect("grants");
    assert_eq!(granted, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_ref_resolves_only_while_the_tenant_is_active() {
    let fixture = common::Fixture::new("resolve").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (active, active_ref) = common::create_tenant(pg, "active").await;
    let (_, suspended_ref) = common::create_tenant(pg, "suspended").await;
    let (_, deleted_ref) = common::create_tenant(pg, "deleted").await;
    let mut tx = pg.begin_admin().await.expect("admin");
    for (tenant_ref, sql) in [
        (
            &suspended_ref,
            "UPDATE tenants SET status = 'suspended' WHERE ref_id = $1",
        ),
        (
            &deleted_ref,
            "UPDATE tenants SET status = 'deleted', deleted_on = now() WHERE ref_id = $1",
        ),
    ] {
        pg.query(sql)
            .bind(tenant_ref)
            .execute(&mut *tx)
            .await
            .expect("admin update");
    }
    tx.commit().await.expect("commit");

    assert_eq!(
        pg.tenant_id(&active_ref).await.expect("resolve"),
        Some(active)
    );
    let unknown = ulid::Ulid::generate().to_string();
    for tenant_ref in [
        suspended_ref.as_str(),
        deleted_ref.as_str(),
        unknown.as_str(),
        "not a ulid",
        "",
    ] {
        assert_eq!(
            pg.tenant_id(tenant_ref).await.expect("resolve"),
            None,
            "{tenant_ref}"
        );
        assert!(
            pg.begin_tenant_ref(tenant_ref)
                .await
                .expect("begin")
                .is_none(),
            "{tenant_ref}"
        );
    }

    // One round trip resolves and sets the tenant: its own row, nothing else.
    let (id, mut tx) = pg
        .begin_tenant_ref(&active_ref)
        .await
        .expect("begin")
        .expect("active tenant");
    assert_eq!(id, active);
    let refs: Vec<(String,)> = pg
        .query_as("SELECT ref_id::text FROM tenants")
        .fetch_all(&mut *tx)
        .await
        .expect("tenants");
    assert_eq!(refs, vec![(active_ref.clone(),)]);
    tx.commit().await.expect("commit");
}
