"""Incident-level scoring of the anomaly flags (Python 3.11, stdlib only).

Pure functions over what the binary printed (`ironlog --json anomalies`: one incident per
line, `entries` listing every entry of it) and the appended entries, against labelled
capture sets. Nothing here talks to Ironlog; scripts/eval/eval_analysis.py calls
`evaluate` and `report_lines`.

Per set, counting only flags scoring >= REVIEW_SCORE (the detector's "review" band,
src/analysis/anomaly/mod.rs):
- incident recall: share of labelled incidents with at least one entry cited by a flag;
- entry recall: share of labelled malicious entries cited by a flag (how much of each
  incident's evidence an analyst exporting the flags gets);
- benign cited: share of benign entries cited by a flag as evidence (what the analyst
  must read through, and what an export of the evidence would sweep in);
- benign in context: benign entries a flag lists only as context (the actor's other
  entries while a single-event incident was open; see src/analysis/anomaly/incident.rs),
  reported beside, not counted as cited.

Labelled sets:
- Falco traces: a positive trace (eval_analysis.falco_positive) is one incident whose
  entries are all malicious; every entry of a negative trace is benign;
- Panther events: each event expected to alert is one incident of one entry; the others
  are benign;
- OTRF "EC2 proxy, S3 exfiltration": tests/data/analysis/eval/otrf_labels.json names
  the malicious entries by (time, action, actor, user_agent); the rest of the capture is
  benign.
"""
import sys

REVIEW_SCORE = 0.5


def cited(flags, min_score=REVIEW_SCORE):
    """Entry indices cited by a flag scoring at least `min_score`."""
    return {i for f in flags if f["score"] >= min_score for i in f["entries"]}


def in_context(flags, min_score=REVIEW_SCORE):
    """Entry indices a flag scoring at least `min_score` lists as context."""
    return {i for f in flags if f["score"] >= min_score for i in f.get("context", [])}


def share(part, whole):
    return None if whole == 0 else part / whole


def incident_figures(flags, incidents, benign, min_score=REVIEW_SCORE):
    """Figures of one labelled set. `incidents`: one list of malicious entry indices per
    incident; `benign`: the set's benign entry indices."""
    seen = cited(flags, min_score)
    context = in_context(flags, min_score) - seen
    malicious = {i for inc in incidents for i in inc}
    benign = set(benign)
    if malicious & benign:
        raise ValueError(f"entries labelled both malicious and benign: {sorted(malicious & benign)[:5]}")
    detected = sum(1 for inc in incidents if seen.intersection(inc))
    return {
        "incidents": len(incidents),
        "incidents_detected": detected,
        "incident_recall": share(detected, len(incidents)),
        "malicious_entries": len(malicious),
        "malicious_cited": len(malicious & seen),
        "entry_recall": share(len(malicious & seen), len(malicious)),
        "benign_entries": len(benign),
        "benign_cited": len(benign & seen),
        "benign_cited_share": share(len(benign & seen), len(benign)),
        "benign_context": len(benign & context),
        "min_score": min_score,
    }


def falco_sets(traces):
    """`traces`: (name, entry indices, positive) per trace. Returns (incidents, benign)."""
    incidents = [list(idx) for _, idx, positive in traces if positive and idx]
    benign = [i for _, idx, positive in traces if not positive for i in idx]
    return incidents, benign


def panther_sets(events):
    """`events`: (entry index, expected_alert) per event. Returns (incidents, benign)."""
    return [[i] for i, alert in events if alert], [i for i, alert in events if not alert]


def entry_key(entry):
    """How otrf_labels.json names an entry: (time, action, actor, user_agent), with the
    entry as eval_analysis.py records it (time as appended, RFC 3339)."""
    return (entry["time"], entry["action"], entry["actor"], entry.get("user_agent"))


def otrf_sets(labels, indices, entries):
    """The OTRF capture's labelled incidents over its appended entries. `labels`: the
    parsed otrf_labels.json; `indices`: the capture's entry indices; `entries`: rows with
    index, time, action, actor, user_agent (eval_analysis.py's `entries`). Every labelled
    entry must be found exactly once. Returns (incidents, benign)."""
    by_key = {}
    for i in indices:
        by_key.setdefault(entry_key(entries[i]), []).append(i)
    incidents = []
    for inc in labels["incidents"]:
        found = []
        for m in inc["malicious"]:
            key = (m["time"], m["action"], m["actor"], m["user_agent"])
            hits = by_key.get(key, [])
            if len(hits) != 1:
                raise ValueError(f"otrf label {key} matches {len(hits)} entries, not one")
            found.append(hits[0])
        incidents.append(sorted(found))
    malicious = {i for inc in incidents for i in inc}
    return incidents, [i for i in indices if i not in malicious]


def evaluate(flags, falco, panther, otrf, min_score=REVIEW_SCORE):
    """Every set's figures. `falco`: as falco_sets takes; `panther`: as panther_sets
    takes; `otrf`: (labels, indices, entries) as otrf_sets takes."""
    return {
        "falco": incident_figures(flags, *falco_sets(falco), min_score),
        "panther": incident_figures(flags, *panther_sets(panther), min_score),
        "otrf": incident_figures(flags, *otrf_sets(*otrf), min_score),
    }


def pct(x):
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def report_lines(figures):
    """The report block for `evaluate`'s figures."""
    score = next(iter(figures.values()))["min_score"]
    lines = [f"  incidents (flags scoring >= {score}; a flag cites every entry of its incident):"]
    for name, title in (("falco", "Falco traces"), ("panther", "Panther events"), ("otrf", "OTRF EC2/S3")):
        f = figures[name]
        lines.append(
            f"    {title:<15} incidents {pct(f['incident_recall'])} ({f['incidents_detected']}/{f['incidents']})"
            f"  malicious entries {pct(f['entry_recall'])} ({f['malicious_cited']}/{f['malicious_entries']})"
            f"  benign cited {pct(f['benign_cited_share'])} ({f['benign_cited']}/{f['benign_entries']})"
            f"  benign in context {f.get('benign_context', 0)}")
    return lines


def _self_test():
    """The figures on a small hand-computed case."""
    flags = [
        {"score": 0.7, "entries": [1, 2, 3]},
        {"score": 0.9, "entries": [10]},
        {"score": 0.3, "entries": [4, 20]},  # context: below the review score
    ]
    flags[1]["context"] = [21, 10]
    f = incident_figures(flags, [[1, 2, 4, 5], [6], [10]], benign=[3, 20, 21])
    assert f["benign_context"] == 1, f
    assert (f["incidents_detected"], f["incidents"]) == (2, 3), f
    assert (f["malicious_cited"], f["malicious_entries"]) == (3, 6), f
    assert (f["benign_cited"], f["benign_entries"]) == (1, 3), f
    assert falco_sets([("a", [0, 1], True), ("b", [2], False)]) == ([[0, 1]], [2])
    assert panther_sets([(5, True), (6, False)]) == ([[5]], [6])
    entries = [{"time": "t", "action": a, "actor": "s", "user_agent": "mac"} for a in "xyz"]
    labels = {"incidents": [{"malicious": [{"time": "t", "action": "y", "actor": "s", "user_agent": "mac"}]}]}
    assert otrf_sets(labels, [0, 1, 2], entries) == ([[1]], [0, 2])
    assert incident_figures([], [], [])["incident_recall"] is None


if __name__ == "__main__":
    _self_test()
    print("incidents.py: self-test passed", file=sys.stderr)
