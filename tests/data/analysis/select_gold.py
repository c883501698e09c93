#!/usr/bin/env python3
"""Prints the (rule_id, test_name, log_type) of the records panther_gold.jsonl labels,
in order, from panther_rule_tests.jsonl (path given as the first argument).

The selection is deterministic: file order, `has_mocks` skipped, the record's own format
decided from its shape (below), then every K-th record of each format, starting at the first.
"""
import json
import sys

K = 4
FORMATS = ["AWS.CloudTrail", "Amazon.EKS.Audit", "GCP.AuditLog", "Okta.SystemLog", "GitHub.Audit"]


def shape(log):
    """The format a raw record is in, judged by its top-level keys (case-insensitive,
    because some Panther fixtures have lower-cased keys)."""
    if not isinstance(log, dict):
        return None
    keys = {k.lower() for k in log}
    if "eventsource" in keys and "eventname" in keys:
        return "AWS.CloudTrail"
    if "protopayload" in keys:
        return "GCP.AuditLog"
    if ("verb" in keys and ("objectref" in keys or "requesturi" in keys)) or str(
        log.get("apiVersion", "")
    ).startswith("audit.k8s.io"):
        return "Amazon.EKS.Audit"
    if "eventtype" in keys and ("actor" in keys or "displaymessage" in keys) and "outcome" in keys:
        return "Okta.SystemLog"
    if "action" in keys and keys & {"org", "repo", "actor", "business"} and "action_label" not in keys:
        return "GitHub.Audit"
    return None


def record_format(record):
    """A rule's test may list several log types; the record is kept under the one its
    shape shows, and only when the rule lists it and any p_log_type agrees."""
    found = shape(record["log"])
    if found is None or found not in record["log_types"]:
        return None
    declared = record["log"].get("p_log_type")
    if declared and declared != found:
        return None
    return found


def main(path):
    pools = {f: [] for f in FORMATS}
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if record["has_mocks"]:
                continue
            fmt = record_format(record)
            if fmt:
                pools[fmt].append(record)
    for fmt in FORMATS:
        for i, record in enumerate(pools[fmt]):
            if i % K == 0:
                print(json.dumps([record["rule_id"], record["test_name"], fmt]))


if __name__ == "__main__":
    main(sys.argv[1])
