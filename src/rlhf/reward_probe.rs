//! A linear reward head on frozen features — the cheap way to compare the
//! reward objectives many times over.
//!
//! ```text
//! h(answer) = Trunk(prompt ⊕ answer)[last token]    computed once per answer, frozen
//! r = h · wᵀ                                         only w (1, d) trains
//! ```
//!
//! Training w is a linear model on d = 128 numbers, so every objective runs
//! for many epochs in seconds, through the same training loop ([`Trainer`])
//! and the same losses as the full reward model. It is a *probe*: how well
//! the SFT model's own representation of an answer predicts the labels.

use super::losses::{pairwise_accuracy, pairwise_loss, regression_loss, PairwiseOptions};
use super::preferences::PreferenceData;
use super::reward_model::RewardModel;
use super::reward_training::{
    pair_metrics, PairExample, PairMetrics, RewardData, RewardDataConfig, ScoredPair,
};
use crate::feedback::records::Comparison;
use crate::lm::train::{BatchSource, LossOutput, Metrics, Objective, TrainConfig, Trainer};
use crate::lm::RunOptions;
use crate::seeds::{seed_for, Stream};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use gridworld::Rng;
use std::collections::HashMap;
use std::path::Path;

/// The frozen feature vector of every answer of a dataset.
#[derive(Debug, Clone)]
pub struct AnswerFeatures {
    index: HashMap<String, u32>,
    /// (answers, d)
    pub features: Tensor,
}

impl AnswerFeatures {
    /// The last-token hidden state of `rm`'s trunk for every answer in `data`.
    pub fn new(rm: &RewardModel, data: &PreferenceData) -> Result<Self> {
        let mut index = HashMap::new();
        let mut seqs = Vec::new();
        for r in &data.responses {
            let key = super::reward_training::answer_key(&r.prompt_id, &r.text);
            if index.contains_key(&key) {
                continue;
            }
            let p = data
                .prompt(&r.prompt_id)
                .with_context(|| format!("answer to unknown prompt `{}`", r.prompt_id))?;
            index.insert(key, seqs.len() as u32);
            seqs.push(rm.encode(&p.text, &r.text)?);
        }
        let mut rows = Vec::new();
        for chunk in seqs.chunks(32) {
            rows.push(rm.last_hidden_of_ids(chunk)?);
        }
        Ok(Self {
            index,
            features: Tensor::cat(&rows, 0)?,
        })
    }

    fn row(&self, key: &str) -> Result<u32> {
        self.index
            .get(key)
            .copied()
            .with_context(|| "an answer of the comparisons is not among the dataset's answers")
    }
}

/// Comparisons (or scored answers) as feature rows.
#[derive(Debug, Clone)]
pub enum ProbeBatch {
    Pairs {
        chosen: Tensor,
        rejected: Tensor,
        weight: Tensor,
        margin: Option<Tensor>,
        /// For the held-out metrics.
        examples: Vec<PairExample>,
    },
    Targets {
        rows: Tensor,
        targets: Tensor,
    },
}

/// The examples of [`RewardData`] as rows of [`AnswerFeatures`].
#[derive(Debug, Clone)]
pub struct ProbeData {
    pub data: RewardData,
    features: AnswerFeatures,
    /// Rows of the `elo` objective's scored answers.
    scored_rows: Vec<u32>,
}

impl ProbeData {
    pub fn new(data: RewardData, features: AnswerFeatures) -> Result<Self> {
        let scored_rows = data
            .train_scored
            .iter()
            .map(|s| features.row(&s.key))
            .collect::<Result<_>>()?;
        Ok(Self {
            data,
            features,
            scored_rows,
        })
    }

    fn pairs(&self, examples: &[&PairExample], device: &Device) -> Result<ProbeBatch> {
        let rows = |f: &dyn Fn(&PairExample) -> &str| -> Result<Tensor> {
            let v = examples
                .iter()
                .map(|e| self.features.row(f(e)))
                .collect::<Result<Vec<u32>>>()?;
            Ok(Tensor::from_vec(v, examples.len(), device)?)
        };
        let margins: Vec<f32> = examples.iter().map(|e| e.margin as f32).collect();
        Ok(ProbeBatch::Pairs {
            chosen: rows(&|e| &e.chosen_key)?,
            rejected: rows(&|e| &e.rejected_key)?,
            weight: Tensor::from_vec(
                examples.iter().map(|e| e.weight as f32).collect::<Vec<_>>(),
                examples.len(),
                device,
            )?,
            margin: if margins.iter().any(|&m| m != 0.0) {
                Some(Tensor::from_vec(margins, examples.len(), device)?)
            } else {
                None
            },
            examples: examples.iter().map(|e| (*e).clone()).collect(),
        })
    }
}

impl BatchSource for ProbeData {
    type Batch = ProbeBatch;

    fn train_batch(&self, step: usize, device: &Device) -> Result<ProbeBatch> {
        let d = &self.data;
        let n = d.train_len();
        let bs = d.config.batch_size.min(n);
        let mut rng = Rng::new(seed_for(
            d.config.seed,
            Stream::RewardProbeBatch,
            step as u64,
        ));
        let idx: Vec<usize> = (0..bs).map(|_| rng.below(n)).collect();
        if d.train_pairs.is_empty() {
            let rows: Vec<u32> = idx.iter().map(|&i| self.scored_rows[i]).collect();
            let targets: Vec<f32> = idx
                .iter()
                .map(|&i| d.train_scored[i].target as f32)
                .collect();
            Ok(ProbeBatch::Targets {
                rows: Tensor::from_vec(rows, bs, device)?,
                targets: Tensor::from_vec(targets, bs, device)?,
            })
        } else {
            let ex: Vec<&PairExample> = idx.iter().map(|&i| &d.train_pairs[i]).collect();
            self.pairs(&ex, device)
        }
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<ProbeBatch>> {
        let ex: Vec<&PairExample> = self.data.eval_pairs.iter().collect();
        Ok(vec![self.pairs(&ex, device)?])
    }
}

/// A linear reward head on frozen features, trained with the reward model's losses.
#[derive(Clone)]
pub struct ProbeObjective {
    pub head: Var,
    features: Tensor,
    pub options: PairwiseOptions,
}

impl ProbeObjective {
    /// A zero-initialised head of the features' width (the loss is convex in it).
    pub fn new(features: &AnswerFeatures, options: PairwiseOptions) -> Result<Self> {
        let d = features.features.dim(1)?;
        Ok(Self {
            head: Var::zeros((1, d), DType::F32, features.features.device())?,
            features: features.features.clone(),
            options,
        })
    }

    fn rewards(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(self
            .features
            .index_select(rows, 0)?
            .matmul(&self.head.as_tensor().t()?)?
            .squeeze(1)?)
    }

    fn scored_pairs(&self, batch: &ProbeBatch) -> Result<Vec<ScoredPair>> {
        let ProbeBatch::Pairs {
            chosen,
            rejected,
            examples,
            ..
        } = batch
        else {
            return Ok(Vec::new());
        };
        let rc: Vec<f32> = self.rewards(chosen)?.to_vec1()?;
        let rr: Vec<f32> = self.rewards(rejected)?.to_vec1()?;
        Ok(examples
            .iter()
            .zip(rc.iter().zip(&rr))
            .map(|(e, (&c, &r))| ScoredPair {
                chosen: c as f64,
                rejected: r as f64,
                gold_chosen: e.gold_chosen,
                gold_rejected: e.gold_rejected,
                chosen_key: e.chosen_key.clone(),
                rejected_key: e.rejected_key.clone(),
            })
            .collect())
    }
}

impl Objective for ProbeObjective {
    type Batch = ProbeBatch;

    fn loss(&self, batch: &ProbeBatch) -> Result<LossOutput> {
        match batch {
            ProbeBatch::Pairs {
                chosen,
                rejected,
                weight,
                margin,
                examples,
            } => {
                let (rc, rr) = (self.rewards(chosen)?, self.rewards(rejected)?);
                Ok(LossOutput {
                    loss: pairwise_loss(&rc, &rr, margin.as_ref(), Some(weight), self.options)?,
                    metrics: Metrics::from([("accuracy".into(), pairwise_accuracy(&rc, &rr)?)]),
                    tokens: 0.0,
                    weight: examples.len() as f64,
                })
            }
            ProbeBatch::Targets { rows, targets } => Ok(LossOutput {
                loss: regression_loss(&self.rewards(rows)?, targets)?,
                metrics: Metrics::new(),
                tokens: 0.0,
                weight: rows.dims1()? as f64,
            }),
        }
    }

    fn evaluate(&self, batches: &[ProbeBatch]) -> Result<Metrics> {
        let mut pairs = Vec::new();
        for b in batches {
            pairs.extend(self.scored_pairs(b)?);
        }
        Ok(pair_metrics(&pairs)?.to_metrics())
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        vec![("score.weight".into(), self.head.clone())]
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let t = HashMap::from([("score.weight".to_string(), self.head.as_tensor().clone())]);
        crate::io::save_safetensors_atomic(&t, &dir.join("head.safetensors"))
    }
}

/// Train a linear head with `config`'s objective on the `train` comparisons
/// for `steps` updates of `config.batch_size`, and return its metrics on the
/// `test` comparisons.
pub fn train_probe(
    rm: &RewardModel,
    data: &PreferenceData,
    features: &AnswerFeatures,
    train: &[Comparison],
    test: &[Comparison],
    config: RewardDataConfig,
    steps: usize,
) -> Result<PairMetrics> {
    let options = PairwiseOptions {
        centering: config.centering,
    };
    let source = ProbeData::new(
        RewardData::new(rm, data, train, test, config)?,
        features.clone(),
    )?;
    let train_config = TrainConfig {
        steps,
        learning_rate: 0.05,
        warmup_steps: 0,
        weight_decay: 0.0,
        eval_every: steps.max(1),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(ProbeObjective::new(features, options)?, train_config)?;
    trainer.train(&source, &RunOptions::default())?;
    let eval = source.eval_batches(features.features.device())?;
    let mut pairs = Vec::new();
    for b in &eval {
        pairs.extend(trainer.objective.scored_pairs(b)?);
    }
    pair_metrics(&pairs)
}

/// One cell of [`compare_objectives`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveResult {
    pub objective: super::reward_training::RewardObjectiveKind,
    /// The name of the crowd that labelled the training comparisons.
    pub crowd: String,
    /// Metrics on the committed test comparisons.
    pub test: PairMetrics,
}

/// For each crowd, the same answer pairs labelled by it
/// ([`PreferenceData::judged_by`]); for each objective, a linear head trained
/// on those labels for `steps` updates of `batch_size`; each measured on the
/// committed test comparisons. Features come from `rm`'s trunk, computed once.
pub fn compare_objectives(
    rm: &RewardModel,
    data: &PreferenceData,
    crowds: &[(String, super::preferences::CrowdConfig)],
    objectives: &[super::reward_training::RewardObjectiveKind],
    steps: usize,
    batch_size: usize,
) -> Result<Vec<ObjectiveResult>> {
    let features = AnswerFeatures::new(rm, data)?;
    let config = super::preferences::PreferenceConfig::default();
    let mut out = Vec::new();
    for (name, crowd) in crowds {
        let labels = data.judged_by(&crowd.annotators(), config.pairs_per_prompt, config.seed);
        for &objective in objectives {
            let data_config = RewardDataConfig {
                objective,
                batch_size,
                ..RewardDataConfig::default()
            };
            out.push(ObjectiveResult {
                objective,
                crowd: name.clone(),
                test: train_probe(
                    rm,
                    data,
                    &features,
                    &labels.train,
                    &data.comparisons.test,
                    data_config,
                    steps,
                )?,
            });
        }
    }
    Ok(out)
}
