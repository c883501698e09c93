#!/usr/bin/env python3
"""The analysis evaluation, end to end through the real `ironlog` binary (Python 3.11,
stdlib only). scripts/eval-analysis.sh builds the binary, starts a fresh cluster with the
analysis node and runs this; see that script for the whole picture.

Every figure comes from what the binary printed (`ingest --dry-run`, `append --file`,
`--json categorize`, `--json anomalies`, `--json ask`, `--json summarize`) against labels
in tests/data/analysis/ (gold categories, Falco and Panther alert verdicts, and the
question set eval/qa.jsonl, whose expectations were written before any run). Nothing is
read from outside the repository.

Sections, in the order they run:
1. map: every raw record to an Ironlog event with `ironlog ingest --format F --dry-run`;
2. categorisation: the gold and hold-out events through `categorize --file`;
3. append: Falco traces, Panther events and the OTRF CloudTrail sample appended (with
   their idempotency keys removed), remembering which entries each trace or event got;
   then every entry's category from `categorize --entries`;
4. anomalies: `anomalies` flags mapped back to traces and events;
5. questions: `ask` for every line of eval/qa.jsonl;
6. summaries: `summarize` over windows, prose checked independently (names and numbers
   outside the window, and actor/action/resource pairs no entry of the window has);
7. latency of ask and summarize; the final block, and the JSON file.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import incidents
import scoring

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests/data/analysis"
EVAL = DATA / "eval"
OTRF_CLOUDTRAIL = REPO / "tests/data/ingest/cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl"

# Panther log type -> `ironlog ingest --format`, and the field that holds the event time.
FORMATS = {
    "AWS.CloudTrail": ("cloudtrail", "eventTime"),
    "Amazon.EKS.Audit": ("k8s-audit", "requestReceivedTimestamp"),
    "GCP.AuditLog": ("gcp-audit", "timestamp"),
    "Okta.SystemLog": ("okta", "published"),
    "GitHub.Audit": ("github-audit", "created_at"),
}
# Panther fixtures often lack their format's own event time (trimmed by hand), which
# ingest rightly refuses. Such a record gets Panther's normalised `p_event_time` when it
# has one, else PLACEHOLDER_BASE plus PLACEHOLDER_STEP_S per record (spaced so that the
# placeholders alone make no bursts). Nothing else in a record is ever changed.
PLACEHOLDER_BASE = "2023-11-14T22:13:20Z"
PLACEHOLDER_STEP_S = 7200
TIME_ERRORS = ("no event time", "is not a time")

# Labels of the taxonomy, in src/analysis/category/taxonomy.rs order.
CATEGORIES = [
    "failed_login", "auth_success", "privilege_change", "admin_change", "config_change",
    "data_access", "data_export", "data_deletion", "security_alert", "other",
]
OUTCOMES = ["success", "failure", "denied", "unknown"]
# The detector's flag kinds (src/analysis/anomaly/flag.rs): vocabulary, not identifiers.
FLAG_KINDS = [
    "rate_spike", "unusual_hour", "new_resource", "new_source_ip", "new_user_agent", "first_seen_pair",
    "failure_burst", "privilege_then_sensitive", "mass_read", "mass_export", "security_alert", "sensitive_change",
    "detection", "instance_credentials_off_host",
]
FALCO_DEFAULT_RULE_FILES = {"falco_rules.yaml", "k8s_audit_rules.yaml", "engine_v4_k8s_audit_rules.yaml"}
PRIORITY_ORDER = ["DEBUG", "INFORMATIONAL", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
ASK_MAX_ENTRIES = 200
# Longest a round of the background categoriser can run on after its entries were decided
# elsewhere: CATEGORIZE_ROUND_ENTRIES (16) model calls of about 1.5 s.
BACKGROUND_ROUND_S = 25


def log(msg):
    print(f"[eval {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Ironlog:
    """Runs the binary; every call is a real CLI invocation over gRPC (or local for
    `ingest --dry-run`)."""

    def __init__(self, binary, voter, analysis):
        self.binary, self.voter, self.analysis = binary, voter, analysis

    def run(self, args, endpoint=None, check=True, stdin=None):
        cmd = [self.binary] + (["--endpoint", endpoint] if endpoint else []) + args
        res = subprocess.run(cmd, capture_output=True, text=True, input=stdin)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:6])}... failed ({res.returncode}): {res.stderr.strip()[:500]}")
        return res

    def json_lines(self, args, endpoint):
        res = self.run(["--json"] + args, endpoint=endpoint)
        return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]

    def dry_run(self, fmt, path):
        """(events, error): the mapped events of one file, or ingest's error."""
        res = self.run(["ingest", "--format", fmt, "--dry-run", str(path)], check=False)
        if res.returncode != 0:
            return None, res.stderr.strip().removeprefix("error: ")
        return [json.loads(line) for line in res.stdout.splitlines() if line.strip()], None


# ---------------------------------------------------------------- 1. map


def p_event_time(log_record):
    """Panther's `p_event_time` ("2022-11-29 00:09:04.38", UTC) as RFC 3339, if usable."""
    t = log_record.get("p_event_time")
    if not isinstance(t, str) or len(t) < 19:
        return None
    text = t.replace(" ", "T", 1) + "Z"
    try:
        scoring.rfc3339_ns(text)
    except ValueError:
        return None
    return text


def placeholder_time(n):
    secs = scoring.rfc3339_ns(PLACEHOLDER_BASE) // 1_000_000_000 + n * PLACEHOLDER_STEP_S
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def map_panther(cli, work):
    """Each gold and hold-out record through ingest, one file per record so that every
    event stays tied to its record. Returns the records with `event` (or `map_error`) and
    `time_filled` (None, "p_event_time" or "placeholder") added."""
    records = [json.loads(line) for line in (EVAL / "panther_records.jsonl").read_text().splitlines() if line.strip()]
    path = work / "record.json"
    placeholders = 0
    for r in records:
        fmt, time_field = FORMATS[r["log_type"]]
        r.update(event=None, map_error=None, time_filled=None)
        path.write_text(json.dumps(r["log"]) + "\n")
        events, err = cli.dry_run(fmt, path)
        if err and any(s in err for s in TIME_ERRORS):
            raw = dict(r["log"])
            filled = p_event_time(raw)
            r["time_filled"] = "p_event_time" if filled else "placeholder"
            if not filled:
                filled = placeholder_time(placeholders)
                placeholders += 1
            raw[time_field] = filled
            path.write_text(json.dumps(raw) + "\n")
            events, err = cli.dry_run(fmt, path)
        if err or len(events) != 1:
            r["map_error"] = err or f"{len(events)} events from one record"
        else:
            r["event"] = events[0]
    return records


def map_falco(cli):
    """Each Falco trace through ingest; traces ordered by their first event time (then
    name), the order they are appended in."""
    labels = json.loads((EVAL / "falco/trace_labels.json").read_text())
    traces = []
    for name in sorted(labels):
        events, err = cli.dry_run("k8s-audit", EVAL / "falco" / name)
        traces.append({"name": name, "tests": labels[name], "events": events, "map_error": err})
    mapped = [t for t in traces if t["events"]]
    mapped.sort(key=lambda t: (scoring.rfc3339_ns(t["events"][0]["time"]), t["name"]))
    return mapped, [t for t in traces if not t["events"]]


def map_otrf(cli):
    events, err = cli.dry_run("cloudtrail", OTRF_CLOUDTRAIL)
    if err:
        raise RuntimeError(f"the OTRF CloudTrail sample does not ingest: {err}")
    return events


# ---------------------------------------------------------------- 2. categorisation

# The CLI gives each gRPC call REQUEST_TIMEOUT_MS (30 s, src/cli/client.rs), and one
# `categorize` call carries up to 256 events, each undecided one costing the model 1-3 s
# on 2 shared cores: a whole file in one call runs past the deadline. So the events go in
# files of CATEGORIZE_CHUNK, each its own `categorize --file` call.
CATEGORIZE_CHUNK = 6


def categorize_events(cli, events, work):
    """`--json categorize --file` over `events`, CATEGORIZE_CHUNK at a time; one result
    ({category, decided_by, scores}) per event, in order."""
    results = []
    path = work / "categorize.jsonl"
    for start in range(0, len(events), CATEGORIZE_CHUNK):
        chunk = events[start:start + CATEGORIZE_CHUNK]
        path.write_text("".join(json.dumps(e) + "\n" for e in chunk))
        out = cli.json_lines(["categorize", "--file", str(path)], cli.analysis)
        if [r["index"] for r in out] != list(range(len(chunk))):
            raise RuntimeError(f"categorize returned {len(out)} results for {len(chunk)} events")
        results.extend(out)
    return results


def categorize_entries(cli, first, last):
    """`--json categorize --entries` over committed entries first..last (pending ones are
    decided by the model now), CATEGORIZE_CHUNK at a time."""
    results = {}
    for start in range(first, last + 1, CATEGORIZE_CHUNK):
        end = min(start + CATEGORIZE_CHUNK - 1, last)
        for r in cli.json_lines(["categorize", "--entries", f"{start}-{end}"], cli.analysis):
            results[r["index"]] = r
    return results


def categorisation_figures(records):
    """Per set: the full categoriser, rules where they decide, the model where they do
    not, and the keyword baseline, over the records ingest could map."""
    out = {}
    for set_name in ("gold", "holdout"):
        rs = [r for r in records if r["set"] == set_name]
        mapped = [r for r in rs if r["event"] is not None]
        full = [(r["gold"], r["result"]["category"]) for r in mapped]
        rules = [(r["gold"], r["result"]["category"]) for r in mapped if r["result"]["decided_by"].startswith("rule:")]
        model = [(r["gold"], r["result"]["category"]) for r in mapped if r["result"]["decided_by"] == "model"]
        baseline = [(r["gold"], r["baseline"]) for r in mapped]
        out[set_name] = {
            "events": len(rs),
            "mapped": len(mapped),
            "not_ingestible": len(rs) - len(mapped),
            "time_filled": sum(1 for r in mapped if r["time_filled"]),
            "full": scoring.classification(full),
            "rules": dict(scoring.classification(rules), coverage=len(rules) / len(mapped) if mapped else None),
            "model_on_undecided": scoring.classification(model),
            "keyword_baseline": scoring.classification(baseline),
            "by_log_type": {
                lt: {
                    "mapped": sum(1 for r in mapped if r["log_type"] == lt),
                    "of": sum(1 for r in rs if r["log_type"] == lt),
                    "full": scoring.classification([(r["gold"], r["result"]["category"]) for r in mapped if r["log_type"] == lt]),
                }
                for lt in FORMATS
            },
        }
    return out


# ---------------------------------------------------------------- 3. append


def append_all(cli, streams, work):
    """Appends the events of every stream, in order, in one `append --file` (idempotency
    keys removed, so Panther's near-duplicate fixtures all stay). Returns, per stream, the
    entry indices of its events."""
    events = []
    for _, evs in streams:
        for e in evs:
            e = dict(e)
            e.pop("idempotency_key", None)
            events.append(e)
    path = work / "append.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    [resp] = cli.json_lines(["append", "--file", str(path)], cli.voter)
    indices = resp["indices"]
    if len(indices) != len(events) or any(resp["deduplicated"]):
        raise RuntimeError(f"append: {len(indices)} indices for {len(events)} events, deduplicated {sum(resp['deduplicated'])}")
    out, at = [], 0
    for name, evs in streams:
        out.append((name, indices[at:at + len(evs)]))
        at += len(evs)
    return events, out


def wait_indexed(cli, last_index, timeout_s=120):
    """Waits until the analysis node has indexed entry `last_index` (categorize answers
    NOT_FOUND for entries it has not read yet)."""
    deadline = time.time() + timeout_s
    while True:
        res = cli.run(["--json", "categorize", "--entries", str(last_index)], endpoint=cli.analysis, check=False)
        if res.returncode == 0:
            return
        if time.time() > deadline:
            raise RuntimeError(f"the analysis node did not index entry {last_index}: {res.stderr.strip()}")
        time.sleep(0.5)


# ---------------------------------------------------------------- 4. anomalies


def panther_each_alone(cli, mapped, work):
    """Each Panther event through `ironlog --json detect` on its own: the reading its
    label has (the rule fires on this event, or not), with no other fixture in its actor's
    windows or incidents. Categories come from the rules alone (no model); the few events
    no rule categorises count as `other`. Incident figures as incidents.incident_figures,
    overall and per log type."""
    path = work / "alone.jsonl"
    rows = []
    for r in mapped:
        e = {k: v for k, v in r["event"].items() if k != "idempotency_key"}
        path.write_text(json.dumps(e) + "\n")
        out = cli.run(["--json", "detect", "--format", "jsonl", str(path)])
        scores = [f["score"] for line in out.stdout.splitlines() if line.strip()
                  for f in json.loads(line)["flags"]]
        rows.append((r["log_type"], r["expected_alert"], max(scores, default=0.0)))
    def figures(items):
        flags = [{"score": s, "entries": [i]} for i, (_, _, s) in enumerate(items)]
        return incidents.incident_figures(flags, *incidents.panther_sets(
            [(i, alert) for i, (_, alert, _) in enumerate(items)]))
    out = figures(rows)
    out["by_log_type"] = {lt: figures([x for x in rows if x[0] == lt]) for lt in dict.fromkeys(x[0] for x in rows)}
    return out



def falco_positive(tests, priorities, default_files_only):
    """Whether some test of the trace must detect with a rule of priority WARNING or higher
    (rules without a known priority do not count)."""
    floor = PRIORITY_ORDER.index("WARNING")
    for t in tests:
        if not t["detect"]:
            continue
        if default_files_only and not set(t["rules_files"]) <= FALCO_DEFAULT_RULE_FILES:
            continue
        for rule in t["rules_fired"]:
            p = priorities.get(rule)
            if p and PRIORITY_ORDER.index(p) >= floor:
                return True
    return False


# Scores from 0.5 up are "review" or "look now" in the detector's scale; below is context
# (src/analysis/anomaly/mod.rs), so the figures are also given from this score.
REVIEW_SCORE = 0.5


def anomaly_figures(flags, falco, falco_indices, records, panther_indices):
    """Precision and recall of "a flag was raised" per Falco trace and per Panther event.
    A flag counts for every trace or event whose entries it cites."""
    owner = {}
    for name, idx in falco_indices:
        for i in idx:
            owner[i] = ("falco", name)
    for r, i in zip([r for r in records if r["event"]], panther_indices):
        owner[i] = ("panther", r["pos"])
    priorities = json.loads((EVAL / "falco/rule_priorities.json").read_text())
    mapped = [r for r in records if r["event"]]
    out = {"flags": len(flags), "flags_by_kind": {},
           "flags_citing_several_traces_or_events": sum(
               1 for f in flags if len({owner.get(i) for i in f["entries"]}) > 1)}
    for f in flags:
        out["flags_by_kind"][f["kind"]] = out["flags_by_kind"].get(f["kind"], 0) + 1
    for suffix, min_score in (("", 0.0), ("_score_0.5", REVIEW_SCORE)):
        flagged = {owner.get(i) for f in flags if f["score"] >= min_score for i in f["entries"]}
        for key, strict in (("falco_traces", False), ("falco_traces_default_rules", True)):
            items = [(falco_positive(t["tests"], priorities, strict), ("falco", t["name"]) in flagged) for t in falco]
            out[key + suffix] = scoring.detection(items)
        out["panther_events" + suffix] = scoring.detection(
            [(r["expected_alert"], ("panther", r["pos"]) in flagged) for r in mapped])
        if not suffix:
            out["falco_missed"] = [t["name"] for t in falco if falco_positive(t["tests"], priorities, False)
                                   and ("falco", t["name"]) not in flagged]
            out["falco_false_alarms"] = [t["name"] for t in falco if not falco_positive(t["tests"], priorities, False)
                                         and ("falco", t["name"]) in flagged]
            out["panther_by_log_type"] = {
                lt: scoring.detection([(r["expected_alert"], ("panther", r["pos"]) in flagged)
                                       for r in mapped if r["log_type"] == lt])
                for lt in FORMATS
            }
    return out


# ---------------------------------------------------------------- 5. questions


def timed(cli, args, endpoint):
    t0 = time.monotonic()
    res = cli.run(args, endpoint=endpoint, check=False)
    return time.monotonic() - t0, res


def expected_entries(exp, mapped, entries, flags):
    """The entry set the (normalised) expected query selects over the appended entries;
    for the anomaly intent, the entries the flags in its window (and of its actors) cite."""
    if not mapped:
        return set()
    if exp["intent"] == "anomalies":
        out = set()
        for f in flags:
            t = scoring.rfc3339_ns(f["time"])
            if exp["from"] is not None and t < exp["from"]:
                continue
            if exp["to"] is not None and t >= exp["to"]:
                continue
            if exp["actor"] is not None and f["actor"] not in exp["actor"]:
                continue
            out.update(f["entries"])
        return out
    return {e["index"] for e in entries if scoring.matches(e, exp)}


def answer_field(query, field):
    """What an answer's query says for one field, for the report: the plural list when
    the binary gives one, else the singular value."""
    plural = scoring.PLURAL_KEYS.get(field)
    if plural and query.get(plural):
        return query[plural]
    return query.get(field)


def run_questions(cli, entries, flags):
    """`ask` for every question. The headline is the entry set (exact, per question, and
    per class and per log); the structured query is compared field by field, each value
    field as a set (expected string or list against the answer's plural list when it
    has one, else its singular value). Only QUERY_FIELDS are compared: `user_agent` and
    `ip` have no slot in the answer's query and are judged by the entry set alone."""
    qa = [json.loads(line) for line in (EVAL / "qa.jsonl").read_text().splitlines() if line.strip()]
    rows = []
    for q in qa:
        secs, res = timed(cli, ["--json", "ask", q["question"], "--now", q["now"],
                                "--max-entries", str(ASK_MAX_ENTRIES)], cli.analysis)
        row = {"id": q["id"], "question": q["question"], "class": q.get("class"), "log": q.get("log"),
               "latency_s": secs, "expected_mapped": q["mapped"]}
        if res.returncode != 0:
            row.update(error=res.stderr.strip(), mapped=None, query_exact=False, entries_exact=False, fields={})
            rows.append(row)
            continue
        ans = json.loads(res.stdout)
        exp = scoring.normalise_query(q["expected"])
        got = scoring.normalise_query(ans["query"])
        fields = {k: exp[k] == got[k] for k in scoring.QUERY_FIELDS}
        want = expected_entries(exp, q["mapped"], entries, flags)
        cited = {e["index"] for e in ans["entries"]}
        # The right entries, and mapped as expected: an honest "none" (mapped, nothing
        # matches) is not the same answer as "could not map the question".
        entries_exact = (bool(ans["mapped"]) == q["mapped"] and ans["total_matches"] == len(want)
                         and cited <= want and len(cited) == min(ASK_MAX_ENTRIES, len(want)))
        if q["mapped"]:
            query_exact = ans["mapped"] and all(fields.values())
        else:
            query_exact = not ans["mapped"]
        row.update(
            mapped=ans["mapped"], fields=fields if q["mapped"] else {}, query_exact=query_exact,
            entries_exact=entries_exact, expected_total=len(want), total_matches=ans["total_matches"],
            got_query=ans["query"], slots=[(s["slot"], s["value"], s["chosen_by"]) for s in ans["slots"]],
            model_chose=any(s["chosen_by"] == "model" for s in ans["slots"]),
            answer=ans["answer"], note=ans["note"],
        )
        if not all(fields.values()) and q["mapped"]:
            row["field_diffs"] = {k: {"expected": q["expected"].get(k), "got": answer_field(ans["query"], k)}
                                  for k, ok in fields.items() if not ok}
        if not entries_exact:
            row["entries_missed"] = len(want - cited) if len(want) <= ASK_MAX_ENTRIES else None
            row["entries_extra"] = len(cited - want)
        rows.append(row)
    n = len(rows)
    with_map = [r for r in rows if r["expected_mapped"]]
    by_class = scoring.by_group(rows, "class")
    return {
        "questions": n,
        "expected_to_map": len(with_map),
        "errors": sum(1 for r in rows if "error" in r),
        "query_exact": sum(r["query_exact"] for r in rows) / n,
        "mapped_correct": sum(r["mapped"] == r["expected_mapped"] for r in rows) / n,
        "field_accuracy": {k: sum(1 for r in with_map if r["fields"].get(k)) / len(with_map)
                           for k in scoring.QUERY_FIELDS},
        "entries_exact": sum(r["entries_exact"] for r in rows) / n,
        "entries_exact_by_class": by_class,
        "entries_exact_by_log": scoring.by_group(rows, "log"),
        "entries_exact_lowest_class": scoring.lowest(by_class),
        "model_chose_a_slot": sum(1 for r in rows if r.get("model_chose")),
        "rows": rows,
    }


# ---------------------------------------------------------------- 6. summaries


def summary_windows(total):
    """(label, CLI arguments, how to pick the window's entries: ("last", N) or
    ("range", from, to)). Time windows cover the real days in the data."""
    out = []
    for n in (10, 25, 50, 103, 200, total):
        out.append((f"last {n}", ["--last", str(n)], ("last", n)))
    ranges = [
        ("OTRF, 2020-09-14 (--window, now 2020-09-16)", ["--window", "on 2020-09-14", "--now", "2020-09-16T00:00:00Z"],
         "2020-09-14T00:00:00Z", "2020-09-15T00:00:00Z"),
        ("OTRF, last 24 hours (--window, now 2020-09-14T12:00)", ["--window", "last 24 hours", "--now", "2020-09-14T12:00:00Z"],
         "2020-09-13T12:00:00Z", "2020-09-14T12:00:00Z"),
        ("Falco, 2018-10-25", ["--since", "2018-10-25T00:00:00Z", "--until", "2018-10-26T00:00:00Z"],
         "2018-10-25T00:00:00Z", "2018-10-26T00:00:00Z"),
        ("Falco, yesterday (--window, now 2018-10-27T08:00)", ["--window", "yesterday", "--now", "2018-10-27T08:00:00Z"],
         "2018-10-26T00:00:00Z", "2018-10-27T00:00:00Z"),
        ("Panther, 2024-01-15 to 2024-01-19", ["--since", "2024-01-15T00:00:00Z", "--until", "2024-01-19T00:00:00Z"],
         "2024-01-15T00:00:00Z", "2024-01-19T00:00:00Z"),
        ("Panther, 2019-01-01", ["--since", "2019-01-01T00:00:00Z", "--until", "2019-01-02T00:00:00Z"],
         "2019-01-01T00:00:00Z", "2019-01-02T00:00:00Z"),
        ("Panther, May 2021 (--window, now 2021-06-01)", ["--window", "May 2021", "--now", "2021-06-01T00:00:00Z"],
         "2021-05-01T00:00:00Z", "2021-06-01T00:00:00Z"),
    ]
    for label, args, a, b in ranges:
        out.append((label, args, ("range", scoring.rfc3339_ns(a), scoring.rfc3339_ns(b))))
    return out


def numbers_in(value, out):
    """Every number written anywhere in a JSON value (its numbers and the digits inside
    its strings), plus the length of every list in it."""
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.add(str(value))
    elif isinstance(value, str):
        out.update(re.findall(r"\d+(?:\.\d+)?", value))
    elif isinstance(value, list):
        out.add(str(len(value)))
        for v in value:
            numbers_in(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            numbers_in(v, out)
    return out


def check_summary(out, window_entries, log_values):
    """The independent check of one summary's prose: identifiers (by shape) that no entry
    of the window carries, whole actor/resource/action values of the log that are not in
    the window, and numbers that are not in the facts."""
    prose = out["summary"]
    blob = "\n".join(
        "\n".join([e["actor"], e["action"], e["resource"], e["source"], e["ip"] or "", e["user_agent"] or "",
                   e["time"], str(e["index"])])
        for e in window_entries
    ).lower() + "\n" + out["window"].lower() + "\n" + " ".join(CATEGORIES + OUTCOMES + FLAG_KINDS) + "\n" + "\n".join(
        # The flags the response lists are facts of the window too; their reasons (written by
        # the detector from the entries, e.g. a host path it mounts) may name what they saw.
        f.get("reason", "") for f in out.get("flags", [])).lower()
    foreign = [t for t in scoring.prose_tokens(prose)
               if scoring.shaped_identifier(t) and t.lower() not in blob]
    window_values = {v for e in window_entries for v in (e["actor"], e["action"], e["resource"])}
    foreign_values = scoring.foreign_values(prose, log_values, window_values)
    facts = {k: v for k, v in out.items() if k not in ("summary", "prose_source", "rejected_reason")}
    numbers = numbers_in(facts, set())
    bad_numbers = [t for t in scoring.prose_tokens(prose) if scoring.is_number(t) and t.rstrip("%") not in numbers]
    return sorted(set(foreign) | set(foreign_values)), bad_numbers


def run_summaries(cli, entries, log_values):
    rows = []
    for label, args, pick in summary_windows(len(entries)):
        secs, res = timed(cli, ["--json", "summarize"] + args, cli.analysis)
        row = {"window": label, "latency_s": secs}
        if res.returncode != 0:
            row["error"] = res.stderr.strip()
            rows.append(row)
            continue
        out = json.loads(res.stdout)
        if pick[0] == "last":
            window = entries[-pick[1]:]
        else:
            window = [e for e in entries if pick[1] <= e["time_ns"] < pick[2]]
        foreign, bad_numbers = check_summary(out, window, log_values)
        row.update(entries=out["entries"], expected_entries=len(window), prose_source=out["prose_source"],
                   rejected_reason=out["rejected_reason"], foreign_identifiers=foreign,
                   repeats_a_sentence=scoring.repeats_a_sentence(out["summary"]),
                   numbers_not_in_facts=bad_numbers,
                   misattributed_pairs=scoring.misattributed_pairs(out["summary"], window, CATEGORIES + OUTCOMES),
                   summary=out["summary"])
        rows.append(row)
    ok = [r for r in rows if "error" not in r]
    chosen = [r for r in ok if r["prose_source"] == MODEL_CHOSEN]
    reasons = {}
    for r in ok:
        if r["prose_source"] != MODEL_CHOSEN:
            reasons[r["rejected_reason"]] = reasons.get(r["rejected_reason"], 0) + 1
    return {
        "windows": len(rows),
        "errors": sum(1 for r in rows if "error" in r),
        "entry_count_mismatches": sum(1 for r in ok if r["entries"] != r["expected_entries"]),
        "foreign_identifiers": sum(len(r["foreign_identifiers"]) for r in ok),
        "foreign_identifiers_in_model_chosen": sum(len(r["foreign_identifiers"]) for r in chosen),
        "numbers_not_in_facts": sum(len(r["numbers_not_in_facts"]) for r in ok),
        "misattributed_pairs": sum(len(r["misattributed_pairs"]) for r in ok),
        "misattributed_pairs_in_model_chosen": sum(len(r["misattributed_pairs"]) for r in chosen),
        "model_chosen": len(chosen),
        "model_chosen_repeating_a_sentence": sum(1 for r in chosen if r["repeats_a_sentence"]),
        "template": len(ok) - len(chosen),
        "template_reasons": reasons,
        "error_messages": {e: sum(1 for r in rows if r.get("error") == e) for e in {r["error"] for r in rows if "error" in r}},
        "rows": rows,
    }


# How `summarize --json` marks a summary whose sentences the model chose.
MODEL_CHOSEN = "model_chosen"


# ---------------------------------------------------------------- 7. report


def pct(x):
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def cls_line(c):
    return f"acc {pct(c['accuracy'])}  macro-F1 {pct(c['macro_f1'])}  (n={c['n']})"


def det_line(d):
    return (f"precision {pct(d['precision'])}  recall {pct(d['recall'])}  "
            f"(n={d['n']}, positives {d['positives']}, flagged {d['flagged']}, tp {d['tp']})")


def short(v, keep=3):
    """A field value for the report: a long list cut to its first values and its length."""
    if isinstance(v, list) and len(v) > keep + 1:
        return repr(v[:keep])[:-1] + f", ... ({len(v)} values)]"
    return repr(v)


def report(r):
    lines = ["", "=" * 78, "Ironlog analysis evaluation — figures", "=" * 78]
    m = r["mapping"]
    lines.append(f"Mapping (ingest --dry-run): Panther {m['panther_mapped']}/{m['panther_records']} records "
                 f"({m['panther_time_filled']} given a time: {m['panther_time_filled_from_p_event_time']} from p_event_time, "
                 f"rest placeholders); Falco {m['falco_traces']} traces / {m['falco_events']} events "
                 f"({', '.join(m['falco_not_ingestible']) or 'none'} not ingestible); OTRF CloudTrail {m['otrf_events']} events")
    lines.append("")
    lines.append("1. Categorisation (accuracy; macro-F1 over the labels present in gold)")
    for set_name, title in (("gold", "gold (seen while writing rules)"), ("holdout", "hold-out (labelled blind)")):
        c = r["categorisation"][set_name]
        lines.append(f"  {title}: {c['mapped']} of {c['events']} events ingestible")
        lines.append(f"    full categoriser (rules, then model): {cls_line(c['full'])}")
        lines.append(f"    rules alone where they decide:        {cls_line(c['rules'])}  coverage {pct(c['rules']['coverage'])}")
        lines.append(f"    model alone on what rules leave:      {cls_line(c['model_on_undecided'])}")
        lines.append(f"    keyword baseline:                     {cls_line(c['keyword_baseline'])}")
    lines.append(f"  same events as committed entries agree with --file: {r['categorisation']['entries_agree_with_file']}")
    a = r["anomalies"]
    lines.append("")
    lines.append("2. Anomalies (\"any flag raised\"; one shared stream, see the note)")
    lines.append(f"  Falco traces, positive = a WARNING+ rule expected:       {det_line(a['falco_traces'])}")
    lines.append(f"  Falco traces, same, default rule files only:             {det_line(a['falco_traces_default_rules'])}")
    lines.append(f"  Panther events vs expected_alert:                        {det_line(a['panther_events'])}")
    for lt, d in a["panther_by_log_type"].items():
        lines.append(f"    {lt:<18} {det_line(d)}")
    lines.append(f"  counting only flags scoring >= {REVIEW_SCORE}:")
    lines.append(f"    Falco traces (WARNING+)  {det_line(a['falco_traces_score_0.5'])}")
    lines.append(f"    Panther events           {det_line(a['panther_events_score_0.5'])}")
    lines.append(f"  flags: {a['flags']} ({', '.join(f'{k} {v}' for k, v in sorted(a['flags_by_kind'].items()))}); "
                 f"{a['flags_citing_several_traces_or_events']} cite entries of more than one trace/event")
    lines.append(f"  Falco positives missed: {', '.join(a['falco_missed']) or 'none'}")
    lines.append(f"  Falco negatives flagged: {', '.join(a['falco_false_alarms']) or 'none'}")
    lines.extend(incidents.report_lines(r["incidents"]))
    lines.append("  Note: traces and events share one stream, appended in order (Falco by time, then Panther,")
    lines.append("  then OTRF), so every detector baseline and window has seen all earlier traces and events;")
    lines.append("  a flag counts for every trace/event whose entries it cites.")
    alone = r.get("panther_alone")
    if alone:
        lines.append("  Panther events, each alone (`ironlog detect` on the one event: the reading its label has;")
        lines.append("  in the shared stream above, fixtures that share an actor and a time join each other's")
        lines.append("  windows and incidents, which the labels know nothing of):")
        lines.append(f"    Panther events  incidents {incidents.pct(alone['incident_recall'])} "
                     f"({alone['incidents_detected']}/{alone['incidents']})"
                     f"  benign cited {incidents.pct(alone['benign_cited_share'])} "
                     f"({alone['benign_cited']}/{alone['benign_entries']})")
        lines.append("    by log type: " + ", ".join(
            f"{lt} {incidents.pct(f['incident_recall']).strip()} / {incidents.pct(f['benign_cited_share']).strip()}"
            for lt, f in alone["by_log_type"].items()))
    q = r["questions"]
    lines.append("")
    lines.append(f"3. Questions ({q['questions']}: {q['expected_to_map']} should map, "
                 f"{q['questions'] - q['expected_to_map']} should not; {q['errors']} errors)")
    lines.append(f"  entry set exact match (headline): {pct(q['entries_exact'])}   (model chose a slot in {q['model_chose_a_slot']} questions)")
    for key, title in (("entries_exact_by_class", "class"), ("entries_exact_by_log", "log")):
        lines.append(f"  entry set exact, per {title}:")
        for g, d in q[key].items():
            lines.append(f"    {g:<24} {pct(d['accuracy'])}  ({d['exact']}/{d['n']})")
    low = q["entries_exact_lowest_class"]
    if low:
        lines.append(f"  lowest class: {low['group']} {pct(low['accuracy'])} ({low['exact']}/{low['n']})")
    lines.append(f"  structured query exact match:  {pct(q['query_exact'])}   mapped/unmapped right: {pct(q['mapped_correct'])}")
    lines.append("  per field (questions that should map; value fields compared as sets): "
                 + ", ".join(f"{k} {pct(v)}" for k, v in q["field_accuracy"].items()))
    lines.append("  entry set not exact:")
    for row in q["rows"]:
        if row["entries_exact"]:
            continue
        if "error" in row:
            why = row["error"]
        else:
            why = f"{row['total_matches']} matches, expected {row['expected_total']} (mapped {row['mapped']})"
        lines.append(f"    {row['id']} [{row.get('class')}, {row.get('log')}] {row['question']!r}: {why}")
    lines.append("  query not exact:")
    for row in q["rows"]:
        if row["query_exact"]:
            continue
        if "error" in row:
            why = row["error"]
        elif not row["expected_mapped"] or not row["mapped"]:
            why = f"mapped {row['mapped']}, expected {row['expected_mapped']}"
        else:
            why = "; ".join(f"{k} {short(d['got'])} (expected {short(d['expected'])})" for k, d in row["field_diffs"].items())
        lines.append(f"    {row['id']} [{row.get('class')}] {row['question']!r}: {why}")
    s = r["summaries"]
    lines.append("")
    lines.append(f"4. Summaries ({s['windows']} windows, {s['errors']} errors)")
    lines.append(f"  identifiers not in the window: {s['foreign_identifiers']} (in model-chosen summaries: {s['foreign_identifiers_in_model_chosen']}); "
                 f"numbers not in the facts: {s['numbers_not_in_facts']}; entry-count mismatches: {s['entry_count_mismatches']}")
    lines.append(f"  misattributed pairs (actor/action/resource named together that no entry of the window pairs): "
                 f"{s['misattributed_pairs']} (in model-chosen summaries: {s['misattributed_pairs_in_model_chosen']})")
    for err, n in sorted(s["error_messages"].items(), key=lambda x: -x[1]):
        lines.append(f"    failed calls: {err} ({n})")
    lines.append(f"  sentences chosen by the model: {s['model_chosen']} of {s['windows']} windows "
                 f"({s['model_chosen_repeating_a_sentence']} repeat a sentence); template: {s['template']}")
    for row in s["rows"]:
        for a, b, sentence in row.get("misattributed_pairs", []):
            lines.append(f"    misattributed in {row['window']!r}: {a!r} with {b!r} in {sentence!r}")
    for reason, n in sorted(s["template_reasons"].items(), key=lambda x: -x[1]):
        lines.append(f"    template because: {reason} ({n})")
    lat = r["latency"]
    lines.append("")
    lines.append("5. Latency (wall-clock of each CLI call, this machine)")
    for k in ("ask", "summarize"):
        v = lat[k]
        lines.append(f"  {k:<9} n={v['n']:<3} median {v['median_s']:.2f} s  max {v['max_s']:.2f} s")
    lines.append("")
    lines.append("  load average (1 min) at start and end: "
                 f"{r['load_average_start']:.1f}, {r['load_average_end']:.1f} on {os.cpu_count()} cores")
    lines.append("")
    lines.append(f"Whole run {r['elapsed_s']:.0f} s.  Figures as JSON: {r['json_path']}")
    lines.append("=" * 78)
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the ironlog binary")
    ap.add_argument("--voter", required=True, help="gRPC endpoint of a voter (appends)")
    ap.add_argument("--analysis", required=True, help="gRPC endpoint of the analysis node")
    ap.add_argument("--out", required=True, help="where to write the figures as JSON")
    args = ap.parse_args()
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    cli = Ironlog(args.bin, args.voter, args.analysis)
    with tempfile.TemporaryDirectory(prefix="ironlog-eval-") as tmp:
        result = evaluate(cli, Path(tmp), args.out)
    # Latency depends on what else the shared cores run; the load says how busy they were.
    result.update(elapsed_s=time.monotonic() - started, load_average_start=load_start,
                  load_average_end=os.getloadavg()[0])
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))


def evaluate(cli, work, out_path):
    """Runs sections 1-6 against the cluster; returns every figure and row."""
    log("1. mapping records with ingest --dry-run")
    records = map_panther(cli, work)
    for pos, r in enumerate(records):
        r["pos"] = pos
    gold = {}
    for set_name, name in (("gold", "panther_gold.jsonl"), ("holdout", "panther_holdout.jsonl")):
        for line in (DATA / name).read_text().splitlines():
            if line.strip():
                g = json.loads(line)
                gold[(set_name, g["rule_id"], g["test_name"])] = g["category"]
    for r in records:
        r["gold"] = gold[(r["set"], r["rule_id"], r["test_name"])]
    falco, falco_bad = map_falco(cli)
    otrf = map_otrf(cli)
    mapped = [r for r in records if r["event"]]

    log(f"2. categorising {len(mapped)} gold and hold-out events with categorize --file")
    for r, res in zip(mapped, categorize_events(cli, [r["event"] for r in mapped], work)):
        r["result"] = res
        e = r["event"]
        r["baseline"] = scoring.keyword_baseline(e["action"], e["resource"], e["outcome"])

    log("3. appending Falco traces, Panther events and the OTRF CloudTrail sample")
    streams = [(t["name"], t["events"]) for t in falco] + [("panther", [r["event"] for r in mapped]), ("otrf", otrf)]
    events, placed = append_all(cli, streams, work)
    falco_indices = placed[:len(falco)]
    panther_indices = placed[len(falco)][1]
    total = len(events)
    wait_indexed(cli, total - 1)
    log(f"   {total} entries appended; categorising them with categorize --entries")
    cats = categorize_entries(cli, 0, total - 1)
    entries = []
    for i, e in enumerate(events):
        entries.append({
            "index": i, "time": e["time"], "time_ns": scoring.rfc3339_ns(e["time"]),
            "actor": e["actor"]["id"], "action": e["action"], "resource": e["resource"],
            "outcome": e["outcome"], "source": e["source"], "ip": e["actor"].get("ip"),
            "user_agent": e["actor"].get("user_agent"),
            "category": cats[i]["category"], "decided_by": cats[i]["decided_by"],
        })
    agree = sum(1 for r, i in zip(mapped, panther_indices) if cats[i]["category"] == r["result"]["category"])
    # The background categoriser may still be finishing a round it took before
    # `categorize --entries` decided those entries; let it end before timing anything.
    time.sleep(BACKGROUND_ROUND_S)

    log("4. anomaly flags")
    flags = cli.json_lines(["anomalies"], cli.analysis)
    anomalies = anomaly_figures(flags, falco, falco_indices, records, panther_indices)
    priorities = json.loads((EVAL / "falco/rule_priorities.json").read_text())
    incident_figs = incidents.evaluate(
        flags,
        falco=[(name, idx, falco_positive(t["tests"], priorities, False))
               for t, (name, idx) in zip(falco, falco_indices)],
        panther=[(i, r["expected_alert"]) for r, i in zip(mapped, panther_indices)],
        otrf=(json.loads((EVAL / "otrf_labels.json").read_text()), placed[len(falco) + 1][1], entries),
    )

    log("   Panther events, each alone, through ironlog detect")
    panther_alone = panther_each_alone(cli, mapped, work)

    log("5. questions")
    questions = run_questions(cli, entries, flags)

    log("6. summaries")
    log_values = {v for e in entries for v in (e["actor"], e["action"], e["resource"])}
    summaries = run_summaries(cli, entries, log_values)

    cat_figs = categorisation_figures(records)
    cat_figs["entries_agree_with_file"] = f"{agree}/{len(mapped)}"
    return {
        "mapping": {
            "panther_records": len(records),
            "panther_mapped": len(mapped),
            "panther_time_filled": sum(1 for r in mapped if r["time_filled"]),
            "panther_time_filled_from_p_event_time": sum(1 for r in mapped if r["time_filled"] == "p_event_time"),
            "panther_not_ingestible": [
                {"set": r["set"], "rule_id": r["rule_id"], "test_name": r["test_name"], "error": r["map_error"]}
                for r in records if not r["event"]
            ],
            "falco_traces": len(falco),
            "falco_events": sum(len(t["events"]) for t in falco),
            "falco_not_ingestible": [t["name"] for t in falco_bad],
            "otrf_events": len(otrf),
            "entries_appended": total,
        },
        "categorisation": cat_figs,
        "categorisation_rows": [
            {"set": r["set"], "rule_id": r["rule_id"], "test_name": r["test_name"], "log_type": r["log_type"],
             "gold": r["gold"], "category": r["result"]["category"], "decided_by": r["result"]["decided_by"],
             "baseline": r["baseline"]}
            for r in mapped
        ],
        "anomalies": anomalies,
        "incidents": incident_figs,
        "panther_alone": panther_alone,
        "flags": flags,
        "questions": questions,
        "summaries": summaries,
        "latency": {
            "ask": scoring.median_max([row["latency_s"] for row in questions["rows"]]),
            "summarize": scoring.median_max([row["latency_s"] for row in summaries["rows"]]),
        },
        "json_path": out_path,
    }


if __name__ == "__main__":
    main()
