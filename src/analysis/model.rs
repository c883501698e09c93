//! The local language model: llama.cpp on CPU through `llama-cpp-2`.
//!
//! The model is loaded once per process and shared; every request gets its
//! own short-lived context (about 40 ms to create, far less than any
//! request), so requests never see each other's state. Work runs on the
//! blocking pool behind a semaphore: on a 2-core machine one llama.cpp
//! computation at a time is fastest, and the semaphore keeps a burst of
//! requests queued instead of thrashing.
//!
//! Two classes of work share the permits ([`Priority`]): requests a person
//! waits for, and the background categoriser. Background work starts only
//! while no interactive request is waiting or running, so a question waits
//! for at most the one background computation already under way. A
//! computation whose caller went away (a client that hung up drops the
//! request's future) stops at its next decode step instead of running on to
//! its deadline.
//!
//! Two operations, both deterministic (greedy, no sampling randomness), so the
//! same input gives the same output across processes and thread counts:
//! - [`Model::score`]: the log-likelihood of each candidate continuation
//!   after a prompt. Choosing a label or a value by score cannot produce
//!   anything outside the candidates, and is cheaper and more robust on a
//!   270M base model than constrained generation.
//! - [`Model::generate`]: greedy free text, bounded in tokens and time.
//!
//! llama.cpp's own logging is routed into `tracing` (target
//! `llama-cpp-2`), never to stderr.

use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{Notify, Semaphore};

use crate::limits::{
    MODEL_CANDIDATES_MAX, MODEL_CANDIDATE_TOKENS_MAX, MODEL_CONTEXT_TOKENS,
    MODEL_GENERATE_TOKENS_MAX,
};

/// The command that installs the default model; named in every error about a
/// missing or unusable model file.
pub const INSTALL_COMMAND: &str = "./scripts/install-model.sh";

/// First four bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Errors of the model layer. `Missing`, `NotGguf` and `Load` are
/// configuration problems (the node starts without analysis and says why);
/// `Timeout` and `Busy` are retryable; `Decode` and `Input` name a request
/// the model could not process.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path} does not exist; install the default model with {INSTALL_COMMAND} or set the model path in the [analysis] section")]
    Missing { path: PathBuf },
    #[error("model file {path} cannot be read: {reason}; reinstall it with {INSTALL_COMMAND}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "model file {path} is not a GGUF file (no GGUF magic); reinstall it with {INSTALL_COMMAND}"
    )]
    NotGguf { path: PathBuf },
    #[error("llama.cpp could not load model file {path} ({reason}); it may be truncated or corrupt: reinstall it with {INSTALL_COMMAND}")]
    Load { path: PathBuf, reason: String },
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    #[error("the node is stopping")]
    Cancelled,
    #[error("the request was abandoned by its caller")]
    Abandoned,
    #[error("the model did not finish within {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    #[error("the prompt is {tokens} tokens, more than the context of {max}")]
    PromptTooLong { tokens: usize, max: usize },
    #[error("{0}")]
    Input(String),
    #[error("llama.cpp failed: {0}")]
    Decode(String),
    #[error("the model task ended abnormally: {0}")]
    Task(String),
}

/// How the node runs the model (from the `[analysis]` config section).
#[derive(Clone, Debug)]
pub struct ModelSettings {
    pub path: PathBuf,
    /// CPU threads per computation.
    pub threads: u32,
    /// Computations at once; more only queue for the same cores.
    pub concurrency: usize,
    /// Wall-clock limit for one computation, ms.
    pub timeout_ms: u64,
}

/// The loaded model, shared by every request of the process.
pub struct Model {
    model: LlamaModel,
    settings: ModelSettings,
    permits: Semaphore,
    gate: PriorityGate,
    /// Computations on the blocking pool now, abandoned ones included.
    running: Arc<AtomicUsize>,
    /// Set when the node stops: computations end at their next step instead
    /// of holding the process (blocking threads cannot be aborted).
    cancelled: AtomicBool,
}

/// Who waits for a computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A person: a question, a summary, a categorisation asked for.
    Interactive,
    /// The categoriser working through the log's undecided entries.
    Background,
}

/// Holds background work back while any interactive request is waiting or
/// running. Not a queue: background waiters start together when the last
/// interactive claim ends, and then take permits in the semaphore's order.
#[derive(Default)]
struct PriorityGate {
    interactive: AtomicUsize,
    quiet: Notify,
    closed: AtomicBool,
}

/// One interactive request, from arrival until its computation ends.
struct InteractiveClaim<'a>(&'a PriorityGate);

impl PriorityGate {
    fn interactive(&self) -> InteractiveClaim<'_> {
        self.interactive.fetch_add(1, Ordering::SeqCst);
        InteractiveClaim(self)
    }

    /// Waits until no interactive request is waiting or running.
    async fn background(&self) -> Result<(), ModelError> {
        loop {
            // Registered before the check, so a claim ending in between
            // still wakes this waiter.
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return Err(ModelError::Cancelled);
            }
            if self.interactive.load(Ordering::SeqCst) == 0 {
                return Ok(());
            }
            quiet.await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.quiet.notify_waiters();
    }
}

impl Drop for InteractiveClaim<'_> {
    fn drop(&mut self) {
        if self.0.interactive.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// What a running computation checks between decode steps.
struct Budget {
    deadline: Instant,
    /// Set when the request's future is dropped: nobody waits any more.
    abandoned: Arc<AtomicBool>,
}

/// Sets its flag when dropped: with the request's future, or after the
/// computation returned (when the flag no longer matters).
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// llama.cpp allows one backend per process; every model shares it.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, ModelError> {
    BACKEND
        .get_or_init(|| {
            // Before init, so that even start-up lines go to tracing.
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(true),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ModelError::Backend(e.clone()))
}

/// Checks the file before llama.cpp sees it, so the common failures (not
/// installed, a truncated download, the wrong file) get an error that names
/// the path and the fix instead of llama.cpp's bare null result.
pub fn check_file(path: &Path) -> Result<(), ModelError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::Missing { path: path.into() })
        }
        Err(e) => {
            return Err(ModelError::Unreadable {
                path: path.into(),
                reason: e.to_string(),
            })
        }
    };
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == GGUF_MAGIC => Ok(()),
        Ok(()) => Err(ModelError::NotGguf { path: path.into() }),
        Err(_) => Err(ModelError::NotGguf { path: path.into() }),
    }
}

impl Model {
    /// Loads the model file. Blocking (about a second): call it from a
    /// blocking context.
    pub fn load(settings: ModelSettings) -> Result<Arc<Model>, ModelError> {
        check_file(&settings.path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default();
        let model = LlamaModel::load_from_file(backend, &settings.path, &params).map_err(|e| {
            ModelError::Load {
                path: settings.path.clone(),
                reason: e.to_string(),
            }
        })?;
        tracing::info!(path = %settings.path.display(), params = model.n_params(), "model loaded");
        let concurrency = settings.concurrency.max(1);
        Ok(Arc::new(Model {
            model,
            permits: Semaphore::new(concurrency),
            gate: PriorityGate::default(),
            running: Arc::new(AtomicUsize::new(0)),
            settings,
            cancelled: AtomicBool::new(false),
        }))
    }

    /// Ends running and future computations with [`ModelError::Cancelled`].
    pub fn cancel_all(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.permits.close();
        self.gate.close();
    }

    /// Computations running now, including any whose caller went away and
    /// that have not yet reached their next decode step.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// Scores each candidate continuation of `prompt`: the mean
    /// log-probability per token of the candidate's tokens. The mean, not
    /// the sum, so that a long label is not penalised for its length alone.
    pub async fn score(
        self: &Arc<Self>,
        priority: Priority,
        prompt: String,
        candidates: Vec<String>,
    ) -> Result<Vec<f64>, ModelError> {
        if candidates.is_empty() || candidates.len() > MODEL_CANDIDATES_MAX {
            return Err(ModelError::Input(format!(
                "{} candidates; between 1 and {MODEL_CANDIDATES_MAX} are allowed",
                candidates.len()
            )));
        }
        let this = Arc::clone(self);
        self.run(priority, move |budget| {
            this.score_blocking(&prompt, &candidates, &budget)
        })
        .await
    }

    /// Greedy generation of at most `max_tokens` tokens, stopping early at
    /// an end-of-generation token or at any of `stops`.
    pub async fn generate(
        self: &Arc<Self>,
        priority: Priority,
        prompt: String,
        max_tokens: usize,
        stops: Vec<String>,
    ) -> Result<String, ModelError> {
        let max_tokens = max_tokens.min(MODEL_GENERATE_TOKENS_MAX);
        let this = Arc::clone(self);
        self.run(priority, move |budget| {
            this.generate_blocking(&prompt, max_tokens, &stops, &budget)
        })
        .await
    }

    /// Runs one computation on the blocking pool, after the priority gate
    /// and a permit, with the budget the computation checks between decode
    /// steps. The time limit counts from the end of a background wait: the
    /// categoriser may wait out any number of questions.
    async fn run<T: Send + 'static>(
        &self,
        priority: Priority,
        work: impl FnOnce(Budget) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let _claim = match priority {
            Priority::Interactive => Some(self.gate.interactive()),
            Priority::Background => {
                self.gate.background().await?;
                None
            }
        };
        let limit = Duration::from_millis(self.settings.timeout_ms);
        let started = Instant::now();
        let _permit = tokio::time::timeout(limit, self.permits.acquire())
            .await
            .map_err(|_| ModelError::Timeout {
                limit_ms: self.settings.timeout_ms,
            })?
            .map_err(|_| ModelError::Cancelled)?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let _on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        let budget = Budget {
            deadline: started + limit,
            abandoned,
        };
        let running = Arc::clone(&self.running);
        running.fetch_add(1, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let result = work(budget);
            running.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| ModelError::Task(e.to_string()))?
    }

    fn context(&self) -> Result<LlamaContext<'_>, ModelError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(MODEL_CONTEXT_TOKENS as u32))
            .with_n_batch(MODEL_CONTEXT_TOKENS as u32)
            .with_n_threads(self.settings.threads as i32)
            .with_n_threads_batch(self.settings.threads as i32);
        self.model
            .new_context(backend()?, params)
            .map_err(|e| ModelError::Decode(format!("context: {e}")))
    }

    fn tokenize(&self, text: &str, add_bos: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, false)
    }

    fn check_budget(&self, budget: &Budget) -> Result<(), ModelError> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(ModelError::Cancelled);
        }
        if budget.abandoned.load(Ordering::SeqCst) {
            return Err(ModelError::Abandoned);
        }
        if Instant::now() > budget.deadline {
            return Err(ModelError::Timeout {
                limit_ms: self.settings.timeout_ms,
            });
        }
        Ok(())
    }

    /// Decodes `tokens` at positions `start..`, asking for logits at every
    /// position when `all_logits`, else only at the last.
    fn decode(
        &self,
        ctx: &mut LlamaContext<'_>,
        tokens: &[LlamaToken],
        start: usize,
        all_logits: bool,
    ) -> Result<(), ModelError> {
        let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
        let last = tokens.len().saturating_sub(1);
        for (i, token) in tokens.iter().enumerate() {
            batch
                .add(*token, (start + i) as i32, &[0], all_logits || i == last)
                .map_err(|e| ModelError::Decode(e.to_string()))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| ModelError::Decode(e.to_string()))
    }

    fn score_blocking(
        &self,
        prompt: &str,
        candidates: &[String],
        budget: &Budget,
    ) -> Result<Vec<f64>, ModelError> {
        let prompt_tokens = self.tokenize(prompt, true);
        let candidate_tokens: Vec<Vec<LlamaToken>> = candidates
            .iter()
            .map(|c| {
                let mut t = self.tokenize(c, false);
                t.truncate(MODEL_CANDIDATE_TOKENS_MAX);
                t
            })
            .collect();
        let longest = candidate_tokens.iter().map(Vec::len).max().unwrap_or(0);
        if prompt_tokens.len() + longest > MODEL_CONTEXT_TOKENS {
            return Err(ModelError::PromptTooLong {
                tokens: prompt_tokens.len() + longest,
                max: MODEL_CONTEXT_TOKENS,
            });
        }
        let mut ctx = self.context()?;
        self.decode(&mut ctx, &prompt_tokens, 0, false)?;
        // The distribution of the first candidate token, shared by all.
        let first = log_softmax(ctx.get_logits_ith(prompt_tokens.len() as i32 - 1));
        let base = prompt_tokens.len();
        let mut scores = Vec::with_capacity(candidates.len());
        for tokens in &candidate_tokens {
            self.check_budget(budget)?;
            let Some((&head, rest)) = tokens.split_first() else {
                scores.push(f64::NEG_INFINITY);
                continue;
            };
            let mut total = f64::from(first[head.0 as usize]);
            if !rest.is_empty() {
                // Decode all but the last candidate token after the prompt;
                // the logits at token i give the probability of token i+1.
                let feed = &tokens[..tokens.len() - 1];
                self.decode(&mut ctx, feed, base, true)?;
                for (i, next) in rest.iter().enumerate() {
                    let lp = log_softmax(ctx.get_logits_ith(i as i32));
                    total += f64::from(lp[next.0 as usize]);
                }
                // Forget the candidate, keep the prompt for the next one.
                ctx.clear_kv_cache_seq(Some(0), Some(base as u32), None)
                    .map_err(|e| ModelError::Decode(e.to_string()))?;
            }
            scores.push(total / tokens.len() as f64);
        }
        Ok(scores)
    }

    fn generate_blocking(
        &self,
        prompt: &str,
        max_tokens: usize,
        stops: &[String],
        budget: &Budget,
    ) -> Result<String, ModelError> {
        let tokens = self.tokenize(prompt, true);
        if tokens.len() + max_tokens > MODEL_CONTEXT_TOKENS {
            return Err(ModelError::PromptTooLong {
                tokens: tokens.len() + max_tokens,
                max: MODEL_CONTEXT_TOKENS,
            });
        }
        let mut ctx = self.context()?;
        self.decode(&mut ctx, &tokens, 0, false)?;
        let vocab = self.model.vocab();
        let mut out = Vec::<u8>::new();
        let mut logits_at = tokens.len() as i32 - 1;
        for pos in tokens.len()..tokens.len() + max_tokens {
            self.check_budget(budget)?;
            let logits = ctx.get_logits_ith(logits_at);
            let next = argmax(logits);
            let token = LlamaToken(next as i32);
            if vocab.is_eog(token) {
                break;
            }
            out.extend_from_slice(&vocab.token_to_piece(token, false, None));
            let text = String::from_utf8_lossy(&out);
            if let Some(cut) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
                return Ok(text[..cut].to_string());
            }
            self.decode(&mut ctx, &[token], pos, false)?;
            logits_at = 0;
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Index of the largest logit; ties go to the lowest index, so greedy
/// decoding is deterministic.
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    let log_sum = sum.ln() as f32;
    logits.iter().map(|&v| v - max - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_waits_while_a_person_waits_and_starts_after() {
        let gate = Arc::new(PriorityGate::default());
        // Nobody interactive: background starts at once.
        gate.background().await.expect("open");

        let claim = gate.interactive();
        let started = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
            tokio::spawn(async move {
                gate.background().await.expect("open");
                started.store(true, Ordering::SeqCst);
            })
        };
        // Two interactive claims overlap; background waits for both.
        let second = gate.interactive();
        drop(claim);
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!started.load(Ordering::SeqCst), "started under a claim");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("background starts once the last claim ends")
            .expect("task");
        assert!(started.load(Ordering::SeqCst));

        // Closing the gate (the node stopping) ends background waits.
        let _claim = gate.interactive();
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.background().await })
        };
        tokio::task::yield_now().await;
        gate.close();
        let r = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by close")
            .expect("task");
        assert!(matches!(r, Err(ModelError::Cancelled)), "{r:?}");
    }

    #[test]
    fn argmax_prefers_the_first_of_equals() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f32 = lp.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        assert!(lp[2] > lp[1] && lp[1] > lp[0]);
    }

    #[test]
    fn missing_and_non_gguf_files_are_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.gguf");
        let err = check_file(&missing).expect_err("missing");
        let text = err.to_string();
        assert!(
            text.contains("nope.gguf") && text.contains(INSTALL_COMMAND),
            "{text}"
        );

        let junk = dir.path().join("junk.gguf");
        std::fs::write(&junk, b"not a model").expect("write");
        let text = check_file(&junk).expect_err("junk").to_string();
        assert!(
            text.contains("junk.gguf") && text.contains("not a GGUF"),
            "{text}"
        );

        let short = dir.path().join("short.gguf");
        std::fs::write(&short, b"GG").expect("write");
        assert!(matches!(
            check_file(&short),
            Err(ModelError::NotGguf { .. })
        ));
    }
}
