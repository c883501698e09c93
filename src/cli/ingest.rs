//! `ironlog ingest`: a native audit log file (CloudTrail, k8s audit, auditd,
//! Okta, GCP, GitHub, or Ironlog JSON lines) appended as events.
//!
//! Two passes over the file, each streaming record by record
//! ([`crate::ingest::read_events`]): the first maps and counts every record
//! and, unless `--skip-invalid`, refuses the whole file at the first bad
//! one, so nothing of a bad file is appended; the second maps again and
//! appends in batches behind a progress bar. Standard input is spooled to a
//! temporary file so it can be read twice.
//!
//! Every event carries an idempotency key derived from its record, so a
//! re-run (after an interruption, or by mistake) appends only what is not
//! in the ledger yet.

use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::append::{send_batch, Batcher, BATCH_EVENTS_DEFAULT};
use super::client::{self, StatusError};
use super::output::{event_line, print_json, print_line};
use super::{CliError, Global};
use crate::ingest::{read_events, Format, IngestError};
use crate::limits;
use crate::proto;

/// How often the progress bar redraws, ms: smooth enough to read records/s,
/// rare enough to cost nothing.
const PROGRESS_TICK_MS: u64 = 100;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The file's native format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Events per Append call.
    #[arg(long, default_value_t = BATCH_EVENTS_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=limits::BATCH_EVENTS_MAX as u64))]
    pub batch_events: u64,
    /// Print the mapped events as Ironlog JSON lines instead of appending.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip records that cannot be mapped (each is reported) instead of
    /// refusing the file.
    #[arg(long)]
    pub skip_invalid: bool,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// The log file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Why a file was not (fully) ingested. Only `Incomplete` leaves some of
/// it in the ledger; re-running the same command completes it.
#[derive(Debug, thiserror::Error)]
pub enum IngestCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not valid {format}; nothing was appended (--skip-invalid skips bad records)"
    )]
    Invalid {
        path: PathBuf,
        format: Format,
        #[source]
        source: IngestError,
    },
    #[error("{path} holds no records")]
    Empty { path: PathBuf },
    #[error("none of the {invalid} records of {path} could be mapped; nothing was appended")]
    NoneValid { path: PathBuf, invalid: u64 },
    #[error("{path} changed while it was being ingested (the second read differs from the first)")]
    Changed { path: PathBuf },
    #[error(
        "ingest stopped after {acknowledged} of {total} records were appended \
         (run the same command again: records already in the ledger are not appended twice)"
    )]
    Incomplete {
        acknowledged: u64,
        total: u64,
        #[source]
        source: StatusError,
    },
}

/// What the ledger said about the appended records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub records: u64,
    pub new: u64,
    pub already_present: u64,
    pub skipped: u64,
    /// Lowest and highest leaf index of the records, new or not.
    pub indices: Option<(u64, u64)>,
    pub tree_size: u64,
}

impl Ingested {
    fn add(&mut self, response: &proto::AppendResponse) {
        for (i, &index) in response.indices.iter().enumerate() {
            self.records += 1;
            if response.deduplicated.get(i).copied().unwrap_or(false) {
                self.already_present += 1;
            } else {
                self.new += 1;
            }
            self.indices = Some(match self.indices {
                None => (index, index),
                Some((lo, hi)) => (lo.min(index), hi.max(index)),
            });
        }
        self.tree_size = self.tree_size.max(response.tree_size);
    }
}

pub async fn run(global: &Global, args: &IngestArgs) -> Result<(), CliError> {
    let input = Input::open(&args.file)?;
    if args.dry_run {
        return dry_run(args, &input);
    }
    let counts = validate(args, &input)?;
    let channel = client::connect(&global.credentials, &global.endpoint).await?;
    let bar = progress_bar(counts.valid, args.no_progress);
    let result = append_all(args, &input, client::ledger(channel), counts, &bar).await;
    bar.finish_and_clear();
    let ingested = result?;
    report(args, &ingested, global.json)
}

/// The records of a file, readable twice.
struct Input {
    path: PathBuf,
    /// Standard input, copied here; removed when dropped.
    spool: Option<tempfile::NamedTempFile>,
}

impl Input {
    fn open(path: &Path) -> Result<Input, IngestCliError> {
        let read_error = |source| IngestCliError::Read {
            path: path.to_path_buf(),
            source,
        };
        if path != Path::new("-") {
            // Fail early, before any pass, on a missing or unreadable file.
            File::open(path).map_err(read_error)?;
            return Ok(Input {
                path: path.to_path_buf(),
                spool: None,
            });
        }
        let mut spool = tempfile::NamedTempFile::new().map_err(read_error)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool).map_err(read_error)?;
        Ok(Input {
            path: path.to_path_buf(),
            spool: Some(spool),
        })
    }

    fn events(
        &self,
        format: Format,
    ) -> Result<
        impl Iterator<Item = Result<(u64, crate::ledger::event::Event), IngestError>>,
        IngestCliError,
    > {
        let file_path = self
            .spool
            .as_ref()
            .map_or(self.path.as_path(), |s| s.path());
        let file = File::open(file_path).map_err(|source| IngestCliError::Read {
            path: self.path.clone(),
            source,
        })?;
        Ok(read_events(format, BufReader::new(file)))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    valid: u64,
    invalid: u64,
}

/// The first pass: every record mapped and counted. Without
/// `--skip-invalid` the first bad record refuses the file; with it each bad
/// record is reported on stderr (the first few) and counted.
fn validate(args: &IngestArgs, input: &Input) -> Result<Counts, IngestCliError> {
    let mut counts = Counts::default();
    for result in input.events(args.format)? {
        match result {
            Ok(_) => counts.valid += 1,
            Err(IngestError::Read(source)) => {
                return Err(IngestCliError::Read {
                    path: input.path.clone(),
                    source,
                })
            }
            Err(e) if args.skip_invalid => {
                counts.invalid += 1;
                report_skipped(&e, counts.invalid);
            }
            Err(source) => {
                return Err(IngestCliError::Invalid {
                    path: input.path.clone(),
                    format: args.format,
                    source,
                })
            }
        }
    }
    if counts.invalid as usize > limits::INGEST_ERRORS_PRINTED_MAX {
        eprintln!(
            "skipping {} invalid records in all ({} not shown)",
            counts.invalid,
            counts.invalid as usize - limits::INGEST_ERRORS_PRINTED_MAX
        );
    }
    match counts {
        Counts {
            valid: 0,
            invalid: 0,
        } => Err(IngestCliError::Empty {
            path: input.path.clone(),
        }),
        Counts { valid: 0, invalid } => Err(IngestCliError::NoneValid {
            path: input.path.clone(),
            invalid,
        }),
        counts => Ok(counts),
    }
}

fn report_skipped(error: &IngestError, nth: u64) {
    if nth as usize <= limits::INGEST_ERRORS_PRINTED_MAX {
        eprintln!("skipping {error}");
    }
}

/// Hidden unless stderr is a terminal and the user did not opt out.
fn progress_bar(total: u64, no_progress: bool) -> ProgressBar {
    let target = if no_progress || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    // The template is a constant; a bad one would only lose the styling.
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} records ({rate}, ETA {eta})",
    ) {
        // indicatif's own {per_sec} prints four decimals.
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} records/s", state.per_sec());
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(PROGRESS_TICK_MS));
    bar
}

/// The second pass: map again and append in batches.
async fn append_all(
    args: &IngestArgs,
    input: &Input,
    mut ledger: proto::ledger_client::LedgerClient<client::Conn>,
    counts: Counts,
    bar: &ProgressBar,
) -> Result<Ingested, CliError> {
    let mut ingested = Ingested::default();
    let mut batcher = Batcher::new(args.batch_events as usize);
    for result in input.events(args.format)? {
        let event = match result {
            Ok((_, event)) => event,
            Err(IngestError::Read(source)) => {
                return Err(IngestCliError::Read {
                    path: input.path.clone(),
                    source,
                }
                .into())
            }
            Err(_) if args.skip_invalid => {
                ingested.skipped += 1;
                continue;
            }
            // The first pass found no bad record.
            Err(_) => {
                return Err(IngestCliError::Changed {
                    path: input.path.clone(),
                }
                .into())
            }
        };
        if let Some(batch) = batcher.push(&event) {
            send(&mut ledger, batch, &mut ingested, counts.valid).await?;
            bar.set_position(ingested.records);
        }
    }
    if let Some(batch) = batcher.finish() {
        send(&mut ledger, batch, &mut ingested, counts.valid).await?;
        bar.set_position(ingested.records);
    }
    if ingested.records != counts.valid || ingested.skipped != counts.invalid {
        return Err(IngestCliError::Changed {
            path: input.path.clone(),
        }
        .into());
    }
    Ok(ingested)
}

async fn send(
    ledger: &mut proto::ledger_client::LedgerClient<client::Conn>,
    batch: Vec<proto::Event>,
    ingested: &mut Ingested,
    total: u64,
) -> Result<(), CliError> {
    let acknowledged = ingested.records;
    let response = send_batch(ledger, batch, false, acknowledged as usize, |status| {
        IngestCliError::Incomplete {
            acknowledged,
            total,
            source: StatusError(status),
        }
        .into()
    })
    .await?;
    ingested.add(&response);
    Ok(())
}

/// `--dry-run`: each mapped event as an Ironlog JSON line on stdout.
fn dry_run(args: &IngestArgs, input: &Input) -> Result<(), CliError> {
    let mut counts = Counts::default();
    for result in input.events(args.format)? {
        match result {
            Ok((_, event)) => {
                counts.valid += 1;
                print_json(&event_line(&event))?;
            }
            Err(IngestError::Read(source)) => {
                return Err(IngestCliError::Read {
                    path: input.path.clone(),
                    source,
                }
                .into())
            }
            Err(e) if args.skip_invalid => {
                counts.invalid += 1;
                report_skipped(&e, counts.invalid);
            }
            Err(source) => {
                return Err(IngestCliError::Invalid {
                    path: input.path.clone(),
                    format: args.format,
                    source,
                }
                .into())
            }
        }
    }
    if counts.invalid > 0 {
        eprintln!("{} invalid records skipped", counts.invalid);
    }
    Ok(())
}

fn report(args: &IngestArgs, ingested: &Ingested, json: bool) -> Result<(), CliError> {
    if json {
        let (first, last) = ingested.indices.unzip();
        return print_json(&serde_json::json!({
            "file": args.file.display().to_string(),
            "format": args.format.name(),
            "records": ingested.records,
            "new": ingested.new,
            "already_present": ingested.already_present,
            "skipped": ingested.skipped,
            "first_index": first,
            "last_index": last,
            "tree_size": ingested.tree_size,
        }));
    }
    print_line(&summary(&args.file, ingested))
}

/// `ingested 103 records (101 new, 2 already present) from FILE as entries 0..102`.
pub fn summary(file: &Path, ingested: &Ingested) -> String {
    let records = match ingested.records {
        1 => "1 record".to_string(),
        n => format!("{n} records"),
    };
    let entries = match ingested.indices {
        Some((lo, hi)) if lo == hi => format!(" as entry {lo}"),
        Some((lo, hi)) => format!(" as entries {lo}..{hi}"),
        None => String::new(),
    };
    let skipped = match ingested.skipped {
        0 => String::new(),
        n => format!("; skipped {n} invalid"),
    };
    format!(
        "ingested {records} ({} new, {} already present) from {}{entries}{skipped}",
        ingested.new,
        ingested.already_present,
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_naturally() {
        let mut ingested = Ingested::default();
        ingested.add(&proto::AppendResponse {
            indices: vec![5, 6, 2],
            deduplicated: vec![false, false, true],
            tree_size: 7,
            ..Default::default()
        });
        assert_eq!(
            (ingested.records, ingested.new, ingested.already_present),
            (3, 2, 1)
        );
        assert_eq!(
            summary(Path::new("ct.json"), &ingested),
            "ingested 3 records (2 new, 1 already present) from ct.json as entries 2..6"
        );
        ingested.skipped = 4;
        assert!(summary(Path::new("x"), &ingested).ends_with("; skipped 4 invalid"));
        let one = Ingested {
            records: 1,
            new: 1,
            indices: Some((9, 9)),
            ..Default::default()
        };
        assert_eq!(
            summary(Path::new("x"), &one),
            "ingested 1 record (1 new, 0 already present) from x as entry 9"
        );
    }
}
