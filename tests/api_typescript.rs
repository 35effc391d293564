//! The data API as its clients meet it, against `strata serve` on the real
//! servers:
//! - the Node/TypeScript client (clients/typescript): `npm ci`, types
//!   generated from the served /v1/openapi.json by openapi-typescript,
//!   `tsc --strict`, then its walkthrough (openapi-fetch) asserts every answer;
//! - the README's curl walkthrough, run as printed, must print what the
//!   README says it prints.

mod common;

use std::path::Path;
use std::time::Duration;

use common::api::Api;
use common::tools::{repo, run_bounded};
use sqlx::Connection;

/// npm ci may download the packages (first run on a machine).
const NPM_LIMIT: Duration = Duration::from_secs(300);
const STEP_LIMIT: Duration = Duration::from_secs(120);

/// Copies the client's sources (not node_modules, dist or generated types).
fn copy_client(to: &Path) {
    let from = repo().join("clients/typescript");
    for file in ["package.json", "package-lock.json", "tsconfig.json"] {
        std::fs::copy(from.join(file), to.join(file)).expect("copy the client");
    }
    std::fs::create_dir_all(to.join("src")).expect("src/");
    for entry in std::fs::read_dir(from.join("src")).expect("clients/typescript/src") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join("src").join(path.file_name().expect("name")))
                .expect("copy a source");
        }
    }
}

fn in_dir(dir: &Path, program: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.current_dir(dir).args(args);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_client_generated_from_the_served_document_runs_the_walkthrough() {
    let api = Api::start("typescript", &[]).await;
    let tenant = api.tenant("typescript").await;
    let token = api.token(Some(&tenant)).await;

    // A scratch copy: the run leaves nothing in the work tree.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let dir = scratch.path();
    copy_client(dir);
    let npm = run_bounded(
        in_dir(dir, "npm", &["ci", "--no-audit", "--no-fund"]),
        NPM_LIMIT,
    )
    .await;
    npm.assert_success("npm ci");

    let document = api.url("/v1/openapi.json");
    let bin = |tool: &str| dir.join("node_modules/.bin").join(tool);
    let bin = |tool: &str| bin(tool).to_string_lossy().into_owned();
    let generate = run_bounded(
        in_dir(
            dir,
            &bin("openapi-typescript"),
            &[&document, "-o", "src/generated/strata.d.ts"],
        ),
        STEP_LIMIT,
    )
    .await;
    generate.assert_success("openapi-typescript");
    let types = std::fs::read_to_string(dir.join("src/generated/strata.d.ts")).expect("types");
    assert!(
        types.contains("\"/v1/tenants/{tenantRef}/activities/{ref}/transitions\""),
        "the types describe the served routes"
    );

    // One compile: --strict type-checks exactly as `tsc --strict --noEmit`
    // would, and noEmitOnError (tsconfig.json) emits only a clean program.
    let build = run_bounded(
        in_dir(dir, &bin("tsc"), &["--strict", "-p", "."]),
        STEP_LIMIT,
    )
    .await;
    build.assert_success("tsc --strict");
    assert!(
        dir.join("dist/walkthrough.js").exists(),
        "tsc emitted the walkthrough"
    );

    let mut walkthrough = in_dir(dir, "node", &["dist/walkthrough.js"]);
    walkthrough
        .env("DATA_API_URL", &api.served.api)
        .env("DATA_API_TOKEN", &token)
        .env("DATA_API_TENANT", &tenant);
    let run = run_bounded(walkthrough, STEP_LIMIT).await;
    run.assert_success("the TypeScript walkthrough");
    println!("{}", run.stdout);
    println!(
        "npm ci {:.1}s, openapi-typescript {:.1}s, tsc --strict {:.1}s, walkthrough {:.1}s",
        npm.elapsed.as_secs_f64(),
        generate.elapsed.as_secs_f64(),
        build.elapsed.as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
    let record_ref = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("walkthrough done: activity "))
        .unwrap_or_else(|| panic!("the walkthrough did not finish: {}", run.output()))
        .trim()
        .to_string();

    // What it did is in the database: changed, moved to running, soft-deleted.
    let mut db = sqlx::PgConnection::connect(&api.fixture.superuser_url())
        .await
        .expect("connect as superuser");
    let (kind, status, deleted): (String, String, bool) = sqlx::query_as(
        "SELECT kind, status::text, deleted_on IS NOT NULL FROM activities WHERE ref_id = $1",
    )
    .bind(&record_ref)
    .fetch_one(&mut db)
    .await
    .expect("the walkthrough's activity");
    assert_eq!(
        (kind.as_str(), status.as_str(), deleted),
        ("blog-post", "running", true)
    );
    let _ = db.close().await;
}

/// The fenced blocks of `text` after the line containing `marker`: the
/// first (the script) and the second (what it prints).
fn blocks_after<'a>(text: &'a str, marker: &str) -> (String, String) {
    let mut lines = text.lines().skip_while(|l| !l.contains(marker)).skip(1);
    let block = |lines: &mut dyn Iterator<Item = &'a str>| {
        let mut lines = lines.skip_while(|l| !l.starts_with("```")).skip(1);
        let mut body = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                return body;
            }
            body.push_str(line);
            body.push('\n');
        }
        panic!("no closed block after {marker:?} in README.md");
    };
    let script = block(&mut lines);
    let output = block(&mut lines);
    (script, output)
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_curl_walkthrough_prints_what_the_readme_says() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let (script, expected) =
        blocks_after(&readme, "tests/api_typescript.rs runs the next sh block");
    assert!(
        script.contains("curl") && expected.lines().count() >= 5,
        "{script}\n{expected}"
    );
    let api = Api::start("readme", &[]).await;

    // `strata` on PATH, configured like the server (the README's premise).
    let bin = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_strata"), bin.path().join("strata"))
        .expect("link strata");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = tokio::process::Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script]);
    for (key, _) in std::env::vars() {
        if key.starts_with("STRATA_") && !key.starts_with("STRATA_TEST_") {
            bash.env_remove(&key);
        }
    }
    bash.envs(api.fixture.env())
        .env("PATH", path)
        .env("DATA_API_URL", &api.served.api);
    let run = run_bounded(bash, STEP_LIMIT).await;
    run.assert_success("the README walkthrough");
    assert_eq!(
        run.stdout,
        expected,
        "the README walkthrough printed something else than the README says: {}",
        run.output()
    );
}
