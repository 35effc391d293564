//! Each dependency down in turn: `check` fails naming it within the
//! configured bound, `serve` does not become ready, and becomes ready
//! without a restart once the dependency comes back; a dependency lost
//! after boot turns `/readyz` to 503 and back.
//!
//! "Down" is a loopback relay in front of the real server whose port is
//! closed; "back" is the relay listening and forwarding to it.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::serve::Served;
use common::{Fixture, deps, run};

fn socket_of(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("a URL");
    let host = url.host_str().expect("a host").to_string();
    let port = url.port_or_known_default().expect("a port");
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

/// The fixture's settings with `dependency` reached through `relay`.
fn env_through(fixture: &Fixture, dependency: &str, relay: &Relay) -> Vec<(String, String)> {
    let mut env = fixture.env();
    let mut set = |key: &str, value: String| {
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value));
    };
    let d = deps();
    match dependency {
        "postgres" => {
            let mut pooled = url::Url::parse(&fixture.pooled_url()).expect("url");
            pooled.set_port(Some(relay.port)).expect("port");
            let mut direct = url::Url::parse(&fixture.direct_url()).expect("url");
            direct.set_port(Some(relay.port)).expect("port");
            set("STRATA_POSTGRES__URL", pooled.to_string());
            set("STRATA_POSTGRES__DIRECT_URL", direct.to_string());
            // The relay forwards to PostgreSQL itself, not PgBouncer.
            set("STRATA_POSTGRES__PGBOUNCER", "false".into());
        }
        "mongo" => {
            let mut url = url::Url::parse(&d.mongo_url).expect("url");
            url.set_port(Some(relay.port)).expect("port");
            // Talk to this address only, not to the members the server lists.
            url.query_pairs_mut()
                .append_pair("directConnection", "true");
            set("STRATA_MONGO__URL", url.to_string());
        }
        "s3" => set("STRATA_S3__ENDPOINT", format!("http://{}", relay.addr())),
        other => panic!("unknown dependency {other}"),
    }
    env
}

fn relay_for(dependency: &str) -> Relay {
    let d = deps();
    let target = match dependency {
        "postgres" => SocketAddr::from(([127, 0, 0, 1], d.pg_port)),
        "mongo" => socket_of(&d.mongo_url),
        "s3" => socket_of(&d.s3_endpoint),
        other => panic!("unknown dependency {other}"),
    };
    Relay::new(target)
}

/// `check` with `dependency` behind a relay that is down (port closed) or,
/// with `stalled`, accepts connections and never answers.
async fn check_fails_naming(dependency: &str, stalled: bool) {
    let fixture = Fixture::new(&format!("down-{dependency}")).await;
    let mut relay = relay_for(dependency);
    if stalled {
        relay.stall().await;
    }
    let mut command = common::strata_command(&["check"]);
    command.envs(env_through(&fixture, dependency, &relay));
    command.env("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "2");
    let started = Instant::now();
    let (code, stdout, stderr) = run(command);
    let elapsed = started.elapsed();

    assert_eq!(
        code,
        Some(3),
        "exit code for an unreachable dependency\n{stdout}\n{stderr}"
    );
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "only {dependency} fails:\n{stdout}");
    assert!(failed[0].contains(dependency), "{stdout}");
    assert!(
        failed[0].contains(&relay.addr().to_string()),
        "names the address: {stdout}"
    );
    assert!(failed[0].contains("gave up after"), "{stdout}");
    // Bounded by boot.dependency_timeout_secs (2 s), plus process start-up.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    // The other two dependencies still pass.
    for other in ["postgres", "mongo", "s3"]
        .iter()
        .filter(|d| **d != dependency)
    {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("OK") && l.contains(other)),
            "{other} should pass:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&deps().pg_app_password),
        "no password in output"
    );
}

#[tokio::test]
async fn check_names_unreachable_postgres() {
    check_fails_naming("postgres", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gives_up_on_silent_postgres_within_the_bound() {
    check_fails_naming("postgres", true).await;
}

#[tokio::test]
async fn check_names_unreachable_mongo() {
    check_fails_naming("mongo", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gives_up_on_silent_mongo_within_the_bound() {
    check_fails_naming("mongo", true).await;
}

#[tokio::test]
async fn check_names_unreachable_s3() {
    check_fails_naming("s3", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gives_up_on_silent_s3_within_the_bound() {
    check_fails_naming("s3", true).await;
}

/// `serve` with `dependency` down: not ready, no READY=1; then the
/// dependency comes up and the same process becomes ready.
async fn serve_waits_for(dependency: &str) {
    let fixture = Fixture::new(&format!("late-{dependency}")).await;
    let mut relay = relay_for(dependency);
    let mut command = common::strata_command(&["serve"]);
    command.envs(env_through(&fixture, dependency, &relay));
    command.env("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "1");
    let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());

    // Wait until the boot has given up on one round for this dependency.
    let (status, body) = served
        .wait_readyz(Duration::from_secs(60), |_, body| {
            body["dependencies"][dependency]["error"].is_string()
        })
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    let error = body["dependencies"][dependency]["error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("cannot reach"), "{body}");
    let step = body["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == dependency))
        .cloned()
        .unwrap_or_default();
    assert_eq!(step["state"], "running", "{body}");
    assert!(!served.wait_notification("READY=1", Duration::from_millis(200)));
    assert!(
        served.child.try_wait().expect("child status").is_none(),
        "serve keeps waiting"
    );

    // The data API answers while booting: 503, a problem (JSON), Retry-After.
    let response = reqwest::get(format!("{}/v1/anything", served.api))
        .await
        .expect("data API answers");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "starting");

    relay.start().await;
    assert!(
        served.wait_notification("READY=1", Duration::from_secs(120)),
        "{dependency} came back but serve did not become ready:\n{}",
        served.stderr()
    );
    let (status, body) = served.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    // Lost after boot: /readyz turns 503 naming it, and 200 when it is back.
    relay.stop().await;
    let (status, body) = served
        .wait_readyz(Duration::from_secs(30), |status, _| status == 503)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["dependencies"][dependency]["ok"], false, "{body}");
    relay.start().await;
    let (status, body) = served
        .wait_readyz(Duration::from_secs(30), |status, _| status == 200)
        .await;
    assert_eq!(status, 200, "{body}");

    // Gone silent (accepts, never answers): the health check times out.
    relay.stop().await;
    relay.stall().await;
    let (status, body) = served
        .wait_readyz(Duration::from_secs(30), |status, _| status == 503)
        .await;
    assert_eq!(status, 503, "{body}\n{}", served.stderr());
    assert_eq!(body["dependencies"][dependency]["ok"], false, "{body}");
    relay.stop().await;
    relay.start().await;
    let (status, body) = served
        .wait_readyz(Duration::from_secs(30), |status, _| status == 200)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.stop(), Some(0));
}

// Multi-threaded: the relay's tasks keep running while the test blocks on
// the notify socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_postgres() {
    serve_waits_for("postgres").await;
}

// Multi-threaded: the relay's tasks keep running while the test blocks on
// the notify socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_mongo() {
    serve_waits_for("mongo").await;
}

// Multi-threaded: the relay's tasks keep running while the test blocks on
// the notify socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_s3() {
    serve_waits_for("s3").await;
}

/// A `mongodb+srv` name that does not resolve is a DNS outage: exit 3
/// naming mongo (retried by `serve`), not "invalid configuration" (exit 2,
/// which the systemd unit never restarts).
#[tokio::test]
async fn an_unresolvable_srv_name_is_unreachable_not_bad_config() {
    let fixture = Fixture::new("srv").await;
    let mut command = fixture.strata(&["check"]);
    command.env(
        "STRATA_MONGO__URL",
        "mongodb+srv://cluster.strata-test.invalid/",
    );
    let (code, stdout, stderr) = run(command);
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].contains("mongo") && failed[0].contains("SRV"),
        "{stdout}"
    );
}
