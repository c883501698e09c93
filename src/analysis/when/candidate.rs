//! The readings of the atoms found in a question: alone, after a
//! connector ("since", "after", "until"), in pairs ("between X and Y",
//! "from X to Y"), and with clock times moved onto a day named beside them.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::pattern::Atom;

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

/// How a candidate reads its atom(s).
#[derive(Clone)]
pub(super) enum Form {
    /// The atom alone, or after "on"/"at"/"during"/"for".
    Bare(usize),
    Since(usize),
    After(usize),
    Until(usize),
    Pair(usize, usize),
}

pub(super) struct Candidate {
    pub(super) span: Range<usize>,
    pub(super) form: Form,
    /// The atom naming the day its clock times fall on; without one they
    /// are today.
    pub(super) on_day: Option<usize>,
}

impl Form {
    fn atoms(&self) -> [Option<usize>; 2] {
        match *self {
            Form::Bare(i) | Form::Since(i) | Form::After(i) | Form::Until(i) => [Some(i), None],
            Form::Pair(a, b) => [Some(a), Some(b)],
        }
    }
}

pub(super) fn candidates(question: &str, atoms: &[Atom]) -> Vec<Candidate> {
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

#[cfg(test)]
mod tests {
    use crate::analysis::when::tests::{check, SUNDAY};

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
}
