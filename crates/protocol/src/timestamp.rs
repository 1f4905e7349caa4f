//! RFC 3339 timestamps as protobuf's canonical JSON writes `google.protobuf.Timestamp`
//! (`"2023-07-22T10:00:00.123Z"`, `"2023-07-22T12:00:00+02:00"`), parsed into
//! [`prost_types::Timestamp`] without allocating.
//!
//! [`format_rfc3339`] writes the form back (UTC, `Z`, nine fraction digits), for the publisher's
//! `raccoon-sent-time` record header.
//!
//! Accepted: `YYYY-MM-DD`, `T` (or `t`), `HH:MM:SS`, an optional fraction of 1 to 9 digits, then
//! `Z` (or `z`) or a `+HH:MM`/`-HH:MM` offset. Years 0001 to 9999 (the range protobuf defines for
//! `Timestamp`); no leap second (`:60`), as Go's `time.Parse` refuses it too.

use thiserror::Error;

/// Why a string is not an RFC 3339 timestamp. Offsets count bytes of the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TimestampError {
    /// The text does not have the layout `YYYY-MM-DDTHH:MM:SS[.f]Z|±HH:MM`.
    #[error("not an rfc 3339 timestamp: unexpected {found} at offset {offset}")]
    Layout {
        /// What was found there (a byte, or the end of the text).
        found: Found,
        /// Where.
        offset: usize,
    },
    /// A field is out of its range (month 13, day 31 in April, hour 24, ...).
    #[error("rfc 3339 timestamp has {field} {value} out of range")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
}

/// What the parser found where it expected something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// This byte.
    Byte(u8),
    /// The end of the text.
    End,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Byte(byte) => write!(f, "byte 0x{byte:02x}"),
            Found::End => f.write_str("end of text"),
        }
    }
}

/// A cursor over the text.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn unexpected(&self) -> TimestampError {
        let found = self.text.get(self.pos).map_or(Found::End, |&b| Found::Byte(b));
        TimestampError::Layout { found, offset: self.pos }
    }

    fn digits(&mut self, count: usize) -> Result<u32, TimestampError> {
        let mut value = 0;
        for _ in 0..count {
            match self.text.get(self.pos) {
                Some(b @ b'0'..=b'9') => value = value * 10 + u32::from(b - b'0'),
                _ => return Err(self.unexpected()),
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn expect(&mut self, accepted: &[u8]) -> Result<u8, TimestampError> {
        match self.text.get(self.pos) {
            Some(&b) if accepted.contains(&b) => {
                self.pos += 1;
                Ok(b)
            }
            _ => Err(self.unexpected()),
        }
    }
}

fn check(field: &'static str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, TimestampError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(TimestampError::OutOfRange { field, value })
    }
}

fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian calendar).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month, day) `days` after 1970-01-01: the inverse of
/// [`days_from_civil`] (the same algorithm, H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    // Both in range by construction: day 1..=31, month 1..=12.
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// `seconds` and `nanos` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, or `None`
/// outside what [`parse_rfc3339`] accepts (years 0001 to 9999, nanos 0 to 999,999,999).
pub fn format_rfc3339(seconds: i64, nanos: i32) -> Option<String> {
    if !(0..1_000_000_000).contains(&nanos) {
        return None;
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    if !(1..=9999).contains(&year) {
        return None;
    }
    let second_of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    Some(format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z"))
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(text: &str) -> Result<prost_types::Timestamp, TimestampError> {
    let mut c = Cursor { text: text.as_bytes(), pos: 0 };
    let year = check("year", c.digits(4)?, 1..=9999)?;
    c.expect(b"-")?;
    let month = check("month", c.digits(2)?, 1..=12)?;
    c.expect(b"-")?;
    let month_days = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = check("day", c.digits(2)?, 1..=month_days)?;
    c.expect(b"Tt")?;
    let hour = check("hour", c.digits(2)?, 0..=23)?;
    c.expect(b":")?;
    let minute = check("minute", c.digits(2)?, 0..=59)?;
    c.expect(b":")?;
    let second = check("second", c.digits(2)?, 0..=59)?;
    let mut nanos = 0u32;
    if c.text.get(c.pos) == Some(&b'.') {
        c.pos += 1;
        let start = c.pos;
        while let Some(b @ b'0'..=b'9') = c.text.get(c.pos) {
            if c.pos - start == 9 {
                return Err(c.unexpected());
            }
            nanos = nanos * 10 + u32::from(b - b'0');
            c.pos += 1;
        }
        let digits = c.pos - start;
        if digits == 0 {
            return Err(c.unexpected());
        }
        nanos *= 10u32.pow(9 - digits as u32);
    }
    let offset_secs = match c.expect(b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let hours = check("offset hour", c.digits(2)?, 0..=23)?;
            c.expect(b":")?;
            let minutes = check("offset minute", c.digits(2)?, 0..=59)?;
            let secs = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
    };
    if c.pos != c.text.len() {
        return Err(c.unexpected());
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    // nanos <= 999_999_999 by construction (at most nine digits).
    Ok(prost_types::Timestamp { seconds, nanos: nanos as i32 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn formatting_writes_utc_with_nine_digits_and_refuses_what_parsing_refuses() {
        assert_eq!(format_rfc3339(0, 0).as_deref(), Some("1970-01-01T00:00:00.000000000Z"));
        assert_eq!(format_rfc3339(1_690_020_000, 123_000_000).as_deref(), Some("2023-07-22T10:00:00.123000000Z"));
        assert_eq!(format_rfc3339(951_825_600, 5).as_deref(), Some("2000-02-29T12:00:00.000000005Z"));
        assert_eq!(format_rfc3339(-1, 999_999_999).as_deref(), Some("1969-12-31T23:59:59.999999999Z"));
        assert_eq!(format_rfc3339(0, -1), None);
        assert_eq!(format_rfc3339(0, 1_000_000_000), None);
        assert_eq!(format_rfc3339(253_402_300_800, 0), None, "year 10000");
        assert_eq!(format_rfc3339(-62_135_596_801, 0), None, "year 0");
        assert_eq!(format_rfc3339(-62_135_596_800, 0).as_deref(), Some("0001-01-01T00:00:00.000000000Z"));
    }

    proptest! {
        #[test]
        fn formatting_and_parsing_are_inverse(seconds in -62_135_596_800i64..253_402_300_800, nanos in 0i32..1_000_000_000) {
            let text = format_rfc3339(seconds, nanos).unwrap();
            prop_assert_eq!(parse_rfc3339(&text).unwrap(), ts(seconds, nanos));
        }
    }

    #[test]
    fn utc_with_and_without_fraction() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), ts(0, 0));
        assert_eq!(parse_rfc3339("2023-07-22T10:00:00.123Z").unwrap(), ts(1_690_020_000, 123_000_000));
        assert_eq!(parse_rfc3339("2023-07-22T10:00:00.000000001Z").unwrap(), ts(1_690_020_000, 1));
        assert_eq!(parse_rfc3339("2023-07-22t10:00:00z").unwrap(), ts(1_690_020_000, 0));
    }

    #[test]
    fn offsets_move_to_utc() {
        assert_eq!(parse_rfc3339("2023-07-22T12:00:00+02:00").unwrap(), ts(1_690_020_000, 0));
        assert_eq!(parse_rfc3339("2023-07-22T04:30:00.5-05:30").unwrap(), ts(1_690_020_000, 500_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+01:00").unwrap(), ts(-3600, 0));
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").unwrap(), ts(1_709_164_800, 0));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z").unwrap(), ts(-62_135_596_800, 0));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999999999Z").unwrap(), ts(253_402_300_799, 999_999_999));
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), Err(TimestampError::OutOfRange { field: "day", value: 29 }));
        assert_eq!(parse_rfc3339("2023-04-31T00:00:00Z"), Err(TimestampError::OutOfRange { field: "day", value: 31 }));
        assert_eq!(
            parse_rfc3339("2023-13-01T00:00:00Z"),
            Err(TimestampError::OutOfRange { field: "month", value: 13 })
        );
        assert_eq!(parse_rfc3339("2023-01-01T24:00:00Z"), Err(TimestampError::OutOfRange { field: "hour", value: 24 }));
        assert_eq!(
            parse_rfc3339("2023-01-01T23:59:60Z"),
            Err(TimestampError::OutOfRange { field: "second", value: 60 })
        );
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Err(TimestampError::OutOfRange { field: "year", value: 0 }));
    }

    #[test]
    fn layout_errors_say_where() {
        let at = |text: &str| match parse_rfc3339(text) {
            Err(TimestampError::Layout { offset, .. }) => offset,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(at(""), 0);
        assert_eq!(at("2023-07-22"), 10);
        assert_eq!(at("2023-07-22 10:00:00Z"), 10);
        assert_eq!(at("2023-07-22T10:00:00"), 19);
        assert_eq!(at("2023-07-22T10:00:00.Z"), 20);
        assert_eq!(at("2023-07-22T10:00:00.1234567891Z"), 29);
        assert_eq!(at("2023-07-22T10:00:00Zjunk"), 20);
        assert_eq!(at("2023-07-22T10:00:00+0200"), 22);
        let text = parse_rfc3339("2023-07-22T10:00:00").unwrap_err().to_string();
        assert_eq!(text, "not an rfc 3339 timestamp: unexpected end of text at offset 19");
    }

    proptest! {
        // Agrees with a day-by-day count from the epoch for every date in range.
        #[test]
        fn seconds_match_a_naive_count(days in 0i64..3_000_000, secs in 0i64..86_400) {
            let mut year = 1u32;
            let mut left = days;
            loop {
                let len = if is_leap(year) { 366 } else { 365 };
                if left < len { break; }
                left -= len;
                year += 1;
            }
            prop_assume!(year <= 9999);
            let mut month = 1u32;
            loop {
                let len = match month { 2 if is_leap(year) => 29, 2 => 28, 4 | 6 | 9 | 11 => 30, _ => 31 };
                if left < len { break; }
                left -= len;
                month += 1;
            }
            let text = format!("{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z", left + 1, secs / 3600, secs / 60 % 60, secs % 60);
            let got = parse_rfc3339(&text).unwrap();
            prop_assert_eq!(got.seconds, -62_135_596_800 + days * 86_400 + secs);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
