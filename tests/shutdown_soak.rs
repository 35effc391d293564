//! Soak: `strata serve` stops cleanly whenever SIGTERM comes, and rides
//! out store outages without a restart. Against the real local servers.
//!
//! 1. 100 start/stop cycles, SIGTERM at a random moment from the first log
//!    line to well after ready; every 10th cycle on brand-new stores, so the
//!    signal also lands during the schema upgrade. Each exit is 0 after the
//!    ordered stop, no log mentions a panic, no advisory lock is left in
//!    PostgreSQL, no Object Lock probe bucket in S3, and `strata migrate`
//!    completes an interrupted upgrade (nothing was half-applied).
//! 2. Each store (PostgreSQL, PgBouncer, the MongoDB server, radosgw) is
//!    stopped for a few seconds at a random moment while strata serves:
//!    `/readyz` turns 503 and back to 200, the same process stays up, and
//!    it never panics.
//! 3. SIGTERM while the boot waits for an unreachable dependency (each of
//!    the three at a closed port): exit 0 after the ordered stop.
//!
//! The tests take turns (part 2 stops shared servers). The random
//! delays are the point of the test (where SIGTERM lands, how long an
//! outage lasts); everything else waits on log lines or `/readyz` with a
//! deadline. `STRATA_TEST_SOAK_SEED` replays a run (the seed is printed).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::logged::{Line, Logged};
use common::outage::{Down, SERVICES};
use common::{Fixture, deps};
use sqlx::Connection;

const CYCLES: usize = 100;
/// strata processes at once (each on its own stores and ports).
const LANES: usize = 4;
/// Every FRESH_EVERY-th cycle boots brand-new stores (a schema upgrade).
const FRESH_EVERY: usize = 10;
/// How far past ready a SIGTERM may land: beyond a health check (1 s).
const AFTER_READY: Duration = Duration::from_millis(1500);
/// Hang detectors, not timing assertions.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(40);
const LOCK_GONE_LIMIT: Duration = Duration::from_secs(10);
const READYZ_LIMIT: Duration = Duration::from_secs(90);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// xorshift64*: enough randomness for where a signal lands, replayable.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("STRATA_TEST_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("soak seed: STRATA_TEST_SOAK_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [low, high].
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_micros() as u64;
        low + Duration::from_micros(self.next() % (span + 1))
    }
}

/// Where in its life the process was when SIGTERM came, read from its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Checking the dependencies (or before).
    Boot,
    /// Upgrading the schema (a fresh store: "schema: ..." lines).
    Schema,
    Ready,
}

fn phase_at_stop(lines: &[Line]) -> Phase {
    let before_stop = lines.iter().take_while(|l| l.message != "stopping");
    let mut phase = Phase::Boot;
    for line in before_stop {
        if line.message == "ready" {
            phase = Phase::Ready;
        } else if line.message.starts_with("schema: ") && phase == Phase::Boot {
            phase = Phase::Schema;
        }
    }
    phase
}

fn mentions_panic(log: &str) -> bool {
    log.to_ascii_lowercase().contains("panic")
}

/// Advisory locks held in `database`, polled until none is left (the
/// server drops a dead session's locks once it notices the closed socket).
async fn advisory_locks_left(database: &str) -> i64 {
    let mut admin = sqlx::PgConnection::connect(&deps().pg_superuser_url)
        .await
        .expect("connect as superuser");
    let deadline = Instant::now() + LOCK_GONE_LIMIT;
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND d.datname = $1",
        )
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .expect("read pg_locks");
        if held == 0 || Instant::now() >= deadline {
            let _ = admin.close().await;
            return held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Object Lock probe buckets left under this fixture's prefix.
async fn probe_buckets_left(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let listed = s3.list_buckets().send().await.expect("list buckets");
    listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|name| name.starts_with(&format!("{prefix}-lockprobe-")))
        .map(str::to_string)
        .collect()
}

/// Deletes the fixture's (empty) buckets: radosgw allows 1000 buckets per
/// user and fixtures otherwise leave theirs behind; the soak makes many.
async fn delete_buckets(fixture: &Fixture) {
    let s3 = s3_client(fixture);
    let Ok(listed) = s3.list_buckets().send().await else {
        return;
    };
    let prefix = format!("{}-", fixture.bucket_prefix);
    for name in listed.buckets().iter().filter_map(|b| b.name()) {
        if name.starts_with(&prefix)
            && let Err(e) = s3.delete_bucket().bucket(name).send().await
        {
            eprintln!("could not delete bucket {name}: {e:?}");
        }
    }
}

fn s3_client(fixture: &Fixture) -> aws_sdk_s3::Client {
    let config = fixture.config();
    strata::stores::s3::S3::new(&config.s3).client().clone()
}

/// Boots `fixture` to ready and stops it; returns the first log line and
/// the ready line, and the first "schema: " line if there was one.
fn boot_once(fixture: &Fixture) -> (Line, Option<Line>, Line) {
    let mut strata = Logged::spawn(fixture.strata(&["serve"]));
    let ready = strata.wait_message("ready", BOOT_LIMIT);
    let ready = ready.unwrap_or_else(|| panic!("no ready line:\n{}", strata.text()));
    let first = strata.seen[0].clone();
    let schema = strata
        .seen
        .iter()
        .find(|l| l.message.starts_with("schema: "))
        .cloned();
    strata.signal("TERM");
    let status = strata.wait_exit(STOP_LIMIT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "calibration stop:\n{}",
        strata.text()
    );
    (first, schema, ready)
}

/// How long boots take on this machine, measured before the cycles.
#[derive(Debug, Clone, Copy)]
struct Calibration {
    /// From the first log line to ready, on fresh stores.
    fresh_ready: Duration,
    /// From the first "schema: " line to ready, on fresh stores.
    schema_length: Duration,
    /// From the first log line to ready, on current stores.
    current_ready: Duration,
}

#[test]
fn sigterm_at_random_moments_always_stops_cleanly() {
    let _serial = SERIAL.blocking_lock();
    let started = Instant::now();
    let mut rng = Rng::from_env();

    // Calibration: boots of fresh stores (and when their schema step
    // starts), then one of current stores. The faster of two fresh boots:
    // right after a restart radosgw stalls the first CreateBucket (~15 s).
    let runtime = runtime();
    let mut fresh = Vec::new();
    for _ in 0..2 {
        let fixture = runtime.block_on(Fixture::new("soakc"));
        let (first, schema, ready) = boot_once(&fixture);
        let Some(schema) = schema else {
            panic!("a first boot upgrades the schema and says so")
        };
        fresh.push((ready.at - first.at, ready.at - schema.at, fixture));
    }
    fresh.sort_by_key(|(ready, _, _)| *ready);
    let (fresh_ready, schema_length, current) = fresh.swap_remove(0);
    for (_, _, other) in fresh {
        runtime.block_on(delete_buckets(&other));
    }
    let (current_first, _, current_ready) = boot_once(&current);
    let calibration = Calibration {
        fresh_ready,
        schema_length,
        current_ready: current_ready.at - current_first.at,
    };
    eprintln!("calibration: {calibration:?}");

    // Most of a cycle is waiting (the random delay, the boot's round
    // trips): LANES processes at once, on their own ports; on the same
    // current stores (as several instances would), so that the soak makes
    // few databases.
    let failed = AtomicBool::new(false);
    let phases = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|lane| {
                let seed = rng.next();
                let failed = &failed;
                let current = &current;
                scope.spawn(move || {
                    let result = std::panic::catch_unwind(|| {
                        lane_cycles(lane, current, calibration, seed, failed)
                    });
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        let mut phases = BTreeMap::<Phase, usize>::new();
        for lane in lanes {
            match lane.join().expect("lane thread") {
                Ok(counted) => {
                    for (phase, n) in counted {
                        *phases.entry(phase).or_default() += n;
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        phases
    });

    eprintln!(
        "{CYCLES} cycles in {:?}; SIGTERM landed: {phases:?}",
        started.elapsed()
    );
    runtime.block_on(delete_buckets(&current));
    assert_eq!(phases.values().sum::<usize>(), CYCLES);
    // The signal landed in every part of a life at least once.
    for phase in [Phase::Boot, Phase::Schema, Phase::Ready] {
        assert!(
            phases.contains_key(&phase),
            "never in {phase:?}: {phases:?}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One lane's share of the cycles (cycle numbers `lane`, `lane + LANES`,
/// ...), one after the other. Stops early when another lane failed.
fn lane_cycles(
    lane: usize,
    current: &Fixture,
    calibration: Calibration,
    seed: u64,
    failed: &AtomicBool,
) -> BTreeMap<Phase, usize> {
    let runtime = runtime();
    let mut rng = Rng(seed | 1);
    let ports = (common::free_port(), common::free_port());
    let mut phases = BTreeMap::new();
    for cycle in (lane..CYCLES).step_by(LANES) {
        if failed.load(Ordering::SeqCst) {
            break;
        }
        let phase = runtime.block_on(one_cycle(cycle, current, ports, calibration, &mut rng));
        *phases.entry(phase).or_default() += 1;
    }
    phases
}

/// Starts strata, SIGTERMs it at a random moment, checks the stop and
/// what it left behind. Returns where the signal landed.
async fn one_cycle(
    cycle: usize,
    current: &Fixture,
    (api_port, admin_port): (u16, u16),
    calibration: Calibration,
    rng: &mut Rng,
) -> Phase {
    let fresh = cycle.is_multiple_of(FRESH_EVERY);
    let new_fixture = if fresh {
        Some(Fixture::new("soakf").await)
    } else {
        None
    };
    let fixture = new_fixture.as_ref().unwrap_or(current);
    // Half the fresh cycles aim at the schema step, which is short: from
    // its first log line, within its calibrated length.
    let aim_at_schema = fresh && cycle.is_multiple_of(2 * FRESH_EVERY);
    let delay = match (fresh, aim_at_schema) {
        (true, true) => rng.between(Duration::ZERO, calibration.schema_length),
        (true, false) => rng.between(Duration::ZERO, calibration.fresh_ready + AFTER_READY),
        (false, _) => rng.between(Duration::ZERO, calibration.current_ready + AFTER_READY),
    };

    let mut command = fixture.strata(&["serve"]);
    if !fresh {
        command
            .env("STRATA_API__LISTEN", format!("127.0.0.1:{api_port}"))
            .env("STRATA_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"));
    }
    let mut strata = Logged::spawn(command);
    let from = if aim_at_schema {
        strata.wait_line(BOOT_LIMIT, |l| l.message.starts_with("schema: "))
    } else {
        strata.wait_line(BOOT_LIMIT, |_| true)
    };
    let Some(from) = from else {
        let status = strata.wait_exit(Duration::ZERO);
        panic!(
            "cycle {cycle}: no such log line (exit: {status:?}):\n{}",
            strata.text()
        );
    };
    // The deliberate random delay: where the signal lands.
    std::thread::sleep((from.at + delay).saturating_duration_since(Instant::now()));
    strata.signal("TERM");
    let status = strata.wait_exit(STOP_LIMIT);
    let log = strata.text();
    let context = format!(
        "cycle {cycle} (fresh: {fresh}, SIGTERM {delay:?} after {:?}):\n{log}",
        from.message
    );

    assert!(
        status.is_some(),
        "did not stop in {STOP_LIMIT:?}: {context}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{context}");
    assert!(!mentions_panic(&log), "{context}");
    let messages: Vec<&str> = strata.seen.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages.last(), Some(&"stopped"), "{context}");
    assert!(messages.contains(&"stopping"), "{context}");

    let locks = advisory_locks_left(&fixture.pg_database).await;
    assert_eq!(locks, 0, "advisory lock left: {context}");
    let buckets = probe_buckets_left(&s3_client(fixture), &fixture.bucket_prefix).await;
    assert!(
        buckets.is_empty(),
        "probe buckets {buckets:?} left: {context}"
    );
    if fresh {
        // Whatever the signal cut, the upgrade completes: a half-applied
        // migration would fail here ("relation already exists").
        let (code, _, stderr) = common::run(fixture.strata(&["migrate"]));
        assert_eq!(code, Some(0), "migrate after {context}\nmigrate: {stderr}");
        delete_buckets(fixture).await;
    }
    phase_at_stop(&strata.seen)
}

/// Polls `/readyz` until its status is `want`, up to READYZ_LIMIT.
async fn wait_readyz(admin: &str, want: u16) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let deadline = Instant::now() + READYZ_LIMIT;
    loop {
        let (status, body) = match client.get(format!("{admin}/readyz")).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        };
        if status == want || Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The dependency `/readyz` reports lost when `service` stops.
fn dependency_of(service: &str) -> &'static str {
    match service {
        "postgres" | "pgbouncer" => "postgres",
        "mongo" => "mongo",
        "s3" => "s3",
        other => panic!("unknown service {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outages_turn_readyz_503_and_back_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = Rng::from_env();
    let fixture = Fixture::new("outage").await;
    let admin = format!("http://{}", fixture.admin_addr());
    let mut strata = Logged::spawn(fixture.strata(&["serve"]));
    let ready = strata.wait_message("ready", BOOT_LIMIT);
    assert!(ready.is_some(), "no ready line:\n{}", strata.text());

    let mut services = SERVICES;
    // Fisher-Yates: a random order of outages.
    for i in (1..services.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        services.swap(i, j);
    }
    for service in services {
        let (status, body) = wait_readyz(&admin, 200).await;
        assert_eq!(status, 200, "not ready before stopping {service}: {body}");
        // The deliberate random moment and length of the outage.
        tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_secs(1))).await;
        let mut down = Down::stop(service);
        let outage_from = Instant::now();
        let (status, body) = wait_readyz(&admin, 503).await;
        assert_eq!(status, 503, "{service} stopped, /readyz: {body}");
        let dependency = dependency_of(service);
        assert_eq!(body["dependencies"][dependency]["ok"], false, "{body}");
        assert!(
            strata.alive(),
            "strata exited with {service} down:\n{}",
            strata.text()
        );
        let outage = rng.between(Duration::from_secs(2), Duration::from_secs(5));
        tokio::time::sleep(outage.saturating_sub(outage_from.elapsed())).await;
        let restart = Instant::now();
        down.start();
        let restarted_in = restart.elapsed();
        let (status, body) = wait_readyz(&admin, 200).await;
        assert_eq!(status, 200, "{service} back, /readyz: {body}");
        assert!(strata.alive(), "strata exited after {service} came back");
        eprintln!(
            "{service}: down {:?} (its restart took {restarted_in:?}), ready again after {:?}",
            outage,
            restart.elapsed()
        );
    }

    // The same process all along, and it still stops cleanly.
    strata.signal("TERM");
    let status = strata.wait_exit(STOP_LIMIT);
    let log = strata.text();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(!mentions_panic(&log), "{log}");
    delete_buckets(&fixture).await;
    eprintln!("outages done in {:?}", started.elapsed());
}

/// The fixture's settings with `dependency` at a closed loopback port.
fn env_unreachable(fixture: &Fixture, dependency: &str) -> Vec<(String, String)> {
    let closed = common::free_port();
    let mut env = fixture.env();
    let mut set = |key: &str, value: String| {
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value));
    };
    // One short round per wait, so that "still waiting" comes soon.
    set("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "1".into());
    match dependency {
        "postgres" => {
            for (key, url) in [
                ("STRATA_POSTGRES__URL", fixture.pooled_url()),
                ("STRATA_POSTGRES__DIRECT_URL", fixture.direct_url()),
            ] {
                let mut url = url::Url::parse(&url).expect("url");
                url.set_port(Some(closed)).expect("port");
                set(key, url.to_string());
            }
        }
        "mongo" => set(
            "STRATA_MONGO__URL",
            format!("mongodb://127.0.0.1:{closed}/?directConnection=true"),
        ),
        "s3" => set("STRATA_S3__ENDPOINT", format!("http://127.0.0.1:{closed}")),
        other => panic!("unknown dependency {other}"),
    }
    env
}

#[test]
fn sigterm_while_waiting_for_an_unreachable_dependency_stops_cleanly() {
    let _serial = SERIAL.blocking_lock();
    let mut rng = Rng::from_env();
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new("waiting"));
    for dependency in ["postgres", "mongo", "s3"] {
        let mut command = common::strata_command(&["serve"]);
        command.envs(env_unreachable(&fixture, dependency));
        let mut strata = Logged::spawn(command);
        let field = format!("\"dependency\":\"{dependency}\"");
        let waiting = strata.wait_line(BOOT_LIMIT, |l| {
            l.message.ends_with("still waiting") && l.raw.contains(&field)
        });
        assert!(
            waiting.is_some(),
            "{dependency}: no wait:\n{}",
            strata.text()
        );
        // The deliberate random moment: in a probe or between two.
        std::thread::sleep(rng.between(Duration::ZERO, Duration::from_secs(1)));
        strata.signal("TERM");
        let status = strata.wait_exit(STOP_LIMIT);
        let log = strata.text();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{dependency}:\n{log}"
        );
        assert!(!mentions_panic(&log), "{dependency}:\n{log}");
        let last = strata.seen.last().map(|l| l.message.as_str());
        assert_eq!(last, Some("stopped"), "{dependency}:\n{log}");
    }
    runtime.block_on(delete_buckets(&fixture));
}
