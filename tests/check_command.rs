//! `strata check` on healthy stores: every check listed, schema drift
//! reported as pending until `migrate`, then all OK; `--json` for machines.

mod common;

use common::{Fixture, run};

fn check_json(fixture: &Fixture) -> (Option<i32>, serde_json::Value) {
    let (code, stdout, stderr) = run(fixture.strata(&["check", "--json"]));
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, report)
}

fn outcomes<'a>(report: &'a serde_json::Value, component: &str) -> Vec<(&'a str, &'a str)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["component"] == component)
        .map(|c| {
            (
                c["check"].as_str().unwrap_or(""),
                c["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

#[tokio::test]
async fn check_reports_drift_until_migrate_then_passes() {
    let fixture = Fixture::new("check").await;

    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(1), "pending schema changes exit 1: {report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 1);
    for (dependency, expected) in [
        (
            "postgres",
            &[
                "reachable",
                "version",
                "serving_role",
                "direct",
                "privileges",
            ][..],
        ),
        ("mongo", &["reachable", "version", "privileges"]),
        ("s3", &["reachable", "object_lock"]),
    ] {
        let seen = outcomes(&report, dependency);
        for check in expected {
            assert!(
                seen.contains(&(*check, "ok")),
                "{dependency} {check}: {report}"
            );
        }
        assert!(
            seen.contains(&("schema", "pending")),
            "{dependency} drift: {report}"
        );
    }

    let (code, stdout, stderr) = run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let (code, report) = check_json(&fixture);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    for store in ["postgres", "mongo", "s3"] {
        assert!(
            outcomes(&report, store).contains(&("schema", "ok")),
            "{store}: {report}"
        );
    }
    let failed: Vec<_> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] == "fail" || c["outcome"] == "pending")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    // The text form: one line per check, each starting with its outcome.
    let (code, stdout, _) = run(fixture.strata(&["check"]));
    assert_eq!(code, Some(0));
    assert!(stdout.lines().count() >= 10, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| ["OK", "WARN"].iter().any(|t| l.starts_with(t))),
        "{stdout}"
    );
}
