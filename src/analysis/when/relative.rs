//! Expressions relative to now: rolling stretches ("last 24 hours", "the
//! past day"), whole units some time ago ("3 days ago"), the previous
//! calendar unit ("last week") and the current one so far ("this month").

use regex::Captures;
use time::OffsetDateTime;

use super::calendar::{minus_units, quantity_of, unit_window, Unit};
use super::error::Fault;
use super::range::Point;

pub(super) fn rolling_quantity(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (count, unit) = quantity_of(caps)?;
    let from = minus_units(now, count, unit).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(from, now))
}

pub(super) fn units_ago(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (count, unit) = quantity_of(caps)?;
    let then = minus_units(now, count, unit).ok_or(Fault::OutOfRange)?;
    unit_window(then, unit).ok_or(Fault::OutOfRange)
}

/// "last hour", "the past day", "last week", "in the last month", "this
/// past year": rolling, except bare last/previous/prior week, month or
/// year, which is the previous calendar one.
pub(super) fn one_unit(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let word = caps.name("unit").map_or("", |m| m.as_str());
    let (unit, count) = Unit::parse(word).ok_or(Fault::Invalid)?;
    let which = caps
        .name("which")
        .map_or("", |m| m.as_str())
        .to_ascii_lowercase();
    let qualified =
        caps.name("pre").is_some() || caps.name("the").is_some() || caps.name("this").is_some();
    let calendar = matches!(unit, Unit::Week | Unit::Month | Unit::Year)
        && count == 1
        && !qualified
        && which != "past";
    if calendar {
        let before = minus_units(now, 1, unit).ok_or(Fault::OutOfRange)?;
        return unit_window(before, unit).ok_or(Fault::OutOfRange);
    }
    let from = minus_units(now, count, unit).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(from, now))
}

/// "this week", "this month", "this year": its start to now.
pub(super) fn this_period(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let word = caps.name("unit").map_or("", |m| m.as_str());
    let (unit, _) = Unit::parse(word).ok_or(Fault::Invalid)?;
    let window = unit_window(now, unit).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(window.start(), now))
}

#[cfg(test)]
mod tests {
    use crate::analysis::when::tests::{check, SUNDAY};

    #[test]
    fn rolling_ranges_end_now() {
        check(
            SUNDAY,
            &[
                ("last 24 hours", "", "2026-11-28 14:00", "now"),
                ("in the last 24 hours", "", "2026-11-28 14:00", "now"),
                ("past 7 days", "", "2026-11-22 14:00", "now"),
                ("previous 30 minutes", "", "2026-11-29 13:30", "now"),
                ("last two weeks", "", "2026-11-15 14:00", "now"),
                ("last twenty-four hours", "", "2026-11-28 14:00", "now"),
                ("past forty eight hours", "", "2026-11-27 14:00", "now"),
                ("last an hour", "", "2026-11-29 13:00", "now"),
                ("the last 3 months", "", "2026-08-29 14:00", "now"),
                ("last twelve months", "", "2025-11-29 14:00", "now"),
                ("past 24h", "", "2026-11-28 14:00", "now"),
                ("last 90m", "", "2026-11-29 12:30", "now"),
                ("last a couple of days", "", "2026-11-27 14:00", "now"),
                ("past fortnight", "", "2026-11-15 14:00", "now"),
                ("last 10 years", "", "2016-11-29 14:00", "now"),
            ],
        );
    }

    #[test]
    fn one_unit_without_a_number() {
        check(
            SUNDAY,
            &[
                ("last hour", "", "2026-11-29 13:00", "now"),
                ("the past day", "", "2026-11-28 14:00", "now"),
                ("last minute", "", "2026-11-29 13:59", "now"),
                // Bare "last week/month/year": the previous calendar one.
                ("last week", "", "2026-11-16 00:00", "2026-11-23 00:00"),
                ("previous week", "", "2026-11-16 00:00", "2026-11-23 00:00"),
                ("last month", "", "2026-10-01 00:00", "2026-11-01 00:00"),
                ("last year", "", "2025-01-01 00:00", "2026-01-01 00:00"),
                // Qualified: rolling.
                ("in the last week", "", "2026-11-22 14:00", "now"),
                ("the past week", "", "2026-11-22 14:00", "now"),
                ("this past month", "", "2026-10-29 14:00", "now"),
            ],
        );
    }
}
