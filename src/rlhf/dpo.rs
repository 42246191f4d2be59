//! Rung 8: Direct Preference Optimization (Rafailov et al. 2023) — the policy
//! trained on the comparisons themselves, with no reward model and no sampling.
//!
//! The KL-constrained objective of rung 7, max_π E[r(x, y)] − β·KL(π‖π_ref),
//! has a closed-form optimum π*(y|x) = π_ref(y|x)·exp(r(x, y)/β) / Z(x). Read
//! backwards, every policy implies a reward, r(x, y) = β·log π(y|x)/π_ref(y|x)
//! plus β·log Z(x), and in a Bradley–Terry comparison Z(x) cancels:
//! P(y_c ≻ y_r) = σ(β·h) with h the log-ratio difference below. Fitting that
//! likelihood to the comparisons fits the reward and the policy at once:
//!
//! ```text
//! π ← SFT model; π_ref ← SFT model (frozen)
//! for every answer in the comparisons: log π_ref(y|x)       once, before training
//! for step:
//!     pairs (x, y_c, y_r) of the next batch
//!     log π(y|x) = Σ_t log π(y_t | x, y_<t) over answer tokens   AnswerBatch
//!     h = [log π(y_c|x) − log π_ref(y_c|x)] − [log π(y_r|x) − log π_ref(y_r|x)]
//!     L = mean −log σ(β·h)           (or IPO's (h − 1/(2β))²)   losses::preference_optimization_loss
//!     AdamW on π                                                 lm::Trainer
//!     every eval_every: held-out pairs (rewards/…, logps/…), and the policy's
//!     own answers to the held-out prompts: gold, proxy, KL to π_ref (held_out/…)
//! ```
//!
//! The training loop is rung 6's [`Trainer`]; this file holds only the data
//! ([`DpoData`], the [`BatchSource`]) and the loss ([`DpoObjective`]). Metrics
//! are named as TRL's `DPOTrainer` names them: `rewards/chosen` = β·(log π(y_c|x)
//! − log π_ref(y_c|x)), `rewards/rejected`, `rewards/accuracies` (chosen >
//! rejected, strictly), `rewards/margins`, `logps/chosen`, `logps/rejected`;
//! plus `rewards/gold_accuracies`, the implicit reward's agreement with the
//! gold standard on pairs whose gold scores differ.

use super::answer_batch::AnswerBatch;
use super::losses::{preference_optimization_loss, DpoLossKind};
use super::online_dpo::{label_own_answers, OnlineDpoConfig, OnlineRound, RoundSource};
use super::ppo::{evaluate_policy, query_ids, EvalSettings, PolicyEvaluation, ScoringModels};
use super::ppo_run::BeforeAfter;
use super::preferences::PreferenceData;
use super::reward_model::RewardModel;
use super::reward_training::annotator_weights;
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::gold_score_turn;
use crate::feedback::records::Comparison;
use crate::lm::lora::LoraConfig;
use crate::lm::train::{
    epoch_batch, BatchSource, LossOutput, Metrics, Objective, RunOptions, TrainRecord,
};
use crate::lm::{LanguageModel, TrainConfig, Trainer};
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How much each comparison counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairWeighting {
    /// Every comparison once (TRL).
    #[default]
    Uniform,
    /// Each comparison by its annotator's reliability from rung 5's robust
    /// Bradley–Terry fit (the weights of the reward model's `robust` objective).
    Robust,
}

/// Everything a DPO run needs besides the models and the data. Errors from
/// [`Self::validate`] name the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    /// β: the strength of the implicit KL constraint (TRL's default 0.1).
    pub beta: f64,
    /// `sigmoid` (DPO) or `ipo`.
    pub loss: DpoLossKind,
    /// α of RPO (Pang et al. 2024; TRL's `rpo_alpha`): adds α · the mean
    /// negative log-likelihood per token of the chosen answers, which keeps
    /// their probability from falling while the margin grows (0: plain DPO).
    pub rpo_alpha: f64,
    /// `uniform`, or `robust` (comparisons weighted by their annotator's reliability).
    pub weighting: PairWeighting,
    /// Train only on comparisons between two of the SFT model's own answers
    /// (systems `sft …`), leaving out the written styles: DPO on the policy's
    /// own distribution ("on-policy" pairs). Held-out pairs are kept whole.
    pub on_policy_only: bool,
    /// Robust Bradley–Terry re-weighting rounds (for `weighting: robust`).
    pub robust_rounds: usize,
    /// Comparisons per update.
    pub batch_size: usize,
    /// Answers longer than this many tokens are cut (TRL's `max_completion_length`).
    pub max_answer_tokens: usize,
    /// The optimiser and its schedule (`steps` 0: one pass over the training pairs).
    pub train: TrainConfig,
    /// Answers per held-out prompt at each evaluation during training (0: no
    /// held-out answers; 2, as PPO's held-out curves).
    pub eval_samples_per_prompt: usize,
    /// Answers per held-out prompt for the verdict before and after training
    /// (4, as `rlhf-lab ppo`: 240 answers, a standard error of about 0.11 on
    /// the mean gold score; 16 brings it to about 0.055).
    pub verdict_samples_per_prompt: usize,
    /// Sampling temperature of the held-out answers (PPO's, for one comparison).
    pub temperature: f64,
    /// Longest held-out answer, in tokens.
    pub max_new_tokens: usize,
    /// Subtracted from the reward model's score of an answer that never ended
    /// (as in PPO's evaluation; the proxy score only).
    pub missing_eos_penalty: f64,
    /// Seed of the batch order and of the held-out answers' dice.
    pub seed: u64,
    /// Train low-rank adapters (LoRA) instead of every weight; `None`: full
    /// fine-tuning. The reference is the SFT model either way.
    pub lora: Option<LoraConfig>,
    /// Online DPO: train on the policy's own fresh answers, labelled each round
    /// by the reward model or the gold standard, instead of the data's
    /// comparisons ([`super::online_dpo`]); `None`: offline DPO.
    pub online: Option<OnlineDpoConfig>,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            loss: DpoLossKind::Sigmoid,
            rpo_alpha: 0.0,
            weighting: PairWeighting::Uniform,
            on_policy_only: false,
            robust_rounds: 5,
            batch_size: 16,
            max_answer_tokens: 128,
            train: TrainConfig {
                steps: 0,
                learning_rate: 2e-5,
                min_lr_ratio: 0.1,
                warmup_steps: 10,
                weight_decay: 0.0,
                eval_every: 25,
                ..TrainConfig::default()
            },
            eval_samples_per_prompt: 2,
            verdict_samples_per_prompt: 4,
            temperature: 1.0,
            max_new_tokens: 64,
            missing_eos_penalty: 1.0,
            seed: 0,
            lora: None,
            online: None,
        }
    }
}

impl DpoConfig {
    pub fn validate(&self) -> Result<()> {
        if let Some(lora) = &self.lora {
            lora.validate().context("DPO config field `lora`")?;
            if lora.lora_dropout != 0.0 {
                bail!("DPO config field `lora.lora_dropout` is {}: DPO runs without dropout (as TRL's disable_dropout does), so set it to 0", lora.lora_dropout);
            }
        }
        if !(self.beta.is_finite() && self.beta > 0.0) {
            bail!("DPO config field `beta` must be > 0, got {}", self.beta);
        }
        if !(self.rpo_alpha.is_finite() && self.rpo_alpha >= 0.0) {
            bail!(
                "DPO config field `rpo_alpha` must be ≥ 0, got {}",
                self.rpo_alpha
            );
        }
        if self.batch_size == 0 {
            bail!("DPO config field `batch_size` must be at least 1");
        }
        if self.max_answer_tokens == 0 {
            bail!("DPO config field `max_answer_tokens` must be at least 1");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            bail!(
                "DPO config field `temperature` must be > 0, got {}",
                self.temperature
            );
        }
        if self.max_new_tokens == 0 {
            bail!("DPO config field `max_new_tokens` must be at least 1");
        }
        if let Some(online) = &self.online {
            online.validate()?;
            if self.on_policy_only || self.weighting != PairWeighting::Uniform {
                bail!("DPO config field `online`: online DPO labels its own pairs, so `on_policy_only` and `weighting` (about the data's comparisons) do not apply; leave them at their defaults");
            }
        }
        self.train
            .validate()
            .context("in DPO config field `train`")?;
        Ok(())
    }

    /// The comparisons DPO trains on: decided ones (ties choose nothing), and
    /// with `on_policy_only` only those between two of the SFT model's answers.
    pub fn training_comparisons<'a>(
        &self,
        comparisons: &'a [Comparison],
    ) -> impl Iterator<Item = &'a Comparison> + 'a {
        let on_policy_only = self.on_policy_only;
        comparisons.iter().filter(move |c| {
            c.chosen_rejected().is_some()
                && (!on_policy_only
                    || (c.system_a.starts_with("sft") && c.system_b.starts_with("sft")))
        })
    }
}

/// One comparison, tokenized, with its reference log-probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoPair {
    /// The prompt in the chat template.
    pub query: Vec<u32>,
    /// The answer tokens (the end-of-turn token included when the answer ended).
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    /// log π_ref(y_c|x) and log π_ref(y_r|x), summed over the answer tokens.
    pub reference_chosen: f64,
    pub reference_rejected: f64,
    pub weight: f64,
    pub gold_chosen: f64,
    pub gold_rejected: f64,
}

/// The comparisons of DPO: the [`BatchSource`], with the reference model's
/// log-probabilities of every answer computed once, when the data is built.
#[derive(Debug, Clone)]
pub struct DpoData {
    pub train: Vec<DpoPair>,
    /// Held-out comparisons (the validation split).
    pub eval: Vec<DpoPair>,
    pub batch_size: usize,
    pub seed: u64,
    pub pad_id: u32,
    /// Distinct answers whose reference log-probability was computed.
    pub reference_answers: usize,
    /// Seconds that took (the whole cost of the reference model in DPO).
    pub reference_seconds: f64,
}

impl DpoData {
    /// Pairs from the decided `train` and `eval` comparisons about prompts of
    /// `data` (ties dropped), tokenized for `reference`, whose log-probabilities
    /// of each distinct answer are computed here, once, in batches of 32.
    pub fn new(
        reference: &LanguageModel,
        data: &PreferenceData,
        train: &[Comparison],
        eval: &[Comparison],
        config: &DpoConfig,
    ) -> Result<Self> {
        let made = Self::build(reference, data, train, eval, config)?;
        if made.train.is_empty() {
            bail!("no training comparisons (every one a tie?)");
        }
        if made.eval.is_empty() {
            bail!("no held-out comparisons to evaluate on");
        }
        Ok(made)
    }

    /// Only the held-out pairs of `eval` (online DPO samples its training
    /// pairs as it goes: [`Self::with_train`]).
    pub fn held_out(
        reference: &LanguageModel,
        data: &PreferenceData,
        eval: &[Comparison],
        config: &DpoConfig,
    ) -> Result<Self> {
        let made = Self::build(reference, data, &[], eval, config)?;
        if made.eval.is_empty() {
            bail!("no held-out comparisons to evaluate on");
        }
        Ok(made)
    }

    /// These held-out pairs with the training pairs of `train`, whose answers'
    /// reference log-probabilities are computed here (and counted in
    /// `reference_answers` / `reference_seconds` of the result).
    pub fn with_train(
        &self,
        reference: &LanguageModel,
        data: &PreferenceData,
        train: &[Comparison],
        config: &DpoConfig,
    ) -> Result<Self> {
        let fresh = Self::build(reference, data, train, &[], config)?;
        if fresh.train.is_empty() {
            bail!("no training pairs (every answer scored the same?)");
        }
        Ok(Self {
            eval: self.eval.clone(),
            ..fresh
        })
    }

    fn build(
        reference: &LanguageModel,
        data: &PreferenceData,
        train: &[Comparison],
        eval: &[Comparison],
        config: &DpoConfig,
    ) -> Result<Self> {
        config.validate()?;
        let weights = match config.weighting {
            PairWeighting::Robust => annotator_weights(train, config.robust_rounds),
            PairWeighting::Uniform => HashMap::new(),
        };
        let mut answers = AnswerIndex::default();
        let train: Vec<Comparison> = config.training_comparisons(train).cloned().collect();
        let train_raw = tokenize_pairs(reference, data, &train, config, &mut answers, |a| {
            weights.get(a).copied().unwrap_or(1.0)
        })?;
        let eval_raw = tokenize_pairs(reference, data, eval, config, &mut answers, |_| 1.0)?;
        if eval_raw.is_empty() && !eval.is_empty() {
            bail!("no held-out comparisons to evaluate on (every one a tie?)");
        }
        let started = Instant::now();
        let logp = answers.reference_log_probs(reference)?;
        let reference_seconds = started.elapsed().as_secs_f64();
        let finish = |raw: Vec<RawPair>| -> Vec<DpoPair> {
            raw.into_iter()
                .map(|r| DpoPair {
                    reference_chosen: logp[r.chosen],
                    reference_rejected: logp[r.rejected],
                    query: answers.sequences[r.chosen].0.clone(),
                    chosen: answers.sequences[r.chosen].1.clone(),
                    rejected: answers.sequences[r.rejected].1.clone(),
                    weight: r.weight,
                    gold_chosen: r.gold_chosen,
                    gold_rejected: r.gold_rejected,
                })
                .collect()
        };
        Ok(Self {
            train: finish(train_raw),
            eval: finish(eval_raw),
            batch_size: config.batch_size,
            seed: config.seed,
            pad_id: reference.tokenizer.pad_id(),
            reference_answers: answers.sequences.len(),
            reference_seconds,
        })
    }

    /// Updates in one pass over the training pairs.
    pub fn steps_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size)
    }
}

/// Distinct (prompt, answer) sequences, each tokenized once.
#[derive(Default)]
struct AnswerIndex {
    index: HashMap<(String, String), usize>,
    /// (query ids, answer ids).
    sequences: Vec<(Vec<u32>, Vec<u32>)>,
}

impl AnswerIndex {
    fn id(&mut self, lm: &LanguageModel, prompt: &Prompt, turn: &str, cap: usize) -> Result<usize> {
        let key = (prompt.id.clone(), turn.to_string());
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        let query = query_ids(lm, prompt)?;
        let mut answer = lm.tokenizer.encode(turn)?;
        if answer.is_empty() {
            bail!("an empty answer to prompt `{}`", prompt.id);
        }
        answer.truncate(cap);
        self.sequences.push((query, answer));
        self.index.insert(key, self.sequences.len() - 1);
        Ok(self.sequences.len() - 1)
    }

    /// log π_ref(y|x) of every sequence, at temperature 1.
    fn reference_log_probs(&self, reference: &LanguageModel) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.sequences.len());
        for chunk in self.sequences.chunks(32) {
            let qs: Vec<&Vec<u32>> = chunk.iter().map(|(q, _)| q).collect();
            let as_: Vec<&Vec<u32>> = chunk.iter().map(|(_, a)| a).collect();
            let batch =
                AnswerBatch::new(&qs, &as_, reference.tokenizer.pad_id(), reference.device())?;
            let lp: Vec<f32> = batch.sequence_log_probs(reference, 1.0)?.to_vec1()?;
            out.extend(lp.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

struct RawPair {
    chosen: usize,
    rejected: usize,
    weight: f64,
    gold_chosen: f64,
    gold_rejected: f64,
}

fn tokenize_pairs(
    lm: &LanguageModel,
    data: &PreferenceData,
    comparisons: &[Comparison],
    config: &DpoConfig,
    answers: &mut AnswerIndex,
    weight: impl Fn(&str) -> f64,
) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    for c in comparisons {
        let Some((chosen, rejected)) = c.chosen_rejected() else {
            continue;
        };
        let Some(p) = data.prompt(&c.prompt_id) else {
            bail!("comparison of unknown prompt `{}`", c.prompt_id);
        };
        out.push(RawPair {
            chosen: answers.id(lm, p, chosen, config.max_answer_tokens)?,
            rejected: answers.id(lm, p, rejected, config.max_answer_tokens)?,
            weight: weight(&c.annotator),
            gold_chosen: gold_score_turn(p, chosen),
            gold_rejected: gold_score_turn(p, rejected),
        });
    }
    Ok(out)
}

/// A batch of n pairs: rows 0..n of `answers` are the chosen answers, rows
/// n..2n the rejected ones (one forward pass for both).
pub struct DpoBatch {
    pub answers: AnswerBatch,
    /// (n,) log π_ref of the chosen and rejected answers.
    pub reference_chosen: Tensor,
    pub reference_rejected: Tensor,
    /// (n,) the pairs' weights.
    pub weights: Tensor,
    pub gold_chosen: Vec<f64>,
    pub gold_rejected: Vec<f64>,
    /// Tokens through the model (prompts and answers).
    pub tokens: f64,
}

impl DpoBatch {
    pub fn new(pairs: &[&DpoPair], pad_id: u32, device: &Device) -> Result<Self> {
        let n = pairs.len();
        let queries: Vec<&Vec<u32>> = pairs.iter().chain(pairs).map(|p| &p.query).collect();
        let answers: Vec<&Vec<u32>> = pairs
            .iter()
            .map(|p| &p.chosen)
            .chain(pairs.iter().map(|p| &p.rejected))
            .collect();
        let tokens = queries
            .iter()
            .zip(&answers)
            .map(|(q, a)| q.len() + a.len())
            .sum::<usize>() as f64;
        let column = |f: fn(&DpoPair) -> f64| -> Result<Tensor> {
            let v: Vec<f32> = pairs.iter().map(|p| f(p) as f32).collect();
            Ok(Tensor::from_vec(v, n, device)?)
        };
        Ok(Self {
            answers: AnswerBatch::new(&queries, &answers, pad_id, device)?,
            reference_chosen: column(|p| p.reference_chosen)?,
            reference_rejected: column(|p| p.reference_rejected)?,
            weights: column(|p| p.weight)?,
            gold_chosen: pairs.iter().map(|p| p.gold_chosen).collect(),
            gold_rejected: pairs.iter().map(|p| p.gold_rejected).collect(),
            tokens,
        })
    }

    /// Pairs in the batch.
    pub fn len(&self) -> usize {
        self.gold_chosen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BatchSource for DpoData {
    type Batch = DpoBatch;

    /// Batch `step`: `batch_size` pairs of a fresh shuffle of the training
    /// pairs each epoch (every pair once per epoch).
    fn train_batch(&self, step: usize, device: &Device) -> Result<DpoBatch> {
        let idx = epoch_batch(
            self.train.len(),
            self.batch_size,
            step,
            self.seed,
            Stream::DpoEpoch,
        );
        let pairs: Vec<&DpoPair> = idx.iter().map(|&i| &self.train[i]).collect();
        DpoBatch::new(&pairs, self.pad_id, device)
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<DpoBatch>> {
        let refs: Vec<&DpoPair> = self.eval.iter().collect();
        refs.chunks(32)
            .map(|c| DpoBatch::new(c, self.pad_id, device))
            .collect()
    }
}

/// The policy's answers to held-out prompts, measured at each evaluation:
/// what the reference, the reward model (for the proxy score) and the gold
/// standard say of them.
#[derive(Clone)]
pub struct HeldOutAnswers {
    pub reference: LanguageModel,
    pub reward: RewardModel,
    pub prompts: Vec<Prompt>,
    pub samples_per_prompt: usize,
    pub temperature: f64,
    pub max_new_tokens: usize,
    pub missing_eos_penalty: f64,
    /// The same dice at every measurement.
    pub seed: u64,
}

impl HeldOutAnswers {
    /// The held-out prompts' answers as `config` asks for them.
    pub fn new(
        reference: &LanguageModel,
        reward: &RewardModel,
        prompts: &[Prompt],
        config: &DpoConfig,
    ) -> Self {
        Self {
            reference: reference.clone(),
            reward: reward.clone(),
            prompts: prompts.to_vec(),
            samples_per_prompt: config.eval_samples_per_prompt,
            temperature: config.temperature,
            max_new_tokens: config.max_new_tokens,
            missing_eos_penalty: config.missing_eos_penalty,
            // The dice of PPO's held-out measurements (`PpoTrainer::measure_held_out`):
            // with the same prompts, samples and seed, both methods' curves start
            // from the same measurement of the SFT model.
            seed: config.seed ^ 0x4E1D,
        }
    }

    /// `policy` on the held-out prompts (PPO's [`evaluate_policy`]), with this
    /// measurement's dice.
    pub fn measure(
        &self,
        policy: &LanguageModel,
        samples_per_prompt: usize,
    ) -> Result<PolicyEvaluation> {
        self.measure_with_seed(policy, samples_per_prompt, self.seed)
    }

    /// `policy` on the held-out prompts with other dice.
    pub fn measure_with_seed(
        &self,
        policy: &LanguageModel,
        samples_per_prompt: usize,
        seed: u64,
    ) -> Result<PolicyEvaluation> {
        let models = ScoringModels {
            policy,
            reference: &self.reference,
            reward: &self.reward,
        };
        let settings = EvalSettings {
            samples_per_prompt,
            temperature: self.temperature,
            max_new_tokens: self.max_new_tokens,
            missing_eos_penalty: self.missing_eos_penalty,
            seed,
        };
        evaluate_policy(models, &self.prompts, &settings)
    }
}

/// Per-pair quantities of a batch, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PairTerms {
    reward_chosen: f64,
    reward_rejected: f64,
    logp_chosen: f64,
    logp_rejected: f64,
    gold_chosen: f64,
    gold_rejected: f64,
}

/// TRL's DPO metrics over pairs (see the module docs).
fn pair_metrics(terms: &[PairTerms]) -> Metrics {
    let n = terms.len().max(1) as f64;
    let mean = |f: &dyn Fn(&PairTerms) -> f64| terms.iter().map(f).sum::<f64>() / n;
    let gold_decided: Vec<&PairTerms> = terms
        .iter()
        .filter(|t| t.gold_chosen != t.gold_rejected)
        .collect();
    let gold_agree = gold_decided
        .iter()
        .filter(|t| (t.reward_chosen - t.reward_rejected) * (t.gold_chosen - t.gold_rejected) > 0.0)
        .count();
    let mut m = Metrics::new();
    m.insert("rewards/chosen".into(), mean(&|t| t.reward_chosen));
    m.insert("rewards/rejected".into(), mean(&|t| t.reward_rejected));
    m.insert(
        "rewards/accuracies".into(),
        mean(&|t| f64::from(u8::from(t.reward_chosen > t.reward_rejected))),
    );
    m.insert(
        "rewards/margins".into(),
        mean(&|t| t.reward_chosen - t.reward_rejected),
    );
    m.insert("logps/chosen".into(), mean(&|t| t.logp_chosen));
    m.insert("logps/rejected".into(), mean(&|t| t.logp_rejected));
    if !gold_decided.is_empty() {
        m.insert(
            "rewards/gold_accuracies".into(),
            gold_agree as f64 / gold_decided.len() as f64,
        );
    }
    m
}

/// The policy under DPO, the loss's options and (optionally) the held-out
/// prompts it answers at every evaluation.
#[derive(Clone)]
pub struct DpoObjective {
    pub policy: LanguageModel,
    pub beta: f64,
    pub loss: DpoLossKind,
    /// Weight α of the chosen answers' negative log-likelihood added to the loss (0: plain DPO).
    pub rpo_alpha: f64,
    pub held_out: Option<HeldOutAnswers>,
}

impl DpoObjective {
    /// The loss of a batch and its per-pair terms.
    fn forward(&self, batch: &DpoBatch) -> Result<(Tensor, Vec<PairTerms>)> {
        let n = batch.len();
        let token_logp = batch.answers.log_probs(&self.policy, 1.0)?; // (2n, T), 0 on padding
        let logp = token_logp.sum(1)?;
        let (chosen, rejected) = (logp.narrow(0, 0, n)?, logp.narrow(0, n, n)?);
        let out = preference_optimization_loss(
            &chosen,
            &rejected,
            &batch.reference_chosen,
            &batch.reference_rejected,
            self.beta,
            self.loss,
            Some(&batch.weights),
        )?;
        let v = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.detach().to_vec1::<f32>()?) };
        let (rc, rr, lc, lr) = (
            v(&out.rewards_chosen)?,
            v(&out.rewards_rejected)?,
            v(&chosen)?,
            v(&rejected)?,
        );
        let terms = (0..n)
            .map(|i| PairTerms {
                reward_chosen: rc[i] as f64,
                reward_rejected: rr[i] as f64,
                logp_chosen: lc[i] as f64,
                logp_rejected: lr[i] as f64,
                gold_chosen: batch.gold_chosen[i],
                gold_rejected: batch.gold_rejected[i],
            })
            .collect();
        let mut loss = out.loss;
        if self.rpo_alpha > 0.0 {
            // RPO's term: the mean negative log-likelihood per chosen-answer token.
            let chosen_tokens = batch.answers.mask.narrow(0, 0, n)?.sum_all()?;
            let nll = (token_logp.narrow(0, 0, n)?.sum_all()?.neg()? / chosen_tokens)?;
            loss = (loss + (nll * self.rpo_alpha)?)?;
        }
        Ok((loss, terms))
    }
}

impl Objective for DpoObjective {
    type Batch = DpoBatch;

    fn loss(&self, batch: &DpoBatch) -> Result<LossOutput> {
        let (loss, terms) = self.forward(batch)?;
        Ok(LossOutput {
            loss,
            metrics: pair_metrics(&terms),
            tokens: batch.tokens,
            weight: batch.len() as f64,
        })
    }

    /// The held-out pairs' loss and metrics (over all pairs at once), and,
    /// with held-out prompts, the policy's answers to them: `held_out/gold`,
    /// `held_out/proxy`, `held_out/kl`, `held_out/length`, `held_out/ended`.
    fn evaluate(&self, batches: &[DpoBatch]) -> Result<Metrics> {
        let (mut loss_sum, mut weight_sum, mut terms) = (0.0, 0.0, Vec::new());
        for b in batches {
            let (loss, t) = self.forward(b)?;
            let w: f64 = b.weights.sum_all()?.to_scalar::<f32>()? as f64;
            loss_sum += loss.to_scalar::<f32>()? as f64 * w;
            weight_sum += w;
            terms.extend(t);
        }
        if terms.is_empty() {
            bail!("no held-out pairs to evaluate on");
        }
        let mut m = pair_metrics(&terms);
        m.insert("loss".into(), loss_sum / weight_sum.max(1e-12));
        if let Some(h) = &self.held_out {
            if h.samples_per_prompt > 0 {
                let e = h.measure(&self.policy, h.samples_per_prompt)?;
                m.insert("held_out/gold".into(), e.gold_score);
                m.insert("held_out/proxy".into(), e.proxy_score);
                m.insert("held_out/kl".into(), e.kl);
                m.insert("held_out/length".into(), e.answer_length);
                m.insert("held_out/ended".into(), e.ended);
            }
        }
        Ok(m)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.policy.trainable_vars()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.policy.save(dir)
    }

    fn sampler(&self) -> Option<&LanguageModel> {
        Some(&self.policy)
    }
}

/// What a DPO run achieved, as `summary.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoSummary {
    /// The SFT policy on the held-out prompts.
    pub before: PolicyEvaluation,
    /// The trained policy on the same prompts (the same dice).
    pub after: PolicyEvaluation,
    /// Next-token loss on held-out pre-training text (the alignment tax is `after − before`).
    pub held_out_corpus_loss: BeforeAfter,
    pub steps: usize,
    /// Training comparisons (ties dropped).
    pub train_pairs: usize,
    /// Wall-clock seconds of the run: updates and evaluations.
    pub seconds: f64,
    /// Of which the updates alone (what `PpoSummary::seconds` counts for PPO).
    pub update_seconds: f64,
    /// Seconds to compute the reference log-probabilities, once.
    pub reference_seconds: f64,
    /// Distinct answers the reference scored.
    pub reference_answers: usize,
    /// Mean training throughput (prompt and answer tokens through the policy per second).
    pub tokens_per_sec: f64,
    pub config: DpoConfig,
    /// Online DPO's rounds: what each sampled and labelled (empty offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub online_rounds: Vec<OnlineRound>,
}

/// A finished DPO run: the trainer (its policy, history) and its summary.
pub struct DpoRun {
    pub trainer: Trainer<DpoObjective>,
    pub summary: DpoSummary,
}

impl DpoRun {
    /// The trained policy.
    pub fn policy(&self) -> &LanguageModel {
        &self.trainer.objective.policy
    }
}

/// Train a copy of `sft` with DPO on the pairs of `source` (built with
/// [`DpoData::new`] from `sft` as the reference), measuring the policy's
/// answers to `data`'s test prompts before, every `eval_every` updates and
/// after. `corpus` is the pre-training corpus folder whose held-out text
/// measures the alignment tax.
pub fn train_dpo(
    sft: &LanguageModel,
    reward: &RewardModel,
    data: &PreferenceData,
    source: &DpoData,
    config: &DpoConfig,
    corpus: &Path,
    options: &RunOptions,
) -> Result<DpoRun> {
    train_dpo_with(
        sft,
        reward,
        data,
        source,
        config,
        corpus,
        options,
        |_, _| {},
    )
}

/// [`train_dpo`], calling `on_record` with every training record and the
/// samples of evaluation steps (for a progress bar).
#[allow(clippy::too_many_arguments)]
pub fn train_dpo_with(
    sft: &LanguageModel,
    reward: &RewardModel,
    data: &PreferenceData,
    source: &DpoData,
    config: &DpoConfig,
    corpus: &Path,
    options: &RunOptions,
    on_record: impl FnMut(&TrainRecord, &[crate::lm::SampleRecord]),
) -> Result<DpoRun> {
    config.validate()?;
    let held_out = HeldOutAnswers::new(sft, reward, &data.prompts.test, config);
    let mut train = config.train.clone();
    if train.steps == 0 {
        train.steps = source.steps_per_epoch();
    }
    train.warmup_steps = train.warmup_steps.min(train.steps / 5);
    let policy = match &config.lora {
        Some(lora) => sft.with_lora(lora, config.seed)?,
        None => sft.deep_clone()?,
    };
    let objective = DpoObjective {
        policy,
        beta: config.beta,
        loss: config.loss,
        rpo_alpha: config.rpo_alpha,
        held_out: Some(held_out.clone()),
    };
    let started = Instant::now();
    let (trainer, online_rounds) = match &config.online {
        None => {
            if source.train.is_empty() {
                bail!("no training comparisons for offline DPO");
            }
            let mut trainer = Trainer::new(objective, train)?;
            trainer.train_until_with(source, options, trainer.config.steps, on_record)?;
            (trainer, Vec::new())
        }
        Some(online) => train_online(
            sft, reward, data, source, config, online, objective, train, options, on_record,
        )?,
    };
    let seconds = started.elapsed().as_secs_f64();
    // The verdict: 4 answers per held-out prompt with the dice of `rlhf-lab
    // ppo`'s before / after evaluation, so the two CLIs' summaries compare.
    let (samples, seed) = (
        config.verdict_samples_per_prompt.max(1),
        config.seed ^ 0xE7A1,
    );
    let before = held_out.measure_with_seed(sft, samples, seed)?;
    let after = held_out.measure_with_seed(&trainer.objective.policy, samples, seed)?;
    let corpus_loss = |lm: &LanguageModel| -> Result<f64> {
        Ok(crate::lm::pretrain::held_out_loss(lm, corpus, 64, 64)?["loss"])
    };
    let updates: Vec<&TrainRecord> = trainer.history.iter().filter(|r| r.step > 0).collect();
    let summary = DpoSummary {
        before,
        after,
        held_out_corpus_loss: BeforeAfter {
            before: corpus_loss(sft)?,
            after: corpus_loss(&trainer.objective.policy)?,
        },
        steps: trainer.step,
        train_pairs: source.train.len(),
        seconds,
        update_seconds: updates.iter().map(|r| r.seconds).sum(),
        reference_seconds: source.reference_seconds,
        reference_answers: source.reference_answers,
        tokens_per_sec: updates.iter().map(|r| r.tokens_per_sec).sum::<f64>()
            / updates.len().max(1) as f64,
        config: config.clone(),
        online_rounds,
    };
    Ok(DpoRun { trainer, summary })
}

/// Online DPO's rounds ([`super::online_dpo`]): each samples the current
/// policy's answers to the training prompts, labels best against worst, and
/// runs one pass of DPO over them, continuing one trainer (optimiser state and
/// schedule). `train.steps` 0 means one pass per round; otherwise the updates
/// are split evenly over the rounds.
#[allow(clippy::too_many_arguments)]
fn train_online(
    sft: &LanguageModel,
    reward: &RewardModel,
    data: &PreferenceData,
    held_out: &DpoData,
    config: &DpoConfig,
    online: &OnlineDpoConfig,
    objective: DpoObjective,
    mut train: TrainConfig,
    options: &RunOptions,
    mut on_record: impl FnMut(&TrainRecord, &[crate::lm::SampleRecord]),
) -> Result<(Trainer<DpoObjective>, Vec<OnlineRound>)> {
    let prompts = &data.prompts.train;
    if prompts.is_empty() {
        bail!("online DPO: the preference data has no training prompts");
    }
    let steps_per_round = match config.train.steps {
        0 => prompts.len().div_ceil(config.batch_size),
        n => n.div_ceil(online.rounds),
    };
    train.steps = steps_per_round * online.rounds;
    train.warmup_steps = config.train.warmup_steps.min(train.steps / 5);
    let mut trainer = Trainer::new(objective, train)?;
    let mut rounds = Vec::with_capacity(online.rounds);
    for round in 0..online.rounds {
        let seed = seed_for(config.seed, Stream::OnlineDpoRound, round as u64);
        let mut pairs = label_own_answers(
            &trainer.objective.policy,
            reward,
            prompts,
            online,
            config.temperature,
            config.max_new_tokens,
            config.missing_eos_penalty,
            seed,
        )?;
        let round_data = held_out.with_train(sft, data, &pairs.comparisons, config)?;
        pairs.round.round = round;
        pairs.round.first_step = trainer.step;
        pairs.round.reference_seconds = round_data.reference_seconds;
        let source = RoundSource {
            data: &round_data,
            first_step: trainer.step,
        };
        trainer.train_until_with(
            &source,
            options,
            (round + 1) * steps_per_round,
            &mut on_record,
        )?;
        rounds.push(pairs.round);
    }
    Ok((trainer, rounds))
}

/// `datasets/dpo-runs/<name>`: a DPO run made once with `rlhf-lab dpo` and
/// committed (summary and history), for the notebook's comparison.
pub fn recorded_dpo_run_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/dpo-runs")
        .join(name)
}

/// A DPO run on disk: `summary.json` ([`DpoSummary`]) and `history.json` (the
/// [`TrainRecord`]s, evaluations included); `metrics.csv`/`.jsonl` hold the
/// same records flattened for other tools.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoRecord {
    pub summary: DpoSummary,
    pub history: Vec<TrainRecord>,
}

impl DpoRecord {
    /// The record of `run`.
    pub fn of_run(run: &DpoRun) -> Self {
        Self {
            summary: run.summary.clone(),
            history: run.trainer.history.clone(),
        }
    }

    /// Read a run folder (errors name the file).
    pub fn read(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<String> {
            let p = dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let summary = serde_json::from_str(&read("summary.json")?).with_context(|| {
            format!("{}: not a DPO summary", dir.join("summary.json").display())
        })?;
        let history = serde_json::from_str(&read("history.json")?).with_context(|| {
            format!(
                "{}: not a list of training records",
                dir.join("history.json").display()
            )
        })?;
        Ok(Self { summary, history })
    }

    /// Write `summary.json`, `history.json` and `metrics.csv`/`.jsonl` to `dir` (atomically each).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::io::write_json_atomic(&dir.join("summary.json"), &self.summary)?;
        crate::io::write_json_atomic(&dir.join("history.json"), &self.history)?;
        crate::metrics::write_metrics(dir, &self.history)
    }

    /// The held-out measurements along training: (step, evaluation) at every
    /// evaluation that answered the held-out prompts.
    pub fn held_out(&self) -> Vec<(usize, PolicyEvaluation)> {
        self.history
            .iter()
            .filter_map(|r| {
                let m = r.eval.as_ref()?;
                Some((
                    r.step,
                    PolicyEvaluation {
                        gold_score: *m.get("held_out/gold")?,
                        proxy_score: *m.get("held_out/proxy")?,
                        kl: *m.get("held_out/kl")?,
                        answer_length: *m.get("held_out/length")?,
                        ended: *m.get("held_out/ended")?,
                        answers: self.summary.config.eval_samples_per_prompt,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(rc: f64, rr: f64, gc: f64, gr: f64) -> PairTerms {
        PairTerms {
            reward_chosen: rc,
            reward_rejected: rr,
            logp_chosen: -10.0,
            logp_rejected: -20.0,
            gold_chosen: gc,
            gold_rejected: gr,
        }
    }

    /// TRL's metrics by hand, and the gold accuracy leaving gold ties out.
    #[test]
    fn pair_metrics_by_hand() {
        let m = pair_metrics(&[
            terms(0.3, -0.1, 5.0, 2.0), // right, and right by gold
            terms(0.0, 0.2, 4.0, 1.0),  // wrong, wrong by gold
            terms(0.1, 0.1, 3.0, 3.0),  // tie: not a win; gold tie: left out
        ]);
        assert!((m["rewards/chosen"] - 0.4 / 3.0).abs() < 1e-12);
        assert!((m["rewards/rejected"] - 0.2 / 3.0).abs() < 1e-12);
        assert!((m["rewards/margins"] - 0.2 / 3.0).abs() < 1e-12);
        assert!((m["rewards/accuracies"] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m["rewards/gold_accuracies"], 0.5);
        assert_eq!(m["logps/chosen"], -10.0);
        assert_eq!(m["logps/rejected"], -20.0);
    }

    #[test]
    fn config_errors_name_the_field() {
        for (cfg, field) in [
            (
                DpoConfig {
                    beta: 0.0,
                    ..Default::default()
                },
                "`beta`",
            ),
            (
                DpoConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                "`batch_size`",
            ),
            (
                DpoConfig {
                    temperature: -1.0,
                    ..Default::default()
                },
                "`temperature`",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let e = serde_json::from_str::<DpoConfig>(r#"{"betta": 0.2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("betta"), "{e}");
    }
}
