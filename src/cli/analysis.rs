//! `ask`, `summarize`, `anomalies` and `categorize`: the analyst's commands,
//! sent to the analysis node (`--endpoint`).
//!
//! `ask` checks what it prints: every cited entry's leaf hash is recomputed
//! and its inclusion proof verified against the answer's checkpoint, and
//! with `--policy` the checkpoint's signatures are checked against the
//! auditor's trust policy — so an answer is as auditable as the log.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::output::{format_time, print_json, print_line};
use super::{client, CliError, Global};
use crate::ledger::merkle::{self, Hash};
use crate::ledger::policy::TrustPolicy;
use crate::proto;
use crate::proto::analysis_client::AnalysisClient;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, in plain words, e.g. "who accessed the payments database in the last 24 hours?"
    pub question: String,
    /// Reference time for "yesterday", "last 24 hours"... (RFC 3339); default now.
    #[arg(long)]
    pub now: Option<String>,
    /// Most entries to list with proofs (the total is always given).
    #[arg(long, default_value_t = 20)]
    pub max_entries: u32,
    /// Trust policy the answer's checkpoint must satisfy (as for `verify`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// A time expression: "yesterday", "last 24 hours", "this week", ...
    #[arg(long, conflicts_with_all = ["last", "since"])]
    pub window: Option<String>,
    /// The last N entries.
    #[arg(long, conflicts_with = "since")]
    pub last: Option<u32>,
    /// Start of a time range (RFC 3339); with --until or up to now.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, requires = "since")]
    pub until: Option<String>,
    /// Reference time for the window expression (RFC 3339); default now.
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    /// A time expression: "this morning", "last 24 hours", ...
    #[arg(long, conflicts_with = "since")]
    pub window: Option<String>,
    /// Start of a time range (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// Only flags with at least this score (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub min_score: f32,
    /// Keep running and print each incident again as it changes (new
    /// entries or flags; the latest line for an incident is current).
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct CategorizeArgs {
    /// Committed entries: `5`, `0-9`, `3,7,10-12`.
    #[arg(long, conflicts_with = "file")]
    pub entries: Option<String>,
    /// Events not in the log, as Ironlog JSON lines (as `append --file`
    /// reads); nothing is appended.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

async fn analysis(global: &Global) -> Result<AnalysisClient<client::Conn>, CliError> {
    let channel = client::connect_analysis(&global.credentials, &global.endpoint).await?;
    Ok(AnalysisClient::new(channel)
        .max_decoding_message_size(crate::limits::GRPC_MESSAGE_BYTES_MAX))
}

fn time_arg(name: &str, text: &Option<String>) -> Result<i64, CliError> {
    match text {
        None => Ok(0),
        Some(t) => crate::ingest::event_json::parse_rfc3339(t)
            .map_err(|e| CliError::Usage(format!("--{name} {t:?}: {e}"))),
    }
}

fn hash(bytes: &[u8], what: &str) -> Result<Hash, CliError> {
    bytes
        .try_into()
        .map_err(|_| CliError::BadResponse(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// Verifies every cited entry's proof against the answer's checkpoint, and
/// the checkpoint against the policy when one is given. Returns how many
/// proofs verified.
fn check_answer(
    resp: &proto::AskResponse,
    policy: Option<&TrustPolicy>,
) -> Result<usize, CliError> {
    let Some(cp) = &resp.checkpoint else {
        if resp.entries.iter().any(|e| e.proof.is_some()) {
            return Err(CliError::BadResponse("proofs without a checkpoint".into()));
        }
        return Ok(0);
    };
    let root = hash(&cp.root_hash, "checkpoint root")?;
    if let Some(policy) = policy {
        let accepted = policy.check(cp.note.as_bytes()).map_err(|e| {
            CliError::BadResponse(format!("the answer's checkpoint fails the policy: {e}"))
        })?;
        if accepted.body.size != cp.size || accepted.body.root != root {
            return Err(CliError::BadResponse(
                "the answer's checkpoint fields differ from its signed note".into(),
            ));
        }
    }
    let mut verified = 0;
    for pe in &resp.entries {
        let entry = pe
            .entry
            .as_ref()
            .ok_or_else(|| CliError::BadResponse("a cited entry is empty".into()))?;
        let Some(proof) = &pe.proof else { continue };
        let leaf_hash = crate::audit::verifier::checked_leaf_hash(entry.index, &entry.leaf)?;
        let hashes = proof
            .hashes
            .iter()
            .map(|h| hash(h, "proof hash"))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.tree_size != cp.size || proof.index != entry.index {
            return Err(CliError::BadResponse(format!(
                "entry {}: its proof is for another tree or index",
                entry.index
            )));
        }
        merkle::verify_inclusion(entry.index, cp.size, &leaf_hash, &hashes, &root).map_err(
            |e| CliError::BadResponse(format!("entry {}: inclusion proof fails: {e}", entry.index)),
        )?;
        verified += 1;
    }
    Ok(verified)
}

fn query_json(q: &proto::StructuredQuery) -> Value {
    let t = |v: i64| {
        if v == 0 {
            Value::Null
        } else {
            json!(format_time(v))
        }
    };
    let s = |v: &str| if v.is_empty() { Value::Null } else { json!(v) };
    json!({
        "intent": q.intent,
        "from": t(q.from_unix_nanos),
        "to": t(q.to_unix_nanos),
        "time_text": s(&q.time_text),
        "actor": s(&q.actor),
        "resource": s(&q.resource),
        "action": s(&q.action),
        "category": s(&q.category),
        "outcome": if q.outcome == 0 { Value::Null } else { json!(super::output::outcome_name(q.outcome)) },
        "actors": q.actors,
        "resources": q.resources,
        "actions": q.actions,
        "outcomes": q.outcomes.iter().map(|o| super::output::outcome_name(*o)).collect::<Vec<_>>(),
        "verbs": q.verbs,
        "services": q.services,
        "clients": q.clients,
        "actor_kinds": q.actor_kinds,
        "networks": q.networks,
    })
}

/// One incident: its top flag, what it gathers, its entries, then the
/// other kinds of flag raised on it.
fn flag_line(f: &proto::AnomalyFlag) -> String {
    let unlisted = match f.entries_unlisted {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let context = match f.context.len() {
        0 => String::new(),
        _ => format!(", context {:?}", f.context),
    };
    let others: String = f
        .kinds
        .iter()
        .zip(&f.reasons)
        .filter(|(k, _)| **k != f.kind)
        .map(|(k, r)| format!("; also {k} [{r}]"))
        .collect();
    format!(
        "{:.2} {:<22} {} incident {} ({}) [{}] entries {:?}{unlisted}{context}{others}",
        f.score,
        f.kind,
        format_time(f.time_unix_nanos),
        f.incident,
        f.incident_key,
        f.reason,
        f.entries
    )
}

fn flag_json(f: &proto::AnomalyFlag) -> Value {
    json!({
        "kind": f.kind, "score": f.score, "reason": f.reason, "entries": f.entries,
        "actor": f.actor, "time": format_time(f.time_unix_nanos),
        "incident": f.incident, "incident_key": f.incident_key, "kinds": f.kinds,
        "reasons": f.reasons, "last_time": format_time(f.last_unix_nanos),
        "entries_unlisted": f.entries_unlisted, "context": f.context,
    })
}

pub async fn ask(global: &Global, args: &AskArgs) -> Result<(), CliError> {
    let policy = match &args.policy {
        Some(p) => Some(super::audit::load_policy(p)?),
        None => None,
    };
    let mut c = analysis(global).await?;
    let resp = c
        .ask(proto::AskRequest {
            question: args.question.clone(),
            now_unix_nanos: time_arg("now", &args.now)?,
            max_entries: args.max_entries,
        })
        .await?
        .into_inner();
    let verified = check_answer(&resp, policy.as_ref())?;
    let q = resp.query.clone().unwrap_or_default();
    if global.json {
        let entries: Vec<Value> = resp
            .entries
            .iter()
            .map(|pe| {
                let mut v = pe
                    .entry
                    .as_ref()
                    .map(super::output::entry_json)
                    .unwrap_or(Value::Null);
                v["category"] = json!(pe.category);
                v["proven_in_tree_size"] = json!(pe.proof.as_ref().map(|p| p.tree_size));
                v
            })
            .collect();
        return print_json(&json!({
            "mapped": resp.mapped,
            "answer": resp.answer,
            "query": query_json(&q),
            "total_matches": resp.total_matches,
            "entries": entries,
            "proofs_verified": verified,
            "checkpoint": resp.checkpoint.as_ref().map(|c| json!({"size": c.size, "root": hex::encode(&c.root_hash), "signers": c.signers})),
            "slots": resp.slots.iter().map(|s| json!({"slot": s.slot, "value": s.value, "chosen_by": s.chosen_by, "candidates": s.candidates})).collect::<Vec<_>>(),
            "flags": resp.flags.iter().map(flag_json).collect::<Vec<_>>(),
            "note": resp.note,
        }));
    }
    print_line(&resp.answer)?;
    print_line(&format!("query: {}", query_json(&q)))?;
    for s in &resp.slots {
        print_line(&format!(
            "  {} = {} (chosen by {}; candidates: {})",
            s.slot,
            if s.value.is_empty() { "-" } else { &s.value },
            s.chosen_by,
            s.candidates.join(", ")
        ))?;
    }
    if !resp.note.is_empty() {
        print_line(&format!("note: {}", resp.note))?;
    }
    for f in &resp.flags {
        print_line(&format!("flag {}", flag_line(f)))?;
    }
    for pe in &resp.entries {
        if let Some(e) = &pe.entry {
            print_line(&format!(
                "{}  [{}]",
                super::output::entry_line(e),
                pe.category
            ))?;
        }
    }
    if resp.total_matches > resp.entries.len() as u64 && resp.flags.is_empty() {
        print_line(&format!(
            "({} of {} matching entries shown; --max-entries for more)",
            resp.entries.len(),
            resp.total_matches
        ))?;
    }
    if let Some(cp) = &resp.checkpoint {
        print_line(&format!(
            "proofs: {verified} of {} entries verified against checkpoint size {} root {}{}",
            resp.entries.len(),
            cp.size,
            hex::encode(&cp.root_hash),
            if policy.is_some() {
                " (signatures accepted by the policy)"
            } else {
                ""
            }
        ))?;
    }
    Ok(())
}

pub async fn summarize(global: &Global, args: &SummarizeArgs) -> Result<(), CliError> {
    let (from, to) = (
        time_arg("since", &args.since)?,
        time_arg("until", &args.until)?,
    );
    if args.window.is_none() && args.last.is_none() && from == 0 {
        return Err(CliError::Usage(
            "give a window: --window \"yesterday\", --last N or --since TIME".into(),
        ));
    }
    let mut c = analysis(global).await?;
    let resp = c
        .summarize(proto::SummarizeRequest {
            window: args.window.clone().unwrap_or_default(),
            from_unix_nanos: from,
            to_unix_nanos: if from != 0 && to == 0 {
                crate::clock::now_unix_nanos()
            } else {
                to
            },
            last: args.last.unwrap_or(0),
            now_unix_nanos: time_arg("now", &args.now)?,
        })
        .await?
        .into_inner();
    let f = resp.facts.clone().unwrap_or_default();
    let list = |items: &[proto::CountItem]| {
        items
            .iter()
            .map(|i| format!("{} ({})", i.key, i.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if global.json {
        let obj = |items: &[proto::CountItem]| {
            Value::Array(items.iter().map(|i| json!([i.key, i.count])).collect())
        };
        return print_json(&json!({
            "window": f.window,
            "entries": f.entries,
            "first_index": f.first_index,
            "last_index": f.last_index,
            "by_category": obj(&f.by_category),
            "by_outcome": obj(&f.by_outcome),
            "top_actors": obj(&f.top_actors),
            "top_resources": obj(&f.top_resources),
            "failures": f.failures,
            "failing_actors": obj(&f.failing_actors),
            "notable": f.notable,
            "habits": f.habits,
            "flags": resp.flags.iter().map(flag_json).collect::<Vec<_>>(),
            "summary": resp.summary,
            "prose_source": resp.prose_source,
            "rejected_reason": resp.rejected_reason,
        }));
    }
    print_line(&format!("window      {}", f.window))?;
    print_line(&format!("entries     {}", f.entries))?;
    if f.entries > 0 {
        print_line(&format!("categories  {}", list(&f.by_category)))?;
        print_line(&format!("outcomes    {}", list(&f.by_outcome)))?;
        print_line(&format!("actors      {}", list(&f.top_actors)))?;
        print_line(&format!("resources   {}", list(&f.top_resources)))?;
        print_line(&format!(
            "failures    {} {}",
            f.failures,
            list(&f.failing_actors)
        ))?;
        for h in &f.habits {
            print_line(&format!("habit       {h}"))?;
        }
        for n in &f.notable {
            print_line(&format!("notable     {n}"))?;
        }
        for fl in &resp.flags {
            print_line(&format!("flag        {}", flag_line(fl)))?;
        }
    }
    print_line("")?;
    print_line(&resp.summary)?;
    let why = if resp.rejected_reason.is_empty() {
        String::new()
    } else {
        format!("; {}", resp.rejected_reason)
    };
    let source = if resp.prose_source == "model_chosen" {
        "sentences written by code, chosen by the model"
    } else {
        "template"
    };
    print_line(&format!("(summary: {source}{why})"))
}

pub async fn anomalies(global: &Global, args: &AnomaliesArgs) -> Result<(), CliError> {
    let channel = client::connect_streaming(&global.credentials, &global.endpoint).await?;
    let mut c = AnalysisClient::new(channel);
    let mut stream = c
        .anomalies(proto::AnomaliesRequest {
            from_unix_nanos: time_arg("since", &args.since)?,
            to_unix_nanos: time_arg("until", &args.until)?,
            follow: args.follow,
            min_score: args.min_score,
            window: args.window.clone().unwrap_or_default(),
            now_unix_nanos: time_arg("now", &args.now)?,
        })
        .await?
        .into_inner();
    let mut n = 0usize;
    while let Some(flag) = stream.message().await? {
        n += 1;
        if global.json {
            print_json(&flag_json(&flag))?;
        } else {
            print_line(&flag_line(&flag))?;
        }
    }
    if !global.json {
        print_line(&format!("{n} flag(s)"))?;
    }
    Ok(())
}

pub async fn categorize(global: &Global, args: &CategorizeArgs) -> Result<(), CliError> {
    let (indices, events) = match (&args.entries, &args.file) {
        (Some(spec), None) => (crate::audit::verifier::parse_entry_list(spec)?, Vec::new()),
        (None, Some(path)) => {
            let events = super::append::read_file(path, crate::clock::now_unix_nanos())?;
            (
                Vec::new(),
                events
                    .iter()
                    .map(crate::api::convert::event_to_proto)
                    .collect(),
            )
        }
        _ => {
            return Err(CliError::Usage(
                "give --entries LIST or --file EVENTS.jsonl".into(),
            ))
        }
    };
    let mut c = analysis(global).await?;
    let mut results = Vec::new();
    // One call carries a bounded number of items.
    let step = crate::limits::CATEGORIZE_EVENTS_MAX;
    for chunk in indices.chunks(step) {
        let r = c
            .categorize(proto::CategorizeRequest {
                indices: chunk.to_vec(),
                events: Vec::new(),
            })
            .await?
            .into_inner();
        results.extend(r.results);
    }
    for (k, chunk) in events.chunks(step).enumerate() {
        let r = c
            .categorize(proto::CategorizeRequest {
                indices: Vec::new(),
                events: chunk.to_vec(),
            })
            .await?
            .into_inner();
        results.extend(r.results.into_iter().map(|mut x| {
            x.index += (k * step) as u64;
            x
        }));
    }
    for r in &results {
        if global.json {
            print_json(
                &json!({"index": r.index, "category": r.category, "decided_by": r.decided_by,
                "scores": r.scores.iter().map(|s| json!([s.label, s.score])).collect::<Vec<_>>()}),
            )?;
        } else {
            print_line(&format!(
                "{:>8}  {:<16} {}",
                r.index, r.category, r.decided_by
            ))?;
        }
    }
    Ok(())
}
