//! When an open job is next due for a poll, and the one doubling backoff
//! every retry and poll schedule is built on.

use std::time::Duration;

/// The wait before retry `step` (1 for the first) of a doubling backoff:
/// `first`, `2 × first`, `4 × first`, … never more than `max`. Written here
/// once; the retry loop, the reconciler, `jobhook listen` and the simulator
/// add their own jitter, deadline or window.
pub fn doubling(first: Duration, max: Duration, step: u32) -> Duration {
    let factor = 1u32 << step.saturating_sub(1).min(31);
    first.saturating_mul(factor).min(max)
}

/// The wait before the next poll of a job whose outputs are kept and whose
/// provider deletes them `retention` after the job ends: at most half of it,
/// so a completion whose webhook was missed is found with half the retention
/// left for the copy.
pub fn within_retention(wait: Duration, retention: Option<Duration>) -> Duration {
    retention.map_or(wait, |r| wait.min(r / 2))
}

/// How long after its last applied event (or its tracking) an open job is
/// first due for a poll, unless set otherwise (`JOBHOOK_STALE_AFTER_SECS`).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(600);

#[cfg(test)]
mod doubling_tests {
    use super::*;

    #[test]
    fn a_job_whose_outputs_expire_is_polled_within_half_their_retention() {
        let hour = Duration::from_secs(3600);
        assert_eq!(within_retention(hour, Some(hour)), Duration::from_secs(1800));
        assert_eq!(
            within_retention(Duration::from_secs(300), Some(hour)),
            Duration::from_secs(300)
        );
        assert_eq!(within_retention(hour, None), hour, "outputs that stay set no bound");
    }

    #[test]
    fn each_wait_doubles_the_last_until_the_cap() {
        let (first, max) = (Duration::from_millis(20), Duration::from_secs(1));
        let waits: Vec<u128> = (0..=8).map(|step| doubling(first, max, step).as_millis()).collect();
        assert_eq!(waits, [20, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(doubling(first, max, u32::MAX), max, "no overflow at any step");
        assert_eq!(doubling(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }
}
