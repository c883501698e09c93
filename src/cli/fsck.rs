//! `ironlog fsck`: checks a stopped node's files offline with
//! [`crate::fsck`] and prints a verdict, or the whole report with
//! `--json`. Exits 0 only when nothing is wrong: 1 when problems were found,
//! 2 when the files could not be checked at all.

use std::path::PathBuf;

use clap::Args;

use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::fsck::{self, FsckError, FsckOptions, FsckReport, RedbCheck};
use crate::limits::{FSCK_PROBLEMS_MAX, FSCK_PROBLEMS_PRINTED_MAX};

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// The node's data directory (`data_dir` in its config). Stop the node
    /// first: fsck refuses a directory a running node holds.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// A verifier key to trust besides the voters in the stored membership,
    /// e.g. a former voter's (repeatable; the contents of a `.pub` file).
    #[arg(long = "vkey", value_name = "VKEY")]
    pub vkeys: Vec<String>,
    /// Skip redb's page checksum check, which runs on a temporary copy of
    /// the ledger file.
    #[arg(long)]
    pub skip_redb_check: bool,
}

/// Why `ironlog fsck` did not pass.
#[derive(Debug, thiserror::Error)]
pub enum FsckCliError {
    /// The files could not be checked (exit status 2).
    #[error(transparent)]
    Check(#[from] FsckError),
    /// The files were checked and are not intact (exit status 1); the
    /// report has been printed.
    #[error("fsck found {count} problem(s) in {}", path.display())]
    Problems { count: u64, path: PathBuf },
}

impl FsckCliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            FsckCliError::Check(_) => 2,
            FsckCliError::Problems { .. } => 1,
        }
    }
}

pub fn run(global: &Global, args: &FsckArgs) -> Result<(), CliError> {
    let options = FsckOptions {
        extra_vkeys: args.vkeys.clone(),
        redb_check: !args.skip_redb_check,
    };
    quiet_redb_panics();
    let report = fsck::check(&args.data_dir, &options).map_err(FsckCliError::Check)?;
    if global.json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
        value["ok"] = report.is_ok().into();
        print_json(&value)?;
    } else {
        for line in verdict(&report) {
            print_line(&line)?;
        }
    }
    if report.is_ok() {
        return Ok(());
    }
    Err(FsckCliError::Problems {
        count: report.problem_count(),
        path: report.ledger_file.clone(),
    }
    .into())
}

/// fsck turns redb's panics on a damaged file into problems it reports, so
/// the default hook's "thread panicked" text would only suggest that fsck
/// itself crashed. Panics raised anywhere else still print as usual.
fn quiet_redb_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info
            .location()
            .is_some_and(|at| at.file().contains("/redb-"));
        if !in_redb {
            previous(info);
        }
    }));
}

/// The verdict line, then notes or one line per problem (capped), then what
/// was checked.
pub fn verdict(report: &FsckReport) -> Vec<String> {
    let mut lines = Vec::new();
    if report.is_ok() {
        lines.push(format!(
            "fsck OK: {} entries, {} stored hashes, {} checkpoints, {} signatures verified",
            report.entries_checked,
            report.hashes_checked,
            report.checkpoints_checked,
            report.signatures_verified
        ));
    } else {
        let first = match (report.first_bad_leaf, report.first_bad_leaf_problem()) {
            (Some(leaf), Some(problem)) => format!("first bad leaf {leaf}: {}", problem.message),
            (Some(leaf), None) => format!("first bad leaf {leaf}"),
            (None, _) => report
                .problems
                .first()
                .map_or_else(String::new, ToString::to_string),
        };
        lines.push(format!("fsck FAILED: {first}"));
        for problem in report.problems.iter().take(FSCK_PROBLEMS_PRINTED_MAX) {
            lines.push(format!("  {problem}"));
        }
        let unshown =
            report.problem_count() - report.problems.len().min(FSCK_PROBLEMS_PRINTED_MAX) as u64;
        if unshown > 0 {
            lines.push(format!(
                "  ... and {unshown} more (--json lists the first {FSCK_PROBLEMS_MAX})"
            ));
        }
        lines.push(format!(
            "checked {} entries, {} stored hashes, {} checkpoints, {} signatures ({} verified), {} index rows",
            report.entries_checked,
            report.hashes_checked,
            report.checkpoints_checked,
            report.signatures_checked,
            report.signatures_verified,
            report.index_rows_checked
        ));
    }
    if report.recovered_copy {
        lines.push(
            "note: the file was not closed cleanly (did the node crash?); \
             a recovered private copy was checked"
                .to_string(),
        );
    }
    if let RedbCheck::Skipped { reason } = &report.redb_check {
        lines.push(format!(
            "note: redb's page checksum check was skipped: {reason}"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsck::{Problem, ProblemKind};

    fn problem(kind: ProblemKind, leaf_index: Option<u64>, message: &str) -> Problem {
        Problem {
            kind,
            leaf_index,
            checkpoint_size: None,
            message: message.to_string(),
        }
    }

    #[test]
    fn a_clean_report_is_one_ok_line() {
        let report = FsckReport {
            entries_checked: 3,
            hashes_checked: 4,
            checkpoints_checked: 1,
            signatures_verified: 2,
            redb_check: RedbCheck::Passed,
            ..Default::default()
        };
        assert_eq!(
            verdict(&report),
            ["fsck OK: 3 entries, 4 stored hashes, 1 checkpoints, 2 signatures verified"]
        );
    }

    #[test]
    fn a_failed_report_leads_with_the_first_bad_leaf_and_caps_its_lines() {
        let mut problems = vec![problem(ProblemKind::Meta, None, "meta is odd")];
        problems.push(problem(
            ProblemKind::LeafHashMismatch,
            Some(7),
            "leaf 7 bad",
        ));
        problems.push(problem(
            ProblemKind::LeafHashMismatch,
            Some(3),
            "leaf 3 bad",
        ));
        for i in 0..FSCK_PROBLEMS_PRINTED_MAX {
            problems.push(problem(ProblemKind::IndexRow, None, &format!("row {i}")));
        }
        let report = FsckReport {
            first_bad_leaf: Some(3),
            problems,
            problems_omitted: 5,
            ..Default::default()
        };
        let lines = verdict(&report);
        assert_eq!(lines[0], "fsck FAILED: first bad leaf 3: leaf 3 bad");
        assert_eq!(lines[1], "  meta: meta is odd");
        assert_eq!(lines[2], "  leaf_hash_mismatch at leaf 7: leaf 7 bad");
        assert_eq!(lines.len(), 1 + FSCK_PROBLEMS_PRINTED_MAX + 2, "{lines:#?}");
        assert!(
            lines[FSCK_PROBLEMS_PRINTED_MAX + 1].contains("and 8 more"),
            "{lines:#?}"
        );
    }
}
