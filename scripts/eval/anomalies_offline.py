"""The evaluation's incident figures, offline: the same events in the same order as
scripts/eval-analysis.sh appends them (Falco traces, Panther events, the OTRF capture),
run through `ironlog --json detect` instead of a cluster (Python 3.11, stdlib only).

    python3 scripts/eval/anomalies_offline.py [--bin target/release/ironlog] [--catalogue T ...]
        [--benign]

For iterating on the detector in seconds rather than a 10-minute evaluation. It differs
from the evaluation in one way: no model, so events no rule categorises count as `other`
(the analysis node asks the model), which changes the few flags that depend on a category
(security alerts, failed-login bursts, privilege-then-access sequences). The evaluation's
figure is the one reported; this one is for development. With --benign it lists every
benign entry cited and the incident that cites it.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_analysis as ea  # noqa: E402
import incidents  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/ironlog"))
    ap.add_argument("--catalogue", action="append", default=[])
    ap.add_argument("--benign", action="store_true", help="list the benign entries cited")
    args = ap.parse_args()
    cli = ea.Ironlog(args.bin, None, None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = ea.map_panther(cli, work)
        falco, _ = ea.map_falco(cli)
        otrf = ea.map_otrf(cli)
        mapped = [r for r in records if r["event"]]
        streams = [(t["name"], t["events"]) for t in falco] + [("panther", [r["event"] for r in mapped]), ("otrf", otrf)]
        events, placed, at = [], [], 0
        for name, evs in streams:
            placed.append((name, list(range(at, at + len(evs)))))
            at += len(evs)
            events.extend({k: v for k, v in e.items() if k != "idempotency_key"} for e in evs)
        path = work / "stream.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        extra = [a for t in args.catalogue for a in ("--catalogue", t)]
        run = subprocess.run([args.bin, "--json", "detect", "--format", "jsonl", *extra, str(path)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(run.stderr)
    # Incidents rebuilt from their updates: every entry listed, the highest score.
    by_id = {}
    for line in run.stdout.splitlines():
        u = json.loads(line)
        inc = by_id.setdefault(u["incident"], {"score": 0.0, "entries": set(), "context": set(),
                                               "reasons": [], "key": u["incident_key"]})
        inc["entries"].update(r - 1 for r in u["added"])
        inc["context"].update(r - 1 for r in u.get("context", []))
        for f in u["flags"]:
            inc["score"] = max(inc["score"], f["score"])
            inc["entries"].update(r - 1 for r in f["records"])
            inc["reasons"].append(f"{f['kind']} {f['score']:.2f}: {f['reason'][:140]}")
    flags = [{"score": i["score"], "entries": sorted(i["entries"]), "context": sorted(i["context"] - i["entries"])}
             for i in by_id.values()]
    entries = [{"index": i, "time": e["time"], "action": e["action"], "actor": e["actor"]["id"],
                "user_agent": e["actor"].get("user_agent")} for i, e in enumerate(events)]
    priorities = json.loads((ea.EVAL / "falco/rule_priorities.json").read_text())
    falco_sets = [(name, idx, ea.falco_positive(t["tests"], priorities, False))
                  for t, (name, idx) in zip(falco, placed[:len(falco)])]
    panther_idx = placed[len(falco)][1]
    figures = incidents.evaluate(
        flags,
        falco=falco_sets,
        panther=[(i, r["expected_alert"]) for r, i in zip(mapped, panther_idx)],
        otrf=(json.loads((ea.EVAL / "otrf_labels.json").read_text()), placed[len(falco) + 1][1], entries),
    )
    print("\n".join(incidents.report_lines(figures)))
    if args.benign:
        label = {}
        for name, idx, positive in falco_sets:
            for i in idx:
                label[i] = f"falco {name}" + (" (positive)" if positive else "")
        for r, i in zip(mapped, panther_idx):
            label[i] = f"panther {r['rule_id']} :: {r['test_name']}" + (" (alert)" if r["expected_alert"] else "")
        for inc in by_id.values():
            if inc["score"] < incidents.REVIEW_SCORE:
                continue
            benign = [i for i in sorted(inc["entries"]) if i in label and "(" not in label[i]]
            if benign:
                print(f"- incident {inc['key']} score {inc['score']:.2f}")
                for i in sorted(inc["entries"]):
                    print(f"    {'BENIGN' if i in benign else '      '} {i}: {label.get(i, 'otrf')}")
                for r in inc["reasons"][:4]:
                    print(f"      why: {r}")


if __name__ == "__main__":
    main()
