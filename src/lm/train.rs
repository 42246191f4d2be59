//! The one training loop of the language-model rungs. Pre-training (rung 3),
//! supervised fine-tuning (rung 4), the reward model (rung 6) and DPO (rung 8)
//! differ only in their [`Objective`] — a loss over a batch that also reports
//! its named diagnostics, the shape of Spinning Up's `compute_loss` returning
//! `(loss, info)` — and in the [`BatchSource`] that feeds it.
//!
//! ```text
//! for step in start..steps:
//!     η = schedule(step)                    linear warmup, then cosine to η · min_lr_ratio
//!     (L, info) = objective.loss(batch(step))
//!     optimize(L)                           stop on NaN/Inf, backward, clip ‖∇L‖,
//!                                           AdamW (decay on matrices only)
//!     every eval_every: objective.evaluate(held-out batches); samples; checkpoint
//! ```
//!
//! Checkpoints are folders (the objective's model, `trainer_state.json`,
//! `optimizer.safetensors`), replaced atomically, so training resumes exactly.

use super::pretrained::LanguageModel;
use super::sample::SamplingConfig;
pub use crate::metrics::Metrics;
use crate::optim::{ensure_finite, optimize, AdamConfig, AdamW, ParamGroup};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The loss of one batch and what the objective measured on it.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// The scalar to minimise.
    pub loss: Tensor,
    /// Named diagnostics of this batch (e.g. `accuracy`, `margin`), logged as `train/NAME`.
    pub metrics: Metrics,
    /// Tokens the batch ran through the model (for tokens/s).
    pub tokens: f64,
    /// How much this batch counts in an average over batches (counted targets,
    /// pairs); 0 leaves it out.
    pub weight: f64,
}

/// What a trainer optimises: a loss over a batch with its diagnostics, the
/// variables it trains, and how the trained model is saved.
pub trait Objective {
    type Batch;
    /// The loss on `batch` and its named diagnostics.
    fn loss(&self, batch: &Self::Batch) -> Result<LossOutput>;
    /// Held-out metrics over fixed batches. The default is the mean of the loss
    /// and of every diagnostic, weighted by [`LossOutput::weight`]; `loss` is
    /// always among them.
    fn evaluate(&self, batches: &[Self::Batch]) -> Result<Metrics> {
        mean_over_batches(self, batches)
    }
    /// The trained variables, with names (sorted, for stable checkpoints).
    fn parameters(&self) -> Vec<(String, Var)>;
    /// Write the trained model to `dir` (in Hugging Face format).
    fn save(&self, dir: &Path) -> Result<()>;
    /// A language model to show samples from during training, if the
    /// objective trains one.
    fn sampler(&self) -> Option<&LanguageModel> {
        None
    }
    /// Training mode (dropout on, masks seeded by `step_seed`) around each
    /// update's loss, eval mode otherwise. The default has nothing to switch.
    fn set_training(&self, _training: bool, _step_seed: u64) {}
}

/// The mean of the loss and of every diagnostic over `batches`, weighted by
/// [`LossOutput::weight`] (the default [`Objective::evaluate`]).
pub fn mean_over_batches<O: Objective + ?Sized>(
    objective: &O,
    batches: &[O::Batch],
) -> Result<Metrics> {
    let mut sums = Metrics::new();
    let mut total = 0.0;
    for b in batches {
        let out = objective.loss(b)?;
        if out.weight == 0.0 {
            continue;
        }
        let l = out
            .loss
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        *sums.entry("loss".into()).or_default() += l * out.weight;
        for (k, v) in out.metrics {
            *sums.entry(k).or_default() += v * out.weight;
        }
        total += out.weight;
    }
    if total == 0.0 {
        bail!("no evaluation examples");
    }
    Ok(sums.into_iter().map(|(k, v)| (k, v / total)).collect())
}

/// Where training batches come from.
pub trait BatchSource {
    type Batch;
    /// The training batch of update `step` (a function of the step, so a
    /// resumed run sees the same batches).
    fn train_batch(&self, step: usize, device: &Device) -> Result<Self::Batch>;
    /// Fixed held-out batches for evaluation.
    fn eval_batches(&self, device: &Device) -> Result<Vec<Self::Batch>>;
}

/// The example indices of training batch `step` when every epoch is a fresh
/// shuffle of `n` examples (every example once per epoch, the last batch of
/// an epoch possibly short): a function of the step, so a resumed run sees the
/// same batches. The epoch's shuffle is seeded with
/// [`seed_for`]`(seed, stream, epoch)`, `stream` the dataset kind's.
pub fn epoch_batch(
    n: usize,
    batch_size: usize,
    step: usize,
    seed: u64,
    stream: crate::seeds::Stream,
) -> Vec<usize> {
    let per_epoch = n.div_ceil(batch_size.max(1)).max(1);
    let (epoch, k) = (step / per_epoch, step % per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    gridworld::Rng::new(crate::seeds::seed_for(seed, stream, epoch as u64)).shuffle(&mut order);
    order[(k * batch_size).min(n)..((k + 1) * batch_size).min(n)].to_vec()
}

/// Hyper-parameters of [`Trainer`]. Errors from [`Self::validate`] name the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Total number of optimiser updates.
    pub steps: usize,
    /// Peak learning rate η (`lr` in files of earlier versions).
    #[serde(alias = "lr")]
    pub learning_rate: f64,
    /// The cosine schedule ends at `learning_rate · min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Updates of linear warmup from 0 to `learning_rate`.
    pub warmup_steps: usize,
    /// Decoupled weight decay on weight matrices and embeddings.
    pub weight_decay: f64,
    /// AdamW's decay rate of the first moment.
    pub beta1: f64,
    /// AdamW's decay rate of the second moment.
    pub beta2: f64,
    /// Clip the global gradient norm to this (0 turns clipping off).
    pub grad_clip: f64,
    /// Evaluate (and sample, and checkpoint) every this many updates.
    pub eval_every: usize,
    /// Seeds each update's dropout masks; a resumed run must use the same
    /// seed ([`Trainer::check_resume_seed`]).
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            learning_rate: 3e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 30,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            eval_every: 100,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Check every field; the error names the field, the rule and the value.
    pub fn validate(&self) -> Result<()> {
        let checks = [
            (
                "learning_rate",
                self.learning_rate,
                "a positive number",
                self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            ),
            (
                "min_lr_ratio",
                self.min_lr_ratio,
                "in [0, 1]",
                (0.0..=1.0).contains(&self.min_lr_ratio),
            ),
            (
                "weight_decay",
                self.weight_decay,
                "zero or positive",
                self.weight_decay >= 0.0,
            ),
            (
                "beta1",
                self.beta1,
                "in [0, 1)",
                (0.0..1.0).contains(&self.beta1),
            ),
            (
                "beta2",
                self.beta2,
                "in [0, 1)",
                (0.0..1.0).contains(&self.beta2),
            ),
            (
                "grad_clip",
                self.grad_clip,
                "zero (no clipping) or positive",
                self.grad_clip >= 0.0,
            ),
            (
                "eval_every",
                self.eval_every as f64,
                "at least 1",
                self.eval_every > 0,
            ),
        ];
        for (name, value, rule, ok) in checks {
            if !ok {
                bail!("training config field `{name}` must be {rule}, got {value}");
            }
        }
        Ok(())
    }

    /// Learning rate of update `step` (0-based): linear warmup over
    /// `warmup_steps`, then cosine decay (Loshchilov & Hutter 2017) to
    /// `learning_rate · min_lr_ratio` at `steps`.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.learning_rate * self.min_lr_ratio;
        min + 0.5 * (self.learning_rate - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// One logged update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    /// Updates done, this one included (0: the evaluation before training).
    pub step: usize,
    /// The learning rate of this update (`lr` in files of earlier versions).
    #[serde(alias = "lr")]
    pub learning_rate: f64,
    /// The objective's loss before the update.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens per second of this update (for next-token objectives, the
    /// counted targets).
    pub tokens_per_sec: f64,
    /// Wall-clock seconds of this update (loss, backward, optimiser step;
    /// evaluations excluded).
    #[serde(default)]
    pub seconds: f64,
    /// The objective's diagnostics of this update ([`LossOutput::metrics`]).
    #[serde(default, skip_serializing_if = "Metrics::is_empty")]
    pub train: Metrics,
    /// Held-out metrics ([`Objective::evaluate`]) at evaluation steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<Metrics>,
}

impl TrainRecord {
    /// The held-out loss, at evaluation steps.
    pub fn eval_loss(&self) -> Option<f64> {
        self.eval_metric("loss")
    }

    /// A held-out metric by name (`perplexity`, `accuracy`, …), at evaluation steps.
    pub fn eval_metric(&self, name: &str) -> Option<f64> {
        self.eval.as_ref().and_then(|m| m.get(name).copied())
    }
}

/// A sample written during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub step: usize,
    pub prompt: String,
    pub completion: String,
}

/// What to do besides updating: where to checkpoint, what to sample.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write a checkpoint here at every evaluation (atomically; see [`Trainer::save_checkpoint`]).
    pub checkpoint_dir: Option<PathBuf>,
    /// Prompts to continue at every evaluation (objectives with a [`Objective::sampler`]).
    pub sample_prompts: Vec<String>,
    /// How to sample them; `None` samples nothing.
    pub sampling: Option<SamplingConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainConfig,
    step: usize,
    history: Vec<TrainRecord>,
    samples: Vec<SampleRecord>,
}

/// Trains an [`Objective`] with AdamW on batches from a [`BatchSource`].
/// The objective's variables are shared with the model it was built from, so
/// training through the trainer trains that model.
pub struct Trainer<O: Objective> {
    pub objective: O,
    pub config: TrainConfig,
    /// Updates done so far.
    pub step: usize,
    pub history: Vec<TrainRecord>,
    pub samples: Vec<SampleRecord>,
    /// The last checkpoint folder this trainer wrote or was resumed from
    /// (`None` before the first): the one a NaN stop names.
    pub last_checkpoint: Option<PathBuf>,
    optimizer: AdamW,
    last_phases: StepPhases,
}

/// Where the wall-clock time of one update went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepPhases {
    /// The objective's forward pass to the loss.
    pub forward_seconds: f64,
    /// The backward pass.
    pub backward_seconds: f64,
    /// Gradient norm, clipping and the AdamW step.
    pub optimizer_seconds: f64,
}

/// The trainer of pre-training and SFT.
pub type LmTrainer = Trainer<super::data::NextTokenLoss>;

impl<O: Objective> Trainer<O> {
    /// A trainer for the objective's variables. Matrices and embeddings get
    /// weight decay; vectors (RMSNorm gains) do not, as in nanoGPT.
    pub fn new(objective: O, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        crate::allocator::keep_freed_memory();
        let adam = AdamConfig {
            learning_rate: config.learning_rate,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: 1e-8,
            weight_decay: config.weight_decay,
        };
        let groups = ParamGroup::decay_matrices_only(objective.parameters(), config.weight_decay);
        Ok(Self {
            optimizer: AdamW::with_groups(groups, adam)?,
            objective,
            config,
            step: 0,
            history: Vec::new(),
            samples: Vec::new(),
            last_checkpoint: None,
            last_phases: StepPhases::default(),
        })
    }

    /// Where the time of the last [`Self::train_step`] went (zeros before the
    /// first).
    pub fn last_step_phases(&self) -> StepPhases {
        self.last_phases
    }

    /// Change the peak learning rate of a resumed run: the schedule keeps its
    /// shape (warmup, cosine to `learning_rate · min_lr_ratio`), scaled to the new peak,
    /// from the current update on. Returns the note a command prints on
    /// stderr when it differs from the checkpoint's, `None` when it is the same.
    pub fn change_learning_rate(&mut self, learning_rate: f64) -> Result<Option<String>> {
        let (lr, old) = (learning_rate, self.config.learning_rate);
        if lr == old {
            return Ok(None);
        }
        let config = TrainConfig {
            learning_rate: lr,
            ..self.config.clone()
        };
        config.validate()?;
        self.config = config;
        Ok(Some(format!(
            "note: --lr {lr} replaces the checkpoint's peak learning rate {old} from update {} on (the schedule keeps its shape)",
            self.step + 1
        )))
    }

    /// Check the seed a command builds its batches with against the
    /// checkpoint's: a resumed run must see the batches the interrupted run
    /// would have seen, so a different `--seed` is an error naming the flag.
    pub fn check_resume_seed(&self, seed: u64) -> Result<()> {
        if seed != self.config.seed {
            bail!(
                "--seed {seed} differs from the checkpoint's seed {}: a resumed run must draw the same batches; pass --seed {} (or start a new run)",
                self.config.seed,
                self.config.seed
            );
        }
        Ok(())
    }

    /// Raise the total number of updates of a resumed run to `steps`; fewer
    /// than the checkpoint has done is an error naming `--steps`.
    pub fn set_total_steps(&mut self, steps: usize) -> Result<()> {
        if steps < self.step {
            bail!(
                "--steps {steps} is below the {} updates the checkpoint has done; give the total number of updates",
                self.step
            );
        }
        self.config.steps = steps;
        Ok(())
    }

    /// The line a command prints on resuming: the update and the folder it
    /// resumed from, saying so when that is `DIR.old` (the complete folder a
    /// crash between a checkpoint's two renames leaves when `DIR` is torn).
    pub fn resume_note(&self, requested: &Path) -> String {
        let from = self.last_checkpoint.as_deref().unwrap_or(requested);
        let mut note = format!(
            "resumed at update {} of {} from {}",
            self.step,
            self.config.steps,
            from.display()
        );
        if from != requested {
            note.push_str(&format!(
                " ({} is missing or incomplete, left by an interrupted checkpoint write)",
                requested.display()
            ));
        }
        note
    }

    /// Add to a training stop (NaN/Inf) the checkpoint to go back to: the last
    /// one this trainer wrote or resumed from, or that none was written.
    fn with_checkpoint_hint(&self, e: anyhow::Error, options: &RunOptions) -> anyhow::Error {
        match (&self.last_checkpoint, &options.checkpoint_dir) {
            (Some(d), _) => e.context(format!("the last good checkpoint is {}", d.display())),
            (None, Some(_)) => e.context("no checkpoint was written before this update"),
            (None, None) => e,
        }
    }

    /// The held-out metrics at update `self.step`; a NaN/Inf loss stops
    /// training like a NaN/Inf training loss.
    fn evaluate_checked(&self, eval: &[O::Batch], options: &RunOptions) -> Result<Metrics> {
        let metrics = self.evaluate(eval)?;
        let l = metrics.get("loss").copied().unwrap_or(f64::NAN);
        ensure_finite("evaluation loss", l, self.step)
            .map_err(|e| self.with_checkpoint_hint(e, options))?;
        Ok(metrics)
    }

    /// One update on `batch`; returns its record (without evaluation).
    pub fn train_step(&mut self, batch: &O::Batch) -> Result<TrainRecord> {
        let start = Instant::now();
        let learning_rate = self.config.learning_rate_at(self.step);
        self.optimizer.set_learning_rate(learning_rate);
        // Dropout's masks: a function of the seed and the update, so a resumed
        // run draws the same ones.
        let step_seed = crate::seeds::seed_for(
            self.config.seed,
            crate::seeds::Stream::TrainStep,
            self.step as u64,
        );
        self.objective.set_training(true, step_seed);
        let out = self.objective.loss(batch);
        self.objective.set_training(false, step_seed);
        let out = out?;
        let forward_seconds = start.elapsed().as_secs_f64();
        let update = optimize(&out.loss, &mut self.optimizer, self.config.grad_clip)?;
        self.last_phases = StepPhases {
            forward_seconds,
            backward_seconds: update.backward_seconds,
            optimizer_seconds: update.step_seconds,
        };
        self.step += 1;
        Ok(TrainRecord {
            step: self.step,
            learning_rate,
            loss: update.loss,
            grad_norm: update.grad_norm,
            tokens_per_sec: out.tokens / start.elapsed().as_secs_f64().max(1e-9),
            seconds: start.elapsed().as_secs_f64(),
            train: out.metrics,
            eval: None,
        })
    }

    /// The objective's held-out metrics on `batches`.
    pub fn evaluate(&self, batches: &[O::Batch]) -> Result<Metrics> {
        self.objective.evaluate(batches)
    }

    /// Train until `config.steps`, evaluating, sampling and checkpointing every
    /// `eval_every` updates (and at the end). On NaN/Inf the run stops with an
    /// error naming the update; the last checkpoint on disk is the last good one.
    pub fn train(
        &mut self,
        data: &dyn BatchSource<Batch = O::Batch>,
        options: &RunOptions,
    ) -> Result<()> {
        self.train_until(data, options, self.config.steps)
    }

    /// [`Self::train`], calling `on_record` with every record and the samples
    /// of evaluation steps (for a progress bar).
    pub fn train_with(
        &mut self,
        data: &dyn BatchSource<Batch = O::Batch>,
        options: &RunOptions,
        on_record: impl FnMut(&TrainRecord, &[SampleRecord]),
    ) -> Result<()> {
        self.train_until_with(data, options, self.config.steps, on_record)
    }

    /// [`Self::train`], but stop after update `until` (≤ `config.steps`);
    /// the schedule still spans `config.steps`. Calling it again continues.
    pub fn train_until(
        &mut self,
        data: &dyn BatchSource<Batch = O::Batch>,
        options: &RunOptions,
        until: usize,
    ) -> Result<()> {
        self.train_until_with(data, options, until, |_, _| {})
    }

    /// [`Self::train_until`], calling `on_record` as [`Self::train_with`] does.
    pub fn train_until_with(
        &mut self,
        data: &dyn BatchSource<Batch = O::Batch>,
        options: &RunOptions,
        until: usize,
        mut on_record: impl FnMut(&TrainRecord, &[SampleRecord]),
    ) -> Result<()> {
        let until = until.min(self.config.steps);
        let device = match self.objective.parameters().first() {
            Some((_, v)) => v.device().clone(),
            None => bail!("the objective has no variables to train"),
        };
        let eval = data.eval_batches(&device)?;
        if self.step == 0 && self.history.is_empty() {
            let metrics = self.evaluate_checked(&eval, options)?;
            let l = metrics["loss"];
            let rec = TrainRecord {
                step: 0,
                learning_rate: 0.0,
                loss: l,
                grad_norm: 0.0,
                tokens_per_sec: 0.0,
                seconds: 0.0,
                train: Metrics::new(),
                eval: Some(metrics),
            };
            let samples = self.sample(options)?;
            self.history.push(rec.clone());
            on_record(&rec, &samples);
        }
        while self.step < until {
            let batch = data.train_batch(self.step, &device)?;
            let mut rec = self
                .train_step(&batch)
                .map_err(|e| self.with_checkpoint_hint(e, options))?;
            let mut samples = Vec::new();
            if self.step % self.config.eval_every == 0 || self.step == self.config.steps {
                let metrics = self.evaluate_checked(&eval, options)?;
                rec.eval = Some(metrics);
                samples = self.sample(options)?;
                self.history.push(rec.clone());
                if let Some(dir) = &options.checkpoint_dir {
                    self.save_checkpoint(dir)?;
                    self.last_checkpoint = Some(dir.clone());
                }
            } else {
                self.history.push(rec.clone());
            }
            on_record(&rec, &samples);
        }
        Ok(())
    }

    fn sample(&mut self, options: &RunOptions) -> Result<Vec<SampleRecord>> {
        let (Some(cfg), Some(lm)) = (&options.sampling, self.objective.sampler()) else {
            return Ok(Vec::new());
        };
        if options.sample_prompts.is_empty() {
            return Ok(Vec::new());
        }
        let prompts: Vec<&str> = options.sample_prompts.iter().map(String::as_str).collect();
        let out: Vec<SampleRecord> = lm
            .generate_batch(&prompts, cfg)?
            .into_iter()
            .map(|g| SampleRecord {
                step: self.step,
                prompt: g.prompt,
                completion: g.completion,
            })
            .collect();
        self.samples.extend(out.iter().cloned());
        Ok(out)
    }

    /// Write the model, the optimiser state and the history to `dir`,
    /// atomically: the new checkpoint is written beside it and swapped in by
    /// renames, so `dir` always holds a complete checkpoint (after a crash
    /// between the two renames, `DIR.old` holds it and [`crate::io::checkpoint_to_resume`]
    /// finds it).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        use crate::io::checkpoint::OPTIMIZER;
        crate::io::write_dir_atomic(dir, |tmp| {
            self.objective.save(tmp)?;
            self.optimizer.save_state(&tmp.join(OPTIMIZER))?;
            let state = TrainerState {
                config: self.config.clone(),
                step: self.step,
                history: self.history.clone(),
                samples: self.samples.clone(),
            };
            crate::io::write_trainer_state(tmp, &state)
        })
    }

    /// Continue from the checkpoint folder `dir` (see [`crate::io::checkpoint_to_resume`]):
    /// `objective` must be built from the model saved there; this restores the
    /// optimiser's moments, the step, the history and the config, so training
    /// goes on exactly where it stopped. `steps` can be raised through
    /// `config`'s field afterwards.
    pub fn resume(objective: O, dir: &Path) -> Result<Self> {
        let state: TrainerState = crate::io::read_trainer_state(dir, "a trainer state")?;
        let mut trainer = Self::new(objective, state.config)?;
        trainer
            .optimizer
            .load_state_file(&dir.join(crate::io::checkpoint::OPTIMIZER))?;
        trainer.step = state.step;
        trainer.history = state.history;
        trainer.samples = state.samples;
        trainer.last_checkpoint = Some(dir.to_path_buf());
        Ok(trainer)
    }

    /// The history as CSV: `step, learning_rate, loss, grad_norm, tokens_per_sec`, then
    /// `eval/NAME` and `train/NAME` for the objective's metrics.
    pub fn history_csv(&self) -> String {
        crate::metrics::to_csv(&self.history).expect("training records serialise")
    }

    /// Write `metrics.csv` and `metrics.jsonl` of the history into `dir`.
    pub fn write_metrics(&self, dir: &Path) -> Result<()> {
        crate::metrics::write_metrics(dir, &self.history)
    }
}

/// A pre-training or SFT run read back from its checkpoint folder.
pub struct ResumedRun {
    /// The language model saved in the checkpoint.
    pub model: LanguageModel,
    /// Its trainer, at the saved step with the saved optimiser moments.
    pub trainer: LmTrainer,
}

/// Resume pre-training or SFT from a checkpoint folder: the language model
/// saved there and its trainer.
pub fn resume_language_model(dir: &Path, device: &Device) -> Result<ResumedRun> {
    resume_language_model_as(dir, device, candle_core::DType::F32)
}

/// [`resume_language_model`] with the weights in `dtype` (SFT's `--bf16`).
/// The trainer's [`Trainer::last_checkpoint`] is the folder actually read
/// (`DIR.old` when `dir` is torn; see [`Trainer::resume_note`]).
pub fn resume_language_model_as(
    dir: &Path,
    device: &Device,
    dtype: candle_core::DType,
) -> Result<ResumedRun> {
    let dir = crate::io::checkpoint_to_resume(dir)?;
    let model = LanguageModel::load(&dir, device, dtype)?;
    let trainer = Trainer::resume(super::data::NextTokenLoss::new(&model), &dir)?;
    Ok(ResumedRun { model, trainer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = TrainConfig {
            steps: 110,
            learning_rate: 1.0,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((c.learning_rate_at(0) - 0.1).abs() < 1e-12);
        assert!((c.learning_rate_at(9) - 1.0).abs() < 1e-12);
        assert!((c.learning_rate_at(10) - 1.0).abs() < 1e-12);
        assert!((c.learning_rate_at(60) - 0.55).abs() < 1e-12); // halfway: (1 + 0.1) / 2
        assert!((c.learning_rate_at(110) - 0.1).abs() < 1e-12);
        assert!(TrainConfig {
            learning_rate: -1.0,
            ..c
        }
        .validate()
        .unwrap_err()
        .to_string()
        .contains("`learning_rate`"));
    }
}
