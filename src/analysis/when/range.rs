//! What an expression names: a window or an instant before connectors
//! apply ([`Point`]), the [`TimeRange`] a reading resolves to, cut at now
//! and checked against the limits, and the [`TimeMatch`] that reports it.

use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::candidate::{Candidate, Form};
use super::error::Fault;
use super::pattern::Atom;
use crate::limits::TIME_RANGE_DAYS_MAX;

/// A half-open range `[from, to)` of Unix nanoseconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_unix_nanos: i64,
    pub to_unix_nanos: i64,
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

/// What one expression names before connectors apply.
#[derive(Clone, Copy, Debug)]
pub(super) enum Point {
    Window(OffsetDateTime, OffsetDateTime),
    Instant(OffsetDateTime),
}

impl Point {
    pub(super) fn start(self) -> OffsetDateTime {
        match self {
            Point::Window(from, _) | Point::Instant(from) => from,
        }
    }

    pub(super) fn end(self) -> OffsetDateTime {
        match self {
            Point::Window(_, to) => to,
            Point::Instant(at) => at,
        }
    }
}

pub(super) fn resolve(
    candidate: &Candidate,
    atoms: &[Atom],
    now: OffsetDateTime,
) -> Result<TimeRange, Fault> {
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
