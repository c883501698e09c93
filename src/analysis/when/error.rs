//! Why a time expression names no usable range: [`TimeError`], which names
//! the words, and the [`Fault`] found before the words are attached.

use crate::limits::TIME_RANGE_DAYS_MAX;

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

/// Why an expression names no range, before the words are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    Zero,
    TooLong,
    Invalid,
    EndBeforeStart,
    Future,
    NoStart,
    OutOfRange,
}

impl Fault {
    pub(super) fn with_text(self, text: String) -> TimeError {
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

#[cfg(test)]
mod tests {
    use crate::analysis::when::tests::{error, SUNDAY};

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
}
