//! The split pattern under a real crash and a real large body, against the
//! real servers (PostgreSQL through PgBouncer, mongod, Ceph radosgw):
//!
//! - `strata serve` killed with SIGKILL in the middle of 1,000 concurrent
//!   output writes: after a restart on the same stores, `strata reconcile`
//!   finds no dangling pointer, every write answered 201 reads back
//!   byte-identical from an activity that succeeded pointing at it, and
//!   every other write is either wholly there or not at all.
//! - A 200 MiB body streamed to the output route is never held in memory:
//!   the serve process's peak RSS grows by far less than the body.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::Api;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Writes in the crash test, how many are in flight at once, and how many
/// must have been acknowledged when strata is killed.
const WRITES: usize = 1000;
const IN_FLIGHT: usize = 48;
const KILL_AFTER_ACKS: usize = 400;

/// The multipart threshold (the smallest part S3 accepts).
const PART_SIZE: usize = 5 * MIB;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Pseudo-random bytes (xorshift), written into `out`.
fn fill_noise(out: &mut [u8], seed: &mut u64) {
    for chunk in out.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    let mut seed = seed;
    fill_noise(&mut out, &mut seed);
    out
}

/// The body of write `i`: varied sizes from one byte to above the part
/// size (a multipart upload), Markdown or JSON.
fn payload(i: usize) -> (&'static str, Vec<u8>) {
    let size = if i % 200 == 37 {
        PART_SIZE + 1 + i
    } else if i % 100 == 11 {
        MIB + i
    } else if i % 20 == 3 {
        256 * KIB + 13 * i
    } else {
        1 + (i * 7919) % (32 * KIB)
    };
    let seed = i as u64 + 1;
    if i.is_multiple_of(4) {
        let text = hex::encode(noise(size / 2, seed));
        let document = json!({"write": i, "text": text});
        (
            "application/json",
            serde_json::to_vec(&document).expect("json"),
        )
    } else {
        ("text/markdown", noise(size, seed))
    }
}

/// One write and what strata answered.
#[derive(Debug)]
struct Write {
    index: usize,
    activity: String,
    content_type: &'static str,
    size: usize,
    sha256: String,
    answer: Answer,
}

#[derive(Debug)]
enum Answer {
    /// 201, with the output's ref.
    Created(String),
    /// 503: strata says a store was too slow and nothing was changed
    /// (the shared servers on a busy machine): the write must be absent.
    Unavailable(String),
    /// Any other status (none is expected).
    Other(String),
    /// No answer: the connection failed or was cut.
    None(String),
}

/// Requests (read-only, or refused with nothing changed) sent again while
/// strata answers 503 "retry later": on this shared 2-core machine a store
/// is sometimes slower than strata's timeouts. Polls with a deadline.
async fn retrying_503(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = request().send().await.map_err(|e| format!("{e:?}"))?;
        if response.status() != 503 || Instant::now() >= deadline {
            return Ok(response);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Requests at once for what is not under test (creating the activities,
/// reading them back): as many as the serve's PostgreSQL pool.
const READERS: usize = 16;

async fn create_running_activities(api: &Api, tenant: &str, token: &str, n: usize) -> Vec<String> {
    let url = api.url(&format!("/v1/tenants/{tenant}/activities"));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(READERS));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, url, token) = (api.client.clone(), url.clone(), token.to_string());
        let permit = semaphore.clone().acquire_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = permit.await.expect("semaphore");
            let created = retrying_503(|| {
                client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"kind": "blog", "status": "running"}))
            })
            .await
            .expect("strata answers");
            assert_eq!(created.status(), 201);
            let body: Value = created.json().await.expect("json");
            body["ref"].as_str().expect("ref").to_string()
        }));
    }
    let mut refs = Vec::with_capacity(n);
    for task in tasks {
        refs.push(task.await.expect("task"));
    }
    refs
}

/// What a serve answers for one write's activity: its status and output
/// ref, and the output (status, content type, ETag, and whether the bytes
/// are those of the write).
type ReadBack = (String, Option<String>, Option<(u16, String, String, bool)>);

/// Reads write `index`'s activity and output back through a serve at
/// `base` and compares the bytes with the body sent (generated again:
/// cheaper than hashing both in this unoptimised test build, and
/// byte-identical is what is checked; the ETag is the SHA-256 strata
/// recorded). `Err` says what went wrong (the caller adds the serve's log).
async fn read_back(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    token: &str,
    (index, activity): (usize, &str),
) -> Result<ReadBack, String> {
    let url = format!("{base}/v1/tenants/{tenant}/activities/{activity}");
    let record = retrying_503(|| client.get(&url).bearer_auth(token))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = record.status();
    let text = record
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    if code != 200 {
        return Err(format!("GET {url}: {code} {text}"));
    }
    let record: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let status = record["status"].as_str().unwrap_or_default().to_string();
    let output = record["outputRef"].as_str().map(str::to_string);
    if output.is_none() {
        return Ok((status, output, None));
    }
    let url = format!("{url}/output");
    let content = retrying_503(|| client.get(&url).bearer_auth(token))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = content.status().as_u16();
    let header = |name: &str| {
        content
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, etag) = (header("content-type"), header("etag"));
    let bytes = content
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    Ok((
        status,
        output,
        Some((code, content_type, etag, bytes == payload(index).1)),
    ))
}

fn reconcile(api: &Api) -> (Option<i32>, Value) {
    let (code, stdout, stderr) = common::run(api.fixture.strata(&["reconcile", "--json"]));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("JSON from reconcile ({e}): {stdout}{stderr}"));
    (code, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serve_killed_during_concurrent_writes_leaves_no_dangling_pointer() {
    let part_size = PART_SIZE.to_string();
    let settings = [("STRATA_CONTENT__PART_SIZE_BYTES", part_size.as_str())];
    let mut api = Api::start("content-crash", &settings).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let activities = create_running_activities(&api, &tenant, &token, WRITES).await;

    // The writes: IN_FLIGHT at a time; each answer 201 bumps the count.
    let started = Instant::now();
    let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0usize);
    let acks_tx = Arc::new(acks_tx);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(WRITES);
    for (index, activity) in activities.iter().enumerate() {
        let url = api.url(&format!(
            "/v1/tenants/{tenant}/activities/{activity}/output"
        ));
        let (client, token, activity) = (api.client.clone(), token.clone(), activity.clone());
        let (permit, acks_tx) = (semaphore.clone().acquire_owned(), acks_tx.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit.await.expect("semaphore");
            let (content_type, body) = payload(index);
            let mut write = Write {
                index,
                activity,
                content_type,
                size: body.len(),
                sha256: sha256(&body),
                answer: Answer::None(String::new()),
            };
            let sent = client
                .put(&url)
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status() == 201 => {
                    // Acknowledged: the whole answer arrived. (A 201 cut
                    // short by the kill counts as unanswered: whole or
                    // absent, like any other.)
                    let body: Value = answer.json().await.unwrap_or(Value::Null);
                    match body["ref"].as_str() {
                        Some(output) => {
                            assert_eq!(body["sha256"], write.sha256.as_str(), "{body}");
                            assert_eq!(body["size"], write.size, "{body}");
                            write.answer = Answer::Created(output.to_string());
                            acks_tx.send_modify(|n| *n += 1);
                        }
                        None => write.answer = Answer::None(format!("201, cut: {body}")),
                    }
                }
                Ok(answer) => {
                    let status = answer.status();
                    let text = answer.text().await.unwrap_or_default();
                    write.answer = if status == 503 {
                        Answer::Unavailable(text)
                    } else {
                        Answer::Other(format!("{status}: {text}"))
                    };
                }
                Err(e) => write.answer = Answer::None(e.to_string()),
            }
            write
        }));
    }

    // Kill when enough writes are acknowledged, with the rest in flight or
    // queued (a count, not a clock, decides the moment).
    let enough = tokio::time::timeout(
        Duration::from_secs(120),
        acks_rx.wait_for(|n| *n >= KILL_AFTER_ACKS),
    )
    .await
    .is_ok_and(|seen| seen.is_ok());
    let acked_at_kill = *acks_rx.borrow();
    api.served.child.kill().expect("SIGKILL strata serve");
    let killed_after = started.elapsed();
    let exit = api.served.child.wait().expect("wait for strata serve");
    assert!(
        enough,
        "only {acked_at_kill} writes acknowledged in time:\n{}",
        api.served.stderr()
    );
    assert_eq!(exit.signal(), Some(9), "killed by SIGKILL: {exit:?}");

    let mut writes = Vec::with_capacity(WRITES);
    for task in tasks {
        writes.push(task.await.expect("write task"));
    }
    let acked = writes
        .iter()
        .filter(|w| matches!(w.answer, Answer::Created(_)))
        .count();
    assert!(
        (KILL_AFTER_ACKS..WRITES).contains(&acked),
        "killed with some but not all writes acknowledged: {acked}"
    );
    // Before the kill every write is answered 201 (or 503, nothing
    // changed); after it, none is answered at all.
    let answered: Vec<&str> = writes
        .iter()
        .filter_map(|w| match &w.answer {
            Answer::Other(answer) => Some(answer.as_str()),
            _ => None,
        })
        .collect();
    let cut = writes
        .iter()
        .find_map(|w| match &w.answer {
            Answer::None(error) => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert!(
        answered.is_empty(),
        "answers other than 201: {answered:?}\n{}",
        api.served.stderr()
    );

    // Restart on the same stores; reconcile: nothing dangles, and only
    // writes in flight at the kill (or refused with 503) can have left an
    // orphan each.
    let restarted = api.start_another(&settings);
    let (code, report) = reconcile(&api);
    assert_eq!(report["dangling"], json!([]), "{report}");
    assert_eq!(code, Some(0), "{report}");
    let orphans = report["orphans"].as_array().expect("orphans").len();
    let refused = writes
        .iter()
        .filter(|w| matches!(w.answer, Answer::Unavailable(_)))
        .count();
    assert!(
        orphans <= IN_FLIGHT + refused,
        "{orphans} orphans: {report}"
    );

    // Every acknowledged write reads back byte-identical from an activity
    // that succeeded pointing at it; every other one is whole or absent.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(READERS));
    let mut checks = Vec::with_capacity(WRITES);
    for write in writes {
        let (client, base) = (api.client.clone(), restarted.api.clone());
        let (tenant, token) = (tenant.clone(), token.clone());
        let permit = semaphore.clone().acquire_owned();
        checks.push(tokio::spawn(async move {
            let _permit = permit.await.expect("semaphore");
            let which = (write.index, write.activity.as_str());
            let read = read_back(&client, &base, &tenant, &token, which).await;
            (write, read)
        }));
    }
    let (mut committed_unacked, mut absent, mut unavailable) = (0, 0, 0);
    for check in checks {
        let (write, read) = check.await.expect("check task");
        let (status, output, content) =
            read.unwrap_or_else(|e| panic!("reading {write:?} back: {e}\n{}", restarted.stderr()));
        let expected = Some((
            200,
            write.content_type.to_string(),
            format!("\"{}\"", write.sha256),
            true,
        ));
        match (&write.answer, status.as_str()) {
            (Answer::Created(acked_ref), _) => {
                assert_eq!(status, "succeeded", "acknowledged write {write:?}");
                assert_eq!(output.as_ref(), Some(acked_ref), "{write:?}");
                assert_eq!(content, expected, "acknowledged write {write:?}");
            }
            (Answer::Unavailable(answer), _) => {
                assert_eq!((status.as_str(), &output), ("running", &None), "{answer}");
                unavailable += 1;
            }
            (_, "succeeded") => {
                assert!(output.is_some(), "{write:?}");
                assert_eq!(content, expected, "committed, unanswered write {write:?}");
                committed_unacked += 1;
            }
            (_, _) => {
                assert_eq!((status.as_str(), &output), ("running", &None), "{write:?}");
                absent += 1;
            }
        }
    }
    eprintln!(
        "{WRITES} writes ({IN_FLIGHT} in flight): {acked} acknowledged ({acked_at_kill} when \
         killed, {:.1} s after the first), {unavailable} refused with 503, {committed_unacked} committed but \
         unanswered, {absent} not stored; \
         {orphans} orphans (an unanswered write: {cut})",
        killed_after.as_secs_f64()
    );
    assert_eq!(acked + unavailable + committed_unacked + absent, WRITES);
    drop(restarted);
}

/// VmRSS and VmHWM (peak RSS) of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process used so far, in clock ticks
/// (USER_HZ: 100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// The streamed upload's body size, and the bound on the serve process's
/// peak RSS growth while it streams (see the test).
const BIG: usize = 200 * MIB;
const BIG_PART_SIZE: usize = 8 * MIB;
const RSS_GROWTH_BOUND: u64 = 64 * MIB as u64;

/// The big body repeats a block of noise whose length is no divisor of
/// the part size, so no two parts are alike; generating it costs a copy.
const PERIOD: usize = MIB + 4093;
const CHUNK: usize = 256 * KIB;

/// Bytes `at..at + out.len()` of the big body.
fn big_body(pattern: &[u8], at: usize, out: &mut [u8]) {
    let mut filled = 0;
    while filled < out.len() {
        let start = (at + filled) % PERIOD;
        let n = (PERIOD - start).min(out.len() - filled);
        out[filled..filled + n].copy_from_slice(&pattern[start..start + n]);
        filled += n;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_upload_is_streamed_not_held_in_memory() {
    let part_size = BIG_PART_SIZE.to_string();
    let api = Api::start(
        "content-stream",
        &[("STRATA_CONTENT__PART_SIZE_BYTES", part_size.as_str())],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let activity = create_running_activities(&api, &tenant, &token, 1)
        .await
        .remove(0);
    let path = format!("/v1/tenants/{tenant}/activities/{activity}/output");
    let pid = api.served.child.id();
    let pattern = noise(PERIOD, 0x5EED);

    // Reset the peak to the current RSS (clear_refs "5", Linux >= 4.0), so
    // VmHWM afterwards is the upload's peak. Should the reset not happen,
    // VmHWM only grows: the measured growth is then an upper bound.
    let (_, boot_peak) = memory(pid);
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let (rss_before, _) = memory(pid);
    let cpu_before = cpu_ticks(pid);

    // The body is generated as it is sent, over a plain HTTP/1.1
    // connection: no 200 MiB buffer on this side either. The reference
    // SHA-256 comes from sha256sum, fed the same chunks (the test build's
    // sha2 is unoptimised: about 15 MiB/s, sha256sum about 200).
    let mut digest = tokio::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut digest_in = digest.stdin.take().expect("sha256sum's stdin");
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(api.fixture.api_addr())
        .await
        .expect("connect to strata");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
         content-type: text/markdown\r\ncontent-length: {BIG}\r\nconnection: close\r\n\r\n",
        api.fixture.api_addr()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut chunk = vec![0u8; CHUNK];
    let mut sent = 0;
    while sent < BIG {
        let n = CHUNK.min(BIG - sent);
        big_body(&pattern, sent, &mut chunk[..n]);
        if stream.write_all(&chunk[..n]).await.is_err() {
            break; // strata answered early (or died): see below
        }
        digest_in
            .write_all(&chunk[..n])
            .await
            .expect("to sha256sum");
        sent += n;
    }
    drop(digest_in);
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    let upload_time = started.elapsed();
    let (_, hwm_after) = memory(pid);
    let cpu_upload = cpu_ticks(pid) - cpu_before;
    let digest = digest.wait_with_output().await.expect("sha256sum");
    let expected_sha = String::from_utf8_lossy(&digest.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string();
    assert_eq!(expected_sha.len(), 64, "{digest:?}");
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    assert!(
        head.starts_with("HTTP/1.1 201"),
        "after {sent} bytes ({read:?}): {answer}\n{}",
        api.served.stderr()
    );
    let stored: Value = serde_json::from_str(body).expect("a JSON answer");
    assert_eq!(stored["size"], BIG, "{stored}");
    assert_eq!(stored["sha256"], expected_sha.as_str(), "{stored}");

    // The bound: the write path holds the part being filled and the part
    // being sent (8 MiB each; a buffer may be rounded up to twice that),
    // plus the HTTP and S3 clients' buffers: a few parts, well under
    // 64 MiB. A body held whole would add at least its 200 MiB.
    let growth = hwm_after.saturating_sub(rss_before);

    // Read back, streamed: byte for byte what was sent.
    let started = Instant::now();
    let mut response = api
        .client
        .get(api.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("strata answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"],
        format!("\"{expected_sha}\"").as_str()
    );
    let mut read = 0;
    let mut expected = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("body") {
        expected.resize(chunk.len(), 0);
        big_body(&pattern, read, &mut expected);
        assert!(chunk == expected, "the bytes differ after {read}");
        read += chunk.len();
    }
    let read_time = started.elapsed();
    assert_eq!(read, BIG);
    eprintln!(
        "200 MiB upload, part size {BIG_PART_SIZE}: RSS before {} MiB (peak since boot {} MiB), \
         peak during the upload {} MiB (+{} MiB), {:.1} s ({:.1} s of serve CPU); read back \
         streamed in {:.1} s",
        rss_before / MIB as u64,
        boot_peak / MIB as u64,
        hwm_after / MIB as u64,
        growth / MIB as u64,
        upload_time.as_secs_f64(),
        cpu_upload as f64 / 100.0,
        read_time.as_secs_f64(),
    );
    assert!(
        growth < RSS_GROWTH_BOUND,
        "the serve process's peak RSS grew by {growth} bytes during a {BIG}-byte upload"
    );
}
