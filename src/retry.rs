//! Bounded retry with exponential backoff, used by every dependency probe.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Exponential backoff: each delay doubles, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Whether a failed attempt is worth repeating.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

/// The last error and how hard we tried.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Runs `op` until it succeeds, fails permanently, or `deadline` has passed.
/// No attempt starts after the deadline, and the sleep before one never
/// overshoots it, so the whole call ends within `deadline` plus one attempt.
/// `on_failure` sees each failed attempt (for logs and readiness reports).
pub async fn retry<T, E, F, Fut>(
    backoff: Backoff,
    deadline: Duration,
    mut on_failure: impl FnMut(u32, &E),
    mut op: F,
) -> Result<(T, u32), GaveUp<E>>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Ok(value) => return Ok((value, attempt)),
            Err(error) => {
                on_failure(attempt, &error);
                let elapsed = started.elapsed();
                let remaining = deadline.saturating_sub(elapsed);
                if !error.is_transient() || remaining.is_zero() {
                    return Err(GaveUp {
                        error,
                        attempts: attempt,
                        elapsed,
                    });
                }
                tokio::time::sleep(backoff.delay(attempt).min(remaining)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failure(bool);
    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let delays: Vec<u128> = (1..=6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 700, 700, 700]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_transient_failures() {
        let mut calls = 0;
        let mut seen = Vec::new();
        let result = retry(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
            Duration::from_secs(10),
            |attempt, _e: &Failure| seen.push(attempt),
            || {
                calls += 1;
                let ok = calls >= 3;
                async move { if ok { Ok("up") } else { Err(Failure(true)) } }
            },
        )
        .await;
        assert!(matches!(result, Ok(("up", 3))));
        assert_eq!(seen, vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_stops_at_once() {
        let result: Result<((), u32), _> = retry(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
            Duration::from_secs(10),
            |_, _| {},
            || async { Err(Failure(false)) },
        )
        .await;
        let gave_up = result.expect_err("permanent");
        assert_eq!(gave_up.attempts, 1);
        assert_eq!(gave_up.error, Failure(false));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let started = tokio::time::Instant::now();
        let result: Result<((), u32), _> = retry(
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
            Duration::from_secs(3),
            |_, _| {},
            || async { Err(Failure(true)) },
        )
        .await;
        let gave_up = result.expect_err("never succeeds");
        // 100+200+400+800+1000 = 2.5 s, then 0.5 s to the deadline: 7 attempts.
        assert_eq!(gave_up.attempts, 7);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
