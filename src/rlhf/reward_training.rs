//! Training the reward model (rung 6) on the same comparisons with one of three
//! objectives, each an [`Objective`] of the crate's one training loop:
//!
//! - **bt** — pairwise Bradley–Terry on the raw comparisons (InstructGPT, TRL's
//!   `RewardTrainer`): −log σ(r_c − r_r − margin) + c·mean((r_c + r_r)²);
//! - **elo** — the recipe of the seeds: aggregate the comparisons of each
//!   prompt's answers into Bradley–Terry (or Elo) scores, normalise them to mean
//!   0 and std 1 within the prompt, and regress the reward onto them: mean (r − y)²;
//! - **robust** — pairwise, each comparison weighted by its annotator's
//!   reliability from rung 5's robust Bradley–Terry (max(0, 2·agreement − 1)²).
//!
//! Whatever the objective, evaluation is the same: held-out comparisons, the
//! Bradley–Terry loss, pairwise accuracy (strict >) against the annotators and
//! against the gold standard, and Spearman's ρ of reward against gold score
//! over the held-out answers.

use super::losses::{pairwise_accuracy, pairwise_loss, regression_loss, PairwiseOptions};
use super::preferences::PreferenceData;
use super::reward_model::{RewardModel, SequenceBatch};
use crate::feedback::aggregate::robust_bradley_terry_items;
pub use crate::feedback::aggregate::{answer_scores, Aggregation, AnswerScore};
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::{gold_score_turn, split_turn, word_count};
use crate::feedback::ranking::spearman_rho;
use crate::feedback::records::Comparison;
use crate::lm::train::{epoch_batch, BatchSource, LossOutput, Metrics, Objective};
use crate::seeds::Stream;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Which loss the reward model learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardObjectiveKind {
    /// Pairwise Bradley–Terry on the comparisons.
    Bt,
    /// Regression onto per-answer scores aggregated from the comparisons.
    Elo,
    /// Pairwise, each comparison weighted by its annotator's reliability.
    Robust,
}

impl std::str::FromStr for RewardObjectiveKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bt" => Ok(Self::Bt),
            "elo" => Ok(Self::Elo),
            "robust" => Ok(Self::Robust),
            other => bail!("unknown reward objective `{other}` (bt, elo or robust)"),
        }
    }
}

/// How to build the training examples. Every field is documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardDataConfig {
    /// The objective.
    pub objective: RewardObjectiveKind,
    /// A constant margin m in −log σ(r_c − r_r − m) (0: none).
    pub margin: f64,
    /// c of the centring term c·mean((r_c + r_r)²) (TRL recommends 0.01; 0: none).
    pub centering: f64,
    /// How the `elo` objective turns comparisons into per-answer scores.
    pub aggregation: Aggregation,
    /// Rounds of re-weighting in the `robust` objective's annotator fit.
    pub robust_rounds: usize,
    /// Comparisons (or scored answers, for `elo`) per training batch.
    pub batch_size: usize,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for RewardDataConfig {
    fn default() -> Self {
        Self {
            objective: RewardObjectiveKind::Bt,
            margin: 0.0,
            centering: 0.0,
            aggregation: Aggregation::BradleyTerry,
            robust_rounds: 5,
            batch_size: 16,
            seed: 0,
        }
    }
}

impl RewardDataConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("reward data config field `batch_size` must be at least 1");
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            bail!(
                "reward data config field `margin` must be ≥ 0, got {}",
                self.margin
            );
        }
        if !(self.centering.is_finite() && self.centering >= 0.0) {
            bail!(
                "reward data config field `centering` must be ≥ 0, got {}",
                self.centering
            );
        }
        Ok(())
    }
}

/// One decided comparison, tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct PairExample {
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    /// How much the comparison counts (1, or the annotator's reliability).
    pub weight: f64,
    pub margin: f64,
    /// Gold scores of the two answers.
    pub gold_chosen: f64,
    pub gold_rejected: f64,
    /// Identities of the two answers (prompt id and text), to find repeats.
    pub chosen_key: String,
    pub rejected_key: String,
}

/// One answer with a target score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredExample {
    pub ids: Vec<u32>,
    pub target: f64,
    /// The answer's identity (prompt id and text).
    pub key: String,
}

/// A batch of comparisons: chosen answers in rows 0..n, rejected in n..2n.
#[derive(Debug, Clone)]
pub struct PairBatch {
    pub sequences: SequenceBatch,
    pub weight: Tensor,
    pub margin: Option<Tensor>,
    pub gold_chosen: Vec<f64>,
    pub gold_rejected: Vec<f64>,
    pub chosen_key: Vec<String>,
    pub rejected_key: Vec<String>,
}

/// A batch of answers with target scores.
#[derive(Debug, Clone)]
pub struct TargetBatch {
    pub sequences: SequenceBatch,
    pub targets: Tensor,
}

/// What the reward objective trains on.
#[derive(Debug, Clone)]
pub enum RewardBatch {
    Pairs(PairBatch),
    Targets(TargetBatch),
}

impl PairBatch {
    pub fn new(examples: &[&PairExample], pad_id: u32, device: &Device) -> Result<Self> {
        let mut seqs: Vec<Vec<u32>> = examples.iter().map(|e| e.chosen.clone()).collect();
        seqs.extend(examples.iter().map(|e| e.rejected.clone()));
        let margins: Vec<f32> = examples.iter().map(|e| e.margin as f32).collect();
        let any_margin = margins.iter().any(|&m| m != 0.0);
        Ok(Self {
            sequences: SequenceBatch::new(&seqs, pad_id, device)?,
            weight: Tensor::from_vec(
                examples.iter().map(|e| e.weight as f32).collect::<Vec<_>>(),
                examples.len(),
                device,
            )?,
            margin: if any_margin {
                Some(Tensor::from_vec(margins, examples.len(), device)?)
            } else {
                None
            },
            gold_chosen: examples.iter().map(|e| e.gold_chosen).collect(),
            gold_rejected: examples.iter().map(|e| e.gold_rejected).collect(),
            chosen_key: examples.iter().map(|e| e.chosen_key.clone()).collect(),
            rejected_key: examples.iter().map(|e| e.rejected_key.clone()).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.gold_chosen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of one answer: its prompt and its text.
pub fn answer_key(prompt_id: &str, text: &str) -> String {
    format!("{prompt_id}\u{1f}{text}")
}

/// Tokenized comparisons (ties dropped: they choose nothing), each with the
/// weight `weight(annotator)` and the margin `margin`.
pub fn pair_examples(
    rm: &RewardModel,
    data: &PreferenceData,
    comparisons: &[Comparison],
    margin: f64,
    weight: impl Fn(&str) -> f64,
) -> Result<Vec<PairExample>> {
    let mut cache: HashMap<String, Vec<u32>> = HashMap::new();
    let mut encode = |p: &Prompt, text: &str| -> Result<Vec<u32>> {
        let key = answer_key(&p.id, text);
        if let Some(ids) = cache.get(&key) {
            return Ok(ids.clone());
        }
        let ids = rm.encode(&p.text, text)?;
        cache.insert(key, ids.clone());
        Ok(ids)
    };
    let mut out = Vec::new();
    for c in comparisons {
        let Some((chosen, rejected)) = c.chosen_rejected() else {
            continue;
        };
        let Some(p) = data.prompt(&c.prompt_id) else {
            bail!("comparison of unknown prompt `{}`", c.prompt_id);
        };
        out.push(PairExample {
            chosen: encode(p, chosen)?,
            rejected: encode(p, rejected)?,
            weight: weight(&c.annotator),
            margin,
            gold_chosen: gold_score_turn(p, chosen),
            gold_rejected: gold_score_turn(p, rejected),
            chosen_key: answer_key(&p.id, chosen),
            rejected_key: answer_key(&p.id, rejected),
        });
    }
    Ok(out)
}

/// Each annotator's reliability weight from rung 5's robust Bradley–Terry,
/// fitted over single answers (items: prompt and text).
pub fn annotator_weights(comparisons: &[Comparison], rounds: usize) -> HashMap<String, f64> {
    let fit = robust_bradley_terry_items(comparisons, rounds, |c| {
        (
            answer_key(&c.prompt_id, &c.response_a),
            answer_key(&c.prompt_id, &c.response_b),
        )
    });
    fit.annotators
        .into_iter()
        .map(|a| (a.annotator, a.weight))
        .collect()
}

/// Training and held-out examples for one objective: the [`BatchSource`] of
/// reward-model training.
#[derive(Debug, Clone)]
pub struct RewardData {
    /// Training comparisons (pairwise objectives).
    pub train_pairs: Vec<PairExample>,
    /// Training answers with targets (the `elo` objective).
    pub train_scored: Vec<ScoredExample>,
    /// Held-out comparisons every objective is evaluated on.
    pub eval_pairs: Vec<PairExample>,
    pub config: RewardDataConfig,
    pub pad_id: u32,
    /// Annotator weights used by the `robust` objective (empty otherwise).
    pub annotator_weights: HashMap<String, f64>,
}

impl RewardData {
    /// Examples of `config.objective` from the `train` comparisons, evaluated
    /// on the `eval` comparisons (both about prompts of `data`).
    pub fn new(
        rm: &RewardModel,
        data: &PreferenceData,
        train: &[Comparison],
        eval: &[Comparison],
        config: RewardDataConfig,
    ) -> Result<Self> {
        config.validate()?;
        let weights = match config.objective {
            RewardObjectiveKind::Robust => annotator_weights(train, config.robust_rounds),
            _ => HashMap::new(),
        };
        let train_pairs = match config.objective {
            RewardObjectiveKind::Elo => Vec::new(),
            _ => pair_examples(rm, data, train, config.margin, |a| {
                weights.get(a).copied().unwrap_or(1.0)
            })?,
        };
        let train_scored = match config.objective {
            RewardObjectiveKind::Elo => answer_scores(train, config.aggregation)
                .into_iter()
                .map(|a| {
                    let p = data.prompt(&a.prompt_id).ok_or_else(|| {
                        anyhow::anyhow!("comparison of unknown prompt `{}`", a.prompt_id)
                    })?;
                    Ok(ScoredExample {
                        ids: rm.encode(&p.text, &a.response)?,
                        target: a.score,
                        key: answer_key(&a.prompt_id, &a.response),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let eval_pairs = pair_examples(rm, data, eval, 0.0, |_| 1.0)?;
        if train_pairs.is_empty() && train_scored.is_empty() {
            bail!("no training examples (every comparison was a tie?)");
        }
        if eval_pairs.is_empty() {
            bail!("no held-out comparisons to evaluate on");
        }
        Ok(Self {
            train_pairs,
            train_scored,
            eval_pairs,
            config,
            pad_id: rm.tokenizer.pad_id(),
            annotator_weights: weights,
        })
    }

    /// Training examples per epoch.
    pub fn train_len(&self) -> usize {
        self.train_pairs.len().max(self.train_scored.len())
    }
}

impl BatchSource for RewardData {
    type Batch = RewardBatch;

    /// Batch `step`: `batch_size` examples of a fresh shuffle of the training
    /// set each epoch (every example once per epoch).
    fn train_batch(&self, step: usize, device: &Device) -> Result<RewardBatch> {
        let idx = &epoch_batch(
            self.train_len(),
            self.config.batch_size,
            step,
            self.config.seed,
            Stream::RewardModelEpoch,
        );
        if self.config.objective == RewardObjectiveKind::Elo {
            let rows: Vec<Vec<u32>> = idx
                .iter()
                .map(|&i| self.train_scored[i].ids.clone())
                .collect();
            let targets: Vec<f32> = idx
                .iter()
                .map(|&i| self.train_scored[i].target as f32)
                .collect();
            Ok(RewardBatch::Targets(TargetBatch {
                sequences: SequenceBatch::new(&rows, self.pad_id, device)?,
                targets: Tensor::from_vec(targets, idx.len(), device)?,
            }))
        } else {
            let ex: Vec<&PairExample> = idx.iter().map(|&i| &self.train_pairs[i]).collect();
            Ok(RewardBatch::Pairs(PairBatch::new(
                &ex,
                self.pad_id,
                device,
            )?))
        }
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<RewardBatch>> {
        let refs: Vec<&PairExample> = self.eval_pairs.iter().collect();
        refs.chunks(32)
            .map(|c| Ok(RewardBatch::Pairs(PairBatch::new(c, self.pad_id, device)?)))
            .collect()
    }
}

/// The reward model under training, with the pairwise loss's options.
#[derive(Clone)]
pub struct RewardObjective {
    pub rm: RewardModel,
    pub options: PairwiseOptions,
}

impl RewardObjective {
    pub fn new(rm: &RewardModel, options: PairwiseOptions) -> Self {
        Self {
            rm: rm.clone(),
            options,
        }
    }

    /// Raw rewards of the chosen and rejected answers of a pair batch.
    fn pair_scores(&self, b: &PairBatch) -> Result<(Tensor, Tensor)> {
        let r = self.rm.raw_scores(&b.sequences)?;
        let n = b.len();
        Ok((r.narrow(0, 0, n)?, r.narrow(0, n, n)?))
    }
}

/// Held-out metrics of a reward model on comparisons (see [`pair_metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairMetrics {
    /// Mean Bradley–Terry loss −log σ(r_c − r_r).
    pub loss: f64,
    /// Share of comparisons where the annotator's choice gets the strictly higher reward.
    pub accuracy: f64,
    /// Share of comparisons with a gold preference where the gold-preferred
    /// answer gets the strictly higher reward.
    pub accuracy_vs_gold: f64,
    /// Spearman's ρ of reward against gold score over the distinct answers.
    pub spearman_vs_gold: f64,
    /// Mean and standard deviation of the raw reward over the distinct answers.
    pub reward_mean: f64,
    pub reward_std: f64,
    pub comparisons: usize,
}

impl PairMetrics {
    pub fn to_metrics(&self) -> Metrics {
        Metrics::from([
            ("loss".into(), self.loss),
            ("accuracy".into(), self.accuracy),
            ("accuracy_vs_gold".into(), self.accuracy_vs_gold),
            ("spearman_vs_gold".into(), self.spearman_vs_gold),
            ("reward_mean".into(), self.reward_mean),
            ("reward_std".into(), self.reward_std),
        ])
    }
}

/// One held-out comparison with the rewards a model gave its two answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPair {
    pub chosen: f64,
    pub rejected: f64,
    pub gold_chosen: f64,
    pub gold_rejected: f64,
    pub chosen_key: String,
    pub rejected_key: String,
}

/// [`PairMetrics`] of scored comparisons.
pub fn pair_metrics(pairs: &[ScoredPair]) -> Result<PairMetrics> {
    if pairs.is_empty() {
        bail!("no comparisons to evaluate");
    }
    let (mut loss, mut right) = (0.0, 0usize);
    let (mut gold_right, mut gold_n) = (0usize, 0usize);
    let mut answers: HashMap<&str, (f64, f64)> = HashMap::new();
    for p in pairs {
        let d = p.chosen - p.rejected;
        loss += (1.0 + (-d).exp()).ln();
        right += usize::from(d > 0.0);
        let g = p.gold_chosen - p.gold_rejected;
        if g != 0.0 {
            gold_n += 1;
            gold_right += usize::from(d * g > 0.0);
        }
        answers.insert(&p.chosen_key, (p.chosen, p.gold_chosen));
        answers.insert(&p.rejected_key, (p.rejected, p.gold_rejected));
    }
    let mut keys: Vec<&str> = answers.keys().copied().collect();
    keys.sort_unstable();
    let rewards: Vec<f64> = keys.iter().map(|k| answers[k].0).collect();
    let golds: Vec<f64> = keys.iter().map(|k| answers[k].1).collect();
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rewards.len() as f64;
    let n = pairs.len() as f64;
    Ok(PairMetrics {
        loss: loss / n,
        accuracy: right as f64 / n,
        accuracy_vs_gold: gold_right as f64 / gold_n.max(1) as f64,
        spearman_vs_gold: spearman_rho(&rewards, &golds),
        reward_mean: mean,
        reward_std: var.sqrt(),
        comparisons: pairs.len(),
    })
}

impl RewardObjective {
    /// The held-out comparisons of `batches`, scored by this reward model.
    pub fn score_pairs(&self, batches: &[PairBatch]) -> Result<Vec<ScoredPair>> {
        let mut out = Vec::new();
        for b in batches {
            let (rc, rr) = self.pair_scores(b)?;
            let v = |t: Tensor| -> Result<Vec<f64>> {
                Ok(t.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?)
            };
            let (rc, rr) = (v(rc)?, v(rr)?);
            for i in 0..b.len() {
                out.push(ScoredPair {
                    chosen: rc[i],
                    rejected: rr[i],
                    gold_chosen: b.gold_chosen[i],
                    gold_rejected: b.gold_rejected[i],
                    chosen_key: b.chosen_key[i].clone(),
                    rejected_key: b.rejected_key[i].clone(),
                });
            }
        }
        Ok(out)
    }
}

impl Objective for RewardObjective {
    type Batch = RewardBatch;

    fn loss(&self, batch: &RewardBatch) -> Result<LossOutput> {
        match batch {
            RewardBatch::Pairs(b) => {
                let (rc, rr) = self.pair_scores(b)?;
                let loss =
                    pairwise_loss(&rc, &rr, b.margin.as_ref(), Some(&b.weight), self.options)?;
                let margin = (&rc - &rr)?
                    .mean_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                Ok(LossOutput {
                    loss,
                    metrics: Metrics::from([
                        ("accuracy".into(), pairwise_accuracy(&rc, &rr)?),
                        ("margin".into(), margin),
                    ]),
                    tokens: b.sequences.tokens as f64,
                    weight: b.len() as f64,
                })
            }
            RewardBatch::Targets(b) => {
                let r = self.rm.raw_scores(&b.sequences)?;
                Ok(LossOutput {
                    loss: regression_loss(&r, &b.targets)?,
                    metrics: Metrics::new(),
                    tokens: b.sequences.tokens as f64,
                    weight: b.sequences.len() as f64,
                })
            }
        }
    }

    /// Every objective is evaluated the same way, on held-out comparisons:
    /// [`PairMetrics`].
    fn evaluate(&self, batches: &[RewardBatch]) -> Result<Metrics> {
        let pairs: Vec<PairBatch> = batches
            .iter()
            .filter_map(|b| match b {
                RewardBatch::Pairs(p) => Some(p.clone()),
                RewardBatch::Targets(_) => None,
            })
            .collect();
        Ok(pair_metrics(&self.score_pairs(&pairs)?)?.to_metrics())
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.rm.trainable_vars()
    }

    fn set_training(&self, training: bool, step_seed: u64) {
        self.rm.set_training(training, step_seed);
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.rm.save(dir)
    }
}

/// [`PairMetrics`] of a "reward model" that is a formula, `score(prompt,
/// answer)`, on `comparisons` (ties skipped): the baselines.
pub fn baseline(
    data: &PreferenceData,
    comparisons: &[Comparison],
    score: impl Fn(&Prompt, &str) -> f64,
) -> Result<PairMetrics> {
    let mut pairs = Vec::new();
    for c in comparisons {
        let Some((chosen, rejected)) = c.chosen_rejected() else {
            continue;
        };
        let Some(p) = data.prompt(&c.prompt_id) else {
            bail!("comparison of unknown prompt `{}`", c.prompt_id);
        };
        pairs.push(ScoredPair {
            chosen: score(p, chosen),
            rejected: score(p, rejected),
            gold_chosen: gold_score_turn(p, chosen),
            gold_rejected: gold_score_turn(p, rejected),
            chosen_key: answer_key(&p.id, chosen),
            rejected_key: answer_key(&p.id, rejected),
        });
    }
    pair_metrics(&pairs)
}

/// The length-only baseline: the "reward" of an answer is its number of
/// words, so the longer answer is predicted to win (equal lengths count as
/// wrong).
pub fn length_baseline(data: &PreferenceData, comparisons: &[Comparison]) -> Result<PairMetrics> {
    baseline(data, comparisons, |_, t| {
        word_count(split_turn(t).text) as f64
    })
}

/// Everything [`train_reward_model`] needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardTrainConfig {
    /// Examples: objective, margin, centring, batch size.
    pub data: RewardDataConfig,
    /// The optimiser and its schedule (`steps` 0: one pass over the training examples).
    pub train: crate::lm::TrainConfig,
    /// Answers source whose rewards are normalised to mean 0, std 1 after
    /// training (the SFT policy's answers at PPO's sampling temperature).
    pub normalize_on: String,
    /// Seed of the scalar head's initialisation (and of the adapters' A).
    pub head_seed: u64,
    /// Train low-rank adapters on the trunk (and the head) instead of every
    /// weight; the model is saved merged. `None`: full fine-tuning.
    pub lora: Option<crate::lm::lora::LoraConfig>,
}

impl Default for RewardTrainConfig {
    fn default() -> Self {
        Self {
            data: RewardDataConfig::default(),
            train: crate::lm::TrainConfig {
                steps: 0,
                learning_rate: 5e-4,
                warmup_steps: 10,
                eval_every: 50,
                ..Default::default()
            },
            normalize_on: "sft T=0.7".into(),
            head_seed: 0,
            lora: None,
        }
    }
}

/// What a reward-model training run produced.
pub struct RewardRun {
    pub trainer: crate::lm::Trainer<RewardObjective>,
    /// Held-out metrics on the test comparisons, after training.
    pub test: PairMetrics,
    /// The same metrics of the length-only baseline.
    pub length_baseline: PairMetrics,
    /// Wall time of the updates and evaluations, seconds.
    pub seconds: f64,
    /// Mean training throughput (tokens through the reward model per second).
    pub tokens_per_sec: f64,
}

impl RewardRun {
    /// The trained reward model (normalised, see [`RewardTrainConfig::normalize_on`]).
    pub fn model(&self) -> &RewardModel {
        &self.trainer.objective.rm
    }
}

/// Normalise `rm` so that the answers of `source` (for example `sft T=0.7`) in
/// `data` get rewards of mean 0 and standard deviation 1.
pub fn normalize_on_answers(
    rm: &mut RewardModel,
    data: &PreferenceData,
    source: &str,
) -> Result<()> {
    let mut seqs = Vec::new();
    for r in data.responses.iter().filter(|r| r.source == source) {
        let p = data
            .prompt(&r.prompt_id)
            .ok_or_else(|| anyhow::anyhow!("answer to unknown prompt `{}`", r.prompt_id))?;
        seqs.push(rm.encode(&p.text, &r.text)?);
    }
    if seqs.is_empty() {
        bail!("no answers of source `{source}` to normalise the reward on");
    }
    let raw = rm.raw_scores_of_ids(&seqs, 32)?;
    rm.normalization = super::reward_model::RewardNormalization::fit(&raw);
    Ok(())
}

/// The reward model's metrics on held-out comparisons.
pub fn evaluate_reward_model(
    rm: &RewardModel,
    data: &PreferenceData,
    comparisons: &[Comparison],
) -> Result<PairMetrics> {
    let examples = pair_examples(rm, data, comparisons, 0.0, |_| 1.0)?;
    let refs: Vec<&PairExample> = examples.iter().collect();
    let batches = refs
        .chunks(32)
        .map(|c| PairBatch::new(c, rm.tokenizer.pad_id(), rm.device()))
        .collect::<Result<Vec<_>>>()?;
    let objective = RewardObjective::new(rm, PairwiseOptions::default());
    pair_metrics(&objective.score_pairs(&batches)?)
}

/// Train a reward model from `base` (the SFT model) on `labels.train`,
/// evaluating on `labels.validation` during training and on `labels.test` at
/// the end; then normalise it ([`normalize_on_answers`]).
pub fn train_reward_model(
    base: &crate::lm::LanguageModel,
    data: &PreferenceData,
    labels: &super::preferences::Splits<Vec<Comparison>>,
    config: &RewardTrainConfig,
    options: &crate::lm::RunOptions,
) -> Result<RewardRun> {
    train_reward_model_with(base, data, labels, config, options, |_, _| {})
}

/// [`train_reward_model`], calling `on_record` with every training record and
/// the samples of evaluation steps (for a progress bar).
pub fn train_reward_model_with(
    base: &crate::lm::LanguageModel,
    data: &PreferenceData,
    labels: &super::preferences::Splits<Vec<Comparison>>,
    config: &RewardTrainConfig,
    options: &crate::lm::RunOptions,
    on_record: impl FnMut(&crate::lm::TrainRecord, &[crate::lm::SampleRecord]),
) -> Result<RewardRun> {
    let RewardSetup {
        mut trainer,
        source,
    } = reward_setup(base, data, labels, config)?;
    let started = std::time::Instant::now();
    trainer.train_until_with(&source, options, trainer.config.steps, on_record)?;
    let seconds = started.elapsed().as_secs_f64();
    normalize_on_answers(&mut trainer.objective.rm, data, &config.normalize_on)?;
    let test = evaluate_reward_model(&trainer.objective.rm, data, &labels.test)?;
    let updates: Vec<&crate::lm::TrainRecord> =
        trainer.history.iter().filter(|r| r.step > 0).collect();
    let tokens_per_sec =
        updates.iter().map(|r| r.tokens_per_sec).sum::<f64>() / updates.len().max(1) as f64;
    Ok(RewardRun {
        length_baseline: length_baseline(data, &labels.test)?,
        trainer,
        test,
        seconds,
        tokens_per_sec,
    })
}

/// A reward model ready to train: its trainer and its examples.
pub struct RewardSetup {
    /// The trainer of a fresh scalar head on `base` (with adapters if the
    /// config asks), `config.train`'s steps filled in (0: one pass).
    pub trainer: crate::lm::Trainer<RewardObjective>,
    /// The training and held-out examples.
    pub source: RewardData,
}

/// The reward model [`train_reward_model`] trains, before any update: a
/// scalar head on `base`, the examples of `labels` (train, validation) about
/// `data`, the optimiser of `config`.
pub fn reward_setup(
    base: &crate::lm::LanguageModel,
    data: &PreferenceData,
    labels: &super::preferences::Splits<Vec<Comparison>>,
    config: &RewardTrainConfig,
) -> Result<RewardSetup> {
    let rm = RewardModel::from_language_model(base, config.head_seed)?;
    let rm = match &config.lora {
        Some(lora) => rm.with_lora(lora, config.head_seed)?,
        None => rm,
    };
    let source = RewardData::new(
        &rm,
        data,
        &labels.train,
        &labels.validation,
        config.data.clone(),
    )?;
    let mut train = config.train.clone();
    if train.steps == 0 {
        train.steps = source.train_len().div_ceil(config.data.batch_size);
    }
    train.warmup_steps = train.warmup_steps.min(train.steps / 5);
    let objective = RewardObjective::new(
        &rm,
        PairwiseOptions {
            centering: config.data.centering,
        },
    );
    let trainer = crate::lm::Trainer::new(objective, train)?;
    Ok(RewardSetup { trainer, source })
}

/// What `rlhf-lab rm train` wrote to `summary.json`, the parts read back
/// (other fields are ignored): held-out metrics and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardRunSummary {
    /// Updates made.
    pub updates: usize,
    /// Wall time of the updates and evaluations, seconds.
    pub seconds: f64,
    /// The reward model on the test comparisons.
    pub test: PairMetrics,
    /// The length-only baseline on the same comparisons.
    pub length_baseline: PairMetrics,
}

impl RewardRunSummary {
    /// Read `summary.json`; errors name the file.
    pub fn read(path: &Path) -> Result<Self> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a reward-model summary", path.display()))
    }
}
