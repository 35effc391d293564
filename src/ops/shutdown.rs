//! The stop latch: SIGTERM, SIGINT or a panic set it once; every step of
//! `serve` (each boot step, then serving) waits on it, so a stop that comes
//! between two steps is never lost.

use std::sync::OnceLock;

use tokio::sync::watch;

/// Why strata stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Signal(&'static str),
    Panic,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Signal(name) => f.write_str(name),
            Reason::Panic => f.write_str("panic"),
        }
    }
}

fn latch() -> &'static watch::Sender<Option<Reason>> {
    static LATCH: OnceLock<watch::Sender<Option<Reason>>> = OnceLock::new();
    LATCH.get_or_init(|| watch::channel(None).0)
}

/// Asks the process to stop; the first reason wins. Safe from a panic hook
/// and from any thread.
pub fn request(reason: Reason) {
    latch().send_if_modified(|current| {
        if current.is_none() {
            *current = Some(reason);
            true
        } else {
            false
        }
    });
}

/// A view of the latch; cheap to clone.
#[derive(Clone)]
pub struct Stop(watch::Receiver<Option<Reason>>);

impl Stop {
    pub fn new() -> Self {
        Stop(latch().subscribe())
    }

    pub fn requested(&self) -> Option<Reason> {
        *self.0.borrow()
    }

    /// Resolves once a stop was requested (at once if it already was).
    pub async fn wait(&mut self) -> Reason {
        match self.0.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or(Reason::Panic),
            // The sender is a static and never dropped.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

/// Installs the SIGTERM and SIGINT handlers now, so that from this moment a
/// signal is a request to stop in order, never the default (immediate
/// death). Needs a tokio runtime. The returned task only forwards signals.
pub fn listen() -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if Stop::new().requested().is_some() {
                // Already stopping: the handlers stay installed, so a
                // repeated signal cannot cut the ordered stop short.
                tracing::info!(signal = name, "already stopping");
            } else {
                request(Reason::Signal(name));
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_seen_by_late_subscribers() {
        let mut early = Stop::new();
        request(Reason::Signal("SIGTERM"));
        request(Reason::Panic);
        assert_eq!(early.wait().await, Reason::Signal("SIGTERM"));
        // A step that starts waiting after the signal still sees it.
        let mut late = Stop::new();
        assert_eq!(late.wait().await, Reason::Signal("SIGTERM"));
        assert_eq!(late.requested(), Some(Reason::Signal("SIGTERM")));
    }
}
