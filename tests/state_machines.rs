//! The state machines of SPEC section 2, enforced by PostgreSQL itself in
//! the transaction that would break them: every (from, to) pair of every
//! entity is tried through PgBouncer and PostgreSQL's verdict must be the
//! domain table's; refusals carry SQLSTATE ST409 and the allowed next
//! states. Also the rules around them: one active strategy, no soft
//! delete of an active one, finished tool calls, accepted contracts
//! immutable, S3 keys inside the tenant's prefix.

mod common;

use sqlx::PgConnection;
use strata::domain::state_machines::{self, ILLEGAL_TRANSITION, IllegalTransition};
use strata::stores::postgres::Postgres;
use uuid::Uuid;

fn ulid() -> String {
    ulid::Ulid::generate().to_string()
}

/// Creates a record of `entity` in its default creation state. Columns that
/// later states require (approval, schedule, publication) are filled in
/// up front, so that only the state machine decides.
async fn create(pg: &Postgres, tx: &mut PgConnection, entity: &str, tenant: Uuid) -> String {
    let record = ulid();
    let sql = match entity {
        "activities" => "INSERT INTO activities (ref_id, tenant_id, kind) VALUES ($1, $2, 'blog')",
        "blog_posts" => {
            "INSERT INTO blog_posts (ref_id, tenant_id, title, scheduled_for, published_on) \
             VALUES ($1, $2, 'T', now(), now())"
        }
        "social_posts" => {
            "INSERT INTO social_posts (ref_id, tenant_id, platform, scheduled_for, published_on) \
             VALUES ($1, $2, 'x', now(), now())"
        }
        "onboarding_runs" => {
            "INSERT INTO onboarding_runs (ref_id, tenant_id, website) \
             VALUES ($1, $2, 'https://example.com')"
        }
        "strategies" => {
            "INSERT INTO strategies (ref_id, tenant_id, version, approved_by, approved_on) \
             VALUES ($1, $2, (SELECT coalesce(max(version), 0) + 1 FROM strategies), 'boss', now())"
        }
        "contracts" => {
            "INSERT INTO contracts (ref_id, tenant_id, template, template_version) \
             VALUES ($1, $2, 'msa', '1')"
        }
        "tool_calls" => {
            "INSERT INTO tool_calls (ref_id, tenant_id, tool_name, method) VALUES ($1, $2, 't', 'm')"
        }
        "integrations" => {
            "INSERT INTO integrations (ref_id, tenant_id, provider, external_account) \
             VALUES ($1, $2, 'p', $1)"
        }
        other => panic!("no insert for {other}"),
    };
    pg.query(sqlx::AssertSqlSafe(sql))
        .bind(&record)
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("create {entity}: {e}"));
    record
}

/// Moves a record to `to`, setting what the target state requires
/// (finish times, deletion time, the acceptance record).
async fn move_to(
    pg: &Postgres,
    tx: &mut PgConnection,
    entity: &str,
    record: &str,
    to: &str,
    tenant_ref: &str,
) -> Result<(), sqlx::Error> {
    let extra = match entity {
        "activities" | "onboarding_runs" => {
            ", finished_on = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled', 'completed') \
               THEN now() END"
        }
        "tool_calls" => ", finished_on = CASE WHEN $2 <> 'started' THEN now() END, duration_ms = 5",
        "tenants" => ", deleted_on = CASE WHEN $2 = 'deleted' THEN now() END",
        "contracts" => {
            ", accepted_by_name = 'Ann', accepted_by_email = 'ann@example.com', \
               accepted_on = now(), accepted_ip = '192.0.2.1', accepted_user_agent = 'test', \
               pdf_s3_key = $3 || '/contracts/' || ref_id || '.pdf', \
               pdf_sha256 = repeat('a', 64), pdf_version_id = 'v1', \
               retain_until = now() + interval '7 years'"
        }
        _ => "",
    };
    let sql = format!(
        "UPDATE {entity} SET status = $2{extra} WHERE ref_id = $1 AND $3::text IS NOT NULL"
    );
    let done = pg
        .query(sqlx::AssertSqlSafe(sql))
        .bind(record)
        .bind(to)
        .bind(tenant_ref)
        .execute(&mut *tx)
        .await?;
    assert_eq!(done.rows_affected(), 1, "{entity} {record} not visible");
    Ok(())
}

/// The shortest legal path from the default creation state (the column's
/// default, which `create` uses) to `target`, that state first.
fn path_to(entity: &str, target: &str) -> Vec<&'static str> {
    let created = match entity {
        "activities" => "queued",
        "tool_calls" => "started",
        _ => state_machines::allowed_next(entity, None)[0],
    };
    let mut queue: Vec<Vec<&'static str>> = vec![vec![created]];
    let mut seen: Vec<&str> = vec![created];
    let mut i = 0;
    while i < queue.len() {
        let path = queue[i].clone();
        let last = *path.last().expect("non-empty path");
        if last == target {
            return path;
        }
        for next in state_machines::allowed_next(entity, Some(last)) {
            if !seen.contains(&next) {
                seen.push(next);
                let mut longer = path.clone();
                longer.push(next);
                queue.push(longer);
            }
        }
        i += 1;
    }
    panic!("{entity}: {target} is unreachable");
}

fn states(entity: &str) -> Vec<&'static str> {
    let mut all: Vec<&str> = state_machines::TRANSITIONS
        .iter()
        .filter(|(e, _, _)| *e == entity)
        .map(|(_, _, to)| *to)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

async fn savepoint(pg: &Postgres, tx: &mut PgConnection, sql: &'static str) {
    pg.query(sql).execute(&mut *tx).await.expect(sql);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_holds_the_domain_table_of_transitions() {
    let fixture = common::Fixture::new("smtable").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let mut tx = pg.begin_admin().await.expect("admin");
    let mut in_postgres: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT entity, from_status, to_status FROM strata_transitions")
            .fetch_all(&mut *tx)
            .await
            .expect("read transitions");
    tx.rollback().await.expect("rollback");
    let mut in_rust: Vec<(String, Option<String>, String)> = state_machines::TRANSITIONS
        .iter()
        .map(|(e, f, t)| (e.to_string(), f.map(str::to_string), t.to_string()))
        .collect();
    in_postgres.sort();
    in_rust.sort();
    assert_eq!(in_postgres, in_rust);

    // The serving role can neither read nor change the table.
    let mut tx = pg.begin().await.expect("begin");
    let tamper = pg
        .query("INSERT INTO strata_transitions VALUES ('contracts', 'declined', 'accepted')")
        .execute(&mut *tx)
        .await;
    assert_eq!(common::sqlstate(&tamper).as_deref(), Some("42501"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_status_change_gets_the_domain_verdict() {
    let fixture = common::Fixture::new("small").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (tenant, tenant_ref) = common::create_tenant(pg, "walker").await;
    let mut checked = 0;
    for entity in state_machines::entities() {
        if entity == "tenants" {
            continue; // below, on the administrative path
        }
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        for from in states(entity) {
            // Each record lives only for its own round (one active strategy).
            savepoint(pg, &mut tx, "SAVEPOINT round").await;
            let record = create(pg, &mut tx, entity, tenant).await;
            for step in path_to(entity, from).into_iter().skip(1) {
                move_to(pg, &mut tx, entity, &record, step, &tenant_ref)
                    .await
                    .unwrap_or_else(|e| panic!("{entity} → {step}: {e}"));
            }
            for to in states(entity).into_iter().filter(|to| *to != from) {
                savepoint(pg, &mut tx, "SAVEPOINT attempt").await;
                let result = move_to(pg, &mut tx, entity, &record, to, &tenant_ref).await;
                let legal = state_machines::allows(entity, Some(from), to);
                match (&result, legal) {
                    (Ok(()), true) => {}
                    (Err(sqlx::Error::Database(db)), false)
                        if db.code().as_deref() == Some(ILLEGAL_TRANSITION) =>
                    {
                        let detail = db
                            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                            .and_then(|pg| pg.detail())
                            .expect("a DETAIL");
                        let refusal = IllegalTransition::from_detail(detail).expect("JSON detail");
                        assert_eq!(refusal.from.as_deref(), Some(from));
                        assert_eq!(refusal.to, to);
                        assert_eq!(refusal.record_ref.as_deref(), Some(record.as_str()));
                        assert_eq!(
                            refusal.allowed,
                            state_machines::allowed_next(entity, Some(from))
                        );
                    }
                    // An accepted contract refuses every change, its
                    // status included, by the immutability rule.
                    (Err(sqlx::Error::Database(db)), false)
                        if (entity, from) == ("contracts", "accepted")
                            && db.code().as_deref() == Some("55000") => {}
                    _ => panic!("{entity}: {from} → {to}: legal={legal}, got {result:?}"),
                }
                savepoint(pg, &mut tx, "ROLLBACK TO SAVEPOINT attempt").await;
                checked += 1;
            }
            // Keep the record of the creation state only: the creation check
            // below copies it.
            if path_to(entity, from).len() == 1 {
                savepoint(pg, &mut tx, "RELEASE SAVEPOINT round").await;
            } else {
                savepoint(pg, &mut tx, "ROLLBACK TO SAVEPOINT round").await;
            }
        }
        // A record cannot be created in a state that is not a creation state.
        for state in states(entity) {
            if state_machines::allows(entity, None, state) {
                continue;
            }
            savepoint(pg, &mut tx, "SAVEPOINT creation").await;
            let record = ulid();
            // Copy a row of this transaction with a new ref and the
            // refused status: an insert that reaches the trigger.
            let copied = pg
                .query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {entity} SELECT (jsonb_populate_record(NULL::{entity}, \
                       to_jsonb(t) || jsonb_build_object('id', gen_random_uuid(), \
                       'ref_id', $1::text, 'status', $2::text))).* \
                     FROM {entity} t LIMIT 1"
                )))
                .bind(&record)
                .bind(state)
                .execute(&mut *tx)
                .await;
            assert_eq!(
                common::sqlstate(&copied).as_deref(),
                Some(ILLEGAL_TRANSITION),
                "{entity} created as {state}: {copied:?}"
            );
            savepoint(pg, &mut tx, "ROLLBACK TO SAVEPOINT creation").await;
            checked += 1;
        }
        tx.rollback().await.expect("rollback");
    }
    assert!(checked > 150, "only {checked} changes tried");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_refusals_named_by_the_spec_are_refused_and_change_nothing() {
    let fixture = common::Fixture::new("smspec").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (tenant, tenant_ref) = common::create_tenant(pg, "spec").await;
    for (entity, from, to) in [
        ("blog_posts", "published", "draft"),
        ("contracts", "declined", "accepted"),
        ("contracts", "expired", "accepted"),
        ("strategies", "superseded", "active"),
        ("integrations", "disconnected", "connected"),
    ] {
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        let record = create(pg, &mut tx, entity, tenant).await;
        for step in path_to(entity, from).into_iter().skip(1) {
            move_to(pg, &mut tx, entity, &record, step, &tenant_ref)
                .await
                .expect("legal step");
        }
        tx.commit().await.expect("commit");
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        let refused = move_to(pg, &mut tx, entity, &record, to, &tenant_ref).await;
        assert_eq!(
            common::sqlstate(&refused).as_deref(),
            Some(ILLEGAL_TRANSITION),
            "{entity} {from} → {to}"
        );
        tx.rollback().await.expect("rollback");
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        let (status,): (String,) = pg
            .query_as(sqlx::AssertSqlSafe(format!(
                "SELECT status FROM {entity} WHERE ref_id = $1"
            )))
            .bind(&record)
            .fetch_one(&mut *tx)
            .await
            .expect("read back");
        assert_eq!(status, from, "{entity} changed by a refused transition");
        tx.rollback().await.expect("rollback");
    }

    // deleted → active, on the administrative path (the only one that may
    // change tenants at all).
    let (_, doomed) = common::create_tenant(pg, "doomed").await;
    let mut tx = pg.begin_admin().await.expect("admin");
    move_to(pg, &mut tx, "tenants", &doomed, "deleted", &doomed)
        .await
        .expect("delete tenant");
    let revived = move_to(pg, &mut tx, "tenants", &doomed, "active", &doomed).await;
    assert_eq!(
        common::sqlstate(&revived).as_deref(),
        Some(ILLEGAL_TRANSITION)
    );
}

/// A strategy walked to `active`, committed.
async fn active_strategy(pg: &Postgres, tenant: Uuid, tenant_ref: &str) -> String {
    let mut tx = pg.begin_tenant(tenant).await.expect("begin");
    let record = create(pg, &mut tx, "strategies", tenant).await;
    for step in ["pending_approval", "approved", "active"] {
        move_to(pg, &mut tx, "strategies", &record, step, tenant_ref)
            .await
            .expect("to active");
    }
    tx.commit().await.expect("commit");
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn one_active_strategy_which_cannot_be_soft_deleted() {
    let fixture = common::Fixture::new("smstrat").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (tenant, tenant_ref) = common::create_tenant(pg, "strat").await;
    let first = active_strategy(pg, tenant, &tenant_ref).await;

    let mut tx = pg.begin_tenant(tenant).await.expect("begin");
    let second = create(pg, &mut tx, "strategies", tenant).await;
    for step in ["pending_approval", "approved"] {
        move_to(pg, &mut tx, "strategies", &second, step, &tenant_ref)
            .await
            .expect("to approved");
    }
    let both = move_to(pg, &mut tx, "strategies", &second, "active", &tenant_ref).await;
    assert_eq!(common::sqlstate(&both).as_deref(), Some("23505"));
    tx.rollback().await.expect("rollback");

    let delete = "UPDATE strategies SET deleted_on = now() WHERE ref_id = $1";
    let mut tx = pg.begin_tenant(tenant).await.expect("begin");
    let deleted = pg.query(delete).bind(&first).execute(&mut *tx).await;
    assert_eq!(
        common::sqlstate(&deleted).as_deref(),
        Some("23514"),
        "an active strategy was soft-deleted"
    );
    tx.rollback().await.expect("rollback");
    // Superseded first, then it may go.
    let mut tx = pg.begin_tenant(tenant).await.expect("begin");
    move_to(pg, &mut tx, "strategies", &first, "superseded", &tenant_ref)
        .await
        .expect("supersede");
    pg.query(delete)
        .bind(&first)
        .execute(&mut *tx)
        .await
        .expect("soft delete a superseded strategy");
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_tool_calls_and_accepted_contracts_keep_their_record() {
    let fixture = common::Fixture::new("smrules").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (tenant, tenant_ref) = common::create_tenant(pg, "rules").await;
    let (_, other_ref) = common::create_tenant(pg, "other").await;

    // A terminal tool call has its finish time and duration.
    let mut tx = pg.begin_tenant(tenant).await.expect("begin");
    let call = create(pg, &mut tx, "tool_calls", tenant).await;
    for sql in [
        "UPDATE tool_calls SET status = 'succeeded' WHERE ref_id = $1",
        "UPDATE tool_calls SET status = 'failed', finished_on = now() WHERE ref_id = $1",
    ] {
        savepoint(pg, &mut tx, "SAVEPOINT call").await;
        let result = pg.query(sql).bind(&call).execute(&mut *tx).await;
        assert_eq!(common::sqlstate(&result).as_deref(), Some("23514"), "{sql}");
        savepoint(pg, &mut tx, "ROLLBACK TO SAVEPOINT call").await;
    }
    move_to(pg, &mut tx, "tool_calls", &call, "timed_out", &tenant_ref)
        .await
        .expect("with finish time and duration");

    // pdf_s3_key must start with the tenant's own prefix.
    let contract = create(pg, &mut tx, "contracts", tenant).await;
    for key in [
        format!("{other_ref}/contracts/{contract}.pdf"),
        format!("contracts/{contract}.pdf"),
        format!("{tenant_ref}x/contracts/{contract}.pdf"),
    ] {
        savepoint(pg, &mut tx, "SAVEPOINT key").await;
        let result = pg
            .query("UPDATE contracts SET pdf_s3_key = $2 WHERE ref_id = $1")
            .bind(&contract)
            .bind(&key)
            .execute(&mut *tx)
            .await;
        assert_eq!(common::sqlstate(&result).as_deref(), Some("23514"), "{key}");
        savepoint(pg, &mut tx, "ROLLBACK TO SAVEPOINT key").await;
    }
    move_to(pg, &mut tx, "contracts", &contract, "accepted", &tenant_ref)
        .await
        .expect("accept with the tenant's own key");
    tx.commit().await.expect("commit");

    // Accepted, the row is immutable: no update, no delete.
    for sql in [
        "UPDATE contracts SET accepted_by_name = 'Bob' WHERE ref_id = $1",
        "DELETE FROM contracts WHERE ref_id = $1",
    ] {
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        let result = pg.query(sql).bind(&contract).execute(&mut *tx).await;
        assert_eq!(common::sqlstate(&result).as_deref(), Some("55000"), "{sql}");
        tx.rollback().await.expect("rollback");
    }
}
