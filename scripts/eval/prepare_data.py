#!/usr/bin/env python3
"""Copies what the analysis evaluation needs from the shared data sets into
tests/data/analysis/eval/, so the evaluation never reads /work/shared at run time.

Run once by a developer (not by scripts/eval-analysis.sh); its output is committed.
Re-running it rewrites the same files byte for byte.

    python3 scripts/eval/prepare_data.py [SHARED_DATA_DIR]   # default /work/shared/data

Writes:
- panther_records.jsonl: the raw Panther test record (`log`, verbatim) of every event of
  tests/data/analysis/panther_gold.jsonl and panther_holdout.jsonl, in that order, as
  {"set", "rule_id", "test_name", "log_type", "expected_alert", "log"}; `log_type` is the
  record's own format as the gold files give it.
- falco/*.json: every Falco k8s-audit trace file, verbatim, and trace_labels.json whole.
- falco/rule_priorities.json: {rule name: priority} for every rule of the two Falco rule
  files (engine_v4_k8s_audit_rules.yaml, the test suite's; k8s_audit_rules.plugins.yaml, the
  current production rules), read from their `- rule:` and `priority:` lines; where both
  name a rule, the production file wins (the priorities agree for every rule the traces
  expect). `json_pointer_example`, expected by one test, is defined only in a test rules
  file that is not in the shared set, so it has no entry.
- LICENSE-panther-analysis.txt, falco/COPYING: the licences, copied.
"""
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANALYSIS = REPO / "tests/data/analysis"
OUT = ANALYSIS / "eval"


def gold_keys():
    keys = []
    for set_name, name in (("gold", "panther_gold.jsonl"), ("holdout", "panther_holdout.jsonl")):
        for line in (ANALYSIS / name).read_text().splitlines():
            if line.strip():
                g = json.loads(line)
                keys.append((set_name, g["rule_id"], g["test_name"], g["log_type"]))
    return keys


def copy_panther(shared):
    by_key = {}
    with open(shared / "panther_rule_tests/panther_rule_tests.jsonl") as lines:
        for line in lines:
            r = json.loads(line)
            key = (r["rule_id"], r["test_name"])
            if key in by_key:
                raise SystemExit(f"{key} is not unique in panther_rule_tests.jsonl")
            by_key[key] = r
    out = []
    for set_name, rule_id, test_name, log_type in gold_keys():
        r = by_key[(rule_id, test_name)]
        out.append(
            json.dumps(
                {
                    "set": set_name,
                    "rule_id": rule_id,
                    "test_name": test_name,
                    "log_type": log_type,
                    "expected_alert": r["expected_alert"],
                    "log": r["log"],
                },
                sort_keys=False,
            )
        )
    (OUT / "panther_records.jsonl").write_text("\n".join(out) + "\n")
    shutil.copyfile(shared / "panther_rule_tests/LICENSE.txt", OUT / "LICENSE-panther-analysis.txt")
    return len(out)


RULE = re.compile(r"^- rule:\s*(.+?)\s*$")
PRIORITY = re.compile(r"^\s+priority:\s*([A-Za-z]+)\s*$")


def priorities(path):
    """{rule: PRIORITY} from a Falco rules file, by its line structure: a `priority:`
    line belongs to the last `- rule:` above it."""
    found, rule = {}, None
    for line in path.read_text().splitlines():
        m = RULE.match(line)
        if m:
            rule = m.group(1).strip("'\"")
            continue
        m = PRIORITY.match(line)
        if m and rule is not None:
            found[rule] = m.group(1).upper()
            rule = None
    return found


def copy_falco(shared):
    src = shared / "falco_k8s_audit"
    dst = OUT / "falco"
    dst.mkdir(parents=True, exist_ok=True)
    traces = sorted((src / "trace_files").glob("*.json"))
    for t in traces:
        shutil.copyfile(t, dst / t.name)
    shutil.copyfile(src / "trace_labels.json", dst / "trace_labels.json")
    shutil.copyfile(src / "COPYING", dst / "COPYING")
    table = priorities(src / "engine_v4_k8s_audit_rules.yaml")
    production = priorities(src / "k8s_audit_rules.plugins.yaml")
    labels = json.loads((src / "trace_labels.json").read_text())
    for tests in labels.values():
        for t in tests:
            for rule in t["rules_fired"]:
                a, b = table.get(rule), production.get(rule)
                if a and b and a != b:
                    raise SystemExit(f"Falco rule {rule!r}: priority {a} in one file, {b} in the other")
                if not (a or b):
                    # Defined in a test-only rules file that was not published with the
                    # traces (json_pointer_example); the evaluation treats it as unknown.
                    print(f"note: Falco rule {rule!r} is in neither rules file; left out", file=sys.stderr)
    table.update(production)
    (dst / "rule_priorities.json").write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    return len(traces)


def main():
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data")
    OUT.mkdir(parents=True, exist_ok=True)
    n = copy_panther(shared)
    t = copy_falco(shared)
    print(f"wrote {n} Panther records and {t} Falco traces to {OUT}")


if __name__ == "__main__":
    main()
