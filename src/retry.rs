//! Bounded retry with exponential backoff, used by every dependency probe.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

/// Exponential backoff with jitter: each delay doubles up to `max`, and a
/// random part is added to every one, so that instances that failed
/// together (a fleet booting while the database restarts) do not retry in
/// lockstep. The schedule itself is backon's.
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

    /// The delays before the 2nd, 3rd, ... attempt; never ends.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        ExponentialBuilder::new()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The longest delay the schedule reaches before jitter.
    pub fn max(&self) -> Duration {
        self.max
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
    let mut delays = backoff.delays();
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
                let delay = delays.next().unwrap_or(backoff.max());
                tokio::time::sleep(delay.min(remaining)).await;
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
    fn delays_double_up_to_the_cap_each_with_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let bases = [100, 200, 400, 700, 700, 700];
        let runs: Vec<Vec<u128>> = (0..20)
            .map(|_| b.delays().take(6).map(|d| d.as_millis()).collect())
            .collect();
        for run in &runs {
            for (delay, base) in run.iter().zip(bases) {
                assert!((base..2 * base).contains(delay), "{run:?}");
            }
        }
        // Two instances that failed together do not wait alike.
        assert!(runs.windows(2).any(|w| w[0] != w[1]), "{runs:?}");
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
        // Delays of at least 100, 200, 400, 800, 1000 ms and less than
        // twice that: between 4 and 7 attempts fit in 3 s, and the last
        // sleep stops at the deadline.
        assert!((4..=7).contains(&gave_up.attempts), "{}", gave_up.attempts);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
