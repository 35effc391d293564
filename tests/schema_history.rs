//! The schema history of the three stores: every PostgreSQL migration with
//! its checksum, who applied it and how long it took; every MongoDB and S3
//! reconcile that changed something, with the definitions it reconciled to.
//! A boot that changes nothing records nothing.

mod common;

use common::Fixture;

#[tokio::test(flavor = "multi_thread")]
async fn each_store_has_its_history_and_an_idle_boot_adds_none() {
    let fixture = Fixture::new("schema-history").await;
    let stores = fixture.migrated_stores().await;
    let history = strata::schema::history(&stores.postgres)
        .await
        .expect("history");
    let embedded = strata::schema::embedded_versions();

    let shipped = strata::schema::postgres::embedded_migrations().expect("migrations");
    assert_eq!(history.postgres.len(), shipped.len());
    for (applied, migration) in history.postgres.iter().zip(&shipped) {
        assert_eq!(applied.version, migration.version);
        assert_eq!(applied.checksum, migration.checksum);
        assert!(applied.applied_by.starts_with("strata "), "{applied:?}");
    }
    for (store, changes) in [("mongo", &history.mongo), ("s3", &history.s3)] {
        assert_eq!(
            changes.len(),
            1,
            "{store}: the first reconcile: {changes:?}"
        );
        let change = &changes[0];
        assert_eq!(change.store, store);
        assert!(
            change.steps.as_array().is_some_and(|s| !s.is_empty()),
            "{change:?}"
        );
        let expected = if store == "mongo" {
            &embedded.mongo
        } else {
            &embedded.s3
        };
        assert_eq!(&change.definitions, expected);
    }

    // Nothing pending: nothing recorded.
    strata::schema::upgrade(&stores, &fixture.config(), &|_| {})
        .await
        .expect("idle upgrade");
    let again = strata::schema::history(&stores.postgres)
        .await
        .expect("history");
    assert_eq!(again.postgres.len(), history.postgres.len());
    assert_eq!(again.mongo.len(), 1);
    assert_eq!(again.s3.len(), 1);
}
