//! How fast the tiny language model trains and generates on this machine.
//!
//! One measurement shared by every place that reports speed, so their numbers
//! are comparable: `cargo bench --bench lm_speed`, `rlhf-lab lm speed`, and a
//! notebook kernel (`scripts/bench_kernel.py` runs [`measure_speed`] inside
//! one and compares it with the release CLI).
//!
//! Training ([`time_training`]): tokens/s = (positions the model runs over
//! `steps` updates, batch × padded length) / seconds, each update a forward,
//! a backward and an AdamW step, after one untimed warm-up update. Three
//! shapes: pre-training (`batch_size × seq_len` windows of the corpus, no
//! padding), SFT ([`measure_sft_training`]: the `rlhf-lab sft` defaults) and,
//! one rung up, the reward model (`rlhf::speed`). Generation: new tokens/s of
//! greedy decoding at batch 1 from a fixed prompt, with and without the KV
//! cache.

use super::pretrain;
use super::sft::SftDataset;
use super::{
    BatchSource, LanguageModel, NextTokenLoss, Objective, SamplingConfig, StepPhases, TrainConfig,
    Trainer,
};
use anyhow::Result;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// What to measure. The defaults are the pre-training shape of rung 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SpeedConfig {
    /// Model size: width 128·scale, 4·scale layers (1 = the CPU-sized tiny model).
    pub scale: usize,
    /// Windows per training batch.
    pub batch_size: usize,
    /// Tokens per window.
    pub seq_len: usize,
    /// Timed training updates (after one untimed warm-up update).
    pub steps: usize,
    /// New tokens generated per generation measurement.
    pub new_tokens: usize,
    /// The prompt generation continues.
    pub prompt: String,
}

impl Default for SpeedConfig {
    fn default() -> Self {
        Self {
            scale: 1,
            batch_size: 16,
            seq_len: 64,
            steps: 20,
            new_tokens: 128,
            prompt: "Mia has a".to_string(),
        }
    }
}

/// Training throughput.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingSpeed {
    /// Positions run through the model per second over the timed updates
    /// (batch × padded length: padding counts, as it costs the same).
    pub tokens_per_second: f64,
    /// Milliseconds per update (forward + backward + AdamW).
    pub ms_per_step: f64,
    /// Milliseconds per update in the forward pass to the loss.
    #[serde(default)]
    pub forward_ms: f64,
    /// Milliseconds per update in the backward pass.
    #[serde(default)]
    pub backward_ms: f64,
    /// Milliseconds per update in the gradient norm, clipping and AdamW.
    #[serde(default)]
    pub optimizer_ms: f64,
    /// Timed updates.
    pub steps: usize,
    /// Sequences per batch, mean over the timed updates.
    #[serde(default)]
    pub sequences: f64,
    /// Padded length of a batch, mean over the timed updates.
    #[serde(default)]
    pub padded_len: f64,
}

impl fmt::Display for TrainingSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} tokens/s ({:.1} ms/step over {} steps: forward {:.1}, backward {:.1}, optimizer {:.1}; batch {:.0} × {:.1} tokens)",
            self.tokens_per_second,
            self.ms_per_step,
            self.steps,
            self.forward_ms,
            self.backward_ms,
            self.optimizer_ms,
            self.sequences,
            self.padded_len
        )
    }
}

/// Generation throughput at batch 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationSpeed {
    /// New tokens per second.
    pub tokens_per_second: f64,
    /// New tokens generated.
    pub new_tokens: usize,
    /// Whether keys and values were cached between steps.
    pub kv_cache: bool,
}

/// One speed measurement of the tiny model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedReport {
    /// The model's parameter count.
    pub parameters: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Hidden width.
    pub width: usize,
    /// Training batch shape, windows × tokens.
    pub batch_size: usize,
    /// Tokens per training window.
    pub seq_len: usize,
    /// Threads candle's CPU kernels use.
    pub threads: usize,
    /// Whether malloc keeps freed blocks for reuse
    /// ([`crate::allocator::keep_freed_memory`]; off under its off switch).
    #[serde(default)]
    pub keep_freed_memory: bool,
    /// Training throughput.
    pub training: TrainingSpeed,
    /// Generation with the KV cache.
    pub generation_cached: GenerationSpeed,
    /// Generation recomputing the whole prefix each step.
    pub generation_uncached: GenerationSpeed,
}

impl SpeedReport {
    /// The report as one line of JSON (what `rlhf-lab lm speed --json` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a speed report always serialises")
    }
}

impl fmt::Display for SpeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model: {} parameters ({} layers, width {}), batch {} × {} tokens, {} threads, freed memory {}",
            self.parameters,
            self.layers,
            self.width,
            self.batch_size,
            self.seq_len,
            self.threads,
            if self.keep_freed_memory {
                "kept for reuse"
            } else {
                "returned (malloc's defaults)"
            }
        )?;
        writeln!(f, "training: {}", self.training)?;
        for g in [&self.generation_cached, &self.generation_uncached] {
            writeln!(
                f,
                "generation, KV cache {}: {:.0} tokens/s ({} tokens, batch 1)",
                if g.kv_cache { "on " } else { "off" },
                g.tokens_per_second,
                g.new_tokens
            )?;
        }
        Ok(())
    }
}

/// Measure training and generation speed of a fresh model of `config.scale`
/// on the committed corpus (`datasets/corpus`).
pub fn measure_speed(config: &SpeedConfig, device: &Device) -> Result<SpeedReport> {
    anyhow::ensure!(
        config.scale >= 1
            && config.batch_size >= 1
            && config.seq_len >= 1
            && config.steps >= 1
            && config.new_tokens >= 1,
        "speed config: scale, batch_size, seq_len, steps and new_tokens must each be at least 1 (got {config:?})"
    );
    let setup = pretrain::setup(
        &pretrain::corpus_dir(),
        config.scale,
        config.batch_size,
        config.seq_len,
        0,
        device,
    )?;
    let lm = setup.model;
    let mut trainer = Trainer::new(NextTokenLoss::new(&lm), TrainConfig::default())?;
    let training = time_training(&mut trainer, &setup.data, config.steps, device, |b| {
        Ok(b.input_ids.dims2()?)
    })?;
    let generation = |kv_cache: bool| -> Result<GenerationSpeed> {
        let sampling = SamplingConfig {
            use_kv_cache: kv_cache,
            stop_tokens: vec![u32::MAX], // never stop early: always `new_tokens`
            ..SamplingConfig::greedy(config.new_tokens)
        };
        let start = Instant::now();
        let generated = lm.generate(&config.prompt, &sampling)?;
        Ok(GenerationSpeed {
            tokens_per_second: generated.new_tokens as f64 / start.elapsed().as_secs_f64(),
            new_tokens: generated.new_tokens,
            kv_cache,
        })
    };
    Ok(SpeedReport {
        parameters: lm.num_parameters(),
        layers: lm.config.num_hidden_layers,
        width: lm.config.hidden_size,
        batch_size: config.batch_size,
        seq_len: config.seq_len,
        threads: candle_core::utils::get_num_threads(),
        keep_freed_memory: crate::allocator::keep_freed_memory(),
        training,
        generation_cached: generation(true)?,
        generation_uncached: generation(false)?,
    })
}

/// Time `steps` updates of `trainer`, one on each of `source`'s training
/// batches `1..=steps`, after one untimed warm-up update on batch 0. `shape`
/// gives a batch's (sequences, padded length); tokens/s counts every position
/// the model runs, padding included: the work a framework handed batches of
/// the same shape does.
pub fn time_training<O, S>(
    trainer: &mut Trainer<O>,
    source: &S,
    steps: usize,
    device: &Device,
    shape: impl Fn(&O::Batch) -> Result<(usize, usize)>,
) -> Result<TrainingSpeed>
where
    O: Objective,
    S: BatchSource<Batch = O::Batch>,
{
    anyhow::ensure!(steps >= 1, "timing training needs at least 1 step");
    trainer.train_step(&source.train_batch(0, device)?)?; // warm-up, untimed
    let (mut positions, mut sequences, mut padded_len) = (0.0, 0.0, 0.0);
    let mut phases = StepPhases::default();
    let start = Instant::now();
    for step in 1..=steps {
        let batch = source.train_batch(step, device)?;
        let (rows, len) = shape(&batch)?;
        positions += (rows * len) as f64;
        sequences += rows as f64;
        padded_len += len as f64;
        trainer.train_step(&batch)?;
        let p = trainer.last_step_phases();
        phases.forward_seconds += p.forward_seconds;
        phases.backward_seconds += p.backward_seconds;
        phases.optimizer_seconds += p.optimizer_seconds;
    }
    let seconds = start.elapsed().as_secs_f64();
    let per_step = |s: f64| 1e3 * s / steps as f64;
    Ok(TrainingSpeed {
        tokens_per_second: positions / seconds,
        ms_per_step: per_step(seconds),
        forward_ms: per_step(phases.forward_seconds),
        backward_ms: per_step(phases.backward_seconds),
        optimizer_ms: per_step(phases.optimizer_seconds),
        steps,
        sequences: sequences / steps as f64,
        padded_len: padded_len / steps as f64,
    })
}

/// Supervised fine-tuning's training speed: the committed tiny pre-trained
/// model on `datasets/sft`'s training conversations with the `rlhf-lab sft`
/// defaults (16 conversations per batch, cut at 256 tokens, right-padded to
/// the batch's longest; the loss on the assistant's tokens).
pub fn measure_sft_training(steps: usize, device: &Device) -> Result<TrainingSpeed> {
    let lm = LanguageModel::load(
        &pretrain::tiny_pretrained_dir(),
        device,
        candle_core::DType::F32,
    )?;
    let splits = super::sft_data::read_splits(&super::sft_data::sft_dir())?;
    let data = SftDataset::new(&lm.tokenizer, &splits.train, &splits.validation, 16, 256, 0)?;
    let mut trainer = Trainer::new(NextTokenLoss::new(&lm), TrainConfig::default())?;
    time_training(&mut trainer, &data, steps, device, |b| {
        Ok(b.input_ids.dims2()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_measurement_counts_every_token_it_times() -> Result<()> {
        let config = SpeedConfig {
            batch_size: 2,
            seq_len: 8,
            steps: 2,
            new_tokens: 5,
            ..SpeedConfig::default()
        };
        let report = measure_speed(&config, &Device::Cpu)?;
        assert_eq!(report.training.steps, 2);
        assert!(
            report.training.tokens_per_second.is_finite()
                && report.training.tokens_per_second > 0.0
        );
        // The phases are parts of each update's time: each positive, together
        // no more than the whole.
        let t = &report.training;
        assert!(t.forward_ms > 0.0 && t.backward_ms > 0.0 && t.optimizer_ms > 0.0);
        assert!(
            t.forward_ms + t.backward_ms + t.optimizer_ms <= t.ms_per_step,
            "{t:?}"
        );
        assert_eq!(report.generation_cached.new_tokens, 5);
        assert_eq!(report.generation_uncached.new_tokens, 5);
        assert!(report.generation_cached.kv_cache && !report.generation_uncached.kv_cache);
        let back: SpeedReport = serde_json::from_str(&report.to_json())?;
        assert_eq!(back.parameters, report.parameters);
        let text = report.to_string();
        assert!(
            text.contains("training:") && text.contains("KV cache off"),
            "{text}"
        );
        Ok(())
    }

    /// SFT's batches are 16 conversations padded to their longest (at most
    /// 256 tokens); tokens/s counts those positions.
    #[test]
    fn sft_training_is_timed_on_padded_conversations() -> Result<()> {
        let t = measure_sft_training(2, &Device::Cpu)?;
        assert_eq!((t.steps, t.sequences), (2, 16.0));
        assert!(t.padded_len > 1.0 && t.padded_len <= 256.0, "{t:?}");
        let seconds = t.ms_per_step * 2.0 / 1e3;
        let positions = t.tokens_per_second * seconds;
        assert!(
            (positions - 2.0 * 16.0 * t.padded_len).abs() < 1e-6 * positions,
            "{t:?}"
        );
        Ok(())
    }

    #[test]
    fn zero_steps_is_an_error_naming_the_fields() {
        let config = SpeedConfig {
            steps: 0,
            ..SpeedConfig::default()
        };
        let err = measure_speed(&config, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("steps"), "{err}");
    }
}
