//! dlt's typed JSON strings and the date/time parsing the normalizer and the state share.
//!
//! dlt marks typed values in JSON with a private-use character before their text: `U+F027` + ISO text is
//! a timestamp (`"\u{F027}2014-11-08T23:00:00+00:00"`), `U+F028` + `YYYY-MM-DD` a date, `U+F026` a
//! decimal. Sources pass `to_utc_ts` / `to_date` results this way; the state document stores them so.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use serde_json::Value;

/// Marker of a typed decimal string.
pub const DECIMAL_MARK: char = '\u{F026}';
/// Marker of a typed timestamp string.
pub const TIMESTAMP_MARK: char = '\u{F027}';
/// Marker of a typed date string.
pub const DATE_MARK: char = '\u{F028}';

/// A decoded typed string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed<'a> {
    /// A timestamp (UTC).
    Timestamp(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
    /// An ordinary string (or a marker whose text does not parse, kept verbatim as dlt does).
    Text(&'a str),
}

/// A typed timestamp value: `U+F027` + [`format_timestamp`].
pub fn timestamp(ts: DateTime<Utc>) -> Value {
    let mut s = String::with_capacity(36);
    s.push(TIMESTAMP_MARK);
    write_timestamp(&mut s, &ts);
    Value::String(s)
}

/// A typed date value: `U+F028` + `YYYY-MM-DD`.
pub fn date(d: NaiveDate) -> Value {
    let mut s = String::with_capacity(14);
    s.push(DATE_MARK);
    write_date(&mut s, &d);
    Value::String(s)
}

/// Python's `datetime.isoformat()` of a UTC datetime: `2014-11-08T23:00:00+00:00`, with `.ffffff` only
/// when the microseconds are not zero.
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    let mut s = String::with_capacity(32);
    write_timestamp(&mut s, ts);
    s
}

/// `YYYY-MM-DD`.
pub fn format_date(d: &NaiveDate) -> String {
    let mut s = String::with_capacity(32);
    write_date(&mut s, d);
    s
}

/// [`format_timestamp`] appended to `s`. Written directly: chrono's `format` parses its format string
/// on every call (a hot path).
fn write_timestamp(s: &mut String, ts: &DateTime<Utc>) {
    write_date(s, &ts.date_naive());
    // A leap second (nanoseconds past 10^9) is second 60, as chrono's `%S` writes it.
    let second = ts.second() + ts.nanosecond() / 1_000_000_000;
    let _ = write!(s, "T{:02}:{:02}:{second:02}", ts.hour(), ts.minute());
    let micros = ts.timestamp_subsec_micros();
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s.push_str("+00:00");
}

/// [`format_date`] appended to `s`.
fn write_date(s: &mut String, d: &NaiveDate) {
    if !(0..=9999).contains(&d.year()) {
        // chrono's `%Y` signs years outside 0–9999 (Python has none).
        let _ = write!(s, "{}", d.format("%Y-%m-%d"));
        return;
    }
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
}

/// Decode a possibly typed string.
pub fn decode(s: &str) -> Typed<'_> {
    let mut chars = s.chars();
    match chars.next() {
        Some(TIMESTAMP_MARK) if s.len() > TIMESTAMP_MARK.len_utf8() => {
            parse_typed_timestamp(chars.as_str()).map_or(Typed::Text(s), Typed::Timestamp)
        }
        Some(DATE_MARK) if s.len() > DATE_MARK.len_utf8() => {
            parse_date(chars.as_str()).map_or(Typed::Text(s), Typed::Date)
        }
        _ => Typed::Text(s),
    }
}

/// Parse the text of a typed timestamp (Python `fromisoformat`, `Z` accepted); naive is read as UTC.
pub fn parse_typed_timestamp(s: &str) -> Option<DateTime<Utc>> {
    match parse_iso(s)? {
        Iso::DateTime(ts) => Some(ts),
        _ => None,
    }
}

/// Parse an ISO date `YYYY-MM-DD` (or basic `YYYYMMDD`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    match parse_iso(s)? {
        Iso::Date(d) => Some(d),
        _ => None,
    }
}

/// What an ISO-8601-like string parses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iso {
    /// A date-time; naive values are read as UTC, offsets converted.
    DateTime(DateTime<Utc>),
    /// A date only.
    Date(NaiveDate),
    /// A time of day only (`HH:MM[:SS[.f]]`).
    Time(NaiveTime),
}

/// Parse ISO-8601 as dlt's `parse_iso_like_datetime` (pendulum) does for the forms that occur:
/// dates `YYYY-MM-DD`, `YYYYMMDD`, `YYYY-MM`, `YYYY`, `YYYY-Www-D`, `YYYY-DDD`; a `T` or space, then
/// `HH[:MM[:SS[.f]]]` or `HHMM[SS]`; fraction with `.` or `,` (truncated to µs); offset `Z`, `±HH:MM`,
/// `±HHMM`, `±HH`. No surrounding whitespace, hour 24 or leap second.
pub fn parse_iso(s: &str) -> Option<Iso> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.is_empty() {
        return None;
    }
    // A bare time?
    if b.len() >= 5 && b[2] == b':' {
        let (t, rest) = parse_time(s)?;
        return rest.is_empty().then_some(Iso::Time(t));
    }
    let (d, rest) = parse_date_part(s)?;
    if rest.is_empty() {
        return Some(Iso::Date(d));
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let (t, rest) = parse_time(rest)?;
    let naive = NaiveDateTime::new(d, t);
    let offset_secs: i64 = if rest.is_empty() {
        0
    } else if rest == "Z" {
        0
    } else {
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let r = &rest[1..];
        let (h, m) = match r.len() {
            2 => (num(r)?, 0),
            4 => (num(&r[..2])?, num(&r[2..])?),
            5 if &r[2..3] == ":" => (num(&r[..2])?, num(&r[3..])?),
            _ => return None,
        };
        if h > 23 || m > 59 {
            return None;
        }
        sign * (h as i64 * 3600 + m as i64 * 60)
    };
    let utc = naive - Duration::seconds(offset_secs);
    Some(Iso::DateTime(Utc.from_utc_datetime(&utc)))
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date_part(s: &str) -> Option<(NaiveDate, &str)> {
    let b = s.as_bytes();
    if b.len() < 4 {
        return None;
    }
    let year = num(&s[..4])? as i32;
    let rest = &s[4..];
    let rb = rest.as_bytes();
    if rb.is_empty() {
        return Some((NaiveDate::from_ymd_opt(year, 1, 1)?, rest));
    }
    if rb[0] == b'-' {
        let r = &rest[1..];
        let rb = r.as_bytes();
        if rb.first() == Some(&b'W') {
            // YYYY-Www-D
            if rb.len() >= 6 && rb[3] == b'-' {
                let w = num(&r[1..3])?;
                let wd = num(&r[4..5])?;
                let weekday = chrono::Weekday::try_from((wd as u8).checked_sub(1)?).ok()?;
                let d = NaiveDate::from_isoywd_opt(year, w, weekday)?;
                return Some((d, &r[5..]));
            }
            return None;
        }
        // YYYY-MM-DD, YYYY-MM or YYYY-DDD
        let digits = rb.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 2 {
            let m = num(&r[..2])?;
            if rb.get(2) == Some(&b'-') {
                let dd = num(r.get(3..5)?)?;
                return Some((NaiveDate::from_ymd_opt(year, m, dd)?, &r[5..]));
            }
            return Some((NaiveDate::from_ymd_opt(year, m, 1)?, &r[2..]));
        }
        if digits == 3 {
            let ord = num(&r[..3])?;
            return Some((NaiveDate::from_yo_opt(year, ord)?, &r[3..]));
        }
        return None;
    }
    // basic YYYYMMDD
    if rb.len() >= 4 && rb[..4].iter().all(u8::is_ascii_digit) && rb.get(4).is_none_or(|c| !c.is_ascii_digit()) {
        let m = num(&rest[..2])?;
        let dd = num(&rest[2..4])?;
        return Some((NaiveDate::from_ymd_opt(year, m, dd)?, &rest[4..]));
    }
    None
}

fn parse_time(s: &str) -> Option<(NaiveTime, &str)> {
    let b = s.as_bytes();
    let h = num(s.get(..2)?)?;
    let mut i = 2;
    let (mut m, mut sec, mut micros) = (0, 0, 0);
    let extended = b.get(2) == Some(&b':');
    if extended {
        m = num(s.get(3..5)?)?;
        i = 5;
        if b.get(5) == Some(&b':') {
            sec = num(s.get(6..8)?)?;
            i = 8;
        }
    } else if b.get(2).is_some_and(u8::is_ascii_digit) {
        m = num(s.get(2..4)?)?;
        i = 4;
        if b.get(4).is_some_and(u8::is_ascii_digit) {
            sec = num(s.get(4..6)?)?;
            i = 6;
        }
    }
    if matches!(b.get(i), Some(b'.') | Some(b',')) {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = &s[i + 1..i + 1 + digits];
        let mut v: u32 = 0;
        for (k, c) in frac.bytes().take(6).enumerate() {
            v += u32::from(c - b'0') * 10u32.pow(5 - k as u32);
        }
        micros = v;
        i += 1 + digits;
    }
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some((NaiveTime::from_hms_micro_opt(h, m, sec, micros)?, &s[i..]))
}

/// Midnight UTC of a date.
pub fn date_to_timestamp(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

/// Days since the Unix epoch (Arrow `Date32`).
pub fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<String> {
        match parse_iso(s) {
            Some(Iso::DateTime(t)) => Some(format_timestamp(&t)),
            _ => None,
        }
    }

    #[test]
    fn formatting_matches_chronos_strftime() {
        let micros = [0i64, 1, 999_999, 1_000_000, 86_399_999_999, 1_700_000_123_456, -62_135_596_800_000_000, 253_402_300_799_999_999];
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_micro_opt(23, 59, 59, 1_250_000).unwrap().and_utc();
        let instants = micros.into_iter().chain((0..2000).map(|i| i * 7_919_000_017_333)).map(|m| Utc.timestamp_micros(m).unwrap());
        for t in instants.chain([leap]) {
            let expected = if t.timestamp_subsec_micros() == 0 {
                t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                format!("{}.{:06}+00:00", t.format("%Y-%m-%dT%H:%M:%S"), t.timestamp_subsec_micros())
            };
            assert_eq!(format_timestamp(&t), expected);
            assert_eq!(format_date(&t.date_naive()), t.format("%Y-%m-%d").to_string());
        }
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2).unwrap();
        assert_eq!(format_date(&far), "+12345-01-02");
    }

    #[test]
    fn detection_matches_pendulum() {
        // Cases checked against dlt 1.31 `is_iso_timestamp` / `parse_iso_like_datetime`.
        assert_eq!(ts("2014-11-08T23:00:00+00:00").as_deref(), Some("2014-11-08T23:00:00+00:00"));
        assert_eq!(ts("2014-11-09T00:00:00+01:00").as_deref(), Some("2014-11-08T23:00:00+00:00"));
        assert_eq!(ts("2014-11-08T23:00:00Z").as_deref(), Some("2014-11-08T23:00:00+00:00"));
        assert_eq!(ts("2014-11-08 23:00:00").as_deref(), Some("2014-11-08T23:00:00+00:00"));
        assert_eq!(ts("2014-11-08T23").as_deref(), Some("2014-11-08T23:00:00+00:00"));
        assert_eq!(ts("20240115T100000").as_deref(), Some("2024-01-15T10:00:00+00:00"));
        assert_eq!(ts("2014-11-08T23:00:00.1234567Z").as_deref(), Some("2014-11-08T23:00:00.123456+00:00"));
        assert_eq!(ts("2014-11-08T23:00:00,5Z").as_deref(), Some("2014-11-08T23:00:00.500000+00:00"));
        assert_eq!(ts("2014-W01-1T10:00").as_deref(), Some("2013-12-30T10:00:00+00:00"));
        assert_eq!(ts("2014-001T10:00:00").as_deref(), Some("2014-01-01T10:00:00+00:00"));
        assert_eq!(ts("2024-01-15T10:00:00-05:30").as_deref(), Some("2024-01-15T15:30:00+00:00"));
        assert_eq!(ts("2014-11-08T23:00:00+0100").as_deref(), Some("2014-11-08T22:00:00+00:00"));
        assert_eq!(ts("2014-11-08T23:00:00+01").as_deref(), Some("2014-11-08T22:00:00+00:00"));
        for no in ["2014-11-08", "08:00", "10:30:00", "2024", "2024-01", " 2014-11-08T23:00:00", "2014-11-08T23:00:00 ",
            "2014-11-08t23:00:00", "2014-11-08T24:00:00", "1", "abc", "2014-13-01T00:00:00", "2024-02-30T00:00:00",
            "2014-11-08T23:00:60", "202401", ""] {
            assert_eq!(ts(no), None, "{no:?}");
        }
        assert_eq!(parse_iso("08:00"), Some(Iso::Time(NaiveTime::from_hms_opt(8, 0, 0).unwrap())));
        assert_eq!(parse_iso("2024"), Some(Iso::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap())));
    }

    #[test]
    fn typed_round_trip() {
        let t = Utc.with_ymd_and_hms(2014, 11, 8, 23, 0, 0).unwrap();
        let v = timestamp(t);
        assert_eq!(v.as_str(), Some("\u{F027}2014-11-08T23:00:00+00:00"));
        assert_eq!(decode(v.as_str().unwrap()), Typed::Timestamp(t));
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(decode(date(d).as_str().unwrap()), Typed::Date(d));
        assert_eq!(decode("\u{F027}nope"), Typed::Text("\u{F027}nope"));
        assert_eq!(decode("plain"), Typed::Text("plain"));
        assert_eq!(date_to_days(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
