//! The detector's bounded state: a least-recently-used map, value sets that
//! saturate instead of growing, and event windows keyed by event time.
//!
//! Every structure here has a hard cap from `crate::limits`; none grows with
//! the length of the log.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

/// A 64-bit digest of a value, so baselines store 8 bytes per value instead
/// of strings up to a kilobyte. A collision makes a new value look known
/// (a missed baseline flag), never a false one. The hasher has fixed keys,
/// so digests are stable within a run, which is all equality needs.
pub fn digest(value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A map that holds at most `cap` entries and forgets the least recently
/// used one to make room.
pub struct Lru<V> {
    /// Value and the tick it was last used at.
    entries: HashMap<String, (u64, V)>,
    /// Keys by last-use tick; the first is the one to forget.
    by_age: BTreeMap<u64, String>,
    tick: u64,
    cap: usize,
}

impl<V> Lru<V> {
    pub fn new(cap: usize) -> Lru<V> {
        Lru {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// The value for `key`, created by `make` if absent, marked as just used.
    pub fn touch(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        // The key's copy in `by_age` moves to the new tick, not reallocated.
        let name = match self.entries.get(key) {
            Some((used, _)) => self.by_age.remove(used),
            None => {
                if self.entries.len() >= self.cap {
                    if let Some((_, oldest)) = self.by_age.pop_first() {
                        self.entries.remove(&oldest);
                    }
                }
                self.entries.insert(key.to_string(), (tick, make()));
                None
            }
        };
        self.by_age
            .insert(tick, name.unwrap_or_else(|| key.to_string()));
        let entry = self
            .entries
            .get_mut(key)
            .expect("the key was inserted or found above");
        entry.0 = tick;
        &mut entry.1
    }

    /// The value for `key`, if kept, marked as just used.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let (used, _) = self.entries.get(key)?;
        let name = self.by_age.remove(used)?;
        self.tick += 1;
        self.by_age.insert(self.tick, name);
        let entry = self.entries.get_mut(key)?;
        entry.0 = self.tick;
        Some(&mut entry.1)
    }

    /// Keeps `value` for `key`, in place of any value it had, marked as just
    /// used; forgets the least recently used key if that makes room.
    pub fn insert(&mut self, key: &str, value: V) {
        self.remove(key);
        self.touch(key, || value);
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some((used, _)) = self.entries.remove(key) {
            self.by_age.remove(&used);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a [`BoundedSet`] said about a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Known,
    /// Not seen before; it is now remembered.
    New,
    /// Not seen before, but the set is full: the actor has too many distinct
    /// values for a baseline of this kind to mean anything.
    Saturated,
}

/// A set of value digests that stops growing at `cap`.
#[derive(Default)]
pub struct BoundedSet {
    values: Vec<u64>,
}

impl BoundedSet {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn contains(&self, value: u64) -> bool {
        self.values.contains(&value)
    }

    /// Remembers `value` if there is room, and says whether it was new.
    pub fn insert(&mut self, value: u64, cap: usize) -> Seen {
        if self.values.contains(&value) {
            Seen::Known
        } else if self.values.len() >= cap {
            Seen::Saturated
        } else {
            self.values.push(value);
            Seen::New
        }
    }
}

/// One event in a window.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub time_ns: i64,
    pub index: u64,
    /// Digest of what the event touched (resource, or acting actor).
    pub what: u64,
}

/// Events within `window_ns` of the latest event time seen, at most `cap`.
///
/// Keyed by event time, not arrival: an event older than the window (by the
/// latest time seen) is not added, and a late event never moves the window
/// back. When full, the oldest entries give way.
#[derive(Default)]
pub struct Window {
    marks: VecDeque<Mark>,
    latest_ns: Option<i64>,
    /// Event time of the last flag this window raised, for the cool-down.
    pub flagged_at_ns: Option<i64>,
}

impl Window {
    /// Adds `mark` unless it is too old; returns whether it was added.
    pub fn add(&mut self, mark: Mark, window_ns: i64, cap: usize) -> bool {
        let latest = self.latest_ns.map_or(mark.time_ns, |l| l.max(mark.time_ns));
        self.latest_ns = Some(latest);
        let cutoff = latest.saturating_sub(window_ns);
        self.marks.retain(|m| m.time_ns >= cutoff);
        if mark.time_ns < cutoff {
            return false;
        }
        while self.marks.len() >= cap {
            self.marks.pop_front();
        }
        self.marks.push_back(mark);
        true
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Distinct `what` digests in the window.
    pub fn distinct(&self) -> usize {
        let mut seen: Vec<u64> = self.marks.iter().map(|m| m.what).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// The latest `n` entry indices, in log order.
    pub fn entries(&self, n: usize) -> Vec<u64> {
        let mut out: Vec<u64> = self.marks.iter().map(|m| m.index).collect();
        out.sort_unstable();
        out.split_off(out.len().saturating_sub(n))
    }

    /// Whether a flag may fire at `time_ns`: never flagged, or the last flag
    /// is a whole window behind.
    pub fn cooled(&self, time_ns: i64, window_ns: i64) -> bool {
        self.flagged_at_ns
            .is_none_or(|at| time_ns >= at.saturating_add(window_ns))
    }
}

/// Events per fixed-width time bucket, against the mean of the actor's
/// earlier active buckets.
#[derive(Default)]
pub struct Rate {
    bucket: Option<i64>,
    pub count: u32,
    /// Mean events per active bucket, over closed buckets.
    pub mean: f32,
    pub closed: u32,
    pub flagged: bool,
    /// Latest entries in the current bucket, for the flag.
    pub recent: VecDeque<u64>,
}

impl Rate {
    /// Counts an event at `time_ns`; returns false for an event from an
    /// earlier bucket than the current one (late events are not counted).
    pub fn add(&mut self, time_ns: i64, index: u64, bucket_ns: i64, keep: usize) -> bool {
        let bucket = time_ns.div_euclid(bucket_ns.max(1));
        match self.bucket {
            Some(current) if bucket < current => return false,
            Some(current) if bucket == current => {}
            _ => {
                if self.count > 0 {
                    // Running mean that settles after 20 buckets, then
                    // follows slow drift (an exponential average).
                    self.closed = self.closed.saturating_add(1);
                    let weight = 1.0 / self.closed.min(20) as f32;
                    self.mean += (self.count as f32 - self.mean) * weight;
                }
                self.bucket = Some(bucket);
                self.count = 0;
                self.flagged = false;
                self.recent.clear();
            }
        }
        self.count = self.count.saturating_add(1);
        if self.recent.len() >= keep {
            self.recent.pop_front();
        }
        self.recent.push_back(index);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_forgets_the_least_recently_used() {
        let mut lru = Lru::new(2);
        *lru.touch("a", || 1) += 0;
        lru.touch("b", || 2);
        lru.touch("a", || 99);
        lru.touch("c", || 3);
        assert_eq!(lru.len(), 2);
        assert_eq!(*lru.touch("a", || 100), 1, "a was used recently and kept");
        assert_eq!(*lru.touch("b", || 200), 200, "b was forgotten");
        assert_eq!(lru.by_age.len(), lru.entries.len());
    }

    #[test]
    fn lru_get_marks_used_insert_replaces_and_remove_forgets() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get_mut("a").copied(), Some(1));
        assert_eq!(lru.get_mut("zz"), None, "get does not insert");
        lru.insert("c", 3);
        assert_eq!(lru.get_mut("b"), None, "b was least recently used");
        lru.insert("a", 10);
        assert_eq!(lru.get_mut("a").copied(), Some(10));
        assert_eq!(lru.len(), 2);
        lru.remove("a");
        assert_eq!((lru.len(), lru.by_age.len()), (1, 1));
    }

    #[test]
    fn bounded_set_saturates_instead_of_growing() {
        let mut s = BoundedSet::default();
        assert_eq!(s.insert(1, 2), Seen::New);
        assert_eq!(s.insert(1, 2), Seen::Known);
        assert_eq!(s.insert(2, 2), Seen::New);
        assert_eq!(s.insert(3, 2), Seen::Saturated);
        assert_eq!(s.len(), 2);
        assert!(!s.contains(3));
    }

    fn mark(time_ns: i64, index: u64, what: u64) -> Mark {
        Mark {
            time_ns,
            index,
            what,
        }
    }

    #[test]
    fn window_is_keyed_by_event_time_and_never_rewinds() {
        let mut w = Window::default();
        assert!(w.add(mark(100, 0, 1), 10, 8));
        assert!(w.add(mark(105, 1, 2), 10, 8));
        // Late but inside the window: counted.
        assert!(w.add(mark(96, 2, 3), 10, 8));
        assert_eq!(w.len(), 3);
        // Too old for the window: not counted, and the window stays put.
        assert!(!w.add(mark(50, 3, 4), 10, 8));
        assert_eq!(w.len(), 3);
        // Time moves on: old marks drop out.
        assert!(w.add(mark(112, 4, 1), 10, 8));
        assert_eq!(w.entries(8), vec![1, 4]);
        assert_eq!(w.distinct(), 2);
    }

    #[test]
    fn window_holds_at_most_cap_marks() {
        let mut w = Window::default();
        for i in 0..100 {
            w.add(mark(i, i as u64, i as u64), 1_000, 8);
        }
        assert_eq!(w.len(), 8);
        assert_eq!(w.entries(3), vec![97, 98, 99]);
    }

    #[test]
    fn rate_averages_closed_buckets_and_ignores_late_events() {
        let mut r = Rate::default();
        for t in [0, 1, 2, 10, 11, 20] {
            assert!(r.add(t, 0, 10, 4));
        }
        assert_eq!(r.closed, 2);
        assert!((r.mean - 2.5).abs() < 1e-6, "mean of 3 and 2");
        assert_eq!(r.count, 1);
        assert!(!r.add(5, 0, 10, 4), "an event from an earlier bucket");
        assert_eq!(r.count, 1);
    }
}
