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
//! - [`index`]: the in-memory index of analysed entries and the vocabulary
//!   of actors, resources and actions that questions are mapped onto.
//! - [`question`]: a plain question read by code into a draft query.
//! - [`summary`]: the facts of a window, the template paragraph, and the
//!   check of the model's prose against the facts.
//! - [`analyst`]: the analysis node's engine: follows the log, keeps the
//!   index and flags, answers questions and summaries.
//! - [`model`]: the local language model (llama.cpp), loaded once, scoring
//!   candidates and generating bounded greedy text.
//! - [`mask`]: secrets and personal data replaced by per-request placeholders
//!   before any text reaches the model, and put back in what the caller sees.
//! - [`when`]: time expressions in a question ("last 24 hours", "since
//!   Monday") parsed by code into UTC ranges, never by the model.

pub mod analyst;
pub mod category;
pub mod index;
pub mod model;
pub mod question;
pub mod summary;
pub mod mask;
pub mod when;
