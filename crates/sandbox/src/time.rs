//! Fake-clock helpers: Europe/Berlin offsets (EU DST rule) and Personio's timestamp formats.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};

/// The start of the fake clock unless configured otherwise: 2026-11-23T08:00:00Z.
pub fn default_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).single().unwrap_or_default()
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .unwrap_or_default();
    let mut d = first_next - Duration::days(1);
    while d.weekday() != Weekday::Sun {
        d -= Duration::days(1);
    }
    d
}

/// Is summer time in force in Berlin at this instant (last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC)?
fn berlin_dst(utc: DateTime<Utc>) -> bool {
    let y = utc.year();
    let start = last_sunday(y, 3).and_hms_opt(1, 0, 0).unwrap_or_default().and_utc();
    let end = last_sunday(y, 10).and_hms_opt(1, 0, 0).unwrap_or_default().and_utc();
    utc >= start && utc < end
}

/// The Berlin UTC offset at an instant.
pub fn berlin_offset(utc: DateTime<Utc>) -> FixedOffset {
    let secs = if berlin_dst(utc) { 7200 } else { 3600 };
    FixedOffset::east_opt(secs).unwrap_or(chrono::Offset::fix(&Utc))
}

/// Converts a Berlin wall-clock time to UTC (ambiguous/nonexistent hours resolved with the winter offset).
pub fn berlin_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    let summer = local.and_utc() - Duration::hours(2);
    if berlin_dst(summer) && berlin_dst(local.and_utc() - Duration::hours(1)) {
        return summer;
    }
    local.and_utc() - Duration::hours(1)
}

/// `2017-01-17T16:41:08+01:00` (Berlin offset), the v1 timestamp format.
pub fn fmt_v1(utc: DateTime<Utc>) -> String {
    utc.with_timezone(&berlin_offset(utc)).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Local midnight of a date in Berlin, `2014-11-09T00:00:00+01:00`.
pub fn fmt_v1_date(d: NaiveDate) -> String {
    fmt_v1(berlin_to_utc(d.and_time(NaiveTime::MIN)))
}

/// `2021-05-28T11:17:30Z`, the v2 instant format.
pub fn fmt_v2(utc: DateTime<Utc>) -> String {
    utc.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The Berlin calendar date of an instant.
pub fn berlin_date(utc: DateTime<Utc>) -> NaiveDate {
    utc.with_timezone(&berlin_offset(utc)).date_naive()
}

/// Which end of a day a date-only bound stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// 00:00:00 of the day.
    Start,
    /// 23:59:59 of the day.
    End,
}

/// Parses a v1 datetime-like filter: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` (naive = Berlin time) or RFC 3339.
pub fn parse_v1_instant(s: &str, edge: DayEdge) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(dt.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(berlin_to_utc(n));
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = match edge {
        DayEdge::Start => NaiveTime::MIN,
        DayEdge::End => NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN),
    };
    Some(berlin_to_utc(d.and_time(t)))
}

/// Parses a date `YYYY-MM-DD` (a longer datetime string contributes its date part).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// Parses a v2 datetime filter: naive `YYYY-MM-DDTHH:MM:SS` (UTC), a date, or RFC 3339 when `allow_zone`.
pub fn parse_v2_instant(s: &str, allow_zone: bool) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if allow_zone {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN).and_utc())
}
