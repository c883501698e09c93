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
//! - `anomaly`: the streaming detector that flags committed entries
//!   (per-actor baselines, bursts, sequences, high-signal single events),
//!   pure and bounded in memory.
//! - `details`: reading native fields of the original record kept in
//!   `Event.details`, tolerant of lower-cased keys.
//! - `words`: splitting action and resource names into lower-case words.
//! - `mask`: secrets and personal data replaced by per-request placeholders
//!   before any text reaches the model, and put back in what the caller sees.
//! - `when`: time expressions in a question ("last 24 hours", "since
//!   Monday") parsed by code into UTC ranges, never by the model.
//! - `index`: the in-memory index of analysed entries and the vocabulary
//!   of actors, resources and actions that questions are mapped onto.
//! - `vocabulary`: what a question's words name among actions (verbs),
//!   services, clients, kinds of actor and networks, for every format.
//! - `question`: a plain question read by code into a draft query.
//! - `summary`: the facts of a window, the template paragraph, and the
//!   check of the model's prose against the facts.
//! - [`model`]: the local language model (llama.cpp), loaded once, scoring
//!   candidates and generating bounded greedy text.
//! - `analyst`: the analysis node's engine: follows the log, keeps the
//!   index and flags, answers questions and summaries.
//! - `testing` (test builds only): raw records from the shared data sets as
//!   `Event`s, following the ingest conventions, for rule and detector tests.

pub(crate) mod analyst;
pub(crate) mod anomaly;
pub mod category;
pub(crate) mod details;
pub(crate) mod index;
pub(crate) mod mask;
pub mod model;
pub(crate) mod question;
pub(crate) mod summary;
#[cfg(test)]
mod testing;
pub(crate) mod vocabulary;
pub(crate) mod when;
pub(crate) mod words;
