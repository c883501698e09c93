"""Pure scoring helpers for scripts/eval/eval_analysis.py (Python 3.11, stdlib only).

Nothing here talks to Ironlog: these functions turn what the binary printed, and what
the data and the question set say, into figures.

- times: RFC 3339 to Unix nanoseconds, as Ironlog prints and reads them;
- keyword_baseline: a faithful copy of `keyword_baseline` in
  src/analysis/category/keyword_baseline.rs;
- classification figures: accuracy and macro-F1 over the labels present in gold;
- detection figures: precision and recall of "any flag raised";
- expected entry sets: the structured query of a question applied to the appended events;
- identifiers: the tokens of summary prose that name something, for the independent
  check that a summary names nothing outside its window.
"""
import calendar
import re
import statistics

# ---------------------------------------------------------------- times

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def rfc3339_ns(text):
    """Unix nanoseconds of an RFC 3339 time (any offset, up to nanosecond fractions)."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def opt_ns(text):
    return None if text is None else rfc3339_ns(text)


# ---------------------------------------------------------------- keyword baseline


def keyword_baseline(action, resource, outcome):
    """`keyword_baseline` of src/analysis/category/keyword_baseline.rs, check for check:
    substring tests on the lower-cased "action resource", first match wins."""
    text = f"{action} {resource}".lower()

    def has(keys):
        return any(k in text for k in keys)

    failed = outcome in ("failure", "denied")
    if has(["login", "logon", "signin", "authenticat"]):
        return "failed_login" if failed else "auth_success"
    if has(["alert", "finding", "threat"]):
        return "security_alert"
    if has(["delete", "remove", "destroy"]):
        return "data_deletion"
    if has(["export", "download", "clone", "copy"]):
        return "data_export"
    if has(["policy", "role", "permission", "grant", "member", "privilege"]):
        return "privilege_change"
    if has(["user", "group", "password", "mfa", "account"]):
        return "admin_change"
    if has(["create", "update", "put", "set", "modify", "patch", "enable", "disable"]):
        return "config_change"
    if has(["get", "read", "list", "describe", "decrypt", "query", "select"]):
        return "data_access"
    return "other"


# ---------------------------------------------------------------- classification


def classification(pairs):
    """pairs: [(gold, predicted)]. Accuracy, and macro-F1 over the labels present in gold
    (a label never predicted has F1 0; predictions of labels absent from gold count
    only against precision of nothing, i.e. they lower recall of the gold label)."""
    n = len(pairs)
    if n == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None, "labels": 0}
    correct = sum(1 for g, p in pairs if g == p)
    labels = sorted({g for g, _ in pairs})
    f1s = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        predicted = sum(1 for _, p in pairs if p == label)
        actual = sum(1 for g, _ in pairs if g == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "n": n,
        "accuracy": correct / n,
        "macro_f1": sum(f1s) / len(f1s),
        "labels": len(labels),
    }


def detection(items):
    """items: [(positive, flagged)]. Precision and recall of "any flag raised"."""
    tp = sum(1 for pos, fl in items if pos and fl)
    fp = sum(1 for pos, fl in items if not pos and fl)
    fn = sum(1 for pos, fl in items if pos and not fl)
    return {
        "n": len(items),
        "positives": tp + fn,
        "flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


# ---------------------------------------------------------------- questions

QUERY_FIELDS = ["intent", "actor", "resource", "action", "category", "outcome", "from", "to"]
# Fields whose value is a set of exact values (an OR): in an expectation a string or a list
# of strings, null for unconstrained. `user_agent` and `ip` are expectation-only (the
# answer's query has no such slots; they are judged by the entry set alone).
VALUE_FIELDS = ["actor", "resource", "action", "category", "outcome", "user_agent", "ip"]
# An answer's query may carry, next to the singular key (string or null), a plural key
# with the whole list; when it holds values it is the one compared.
PLURAL_KEYS = {"actor": "actors", "resource": "resources", "action": "actions",
               "category": "categories", "outcome": "outcomes"}


def value_set(v):
    """A field value as a frozenset of exact strings, None when unconstrained (null, or an
    empty list)."""
    if v is None:
        return None
    if isinstance(v, str):
        return frozenset([v])
    if isinstance(v, (list, tuple, set, frozenset)):
        if not all(isinstance(x, str) for x in v):
            raise ValueError(f"not a list of strings: {v!r}")
        return frozenset(v) if v else None
    raise ValueError(f"not a string or a list of strings: {v!r}")


def normalise_query(q):
    """A structured query (an expectation or an answer's `query`) with times as Unix ns and
    every value field as a frozenset of exact values (None = unconstrained), so that equal
    instants written differently, and equal sets written as a string or a list in any
    order, compare equal. A plural key (`actors`, ...) is used when it holds values, else
    the singular one (an empty list means "any", as does null)."""
    out = {"intent": q.get("intent")}
    for k in VALUE_FIELDS:
        plural = PLURAL_KEYS.get(k)
        raw = q.get(plural) if plural else None
        out[k] = value_set(raw) if raw else value_set(q.get(k))
    out["from"] = opt_ns(q.get("from"))
    out["to"] = opt_ns(q.get("to"))
    return out


def matches(entry, q):
    """Whether one appended entry satisfies a (normalised) expected query: every given
    condition holds (a value field: the entry's value is one of the set); times are
    half-open [from, to) on the event's own time."""
    if q["from"] is not None and entry["time_ns"] < q["from"]:
        return False
    if q["to"] is not None and entry["time_ns"] >= q["to"]:
        return False
    for field in VALUE_FIELDS:
        if q.get(field) is not None and entry.get(field) not in q[field]:
            return False
    return True


def by_group(rows, key, score="entries_exact"):
    """{group: {n, exact, accuracy}} of a boolean row score, per value of row[key], in
    sorted order of the groups."""
    out = {}
    for r in rows:
        g = r.get(key) or "unlabelled"
        d = out.setdefault(g, {"n": 0, "exact": 0})
        d["n"] += 1
        d["exact"] += 1 if r.get(score) else 0
    return {g: dict(d, accuracy=d["exact"] / d["n"]) for g, d in sorted(out.items())}


def lowest(groups):
    """The group with the lowest accuracy (ties: the larger n, then the name), or None."""
    if not groups:
        return None
    g = min(groups, key=lambda k: (groups[k]["accuracy"], -groups[k]["n"], k))
    return {"group": g, **groups[g]}


# ---------------------------------------------------------------- summaries

_EDGE = ".,;:!?\"'()[]{}`*"
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?%?$")


def prose_tokens(prose):
    """Whitespace tokens with surrounding punctuation removed."""
    for raw in prose.split():
        t = raw.strip(_EDGE)
        if t:
            yield t


def is_number(token):
    return bool(_NUMBER.match(token))


def shaped_identifier(token):
    """A token that names something by its shape: an email, an IP, an ARN, a k8s path, or
    any word with a digit, '@', ':', '_' or '/' (bare numbers are counts, checked apart)."""
    if is_number(token):
        return False
    return any(c.isdigit() or c in "@:_/" for c in token)


def foreign_values(prose, log_values, window_values):
    """Actor, resource and action values of the whole log that the prose names as a whole
    token and that no entry of the window carries."""
    found = []
    for v in log_values:
        if v in window_values or len(v) < 3:
            continue
        # Not part of a longer name: "developer" is not named by
        # "john.developer"; a full stop after the value ends a sentence.
        pattern = r"(?<![\w@:/.-])" + re.escape(v) + r"(?![\w@:/-]|\.\w)"
        if re.search(pattern, prose, flags=re.IGNORECASE):
            found.append(v)
    return found


def named_in(value, text):
    """Whether `value` is named in `text` as a whole name (not inside a longer one)."""
    pattern = r"(?<![\w@:/.-])" + re.escape(value) + r"(?![\w@:/-]|\.\w)"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def misattributed_pairs(prose, window_entries, vocabulary=()):
    """Pairs of values a clause of the prose names together, as an actor, an action or a
    resource each, that no entry of the window has together in those fields: "alice did
    DeleteBucket on logs" when alice never did DeleteBucket, or never on logs. Values of one
    field named together (a list of actors) make no pair. A value that is part of a longer
    value named in the same sentence counts as that longer value only. Values that are also
    words of the facts' own vocabulary (`vocabulary`: category and outcome names such as
    "unknown") are not taken for names."""
    fields = ("actor", "action", "resource")
    roles = {}
    for e in window_entries:
        for f in fields:
            roles.setdefault(e[f], set()).add(f)
    bad = []
    # Clauses: a flag's reason may tell two entries apart ("changed privileges (A on R) and
    # 0 s later: B on S"); each clause is one claim.
    clauses = [c for sentence in re.split(r"(?<=[.!?])\s+", prose)
               for c in re.split(r": | and | then ", sentence)]
    for sentence in clauses:
        named = [v for v in roles if len(v) >= 2 and v not in vocabulary and named_in(v, sentence)]
        named = [v for v in named if not any(v != w and v.lower() in w.lower() for w in named)]
        for i, a in enumerate(sorted(named)):
            for b in sorted(named)[i + 1:]:
                options = [(fa, fb) for fa in roles[a] for fb in roles[b] if fa != fb]
                if not options:
                    continue
                if not any(e[fa] == a and e[fb] == b for fa, fb in options for e in window_entries):
                    bad.append([a, b, sentence])
    return bad


def repeats_a_sentence(prose):
    """Whether the prose says the same sentence (or line) twice: the base model's loops.
    Sentences are compared without list numbering and case."""
    parts = [p.strip(" .").lower() for p in re.split(r"[\n.!?]+", prose)]
    parts = [re.sub(r"^\d+\s*", "", p) for p in parts]
    parts = [p for p in parts if len(p.split()) >= 3]
    return len(parts) != len(set(parts))


def median_max(values):
    if not values:
        return {"n": 0, "median_s": None, "max_s": None}
    return {"n": len(values), "median_s": statistics.median(values), "max_s": max(values)}
