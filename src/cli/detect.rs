//! `ironlog detect`: the analysis node's anomaly detector run over a native
//! audit log file on this machine, without a cluster and without appending
//! anything: to see what a log would raise before ingesting it, or to try
//! the detection catalogue on an export.
//!
//! Records are read as `ingest` reads them and observed in file order, each
//! with its rule category (the model is not loaded, so an event no rule
//! decides counts as `other`). A record that cannot be mapped is reported
//! and skipped. Prints one line per flag raised, then a count; with
//! `--json`, one object per change to an incident, as the analysis node
//! reports them: the record observed, the incident (id and key), the
//! records it newly lists (`added`), and the flags the record raised on it
//! (kind, score, actor, reason, and the records each cites), and the
//! records it newly lists as context (`context`). Records are
//! numbered as in the file, from 1.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::analysis::anomaly::{Catalogue, Detector, DetectorConfig};
use crate::analysis::category::{rule_category, Category};
use crate::ingest::{read_events, Format};
use crate::node::read_detection_tables;

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The file's native format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Print only flags scoring at least this (0 to 1; 0.5 is the review
    /// band, 0.8 look now).
    #[arg(long, default_value_t = 0.0)]
    pub min_score: f32,
    /// Use the detections of these tables (TOML, the format of
    /// src/analysis/anomaly/catalogue.rs) instead of the built-in catalogue;
    /// repeatable.
    #[arg(long, value_name = "TABLE")]
    pub catalogue: Vec<PathBuf>,
    /// The log file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(global: &Global, args: &DetectArgs) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.min_score) {
        return Err(CliError::Usage(format!(
            "--min-score {} is outside 0..=1",
            args.min_score
        )));
    }
    let file = File::open(&args.file)
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let catalogue = if args.catalogue.is_empty() {
        Catalogue::builtin()
    } else {
        Arc::new(read_detection_tables(&args.catalogue, false).map_err(CliError::Usage)?)
    };
    let detections = catalogue.len();
    let mut detector = Detector::with_catalogue(DetectorConfig::default(), catalogue);
    // Entry i of the detector is the i-th record that mapped; `records`
    // turns it back into the record number the user can find in the file.
    let mut records: Vec<u64> = Vec::new();
    let (mut flags, mut skipped) = (0u64, 0u64);
    for item in read_events(args.format, BufReader::new(file)) {
        let (record, event) = match item {
            Ok(found) => found,
            Err(e) if e.record().is_some() => {
                skipped += 1;
                eprintln!("skipped: {e}");
                continue;
            }
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "cannot read {}: {e}",
                    args.file.display()
                )))
            }
        };
        let index = records.len() as u64;
        records.push(record);
        let category = rule_category(&event).map_or(Category::Other, |v| v.category);
        for update in detector.observe(index, &event, category) {
            let raised: Vec<_> = update
                .flags
                .iter()
                .filter(|f| f.score >= args.min_score)
                .collect();
            flags += raised.len() as u64;
            let as_records = |entries: &[u64]| -> Vec<u64> {
                entries
                    .iter()
                    .filter_map(|i| records.get(*i as usize).copied())
                    .collect()
            };
            if global.json {
                // Every update, joins included, so that a reader can rebuild
                // each incident whole.
                let raised: Vec<_> = raised
                    .iter()
                    .map(|f| {
                        json!({
                            "kind": f.kind.as_str(),
                            "score": f.score,
                            "actor": f.actor,
                            "reason": f.reason,
                            "records": as_records(&f.entries),
                        })
                    })
                    .collect();
                print_json(&json!({
                    "record": record,
                    "incident": update.id,
                    "incident_key": update.key.to_string(),
                    "added": as_records(&update.added),
                    "context": as_records(&update.context),
                    "flags": raised,
                }))?;
            } else {
                for flag in raised {
                    print_line(&format!(
                        "record {record}: {:.2} {} (incident {}): {}",
                        flag.score,
                        flag.kind.as_str(),
                        update.id,
                        flag.reason
                    ))?;
                }
            }
        }
    }
    let summary = format!(
        "{flags} flag(s) over {} record(s) of {}; {skipped} record(s) skipped; {} detections in the catalogue",
        records.len(),
        args.file.display(),
        detections
    );
    if global.json {
        eprintln!("{summary}");
    } else {
        print_line(&summary)?;
    }
    Ok(())
}
