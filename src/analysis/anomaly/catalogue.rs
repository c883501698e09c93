//! The catalogue of detections: known attack steps and risky changes,
//! written as data (`catalogue/*.toml`, one file per platform) rather than
//! as code, so that a detection reads like the behaviour it names and a new
//! one is a table entry, not a function.
//!
//! A detection fires on a single event: its `source` (the ingest format),
//! its `action` (patterns over `Event.action`), the outcomes it cares
//! about, and conditions over the event's native fields (`Event.details`,
//! which ingest keeps verbatim) or its common ones (`@actor`, `@action`,
//! `@resource`, `@ip`, `@user_agent`, `@actor_kind`, `@outcome`).
//!
//! ```toml
//! [[detection]]
//! id = "aws.iam.admin_policy_attached"
//! what = "attached the AdministratorAccess policy"
//! score = 0.8
//! source = ["cloudtrail"]
//! action = ["iam:Attach*Policy"]
//! all = [{ path = "requestParameters.policyArn", like = ["*/AdministratorAccess"] }]
//! ```
//!
//! # Conditions
//! A condition names a `path` (dotted, or a list of keys when a key holds a
//! dot) and exactly one test: `is` (one of the strings), `like` (one of the
//! patterns, `*` any run of characters), `contains` (one of the strings as
//! a substring), `exists` (present and not null, or not), `is_true` (JSON
//! `true` or the string "true"), or `public_ip` (an address outside the
//! private, loopback, link-local and unspecified ranges), or compares with
//! another field of the same event: `same_as` (equal to a value at that
//! path) or `ends_with_field` (ends, at a `/` or `:` boundary or whole, with
//! a value at that path: "the caller's ARN names the user the request is
//! about"). Or it is `any`: a
//! list of conditions, one of which must hold. Strings compare without
//! regard to ASCII case, as pipelines differ in how they case values.
//! Where a path crosses an array, each element is tried; a leaf that is an
//! array holds when one element does; a number, boolean or object compares
//! as its JSON text. Each condition fans out on its own: two conditions on
//! fields of an array's elements may hold on different elements (a table
//! cannot say "the same binding adds this role to this member"), so such
//! detections are written to be safe when they do. `is_true = false` holds
//! for a value present and not true.
//!
//! A detection holds when every `all` condition holds, at least one `any`
//! condition (if it has any), and no `none` condition. One scored below 0.5
//! is context: the detector names it in the reason of a review-level flag
//! raised on the same event, but it raises no flag of its own. `outcome` lists the
//! outcomes it fires on; by default those of a change that took effect
//! (`success` and `unknown`): a refused attempt changed nothing, and
//! repeated refusals are the failure burst's business.
//!
//! # Validation
//! [`Catalogue::parse`] refuses, naming the detection, a duplicate id, a
//! score outside (0, 1], an unknown source or outcome, an empty pattern
//! list, or a condition without exactly one test. The built-in catalogue is
//! parsed once, on first use; a unit test parses it, so a bad table fails
//! the suite rather than a node.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::analysis::details::member;
use crate::analysis::vocabulary::is_internal;
use crate::ledger::event::{Event, Outcome};

/// The built-in tables, one per platform.
const BUILTIN: &[(&str, &str)] = &[
    (
        "aws_identity.toml",
        include_str!("catalogue/aws_identity.toml"),
    ),
    (
        "aws_infrastructure.toml",
        include_str!("catalogue/aws_infrastructure.toml"),
    ),
    ("kubernetes.toml", include_str!("catalogue/kubernetes.toml")),
    ("gcp.toml", include_str!("catalogue/gcp.toml")),
    ("github.toml", include_str!("catalogue/github.toml")),
    ("okta.toml", include_str!("catalogue/okta.toml")),
];

/// The ingest formats a detection may name (`Event.source` as ingest
/// writes it).
const SOURCES: &[&str] = &[
    "cloudtrail",
    "k8s-audit",
    "gcp-audit",
    "github-audit",
    "okta",
    "auditd",
];

/// Why a table was refused.
#[derive(Debug, Error)]
pub enum CatalogueError {
    #[error("{file}: not a detection table: {source}")]
    Syntax {
        file: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{file}: detection {id:?}: {problem}")]
    Invalid {
        file: String,
        id: String,
        problem: String,
    },
}

/// What a detection that fired says.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<'a> {
    pub id: &'a str,
    pub what: &'a str,
    pub score: f32,
}

/// Every detection, in table order, and by the source it reads: an event
/// is matched only against its own format's detections.
#[derive(Debug)]
pub struct Catalogue {
    detections: Vec<Detection>,
    by_source: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    detection: Vec<Detection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Detection {
    id: String,
    what: String,
    score: f32,
    source: Vec<String>,
    /// Patterns over `Event.action` (as `like`); empty: any action.
    #[serde(default)]
    action: Vec<String>,
    #[serde(default)]
    outcome: Option<Vec<String>>,
    #[serde(default)]
    all: Vec<Condition>,
    #[serde(default)]
    any: Vec<Condition>,
    #[serde(default)]
    none: Vec<Condition>,
    /// The ATT&CK technique, for the reader; not matched on.
    #[serde(default)]
    #[allow(dead_code)]
    mitre: Option<String>,
    /// Where the behaviour comes from, for the reader; not matched on.
    #[serde(default)]
    #[allow(dead_code)]
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    #[serde(default)]
    path: Option<FieldPath>,
    #[serde(default)]
    is: Option<Vec<String>>,
    #[serde(default)]
    like: Option<Vec<String>>,
    #[serde(default)]
    contains: Option<Vec<String>>,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    is_true: Option<bool>,
    #[serde(default)]
    public_ip: Option<bool>,
    #[serde(default)]
    same_as: Option<FieldPath>,
    #[serde(default)]
    ends_with_field: Option<FieldPath>,
    #[serde(default)]
    any: Option<Vec<Condition>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FieldPath {
    Dotted(String),
    Keys(Vec<String>),
}

impl FieldPath {
    fn keys(&self) -> Vec<&str> {
        match self {
            FieldPath::Dotted(s) => s.split('.').collect(),
            FieldPath::Keys(k) => k.iter().map(String::as_str).collect(),
        }
    }
}

impl Catalogue {
    /// The built-in catalogue (`catalogue/*.toml`), parsed on first use.
    pub fn builtin() -> Arc<Catalogue> {
        static BUILT: OnceLock<Arc<Catalogue>> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                // The tables are compiled in and parsed by a unit test
                // (`builtin_tables_parse`), so this holds in any build that
                // passed the suite.
                Arc::new(
                    Catalogue::parse(BUILTIN).expect("the built-in detection tables are valid"),
                )
            })
            .clone()
    }

    /// The built-in detections and those of `extra` (file name, TOML
    /// text), checked together (an id may not repeat a built-in one).
    pub fn with_builtin(extra: &[(&str, &str)]) -> Result<Catalogue, CatalogueError> {
        let tables: Vec<(&str, &str)> = BUILTIN.iter().chain(extra).copied().collect();
        Catalogue::parse(&tables)
    }

    /// The detections of `tables` (file name, TOML text), checked.
    pub fn parse(tables: &[(&str, &str)]) -> Result<Catalogue, CatalogueError> {
        let mut detections = Vec::new();
        let mut ids = HashSet::new();
        for (file, text) in tables {
            let table: Table = toml::from_str(text).map_err(|source| CatalogueError::Syntax {
                file: file.to_string(),
                source,
            })?;
            for d in table.detection {
                let invalid = |problem: String| CatalogueError::Invalid {
                    file: file.to_string(),
                    id: d.id.clone(),
                    problem,
                };
                if !ids.insert(d.id.clone()) {
                    return Err(invalid("the id is used twice".into()));
                }
                d.check().map_err(invalid)?;
                detections.push(d);
            }
        }
        let mut by_source: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, d) in detections.iter().enumerate() {
            for source in &d.source {
                by_source.entry(source.clone()).or_default().push(i);
            }
        }
        Ok(Catalogue {
            detections,
            by_source,
        })
    }

    /// How many detections it holds.
    pub fn len(&self) -> usize {
        self.detections.len()
    }

    /// The detections `event` fires, highest score first (ties in table
    /// order).
    pub fn hits(&self, event: &Event) -> Vec<Hit<'_>> {
        let Some(mine) = self.by_source.get(&event.source) else {
            return Vec::new();
        };
        let mut hits: Vec<Hit> = mine
            .iter()
            .map(|&i| &self.detections[i])
            .filter(|d| d.fires(event))
            .map(|d| Hit {
                id: &d.id,
                what: &d.what,
                score: d.score,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }
}

impl Detection {
    fn check(&self) -> Result<(), String> {
        if self.what.trim().is_empty() {
            return Err("`what` is empty".into());
        }
        if !(self.score > 0.0 && self.score <= 1.0) {
            return Err(format!("score {} is outside (0, 1]", self.score));
        }
        if self.source.is_empty() {
            return Err("`source` is empty".into());
        }
        if (1..self.source.len()).any(|i| self.source[..i].contains(&self.source[i])) {
            return Err("a source is named twice".into());
        }
        if let Some(s) = self.source.iter().find(|s| !SOURCES.contains(&s.as_str())) {
            return Err(format!(
                "unknown source {s:?} (known: {})",
                SOURCES.join(", ")
            ));
        }
        if let Some(outcomes) = &self.outcome {
            if outcomes.is_empty() {
                return Err("`outcome` is empty".into());
            }
            for o in outcomes {
                o.parse::<Outcome>()
                    .map_err(|_| format!("unknown outcome {o:?}"))?;
            }
        }
        if self.action.iter().any(|p| p.is_empty()) {
            return Err("an empty action pattern".into());
        }
        for c in self.all.iter().chain(&self.any).chain(&self.none) {
            c.check()?;
        }
        Ok(())
    }

    fn fires(&self, event: &Event) -> bool {
        if !self.source.contains(&event.source) {
            return false;
        }
        let outcome_ok = match &self.outcome {
            Some(list) => list
                .iter()
                .any(|o| o.eq_ignore_ascii_case(event.outcome.as_str())),
            None => matches!(event.outcome, Outcome::Success | Outcome::Unknown),
        };
        if !outcome_ok {
            return false;
        }
        if !self.action.is_empty() && !self.action.iter().any(|p| like(&event.action, p)) {
            return false;
        }
        self.all.iter().all(|c| c.holds(event))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(event)))
            && !self.none.iter().any(|c| c.holds(event))
    }
}

impl Condition {
    fn tests(&self) -> usize {
        [
            self.is.is_some(),
            self.like.is_some(),
            self.contains.is_some(),
            self.exists.is_some(),
            self.is_true.is_some(),
            self.public_ip.is_some(),
            self.same_as.is_some(),
            self.ends_with_field.is_some(),
            self.any.is_some(),
        ]
        .iter()
        .filter(|t| **t)
        .count()
    }

    fn check(&self) -> Result<(), String> {
        if self.tests() != 1 {
            return Err(format!(
                "a condition on {:?} needs exactly one test (is, like, contains, exists, \
                 is_true, public_ip, same_as, ends_with_field or any), not {}",
                self.path,
                self.tests()
            ));
        }
        if let Some(group) = &self.any {
            if self.path.is_some() {
                return Err("an `any` group takes no path (its conditions have their own)".into());
            }
            if group.is_empty() {
                return Err("an empty `any` group".into());
            }
            return group.iter().try_for_each(Condition::check);
        }
        let Some(path) = &self.path else {
            return Err("a condition without a path".into());
        };
        for path in [
            Some(path),
            self.same_as.as_ref(),
            self.ends_with_field.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            check_path(path)?;
        }
        for list in [&self.is, &self.like, &self.contains].into_iter().flatten() {
            if list.is_empty() {
                return Err(format!("an empty list of values for {path:?}"));
            }
        }
        Ok(())
    }

    fn holds(&self, event: &Event) -> bool {
        if let Some(group) = &self.any {
            return group.iter().any(|c| c.holds(event));
        }
        let Some(path) = &self.path else {
            return false;
        };
        let values = values_at(event, path);
        if let Some(other) = &self.same_as {
            let others = values_at(event, other);
            return values.iter().any(|v| {
                let v = v.text();
                others.iter().any(|o| o.text().eq_ignore_ascii_case(&v))
            });
        }
        if let Some(other) = &self.ends_with_field {
            let others = values_at(event, other);
            return values.iter().any(|v| {
                let v = v.text().to_ascii_lowercase();
                others.iter().any(|o| {
                    let o = o.text().to_ascii_lowercase();
                    !o.is_empty()
                        && v.strip_suffix(o.as_str()).is_some_and(|head| {
                            head.is_empty() || head.ends_with('/') || head.ends_with(':')
                        })
                })
            });
        }
        if let Some(present) = self.exists {
            return values.iter().any(|v| !matches!(v, Leaf::Json(Value::Null))) == present;
        }
        values.iter().any(|v| self.test(v))
    }

    fn test(&self, leaf: &Leaf) -> bool {
        if let Some(want) = self.is_true {
            let truth = match leaf {
                Leaf::Json(Value::Bool(b)) => *b,
                other => other.text().eq_ignore_ascii_case("true"),
            };
            return truth == want;
        }
        if let Some(want) = self.public_ip {
            return match leaf.text().parse::<IpAddr>() {
                Ok(ip) => is_public(&ip) == want,
                Err(_) => false,
            };
        }
        let text = leaf.text();
        if let Some(list) = &self.is {
            return list.iter().any(|v| v.eq_ignore_ascii_case(&text));
        }
        if let Some(list) = &self.like {
            return list.iter().any(|p| like(&text, p));
        }
        if let Some(list) = &self.contains {
            return list
                .iter()
                .any(|v| find_ignoring_case(text.as_bytes(), v.as_bytes()).is_some());
        }
        false
    }
}

fn check_path(path: &FieldPath) -> Result<(), String> {
    let keys = path.keys();
    if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
        return Err(format!("an empty key in path {path:?}"));
    }
    if let Some(special) = keys[0].strip_prefix('@') {
        if keys.len() != 1 || !COMMON_FIELDS.contains(&special) {
            return Err(format!(
                "unknown common field {:?} (known: @{})",
                keys.join("."),
                COMMON_FIELDS.join(", @")
            ));
        }
    }
    Ok(())
}

/// Every value at `path` of `event`: a common field, or native fields.
fn values_at<'a>(event: &'a Event, path: &FieldPath) -> Vec<Leaf<'a>> {
    let keys = path.keys();
    let mut values = Vec::new();
    match keys.first().and_then(|k| k.strip_prefix('@')) {
        Some(common) => {
            if let Some(s) = common_field(event, common) {
                values.push(Leaf::Text(s));
            }
        }
        None => collect(&event.details, &keys, &mut values),
    }
    values
}

/// The common fields a path may name with `@`.
const COMMON_FIELDS: &[&str] = &[
    "actor",
    "actor_kind",
    "action",
    "resource",
    "ip",
    "user_agent",
    "outcome",
];

fn common_field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    match name {
        "actor" => Some(&event.actor.id),
        "actor_kind" => event.actor.kind.as_deref(),
        "action" => Some(&event.action),
        "resource" => Some(&event.resource),
        "ip" => event.actor.ip.as_deref(),
        "user_agent" => event.actor.user_agent.as_deref(),
        "outcome" => Some(event.outcome.as_str()),
        _ => None,
    }
}

/// A value a condition tests.
enum Leaf<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl Leaf<'_> {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Leaf::Text(s) => (*s).into(),
            Leaf::Json(Value::String(s)) => s.as_str().into(),
            Leaf::Json(v) => v.to_string().into(),
        }
    }
}

/// Every value at `keys` below `details`, fanning out over arrays.
fn collect<'a>(details: &'a Map<String, Value>, keys: &[&str], out: &mut Vec<Leaf<'a>>) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    if let Some(v) = member(details, first) {
        descend(v, rest, out);
    }
}

fn descend<'a>(value: &'a Value, keys: &[&str], out: &mut Vec<Leaf<'a>>) {
    match (value, keys.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|v| descend(v, keys, out)),
        (_, None) => out.push(Leaf::Json(value)),
        (Value::Object(map), Some((first, rest))) => {
            if let Some(v) = member(map, first) {
                descend(v, rest, out);
            }
        }
        _ => {}
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters; ASCII case-insensitive. Allocates nothing for patterns with
/// at most one `*` (nearly all): every event is matched against every
/// action pattern of its format's detections.
fn like(text: &str, pattern: &str) -> bool {
    let (text, pattern) = (text.as_bytes(), pattern.as_bytes());
    let mut parts = pattern.split(|b| *b == b'*');
    let first = parts.next().unwrap_or_default();
    let Some(mut last) = parts.next() else {
        return text.eq_ignore_ascii_case(pattern);
    };
    let mut middles = Vec::new();
    for part in parts {
        middles.push(last);
        last = part;
    }
    if text.len() < first.len() + last.len()
        || !text[..first.len()].eq_ignore_ascii_case(first)
        || !text[text.len() - last.len()..].eq_ignore_ascii_case(last)
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in middles {
        match find_ignoring_case(rest, middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Where `needle` first occurs in `hay`, ASCII case-insensitively.
fn find_ignoring_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Not internal (as questions read "internal": private, loopback,
/// link-local), and not an address no request comes from (unspecified,
/// broadcast) or one shared behind a carrier's NAT. The documentation
/// ranges count as public: examples and test fixtures use them to stand for
/// internet addresses.
fn is_public(ip: &IpAddr) -> bool {
    let unroutable = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_unspecified() || v4.is_broadcast() || o[0] == 100 && (64..128).contains(&o[1])
        }
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    !is_internal(ip) && !unroutable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::Actor;
    use serde_json::json;

    fn event(source: &str, action: &str, outcome: Outcome, details: Value) -> Event {
        Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: "alice".into(),
                kind: Some("IAMUser".into()),
                ip: Some("8.8.8.8".into()),
                user_agent: Some("aws-cli/2".into()),
            },
            action: action.into(),
            resource: "r".into(),
            outcome,
            source: source.into(),
            details: details.as_object().cloned().unwrap_or_default(),
            idempotency_key: None,
        }
    }

    fn one(table: &str) -> Catalogue {
        Catalogue::parse(&[("t.toml", table)]).unwrap()
    }

    #[test]
    fn builtin_tables_parse() {
        let c = Catalogue::parse(BUILTIN).unwrap();
        assert!(c.len() >= 100, "only {} detections", c.len());
        assert_eq!(Catalogue::builtin().len(), c.len());
    }

    #[test]
    fn an_organisations_tables_add_to_the_builtin_ones_without_reusing_an_id() {
        let mine = "[[detection]]\nid = \"acme.vault_opened\"\nwhat = \"opened the vault\"\nscore = 0.9\nsource = [\"cloudtrail\"]\naction = [\"vault:Open\"]\n";
        let both = Catalogue::with_builtin(&[("acme.toml", mine)]).unwrap();
        assert_eq!(both.len(), Catalogue::builtin().len() + 1);
        let e = event("cloudtrail", "vault:Open", Outcome::Success, json!({}));
        assert_eq!(both.hits(&e)[0].id, "acme.vault_opened");
        let clash = mine.replace("acme.vault_opened", "aws.root.write_activity");
        let err = Catalogue::with_builtin(&[("acme.toml", &clash)]).unwrap_err();
        assert!(
            err.to_string().contains("acme.toml") && err.to_string().contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn patterns_match_with_stars_anywhere() {
        assert!(like("iam:AttachUserPolicy", "iam:attach*policy"));
        assert!(like("iam:AttachUserPolicy", "*"));
        assert!(like("abc", "a*b*c"));
        assert!(!like("ac", "a*b*c"));
        assert!(!like("ab", "ab*b"));
        assert!(like("abb", "ab*b"));
        assert!(!like("iam:DetachUserPolicy", "iam:Attach*"));
        assert!(like("x", "x"));
        assert!(!like("xy", "x"));
        assert!(like("S3:GetObject", "s3:*object"));
        assert!(like("abXcdYef", "ab*cd*ef"));
        assert!(!like("abXcdYe", "ab*cd*ef"));
        assert!(like("", "*"));
        assert!(!like("", "a*"));
        assert_eq!(find_ignoring_case(b"Hello World", b"WORLD"), Some(6));
        assert_eq!(find_ignoring_case(b"abc", b""), Some(0));
        assert_eq!(find_ignoring_case(b"ab", b"abc"), None);
    }

    #[test]
    fn conditions_reach_through_arrays_and_nested_objects() {
        let c = one(r#"
            [[detection]]
            id = "layers"
            what = "added a layer"
            score = 0.6
            source = ["cloudtrail"]
            action = ["lambda:UpdateFunctionConfiguration*"]
            all = [{ path = "responseElements.layers.arn", like = ["arn:aws:lambda:*:layer:*"] }]
            none = [{ path = "@actor", is = ["deployer"] }]
        "#);
        let with = json!({"responseElements": {"layers": [{"arn": "x"}, {"arn": "arn:aws:lambda:us-west-2:1:layer:evil:1"}]}});
        let e = event(
            "cloudtrail",
            "lambda:UpdateFunctionConfiguration20150331v2",
            Outcome::Success,
            with.clone(),
        );
        assert_eq!(c.hits(&e).len(), 1);
        let without = json!({"responseElements": {"layers": []}});
        assert!(c
            .hits(&event(
                "cloudtrail",
                "lambda:UpdateFunctionConfiguration",
                Outcome::Success,
                without
            ))
            .is_empty());
        let mut deployer = e.clone();
        deployer.actor.id = "deployer".into();
        assert!(c.hits(&deployer).is_empty(), "a `none` condition vetoes");
        let refused = event(
            "cloudtrail",
            "lambda:UpdateFunctionConfiguration",
            Outcome::Denied,
            with.clone(),
        );
        assert!(
            c.hits(&refused).is_empty(),
            "by default only changes that took effect"
        );
        let other = event(
            "k8s-audit",
            "lambda:UpdateFunctionConfiguration",
            Outcome::Success,
            with,
        );
        assert!(c.hits(&other).is_empty(), "another source");
    }

    #[test]
    fn every_kind_of_test() {
        let c = one(r#"
            [[detection]]
            id = "all-tests"
            what = "w"
            score = 1.0
            source = ["okta"]
            outcome = ["failure"]
            all = [
              { path = "a", is = ["Yes"] },
              { path = "b", contains = ["MID"] },
              { path = "c", exists = true },
              { path = "d", exists = false },
              { path = "e", is_true = true },
              { path = "@ip", public_ip = true },
              { path = ["f.g"], is = ["3"] },
              { any = [{ path = "h", is = ["no"] }, { path = "i", like = ["*z"] }] },
            ]
        "#);
        let details = json!({"a": "yes", "b": {"x": "a-mid-b"}, "c": 0, "d": null, "e": "TRUE", "f.g": 3, "i": "xyz"});
        let e = event("okta", "any.action", Outcome::Failure, details.clone());
        assert_eq!(
            c.hits(&e),
            vec![Hit {
                id: "all-tests",
                what: "w",
                score: 1.0
            }]
        );
        assert!(
            c.hits(&event("okta", "x", Outcome::Success, details.clone()))
                .is_empty(),
            "outcome listed"
        );
        let mut private = e.clone();
        private.actor.ip = Some("10.1.2.3".into());
        assert!(c.hits(&private).is_empty(), "private address");
        for (key, value) in [
            ("a", json!("no")),
            ("b", json!("low")),
            ("e", json!(false)),
            ("i", json!("xy")),
        ] {
            let mut d = details.clone();
            d[key] = value;
            assert!(
                c.hits(&event("okta", "x", Outcome::Failure, d)).is_empty(),
                "{key}"
            );
        }
        let mut d = details.clone();
        d["d"] = json!("now present");
        assert!(
            c.hits(&event("okta", "x", Outcome::Failure, d)).is_empty(),
            "exists = false"
        );
    }

    #[test]
    fn fields_compare_with_other_fields_of_the_same_event() {
        let c = one(r#"
            [[detection]]
            id = "keys-for-another"
            what = "created access keys for another user"
            score = 0.7
            source = ["cloudtrail"]
            action = ["iam:CreateAccessKey"]
            none = [{ path = "userIdentity.arn", ends_with_field = "requestParameters.userName" }]

            [[detection]]
            id = "self"
            what = "acted on itself"
            score = 0.5
            source = ["cloudtrail"]
            all = [{ path = "@actor", same_as = "target.name" }]
        "#);
        let keys = |caller: &str, user: &str| {
            event(
                "cloudtrail",
                "iam:CreateAccessKey",
                Outcome::Success,
                json!({"userIdentity": {"arn": caller}, "requestParameters": {"userName": user}}),
            )
        };
        let own = keys("arn:aws:iam::1:user/bob", "bob");
        assert!(c.hits(&own).is_empty(), "a user's own keys");
        let other = keys("arn:aws:iam::1:user/alice", "bob");
        assert_eq!(c.hits(&other)[0].id, "keys-for-another");
        let suffix_only = keys("arn:aws:iam::1:user/jimbob", "bob");
        assert_eq!(
            c.hits(&suffix_only).len(),
            1,
            "a name ends only at a boundary"
        );
        let no_user = event(
            "cloudtrail",
            "iam:CreateAccessKey",
            Outcome::Success,
            json!({"userIdentity": {"arn": "x"}}),
        );
        assert_eq!(
            c.hits(&no_user).len(),
            1,
            "nothing to compare with: the veto does not hold"
        );
        let itself = event(
            "cloudtrail",
            "x",
            Outcome::Success,
            json!({"target": [{"name": "ALICE"}]}),
        );
        assert_eq!(c.hits(&itself)[0].id, "self");
    }

    #[test]
    fn bad_tables_are_refused_naming_the_detection() {
        let base =
            "[[detection]]\nid = \"d\"\nwhat = \"w\"\nscore = 0.5\nsource = [\"cloudtrail\"]\n";
        for (extra, problem) in [
            ("all = [{ path = \"a\" }]", "exactly one test"),
            (
                "all = [{ path = \"a\", is = [\"x\"], like = [\"y\"] }]",
                "exactly one test",
            ),
            (
                "all = [{ path = \"@nope\", is = [\"x\"] }]",
                "unknown common field",
            ),
            ("all = [{ path = \"a\", is = [] }]", "empty list"),
            ("outcome = [\"maybe\"]", "unknown outcome"),
            ("all = [{ any = [] }]", "empty `any`"),
            (
                "all = [{ path = \"a\", same_as = \"@who\" }]",
                "unknown common field",
            ),
        ] {
            let err = Catalogue::parse(&[("t.toml", &format!("{base}{extra}\n"))]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("detection \"d\"") && text.contains(problem),
                "{extra}: {text}"
            );
        }
        let twice = format!("{base}{base}");
        assert!(Catalogue::parse(&[("t.toml", &twice)])
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let bad_score = base.replace("0.5", "1.5");
        assert!(Catalogue::parse(&[("t.toml", &bad_score)])
            .unwrap_err()
            .to_string()
            .contains("outside"));
        let repeated = base.replace("[\"cloudtrail\"]", "[\"cloudtrail\", \"cloudtrail\"]");
        assert!(Catalogue::parse(&[("t.toml", &repeated)])
            .unwrap_err()
            .to_string()
            .contains("named twice"));
        let bad_source = base.replace("cloudtrail", "syslog");
        assert!(Catalogue::parse(&[("t.toml", &bad_source)])
            .unwrap_err()
            .to_string()
            .contains("unknown source"));
        assert!(matches!(
            Catalogue::parse(&[("t.toml", "[[detection]]\nid = 3\n")]),
            Err(CatalogueError::Syntax { .. })
        ));
    }

    #[test]
    fn public_addresses_exclude_private_and_documentation_ranges() {
        for ip in ["8.8.8.8", "2600::1", "52.1.2.3", "203.0.113.7"] {
            assert!(is_public(&ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!is_public(&ip.parse().unwrap()), "{ip}");
        }
    }
}
