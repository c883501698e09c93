//! Reading leaves: pages of leaves by index, and queries that take their
//! candidates from the most selective index table and check the rest of
//! the filter on the decoded leaf.

use std::ops::Range;

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, TableHandle};

use super::error::corrupt;
use super::meta::{read_indexed, read_meta};
use super::tables::{IndexDef, ENTRIES, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME, IDX_RESOURCE, META};
use super::{run, LedgerStore, StoreError};
use crate::ledger::event::{LeafRecord, Outcome};
use crate::limits::{PAGE_ENTRIES_MAX, QUERY_SCAN_ROWS_MAX};

/// Filters of a `Query`; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<Outcome>,
    /// Event time lower bound, inclusive.
    pub since_unix_nanos: Option<i64>,
    /// Event time upper bound, exclusive.
    pub until_unix_nanos: Option<i64>,
}

impl QueryFilter {
    fn matches(&self, record: &LeafRecord) -> bool {
        let e = &record.event;
        self.actor.as_ref().is_none_or(|a| *a == e.actor.id)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.resource.as_ref().is_none_or(|r| *r == e.resource)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.since_unix_nanos.is_none_or(|t| e.time_unix_nanos >= t)
            && self.until_unix_nanos.is_none_or(|t| e.time_unix_nanos < t)
    }
}

/// Leaves as (leaf index, leaf bytes).
pub type Leaves = Vec<(u64, Vec<u8>)>;

/// One page of query results.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPage {
    pub entries: Leaves,
    /// Where to resume; `None` when the scan reached the end.
    pub next_page_token: Option<String>,
}

impl LedgerStore {
    /// Leaves `[start, end)` as (index, leaf bytes); `end` is clamped to the
    /// tree size and to one page.
    pub fn entries(&self, start: u64, end: u64) -> Result<(Leaves, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let size = read_meta(&txn.open_table(META)?)?.tree_size;
        if start > size {
            return Err(StoreError::OutOfRange {
                what: "start index",
                value: start,
                size,
            });
        }
        let end = end.min(size).min(start.saturating_add(PAGE_ENTRIES_MAX));
        let table = txn.open_table(ENTRIES)?;
        let mut out = Vec::with_capacity((end.saturating_sub(start)) as usize);
        for row in table.range(start..end)? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        if out.len() as u64 != end.saturating_sub(start) {
            return Err(corrupt(
                "entries",
                format!("{start}..{end}"),
                "not all stored",
            ));
        }
        Ok((out, size))
    }

    /// Runs a query; results are in leaf-index order, one page at a time.
    pub fn query(
        &self,
        filter: &QueryFilter,
        page_size: u64,
        page_token: Option<&str>,
    ) -> Result<QueryPage, StoreError> {
        let after = match page_token {
            None | Some("") => 0,
            Some(t) => t.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                StoreError::BadPageToken {
                    token: t.to_string(),
                }
            })?,
        };
        let page_size = page_size.clamp(1, PAGE_ENTRIES_MAX) as usize;
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let meta_table = txn.open_table(META)?;
        let size = read_meta(&meta_table)?.tree_size;
        let indexed = read_indexed(&meta_table, size)?;
        // Candidates come from the most selective index the filter names,
        // for the leaves it covers, then every newer leaf (at most about
        // `INDEX_DEFER_LEAVES`); the rest of the filter is checked on the
        // decoded leaf.
        let covered = after..indexed.max(after);
        let indexed_candidates = if let Some(actor) = &filter.actor {
            Some(run_scan(&txn, &IDX_ACTOR, actor, covered)?)
        } else if let Some(resource) = &filter.resource {
            Some(run_scan(&txn, &IDX_RESOURCE, resource, covered)?)
        } else if let Some(action) = &filter.action {
            Some(run_scan(&txn, &IDX_ACTION, action, covered)?)
        } else if let Some(outcome) = filter.outcome {
            Some(run_scan(&txn, &IDX_OUTCOME, outcome.as_str(), covered)?)
        } else {
            None
        };
        let candidates: Candidates = match indexed_candidates {
            Some(rows) => Box::new(rows.chain(leaf_indices(&entries, after.max(indexed), size)?)),
            None => leaf_indices(&entries, after, size)?,
        };
        let mut page = QueryPage {
            entries: Vec::new(),
            next_page_token: None,
        };
        for (scanned, index) in candidates.enumerate() {
            let index = index?;
            if scanned as u64 >= QUERY_SCAN_ROWS_MAX || page.entries.len() >= page_size {
                page.next_page_token = Some(index.to_string());
                break;
            }
            let leaf = entries
                .get(index)?
                .ok_or_else(|| corrupt("entries", index, "missing, but a query index names it"))?
                .value()
                .to_vec();
            let record = LeafRecord::decode(&leaf).map_err(|e| corrupt("entries", index, e))?;
            if filter.matches(&record) {
                page.entries.push((index, leaf));
            }
        }
        Ok(page)
    }
}

/// Leaf indices a query considers, in order.
type Candidates<'a> = Box<dyn Iterator<Item = Result<u64, StoreError>> + 'a>;

/// Every stored leaf's index in `[from, to)`.
fn leaf_indices<'a>(
    entries: &'a ReadOnlyTable<u64, &'static [u8]>,
    from: u64,
    to: u64,
) -> Result<Candidates<'a>, StoreError> {
    Ok(Box::new(entries.range(from..to.max(from))?.map(|r| {
        r.map(|(k, _)| k.value()).map_err(StoreError::from)
    })))
}

/// The leaves in `covered` whose field `def` indexes is `value`, from its
/// runs: the one holding `covered.start`, if any, then every later one.
fn run_scan(
    txn: &ReadTransaction,
    def: &'static IndexDef,
    value: &str,
    covered: Range<u64>,
) -> Result<Candidates<'static>, StoreError> {
    let table = txn.open_table(*def)?;
    let limit = QUERY_SCAN_ROWS_MAX as usize + 1;
    let mut found = Vec::new();
    let earlier = table
        .range((value, 0)..=(value, covered.start))?
        .next_back();
    let after_start = covered.start.saturating_add(1).min(covered.end);
    let later = table.range((value, after_start)..(value, covered.end))?;
    for row in earlier.into_iter().chain(later) {
        let (key, rest) = row?;
        let first = key.value().1;
        let indices =
            run::decode(first, rest.value()).map_err(|e| corrupt(def.name(), first, e))?;
        found.extend(indices.into_iter().filter(|i| covered.contains(i)));
        if found.len() >= limit {
            found.truncate(limit);
            break;
        }
    }
    Ok(Box::new(found.into_iter().map(Ok)))
}
