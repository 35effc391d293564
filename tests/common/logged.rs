//! A `strata` child whose JSON log lines (stderr) are read as they come, so
//! a test can act on the moment a line appears (the first line, "ready")
//! instead of sleeping.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// One log line as it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub raw: String,
    /// `fields.message` of a JSON line; the raw line otherwise.
    pub message: String,
}

pub struct Logged {
    child: Child,
    lines: Receiver<Line>,
    pub seen: Vec<Line>,
    eof: bool,
}

impl Logged {
    /// Spawns `command` with JSON logs on stderr.
    pub fn spawn(mut command: Command) -> Logged {
        command
            .env("STRATA_LOG__FORMAT", "json")
            .env("STRATA_LOG__TARGET", "stderr")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn strata");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for raw in BufReader::new(stderr).lines() {
                let Ok(raw) = raw else { break };
                let message = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v["fields"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| raw.clone());
                let line = Line {
                    at: Instant::now(),
                    raw,
                    message,
                };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Logged {
            child,
            lines,
            seen: Vec::new(),
            eof: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line satisfies `accept` (lines seen before count),
    /// up to `timeout`. Returns it, or None at the deadline or at the end
    /// of the log.
    pub fn wait_line(&mut self, timeout: Duration, accept: impl Fn(&Line) -> bool) -> Option<Line> {
        if let Some(line) = self.seen.iter().find(|l| accept(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = accept(&line);
                    self.seen.push(line.clone());
                    if found {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
        None
    }

    /// Waits for a line whose message is exactly `message`.
    pub fn wait_message(&mut self, message: &str, timeout: Duration) -> Option<Line> {
        self.wait_line(timeout, |l| l.message == message)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to `timeout`) for the log to end and the process to exit;
    /// None if it did not. Every line is in `seen` afterwards.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait_line(timeout, |_| false);
        if !self.eof {
            return None;
        }
        // stderr is closed: the process exits now (or a child holds it).
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
    }

    /// The whole log so far, one line per line.
    pub fn text(&mut self) -> String {
        // Take in what has arrived, without waiting.
        self.wait_line(Duration::ZERO, |_| false);
        self.seen
            .iter()
            .map(|l| l.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
