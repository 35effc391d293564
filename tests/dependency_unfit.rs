//! Dependencies that answer but must not be used: `check` exits 4 at once
//! (no retrying what waiting cannot fix) and says why.

mod common;

use common::{Fixture, deps, run, with_database};
use sqlx::Connection;

fn check_with(fixture: &Fixture, overrides: &[(&str, String)]) -> (Option<i32>, String) {
    let mut command = fixture.strata(&["check"]);
    for (key, value) in overrides {
        command.env(key, value);
    }
    let (code, stdout, stderr) = run(command);
    (code, format!("{stdout}{stderr}"))
}

fn failed_lines(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[tokio::test]
async fn a_serving_role_that_bypasses_rls_is_refused() {
    let fixture = Fixture::new("superuser").await;
    // Serving as the superuser would silently disable tenant isolation.
    let (code, output) = check_with(
        &fixture,
        &[
            ("STRATA_POSTGRES__URL", fixture.superuser_url()),
            ("STRATA_POSTGRES__PGBOUNCER", "false".into()),
        ],
    );
    assert_eq!(code, Some(4), "{output}");
    let failed = failed_lines(&output);
    assert_eq!(failed.len(), 1, "{output}");
    assert!(
        failed[0].contains("serving_role") && failed[0].contains("row-level security"),
        "{output}"
    );
    assert!(
        !output.contains(&deps().pg_superuser_url),
        "no password printed"
    );
}

#[tokio::test]
async fn a_wrong_postgres_password_is_unfit_not_retried() {
    let fixture = Fixture::new("badpw").await;
    let d = deps();
    let url = format!(
        "postgres://{}:not-the-password@127.0.0.1:{}/{}",
        d.pg_app_user, d.pg_port, fixture.pg_database
    );
    let started = std::time::Instant::now();
    let (code, output) = check_with(
        &fixture,
        &[
            ("STRATA_POSTGRES__URL", url),
            ("STRATA_POSTGRES__PGBOUNCER", "false".into()),
            (
                "STRATA_POSTGRES__DIRECT_URL",
                with_database(&d.pg_owner_url, &fixture.pg_database),
            ),
            ("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "60".into()),
        ],
    );
    assert_eq!(code, Some(4), "{output}");
    let failed = failed_lines(&output);
    assert!(
        failed[0].contains("postgres") && failed[0].contains("password"),
        "{output}"
    );
    assert!(!output.contains("not-the-password"), "{output}");
    // Not retried for the whole minute: authentication does not heal itself.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test]
async fn a_wrong_s3_secret_is_unfit() {
    let fixture = Fixture::new("bads3").await;
    let (code, output) = check_with(
        &fixture,
        &[(
            "STRATA_S3__SECRET_ACCESS_KEY",
            "wrong-secret-key-000".into(),
        )],
    );
    assert_eq!(code, Some(4), "{output}");
    let failed = failed_lines(&output);
    assert_eq!(failed.len(), 1, "{output}");
    assert!(
        failed[0].contains("s3") && failed[0].contains("403"),
        "{output}"
    );
    assert!(!output.contains("wrong-secret-key-000"), "{output}");
}

#[tokio::test]
async fn a_migration_role_without_create_on_the_schema_is_refused() {
    let fixture = Fixture::new("nocreate").await;
    // CREATE on the database but not on `public` (PostgreSQL >= 15 default).
    let role = fixture.pg_database.replace("nocreate", "role");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&fixture.superuser_url())
        .await
        .expect("superuser");
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'role-pw-31337'"),
        format!("GRANT CREATE ON DATABASE {} TO {role}", fixture.pg_database),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("set up the role");
    }
    let direct = format!(
        "postgres://{role}:role-pw-31337@127.0.0.1:{}/{}",
        deps().pg_port,
        fixture.pg_database
    );
    let (code, output) = check_with(&fixture, &[("STRATA_POSTGRES__DIRECT_URL", direct)]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {role}; DROP ROLE {role}"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the role");
    assert_eq!(code, Some(4), "{output}");
    let failed = failed_lines(&output);
    assert_eq!(failed.len(), 1, "{output}");
    assert!(
        failed[0].contains("privileges") && failed[0].contains("schema"),
        "{output}"
    );
    assert!(!output.contains("role-pw-31337"));
}

#[tokio::test]
async fn serving_with_the_migration_role_is_refused_at_boot() {
    let fixture = Fixture::new("oneurl").await;
    // One URL for both: the serving role would own every table.
    let mut command = fixture.strata(&["serve"]);
    command
        .env("STRATA_POSTGRES__URL", fixture.direct_url())
        .env("STRATA_POSTGRES__PGBOUNCER", "false")
        .env_remove("STRATA_POSTGRES__DIRECT_URL");
    let (code, stdout, stderr) = run(command);
    let output = format!("{stdout}{stderr}");
    assert_eq!(code, Some(4), "{output}");
    assert!(
        output.contains("role strata_owner of postgres.url")
            && output.contains("database owner strata_owner"),
        "{output}"
    );
    // Nothing was migrated by the refused boot.
    let mut owner = sqlx::PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_one(&mut owner)
            .await
            .expect("count tables");
    assert_eq!(tables, 0, "{output}");
}

#[tokio::test]
async fn a_serving_role_that_is_a_member_of_the_migration_role_is_refused() {
    let fixture = Fixture::new("member").await;
    let role = fixture.pg_database.replace("member", "m");
    let mut admin = sqlx::PgConnection::connect(&deps().pg_superuser_url)
        .await
        .expect("superuser");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw'; GRANT strata_owner TO \"{role}\""
    )))
    .execute(&mut admin)
    .await
    .expect("create member role");
    let url = format!(
        "postgres://{role}:pw@127.0.0.1:{}/{}",
        deps().pg_port,
        fixture.pg_database
    );
    let (code, output) = check_with(
        &fixture,
        &[
            ("STRATA_POSTGRES__URL", url),
            ("STRATA_POSTGRES__PGBOUNCER", "false".into()),
        ],
    );
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{role}\"")))
        .execute(&mut admin)
        .await;
    assert_eq!(code, Some(4), "{output}");
    let failed = failed_lines(&output);
    assert_eq!(failed.len(), 1, "{output}");
    assert!(
        failed[0].contains("serving_role") && failed[0].contains("strata_owner"),
        "{output}"
    );
}
