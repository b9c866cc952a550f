//! Retries of transient failures inside one invocation: exponential backoff
//! with "equal jitter" (half the cap fixed, half random), bounded by attempts
//! and by the invocation's deadline.
//!
//! The SDK already retries throttling and 5xx a few times. This layer exists
//! for what it does not retry (DynamoDB's `TransactionConflict`) and for
//! failures that outlast its attempts: a message is reported back to SQS only
//! once retrying here can no longer finish before the Lambda times out.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::ports::PortError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first wait; each later cap doubles, up to `max`. A wait
    /// is at least half its cap, so retries really back off.
    pub first: Duration,
    pub max: Duration,
    /// Calls in all, the first included.
    pub max_attempts: u32,
    /// No retry starts unless this much time is left before the deadline,
    /// so a last attempt can finish and the answer reach Lambda.
    pub reserve: Duration,
}

impl Backoff {
    /// For the processor's writes: conflicts clear in milliseconds, a
    /// throttled table in tens to hundreds of milliseconds.
    pub const WRITES: Backoff = Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_secs(1),
        max_attempts: 8,
        reserve: Duration::from_secs(2),
    };

    /// The most the wait before attempt `attempt + 1` may be (attempt ≥ 1).
    pub fn cap(&self, attempt: u32) -> Duration {
        crate::domain::schedule::doubling(self.first, self.max, attempt)
    }

    /// Runs `op` until it succeeds, fails for good, runs out of attempts or
    /// would overrun `deadline`. Returns the last result and the retries made.
    pub async fn run<T, F, Fut>(&self, deadline: Instant, mut op: F) -> (Result<T, PortError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut attempt = 1;
        loop {
            let result = op().await;
            match &result {
                Err(e) if e.is_retryable() && attempt < self.max_attempts => {
                    let wait = jitter(self.cap(attempt));
                    if Instant::now() + wait + self.reserve > deadline {
                        return (result, attempt - 1);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return (result, attempt - 1),
            }
        }
    }
}

/// A uniformly random duration in `[cap/2, cap]` ("equal jitter"): writers
/// that collided do not collide again in step, and each wait still grows.
/// The randomness is std's per-instance hasher keys: enough to spread
/// retries, without a random-number crate in every function binary.
fn jitter(cap: Duration) -> Duration {
    let half = cap / 2;
    let spread = (cap - half).as_nanos().min(u128::from(u64::MAX)) as u64;
    if spread == 0 {
        return cap;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(spread);
    half + Duration::from_nanos(hasher.finish() % (spread + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
        max_attempts: 5,
        reserve: Duration::ZERO,
    };

    async fn failing_until(
        succeed_on: u32,
        error: fn() -> PortError,
        backoff: Backoff,
        budget: Duration,
    ) -> (Result<u32, PortError>, u32, u32) {
        let calls = AtomicU32::new(0);
        let (result, retries) = backoff
            .run(Instant::now() + budget, || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= succeed_on {
                    Ok(n)
                } else {
                    Err(error())
                }
            })
            .await;
        (result, retries, calls.load(Ordering::SeqCst))
    }

    fn conflict() -> PortError {
        PortError::transient("dynamodb:TransactWriteItems", "TransactionConflict")
    }

    fn invalid() -> PortError {
        PortError::permanent("dynamodb:PutItem", "ValidationException")
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_until_it_succeeds() {
        let (result, retries, calls) = failing_until(3, conflict, FAST, Duration::from_secs(5)).await;
        assert_eq!(result.expect("succeeds on the third call"), 3);
        assert_eq!((retries, calls), (2, 3));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried() {
        let (result, retries, calls) = failing_until(3, invalid, FAST, Duration::from_secs(5)).await;
        assert!(!result.expect_err("permanent").is_retryable());
        assert_eq!((retries, calls), (0, 1));
    }

    #[tokio::test]
    async fn retries_stop_at_the_attempt_limit() {
        let (result, retries, calls) = failing_until(100, conflict, FAST, Duration::from_secs(5)).await;
        assert!(result.is_err());
        assert_eq!((retries, calls), (4, 5));
    }

    #[tokio::test]
    async fn no_retry_starts_that_would_overrun_the_deadline() {
        let reserved = Backoff {
            reserve: Duration::from_secs(10),
            ..FAST
        };
        let (result, retries, calls) = failing_until(2, conflict, reserved, Duration::from_secs(5)).await;
        assert!(result.is_err(), "the one retry would start inside the reserve");
        assert_eq!((retries, calls), (0, 1));
    }

    #[test]
    fn caps_double_up_to_the_maximum_and_each_wait_is_half_to_all_of_its_cap() {
        let caps: Vec<u128> = (1..=5).map(|a| Backoff::WRITES.cap(a).as_millis()).collect();
        assert_eq!(caps, [20, 40, 80, 160, 320]);
        assert_eq!(Backoff::WRITES.cap(30), Duration::from_secs(1));
        let cap = Duration::from_millis(50);
        let samples: Vec<Duration> = (0..200).map(|_| jitter(cap)).collect();
        assert!(samples.iter().all(|d| *d >= cap / 2 && *d <= cap));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(
            distinct.len() > 100,
            "jitter spreads: {} distinct of 200",
            distinct.len()
        );
    }
}
