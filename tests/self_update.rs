//! `strata self-update` against real release sources on loopback:
//!
//! * the `github` kind against `python3 -m http.server` serving a directory
//!   laid out like the GitHub releases API (`repos/O/R/releases`, a JSON list
//!   with `tag_name`, `created_at` and `assets[].name/url`, and the assets at
//!   those URLs). That is every request strata makes to a GitHub-compatible
//!   source (one listing GET, one GET per asset), over real HTTP, from a
//!   server that is not ours; it is also exactly what `scripts/release
//!   --github-dir` writes for an on-prem static mirror;
//! * the `s3` kind against the shared Ceph radosgw (`scripts/deps`), with
//!   its own bucket, path-style, SigV4 credentials.
//!
//! The "installed" strata is a copy of the test build in a temporary
//! directory (`update.install_path`). A release's binary is a small shell
//! script that reports the release's version for `version --json` and runs
//! the real strata (or, to fail readiness, `sleep`) for anything else: one
//! build of strata cannot have two versions. Everything else — signature,
//! manifest, staging, smoke test, swap, restart, `/readyz`, rollback, the
//! schema guard on PostgreSQL — is the product's own code on real servers.

mod common;

use std::fs;
use std::io::Cursor;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, deps, free_port, run, unique_name};
use serde_json::{Value, json};
use sqlx::Connection;
use strata::update::manifest::{Manifest, ManifestMigration, archive_name};
use zipsign_api::SigningKey;
use zipsign_api::sign::copy_and_sign_tar;

const TEST_KEY: &[u8] = include_bytes!("fixtures/update/test-release.key");
const TEST_PUB: &[u8] = include_bytes!("fixtures/update/test-release.pub");
const CURRENT: &str = env!("CARGO_PKG_VERSION");
const REAL: &str = env!("CARGO_BIN_EXE_strata");
const READY_LIMIT: Duration = Duration::from_secs(60);

fn test_key() -> SigningKey {
    let pair: [u8; 64] = TEST_KEY.try_into().expect("64-byte test key pair");
    SigningKey::from_keypair_bytes(&pair).expect("test key")
}

fn other_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    SigningKey::from_bytes(&seed)
}

/// A strata installed as a plain file (the tarball layout).
struct Install {
    dir: tempfile::TempDir,
    exe: PathBuf,
    original: Vec<u8>,
}

impl Install {
    fn new() -> Install {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("bin")).expect("bin");
        let exe = dir.path().join("bin/strata");
        // A second name for the test build (no 300 MB copy per test): the
        // update never writes into the installed file, it renames over it.
        if fs::hard_link(REAL, &exe).is_err() {
            fs::copy(REAL, &exe).expect("copy strata");
            fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let original = fs::read(&exe).expect("read");
        Install { dir, exe, original }
    }

    fn previous(&self) -> PathBuf {
        self.dir.path().join("bin/strata.previous")
    }

    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.exe).expect("installed binary")
    }

    /// Nothing on disk changed: the same binary, no previous, no leftovers.
    fn assert_untouched(&self, context: &str) {
        assert!(
            self.bytes() == self.original,
            "{context}: the installed binary changed"
        );
        assert!(
            !self.previous().exists(),
            "{context}: a previous binary appeared"
        );
        self.assert_no_leftovers(context);
    }

    fn assert_no_leftovers(&self, context: &str) {
        let staging = self.dir.path().join("bin/.strata-update");
        let left: Vec<_> = fs::read_dir(&staging)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{context}: staging leftovers {left:?}");
        let names: Vec<_> = fs::read_dir(self.dir.path().join("bin"))
            .expect("bin")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| ["strata", "strata.previous", ".strata-update"].contains(&n.as_str())),
            "{context}: unexpected files {names:?}"
        );
    }

    /// Writes the configuration: `[update]` from `update`, plus the common keys.
    fn config(&self, fixture: &Fixture, update: &str) -> PathBuf {
        let path = self.dir.path().join("strata.toml");
        let text = format!(
            "[admin]\nlisten = \"{admin}\"\n\n[update]\ninstall_path = \"{exe}\"\n\
             trusted_keys = [\"{key}\"]\nsystemd_unit = \"strata-selfupdate-test-{name}.service\"\n{update}\n",
            admin = fixture.admin_addr(),
            exe = self.exe.display(),
            key = hex::encode(TEST_PUB),
            name = fixture.name,
        );
        fs::write(&path, text).expect("config");
        path
    }

    /// `strata self-update ARGS` run by the test build (not the installed copy).
    fn self_update(
        &self,
        fixture: &Fixture,
        config: &Path,
        args: &[&str],
    ) -> (Option<i32>, String, String) {
        let mut all = vec!["self-update"];
        all.extend_from_slice(args);
        let mut command = fixture.strata(&all);
        command.env("STRATA_CONFIG", config);
        run(command)
    }
}

/// The binary of a test release: reports `version` and runs `serve_with`
/// for everything else.
fn release_binary(version: &str, serve_with: &str) -> Vec<u8> {
    format!(
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo '{{\"version\":\"{version}\"}}'; exit 0; fi\n{serve_with}\n"
    )
    .into_bytes()
}

fn runs_real_strata() -> String {
    format!("exec '{REAL}' \"$@\"")
}

fn manifest(version: &str, binary: &[u8]) -> Manifest {
    let mut m = Manifest::current().expect("manifest");
    m.version = version.to_string();
    m.binary_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(binary));
    m
}

/// An unsigned `.tar.gz` holding `strata` and `release.json`.
fn archive(binary: &[u8], manifest: &Manifest) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        for (name, data, mode) in [
            ("strata", binary.to_vec(), 0o755),
            (
                "release.json",
                serde_json::to_vec_pretty(manifest).expect("json"),
                0o644,
            ),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            tar.append_data(&mut header, name, data.as_slice())
                .expect("append");
        }
        tar.finish().expect("tar");
    }
    gz.finish().expect("gzip")
}

/// Signs `data` as zipsign does, bound to the file name `context`.
fn sign(data: &[u8], key: &SigningKey, context: &str) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    copy_and_sign_tar(
        &mut Cursor::new(data.to_vec()),
        &mut out,
        std::slice::from_ref(key),
        Some(context.as_bytes()),
    )
    .expect("sign");
    out.into_inner()
}

/// A good signed release archive: (asset name, bytes).
fn good_release(version: &str, serve_with: &str) -> (String, Vec<u8>) {
    let binary = release_binary(version, serve_with);
    let name = archive_name(version);
    let data = sign(
        &archive(&binary, &manifest(version, &binary)),
        &test_key(),
        &name,
    );
    (name, data)
}

/// `python3 -m http.server` over a directory laid out like the GitHub API.
struct GithubServer {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

impl GithubServer {
    fn start() -> GithubServer {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("repos/acme/strata")).expect("dirs");
        fs::write(root.path().join("repos/acme/strata/releases"), "[]").expect("list");
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        GithubServer { child, root, port }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn update_toml(&self) -> String {
        format!(
            "source = \"github\"\ngithub_api_url = \"{}\"\ngithub_owner = \"acme\"\ngithub_repo = \"strata\"\n",
            self.base()
        )
    }

    /// Adds a release `v{version}` with these assets.
    fn publish(&self, version: &str, assets: &[(String, Vec<u8>)]) {
        let dir = self.root.path().join(format!("download/v{version}"));
        fs::create_dir_all(&dir).expect("download dir");
        let mut listed = Vec::new();
        for (name, data) in assets {
            fs::write(dir.join(name), data).expect("asset");
            let url = format!("{}/download/v{version}/{name}", self.base());
            listed.push(json!({ "name": name, "url": url, "browser_download_url": url }));
        }
        let list_path = self.root.path().join("repos/acme/strata/releases");
        let mut list: Vec<Value> =
            serde_json::from_slice(&fs::read(&list_path).expect("list")).expect("json");
        list.insert(
            0,
            json!({
                "tag_name": format!("v{version}"),
                "name": format!("strata {version}"),
                "created_at": "2026-11-26T00:00:00Z",
                "body": null,
                "assets": listed,
            }),
        );
        fs::write(&list_path, serde_json::to_vec(&list).expect("json")).expect("list");
    }
}

impl GithubServer {
    /// The same release in Gitea's shape (`/api/v1/...`, assets with
    /// `browser_download_url` only).
    fn publish_gitea(&self, version: &str, assets: &[(String, Vec<u8>)]) {
        let dir = self.root.path().join(format!("gitea/v{version}"));
        fs::create_dir_all(&dir).expect("download dir");
        fs::create_dir_all(self.root.path().join("api/v1/repos/acme/strata")).expect("dirs");
        let listed: Vec<Value> = assets
            .iter()
            .map(|(name, data)| {
                fs::write(dir.join(name), data).expect("asset");
                json!({
                    "id": 1,
                    "name": name,
                    "size": data.len(),
                    "browser_download_url": format!("{}/gitea/v{version}/{name}", self.base()),
                })
            })
            .collect();
        let list = json!([{
            "id": 1,
            "tag_name": format!("v{version}"),
            "name": format!("strata {version}"),
            "body": "",
            "created_at": "2026-11-26T00:00:00Z",
            "assets": listed,
        }]);
        fs::write(
            self.root.path().join("api/v1/repos/acme/strata/releases"),
            serde_json::to_vec(&list).expect("json"),
        )
        .expect("list");
    }
}

impl Drop for GithubServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A strata server started and stopped by `update.restart_command`.
struct Supervisor {
    script: PathBuf,
    pid_file: PathBuf,
}

impl Supervisor {
    /// The restart command: stop what runs (waiting until it is gone), then
    /// start the installed binary in the background.
    fn new(install: &Install) -> Supervisor {
        let dir = install.dir.path();
        let script = dir.join("restart.sh");
        let pid_file = dir.join("strata.pid");
        let log = dir.join("serve.log");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nset -e\nif [ -f '{pid}' ]; then\n  pid=$(cat '{pid}')\n  kill \"$pid\" 2>/dev/null || true\n  \
                 while [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do sleep 0.1; done\nfi\n\
                 '{exe}' serve >>'{log}' 2>&1 </dev/null &\necho $! >'{pid}'\n",
                pid = pid_file.display(),
                exe = install.exe.display(),
                log = log.display(),
            ),
        )
        .expect("restart script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        Supervisor { script, pid_file }
    }

    fn update_toml(&self) -> String {
        format!(
            "restart_command = [\"{}\"]\nready_timeout_secs = 15\n",
            self.script.display()
        )
    }

    /// Starts the installed strata as the service would.
    fn start(&self, fixture: &Fixture, config: &Path, env: &[(&str, &str)]) {
        let mut command = Command::new(&self.script);
        command
            .envs(fixture.env())
            .env("STRATA_CONFIG", config)
            .envs(env.iter().copied());
        assert!(command.status().expect("restart script").success());
    }

    fn pid(&self) -> Option<String> {
        fs::read_to_string(&self.pid_file)
            .ok()
            .map(|p| p.trim().to_string())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// Polls `/readyz` until it answers 200 (true) or the deadline passes.
async fn ready(fixture: &Fixture, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let (status, _) =
            common::serve::get_json(&format!("http://{}/readyz", fixture.admin_addr())).await;
        if status == 200 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn github_a_signed_release_installs_and_rollback_restores_the_previous_binary() {
    let fixture = Fixture::new("upd-gh").await;
    let install = Install::new();
    let github = GithubServer::start();
    let config = install.config(&fixture, &github.update_toml());

    // Only the running version published: up to date, exit 0.
    github.publish(CURRENT, &[good_release(CURRENT, &runs_real_strata())]);
    let (code, out, err) = install.self_update(&fixture, &config, &["check", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(report["update_available"], false, "{report}");

    // A newer one: exit 1, and it names it.
    let (name, data) = good_release("0.2.0", &runs_real_strata());
    github.publish("0.2.0", &[(name, data)]);
    let (code, out, err) = install.self_update(&fixture, &config, &["check", "--json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(report["available"], "0.2.0", "{report}");
    assert_eq!(report["change"], "upgrade", "{report}");
    assert!(
        report["layout"]
            .as_str()
            .unwrap_or_default()
            .contains("tarball"),
        "{report}"
    );

    // A pinned version that is not published is an error, not "up to date".
    let (code, _, err) = install.self_update(&fixture, &config, &["check", "--version", "9.9.9"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("has no version 9.9.9"), "{err}");

    // Without a terminal and without --yes, nothing happens.
    let (code, _, err) = install.self_update(&fixture, &config, &["apply"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--yes"), "{err}");
    install.assert_untouched("apply without --yes");

    let (code, out, err) = install.self_update(&fixture, &config, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("{CURRENT} -> 0.2.0")), "{out}\n{err}");
    assert!(err.contains("signed by update.trusted_keys.0"), "{err}");
    assert!(err.contains("smoke test passed"), "{err}");
    assert_eq!(
        install.bytes(),
        release_binary("0.2.0", &runs_real_strata())
    );
    assert!(fs::read(install.previous()).expect("previous kept") == install.original);
    install.assert_no_leftovers("after apply");

    // Up to date now (the installed binary reports 0.2.0).
    let (code, out, err) = install.self_update(&fixture, &config, &["check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");

    let (code, out, err) = install.self_update(&fixture, &config, &["rollback"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        install.bytes() == install.original,
        "rollback must restore the previous binary byte for byte"
    );
    assert_eq!(
        fs::read(install.previous()).expect("the rolled-back binary is kept"),
        release_binary("0.2.0", &runs_real_strata())
    );
    install.assert_no_leftovers("after rollback");
}

/// A server that announces the whole archive and sends half of it, then
/// closes: a transfer cut off mid-way.
fn cut_off_server(data: Vec<u8>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                request.push(byte[0]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                data.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&data[..data.len() / 2]);
            // Dropping the stream closes the connection mid-body.
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_cut_off_midway_is_refused() {
    let fixture = Fixture::new("upd-cut").await;
    let install = Install::new();
    let github = GithubServer::start();
    let config = install.config(&fixture, &github.update_toml());
    let (name, data) = good_release("0.2.0", &runs_real_strata());
    let port = cut_off_server(data.clone());
    // The listing points the asset at the server that cuts the transfer.
    github.publish("0.2.0", &[(name.clone(), data)]);
    let list_path = github.root.path().join("repos/acme/strata/releases");
    let listing = fs::read_to_string(&list_path).expect("list").replace(
        &format!("{}/download/v0.2.0/{name}", github.base()),
        &format!("http://127.0.0.1:{port}/{name}"),
    );
    fs::write(&list_path, listing).expect("list");

    let (code, out, err) = install.self_update(&fixture, &config, &["apply", "--yes"]);
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(err.contains(&format!("downloading {name}")), "{err}");
    install.assert_untouched("cut-off download");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gitea_api_base_is_read_in_gitea_shape() {
    let fixture = Fixture::new("upd-gitea").await;
    let install = Install::new();
    let github = GithubServer::start();
    let update = format!(
        "source = \"github\"\ngithub_api_url = \"{}/api/v1\"\ngithub_owner = \"acme\"\n\
         github_repo = \"strata\"\n",
        github.base()
    );
    let config = install.config(&fixture, &update);
    github.publish_gitea("0.2.0", &[good_release("0.2.0", &runs_real_strata())]);
    let (code, out, err) = install.self_update(&fixture, &config, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(
        install.bytes(),
        release_binary("0.2.0", &runs_real_strata())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_releases_name_the_failed_check_and_change_nothing() {
    let fixture = Fixture::new("upd-bad").await;
    let install = Install::new();
    let github = GithubServer::start();
    let config = install.config(&fixture, &github.update_toml());
    let serve = runs_real_strata();

    let build = |version: &str, binary: &[u8], manifest: &Manifest| {
        (archive_name(version), archive(binary, manifest))
    };
    let plain = |version: &str| {
        let binary = release_binary(version, &serve);
        build(version, &binary, &manifest(version, &binary))
    };

    // unsigned
    github.publish("0.2.1", &[plain("0.2.1")]);
    // signed with a key nobody trusts
    let (name, data) = plain("0.2.2");
    github.publish("0.2.2", &[(name.clone(), sign(&data, &other_key(), &name))]);
    // truncated: a good archive cut in the middle
    let (name, data) = good_release("0.2.3", &serve);
    github.publish("0.2.3", &[(name, data[..data.len() / 2].to_vec())]);
    // tampered: a good archive with one byte of the compressed data changed
    let (name, mut data) = good_release("0.2.4", &serve);
    let middle = data.len() / 3;
    data[middle] ^= 0x55;
    github.publish("0.2.4", &[(name, data)]);
    // a wrong signature: the trusted key's signature of another release file
    let (name, data) = plain("0.2.5");
    github.publish(
        "0.2.5",
        &[(name, sign(&data, &test_key(), &archive_name("0.2.6")))],
    );
    // signed, but its binary fails the smoke test (reports another version)
    let binary = release_binary("9.9.9", &serve);
    let (name, data) = build("0.2.7", &binary, &manifest("0.2.7", &binary));
    github.publish("0.2.7", &[(name.clone(), sign(&data, &test_key(), &name))]);
    // signed, but the manifest inside names another version (a replayed release)
    let binary = release_binary("0.2.0", &serve);
    let (name, data) = build("0.2.8", &binary, &manifest("0.2.0", &binary));
    github.publish("0.2.8", &[(name.clone(), sign(&data, &test_key(), &name))]);
    // signed, but the binary is not the one the manifest names
    let binary = release_binary("0.2.9", &serve);
    let mut wrong = manifest("0.2.9", &binary);
    wrong.binary_sha256 = "00".repeat(32);
    let (name, data) = build("0.2.9", &binary, &wrong);
    github.publish("0.2.9", &[(name.clone(), sign(&data, &test_key(), &name))]);

    for (version, expected) in [
        (
            "0.2.1",
            "signature check failed: the archive carries no signature block: it is unsigned",
        ),
        ("0.2.2", "signature check failed: no trusted key"),
        (
            "0.2.3",
            "completeness check failed: the archive is truncated",
        ),
        ("0.2.4", "signature check failed: no trusted key"),
        ("0.2.5", "signature check failed: no trusted key"),
        ("0.2.7", "smoke test failed: `version --json` reports 9.9.9"),
        (
            "0.2.8",
            "manifest check failed: the signed manifest names version 0.2.0",
        ),
        ("0.2.9", "binary digest check failed"),
    ] {
        let (code, out, err) =
            install.self_update(&fixture, &config, &["apply", "--yes", "--version", version]);
        assert_eq!(code, Some(7), "{version}: {out}\n{err}");
        assert!(
            err.contains(expected),
            "{version}: expected {expected:?} in:\n{err}"
        );
        assert!(err.contains("nothing was installed"), "{version}: {err}");
        install.assert_untouched(version);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_a_signed_release_installs_restarts_and_is_ready() {
    let fixture = Fixture::new("upd-s3").await;
    let install = Install::new();
    let supervisor = Supervisor::new(&install);
    let bucket = unique_name("rel");
    let d = deps();
    let s3 = strata::stores::s3::S3::new(&fixture.config().s3)
        .client()
        .clone();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let (name, data) = good_release("0.3.0", &runs_real_strata());
    s3.put_object()
        .bucket(&bucket)
        .key(format!("strata/{name}"))
        .body(data.into())
        .send()
        .await
        .expect("upload");
    let update = format!(
        "source = \"s3\"\n{restart}\ns3_endpoint = \"{endpoint}\"\ns3_bucket = \"{bucket}\"\n\
         s3_prefix = \"strata/\"\ns3_region = \"{region}\"\ns3_access_key_id = \"{key}\"\n",
        restart = supervisor.update_toml(),
        endpoint = d.s3_endpoint,
        region = d.s3_region,
        key = d.s3_access_key,
    );
    let config = install.config(&fixture, &update);

    // Without the secret key, radosgw refuses the listing: credentials are used.
    let (code, out, err) = install.self_update(&fixture, &config, &["check"]);
    assert_eq!(
        code,
        Some(2),
        "the key id alone is a config error: {out}\n{err}"
    );
    assert!(err.contains("update.s3_secret_access_key"), "{err}");

    let mut command = fixture.strata(&["self-update", "check", "--json"]);
    command
        .env("STRATA_CONFIG", &config)
        .env("STRATA_UPDATE__S3_SECRET_ACCESS_KEY", &d.s3_secret_key);
    let (code, out, err) = run(command);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["available"], "0.3.0", "{report}");
    assert!(!out.contains(&d.s3_secret_key) && !err.contains(&d.s3_secret_key));

    supervisor.start(
        &fixture,
        &config,
        &[("STRATA_UPDATE__S3_SECRET_ACCESS_KEY", &d.s3_secret_key)],
    );
    assert!(
        ready(&fixture, READY_LIMIT).await,
        "the installed strata never became ready"
    );
    let before = supervisor.pid();

    let mut command = fixture.strata(&["self-update", "apply", "--yes", "--json"]);
    command
        .env("STRATA_CONFIG", &config)
        .env("STRATA_UPDATE__S3_SECRET_ACCESS_KEY", &d.s3_secret_key);
    let (code, out, err) = run(command);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let applied: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(applied["to"], "0.3.0", "{applied}");
    assert_eq!(applied["restarted"], true, "{applied}");
    assert!(applied["ready_after_ms"].is_u64(), "{applied}");
    assert_ne!(supervisor.pid(), before, "the service was restarted");
    assert!(ready(&fixture, Duration::from_secs(5)).await);
    assert_eq!(
        install.bytes(),
        release_binary("0.3.0", &runs_real_strata())
    );
    assert!(fs::read(install.previous()).expect("previous") == install.original);
    assert!(!err.contains(&d.s3_secret_key));

    // Best effort: the shared radosgw keeps no test releases.
    let _ = s3
        .delete_object()
        .bucket(&bucket)
        .key(format!("strata/{name}"))
        .send()
        .await;
    let _ = s3.delete_bucket().bucket(&bucket).send().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_never_becomes_ready_is_rolled_back_automatically() {
    let fixture = Fixture::new("upd-ready").await;
    let install = Install::new();
    let supervisor = Supervisor::new(&install);
    let github = GithubServer::start();
    let update = format!("{}{}", supervisor.update_toml(), github.update_toml());
    let config = install.config(&fixture, &update);
    // Its server process runs, but never answers /readyz.
    github.publish("0.4.0", &[good_release("0.4.0", "exec sleep 600")]);

    supervisor.start(&fixture, &config, &[]);
    assert!(
        ready(&fixture, READY_LIMIT).await,
        "the installed strata never became ready"
    );

    let (code, out, err) = install.self_update(&fixture, &config, &["apply", "--yes"]);
    assert_eq!(code, Some(8), "{out}\n{err}");
    assert!(
        err.contains("0.4.0 did not become ready within 15s"),
        "{err}"
    );
    assert!(err.contains(&format!("rolled back to {CURRENT}")), "{err}");
    assert!(err.contains("is ready again"), "{err}");
    assert!(
        install.bytes() == install.original,
        "the previous binary is back, byte for byte"
    );
    assert!(
        ready(&fixture, Duration::from_secs(5)).await,
        "the rolled-back strata serves"
    );
    install.assert_no_leftovers("after the automatic rollback");
}

async fn pretend_newer_migration(fixture: &Fixture, compatible: bool) {
    let mut direct = sqlx::PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    sqlx::query(
        "INSERT INTO strata_schema_history \
            (version, name, checksum, execution_ms, applied_by, compatible) \
         VALUES (9001, '9001_from_the_future', 'x', 1, 'strata 99', $1) \
         ON CONFLICT (version) DO UPDATE SET compatible = EXCLUDED.compatible",
    )
    .bind(compatible)
    .execute(&mut direct)
    .await
    .expect("pretend a newer strata migrated");
    let _ = direct.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_guard_and_the_downgrade_rule() {
    let fixture = Fixture::new("upd-guard").await;
    let (code, out, err) = run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let install = Install::new();
    let github = GithubServer::start();
    let config = install.config(&fixture, &github.update_toml());
    github.publish("0.5.0", &[good_release("0.5.0", &runs_real_strata())]);
    github.publish("0.0.9", &[good_release("0.0.9", &runs_real_strata())]);

    // The database has a migration the release does not know, not compatible.
    pretend_newer_migration(&fixture, false).await;
    let (code, out, err) =
        install.self_update(&fixture, &config, &["apply", "--yes", "--version", "0.5.0"]);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(err.contains("refused 0.5.0: schema guard"), "{err}");
    assert!(err.contains("9001_from_the_future"), "{err}");
    install.assert_untouched("schema guard");

    // A downgrade is refused before anything is downloaded...
    let (code, out, err) =
        install.self_update(&fixture, &config, &["apply", "--yes", "--version", "0.0.9"]);
    assert_eq!(code, Some(7), "{out}\n{err}");
    assert!(err.contains("--allow-downgrade"), "{err}");
    install.assert_untouched("downgrade");
    // ...and with the flag the schema guard still applies.
    let (code, out, err) = install.self_update(
        &fixture,
        &config,
        &["apply", "--yes", "--version", "0.0.9", "--allow-downgrade"],
    );
    assert_eq!(code, Some(5), "{out}\n{err}");
    install.assert_untouched("downgrade with the flag, guarded");

    // Declared compatible: older binaries may serve, so the guard lets it in.
    pretend_newer_migration(&fixture, true).await;
    let (code, out, err) = install.self_update(
        &fixture,
        &config,
        &["apply", "--yes", "--version", "0.0.9", "--allow-downgrade"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(
        install.bytes(),
        release_binary("0.0.9", &runs_real_strata())
    );

    // Rollback is guarded too: the database now has a migration the previous
    // binary could not serve on (as if the new version had applied it).
    pretend_newer_migration(&fixture, false).await;
    let (code, out, err) = install.self_update(&fixture, &config, &["rollback"]);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(err.contains("schema guard"), "{err}");
    assert_eq!(
        install.bytes(),
        release_binary("0.0.9", &runs_real_strata()),
        "a refused rollback changes nothing"
    );
    pretend_newer_migration(&fixture, true).await;
    let (code, out, err) = install.self_update(&fixture, &config, &["rollback"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        install.bytes() == install.original,
        "the previous binary is back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_which_migrations_the_release_would_apply() {
    let fixture = Fixture::new("upd-plan").await;
    let (code, out, err) = run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let install = Install::new();
    let github = GithubServer::start();
    let config = install.config(&fixture, &github.update_toml());
    let database = Manifest::current().expect("manifest").postgres_version();

    // 0.6.0 embeds two migrations this database does not have yet.
    let binary = release_binary("0.6.0", &runs_real_strata());
    let mut newer = manifest("0.6.0", &binary);
    for (version, name, compatible) in [
        (9101, "9101_add_an_index", true),
        (9102, "9102_drop_a_column", false),
    ] {
        newer.schema.postgres.push(ManifestMigration {
            version,
            name: name.into(),
            checksum: format!("sum{version}"),
            compatible,
        });
    }
    let name = archive_name("0.6.0");
    github.publish(
        "0.6.0",
        &[(
            name.clone(),
            sign(&archive(&binary, &newer), &test_key(), &name),
        )],
    );

    let (code, out, err) = install.self_update(&fixture, &config, &["check", "--json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("check --json");
    let schema = &report["schema"];
    assert_eq!(report["schema_error"], Value::Null, "{report}");
    assert_eq!(schema["database_version"], database, "{report}");
    assert_eq!(schema["release_version"], 9102, "{report}");
    assert_eq!(
        schema["to_apply"],
        json!([
            { "version": 9101, "name": "9101_add_an_index", "compatible": true },
            { "version": 9102, "name": "9102_drop_a_column", "compatible": false },
        ]),
        "{report}"
    );
    assert_eq!(schema["all_compatible"], false, "{report}");
    assert_eq!(schema["refused"], Value::Null, "{report}");

    let (code, out, err) = install.self_update(&fixture, &config, &["check"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "schema    {database} -> 9102: the release applies 2 migration(s)"
        )),
        "{out}"
    );
    assert!(
        out.contains("+ 9101_add_an_index (compatible with older binaries)"),
        "{out}"
    );
    assert!(
        out.contains("+ 9102_drop_a_column (not compatible with older binaries)"),
        "{out}"
    );
    assert!(out.contains("guard     passes"), "{out}");

    // A migration in the database that 0.6.0 does not ship: the guard would refuse.
    pretend_newer_migration(&fixture, false).await;
    let (code, out, err) = install.self_update(&fixture, &config, &["check", "--json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(
        report["schema"]["unknown_to_release"],
        json!(["9001_from_the_future"]),
        "{report}"
    );
    assert!(
        report["schema"]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("9001_from_the_future")),
        "{report}"
    );

    // A release that fails its checks has no schema to report, and says why.
    let unsigned = archive_name("0.7.0");
    github.publish(
        "0.7.0",
        &[(unsigned, archive(&binary, &manifest("0.7.0", &binary)))],
    );
    let (code, out, err) = install.self_update(&fixture, &config, &["check", "--json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(report["available"], "0.7.0", "{report}");
    assert_eq!(report["schema"], Value::Null, "{report}");
    assert!(
        report["schema_error"]
            .as_str()
            .is_some_and(|e| e.contains("signature check failed")),
        "{report}"
    );
    // `check` changes nothing where strata is installed.
    install.assert_untouched("check");
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_name_the_key() {
    let fixture = Fixture::new("upd-cfg").await;
    let install = Install::new();
    for (update, key) in [
        ("source = \"github\"\n", "update.github_owner"),
        ("ready_timeout_secs = 0\n", "update.ready_timeout_secs"),
        ("source = \"s3\"\ns3_bucket = \"A_B\"\n", "update.s3_bucket"),
        ("version = \"latest\"\n", "update.version"),
    ] {
        let config = install.config(&fixture, update);
        let (code, out, err) = install.self_update(&fixture, &config, &["check"]);
        assert_eq!(code, Some(2), "{update}: {out}\n{err}");
        assert!(err.contains(&format!("`{key}`")), "{update}: {err}");
    }
    // A trusted key that is not a key.
    let path = install.dir.path().join("bad-key.toml");
    fs::write(&path, "[update]\ntrusted_keys = [\"00ff\"]\n").expect("config");
    let (code, _, err) = install.self_update(&fixture, &path, &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("update.trusted_keys"), "{err}");
    // No source configured: the command says how to turn it on.
    let config = install.config(&fixture, "");
    let (code, _, err) = install.self_update(&fixture, &config, &["check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("update.source"), "{err}");
}

#[test]
fn a_binary_owned_by_dpkg_is_the_package_layout() {
    use strata::update::install::{Layout, PackageManager};
    // dpkg owns itself on the Debian machines this suite runs on.
    let layout = Layout::detect(Path::new("/usr/bin/dpkg"));
    match layout {
        Layout::Package { manager, owner, .. } => {
            assert_eq!(manager, PackageManager::Dpkg);
            assert!(owner.starts_with("dpkg:"), "{owner}");
        }
        other => panic!("expected the package layout, got {other:?}"),
    }
}
