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
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

#[cfg(any(test, feature = "test-util"))]
impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(OffsetDateTime::from_unix_timestamp(secs).expect("timestamp in range"))
    }
}

#[cfg(any(test, feature = "test-util"))]
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
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<OffsetDateTime>);

#[cfg(any(test, feature = "test-util"))]
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

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// Milliseconds since the epoch.
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

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

    #[test]
    fn a_clock_s_unix_seconds_and_milliseconds_are_its_instant_s() {
        let clock = FixedClock::at_unix(1_778_673_605);
        assert_eq!(clock.now_unix(), 1_778_673_605);
        let at = clock.now() + time::Duration::milliseconds(987);
        assert_eq!(unix_ms(at), 1_778_673_605_987);
        let before_epoch = OffsetDateTime::from_unix_timestamp(-2).expect("in range");
        assert_eq!(unix_ms(before_epoch), -2_000);
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at_unix(100);
        assert_eq!(clock.now_unix(), 100);
        clock.advance(std::time::Duration::from_millis(1_500));
        assert_eq!(unix_ms(clock.now()), 101_500);
        assert_eq!(clock.now_unix(), 101);
    }
}
