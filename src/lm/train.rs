//! The one training loop of the language-model rungs: pre-training (rung 3) and
//! supervised fine-tuning (rung 4) differ only in their [`BatchSource`].
//!
//! ```text
//! for step in start..steps:
//!     lr = schedule(step)                 linear warmup, then cosine to min_lr
//!     L = next_token_loss(model, batch)   masked cross-entropy
//!     stop if L or ‖∇L‖ is NaN/Inf        (the last checkpoint stays as it was)
//!     g = ∇L · min(1, clip / ‖∇L‖)        global-norm clipping
//!     AdamW(g)                            decay on matrices, not on norm gains
//!     every eval_every: held-out loss and perplexity; samples; checkpoint
//! ```
//!
//! Checkpoints are folders in Hugging Face format plus `trainer_state.json` and
//! `optimizer.safetensors`, replaced atomically, so training resumes exactly.

use super::data::{next_token_loss, BatchSource, LmBatch};
use super::pretrained::LanguageModel;
use super::sample::SamplingConfig;
use crate::optim::{clip_scale, ensure_finite, grad_norm, Adam, AdamConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Hyper-parameters of [`LmTrainer`]. Errors from [`Self::validate`] name the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Total number of optimiser updates.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// The cosine schedule ends at `lr · min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup_steps: usize,
    /// Decoupled weight decay on weight matrices and embeddings.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Clip the global gradient norm to this (0 turns clipping off).
    pub grad_clip: f64,
    /// Evaluate (and sample, and checkpoint) every this many updates.
    pub eval_every: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            lr: 3e-3,
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
    pub fn validate(&self) -> Result<()> {
        let checks = [
            ("lr", self.lr > 0.0 && self.lr.is_finite()),
            ("min_lr_ratio", (0.0..=1.0).contains(&self.min_lr_ratio)),
            ("weight_decay", self.weight_decay >= 0.0),
            ("beta1", (0.0..1.0).contains(&self.beta1)),
            ("beta2", (0.0..1.0).contains(&self.beta2)),
            ("grad_clip", self.grad_clip >= 0.0),
            ("eval_every", self.eval_every > 0),
        ];
        for (name, ok) in checks {
            if !ok {
                bail!("training config field `{name}` is out of range");
            }
        }
        Ok(())
    }

    /// Learning rate of update `step` (0-based): linear warmup over
    /// `warmup_steps`, then cosine decay (Loshchilov & Hutter 2017) to
    /// `lr · min_lr_ratio` at `steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// One logged update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    /// Training tokens (counted targets) per second of this update.
    pub tokens_per_sec: f64,
    /// Held-out loss and its perplexity e^loss, at evaluation steps.
    pub eval_loss: Option<f64>,
    pub perplexity: Option<f64>,
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
    pub checkpoint_dir: Option<PathBuf>,
    pub sample_prompts: Vec<String>,
    pub sampling: Option<SamplingConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainConfig,
    step: usize,
    history: Vec<TrainRecord>,
    samples: Vec<SampleRecord>,
}

/// AdamW training of a [`LanguageModel`] on batches from a [`BatchSource`].
pub struct LmTrainer {
    pub config: TrainConfig,
    /// Updates done so far.
    pub step: usize,
    pub history: Vec<TrainRecord>,
    pub samples: Vec<SampleRecord>,
    decayed: Adam,
    not_decayed: Adam,
}

impl LmTrainer {
    /// A trainer for the weights of `lm`. Matrices and embeddings get weight
    /// decay; RMSNorm gains (vectors) do not, as in nanoGPT.
    pub fn new(lm: &LanguageModel, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let (matrices, vectors): (Vec<_>, Vec<_>) =
            lm.vars().into_iter().partition(|(_, v)| v.rank() >= 2);
        let adam = |wd| AdamConfig {
            lr: config.lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: 1e-8,
            weight_decay: wd,
        };
        Ok(Self {
            decayed: Adam::new(matrices, adam(config.weight_decay))?,
            not_decayed: Adam::new(vectors, adam(0.0))?,
            config,
            step: 0,
            history: Vec::new(),
            samples: Vec::new(),
        })
    }

    /// One update on `batch`; returns its record (without evaluation).
    pub fn train_step(&mut self, lm: &LanguageModel, batch: &LmBatch) -> Result<TrainRecord> {
        let start = Instant::now();
        let lr = self.config.lr_at(self.step);
        let loss_t = next_token_loss(&lm.model, batch)?;
        let loss = loss_t.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        ensure_finite("training loss", loss, self.step + 1)?;
        let grads = loss_t.backward()?;
        let mut all = self.decayed.vars().to_vec();
        all.extend_from_slice(self.not_decayed.vars());
        let norm = grad_norm(&grads, &all)?;
        ensure_finite("gradient norm", norm, self.step + 1)?;
        let scale = if self.config.grad_clip > 0.0 {
            clip_scale(norm, self.config.grad_clip)
        } else {
            1.0
        };
        for opt in [&mut self.decayed, &mut self.not_decayed] {
            opt.set_lr(lr);
            opt.step(&grads, scale)?;
        }
        self.step += 1;
        let tokens = batch.counted_tokens()?;
        Ok(TrainRecord {
            step: self.step,
            lr,
            loss,
            grad_norm: norm,
            tokens_per_sec: tokens / start.elapsed().as_secs_f64().max(1e-9),
            eval_loss: None,
            perplexity: None,
        })
    }

    /// Mean loss over `batches`, weighted by counted tokens.
    pub fn evaluate(lm: &LanguageModel, batches: &[LmBatch]) -> Result<f64> {
        let (mut total, mut count) = (0.0, 0.0);
        for b in batches {
            let n = b.counted_tokens()?;
            if n == 0.0 {
                continue;
            }
            let l = next_token_loss(&lm.model, b)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            total += l * n;
            count += n;
        }
        if count == 0.0 {
            bail!("no evaluation tokens");
        }
        Ok(total / count)
    }

    /// Train until `config.steps`, evaluating, sampling and checkpointing every
    /// `eval_every` updates (and at the end). `on_record` sees every record and
    /// the samples of evaluation steps. On NaN/Inf the run stops with an error
    /// naming the step; the last checkpoint on disk is the last good one.
    pub fn train(
        &mut self,
        lm: &LanguageModel,
        data: &dyn BatchSource,
        options: &RunOptions,
        on_record: &mut dyn FnMut(&TrainRecord, &[SampleRecord]),
    ) -> Result<()> {
        self.train_until(lm, data, options, self.config.steps, on_record)
    }

    /// [`Self::train`], but stop after update `until` (≤ `config.steps`); the
    /// schedule still spans `config.steps`. Calling it again continues.
    pub fn train_until(
        &mut self,
        lm: &LanguageModel,
        data: &dyn BatchSource,
        options: &RunOptions,
        until: usize,
        on_record: &mut dyn FnMut(&TrainRecord, &[SampleRecord]),
    ) -> Result<()> {
        let until = until.min(self.config.steps);
        let device = lm.device().clone();
        let eval = data.eval_batches(&device)?;
        if self.step == 0 && self.history.is_empty() {
            let l = Self::evaluate(lm, &eval)?;
            let rec = TrainRecord {
                step: 0,
                lr: 0.0,
                loss: l,
                grad_norm: 0.0,
                tokens_per_sec: 0.0,
                eval_loss: Some(l),
                perplexity: Some(l.exp()),
            };
            let samples = self.sample(lm, options)?;
            self.history.push(rec.clone());
            on_record(&rec, &samples);
        }
        while self.step < until {
            let batch = data.train_batch(self.step, &device)?;
            let mut rec =
                self.train_step(lm, &batch)
                    .map_err(|e| match &options.checkpoint_dir {
                        Some(d) => {
                            e.context(format!("the last good checkpoint is {}", d.display()))
                        }
                        None => e,
                    })?;
            let mut samples = Vec::new();
            if self.step % self.config.eval_every == 0 || self.step == self.config.steps {
                let l = Self::evaluate(lm, &eval)?;
                ensure_finite("evaluation loss", l, self.step)?;
                rec.eval_loss = Some(l);
                rec.perplexity = Some(l.exp());
                samples = self.sample(lm, options)?;
                self.history.push(rec.clone());
                if let Some(dir) = &options.checkpoint_dir {
                    self.save_checkpoint(lm, dir)?;
                }
            } else {
                self.history.push(rec.clone());
            }
            on_record(&rec, &samples);
        }
        Ok(())
    }

    fn sample(&mut self, lm: &LanguageModel, options: &RunOptions) -> Result<Vec<SampleRecord>> {
        let Some(cfg) = &options.sampling else {
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

    /// Write model, optimiser state and history to `dir`, atomically: the new
    /// checkpoint is written beside it and swapped in by renames, so `dir`
    /// always holds a complete checkpoint (after a crash between the two
    /// renames, `DIR.old` holds it and [`Self::resume`] finds it).
    pub fn save_checkpoint(&self, lm: &LanguageModel, dir: &Path) -> Result<()> {
        let tmp = sibling(dir, "tmp");
        let old = sibling(dir, "old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        lm.save(&tmp)?;
        let mut opt = self.decayed.state()?;
        for (k, v) in self.not_decayed.state()? {
            let key = if k == "step" {
                "step_no_decay".to_string()
            } else {
                k
            };
            opt.insert(key, v);
        }
        crate::io::save_safetensors_atomic(&opt, &tmp.join("optimizer.safetensors"))?;
        let state = TrainerState {
            config: self.config.clone(),
            step: self.step,
            history: self.history.clone(),
            samples: self.samples.clone(),
        };
        crate::io::write_atomic(
            &tmp.join("trainer_state.json"),
            serde_json::to_string_pretty(&state)?.as_bytes(),
        )?;
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(dir, &old)
                .with_context(|| format!("moving {} aside", dir.display()))?;
        }
        std::fs::rename(&tmp, dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }

    /// Load a checkpoint written by [`Self::save_checkpoint`]: the model and a
    /// trainer that continues exactly where it stopped. `steps` can be raised
    /// through `config`'s field afterwards.
    pub fn resume(dir: &Path, device: &Device) -> Result<(LanguageModel, Self)> {
        let dir = if dir.join("trainer_state.json").exists() {
            dir.to_path_buf()
        } else if sibling(dir, "old").join("trainer_state.json").exists() {
            sibling(dir, "old")
        } else {
            bail!(
                "{}: not a training checkpoint (no trainer_state.json)",
                dir.display()
            );
        };
        let lm = LanguageModel::load(&dir, device, DType::F32)?;
        let path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let state: TrainerState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a trainer state", path.display()))?;
        let mut trainer = Self::new(&lm, state.config)?;
        let opt_path = dir.join("optimizer.safetensors");
        let opt = candle_core::safetensors::load(&opt_path, device)
            .with_context(|| format!("reading {}", opt_path.display()))?;
        trainer
            .decayed
            .load_state(&opt)
            .with_context(|| opt_path.display().to_string())?;
        let mut rest = opt.clone();
        if let Some(s) = opt.get("step_no_decay") {
            rest.insert("step".into(), s.clone());
        }
        trainer
            .not_decayed
            .load_state(&rest)
            .with_context(|| opt_path.display().to_string())?;
        trainer.step = state.step;
        trainer.history = state.history;
        trainer.samples = state.samples;
        Ok((lm, trainer))
    }

    /// The history as CSV (step, lr, loss, grad_norm, tokens_per_sec, eval_loss, perplexity).
    pub fn history_csv(&self) -> String {
        let mut s = String::from("step,lr,loss,grad_norm,tokens_per_sec,eval_loss,perplexity\n");
        let opt = |x: Option<f64>| x.map(|v| format!("{v:.6}")).unwrap_or_default();
        for r in &self.history {
            s.push_str(&format!(
                "{},{:.6e},{:.6},{:.6},{:.1},{},{}\n",
                r.step,
                r.lr,
                r.loss,
                r.grad_norm,
                r.tokens_per_sec,
                opt(r.eval_loss),
                opt(r.perplexity)
            ));
        }
        s
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = TrainConfig {
            steps: 110,
            lr: 1.0,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(60) - 0.55).abs() < 1e-12); // halfway: (1 + 0.1) / 2
        assert!((c.lr_at(110) - 0.1).abs() < 1e-12);
        assert!(TrainConfig { lr: -1.0, ..c }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`lr`"));
    }
}
