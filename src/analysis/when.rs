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
//!   [`TIME_RANGE_DAYS_MAX`] days, dates and times that do not exist, ranges
//!   that end before they start, ranges wholly in the future.

use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use crate::limits::TIME_RANGE_DAYS_MAX;

/// A half-open range `[from, to)` of Unix nanoseconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_unix_nanos: i64,
    pub to_unix_nanos: i64,
}

impl TimeRange {
    pub fn contains(&self, unix_nanos: i64) -> bool {
        (self.from_unix_nanos..self.to_unix_nanos).contains(&unix_nanos)
    }
}

/// The time expression found in a question and the range it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeMatch {
    pub range: TimeRange,
    /// The words matched, as the analyst wrote them.
    pub text: String,
    /// Byte span of `text` in the question.
    pub start: usize,
    pub end: usize,
}

/// A time expression that names no usable range. Each names the words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("`{text}` names zero units of time; ask for at least one")]
    Zero { text: String },
    #[error("`{text}` spans more than {days_max} days (ten years); ask for less")]
    TooLong { text: String, days_max: i64 },
    #[error("`{text}` is not a real date or time")]
    Invalid { text: String },
    #[error("`{text}` ends before it starts")]
    EndBeforeStart { text: String },
    #[error("`{text}` is in the future; the ledger holds nothing after now")]
    Future { text: String },
    #[error("`{text}` gives an end but no start; say since when, or between what and what")]
    NoStart { text: String },
    #[error("`{text}` is outside the years the ledger's clock can hold (1678 to 2261)")]
    OutOfRange { text: String },
}

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

/// Why an expression names no range, before the words are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Zero,
    TooLong,
    Invalid,
    EndBeforeStart,
    Future,
    NoStart,
    OutOfRange,
}

impl Fault {
    fn with_text(self, text: String) -> TimeError {
        match self {
            Fault::Zero => TimeError::Zero { text },
            Fault::TooLong => TimeError::TooLong {
                text,
                days_max: TIME_RANGE_DAYS_MAX,
            },
            Fault::Invalid => TimeError::Invalid { text },
            Fault::EndBeforeStart => TimeError::EndBeforeStart { text },
            Fault::Future => TimeError::Future { text },
            Fault::NoStart => TimeError::NoStart { text },
            Fault::OutOfRange => TimeError::OutOfRange { text },
        }
    }
}

/// What one expression names before connectors apply.
#[derive(Clone, Copy, Debug)]
enum Point {
    Window(OffsetDateTime, OffsetDateTime),
    Instant(OffsetDateTime),
}

impl Point {
    fn start(self) -> OffsetDateTime {
        match self {
            Point::Window(from, _) | Point::Instant(from) => from,
        }
    }

    fn end(self) -> OffsetDateTime {
        match self {
            Point::Window(_, to) => to,
            Point::Instant(at) => at,
        }
    }
}

/// One expression found in the question.
struct Atom {
    span: Range<usize>,
    value: Result<Point, Fault>,
    /// Clock times ("09:00") count only after a connector: alone they are
    /// too often something else (a duration, a score, part of an address).
    needs_connector: bool,
    /// A clock time's time of day, so a day named next to it ("yesterday
    /// between 9am and 5pm") can move it off today.
    clock: Option<Time>,
    /// The day a whole-day expression names, for the clock times next to it.
    day: Option<Date>,
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
    let rules: [(String, Rule, NeedsConnector); 12] = [
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
            r"\b(?:(?P<h>\d{1,2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?\s*(?P<ampm>[ap]\.m\.|[ap]m\b)|(?P<h24>\d{1,2}):(?P<mi24>\d{2})(?::(?P<s24>\d{2}))?\b|(?P<noon>noon|midday)\b|(?P<midnight>midnight)\b)".to_owned(),
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

/// A connector right before an expression (matched against the few bytes
/// before it, so it must end there).
static CONNECTOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|\W)(?P<c>since|after|from|starting(?:\s+(?:from|on|at))?|beginning|on|at|during|for|in|until|till|til|before|up\s+to)\s+$")
        .unwrap_or_else(|e| panic!("connector pattern: {e}"))
});

/// What starts a pair ("between X and Y", "from X to Y").
static PAIR_OPENER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|\W)(?P<c>between|from)\s+$")
        .unwrap_or_else(|e| panic!("pair pattern: {e}"))
});

/// What joins the two ends of a pair; the whole gap must match.
static PAIR_JOINER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?P<j>and|to|until|till|through|thru|-|\u{2013}|\u{2014})\s*$")
        .unwrap_or_else(|e| panic!("joiner pattern: {e}"))
});

/// Bytes before an expression searched for its connector, and the widest
/// gap between the two ends of a pair: both are a word or two.
const CONNECTOR_WINDOW_BYTES: usize = 24;
const PAIR_GAP_BYTES_MAX: usize = 12;

fn find_atoms(question: &str, now: OffsetDateTime) -> Vec<Atom> {
    let mut atoms = Vec::new();
    for (regex, rule, needs_connector) in RULES.iter() {
        for caps in regex.captures_iter(question) {
            let Some(whole) = caps.get(0) else { continue };
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

/// How a candidate reads its atom(s).
#[derive(Clone)]
enum Form {
    /// The atom alone, or after "on"/"at"/"during"/"for".
    Bare(usize),
    Since(usize),
    After(usize),
    Until(usize),
    Pair(usize, usize),
}

struct Candidate {
    span: Range<usize>,
    form: Form,
    /// The atom naming the day its clock times fall on; without one they
    /// are today.
    on_day: Option<usize>,
}

impl Form {
    fn atoms(&self) -> [Option<usize>; 2] {
        match *self {
            Form::Bare(i) | Form::Since(i) | Form::After(i) | Form::Until(i) => [Some(i), None],
            Form::Pair(a, b) => [Some(a), Some(b)],
        }
    }
}

fn candidates(question: &str, atoms: &[Atom]) -> Vec<Candidate> {
    let mut out = plain_candidates(question, atoms);
    // Those with clock times again, moved onto a day named right before or
    // after them: "yesterday between 9am and 5pm", "since 14:00 on Friday".
    let on_days: Vec<Candidate> = out
        .iter()
        .filter(|c| {
            c.form
                .atoms()
                .iter()
                .flatten()
                .any(|&i| atoms[i].clock.is_some())
        })
        .filter_map(|c| {
            let (day, span) = day_next_to(question, atoms, &c.span)?;
            Some(Candidate {
                span,
                form: c.form.clone(),
                on_day: Some(day),
            })
        })
        .collect();
    out.extend(on_days);
    out
}

/// A whole-day atom right after `span` (a space, a comma or "on" between)
/// or right before it, and `span` grown to take it in.
fn day_next_to(
    question: &str,
    atoms: &[Atom],
    span: &Range<usize>,
) -> Option<(usize, Range<usize>)> {
    static AFTER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*,?\s*(?:on\s+)?$").unwrap_or_else(|e| panic!("day gap pattern: {e}"))
    });
    static BEFORE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*,?\s*$").unwrap_or_else(|e| panic!("day gap pattern: {e}"))
    });
    let gap_fits = |from: usize, to: usize, regex: &Regex| {
        to >= from
            && to - from <= PAIR_GAP_BYTES_MAX
            && question.get(from..to).is_some_and(|g| regex.is_match(g))
    };
    let after = atoms.iter().enumerate().find(|(_, a)| {
        a.day.is_some() && a.span.start >= span.end && gap_fits(span.end, a.span.start, &AFTER)
    });
    if let Some((i, a)) = after {
        return Some((i, span.start..a.span.end));
    }
    let before = atoms.iter().enumerate().find(|(_, a)| {
        a.day.is_some() && a.span.end <= span.start && gap_fits(a.span.end, span.start, &BEFORE)
    });
    before.map(|(i, a)| {
        // "on 2026-11-03 at 10:30" takes its "on" too.
        let start = match connector_before(question, a.span.start, &CONNECTOR) {
            Some((start, word)) if word == "on" => start,
            _ => a.span.start,
        };
        (i, start..span.end)
    })
}

/// Every reading of each atom: alone, after a connector, and in pairs.
fn plain_candidates(question: &str, atoms: &[Atom]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, atom) in atoms.iter().enumerate() {
        if !atom.needs_connector {
            out.push(Candidate {
                span: atom.span.clone(),
                form: Form::Bare(i),
                on_day: None,
            });
        }
        if let Some((start, word)) = connector_before(question, atom.span.start, &CONNECTOR) {
            let form = match word.as_str() {
                "since" | "from" | "beginning" => Form::Since(i),
                w if w.starts_with("starting") => Form::Since(i),
                "after" => Form::After(i),
                "until" | "till" | "til" | "before" => Form::Until(i),
                w if w.starts_with("up") => Form::Until(i),
                _ => Form::Bare(i),
            };
            out.push(Candidate {
                span: start..atom.span.end,
                form,
                on_day: None,
            });
        }
        // Pairs: the next atoms that start within a short gap.
        let first_after = atoms.partition_point(|b| b.span.start < atom.span.end);
        for (j, other) in atoms.iter().enumerate().skip(first_after) {
            if other.span.start > atom.span.end + PAIR_GAP_BYTES_MAX {
                break;
            }
            let Some(gap) = question.get(atom.span.end..other.span.start) else {
                continue;
            };
            let Some(joiner) = PAIR_JOINER.captures(gap).and_then(|c| c.get(1)) else {
                continue;
            };
            let opener = connector_before(question, atom.span.start, &PAIR_OPENER);
            let start = match (&opener, joiner.as_str().to_ascii_lowercase().as_str()) {
                (Some((start, word)), j) if word == "between" || j != "and" => *start,
                // "Monday to Wednesday" needs no opener; "X and Y" does.
                (None, j) if j != "and" && !atom.needs_connector => atom.span.start,
                _ => continue,
            };
            out.push(Candidate {
                span: start..other.span.end,
                form: Form::Pair(i, j),
                on_day: None,
            });
        }
    }
    out
}

/// The connector that ends right at `at`: its start and its word, lower
/// case. Only a few bytes before `at` are searched, so a long question
/// costs no more per expression than a short one.
fn connector_before(question: &str, at: usize, regex: &Regex) -> Option<(usize, String)> {
    let mut window_start = at.saturating_sub(CONNECTOR_WINDOW_BYTES);
    while !question.is_char_boundary(window_start) {
        window_start += 1;
    }
    let window = question.get(window_start..at)?;
    let word = regex.captures(window)?.name("c")?;
    // The window may begin mid-word; `^` there is not a real word start.
    let glued = word.start() == 0
        && window_start > 0
        && question[..window_start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
    (!glued).then(|| {
        let text = word.as_str().to_ascii_lowercase();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (window_start + word.start(), text)
    })
}

fn resolve(candidate: &Candidate, atoms: &[Atom], now: OffsetDateTime) -> Result<TimeRange, Fault> {
    let day = match candidate.on_day {
        Some(d) => Some(atoms.get(d).and_then(|a| a.day).ok_or(Fault::Invalid)?),
        None => None,
    };
    let point = |i: usize| {
        let atom = atoms.get(i).ok_or(Fault::Invalid)?;
        match (atom.clock, day) {
            (Some(time), Some(day)) => Ok(Point::Instant(
                PrimitiveDateTime::new(day, time).assume_utc(),
            )),
            _ => atom.value,
        }
    };
    let form = &candidate.form;
    // `open`: the range runs to now, so a start past now is in the future
    // rather than after its end.
    let (from, to, open) = match *form {
        Form::Bare(i) => match point(i)? {
            Point::Window(from, to) => (from, to, false),
            Point::Instant(at) => (
                at,
                at.checked_add(Duration::MINUTE).ok_or(Fault::OutOfRange)?,
                false,
            ),
        },
        Form::Since(i) => (point(i)?.start(), now, true),
        Form::After(i) => (point(i)?.end(), now, true),
        Form::Until(i) => {
            point(i)?;
            return Err(Fault::NoStart);
        }
        Form::Pair(a, b) => (point(a)?.start(), point(b)?.end(), false),
    };
    if to <= from {
        return Err(if open || from >= now {
            Fault::Future
        } else {
            Fault::EndBeforeStart
        });
    }
    let to = to.min(now);
    if to <= from {
        return Err(Fault::Future);
    }
    if to - from > Duration::days(TIME_RANGE_DAYS_MAX) {
        return Err(Fault::TooLong);
    }
    Ok(TimeRange {
        from_unix_nanos: unix_nanos(from)?,
        to_unix_nanos: unix_nanos(to)?,
    })
}

fn unix_nanos(t: OffsetDateTime) -> Result<i64, Fault> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| Fault::OutOfRange)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
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
    fn parse(word: &str) -> Option<(Unit, u64)> {
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
fn quantity_of(caps: &Captures<'_>) -> Result<(u64, Unit), Fault> {
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
fn minus_units(t: OffsetDateTime, count: u64, unit: Unit) -> Option<OffsetDateTime> {
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
fn shift_month(year: i32, month: Month, delta: i64) -> Option<(i32, Month)> {
    let index = i64::from(year)
        .checked_mul(12)?
        .checked_add(i64::from(month as u8) - 1)?
        .checked_add(delta)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    Some((year, month))
}

fn midnight(date: Date) -> OffsetDateTime {
    date.midnight().assume_utc()
}

fn week_start(date: Date) -> Option<Date> {
    date.checked_sub(Duration::days(i64::from(
        date.weekday().number_days_from_monday(),
    )))
}

fn month_start(year: i32, month: Month) -> Option<Date> {
    Date::from_calendar_date(year, month, 1).ok()
}

/// The calendar unit holding `t`, as a window.
fn unit_window(t: OffsetDateTime, unit: Unit) -> Option<Point> {
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

fn rolling_quantity(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (count, unit) = quantity_of(caps)?;
    let from = minus_units(now, count, unit).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(from, now))
}

fn units_ago(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let (count, unit) = quantity_of(caps)?;
    let then = minus_units(now, count, unit).ok_or(Fault::OutOfRange)?;
    unit_window(then, unit).ok_or(Fault::OutOfRange)
}

/// "last hour", "the past day", "last week", "in the last month", "this
/// past year": rolling, except bare last/previous/prior week, month or
/// year, which is the previous calendar one.
fn one_unit(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn this_period(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
    let word = caps.name("unit").map_or("", |m| m.as_str());
    let (unit, _) = Unit::parse(word).ok_or(Fault::Invalid)?;
    let window = unit_window(now, unit).ok_or(Fault::OutOfRange)?;
    Ok(Point::Window(window.start(), now))
}

/// A named day, optionally narrowed to a part of it.
fn named_day(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn day_part(day: Date, part: Option<&str>) -> Result<Point, Fault> {
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
fn part_of_today(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn weekend(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn timestamp(caps: &Captures<'_>, _now: OffsetDateTime) -> Result<Point, Fault> {
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

fn iso_date(caps: &Captures<'_>, _now: OffsetDateTime) -> Result<Point, Fault> {
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
fn month_name_date(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn whole_month(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
fn clock(caps: &Captures<'_>, now: OffsetDateTime) -> Result<Point, Fault> {
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
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    /// Sunday 2026-11-29 14:00 UTC.
    const SUNDAY: OffsetDateTime = datetime!(2026-11-29 14:00:00 UTC);
    /// Monday 2026-11-30 09:00 UTC.
    const MONDAY: OffsetDateTime = datetime!(2026-11-30 09:00:00 UTC);
    /// Sunday 2026-11-29 22:30 UTC, for the evening.
    const SUNDAY_NIGHT: OffsetDateTime = datetime!(2026-11-29 22:30:00 UTC);

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
    fn check(now: OffsetDateTime, cases: &[(&str, &str, &str, &str)]) {
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

    fn error(question: &str, now: OffsetDateTime) -> TimeError {
        match find_time_range(question, now) {
            Err(e) => e,
            Ok(found) => panic!("{question:?} should be refused, got {found:?}"),
        }
    }

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

    #[test]
    fn clock_times_fall_on_a_day_named_beside_them() {
        check(
            SUNDAY,
            &[
                (
                    "yesterday between 9am and 5pm",
                    "",
                    "2026-11-28 09:00",
                    "2026-11-28 17:00",
                ),
                (
                    "between 9am and 5pm yesterday",
                    "",
                    "2026-11-28 09:00",
                    "2026-11-28 17:00",
                ),
                ("since 14:00 on Friday", "", "2026-11-27 14:00", "now"),
                (
                    "on 2026-11-03 at 10:30",
                    "",
                    "2026-11-03 10:30",
                    "2026-11-03 10:31",
                ),
                (
                    "from 22:00 to 23:30 on Nov 3",
                    "",
                    "2026-11-03 22:00",
                    "2026-11-03 23:30",
                ),
                // No day beside them: today.
                (
                    "between 9am and 11am",
                    "",
                    "2026-11-29 09:00",
                    "2026-11-29 11:00",
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
    fn absurd_and_impossible_ranges_are_refused_with_their_words() {
        // (question, the words the error must name, the kind expected)
        let cases = [
            ("last 0 days", "last 0 days", "Zero"),
            ("0 hours ago", "0 hours ago", "Zero"),
            ("last 11 years", "last 11 years", "TooLong"),
            (
                "last 99999999999999999999 days",
                "last 99999999999999999999 days",
                "TooLong",
            ),
            ("since 2010-01-01", "since 2010-01-01", "TooLong"),
            ("on 2026-02-30", "on 2026-02-30", "Invalid"),
            ("on February 30", "on February 30", "Invalid"),
            ("since 25:00", "since 25:00", "Invalid"),
            (
                "between 2026-11-03 and 2026-11-01",
                "between 2026-11-03 and 2026-11-01",
                "EndBeforeStart",
            ),
            ("since 2026-12-01", "since 2026-12-01", "Future"),
            ("after 14:30", "after 14:30", "Future"),
            ("logins before Monday", "before Monday", "NoStart"),
        ];
        for (question, words, kind) in cases {
            let e = error(question, SUNDAY);
            let got = format!("{e:?}");
            assert!(got.starts_with(kind), "{question:?}: {got}");
            assert!(
                e.to_string().contains(&format!("`{words}`")),
                "{question:?}: {e}"
            );
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
