//! `strata migrate [--plan]`: upgrade the schema of all three stores and
//! exit (package post-install, Ansible), or only show what would change.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

use crate::boot;
use crate::cli::exit;
use crate::config::Config;
use crate::schema::{self, SchemaPlan};
use crate::stores::Stores;

pub async fn run(config: Config, plan_only: bool) -> u8 {
    let stores = match Stores::new(&config).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::of(&boot::BootError::Stores(e));
        }
    };
    let code = migrate(&config, &stores, plan_only).await;
    stores.close().await;
    code
}

async fn migrate(config: &Config, stores: &Stores, plan_only: bool) -> u8 {
    for (_, result) in boot::probe_all(stores, &config.boot).await {
        if let Err(e) = result {
            eprintln!("strata: {e}");
            return exit::of(&e);
        }
    }
    let plan = match schema::plan(stores, config).await {
        Ok(plan) => plan,
        Err(e) => return schema_failed(e),
    };
    if !plan.postgres_newer.is_empty() {
        // An older binary on a compatible newer schema may serve, never migrate.
        print_plan(&plan);
        eprintln!(
            "strata: schema upgrade refused: this binary is older than the database schema \
             (newer migrations: {}); run the newer strata release to migrate",
            plan.postgres_newer.join(", ")
        );
        return exit::SCHEMA_REFUSED;
    }
    if plan_only {
        print_plan(&plan);
        return if plan.is_empty() {
            exit::OK
        } else {
            exit::FAILURE
        };
    }
    if plan.is_empty() {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
        println!(
            "schema up to date (postgres version {}); nothing to do",
            plan.postgres_version
        );
        return exit::OK;
    }

    let progress = Progress::new(plan.len());
    let report = schema::upgrade(stores, config, &|line: &str| progress.step(line)).await;
    progress.finish();
    match report {
        Ok(report) => {
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "schema upgraded: {} change(s) in {} ms (postgres version {})",
                report.applied.len(),
                report.took_ms,
                report.postgres_version
            );
            exit::OK
        }
        Err(e) => schema_failed(e),
    }
}

/// A refused schema exits 5; a store lost mid-way exits 3 (try again).
fn schema_failed(error: schema::SchemaError) -> u8 {
    if error.is_transient() {
        eprintln!("strata: schema upgrade interrupted: {error}");
    } else {
        eprintln!("strata: schema upgrade refused: {error}");
    }
    exit::of(&boot::BootError::Schema(error))
}

fn print_plan(plan: &SchemaPlan) {
    let pg_header = format!(
        "postgres (database at version {}, this binary ships {})",
        plan.postgres_version, plan.postgres_binary_version
    );
    for (header, steps) in [
        (pg_header.as_str(), &plan.postgres),
        ("mongo", &plan.mongo),
        ("s3", &plan.s3),
    ] {
        println!("{header}:");
        if steps.is_empty() {
            println!("  up to date");
        }
        for step in steps {
            println!("  - {step}");
        }
    }
    for warning in &plan.warnings {
        println!("warning: {warning}");
    }
    if plan.is_empty() {
        println!("nothing pending");
    } else {
        println!("{} change(s) pending", plan.len());
    }
}

/// A line per step; on a terminal, indicatif's bar redrawn in place.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
}

impl Progress {
    fn new(total: usize) -> Self {
        let total = u64::try_from(total.max(1)).unwrap_or(u64::MAX);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("[{bar:24}] {pos}/{len} {wide_msg}") {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar
        });
        Self {
            bar,
            total,
            done: AtomicU64::new(0),
        }
    }

    fn step(&self, line: &str) {
        // The lock line is not a plan step.
        let counts = !line.starts_with("taking");
        let done = if counts {
            self.done.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.done.load(Ordering::Relaxed)
        }
        .min(self.total);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(line.to_string());
            }
            None => println!("[{done}/{}] {line}", self.total),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
