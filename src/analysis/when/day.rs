//! Named days and parts of them: today, yesterday, weekdays, mornings,
//! afternoons, evenings and nights, tonight, last night, the weekend.

use regex::Captures;
use time::{Date, Duration, OffsetDateTime, Weekday};

use super::calendar::{midnight, week_start};
use super::error::Fault;
use super::range::Point;

/// A named day, optionally narrowed to a part of it.
pub(super) fn named_day(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let today = now.date();
    let back = |days: i64| {
        today
            .checked_sub(Duration::days(days))
            .ok_or(Fault::OutOfRange)
    };
    let day = if caps.name("dby").is_some() {
        back(2)?
    } else if caps.name("yday").is_some() {
        back(1)?
    } else if caps.name("today").is_some() {
        today
    } else {
        let name = caps.name("wd").ok_or(Fault::Invalid)?.as_str();
        let target = weekday(name).ok_or(Fault::Invalid)?;
        let qualifier = caps.name("wdq").map(|m| m.as_str().to_ascii_lowercase());
        let days_from_monday = i64::from(target.number_days_from_monday());
        match qualifier.as_deref() {
            Some("this") => week_start(today)
                .and_then(|w| w.checked_add(Duration::days(days_from_monday)))
                .ok_or(Fault::OutOfRange)?,
            q => {
                let today_n = i64::from(today.weekday().number_days_from_monday());
                let mut days = (today_n - days_from_monday).rem_euclid(7);
                if days == 0 && q.is_some() {
                    days = 7; // "last Monday" on a Monday is a week ago
                }
                back(days)?
            }
        }
    };
    day_part(day, caps.name("part").map(|m| m.as_str()))
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// The whole `day`, or its morning (00–12), afternoon (12–18), evening
/// (18–24) or night (18 to 06 the next day).
pub(super) fn day_part(day: Date, part: Option<&str>) -> Result<Point, Fault> {
    let at = |hours: i64| {
        midnight(day)
            .checked_add(Duration::hours(hours))
            .ok_or(Fault::OutOfRange)
    };
    let (from, to) = match part.map(str::to_ascii_lowercase).as_deref() {
        None => (0, 24),
        Some("morning") => (0, 12),
        Some("afternoon") => (12, 18),
        Some("evening") => (18, 24),
        Some("night") => (18, 30),
        Some(_) => return Err(Fault::Invalid),
    };
    Ok(Point::Window(at(from)?, at(to)?))
}

/// "this morning/afternoon/evening", "tonight", "last night", "overnight".
pub(super) fn part_of_today(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let today = now.date();
    let yesterday = today.previous_day().ok_or(Fault::OutOfRange)?;
    if let Some(part) = caps.name("part") {
        return day_part(today, Some(part.as_str()));
    }
    // Before 06:00 the night under way began yesterday.
    let night_under_way_began = if now.hour() < 6 { yesterday } else { today };
    if caps.name("tonight").is_some() {
        return day_part(night_under_way_began, Some("night"));
    }
    day_part(yesterday, Some("night"))
}

/// Saturday 00:00 to Monday 00:00. "this weekend" is this week's; "last"
/// and "previous" the one before; "past" and "the" the one under way if it
/// is the weekend now, else the last one.
pub(super) fn weekend(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let which = caps
        .name("which")
        .map_or("", |m| m.as_str())
        .to_ascii_lowercase();
    let monday = week_start(now.date()).ok_or(Fault::OutOfRange)?;
    let in_weekend = matches!(now.weekday(), Weekday::Saturday | Weekday::Sunday);
    let this_week = which == "this" || (in_weekend && (which == "past" || which == "the"));
    let next_monday = if this_week {
        monday.checked_add(Duration::WEEK)
    } else {
        Some(monday)
    }
    .ok_or(Fault::OutOfRange)?;
    let saturday = next_monday
        .checked_sub(Duration::days(2))
        .ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(midnight(saturday), midnight(next_monday)))
}

#[cfg(test)]
mod tests {
    use crate::analysis::when::tests::{check, error, MONDAY, SUNDAY, SUNDAY_NIGHT};
    use crate::analysis::when::TimeError;
    use time::macros::datetime;

    #[test]
    fn calendar_periods_and_days() {
        check(
            SUNDAY,
            &[
                ("today", "", "2026-11-29 00:00", "now"),
                ("yesterday", "", "2026-11-28 00:00", "2026-11-29 00:00"),
                ("yesterday's", "", "2026-11-28 00:00", "2026-11-29 00:00"),
                (
                    "the day before yesterday",
                    "",
                    "2026-11-27 00:00",
                    "2026-11-28 00:00",
                ),
                ("this morning", "", "2026-11-29 00:00", "2026-11-29 12:00"),
                ("this afternoon", "", "2026-11-29 12:00", "now"),
                ("last night", "", "2026-11-28 18:00", "2026-11-29 06:00"),
                ("overnight", "", "2026-11-28 18:00", "2026-11-29 06:00"),
                (
                    "yesterday afternoon",
                    "",
                    "2026-11-28 12:00",
                    "2026-11-28 18:00",
                ),
                ("this week", "", "2026-11-23 00:00", "now"),
                ("this month", "", "2026-11-01 00:00", "now"),
                ("this year", "", "2026-01-01 00:00", "now"),
                ("the weekend", "", "2026-11-28 00:00", "now"),
                ("last weekend", "", "2026-11-21 00:00", "2026-11-23 00:00"),
                ("3 days ago", "", "2026-11-26 00:00", "2026-11-27 00:00"),
                ("two days ago", "", "2026-11-27 00:00", "2026-11-28 00:00"),
                ("an hour ago", "", "2026-11-29 13:00", "2026-11-29 14:00"),
                ("a week ago", "", "2026-11-16 00:00", "2026-11-23 00:00"),
                ("2 months ago", "", "2026-09-01 00:00", "2026-10-01 00:00"),
            ],
        );
    }

    #[test]
    fn evening_and_tonight() {
        check(
            SUNDAY_NIGHT,
            &[
                ("tonight", "", "2026-11-29 18:00", "now"),
                ("this evening", "", "2026-11-29 18:00", "now"),
            ],
        );
        // At 02:00 "tonight" is the night under way, begun yesterday.
        let early = datetime!(2026-11-30 02:00 UTC);
        check(early, &[("tonight", "", "2026-11-29 18:00", "now")]);
        // At 14:00 tonight has not begun.
        let e = error("anything tonight?", SUNDAY);
        assert!(
            matches!(&e, TimeError::Future { text } if text == "tonight"),
            "{e:?}"
        );
    }

    #[test]
    fn weekdays_on_a_sunday() {
        check(
            SUNDAY,
            &[
                ("since Monday", "", "2026-11-23 00:00", "now"),
                ("on Tuesday", "", "2026-11-24 00:00", "2026-11-25 00:00"),
                ("Sunday", "", "2026-11-29 00:00", "now"),
                ("last Sunday", "", "2026-11-22 00:00", "2026-11-23 00:00"),
                ("since last Friday", "", "2026-11-27 00:00", "now"),
                (
                    "on Friday night",
                    "",
                    "2026-11-27 18:00",
                    "2026-11-28 06:00",
                ),
                ("Saturday's", "", "2026-11-28 00:00", "2026-11-29 00:00"),
            ],
        );
    }

    #[test]
    fn weekdays_and_weeks_on_a_monday() {
        check(
            MONDAY,
            &[
                ("since Monday", "", "2026-11-30 00:00", "now"),
                ("on Monday", "", "2026-11-30 00:00", "now"),
                ("last Monday", "", "2026-11-23 00:00", "2026-11-24 00:00"),
                ("since Sunday", "", "2026-11-29 00:00", "now"),
                ("this week", "", "2026-11-30 00:00", "now"),
                ("last week", "", "2026-11-23 00:00", "2026-11-30 00:00"),
                ("yesterday", "", "2026-11-29 00:00", "2026-11-30 00:00"),
                ("this morning", "", "2026-11-30 00:00", "now"),
                (
                    "over the weekend",
                    "the weekend",
                    "2026-11-28 00:00",
                    "2026-11-30 00:00",
                ),
                ("this month", "", "2026-11-01 00:00", "now"),
                ("last 24 hours", "", "2026-11-29 09:00", "now"),
            ],
        );
    }
}
