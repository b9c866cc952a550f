//! Time: the core's clocks, and the Lambda invocation's deadline.

pub use jobhook_core::clock::*;

use time::OffsetDateTime;

/// An invocation's deadline, given as epoch ms, as an `Instant`. Lambda never
/// hands over an invocation whose deadline has passed; one that has is an
/// emulator's (`cargo lambda watch` sends the timeout, 600000, where Lambda
/// sends epoch ms), and `fallback`, the function's timeout, stands in for it.
pub fn deadline_from_epoch_ms(deadline_ms: u64, fallback: std::time::Duration) -> tokio::time::Instant {
    let now_ms = u64::try_from(unix_ms(OffsetDateTime::now_utc())).unwrap_or_default();
    let remaining = match deadline_ms.checked_sub(now_ms) {
        Some(ms) if ms > 0 => std::time::Duration::from_millis(ms),
        _ => fallback,
    };
    tokio::time::Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_past_or_a_bare_duration_falls_back_to_the_timeout() {
        let fallback = std::time::Duration::from_secs(30);
        let left = |deadline_ms| deadline_from_epoch_ms(deadline_ms, fallback) - tokio::time::Instant::now();
        assert!(
            left(600_000) > std::time::Duration::from_secs(29),
            "cargo lambda's 600000"
        );
        let in_ten = unix_ms(OffsetDateTime::now_utc()) as u64 + 10_000;
        let remaining = left(in_ten);
        assert!(remaining <= std::time::Duration::from_secs(10) && remaining > std::time::Duration::from_secs(8));
    }
}
