//! Units and quantities of time, and calendar arithmetic in UTC: N units
//! back, the calendar unit holding a time, the starts of weeks and months.

use regex::Captures;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::error::Fault;
use super::range::Point;
use crate::limits::TIME_RANGE_DAYS_MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// The unit and how many of it one word stands for (a fortnight is two
    /// weeks).
    pub(super) fn parse(word: &str) -> Option<(Unit, u64)> {
        let w = word.to_ascii_lowercase();
        Some(match w.as_str() {
            "m" | "min" | "mins" | "minute" | "minutes" => (Unit::Minute, 1),
            "h" | "hr" | "hrs" | "hour" | "hours" => (Unit::Hour, 1),
            "d" | "day" | "days" => (Unit::Day, 1),
            "w" | "wk" | "wks" | "week" | "weeks" => (Unit::Week, 1),
            "fortnight" | "fortnights" => (Unit::Week, 2),
            "mo" | "month" | "months" => (Unit::Month, 1),
            "y" | "yr" | "yrs" | "year" | "years" => (Unit::Year, 1),
            _ => return None,
        })
    }

    /// Most of this unit that can fit in [`TIME_RANGE_DAYS_MAX`]: checked
    /// before any arithmetic, so huge numbers never reach it.
    fn count_max(self) -> u64 {
        let days = TIME_RANGE_DAYS_MAX.unsigned_abs();
        match self {
            Unit::Minute => days * 24 * 60,
            Unit::Hour => days * 24,
            Unit::Day => days,
            Unit::Week => days / 7,
            Unit::Month => days / 28,
            Unit::Year => days / 365,
        }
    }
}

/// The number and unit of a quantity match, checked against the limit.
pub(super) fn quantity_of(caps: &Captures<'_>) -> Result<(u64, Unit), Fault> {
    let (count, unit_word) = match (caps.name("num"), caps.name("unit")) {
        // Digits too long for u64 are far past the limit anyway.
        (Some(n), Some(u)) => (
            n.as_str().parse::<u64>().map_err(|_| Fault::TooLong)?,
            u.as_str(),
        ),
        _ => {
            let n = caps.name("wnum").ok_or(Fault::Invalid)?;
            let u = caps.name("wunit").ok_or(Fault::Invalid)?;
            (number_word(n.as_str()).ok_or(Fault::Invalid)?, u.as_str())
        }
    };
    let (unit, per_word) = Unit::parse(unit_word).ok_or(Fault::Invalid)?;
    let count = count.checked_mul(per_word).ok_or(Fault::TooLong)?;
    if count == 0 {
        return Err(Fault::Zero);
    }
    if count > unit.count_max() {
        return Err(Fault::TooLong);
    }
    Ok((count, unit))
}

/// "a", "an", "one" … "nineteen", tens with an optional one ("twenty-four",
/// "forty eight"), "a couple of", "a dozen", "a hundred".
fn number_word(words: &str) -> Option<u64> {
    let lower = words.to_ascii_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .collect();
    let small = |w: &str| -> Option<u64> {
        let names = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        names.iter().position(|n| *n == w).map(|p| p as u64)
    };
    let tens = |w: &str| -> Option<u64> {
        let names = [
            "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ];
        names
            .iter()
            .position(|n| *n == w)
            .map(|p| 20 + 10 * p as u64)
    };
    match parts.as_slice() {
        ["a"] | ["an"] => Some(1),
        ["a", "couple", "of"] | ["couple", "of"] => Some(2),
        ["a", "dozen"] | ["dozen"] => Some(12),
        ["a", "hundred"] | ["hundred"] => Some(100),
        [w] => small(w).or_else(|| tens(w)),
        [t, o] => Some(tens(t)? + small(o).filter(|&n| (1..10).contains(&n))?),
        _ => None,
    }
}

/// `t` less `count` units, by the calendar for months and years (the day
/// of month is kept where it exists, else the month's last day).
pub(super) fn minus_units(t: OffsetDateTime, count: u64, unit: Unit) -> Option<OffsetDateTime> {
    let n = i64::try_from(count).ok()?;
    match unit {
        Unit::Minute => t.checked_sub(Duration::minutes(n)),
        Unit::Hour => t.checked_sub(Duration::hours(n)),
        Unit::Day => t.checked_sub(Duration::days(n)),
        Unit::Week => t.checked_sub(Duration::weeks(n)),
        Unit::Month | Unit::Year => {
            let months = if unit == Unit::Year {
                n.checked_mul(12)?
            } else {
                n
            };
            let (year, month) = shift_month(t.year(), t.month(), -months)?;
            let day = t.day().min(month.length(year));
            let date = Date::from_calendar_date(year, month, day).ok()?;
            Some(PrimitiveDateTime::new(date, t.time()).assume_utc())
        }
    }
}

/// The year and month `delta` months from `year`-`month`.
pub(super) fn shift_month(year: i32, month: Month, delta: i64) -> Option<(i32, Month)> {
    let index = i64::from(year)
        .checked_mul(12)?
        .checked_add(i64::from(month as u8) - 1)?
        .checked_add(delta)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    Some((year, month))
}

pub(super) fn midnight(date: Date) -> OffsetDateTime {
    date.midnight().assume_utc()
}

pub(super) fn week_start(date: Date) -> Option<Date> {
    date.checked_sub(Duration::days(i64::from(
        date.weekday().number_days_from_monday(),
    )))
}

pub(super) fn month_start(year: i32, month: Month) -> Option<Date> {
    Date::from_calendar_date(year, month, 1).ok()
}

/// The calendar unit holding `t`, as a window.
pub(super) fn unit_window(t: OffsetDateTime, unit: Unit) -> Option<Point> {
    let date = t.date();
    let (from, to) = match unit {
        Unit::Minute => {
            let from = t.replace_time(Time::from_hms(t.hour(), t.minute(), 0).ok()?);
            (from, from.checked_add(Duration::MINUTE)?)
        }
        Unit::Hour => {
            let from = t.replace_time(Time::from_hms(t.hour(), 0, 0).ok()?);
            (from, from.checked_add(Duration::HOUR)?)
        }
        Unit::Day => (midnight(date), midnight(date.next_day()?)),
        Unit::Week => {
            let start = week_start(date)?;
            (
                midnight(start),
                midnight(start.checked_add(Duration::WEEK)?),
            )
        }
        Unit::Month => {
            let (y, m) = shift_month(date.year(), date.month(), 1)?;
            (
                midnight(month_start(date.year(), date.month())?),
                midnight(month_start(y, m)?),
            )
        }
        Unit::Year => (
            midnight(month_start(date.year(), Month::January)?),
            midnight(month_start(date.year().checked_add(1)?, Month::January)?),
        ),
    };
    Some(Point::Window(from, to))
}
