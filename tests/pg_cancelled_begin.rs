//! A unit of work whose caller goes away while its `BEGIN` is in flight (a
//! client that hung up) must leave no transaction behind on the pooled
//! connection: the next unit of work gets a transaction of its own. sqlx
//! 0.9's begin alone is not cancel-safe (its issue 4393); found by the
//! side-by-side bench, where writes after wrk's disconnects failed with
//! "cannot execute SELECT in a read-only transaction".

mod common;

use std::time::Duration;

use common::Fixture;
use strata::stores::postgres::Postgres;

#[tokio::test]
async fn a_dropped_begin_leaves_no_transaction_for_the_next_caller() {
    let fixture = Fixture::new("cancelled-begin").await;
    let mut config = fixture.config();
    // One connection: every unit of work reuses the one a dropped BEGIN used.
    config.postgres.pool_size = 1;
    let pg = Postgres::new(&config.postgres).expect("pool");
    let mut dropped = 0;
    for i in 0..400u64 {
        // Deadlines from 0 to ~2 ms: some land while BEGIN's answer is
        // in flight through PgBouncer.
        let deadline = Duration::from_micros((i * 53) % 2000);
        if tokio::time::timeout(deadline, pg.begin_read_only())
            .await
            .is_err()
        {
            dropped += 1;
        }
        let mut tx = pg.begin().await.expect("begin");
        let (read_only,): (String,) = pg
            .query_as("SELECT current_setting('transaction_read_only')")
            .fetch_one(&mut *tx)
            .await
            .expect("read the transaction's mode");
        assert_eq!(
            read_only, "off",
            "round {i}: a read-write BEGIN ran inside a dropped read-only one"
        );
        tx.commit().await.expect("commit");
    }
    assert!(dropped > 0, "no BEGIN was dropped: the test proved nothing");
}
