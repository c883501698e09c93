// TEMP STUB (replaced by wip-category)
use crate::ledger::event::Event;
use super::category::Category;
#[derive(Default)]
pub struct DetectorConfig;
pub struct Detector;
pub enum FlagKind { X }
impl FlagKind { pub fn as_str(&self) -> &'static str { "x" } }
pub struct Flag { pub kind: FlagKind, pub score: f32, pub reason: String, pub entries: Vec<u64>, pub actor: String, pub time_unix_nanos: i64 }
impl Detector {
    pub fn new(_c: DetectorConfig) -> Detector { Detector }
    pub fn observe(&mut self, _i: u64, _e: &Event, _c: Category) -> Vec<Flag> { vec![] }
}
