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

/// MongoDB 6.x boots but is past its end of life: `check` says so; 7.0 and
/// later do not get the warning. The expectation follows the version the
/// server itself reports, so it holds for any STRATA_TEST_MONGO_URL.
#[tokio::test]
async fn check_warns_about_a_mongodb_below_the_supported_version() {
    let fixture = Fixture::new("checkmongo").await;
    let client = mongodb::Client::with_uri_str(&common::deps().mongo_url)
        .await
        .expect("mongo client");
    let build_info = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "buildInfo": 1 })
        .await
        .expect("buildInfo");
    let version = build_info.get_str("version").expect("version").to_string();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("a numeric major version");

    let (_, report) = check_json(&fixture);
    let mongo: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["component"] == "mongo")
        .collect();
    assert!(
        mongo.iter().any(|c| c["check"] == "version"
            && c["outcome"] == "ok"
            && c["detail"].as_str().unwrap_or("").contains(&version)),
        "{report}"
    );
    let eol: Vec<_> = mongo
        .iter()
        .filter(|c| {
            c["outcome"] == "warn" && c["detail"].as_str().unwrap_or("").contains("end of life")
        })
        .collect();
    if major < 7 {
        assert_eq!(eol.len(), 1, "MongoDB {version} is warned about: {report}");
        let detail = eol[0]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(&version) && detail.contains("7.0 is the supported target"),
            "{detail}"
        );
    } else {
        assert!(eol.is_empty(), "MongoDB {version} is supported: {report}");
    }
}
