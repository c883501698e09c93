//! `ironlog get`, `tail` and `query`: reading committed entries.
//!
//! Every entry printed has had its leaf hash recomputed from its leaf bytes,
//! so what is shown is what the Merkle tree commits to.

use clap::Args;

use super::client;
use super::output::{entry_json, print_entry, print_json, print_line};
use super::{CliError, Global};
use crate::clock::now_unix_nanos;
use crate::ingest::event_json::parse_rfc3339;
use crate::ledger::event::Outcome;
use crate::ledger::merkle;
use crate::limits;
use crate::proto;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// First leaf index.
    pub start: u64,
    /// One past the last leaf index (default: START + 1).
    pub end: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// First leaf index to stream (default: the current tree size, i.e. only
    /// entries committed from now on).
    #[arg(long)]
    pub from: Option<u64>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub resource: Option<String>,
    /// success, failure, denied or unknown.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Events at or after this time: RFC 3339, or a duration ago like 90s, 30m, 24h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Events before this time: RFC 3339, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Entries per page.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=limits::PAGE_ENTRIES_MAX as i64))]
    pub limit: Option<u32>,
    /// Continue from a previous page.
    #[arg(long)]
    pub page_token: Option<String>,
}

pub async fn get(global: &Global, args: &GetArgs) -> Result<(), CliError> {
    let end = match args.end {
        Some(end) if end <= args.start => {
            return Err(CliError::Usage(format!(
                "END ({end}) must be greater than START ({})",
                args.start
            )))
        }
        Some(end) => end,
        None => args.start.saturating_add(1),
    };
    let mut ledger = client::ledger(client::connect(&global.credentials, &global.endpoint).await?);
    let mut next = args.start;
    while next < end {
        let response = ledger
            .get_entries(proto::GetEntriesRequest {
                start: next,
                end,
                linearizable: false,
            })
            .await?
            .into_inner();
        if response.entries.is_empty() {
            if next == args.start {
                return Err(CliError::Usage(format!(
                    "no entry at index {next}: the tree size is {}",
                    response.tree_size
                )));
            }
            break;
        }
        for entry in &response.entries {
            if entry.index != next {
                return Err(CliError::BadResponse(format!(
                    "expected entry {next}, got {}",
                    entry.index
                )));
            }
            check_leaf_hash(entry)?;
            print_entry(entry, global.json)?;
            next += 1;
        }
    }
    Ok(())
}

pub async fn tail(global: &Global, args: &TailArgs) -> Result<(), CliError> {
    let channel = client::connect_streaming(&global.credentials, &global.endpoint).await?;
    let start = match args.from {
        Some(from) => from,
        None => {
            let status = client::admin(channel.clone())
                .status(proto::StatusRequest {})
                .await?
                .into_inner();
            status.tree_size
        }
    };
    let mut stream = client::ledger(channel)
        .tail(proto::TailRequest { start })
        .await?
        .into_inner();
    while let Some(entry) = stream.message().await? {
        check_leaf_hash(&entry)?;
        print_entry(&entry, global.json)?;
    }
    Ok(())
}

pub async fn query(global: &Global, args: &QueryArgs) -> Result<(), CliError> {
    let now = now_unix_nanos();
    let request = proto::QueryRequest {
        actor: args.actor.clone().unwrap_or_default(),
        action: args.action.clone().unwrap_or_default(),
        resource: args.resource.clone().unwrap_or_default(),
        outcome: match &args.outcome {
            None => proto::Outcome::Unspecified as i32,
            Some(text) => outcome_code(text)?,
        },
        since_unix_nanos: time_bound("--since", args.since.as_deref(), now)?,
        until_unix_nanos: time_bound("--until", args.until.as_deref(), now)?,
        page_size: args.limit.unwrap_or(0),
        page_token: args.page_token.clone().unwrap_or_default(),
    };
    let mut ledger = client::ledger(client::connect(&global.credentials, &global.endpoint).await?);
    let response = ledger.query(request).await?.into_inner();
    for entry in &response.entries {
        check_leaf_hash(entry)?;
    }
    if global.json {
        let entries: Vec<_> = response.entries.iter().map(entry_json).collect();
        return print_json(&serde_json::json!({
            "entries": entries,
            "next_page_token": response.next_page_token,
        }));
    }
    for entry in &response.entries {
        print_entry(entry, false)?;
    }
    if response.entries.is_empty() {
        print_line("no matching entries")?;
    }
    if !response.next_page_token.is_empty() {
        print_line(&format!(
            "more results: add --page-token {}",
            response.next_page_token
        ))?;
    }
    Ok(())
}

fn outcome_code(text: &str) -> Result<i32, CliError> {
    text.parse::<Outcome>()
        .map(|outcome| i32::from(outcome.code()))
        .map_err(|_| {
            CliError::Usage(format!(
                "--outcome {text:?} is not one of success, failure, denied, unknown"
            ))
        })
}

/// Refuses an entry whose leaf hash is not SHA-256(0x00 || leaf).
fn check_leaf_hash(entry: &proto::Entry) -> Result<(), CliError> {
    if merkle::leaf_hash(&entry.leaf).as_slice() == entry.leaf_hash.as_slice() {
        return Ok(());
    }
    Err(CliError::BadResponse(format!(
        "entry {}: leaf hash {} does not match its leaf bytes",
        entry.index,
        hex::encode(&entry.leaf_hash)
    )))
}

/// A query bound as Unix nanoseconds; 0 means unbounded.
fn time_bound(flag: &str, text: Option<&str>, now_unix_nanos: i64) -> Result<i64, CliError> {
    let Some(text) = text else { return Ok(0) };
    parse_time_or_ago(text, now_unix_nanos)
        .map_err(|reason| CliError::Usage(format!("{flag}: {reason}")))
}

/// RFC 3339, or a duration before `now` such as `90s`, `30m`, `24h`, `7d`.
pub fn parse_time_or_ago(text: &str, now_unix_nanos: i64) -> Result<i64, String> {
    if let Some(ago) = parse_duration_nanos(text) {
        return Ok(now_unix_nanos.saturating_sub(ago?));
    }
    parse_rfc3339(text)
}

/// `None` when `text` does not look like a duration at all.
fn parse_duration_nanos(text: &str) -> Option<Result<i64, String>> {
    const SECOND_NANOS: i64 = 1_000_000_000;
    let unit = text.chars().last()?;
    let unit_nanos = match unit {
        's' => SECOND_NANOS,
        'm' => 60 * SECOND_NANOS,
        'h' => 3600 * SECOND_NANOS,
        'd' => 86_400 * SECOND_NANOS,
        _ => return None,
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_nanos))
            .ok_or_else(|| format!("{text:?} is too long a duration")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse_time_or_ago("90s", NOW), Ok(NOW - 90_000_000_000));
        assert_eq!(parse_time_or_ago("24h", NOW), Ok(NOW - 86_400_000_000_000));
        assert_eq!(
            parse_time_or_ago("7d", NOW),
            Ok(NOW - 7 * 86_400_000_000_000)
        );
    }

    #[test]
    fn rfc3339_times_are_absolute() {
        assert_eq!(
            parse_time_or_ago("1970-01-01T00:00:01Z", NOW),
            Ok(1_000_000_000)
        );
    }

    #[test]
    fn nonsense_is_refused_without_panicking() {
        for text in [
            "",
            "h",
            "-5m",
            "5x",
            "99999999999999999999d",
            "tomorrow",
            "5é",
        ] {
            assert!(parse_time_or_ago(text, NOW).is_err(), "{text}");
        }
    }
}
