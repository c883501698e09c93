"""Scores the detection catalogue (src/analysis/anomaly/catalogue/*.toml) against Panther
rule tests, offline, through `ironlog --json detect` (Python 3.11, stdlib only).

    python3 scripts/eval/detections.py --bin target/release/ironlog [--log-type AWS.CloudTrail]
        [--corpus PATH] [--eval] [--misses]

Two sets, kept apart so that the catalogue is not written against the figures it is
judged by:
- development (default): every test of `--corpus` (the shared set's
  panther_rule_tests.jsonl, 3,003 tests) except the 311 events the evaluation appends
  (tests/data/analysis/eval/panther_records.jsonl);
- `--eval`: exactly those 311 events (what scripts/eval-analysis.sh scores).

Per log type, the records are written to one JSON-lines file in corpus order (a record
without its format's event time gets Panther's p_event_time or a spaced placeholder, as
the evaluation does) and run through `detect`. A record counts as flagged when a flag
scoring >= 0.5 was raised on it. Prints recall (expected alerts flagged) and the share of
expected non-alerts flagged, per log type, and with --misses each missed or false
record with its rule, test name and the flags raised.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_analysis import FORMATS, p_event_time, placeholder_time  # noqa: E402
from incidents import REVIEW_SCORE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EVAL_RECORDS = ROOT / "tests/data/analysis/eval/panther_records.jsonl"


def with_time(log, field, filled):
    """`log` with its event time, filled as the evaluation fills it if missing
    (p_event_time, else the next placeholder; `filled` counts placeholders
    used so far, a one-element list)."""
    if any(k.lower() == field.lower() for k in log):
        return log
    out = dict(log)
    out[field] = p_event_time(log)
    if out[field] is None:
        out[field] = placeholder_time(filled[0])
        filled[0] += 1
    return out


def load(corpus, use_eval):
    evals = [json.loads(l) for l in EVAL_RECORDS.read_text().splitlines() if l.strip()]
    if use_eval:
        return [{"rule_id": r["rule_id"], "test_name": r["test_name"], "log_type": r["log_type"],
                 "expected_alert": r["expected_alert"], "log": r["log"], "has_mocks": False} for r in evals]
    held = {(r["rule_id"], r["test_name"]) for r in evals}
    out = []
    for line in Path(corpus).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if (r["rule_id"], r["test_name"]) in held:
            continue
        types = r.get("log_types") or []
        r["log_type"] = types[0] if len(types) == 1 else own_type(r.get("log"), types)
        out.append(r)
    return out


def own_type(log, types):
    """The format of a record of a rule that takes several, read from its fields."""
    if not isinstance(log, dict):
        return None
    keys = {k.lower() for k in log}
    guess = ("GCP.AuditLog" if "protopayload" in keys else
             "Amazon.EKS.Audit" if {"verb", "objectref"} & keys else
             "AWS.CloudTrail" if {"eventname", "eventsource"} & keys else
             "Okta.SystemLog" if "eventtype" in keys and "published" in keys else
             "GitHub.Audit" if "action" in keys and ("actor" in keys or "org" in keys) else None)
    return guess if guess in types else None


def score(binary, records, log_type, tables=()):
    fmt, field = FORMATS[log_type]
    chosen = [r for r in records if r.get("log_type") == log_type and isinstance(r.get("log"), dict)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        filled = [0]
        path.write_text("".join(json.dumps(with_time(r["log"], field, filled)) + "\n" for r in chosen))
        extra = [a for t in tables for a in ("--catalogue", t)]
        run = subprocess.run([binary, "--json", "detect", "--format", fmt, *extra, str(path)],
                             capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"detect failed on {log_type}: {run.stderr.strip()}")
    raised = defaultdict(list)
    for line in run.stdout.splitlines():
        update = json.loads(line)
        for f in update.get("flags", [update] if "kind" in update else []):
            raised[update["record"]].append(f)
    skipped = {int(l.split("record ")[1].split(":")[0].split(" ")[0])
               for l in run.stderr.splitlines() if l.startswith("skipped:") and "record " in l}
    rows = []
    for n, r in enumerate(chosen, start=1):
        flags = [f for f in raised.get(n, []) if f["score"] >= REVIEW_SCORE]
        rows.append({"rule": r["rule_id"], "test": r["test_name"], "expected": r["expected_alert"],
                     "mapped": n not in skipped, "flagged": bool(flags), "mocks": r.get("has_mocks", False),
                     "flags": [(f["kind"], round(f["score"], 2), f["reason"][:160]) for f in flags]})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/ironlog"))
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/data/panther_rule_tests/panther_rule_tests.jsonl"))
    ap.add_argument("--eval", action="store_true", help="score the evaluation's 311 events instead")
    ap.add_argument("--log-type", action="append", help="only this log type (repeatable)")
    ap.add_argument("--misses", action="store_true", help="list every miss and false flag")
    ap.add_argument("--catalogue", action="append", default=[],
                    help="use these tables instead of the built-in ones (repeatable; no rebuild needed)")
    args = ap.parse_args()
    records = load(args.corpus, args.eval)
    total = defaultdict(int)
    for log_type in args.log_type or FORMATS:
        rows = [r for r in score(args.bin, records, log_type, args.catalogue) if r["mapped"]]
        pos = [r for r in rows if r["expected"]]
        neg = [r for r in rows if not r["expected"]]
        tp = sum(r["flagged"] for r in pos)
        fp = sum(r["flagged"] for r in neg)
        total["pos"] += len(pos); total["tp"] += tp; total["neg"] += len(neg); total["fp"] += fp
        print(f"{log_type:<18} recall {tp}/{len(pos)} = {tp / max(1, len(pos)):.1%}   "
              f"non-alerts flagged {fp}/{len(neg)} = {fp / max(1, len(neg)):.1%}")
        if args.misses:
            for r in pos:
                if not r["flagged"]:
                    print(f"   MISS {r['rule']} :: {r['test']}{' (mocks)' if r['mocks'] else ''}")
            for r in neg:
                if r["flagged"]:
                    print(f"   FALSE {r['rule']} :: {r['test']} <- {r['flags']}")
    print(f"{'all':<18} recall {total['tp']}/{total['pos']} = {total['tp'] / max(1, total['pos']):.1%}   "
          f"non-alerts flagged {total['fp']}/{total['neg']} = {total['fp'] / max(1, total['neg']):.1%}")


if __name__ == "__main__":
    sys.exit(main())
