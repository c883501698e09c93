//! Time expressions in a question, parsed by code and never by the model.
//!
//! "Who accessed the payments database in the last 24 hours?" must search
//! exactly the last 24 hours; a small model once turned that into 168. So
//! [`find_time_range`] finds the time expression in the question and turns
//! it into a half-open range `[from, to)` of Unix nanoseconds, and the
//! model never sees the arithmetic.
//!
//! ## Rules
//! - **Everything is UTC**: days start at 00:00 UTC, weeks on Monday 00:00
//!   UTC. `now` may carry any offset; it is converted first.
//! - **Nothing ends after `now`**: the ledger holds nothing later, so a range
//!   reaching past now is cut there ("today" is midnight to now). A range
//!   that starts at or after now is an error, not an empty answer.
//! - **Rolling** ("last 24 hours", "past 7 days", "the past day", "last
//!   hour", "in the last week", "this past month"): the stretch ending now.
//! - **Calendar** ("last week", "previous month", "last year" with no "the",
//!   "in" or "past"): the whole previous Monday-to-Monday week, month or
//!   year. "this week/month/year": its start to now.
//! - **Days**: "today", "yesterday", "the day before yesterday", weekdays
//!   ("Monday": the most recent one, today included; "last Monday": the
//!   most recent before today; "this Friday": this week's), dates
//!   (`2026-11-03`, `Nov 3`, `3rd November 2026`; a date without a year is
//!   the latest one not after today), each optionally with "morning"
//!   (00–12), "afternoon" (12–18), "evening" (18–24) or "night" (18 to 06
//!   the next day). "this morning", "tonight" (the night now under way, or
//!   today's), "last night"/"overnight" (the night that ended this morning),
//!   "the weekend" (Saturday and Sunday; the last one unless it is now).
//! - **N units ago**: the whole calendar unit (minute, hour, day, week,
//!   month, year) that holds now minus N units: "3 days ago" is that day.
//! - **Connectors**: "since X"/"from X" run from X's start to now, "after X"
//!   from X's end to now, "between X and Y"/"from X to Y" from X's start to
//!   Y's end (so "between Nov 1 and Nov 3" includes the 3rd), "on/at/during
//!   X" is X. RFC 3339 timestamps and clock times (`09:00`, `2:30pm`, noon,
//!   midnight) are instants: a clock time counts only after a connector,
//!   falls on today unless a day is named right beside it ("yesterday
//!   between 9am and 5pm", "since 14:00 on Friday"), and an instant alone
//!   names the minute it starts.
//! - **Months**: "in November", "May 2026", "last March": the whole month,
//!   the latest one begun when no year is given. A month name with no year,
//!   qualifier or connector is not taken: "march" and "may" are verbs too.
//!   "before/until X" has no start and is refused.
//! - **One expression**: the longest one wins (then the earliest); a
//!   question with none gives `Ok(None)`.
//! - **Refused** with a [`TimeError`] naming the words: zero units, more than
//!   [`TIME_RANGE_DAYS_MAX`](crate::limits::TIME_RANGE_DAYS_MAX) days, dates
//!   and times that do not exist, ranges that end before they start, ranges
//!   wholly in the future.
//!
//! ## Layout
//! - this file: [`find_time_range`], the entry point: atoms, their
//!   readings, the longest reading resolved.
//! - `pattern.rs`: the expression patterns and the atoms they find in a
//!   question (lexing).
//! - `candidate.rs`: the readings of the atoms: alone, after a connector
//!   ("since", "before"), in pairs ("between X and Y"), and clock times
//!   moved onto a day named beside them.
//! - `range.rs`: what an expression names ([`TimeRange`], [`TimeMatch`] and
//!   the window or instant before connectors) and how a reading resolves to
//!   a range, cut at now and checked against the limits.
//! - `error.rs`: [`TimeError`], and the fault found before the words are
//!   attached.
//! - `calendar.rs`: units and quantities of time, and calendar arithmetic
//!   (N units back, the unit holding a time, week and month starts).
//! - `relative.rs`: expressions relative to now ("last 24 hours", "3 days
//!   ago", "last week", "this month").
//! - `day.rs`: named days and parts of them ("yesterday", "last Monday",
//!   "this morning", "tonight", "the weekend").
//! - `date.rs`: absolute dates, months, timestamps and clock times.

mod calendar;
mod candidate;
mod date;
mod day;
mod error;
mod pattern;
mod range;
mod relative;

pub use self::error::TimeError;
pub use self::range::TimeMatch;
#[cfg(test)]
use self::range::TimeRange;

use time::{OffsetDateTime, UtcOffset};

use self::candidate::candidates;
use self::pattern::find_atoms;
use self::range::resolve;

/// Finds the time expression in `question` and the UTC range it names, as
/// of `now`. See the module docs for what each expression means.
pub fn find_time_range(
    question: &str,
    now: OffsetDateTime,
) -> Result<Option<TimeMatch>, TimeError> {
    // Only a `now` within a few hours of the largest date can fail here;
    // name it, since it is the clock that is wrong, not the question.
    let Some(now) = now.checked_to_offset(UtcOffset::UTC) else {
        return Err(TimeError::OutOfRange {
            text: now.to_string(),
        });
    };
    let atoms = find_atoms(question, now);
    let Some(best) = candidates(question, &atoms).into_iter().reduce(|best, c| {
        if c.span.len() > best.span.len() {
            c
        } else {
            best
        }
    }) else {
        return Ok(None);
    };
    let text = question[best.span.clone()].to_owned();
    match resolve(&best, &atoms, now) {
        Ok(range) => Ok(Some(TimeMatch {
            range,
            text,
            start: best.span.start,
            end: best.span.end,
        })),
        Err(fault) => Err(fault.with_text(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    /// Sunday 2026-11-29 14:00 UTC.
    pub(super) const SUNDAY: OffsetDateTime = datetime!(2026-11-29 14:00:00 UTC);
    /// Monday 2026-11-30 09:00 UTC.
    pub(super) const MONDAY: OffsetDateTime = datetime!(2026-11-30 09:00:00 UTC);
    /// Sunday 2026-11-29 22:30 UTC, for the evening.
    pub(super) const SUNDAY_NIGHT: OffsetDateTime = datetime!(2026-11-29 22:30:00 UTC);

    /// "2026-11-28 14:00" (seconds and fraction optional) as UTC, or "now".
    fn at(text: &str, now: OffsetDateTime) -> OffsetDateTime {
        if text == "now" {
            return now;
        }
        let mut rfc = text.replace(' ', "T");
        if rfc.len() == 16 {
            rfc.push_str(":00");
        }
        rfc.push('Z');
        OffsetDateTime::parse(&rfc, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn nanos(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos()).unwrap()
    }

    /// Each case is (question, the words it must match — "" for the whole
    /// question —, from, to), times as for [`at`], checked at `now`.
    pub(super) fn check(now: OffsetDateTime, cases: &[(&str, &str, &str, &str)]) {
        for &(question, words, from, to) in cases {
            let words = if words.is_empty() { question } else { words };
            let found = find_time_range(question, now)
                .unwrap_or_else(|e| panic!("{question:?}: {e}"))
                .unwrap_or_else(|| panic!("{question:?}: no time expression found"));
            assert_eq!(found.text, words, "{question:?}");
            assert_eq!(&question[found.start..found.end], words, "{question:?}");
            let expected = TimeRange {
                from_unix_nanos: nanos(at(from, now)),
                to_unix_nanos: nanos(at(to, now)),
            };
            let shown = |n: i64| OffsetDateTime::from_unix_timestamp_nanos(n.into()).unwrap();
            assert_eq!(
                found.range,
                expected,
                "{question:?}: got {} .. {}",
                shown(found.range.from_unix_nanos),
                shown(found.range.to_unix_nanos),
            );
        }
    }

    pub(super) fn error(question: &str, now: OffsetDateTime) -> TimeError {
        match find_time_range(question, now) {
            Err(e) => e,
            Ok(found) => panic!("{question:?} should be refused, got {found:?}"),
        }
    }

    #[test]
    fn written_dates_with_clock_ranges() {
        check(
            SUNDAY,
            &[
                (
                    "What happened on September 14, 2020 between 00:45 and 00:55?",
                    "on September 14, 2020 between 00:45 and 00:55",
                    "2020-09-14 00:45",
                    "2020-09-14 00:55",
                ),
                (
                    "List what pedro did on 14 Sep 2020 from 00:40 to 00:45",
                    "on 14 Sep 2020 from 00:40 to 00:45",
                    "2020-09-14 00:40",
                    "2020-09-14 00:45",
                ),
                (
                    "What did minikube-user do between 13:00 and 13:30 on October 26th, 2018?",
                    "between 13:00 and 13:30 on October 26th, 2018",
                    "2018-10-26 13:00",
                    "2018-10-26 13:30",
                ),
                (
                    "What happened between 10:00 and 11:00 on 15 January 2024?",
                    "between 10:00 and 11:00 on 15 January 2024",
                    "2024-01-15 10:00",
                    "2024-01-15 11:00",
                ),
                (
                    "Was anything done between 2 a.m. and 4 a.m. on Jan 18, 2024?",
                    "between 2 a.m. and 4 a.m. on Jan 18, 2024",
                    "2024-01-18 02:00",
                    "2024-01-18 04:00",
                ),
                (
                    "Was anything done between 2 and 4 a.m. on Jan 18, 2024?",
                    "between 2 and 4 a.m. on Jan 18, 2024",
                    "2024-01-18 02:00",
                    "2024-01-18 04:00",
                ),
                (
                    "Who logged in from 9 to 11:30pm yesterday?",
                    "from 9 to 11:30pm yesterday",
                    "2026-11-28 21:00",
                    "2026-11-28 23:30",
                ),
                (
                    "How many IAM API calls were there in 2019?",
                    "in 2019",
                    "2019-01-01 00:00",
                    "2020-01-01 00:00",
                ),
            ],
        );
    }

    #[test]
    fn real_question_wordings() {
        let yesterday = ("2026-11-28 00:00", "2026-11-29 00:00");
        check(
            SUNDAY,
            &[
                (
                    "who accessed the payments database in the last 24 hours?",
                    "in the last 24 hours",
                    "2026-11-28 14:00",
                    "now",
                ),
                (
                    "summarise yesterday's admin changes",
                    "yesterday's",
                    yesterday.0,
                    yesterday.1,
                ),
                (
                    "anything unusual this morning?",
                    "this morning",
                    "2026-11-29 00:00",
                    "2026-11-29 12:00",
                ),
                (
                    "failed logins since Monday",
                    "since Monday",
                    "2026-11-23 00:00",
                    "now",
                ),
                (
                    "Show me all IAM policy changes over the past 7 days.",
                    "over the past 7 days",
                    "2026-11-22 14:00",
                    "now",
                ),
                (
                    "Were there any root console logins last week?",
                    "last week",
                    "2026-11-16 00:00",
                    "2026-11-23 00:00",
                ),
                (
                    "List denied S3 requests between 2026-11-01 and 2026-11-03, please",
                    "between 2026-11-01 and 2026-11-03",
                    "2026-11-01 00:00",
                    "2026-11-04 00:00",
                ),
                (
                    "How many failed logins in the past two weeks?",
                    "in the past two weeks",
                    "2026-11-15 14:00",
                    "now",
                ),
                (
                    "kubectl exec into prod pods since 09:00?",
                    "since 09:00",
                    "2026-11-29 09:00",
                    "now",
                ),
                (
                    "Any privilege escalations on Tuesday?",
                    "on Tuesday",
                    "2026-11-24 00:00",
                    "2026-11-25 00:00",
                ),
                (
                    "Summarise the last month's GitHub org changes",
                    "the last month's",
                    "2026-10-29 14:00",
                    "now",
                ),
                (
                    "Anything odd overnight?",
                    "overnight",
                    "2026-11-28 18:00",
                    "2026-11-29 06:00",
                ),
                (
                    "What changed since Nov 1?",
                    "since Nov 1",
                    "2026-11-01 00:00",
                    "now",
                ),
                (
                    "failed logins from 9am to 11am today",
                    "from 9am to 11am today",
                    "2026-11-29 09:00",
                    "2026-11-29 11:00",
                ),
                (
                    "Who deleted S3 buckets 2 days ago",
                    "2 days ago",
                    "2026-11-27 00:00",
                    "2026-11-28 00:00",
                ),
                (
                    "LAST 24 HOURS: any AccessDenied from 10.0.0.1:8080?",
                    "LAST 24 HOURS",
                    "2026-11-28 14:00",
                    "now",
                ),
                (
                    "okta admin grants, past 48h, by actor",
                    "past 48h",
                    "2026-11-27 14:00",
                    "now",
                ),
                (
                    "what did alice do this afternoon (after lunch)?",
                    "this afternoon",
                    "2026-11-29 12:00",
                    "now",
                ),
            ],
        );
    }

    #[test]
    fn questions_without_time_give_none() {
        for question in [
            "",
            "who accessed the payments database?",
            "show 24 users with role admin",
            "error 404 on port 8080 from 10.0.0.1:443",
            "kubectl version 1.25.4 in namespace prod-2026",
            "the last user to log in",
            "a day in the life",
            "who may have changed the policy",
            "march the changes into prod",
        ] {
            assert_eq!(find_time_range(question, SUNDAY), Ok(None), "{question:?}");
        }
    }

    #[test]
    fn now_in_another_offset_is_read_as_utc() {
        let local = datetime!(2026-11-29 15:00:00 +01:00); // 14:00 UTC
        check(
            local,
            &[("today", "", "2026-11-29 00:00", "2026-11-29 14:00")],
        );
    }

    #[test]
    fn random_questions_never_panic_and_ranges_are_sane() {
        use rand::{Rng, SeedableRng};
        let words = [
            "last",
            "past",
            "the",
            "in",
            "since",
            "after",
            "before",
            "between",
            "and",
            "from",
            "to",
            "on",
            "at",
            "ago",
            "this",
            "morning",
            "night",
            "tonight",
            "today",
            "yesterday's",
            "monday",
            "Sunday",
            "week",
            "weeks",
            "month",
            "year",
            "years",
            "day",
            "days",
            "hours",
            "h",
            "m",
            "mo",
            "an",
            "a",
            "couple",
            "of",
            "twenty-four",
            "nineteen",
            "0",
            "1",
            "24",
            "99999999999999999999",
            "-1",
            "2026-11-01",
            "2026-02-30",
            "9999-12-31",
            "0000-01-01",
            "2026-11-28T10:00:00Z",
            "2026-11-28T25:61:00+99:99",
            "9999-12-31T23:00:00-05:00",
            "09:00",
            "99:99",
            "12pm",
            "13am",
            "noon",
            "Nov",
            "31st",
            "Feb",
            "29",
            "weekend",
            ",",
            "?",
            "'s",
            "\u{2019}s",
            "\u{e9}",
            "\u{65e5}\u{672c}",
            "\u{2013}",
        ];
        let nows = [
            SUNDAY,
            MONDAY,
            datetime!(2026-02-28 23:59:59.999999999 UTC),
            datetime!(1678-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59 UTC),
            datetime!(9999-12-31 23:00:00 -05:00),
            datetime!(-9999-01-01 00:00 UTC),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7155);
        let mut found_some = 0;
        for _ in 0..4000 {
            let n = rng.gen_range(0..10);
            let separator = if rng.gen_bool(0.8) { " " } else { "" };
            let question = (0..n)
                .map(|_| words[rng.gen_range(0..words.len())])
                .collect::<Vec<_>>()
                .join(separator);
            let now = nows[rng.gen_range(0..nows.len())];
            if let Ok(Some(found)) = find_time_range(&question, now) {
                found_some += 1;
                let range = found.range;
                assert!(range.from_unix_nanos < range.to_unix_nanos, "{question:?}");
                assert!(
                    i128::from(range.to_unix_nanos) <= now.unix_timestamp_nanos(),
                    "{question:?}"
                );
                assert_eq!(
                    &question[found.start..found.end],
                    found.text,
                    "{question:?}"
                );
            }
        }
        assert!(
            found_some > 100,
            "the generator should hit real expressions: {found_some}"
        );
        // Long and hostile inputs finish and stay in bounds.
        let long = "today since last 5 days between and ".repeat(2000);
        assert!(find_time_range(&long, SUNDAY).is_ok());
        let digits = format!("last {} days", "9".repeat(5000));
        assert!(matches!(
            find_time_range(&digits, SUNDAY),
            Err(TimeError::TooLong { .. })
        ));
    }
}
