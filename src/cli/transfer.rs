//! `strata tenant export REF --output FILE` and `strata tenant import FILE`.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::exit;
use crate::config::Config;
use crate::stores::Stores;
use crate::transfer::{self, TransferError};

/// A spinner with the current step on a terminal, plain lines otherwise.
fn progress() -> (ProgressBar, impl Fn(&str) + Send + Sync) {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let shown = bar.clone();
    let report = move |step: &str| {
        if shown.is_hidden() {
            eprintln!("{step}");
        } else {
            shown.set_message(step.to_string());
        }
    };
    (bar, report)
}

fn code_of(error: &TransferError) -> u8 {
    match error {
        TransferError::Postgres(e) if crate::stores::Failure::of_postgres(e).is_transient() => {
            exit::DEPENDENCY_UNREACHABLE
        }
        TransferError::Mongo(_) | TransferError::S3(_) => exit::DEPENDENCY_UNREACHABLE,
        _ => exit::FAILURE,
    }
}

pub async fn export(config: Config, tenant_ref: String, output: Option<PathBuf>) -> u8 {
    let stores = match Stores::new(&config).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::of(&crate::boot::BootError::Stores(e));
        }
    };
    let output = output.unwrap_or_else(|| transfer::default_output(&tenant_ref));
    let (bar, report) = progress();
    let result = transfer::export(&stores, &config, &tenant_ref, &output, &report).await;
    bar.finish_and_clear();
    stores.close().await;
    match result {
        Ok(manifest) => {
            println!(
                "exported tenant {} to {} ({} files)",
                manifest.tenant_ref,
                output.display(),
                manifest.files.len()
            );
            for (what, count) in &manifest.counts {
                println!("  {what}: {count}");
            }
            exit::OK
        }
        Err(e) => {
            // A half-written archive must not pass for an export.
            let _ = std::fs::remove_file(&output);
            eprintln!("strata: export failed: {e}");
            code_of(&e)
        }
    }
}

pub async fn import(config: Config, archive: PathBuf) -> u8 {
    let stores = match Stores::new(&config).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::of(&crate::boot::BootError::Stores(e));
        }
    };
    let (bar, report) = progress();
    let result = transfer::import(&stores, &config, &archive, &report).await;
    bar.finish_and_clear();
    stores.close().await;
    match result {
        Ok(manifest) => {
            println!(
                "imported tenant {} from {}",
                manifest.tenant_ref,
                archive.display()
            );
            for (what, count) in &manifest.counts {
                println!("  {what}: {count}");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("strata: import refused: {e}");
            code_of(&e)
        }
    }
}
