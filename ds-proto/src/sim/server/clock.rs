//! Virtual wall-clock time: how a [`super::SimServer`] turns the `Instant`s it is given into
//! the absolute times the protocol speaks of (`Stream-Expires-At`, RFC 3339, PROTOCOL.md 5.1)
//! and into CDN-collapsing cursors (interval numbers counted from an epoch, 10.1).
//!
//! Nothing here reads a clock: the wall time at an `Instant` is `unix_at_origin + (instant -
//! origin)`, where the origin is configured or taken from the first `now` the server sees.

use crate::rng::Rng;
use std::time::{Duration, Instant};

/// Nanoseconds since the Unix epoch (negative before 1970).
pub(crate) type UnixNanos = i128;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Maps `Instant`s to virtual wall-clock time and computes cursors.
#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    origin: Option<Instant>,
    unix_at_origin: Duration,
    cursor_epoch_unix: Duration,
    cursor_interval: Duration,
}

impl VirtualClock {
    pub(crate) fn new(
        origin: Option<Instant>,
        unix_at_origin: Duration,
        cursor_epoch_unix: Duration,
        cursor_interval: Duration,
    ) -> Self {
        VirtualClock {
            origin,
            unix_at_origin,
            cursor_epoch_unix,
            // A zero interval would divide by zero; one nanosecond is the finest there is.
            cursor_interval: cursor_interval.max(Duration::from_nanos(1)),
        }
    }

    /// Fixes the origin at `now` unless the configuration gave one.
    pub(crate) fn anchor(&mut self, now: Instant) {
        if self.origin.is_none() {
            self.origin = Some(now);
        }
    }

    /// The virtual wall-clock time at `at`.
    pub(crate) fn unix_nanos(&self, at: Instant) -> UnixNanos {
        let base = self.unix_at_origin.as_nanos() as i128;
        let Some(origin) = self.origin else {
            return base;
        };
        match at.checked_duration_since(origin) {
            Some(d) => base + d.as_nanos() as i128,
            None => base - origin.duration_since(at).as_nanos() as i128,
        }
    }

    /// The `Instant` at which the virtual wall clock reads `unix`; `None` when it is not
    /// representable (far future). Times before the origin map to the origin.
    pub(crate) fn instant_at(&self, unix: UnixNanos) -> Option<Instant> {
        let origin = self.origin?;
        let delta = unix - self.unix_at_origin.as_nanos() as i128;
        if delta <= 0 {
            return Some(origin);
        }
        let secs = u64::try_from(delta / NANOS_PER_SEC).ok()?;
        let nanos = (delta % NANOS_PER_SEC) as u32;
        origin.checked_add(Duration::new(secs, nanos))
    }

    /// The current cursor interval number (10.1, "Interval-based Calculation").
    pub(crate) fn interval(&self, now: Instant) -> u64 {
        let since = self.unix_nanos(now) - self.cursor_epoch_unix.as_nanos() as i128;
        if since <= 0 {
            return 0;
        }
        u64::try_from(since / self.cursor_interval.as_nanos() as i128).unwrap_or(u64::MAX)
    }

    /// The cursor for a live response (10.1): the current interval, or, when the client's
    /// cursor is at or past it, the client's cursor advanced by a random jitter of 1 to 3600
    /// seconds expressed in intervals (at least one), so cursors never go backwards.
    pub(crate) fn cursor(&self, now: Instant, client: Option<u64>, rng: &mut Rng) -> u64 {
        let current = self.interval(now);
        match client {
            Some(c) if c >= current => {
                let jitter = Duration::from_secs(1 + rng.below(3600));
                let steps = jitter
                    .as_nanos()
                    .div_ceil(self.cursor_interval.as_nanos())
                    .max(1);
                c.saturating_add(u64::try_from(steps).unwrap_or(u64::MAX))
            }
            _ => current,
        }
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses an RFC 3339 timestamp into Unix nanoseconds (`Stream-Expires-At`, 5.1). A leap
/// second (`:60`) counts as the first instant of the next minute.
pub(crate) fn parse_rfc3339(s: &str) -> Result<UnixNanos, String> {
    crate::headers::validate_rfc3339(s)?;
    let b = s.as_bytes();
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
    let (year, month, day) = (num(0..4), num(5..7) as u32, num(8..10) as u32);
    if day > days_in_month(year, month) {
        return Err(format!("{s:?} names a day that does not exist"));
    }
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let mut i = 19;
    let mut frac_nanos: i128 = 0;
    if b[i] == b'.' {
        i += 1;
        let mut scale = NANOS_PER_SEC / 10;
        while b[i].is_ascii_digit() {
            frac_nanos += i128::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
    }
    let offset_secs: i64 = match b[i] {
        b'Z' | b'z' => 0,
        sign => {
            let mag = num(i + 1..i + 3) * 3600 + num(i + 4..i + 6) * 60;
            if sign == b'-' {
                -mag
            } else {
                mag
            }
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(i128::from(secs) * NANOS_PER_SEC + frac_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default cursor epoch of PROTOCOL.md 10.1 (2024-10-09T00:00:00Z), in Unix seconds.
    const CURSOR_EPOCH: u64 = 1_728_432_000;

    /// A clock whose origin `origin` reads `unix_secs`, with cursor intervals of
    /// `interval_secs` from the default epoch.
    fn clock_at(origin: Instant, unix_secs: u64, interval_secs: u64) -> VirtualClock {
        VirtualClock::new(
            Some(origin),
            Duration::from_secs(unix_secs),
            Duration::from_secs(CURSOR_EPOCH),
            Duration::from_secs(interval_secs),
        )
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // The default cursor epoch of PROTOCOL.md 10.1.
        assert_eq!(days_from_civil(2024, 10, 9) * 86_400, 1_728_432_000);
        // Before the year 0's March (an era before 0: the computation's negative branch).
        assert_eq!(days_from_civil(0, 1, 1), -719_528);
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
    }

    /// The days that exist: 30-day months, and February 29 in leap years only (every fourth
    /// year, except centuries, except every fourth century).
    #[test]
    fn rfc3339_days_that_do_not_exist_are_refused() {
        for month in ["04", "06", "09", "11"] {
            assert!(parse_rfc3339(&format!("2024-{month}-30T00:00:00Z")).is_ok());
            let t = format!("2024-{month}-31T00:00:00Z");
            assert!(parse_rfc3339(&t).is_err(), "{t}");
        }
        for month in ["01", "03", "05", "07", "08", "10", "12"] {
            assert!(parse_rfc3339(&format!("2023-{month}-31T00:00:00Z")).is_ok());
        }
        for (year, leap) in [
            (2024, true),
            (2023, false),
            (1900, false),
            (2000, true),
            (2100, false),
            (1600, true),
        ] {
            let t = format!("{year}-02-29T00:00:00Z");
            assert_eq!(parse_rfc3339(&t).is_ok(), leap, "{t}");
            assert!(parse_rfc3339(&format!("{year}-02-28T00:00:00Z")).is_ok());
        }
        assert_eq!(
            parse_rfc3339("0000-01-01T00:00:00Z").unwrap() / NANOS_PER_SEC,
            -719_528 * 86_400
        );
    }

    #[test]
    fn rfc3339_to_unix() {
        let s = |t| parse_rfc3339(t).unwrap() / NANOS_PER_SEC;
        assert_eq!(s("1970-01-01T00:00:00Z"), 0);
        assert_eq!(s("2024-10-09T00:00:00Z"), 1_728_432_000);
        assert_eq!(s("2024-10-09T02:00:00+02:00"), 1_728_432_000);
        assert_eq!(s("2024-10-08T19:30:00-04:30"), 1_728_432_000);
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.25Z").unwrap(),
            1_250_000_000
        );
        assert!(parse_rfc3339("2025-02-29T00:00:00Z").is_err());
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_rfc3339("tomorrow").is_err());
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn wall_clock_and_cursor() {
        let t0 = Instant::now();
        let clock = clock_at(t0, CURSOR_EPOCH + 100, 20);
        assert_eq!(clock.interval(t0), 5);
        assert_eq!(clock.interval(t0 + Duration::from_secs(19)), 5);
        assert_eq!(clock.interval(t0 + Duration::from_secs(20)), 6);
        let mut rng = Rng::new(1);
        assert_eq!(clock.cursor(t0, None, &mut rng), 5);
        assert_eq!(clock.cursor(t0, Some(3), &mut rng), 5);
        for client in [5u64, 9, 1000] {
            let c = clock.cursor(t0, Some(client), &mut rng);
            assert!(c > client && c <= client + 180, "{client} -> {c}");
        }
        let at = clock.unix_nanos(t0 + Duration::from_millis(1500));
        assert_eq!(at, (1_728_432_100i128 * NANOS_PER_SEC) + 1_500_000_000);
        assert_eq!(clock.instant_at(at), Some(t0 + Duration::from_millis(1500)));
        assert_eq!(clock.instant_at(0), Some(t0));
        // Instants before the origin read earlier wall times.
        let later = clock_at(t0 + Duration::from_secs(10), CURSOR_EPOCH + 100, 20);
        assert_eq!(later.unix_nanos(t0), 1_728_432_090 * NANOS_PER_SEC);
    }

    /// A client cursor at or past the current interval moves on by a jitter of 1 to 3600
    /// seconds (PROTOCOL.md 10.1), both ends included.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn cursor_jitter_spans_one_to_3600_seconds() {
        let t0 = Instant::now();
        let clock = clock_at(t0, CURSOR_EPOCH, 1);
        let mut rng = Rng::new(3);
        let (mut lo, mut hi) = (u64::MAX, 0);
        for _ in 0..40_000 {
            let jitter = clock.cursor(t0, Some(100), &mut rng) - 100;
            lo = lo.min(jitter);
            hi = hi.max(jitter);
        }
        assert_eq!((lo, hi), (1, 3600));
    }
}
