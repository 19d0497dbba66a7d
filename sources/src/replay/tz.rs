//! US Eastern time, for formats that stamp events in New York local time (Lean, LOBSTER).
//!
//! Rules in force since 2007: daylight time from the second Sunday of March to the first
//! Sunday of November. Recorded sessions run 04:00–20:00, away from the 02:00 switch, so the
//! offset is taken for the whole date.

use tickflow_core::Timestamp;
use tickflow_core::time::{days_from_civil, weekday_from_days};

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

fn nth_sunday(year: i32, month: u32, n: u32) -> u32 {
    let first = days_from_civil(year, month, 1);
    let to_sunday = (7 - weekday_from_days(first)) % 7;
    1 + to_sunday + 7 * (n - 1)
}

/// UTC offset of New York on a date, in hours (-4 in daylight time, -5 otherwise).
pub fn new_york_offset_hours(year: i32, month: u32, day: u32) -> i64 {
    let dst = match month {
        4..=10 => true,
        3 => day >= nth_sunday(year, 3, 2),
        11 => day < nth_sunday(year, 11, 1),
        _ => false,
    };
    if dst { -4 } else { -5 }
}

/// UTC midnight-of-local-day origin: the instant of 00:00 New York time on a date.
pub fn new_york_midnight(year: i32, month: u32, day: u32) -> Option<Timestamp> {
    let utc_midnight = Timestamp::from_date(year, month, day)?;
    Some(Timestamp(
        utc_midnight.nanos() - new_york_offset_hours(year, month, day) * NANOS_PER_HOUR,
    ))
}

/// Parses `yyyymmdd` or `yyyy-mm-dd`.
pub fn parse_date(text: &str) -> Option<(i32, u32, u32)> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y = digits[0..4].parse().ok()?;
    let m = digits[4..6].parse().ok()?;
    let d = digits[6..8].parse().ok()?;
    Timestamp::from_date(y, m, d).map(|_| (y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daylight_time_boundaries() {
        assert_eq!(new_york_offset_hours(2013, 10, 7), -4);
        assert_eq!(new_york_offset_hours(2013, 11, 3), -5); // first Sunday of November 2013
        assert_eq!(new_york_offset_hours(2013, 11, 2), -4);
        assert_eq!(new_york_offset_hours(2013, 3, 10), -4); // second Sunday of March 2013
        assert_eq!(new_york_offset_hours(2013, 3, 9), -5);
        assert_eq!(new_york_offset_hours(2024, 1, 2), -5);
        let open = new_york_midnight(2013, 10, 7).unwrap();
        assert_eq!(
            Timestamp(open.nanos() + 34_200 * 1_000_000_000).to_string(),
            "2013-10-07T13:30:00Z"
        );
        assert_eq!(parse_date("20131007"), Some((2013, 10, 7)));
        assert_eq!(parse_date("2012-06-21"), Some((2012, 6, 21)));
        assert_eq!(parse_date("20131301"), None);
    }
}
