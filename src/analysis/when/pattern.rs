//! The expression patterns (one regular expression and one rule per kind
//! of expression) and the atoms they find in a question.

use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use time::{Date, Duration, OffsetDateTime, Time};

use super::date::{clock, iso_date, month_name_date, timestamp, whole_month, whole_year};
use super::day::{named_day, part_of_today, weekend};
use super::error::Fault;
use super::range::Point;
use super::relative::{one_unit, rolling_quantity, this_period, units_ago};

/// One expression found in the question.
pub(super) struct Atom {
    pub(super) span: Range<usize>,
    pub(super) value: Result<Point, Fault>,
    /// Clock times ("09:00") count only after a connector: alone they are
    /// too often something else (a duration, a score, part of an address).
    pub(super) needs_connector: bool,
    /// A clock time's time of day, so a day named next to it ("yesterday
    /// between 9am and 5pm") can move it off today.
    pub(super) clock: Option<Time>,
    /// The day a whole-day expression names, for the clock times next to it.
    pub(super) day: Option<Date>,
}

type Rule = fn(&Captures<'_>, OffsetDateTime) -> Result<Point, Fault>;

/// Whether a match counts only after a connector.
type NeedsConnector = fn(&Captures<'_>) -> bool;

fn never(_: &Captures<'_>) -> bool {
    false
}

fn always(_: &Captures<'_>) -> bool {
    true
}

/// A month name alone ("march the changes", "who may have") is as often a
/// verb: it counts only with a year, a qualifier ("last May") or a
/// connector ("in March", "since May").
fn bare_month(caps: &Captures<'_>) -> bool {
    caps.name("which").is_none() && caps.name("y").is_none()
}

/// Patterns shared by the rules below.
const ONES: &str = "one|two|three|four|five|six|seven|eight|nine";
const UNIT_WORDS: &str =
    "minutes?|mins?|hours?|hrs?|days?|weeks?|wks?|fortnights?|months?|years?|yrs?";
const MONTHS: &str = "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";
const WEEKDAYS: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";
const POSSESSIVE: &str = "(?:'s|\u{2019}s)?";

/// A quantity: digits with any unit (`24h`, `7 days`), or a number word
/// with a spelled-out unit (`twenty-four hours`, `an hour`).
fn quantity() -> String {
    format!(
        r"(?:(?P<num>\d+)\s*(?P<unit>{UNIT_WORDS}|mo|m|h|d|w|y)|(?P<wnum>(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s-]+(?:{ONES}))?|a\s+couple\s+of|couple\s+of|a\s+dozen|dozen|a\s+hundred|hundred|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|{ONES}|an|a)\s+(?P<wunit>{UNIT_WORDS}))\b"
    )
}

static RULES: LazyLock<Vec<(Regex, Rule, NeedsConnector)>> = LazyLock::new(|| {
    let q = quantity();
    let rules: [(String, Rule, NeedsConnector); 14] = [
        (
            format!(r"\b(?:(?:in|over|during|within|for)\s+)?(?:the\s+)?(?:last|past|previous|prior)\s+{q}"),
            rolling_quantity,
            never,
        ),
        (format!(r"\b{q}\s+ago\b"), units_ago, never),
        (
            format!(r"\b(?P<pre>(?:in|over|during|within|for)\s+)?(?P<the>the\s+)?(?P<this>this\s+)?(?P<which>last|past|previous|prior)\s+(?P<unit>minute|hour|day|week|fortnight|month|year){POSSESSIVE}\b"),
            one_unit,
            never,
        ),
        (
            format!(r"\b(?P<which>this|current)\s+(?P<unit>week|month|year){POSSESSIVE}\b"),
            this_period,
            never,
        ),
        (
            format!(r"\b(?:(?P<dby>(?:the\s+)?day\s+before\s+yesterday)|(?P<yday>yesterday)|(?P<today>today)|(?:(?P<wdq>last|this|past)\s+)?(?P<wd>{WEEKDAYS})){POSSESSIVE}(?:\s+(?P<part>morning|afternoon|evening|night))?\b"),
            named_day,
            never,
        ),
        (
            format!(r"\b(?:this\s+(?P<part>morning|afternoon|evening)|(?P<tonight>tonight)|(?P<lastnight>last\s+night|overnight)){POSSESSIVE}\b"),
            part_of_today,
            never,
        ),
        (
            r"\b(?P<which>this|last|past|previous|the)\s+weekend\b".to_owned(),
            weekend,
            never,
        ),
        (
            r"\b(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?".to_owned(),
            timestamp,
            never,
        ),
        (
            r"\b(?P<y>\d{4})[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})\b(?:\s+(?P<part>morning|afternoon|evening|night)\b)?".to_owned(),
            iso_date,
            never,
        ),
        (
            format!(r"\b(?:(?P<m1>{MONTHS})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y1>\d{{4}}))?|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{MONTHS})\.?(?:,?\s+(?P<y2>\d{{4}}))?)\b"),
            month_name_date,
            never,
        ),
        (
            r"\b(?:(?P<which>last|this|past|previous)\s+)?(?P<m>january|february|march|april|may|june|july|august|september|october|november|december)(?:,?\s+(?P<y>\d{4}))?\b".to_owned(),
            whole_month,
            bare_month,
        ),
        (
            r"\b(?P<y>(?:19|20)\d{2})\b".to_owned(),
            whole_year,
            always,
        ),
        (
            r"\b(?:(?P<h>\d{1,2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?\s*(?P<ampm>[ap]\.m\.|[ap]m\b)|(?P<h24>\d{1,2}):(?P<mi24>\d{2})(?::(?P<s24>\d{2}))?\b|(?P<noon>noon|midday)\b|(?P<midnight>midnight)\b)".to_owned(),
            clock,
            always,
        ),
        (
            // A bare hour that takes the a.m. or p.m. of the clock time it
            // is paired with ("between 2 and 4 a.m."); only the hour is the
            // atom (`head`), the other end is matched again on its own.
            r"\b(?P<head>(?P<h>\d{1,2}))\s*(?:and|to|until|till|through|-|\u{2013})\s*\d{1,2}(?::\d{2})?\s*(?P<ampm>[ap]\.m\.|[ap]m\b)".to_owned(),
            clock,
            always,
        ),
    ];
    rules
        .into_iter()
        .map(|(pattern, rule, needs_connector)| {
            let regex = Regex::new(&format!("(?i){pattern}"))
                .unwrap_or_else(|e| panic!("time pattern {pattern:?}: {e}"));
            (regex, rule, needs_connector)
        })
        .collect()
});

pub(super) fn find_atoms(question: &str, now: OffsetDateTime) -> Vec<Atom> {
    let mut atoms = Vec::new();
    for (regex, rule, needs_connector) in RULES.iter() {
        for caps in regex.captures_iter(question) {
            // A rule may name the atom's own part (`head`) within what it
            // matched.
            let Some(whole) = caps.name("head").or_else(|| caps.get(0)) else {
                continue;
            };
            let value = rule(&caps, now);
            let needs_connector = needs_connector(&caps);
            // Clock times are the instants that need a connector (a full
            // timestamp needs none and keeps its own date).
            let clock = match value {
                Ok(Point::Instant(at)) if needs_connector => Some(at.time()),
                _ => None,
            };
            let day = match value {
                Ok(Point::Window(from, to))
                    if from.time() == Time::MIDNIGHT && to - from == Duration::DAY =>
                {
                    Some(from.date())
                }
                _ => None,
            };
            atoms.push(Atom {
                span: whole.range(),
                value,
                needs_connector,
                clock,
                day,
            });
        }
    }
    atoms.sort_by_key(|a| (a.span.start, a.span.end));
    atoms
}
