//! `strata self-update check|apply|rollback` (and the hidden `manifest`,
//! which `scripts/release` puts in the signed archive).

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::exit;
use crate::config::Config;
use crate::update::{self, ApplyOptions, UpdateError};

/// The exit code of a failed self-update step.
pub fn code(error: &UpdateError) -> u8 {
    match error {
        UpdateError::NotConfigured | UpdateError::Keys(_) | UpdateError::Usage(_) => {
            exit::BAD_CONFIG
        }
        UpdateError::Source { .. }
        | UpdateError::Download { .. }
        | UpdateError::Database { .. } => exit::DEPENDENCY_UNREACHABLE,
        // The source answers but lacks the wanted release: never 1, which
        // `check` uses for "an update is available".
        UpdateError::NoRelease { .. } => exit::DEPENDENCY_UNFIT,
        UpdateError::Verification { .. }
        | UpdateError::SmokeTest { .. }
        | UpdateError::Downgrade { .. } => exit::UPDATE_REFUSED,
        UpdateError::SchemaGuard { .. } => exit::SCHEMA_REFUSED,
        UpdateError::RolledBack { .. } => exit::UPDATE_ROLLED_BACK,
        UpdateError::Install { .. }
        | UpdateError::Package { .. }
        | UpdateError::Restart { .. }
        | UpdateError::NoPrevious { .. } => exit::FAILURE,
    }
}

fn fail(error: &UpdateError) -> u8 {
    eprintln!("strata: self-update: {error}");
    code(error)
}

fn print_json(value: &impl serde::Serialize) -> bool {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            true
        }
        Err(e) => {
            eprintln!("strata: {e}");
            false
        }
    }
}

/// Exit 0: up to date; 1: an update (or, pinned, a downgrade) is available.
pub async fn check(config: Config, version: Option<String>, json: bool) -> u8 {
    let report = match update::check(&config, version.as_deref()).await {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    if json {
        if !print_json(&report) {
            return exit::FAILURE;
        }
    } else {
        println!("current   {}", report.current);
        println!(
            "available {}",
            report
                .available
                .as_deref()
                .unwrap_or("none for this machine")
        );
        println!("change    {}", report.change);
        println!("source    {}", report.source);
        println!("layout    {}", report.layout);
        println!("restart   {}", report.restart);
        print_schema(&report);
    }
    if report.update_available {
        exit::FAILURE
    } else {
        exit::OK
    }
}

/// The `schema` lines of `check`: what the release's first start would
/// apply to PostgreSQL, and whether the schema guard lets it in.
fn print_schema(report: &update::CheckReport) {
    if let Some(error) = &report.schema_error {
        println!("schema    unknown: {error}");
    }
    let Some(plan) = &report.schema else {
        return;
    };
    if plan.to_apply.is_empty() {
        println!(
            "schema    no migration to apply (database at {}, the release embeds up to {})",
            plan.database_version, plan.release_version
        );
    } else {
        println!(
            "schema    {} -> {}: the release applies {} migration(s) at its first start{}",
            plan.database_version,
            plan.release_version,
            plan.to_apply.len(),
            if plan.all_compatible {
                "; all compatible with older binaries (a rollback stays possible)"
            } else {
                "; NOT all compatible: afterwards older binaries refuse this database (no rollback to them)"
            }
        );
        for m in &plan.to_apply {
            println!(
                "          + {} {}",
                m.name,
                if m.compatible {
                    "(compatible with older binaries)"
                } else {
                    "(not compatible with older binaries)"
                }
            );
        }
    }
    if !plan.unknown_to_release.is_empty() {
        println!(
            "          the database has migrations the release does not ship: {}",
            plan.unknown_to_release.join(", ")
        );
    }
    match &plan.refused {
        Some(reason) => println!("guard     refuses: {reason}"),
        None => println!("guard     passes"),
    }
}

pub async fn apply(
    config: Config,
    version: Option<String>,
    allow_downgrade: bool,
    yes: bool,
    json: bool,
) -> u8 {
    if !yes {
        let report = match update::check(&config, version.as_deref()).await {
            Ok(report) => report,
            Err(e) => return fail(&e),
        };
        let Some(target) = report
            .available
            .as_deref()
            .filter(|_| report.update_available)
        else {
            println!("strata {} is up to date", report.current);
            return exit::OK;
        };
        if !confirm(&format!(
            "{} strata {} to {target} ({}), then restart with {}? [y/N] ",
            report.change, report.current, report.layout, report.restart
        )) {
            eprintln!("strata: self-update: not confirmed (pass --yes to run unattended)");
            return exit::FAILURE;
        }
    }
    let say = |line: &str| eprintln!("self-update: {line}");
    let options = ApplyOptions {
        version,
        allow_downgrade,
    };
    match update::apply(&config, &options, &say).await {
        Ok(applied) => {
            if json {
                if !print_json(&applied) {
                    return exit::FAILURE;
                }
            } else if applied.changed {
                println!("strata {} -> {}", applied.from, applied.to);
            } else {
                println!("strata {} is up to date", applied.from);
            }
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

pub async fn rollback(config: Config, json: bool) -> u8 {
    let say = |line: &str| eprintln!("self-update: {line}");
    match update::rollback(&config, &say).await {
        Ok(done) => {
            if json {
                if !print_json(&done) {
                    return exit::FAILURE;
                }
            } else {
                println!("rolled back ({})", done.layout);
            }
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// This binary's release manifest (for `scripts/release`).
pub fn manifest() -> u8 {
    match update::manifest::Manifest::current() {
        Ok(manifest) => {
            if print_json(&manifest) {
                exit::OK
            } else {
                exit::FAILURE
            }
        }
        Err(e) => {
            eprintln!("strata: {e}");
            exit::FAILURE
        }
    }
}

/// Asks on the terminal; without one, there is nobody to ask.
fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}
