//! Logging: tracing to stderr/stdout/rolling files, or journald.
//!
//! journald goes through systemd-journal-logger, a `log` logger, behind a
//! tracing layer that applies the same filter as the other targets.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

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

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Swaps the installed logger's filter (SIGHUP reload of `log.level`).
fn reloader() -> &'static std::sync::Mutex<Option<SetFilter>> {
    static RELOAD: std::sync::OnceLock<std::sync::Mutex<Option<SetFilter>>> =
        std::sync::OnceLock::new();
    RELOAD.get_or_init(|| std::sync::Mutex::new(None))
}

fn keep_reloader(set: SetFilter) {
    let mut slot = reloader().lock().unwrap_or_else(|p| p.into_inner());
    *slot = Some(set);
}

/// Applies a new `log.level` to the running logger. `Ok(false)` when
/// `RUST_LOG` is set (it keeps precedence) or no logger is installed.
pub fn set_level(level: &str) -> Result<bool, LoggingError> {
    if std::env::var("RUST_LOG").is_ok_and(|v| !v.is_empty()) {
        return Ok(false);
    }
    let filter = EnvFilter::try_new(level).map_err(|e| LoggingError::Filter(e.to_string()))?;
    let slot = reloader().lock().unwrap_or_else(|p| p.into_inner());
    match slot.as_ref() {
        Some(set) => set(filter).map(|()| true).map_err(LoggingError::Filter),
        None => Ok(false),
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
            let journal = systemd_journal_logger::JournalLog::new()
                .map_err(|e| LoggingError::Journald(e.to_string()))?
                .with_syslog_identifier("strata".into());
            // A tracing layer in front of the journal logger, so that the whole
            // filter (`strata=debug,sqlx=warn`) applies, not only its maximum.
            let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
            let installed = tracing_subscriber::registry()
                .with(filter)
                .with(LogForwarder { log: journal })
                .try_init();
            if let Err(e) = installed {
                return Err(LoggingError::Journald(e.to_string()));
            }
            keep_reloader(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
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
    match format {
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                keep_reloader(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                keep_reloader(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
    }
}

fn tracing_level_to_log(level: tracing::Level) -> log::Level {
    match level {
        tracing::Level::ERROR => log::Level::Error,
        tracing::Level::WARN => log::Level::Warn,
        tracing::Level::INFO => log::Level::Info,
        tracing::Level::DEBUG => log::Level::Debug,
        tracing::Level::TRACE => log::Level::Trace,
    }
}

/// Hands every event that passed the filter to a `log` logger (the journal),
/// as its message followed by its fields, and each field also as a
/// key-value (the journal makes it a field of its own: `THREAD=`, ...).
struct LogForwarder<L> {
    log: L,
}

impl<S: tracing::Subscriber, L: log::Log + 'static> Layer<S> for LogForwarder<L> {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let meta = event.metadata();
        let pairs: Vec<(&str, &str)> = text.pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.log.log(
            &log::Record::builder()
                .level(tracing_level_to_log(*meta.level()))
                .target(meta.target())
                .module_path(meta.module_path())
                .file(meta.file())
                .line(meta.line())
                .args(format_args!("{}{}", text.message, text.fields))
                .key_values(&pairs.as_slice())
                .build(),
        );
    }
}

#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
    pairs: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
            self.pairs.push((field.name(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push_str(&format!(" {}={value}", field.name()));
            self.pairs.push((field.name(), value.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the forwarder hands on, in place of the journal.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<(log::Level, String, String)>>>, Pairs);

    /// The key-values of every record, in order.
    #[derive(Clone, Default)]
    struct Pairs(Arc<Mutex<Vec<KeyValues>>>);

    type KeyValues = Vec<(String, String)>;

    struct Visit<'a>(&'a mut Vec<(String, String)>);

    impl<'kvs> log::kv::VisitSource<'kvs> for Visit<'_> {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            self.0.push((key.to_string(), value.to_string()));
            Ok(())
        }
    }

    impl log::Log for Collected {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let mut pairs = Vec::new();
            let _ = record.key_values().visit(&mut Visit(&mut pairs));
            if let Ok(mut all) = self.1.0.lock() {
                all.push(pairs);
            }
            if let Ok(mut seen) = self.0.lock() {
                seen.push((
                    record.level(),
                    record.target().to_string(),
                    record.args().to_string(),
                ));
            }
        }
        fn flush(&self) {}
    }

    #[test]
    fn the_whole_filter_applies_before_the_journal() {
        let collected = Collected::default();
        let filter = EnvFilter::try_new("info,noisy=warn,chatty=debug").expect("filter");
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(LogForwarder {
                log: collected.clone(),
            });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "noisy", "dropped: below warn for noisy");
            tracing::warn!(target: "noisy", "kept");
            tracing::debug!(target: "chatty", answer = 42, "kept too");
            tracing::debug!(target: "other", "dropped: below info");
        });
        let seen = collected.0.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                (log::Level::Warn, "noisy".to_string(), "kept".to_string()),
                (
                    log::Level::Debug,
                    "chatty".to_string(),
                    "kept too answer=42".to_string()
                ),
            ]
        );
        let pairs = collected.1.0.lock().expect("lock").clone();
        assert_eq!(
            pairs,
            vec![vec![], vec![("answer".to_string(), "42".to_string())]],
            "each field also goes to the journal as a field of its own"
        );
    }
}
