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
//! - [`details`]: reading native fields of the original record kept in
//!   `Event.details`, tolerant of lower-cased keys.
//! - [`words`]: splitting action and resource names into lower-case words.

pub mod category;
pub mod details;
#[cfg(test)]
mod testing;
pub mod words;
