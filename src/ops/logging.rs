//! Logging: tracing to stderr/stdout/rolling files, or journald.
//!
//! journald goes through systemd-journal-logger, a `log` logger: in that mode
//! no tracing subscriber is installed, and tracing's `log` feature forwards
//! every event to it.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat, LogRotation, LogTarget};

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log.level: {0}")]
    Filter(String),
    #[error("log.directory {directory}: cannot open a log file there: {reason}")]
    File { directory: String, reason: String },
    #[error("log.target = \"journald\": {0}")]
    Journald(String),
}

/// Keeps the file writer's background thread alive; drop it last.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Where logs go when `target = "auto"`: journald if systemd connected our
/// stderr to it, otherwise stderr.
pub fn resolve_target(target: LogTarget) -> LogTarget {
    match target {
        LogTarget::Auto if systemd_journal_logger::connected_to_journal() => LogTarget::Journald,
        LogTarget::Auto => LogTarget::Stderr,
        other => other,
    }
}

/// Installs the global logger. `RUST_LOG` overrides `log.level` when set, so
/// an operator can turn up one module without editing the config.
pub fn init(config: &LogConfig) -> Result<LogGuard, LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&config.level),
    }
    .map_err(|e| LoggingError::Filter(e.to_string()))?;

    match resolve_target(config.target) {
        LogTarget::Journald => {
            let level = filter
                .max_level_hint()
                .and_then(|l| l.into_level())
                .map(tracing_level_to_log)
                .unwrap_or(log::LevelFilter::Info);
            systemd_journal_logger::JournalLog::new()
                .map_err(|e| LoggingError::Journald(e.to_string()))?
                .with_syslog_identifier("strata".into())
                .install()
                .map_err(|e| LoggingError::Journald(e.to_string()))?;
            log::set_max_level(level);
            Ok(LogGuard { _file: None })
        }
        LogTarget::File => {
            let rotation = match config.rotation {
                LogRotation::Minutely => Rotation::MINUTELY,
                LogRotation::Hourly => Rotation::HOURLY,
                LogRotation::Daily => Rotation::DAILY,
                LogRotation::Never => Rotation::NEVER,
            };
            let mut builder = RollingFileAppender::builder()
                .rotation(rotation)
                .filename_prefix("strata")
                .filename_suffix("log");
            if config.max_files > 0 {
                builder = builder.max_log_files(config.max_files);
            }
            let appender = builder
                .build(&config.directory)
                .map_err(|e| LoggingError::File {
                    directory: config.directory.display().to_string(),
                    reason: e.to_string(),
                })?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            install(filter, config.format, writer, false);
            Ok(LogGuard { _file: Some(guard) })
        }
        LogTarget::Stdout => {
            install(
                filter,
                config.format,
                std::io::stdout,
                std::io::stdout().is_terminal(),
            );
            Ok(LogGuard { _file: None })
        }
        LogTarget::Stderr | LogTarget::Auto => {
            install(
                filter,
                config.format,
                std::io::stderr,
                std::io::stderr().is_terminal(),
            );
            Ok(LogGuard { _file: None })
        }
    }
}

fn install<W>(filter: EnvFilter, format: LogFormat, writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    // A second install (tests calling init twice) keeps the first logger.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn tracing_level_to_log(level: tracing::Level) -> log::LevelFilter {
    match level {
        tracing::Level::ERROR => log::LevelFilter::Error,
        tracing::Level::WARN => log::LevelFilter::Warn,
        tracing::Level::INFO => log::LevelFilter::Info,
        tracing::Level::DEBUG => log::LevelFilter::Debug,
        tracing::Level::TRACE => log::LevelFilter::Trace,
    }
}
