//! A panic anywhere is one structured error event through the normal
//! logger, a request to stop in order, and exit code 101. Its own test
//! binary: the hook and the logger are process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};

use strata::cli::exit;
use strata::ops::{panic, shutdown};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_once_with_location_and_thread_and_fails_the_exit_code() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();
    panic::install();
    assert!(!panic::panicked());
    assert_eq!(panic::exit_code(exit::OK), exit::OK);

    let worker = std::thread::Builder::new()
        .name("soak-worker".into())
        .spawn(|| {
            let reason = String::from("connection pool gone");
            std::panic::panic_any(format!("boom: {reason}"));
        })
        .expect("spawn");
    assert!(worker.join().is_err(), "the thread panicked");

    let log = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(events.len(), 1, "{log}");
    let event = &events[0];
    assert_eq!(event["level"], "ERROR", "{log}");
    assert_eq!(event["target"], "strata::panic", "{log}");
    let fields = &event["fields"];
    assert_eq!(
        fields["message"], "panic: boom: connection pool gone",
        "{log}"
    );
    assert_eq!(fields["thread"], "soak-worker", "{log}");
    let location = fields["location"].as_str().unwrap_or("");
    assert!(location.starts_with("tests/panic_hook.rs:"), "{log}");

    assert!(panic::panicked());
    assert_eq!(panic::exit_code(exit::OK), exit::PANIC);
    assert_eq!(exit::PANIC, 101);
    assert_eq!(
        shutdown::Stop::new().requested(),
        Some(shutdown::Reason::Panic)
    );
}
