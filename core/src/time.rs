//! Event time: [`Timestamp`] (nanoseconds since the Unix epoch, UTC) and [`Duration`].
//!
//! Calendar conversion uses the proleptic Gregorian calendar in integer arithmetic (days from
//! 1970-01-01), so formatting and parsing never read a clock or a time-zone database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// A point in event time: nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A span of time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub i64);

impl Timestamp {
    /// The earliest timestamp.
    pub const MIN: Self = Self(i64::MIN);
    /// The latest timestamp: the watermark of a finished stream.
    pub const MAX: Self = Self(i64::MAX);

    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// From whole milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> Option<Self> {
        ms.checked_mul(1_000_000).map(Self)
    }

    /// From whole microseconds since the epoch.
    pub fn from_micros(us: i64) -> Option<Self> {
        us.checked_mul(1_000).map(Self)
    }

    /// Midnight UTC of a calendar date.
    pub fn from_date(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        days_from_civil(year, month, day)
            .checked_mul(NANOS_PER_DAY)
            .map(Self)
    }

    /// The calendar date (year, month, day) in UTC.
    #[inline]
    pub fn date(self) -> (i32, u32, u32) {
        civil_from_days(self.0.div_euclid(NANOS_PER_DAY))
    }

    /// Rounds down to a multiple of `step` (a bar interval or the dataflow granularity).
    #[inline]
    pub fn floor(self, step: Duration) -> Self {
        if step.0 <= 1 {
            self
        } else {
            Self(self.0 - self.0.rem_euclid(step.0))
        }
    }

    /// `self + d`, saturating at the ends of time.
    #[inline]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.0))
    }

    /// `self - d`, saturating at the ends of time.
    #[inline]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.0))
    }

    /// `self - earlier`.
    #[inline]
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }

    /// Parses RFC 3339 (`2013-10-07T13:30:00.5Z`, `2013-10-07T09:30:00-04:00`) or a bare
    /// date (`2013-10-07`, midnight UTC).
    pub fn parse_rfc3339(text: &str) -> Result<Self> {
        let err = |reason| Error::Time {
            text: text.to_owned(),
            reason,
        };
        let s = text.trim();
        // RFC 3339 is ASCII: with that checked, the byte offsets below cut no character.
        if !s.is_ascii() {
            return Err(err("not ASCII: expected digits and - : . T Z + separators"));
        }
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err("expected YYYY-MM-DD"));
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64> {
            s.get(r)
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| err("bad digits"))
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let day =
            Self::from_date(y as i32, mo as u32, d as u32).ok_or_else(|| err("no such date"))?;
        if b.len() == 10 {
            return Ok(day);
        }
        if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
            || b.len() < 19
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err("expected THH:MM:SS after the date"));
        }
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(err("time of day out of range"));
        }
        let mut i = 19;
        let mut frac_ns = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return Err(err("fraction of a second must have 1 to 9 digits"));
            }
            frac_ns = digits.parse::<i64>().map_err(|_| err("bad fraction"))?
                * 10i64.pow(9 - digits.len() as u32);
        }
        let offset_s = match &s[i..] {
            "Z" | "z" => 0,
            "" => return Err(err("missing time-zone offset (Z or ±HH:MM)")),
            tz if tz.len() == 6
                && (tz.starts_with('+') || tz.starts_with('-'))
                && &tz[3..4] == ":" =>
            {
                let oh: i64 = tz[1..3].parse().map_err(|_| err("bad offset"))?;
                let om: i64 = tz[4..6].parse().map_err(|_| err("bad offset"))?;
                let o = oh * 3600 + om * 60;
                if tz.starts_with('-') { -o } else { o }
            }
            _ => return Err(err("bad time-zone offset")),
        };
        let secs = h * 3600 + mi * 60 + sec - offset_s;
        Ok(Self(day.0 + secs * NANOS_PER_SEC + frac_ns))
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_rfc3339(s)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with as many fractional digits as needed (none, 3, 6 or 9).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(NANOS_PER_DAY);
        let rem = self.0.rem_euclid(NANOS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = rem / NANOS_PER_SEC;
        let ns = rem % NANOS_PER_SEC;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if ns == 0 {
        } else if ns % 1_000_000 == 0 {
            write!(f, ".{:03}", ns / 1_000_000)?;
        } else if ns % 1_000 == 0 {
            write!(f, ".{:06}", ns / 1_000)?;
        } else {
            write!(f, ".{ns:09}")?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Duration {
    /// Zero length.
    pub const ZERO: Self = Self(0);

    /// From nanoseconds.
    #[inline]
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }
    /// From milliseconds.
    #[inline]
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms * 1_000_000)
    }
    /// From seconds.
    #[inline]
    pub const fn from_secs(s: i64) -> Self {
        Self(s * NANOS_PER_SEC)
    }
    /// Nanoseconds.
    #[inline]
    pub const fn nanos(self) -> i64 {
        self.0
    }
    /// As a wall-clock span (timeouts, intervals); a negative span is zero.
    #[inline]
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }
    /// Seconds as `f64` (for rates and reports).
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// Parses `250ms`, `1s`, `1m`, `6h30m`, `500us`, `10ns`, `1d`; a bare `0` is zero.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |reason| Error::Time {
            text: text.to_owned(),
            reason,
        };
        let s = text.trim();
        if s == "0" {
            return Ok(Self::ZERO);
        }
        if s.is_empty() {
            return Err(err("empty duration"));
        }
        let mut total: i64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(err(
                    "expected a number before each unit, as in 250ms or 1h30m",
                ));
            }
            let n: i64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => NANOS_PER_SEC,
                "m" | "min" => 60 * NANOS_PER_SEC,
                "h" => 3_600 * NANOS_PER_SEC,
                "d" => NANOS_PER_DAY,
                "" => return Err(err("missing unit (ns, us, ms, s, m, h, d)")),
                _ => return Err(err("unknown unit (use ns, us, ms, s, m, h, d)")),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("duration too long"))?;
        }
        Ok(Self(total))
    }
}

impl FromStr for Duration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let units = [
            (NANOS_PER_DAY, "d"),
            (3_600 * NANOS_PER_SEC, "h"),
            (60 * NANOS_PER_SEC, "m"),
            (NANOS_PER_SEC, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
        ];
        if ns == 0 {
            return f.write_str("0");
        }
        for (size, name) in units {
            if ns % size == 0 {
                return write!(f, "{}{name}", ns / size);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in a month of a year.
pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Day of the week, 0 = Sunday, of a day number.
pub fn weekday_from_days(z: i64) -> u32 {
    (z + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let t = Timestamp::parse_rfc3339("2013-10-07T13:30:00.123Z").unwrap();
        assert_eq!(t.to_string(), "2013-10-07T13:30:00.123Z");
        let ny = Timestamp::parse_rfc3339("2013-10-07T09:30:00.123-04:00").unwrap();
        assert_eq!(ny, t);
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999999Z");
        assert!(Timestamp::parse_rfc3339("2013-02-30").is_err());
        // Text that is not ASCII is refused, never cut inside a character.
        for bad in [
            "2013-10-07T13:30:00+0é:0",
            "2013-10-07T13:30:00.5+0é:0",
            "2013-10-07T13:30:0é",
            "2013-10-0é",
            "2013-1é-07",
            "2013-10-07T13:3é:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::parse_rfc3339("2013-10-07T13:30:00").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(
            Duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            Duration::parse("6h30m").unwrap(),
            Duration::from_secs(6 * 3600 + 1800)
        );
        assert_eq!(Duration::parse("1m").unwrap().to_string(), "1m");
        assert!(Duration::parse("5").is_err());
        assert!(Duration::parse("5 parsecs").is_err());
        assert!(Duration::parse("ms").is_err());
    }

    #[test]
    fn converts_to_a_wall_clock_span_with_negatives_as_zero() {
        assert_eq!(
            Duration::parse("1m500ms").unwrap().to_std(),
            std::time::Duration::from_millis(60_500)
        );
        assert_eq!(Duration(-5).to_std(), std::time::Duration::ZERO);
    }

    #[test]
    fn floors_to_a_step() {
        let step = Duration::from_secs(60);
        assert_eq!(
            Timestamp(61 * NANOS_PER_SEC).floor(step),
            Timestamp(60 * NANOS_PER_SEC)
        );
        assert_eq!(Timestamp(-1).floor(step), Timestamp(-60 * NANOS_PER_SEC));
    }

    proptest! {
        #[test]
        fn civil_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn display_round_trips(ns in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000) {
            let t = Timestamp(ns);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn duration_display_round_trips(ns in 0i64..1_000_000_000_000_000) {
            let d = Duration(ns);
            prop_assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }

        /// Any text, a time's own text with characters put in, or cut short: parsed or
        /// refused, never a panic (times come from files and messages).
        #[test]
        fn any_text_parses_or_is_refused(
            t in -4_000_000_000_000_000i64..4_000_000_000_000_000,
            at in 0usize..40,
            cut in any::<bool>(),
            junk in "\\PC{0,3}",
            other in "\\PC{0,30}",
        ) {
            let text = Timestamp(t).to_string();
            let at = text.char_indices().map(|(i, _)| i).nth(at).unwrap_or(text.len());
            let mangled = if cut {
                text[..at].to_string()
            } else {
                format!("{}{junk}{}", &text[..at], &text[at..])
            };
            for s in [mangled.as_str(), other.as_str()] {
                let _ = Timestamp::parse_rfc3339(s);
                let _ = Duration::parse(s);
            }
        }
    }
}
