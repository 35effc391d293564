//! PostgreSQL (through PgBouncer) goes away while the data API is writing:
//! every request in flight or arriving meanwhile is either done (201) or a
//! 503 problem with `Retry-After` — never a 500, never a hang — and once
//! the store is back the API serves again without a restart. Every
//! acknowledged create reads back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::api::Api;
use common::deps;
use common::relay::Relay;
use serde_json::json;
use tokio::sync::Mutex;

/// Polls `done` until it holds (or fails the test after a minute).
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_lost_mid_request_is_503_with_retry_after_and_loses_nothing_acknowledged() {
    let mut relay = Relay::new(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        deps().pgbouncer_port,
    )));
    relay.start().await;
    let api = Api::start_with("api-outage", |fixture| {
        let mut url = url::Url::parse(&fixture.pooled_url()).expect("url");
        url.set_port(Some(relay.port)).expect("port");
        vec![("STRATA_POSTGRES__URL".to_string(), url.to_string())]
    })
    .await;

    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let api = Arc::new(api);
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (api, base, token) = (api.clone(), base.clone(), token.clone());
        let (created, unavailable, stop) = (created.clone(), unavailable.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let reply = api.post(&base, &token, json!({"kind": "outage"})).await;
                match reply.status {
                    201 => created
                        .lock()
                        .await
                        .push(reply.body["ref"].as_str().expect("ref").to_string()),
                    503 => {
                        assert!(reply.header("retry-after").is_some(), "{reply:?}");
                        assert_eq!(
                            reply.header("content-type"),
                            Some("application/problem+json")
                        );
                        unavailable.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => panic!("neither done nor 503: {reply:?}"),
                }
            }
        }));
    }

    let acknowledged = || created.try_lock().map(|c| c.len()).unwrap_or(0);
    until("writes before the outage", || acknowledged() >= 20).await;
    let before = acknowledged();

    // The store goes away: open connections are cut, new ones refused.
    relay.stop().await;
    until("503s during the outage", || {
        unavailable.load(Ordering::SeqCst) >= 10
    })
    .await;

    // Back: the same process serves writes again.
    relay.start().await;
    until("writes after the outage", || acknowledged() >= before + 20).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("writer");
    }

    // Everything acknowledged is there.
    let created = created.lock().await.clone();
    for record_ref in &created {
        let got = api.get(&format!("{base}/{record_ref}"), &token).await;
        assert_eq!(got.status, 200, "acknowledged {record_ref}: {got:?}");
    }
}
