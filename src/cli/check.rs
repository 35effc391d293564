//! `strata check`: the doctor. One line per check, or `--json`.

use serde::Serialize;

use crate::boot::{self, BootError};
use crate::cli::exit;
use crate::config::Config;
use crate::retry::Transient;
use crate::stores::Stores;

#[derive(Debug, Serialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Ok,
    Warn,
    Pending,
    Fail,
}

#[derive(Debug, Serialize)]
struct Line {
    component: String,
    check: String,
    outcome: Outcome,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    exit_code: u8,
    checks: Vec<Line>,
}

pub async fn run(config: Config, json: bool) -> u8 {
    let mut lines = vec![Line {
        component: "config".into(),
        check: "valid".into(),
        outcome: Outcome::Ok,
        detail: "configuration loaded and validated".into(),
    }];
    let code = checks(&config, &mut lines).await;
    let report = Report {
        ok: code == exit::OK,
        exit_code: code,
        checks: lines,
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("strata: {e}"),
        }
    } else {
        for line in &report.checks {
            let tag = match line.outcome {
                Outcome::Ok => "OK",
                Outcome::Warn => "WARN",
                Outcome::Pending => "PENDING",
                Outcome::Fail => "FAIL",
            };
            println!(
                "{tag:<8}{:<10}{:<14}{}",
                line.component, line.check, line.detail
            );
        }
    }
    code
}

async fn checks(config: &Config, lines: &mut Vec<Line>) -> u8 {
    let stores = match Stores::new(config).await {
        Ok(stores) => stores,
        Err(e) => {
            let component = if e.is_transient() { "mongo" } else { "config" };
            lines.push(Line {
                component: component.into(),
                check: e.check().into(),
                outcome: Outcome::Fail,
                detail: e.to_string(),
            });
            return exit::of(&BootError::Stores(e));
        }
    };
    let code = checks_on(config, &stores, lines).await;
    stores.close().await;
    code
}

async fn checks_on(config: &Config, stores: &Stores, lines: &mut Vec<Line>) -> u8 {
    let mut push = |component: &str, check: &str, outcome: Outcome, detail: String| {
        lines.push(Line {
            component: component.into(),
            check: check.into(),
            outcome,
            detail,
        })
    };
    let mut code = exit::OK;
    for (dependency, result) in boot::probe_all(stores, &config.boot).await {
        let name = dependency.name();
        match result {
            Ok(report) => {
                for passed in &report.checks {
                    push(name, passed.check, Outcome::Ok, passed.detail.clone());
                }
                for warning in &report.warnings {
                    push(name, "warning", Outcome::Warn, warning.clone());
                }
            }
            Err(error) => {
                let (check, detail) = match &error {
                    BootError::Unreachable {
                        error,
                        attempts,
                        elapsed_secs,
                        ..
                    } => (
                        error.check(),
                        format!(
                            "{error} (gave up after {attempts} attempts in {elapsed_secs:.1}s)"
                        ),
                    ),
                    BootError::Unfit { error, .. } => (error.check(), error.to_string()),
                    other => ("boot", other.to_string()),
                };
                push(name, check, Outcome::Fail, detail);
                if code == exit::OK {
                    code = exit::of(&error);
                }
            }
        }
    }
    if code != exit::OK {
        push(
            "schema",
            "drift",
            Outcome::Warn,
            "not checked: a dependency failed".into(),
        );
        return code;
    }
    match crate::schema::plan(stores, config).await {
        Ok(plan) => {
            for (store, steps) in [
                ("postgres", &plan.postgres),
                ("mongo", &plan.mongo),
                ("s3", &plan.s3),
            ] {
                if steps.is_empty() {
                    push(store, "schema", Outcome::Ok, "up to date".into());
                }
                for step in steps {
                    push(store, "schema", Outcome::Pending, step.clone());
                }
            }
            for warning in &plan.warnings {
                push("schema", "warning", Outcome::Warn, warning.clone());
            }
            if plan.is_empty() {
                exit::OK
            } else {
                exit::FAILURE
            }
        }
        Err(e) => {
            push("schema", "drift", Outcome::Fail, e.to_string());
            exit::of(&BootError::Schema(e))
        }
    }
}
