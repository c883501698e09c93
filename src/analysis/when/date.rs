//! Absolute dates and times: RFC 3339 timestamps, ISO dates, dates with a
//! month name, whole months, and clock times.

use regex::Captures;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::calendar::{midnight, month_start, shift_month};
use super::day::day_part;
use super::error::Fault;
use super::range::Point;

fn number(caps: &Captures<'_>, name: &str) -> Result<Option<u32>, Fault> {
    caps.name(name)
        .map(|m| m.as_str().parse::<u32>().map_err(|_| Fault::Invalid))
        .transpose()
}

fn calendar_date(year: i32, month: u32, day: u32) -> Result<Date, Fault> {
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(Fault::Invalid)?;
    let day = u8::try_from(day).map_err(|_| Fault::Invalid)?;
    Date::from_calendar_date(year, month, day).map_err(|_| Fault::Invalid)
}

fn year_of(caps: &Captures<'_>, name: &str) -> Result<Option<i32>, Fault> {
    Ok(number(caps, name)?.map(|y| y as i32))
}

/// An RFC 3339 timestamp (seconds, fraction and offset optional; no offset
/// means UTC).
pub(super) fn timestamp(caps: &Captures<'_>, _now: OffsetDateTime) -> Result<Point, Fault> {
    let field = |name: &str| number(caps, name).map(|n| n.unwrap_or(0));
    let year = year_of(caps, "y")?.ok_or(Fault::Invalid)?;
    let date = calendar_date(year, field("mo")?, field("d")?)?;
    let nanos = match caps.name("frac") {
        Some(f) => {
            let digits = f.as_str();
            let value: u32 = digits.parse().map_err(|_| Fault::Invalid)?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        None => 0,
    };
    let hms = |n: u32| u8::try_from(n).map_err(|_| Fault::Invalid);
    let time = Time::from_hms_nano(
        hms(field("h")?)?,
        hms(field("mi")?)?,
        hms(field("s")?)?,
        nanos,
    )
    .map_err(|_| Fault::Invalid)?;
    let offset = match caps.name("tz").map(|m| m.as_str()) {
        None | Some("Z") | Some("z") => UtcOffset::UTC,
        Some(tz) => {
            let sign: i8 = if tz.starts_with('-') { -1 } else { 1 };
            let digits: String = tz.chars().filter(char::is_ascii_digit).collect();
            let hours: i8 = digits
                .get(..2)
                .and_then(|h| h.parse().ok())
                .ok_or(Fault::Invalid)?;
            let minutes: i8 = digits
                .get(2..)
                .and_then(|m| m.parse().ok())
                .ok_or(Fault::Invalid)?;
            UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| Fault::Invalid)?
        }
    };
    let at = PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
        .ok_or(Fault::OutOfRange)?;
    Ok(Point::Instant(at))
}

pub(super) fn iso_date(caps: &Captures<'_>, _now: OffsetDateTime) -> Result<Point, Fault> {
    let year = year_of(caps, "y")?.ok_or(Fault::Invalid)?;
    let month = number(caps, "mo")?.ok_or(Fault::Invalid)?;
    let day = number(caps, "d")?.ok_or(Fault::Invalid)?;
    day_part(
        calendar_date(year, month, day)?,
        caps.name("part").map(|m| m.as_str()),
    )
}

/// "Nov 3", "November 3rd, 2026", "3 November", "3rd of Nov 2026". With
/// no year: the latest such date not after today.
pub(super) fn month_name_date(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (month_word, day, year) = match caps.name("m1") {
        Some(m) => (m.as_str(), number(caps, "d1")?, year_of(caps, "y1")?),
        None => (
            caps.name("m2").ok_or(Fault::Invalid)?.as_str(),
            number(caps, "d2")?,
            year_of(caps, "y2")?,
        ),
    };
    let month = month_number(month_word).ok_or(Fault::Invalid)?;
    let day = day.ok_or(Fault::Invalid)?;
    let date = match year {
        Some(year) => calendar_date(year, month, day)?,
        None => {
            let this_year = calendar_date(now.year(), month, day);
            match this_year {
                Ok(d) if d <= now.date() => d,
                // Later this year (or 29 February in a common year): the
                // previous year's.
                _ => calendar_date(now.year() - 1, month, day)?,
            }
        }
    };
    day_part(date, None)
}

/// "in November", "May 2026", "last March": the whole month. With no
/// year, the latest one that has begun (this month included); "last X"
/// is the latest one before this month.
pub(super) fn whole_month(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let word = caps.name("m").ok_or(Fault::Invalid)?.as_str();
    let month = month_number(word).ok_or(Fault::Invalid)?;
    let which = caps.name("which").map(|m| m.as_str().to_ascii_lowercase());
    let current = u32::from(now.month() as u8);
    let year = match year_of(caps, "y")? {
        Some(year) => year,
        None => {
            let begun = match which.as_deref() {
                Some("last" | "past" | "previous") => month < current,
                _ => month <= current,
            };
            if begun {
                now.year()
            } else {
                now.year() - 1
            }
        }
    };
    let first = calendar_date(year, month, 1)?;
    let (next_year, next_month) =
        shift_month(first.year(), first.month(), 1).ok_or(Fault::OutOfRange)?;
    let next = month_start(next_year, next_month).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(midnight(first), midnight(next)))
}

/// "in 2019", "during 2024": the whole calendar year. A bare number is a
/// year only after a connector (see the rule in `pattern.rs`).
pub(super) fn whole_year(caps: &Captures<'_>, _now: OffsetDateTime) -> Result<Point, Fault> {
    let year = year_of(caps, "y")?.ok_or(Fault::Invalid)?;
    let first = calendar_date(year, 1, 1)?;
    let next = calendar_date(year.checked_add(1).ok_or(Fault::OutOfRange)?, 1, 1)?;
    Ok(Point::Window(midnight(first), midnight(next)))
}

fn month_number(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    let prefixes = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    prefixes
        .iter()
        .position(|p| w.starts_with(p))
        .map(|i| i as u32 + 1)
}

/// A clock time today: `09:00`, `14:30:15`, `9am`, `2:30 p.m.`, noon,
/// midnight.
pub(super) fn clock(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (hour, minute, second) = if caps.name("noon").is_some() {
        (12, 0, 0)
    } else if caps.name("midnight").is_some() {
        (0, 0, 0)
    } else if let Some(ampm) = caps.name("ampm") {
        let hour = number(caps, "h")?.ok_or(Fault::Invalid)?;
        if !(1..=12).contains(&hour) {
            return Err(Fault::Invalid);
        }
        let pm = ampm.as_str().to_ascii_lowercase().starts_with('p');
        let hour = match (hour, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
        (
            hour,
            number(caps, "mi")?.unwrap_or(0),
            number(caps, "s")?.unwrap_or(0),
        )
    } else {
        (
            number(caps, "h24")?.ok_or(Fault::Invalid)?,
            number(caps, "mi24")?.unwrap_or(0),
            number(caps, "s24")?.unwrap_or(0),
        )
    };
    let part = |n: u32| u8::try_from(n).map_err(|_| Fault::Invalid);
    let time =
        Time::from_hms(part(hour)?, part(minute)?, part(second)?).map_err(|_| Fault::Invalid)?;
    Ok(Point::Instant(now.replace_time(time)))
}

#[cfg(test)]
mod tests {
    use crate::analysis::when::tests::{check, SUNDAY};

    #[test]
    fn dates_timestamps_and_clock_times() {
        check(
            SUNDAY,
            &[
                ("since yesterday", "", "2026-11-28 00:00", "now"),
                ("since 2026-11-01", "", "2026-11-01 00:00", "now"),
                ("on 2026-11-03", "", "2026-11-03 00:00", "2026-11-04 00:00"),
                ("after 2026-11-03", "", "2026-11-04 00:00", "now"),
                (
                    "between 2026-11-01 and 2026-11-03",
                    "",
                    "2026-11-01 00:00",
                    "2026-11-04 00:00",
                ),
                (
                    "from 2026-11-01 to 2026-11-03",
                    "",
                    "2026-11-01 00:00",
                    "2026-11-04 00:00",
                ),
                ("since 2026-11-29T09:15:00Z", "", "2026-11-29 09:15", "now"),
                (
                    "at 2026-11-28T10:00:00.5Z",
                    "",
                    "2026-11-28 10:00:00.5",
                    "2026-11-28 10:01:00.5",
                ),
                ("since 09:00", "", "2026-11-29 09:00", "now"),
                ("after 13:30", "", "2026-11-29 13:30", "now"),
                ("since 9am", "", "2026-11-29 09:00", "now"),
                ("since 12:15 p.m.", "", "2026-11-29 12:15", "now"),
                ("since midnight", "", "2026-11-29 00:00", "now"),
                (
                    "between 9am and 11:30",
                    "",
                    "2026-11-29 09:00",
                    "2026-11-29 11:30",
                ),
                ("since Nov 1", "", "2026-11-01 00:00", "now"),
                (
                    "on 3rd November 2026",
                    "",
                    "2026-11-03 00:00",
                    "2026-11-04 00:00",
                ),
                // No year, and later in the year than today: last year's.
                ("on December 24", "", "2025-12-24 00:00", "2025-12-25 00:00"),
                ("in October", "", "2026-10-01 00:00", "2026-11-01 00:00"),
                ("during November", "", "2026-11-01 00:00", "now"),
                ("in December", "", "2025-12-01 00:00", "2026-01-01 00:00"),
                ("last November", "", "2025-11-01 00:00", "2025-12-01 00:00"),
                ("since May 2026", "", "2026-05-01 00:00", "now"),
                ("since May", "", "2026-05-01 00:00", "now"),
                (
                    "in February 2024",
                    "",
                    "2024-02-01 00:00",
                    "2024-03-01 00:00",
                ),
            ],
        );
        let offset = "between 2026-11-28T10:00:00Z and 2026-11-28T12:30:00+01:00";
        check(
            SUNDAY,
            &[(offset, "", "2026-11-28 10:00", "2026-11-28 11:30")],
        );
    }
}
