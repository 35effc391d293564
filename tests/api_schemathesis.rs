//! The served OpenAPI document against the server that serves it:
//! schemathesis (PyPI, pinned in tests/schemathesis/requirements.txt,
//! installed by scripts/deps) generates requests for every operation of
//! `/v1/openapi.json` — a new route is covered without an edit here — and
//! checks that no answer is a server error or outside the document (status,
//! content type, headers, body schema), that schema-violating requests are
//! refused, and that authentication is not ignored. Its settings:
//! tests/schemathesis/schemathesis.toml. `STRATA_TEST_SCHEMATHESIS_SEED`
//! replays a run (every run prints its seed), `STRATA_TEST_SCHEMATHESIS_EXAMPLES`
//! searches longer (default 15 per operation and phase).
//!
//! And the document itself is committed as docs/openapi.json: a change to
//! the API shows in review. `STRATA_UPDATE_OPENAPI=1 scripts/test --test
//! api_schemathesis` rewrites it from the served one.

mod common;

use std::time::Duration;

use common::api::Api;
use common::tools::{installed, repo, run_bounded};
use serde_json::Value;

/// Far above the ~20 s a run takes with one collection (~2 s per operation);
/// a hung run must not hold CI.
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(600);

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn served_document(api: &Api) -> Value {
    let reply = api
        .client
        .get(api.url("/v1/openapi.json"))
        .send()
        .await
        .expect("the document is served");
    assert_eq!(reply.status().as_u16(), 200);
    reply.json().await.expect("the document is JSON")
}

fn operation_count(document: &Value) -> usize {
    document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
        .sum()
}

/// The number after `label` on a line of schemathesis' summary.
fn summary_number(output: &str, label: &str) -> Option<usize> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix(label)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let api = Api::start("schemathesis", &[]).await;
    let tenant = api.tenant("fuzz").await;
    let token = api.token(Some(&tenant)).await;
    let operations = operation_count(&served_document(&api).await);
    assert!(operations > 0, "the document has operations");

    // A scratch directory as the working directory: reports and caches stay out of the repo.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut command = tokio::process::Command::new(installed("STRATA_TEST_SCHEMATHESIS"));
    command
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(repo().join("tests/schemathesis/schemathesis.toml"))
        .args(["run", "--no-color"])
        .arg(api.url("/v1/openapi.json"))
        .env("DATA_API_TOKEN", &token)
        .env("DATA_API_TENANT", &tenant)
        .env(
            "SCHEMATHESIS_HOOKS",
            repo().join("tests/schemathesis/hooks.py"),
        );
    if let Ok(seed) = std::env::var("STRATA_TEST_SCHEMATHESIS_SEED") {
        command.args(["--seed", &seed]);
    }
    if let Ok(examples) = std::env::var("STRATA_TEST_SCHEMATHESIS_EXAMPLES") {
        command.args(["--max-examples", &examples]);
    }
    let run = run_bounded(command, SCHEMATHESIS_LIMIT).await;
    run.assert_success("schemathesis");
    println!("{}", run.stdout);

    // Not a vacuous pass: every operation was tested, with many requests.
    assert_eq!(
        summary_number(&run.stdout, "Tested:"),
        Some(operations),
        "{}",
        run.output()
    );
    // "634 generated, 634 passed, 12 skipped"
    let generated = run
        .stdout
        .lines()
        .find(|l| l.contains(" generated, "))
        .and_then(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(0);
    assert!(generated >= 10 * operations, "{}", run.output());
    // And it reached the records, not only 404s of an unknown tenant: the
    // stateful phase created activities in the tenant.
    let listed = api
        .get(&format!("/v1/tenants/{tenant}/activities?limit=1"), &token)
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "schemathesis created no activity: {}",
        run.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_committed_docs_openapi_json() {
    let api = Api::start("openapi-doc", &[]).await;
    let served = served_document(&api).await;
    let served = serde_json::to_string_pretty(&served).expect("serialize") + "\n";
    let path = repo().join("docs/openapi.json");
    if std::env::var("STRATA_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("docs/")).expect("create docs/");
        std::fs::write(&path, &served).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != served {
        let line = committed
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(served.lines().count()));
        let show = |text: &str| {
            text.lines()
                .skip(line.saturating_sub(3))
                .take(7)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "the served /v1/openapi.json differs from docs/openapi.json from line {} on.\n\
             committed:\n{}\nserved:\n{}\n\
             If the change is intended: STRATA_UPDATE_OPENAPI=1 scripts/test --test api_schemathesis",
            line + 1,
            show(&committed),
            show(&served)
        );
    }
}
