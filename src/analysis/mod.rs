//! The analyst: everything the analysis node does with committed entries.
//!
//! A 270M-parameter model is a helper, not an oracle: facts, counts, times
//! and names come from deterministic code over the node's own indexes; the
//! model only classifies, chooses among candidates that code offers, and
//! writes prose that code validates before anyone sees it.
//!
//! ## Layout
//! - [`category`]: the fixed taxonomy every entry is put in, the rules that
//!   decide what they can, and the plain keyword baseline used in evaluation.
//! - [`anomaly`]: the streaming detector that flags committed entries
//!   (per-actor baselines, bursts, sequences, high-signal single events),
//!   pure and bounded in memory.
//! - [`details`]: reading native fields of the original record kept in
//!   `Event.details`, tolerant of lower-cased keys.
//! - [`words`]: splitting action and resource names into lower-case words.
//! - `testing` (test builds only): raw records from the shared data sets as
//!   `Event`s, following the ingest conventions, for rule and detector tests.

pub mod anomaly;
pub mod category;
pub mod details;
#[cfg(test)]
mod testing;
pub mod words;
