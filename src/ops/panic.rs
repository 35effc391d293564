//! Panics are never silent: the hook logs one structured error event
//! through the normal logger (journald included), asks `serve` to stop in
//! order, and the process then exits with [`crate::cli::exit::PANIC`], so
//! systemd restarts it (`Restart=on-failure`) and the journal says why.
//!
//! It replaces Rust's default hook, which would write a second, unstructured
//! copy to stderr (the journal too, under systemd).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};

use super::shutdown;

static PANICKED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread runs the hook: a panic inside the logger must
    /// not recurse into the logger.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook for the whole process (every thread, every task).
pub fn install() {
    std::panic::set_hook(Box::new(hook));
}

/// Whether any thread panicked since the hook was installed.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// A command's exit code, unless a thread panicked meanwhile (even a task
/// while the runtime stopped): that is a failure for systemd to see.
pub fn exit_code(code: u8) -> u8 {
    if panicked() {
        crate::cli::exit::PANIC
    } else {
        code
    }
}

fn hook(info: &PanicHookInfo<'_>) {
    PANICKED.store(true, Ordering::SeqCst);
    let message = message(info);
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "unknown".into());
    let current = std::thread::current();
    let thread = current.name().unwrap_or("unnamed");
    // Only when RUST_BACKTRACE asks for one, as with the default hook.
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());

    let nested = IN_HOOK.with(|flag| flag.replace(true));
    if nested || !tracing::dispatcher::has_been_set() {
        // No logger yet (or it is what panicked): stderr is all there is.
        eprintln!("strata: panic in thread {thread} at {location}: {message}");
    } else {
        tracing::error!(
            target: "strata::panic",
            location = %location,
            thread = %thread,
            backtrace = backtrace.as_deref(),
            "panic: {message}"
        );
    }
    if !nested {
        IN_HOOK.with(|flag| flag.set(false));
    }
    shutdown::request(shutdown::Reason::Panic);
}

fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".into()
    }
}
