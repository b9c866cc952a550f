//! Time as a dependency, so tests can pin it to published vectors.

use time::OffsetDateTime;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;

    fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(OffsetDateTime::from_unix_timestamp(secs).expect("timestamp in range"))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-05-13T12:00:05.123Z`.
///
/// Fixed width matters: stored timestamps are compared as strings, and the
/// well-known RFC 3339 formatter drops a zero fraction, which would sort
/// `…:05Z` after `…:05.123Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("UTC instants always format")
}

/// A clock that tests move by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(std::sync::Mutex::new(
            OffsetDateTime::from_unix_timestamp(secs).expect("timestamp in range"),
        ))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// Milliseconds since the epoch.
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

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

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

    #[test]
    fn rfc3339_is_fixed_width_so_strings_sort_like_instants() {
        let whole = OffsetDateTime::from_unix_timestamp(1_778_673_605).expect("in range");
        let later = whole + time::Duration::milliseconds(123);
        assert_eq!(rfc3339(whole), "2026-05-13T12:00:05.000Z");
        assert_eq!(rfc3339(later), "2026-05-13T12:00:05.123Z");
        assert!(rfc3339(whole) < rfc3339(later));
    }

    #[test]
    fn rfc3339_truncates_to_milliseconds_and_converts_to_utc() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_778_673_605_999_999_999)
            .expect("in range")
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).expect("offset"));
        assert_eq!(rfc3339(at), "2026-05-13T12:00:05.999Z");
        assert_eq!(
            OffsetDateTime::parse(&rfc3339(at), &Rfc3339)
                .expect("parses")
                .unix_timestamp(),
            1_778_673_605
        );
    }
}
