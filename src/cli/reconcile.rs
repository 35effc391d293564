//! `strata reconcile [--tenant REF] [--json] [--repair --grace HOURS]`:
//! walks the three stores (see `content::reconcile`), prints the dangling
//! pointers (exit 1 if there is any: the split pattern forbids them) and
//! the orphans, and with `--repair` removes the orphans older than the
//! grace period. Safe while strata serves writes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::boot;
use crate::cli::exit;
use crate::config::Config;
use crate::content::Content;
use crate::content::reconcile::{self, Repair};
use crate::stores::Stores;

pub async fn run(config: Config, tenant: Option<String>, json: bool, grace: Option<u32>) -> u8 {
    let stores = match Stores::new(&config).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::of(&boot::BootError::Stores(e));
        }
    };
    let code = reconcile(&config, &stores, tenant.as_deref(), json, grace).await;
    stores.close().await;
    code
}

async fn reconcile(
    config: &Config,
    stores: &Stores,
    tenant: Option<&str>,
    json: bool,
    grace: Option<u32>,
) -> u8 {
    let content = Content::new(stores, &config.content, &config.s3);
    // A spinner on a terminal only: logs and pipes get the result alone.
    let spinner = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("walking PostgreSQL, MongoDB and S3");
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let scanned = reconcile::scan(&stores.postgres, &content, tenant).await;
    let report = match scanned {
        Ok(report) => report,
        Err(e) => {
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            eprintln!("strata: reconcile: {e}");
            return exit::FAILURE;
        }
    };
    let repaired = match grace {
        None => None,
        Some(hours) => {
            if let Some(bar) = &spinner {
                bar.set_message("removing orphans");
            }
            let grace = chrono::Duration::hours(i64::from(hours));
            match reconcile::repair(&content, &report, grace).await {
                Ok(done) => Some(done),
                Err(e) => {
                    if let Some(bar) = spinner {
                        bar.finish_and_clear();
                    }
                    eprintln!("strata: reconcile --repair: {e}");
                    return exit::FAILURE;
                }
            }
        }
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    if json {
        let document = serde_json::json!({
            "dangling": report.dangling,
            "orphans": report.orphans,
            "repair": repaired,
        });
        println!("{document}");
    } else {
        print_text(&report, repaired.as_ref());
    }
    if report.dangling.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

fn print_text(report: &reconcile::Report, repaired: Option<&Repair>) {
    println!("dangling pointers: {}", report.dangling.len());
    for d in &report.dangling {
        println!("  {} -> {} (missing)", d.from, d.missing);
    }
    println!("orphans: {}", report.orphans.len());
    for o in &report.orphans {
        let age = o
            .created_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "unknown".into());
        println!("  {} (since {age})", o.what);
    }
    if let Some(done) = repaired {
        println!(
            "repair: removed {}, kept {} younger than the grace period, kept {} under Object Lock",
            done.removed.len(),
            done.too_young.len(),
            done.locked.len()
        );
    }
}
