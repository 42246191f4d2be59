//! Memory, precision and speed, measured: what full fine-tuning, LoRA and the
//! four models of RLHF cost in each weight precision, next to the
//! parameters × bytes arithmetic.
//!
//! ```text
//! weights     = Σ parameters × bytes(precision)        (int8: 1 byte + 4 per row)
//! gradients   = trainable × bytes(precision)            (one per trained weight)
//! optimizer   = trainable × 8                           (AdamW's m and v, f32 here)
//! activations ≈ what autograd keeps for backward        (not in the arithmetic)
//! ```
//!
//! Process memory comes from `/proc/self/status` (VmRSS, and VmHWM, the peak,
//! reset through `/proc/self/clear_refs`), so one measurement per process
//! gives clean numbers: the `memory` benchmark runs each in a child process.
//!
//! The setups of RLHF (Ouyang et al. 2022; the PEFT/TRL recipe): four models
//! held separately (policy and value trained, reference and reward frozen)
//! against one base with three adapter sets (policy, value, reward) whose
//! reference is the base itself with adapters off. Reward and value heads are
//! a single row of d numbers, so the value and reward models are stood in for
//! by language models here: their memory is the same to within d parameters,
//! and the value model's update is stood in for by a next-token update of the
//! same size.

use super::data::{LmBatch, NextTokenLoss};
use super::lora::LoraConfig;
use super::pretrained::LanguageModel;
use super::train::{TrainConfig, Trainer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The process's resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessMemory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Read VmRSS and VmHWM from `/proc/self/status` (Linux).
pub fn process_memory() -> Result<ProcessMemory> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (process memory is measured on Linux only)")?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("/proc/self/status has no {name}"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("/proc/self/status: unreadable {line:?}"))?;
        Ok(kb * 1024)
    };
    Ok(ProcessMemory {
        rss_bytes: field("VmRSS:")?,
        peak_rss_bytes: field("VmHWM:")?,
    })
}

/// Reset the peak (VmHWM) to the current RSS (Linux ≥ 4.0).
pub fn reset_peak_rss() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS")
}

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    Bf16,
    F16,
    /// Block projections per-channel int8 (a frozen base only), the rest f32.
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Self::F32, Self::Bf16, Self::F16, Self::Int8];

    /// The dtype the model is loaded and computed in.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 | Self::Int8 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::Int8 => "int8 base",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "f32" => Self::F32,
            "bf16" => Self::Bf16,
            "f16" => Self::F16,
            "int8" => Self::Int8,
            _ => bail!("unknown precision {s:?}: f32, bf16, f16 or int8"),
        })
    }
}

/// What is held and trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    /// One model, forward passes only.
    Inference,
    /// One model, every weight trained with AdamW.
    FullFineTuning,
    /// One frozen base with trained adapters.
    Lora,
    /// RLHF's policy, reference, reward and value models as four copies;
    /// policy and value trained in full.
    FourModels,
    /// One base; policy, value and reward as adapter sets on it; the
    /// reference is the base with adapters off.
    BaseAndAdapters,
}

impl Setup {
    pub const ALL: [Setup; 5] = [
        Self::Inference,
        Self::FullFineTuning,
        Self::Lora,
        Self::FourModels,
        Self::BaseAndAdapters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::FullFineTuning => "full fine-tuning",
            Self::Lora => "LoRA",
            Self::FourModels => "RLHF: four models",
            Self::BaseAndAdapters => "RLHF: base + adapters",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| serde_json::to_value(x).ok().and_then(|v| v.as_str().map(|v| v == s)) == Some(true))
            .with_context(|| {
                format!("unknown setup {s:?}: inference, full_fine_tuning, lora, four_models or base_and_adapters")
            })
    }

    /// Whether the setup trains base weights (so an int8 base cannot do it).
    pub fn trains_the_base(self) -> bool {
        matches!(self, Self::FullFineTuning | Self::FourModels)
    }
}

/// Bytes by the arithmetic, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterMemory {
    pub weights: usize,
    pub gradients: usize,
    pub optimizer: usize,
}

impl ParameterMemory {
    pub fn total(&self) -> usize {
        self.weights + self.gradients + self.optimizer
    }
}

/// One measurement: a model in one precision, in one setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryMeasurement {
    pub model: String,
    pub setup: Setup,
    pub precision: Precision,
    /// Parameters of one copy of the model.
    pub parameters: usize,
    /// Parameters the optimiser updates, all models together.
    pub trainable_parameters: usize,
    /// parameters × bytes for every model held, gradients and AdamW state.
    pub arithmetic: ParameterMemory,
    /// RSS before loading anything (the program itself).
    pub rss_before_bytes: u64,
    /// RSS once the models are built, before any step.
    pub rss_models_bytes: u64,
    /// RSS after the warm-up step (AdamW's state allocated, activations freed).
    pub rss_after_warmup_bytes: u64,
    /// The peak RSS over the measured steps (reset after loading).
    pub peak_rss_bytes: u64,
    /// Seconds per step (forward only for inference; every model's work for RLHF).
    pub step_seconds: f64,
    /// Tokens through the trained (or, for inference, the only) model per second.
    pub tokens_per_sec: f64,
}

impl MemoryMeasurement {
    /// Peak RSS above what the program held before loading: the measured
    /// counterpart of [`ParameterMemory::total`] plus activations.
    pub fn measured_bytes(&self) -> u64 {
        self.peak_rss_bytes.saturating_sub(self.rss_before_bytes)
    }
}

/// Token rows for the measured steps: `batch` rows of `seq_len + 1` ids drawn
/// from the first `vocab` ids with a fixed seed.
fn fixed_batch(lm: &LanguageModel, batch: usize, seq_len: usize) -> Result<LmBatch> {
    let mut rng = gridworld::Rng::new(7);
    let vocab = lm.tokenizer.vocab_size();
    let rows: Vec<(Vec<u32>, Vec<bool>)> = (0..batch)
        .map(|_| {
            let ids = (0..=seq_len).map(|_| rng.below(vocab) as u32).collect();
            (ids, vec![true; seq_len + 1])
        })
        .collect();
    LmBatch::from_rows(&rows, lm.tokenizer.pad_id(), lm.device())
}

/// Load `path` in `precision` (int8: f32, then the projections quantized and
/// the dense copy dropped).
pub fn load_in(path: &Path, precision: Precision, device: &Device) -> Result<LanguageModel> {
    let lm = LanguageModel::load(path, device, precision.dtype())?;
    match precision {
        Precision::Int8 => lm.with_int8_base(),
        _ => Ok(lm),
    }
}

/// Measure `setup` in `precision` for the model at `path`: build it, then
/// `steps` steps on a fixed batch of `batch × seq_len` tokens (one warm-up
/// step first, which also allocates AdamW's state). Call it once per process
/// for clean peak numbers.
pub fn measure(
    path: &Path,
    setup: Setup,
    precision: Precision,
    lora: &LoraConfig,
    batch: usize,
    seq_len: usize,
    steps: usize,
) -> Result<MemoryMeasurement> {
    if precision == Precision::Int8 && setup.trains_the_base() {
        bail!(
            "{} trains every weight; an int8 base is frozen (use LoRA on it)",
            setup.name()
        );
    }
    let device = Device::Cpu;
    let before = process_memory()?;
    let base = load_in(path, precision, &device)?;
    let parameters: usize = super::weights::expected_shapes(&base.config)
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    let bytes = precision.dtype().size_in_bytes();
    let weight_bytes = base.model.weight_bytes();
    let config = |steps| TrainConfig {
        steps,
        warmup_steps: 0,
        ..TrainConfig::default()
    };
    // The models trained, the frozen ones only run forward.
    let (trained, frozen): (Vec<LanguageModel>, Vec<LanguageModel>) = match setup {
        Setup::Inference => (vec![], vec![base.frozen()]),
        Setup::FullFineTuning => (vec![base.clone()], vec![]),
        Setup::Lora => (vec![base.with_lora(lora, 1)?], vec![]),
        Setup::FourModels => (
            vec![base.deep_clone()?, base.deep_clone()?],
            vec![base.frozen(), base.deep_clone()?.frozen()],
        ),
        Setup::BaseAndAdapters => (
            vec![base.with_lora(lora, 1)?, base.with_lora(lora, 2)?],
            vec![base.frozen(), base.with_lora(lora, 3)?.frozen()],
        ),
    };
    let trainable: usize = trained.iter().map(|m| m.num_trainable_parameters()).sum();
    let adapters: usize = trained
        .iter()
        .chain(&frozen)
        .filter_map(|m| m.lora().map(|l| l.num_parameters()))
        .sum();
    let copies = match setup {
        Setup::FourModels => 4,
        _ => 1,
    };
    let arithmetic = ParameterMemory {
        weights: copies * weight_bytes + adapters * bytes,
        gradients: trainable * bytes,
        optimizer: trainable * 8,
    };
    drop(base);
    let data = fixed_batch(
        trained.first().or(frozen.first()).context("no model")?,
        batch,
        seq_len,
    )?;
    let mut trainers = trained
        .iter()
        .map(|m| Trainer::new(NextTokenLoss::new(m), config(steps + 1)))
        .collect::<Result<Vec<_>>>()?;
    let objectives: Vec<NextTokenLoss> = frozen.iter().map(NextTokenLoss::new).collect();
    let mut step = || -> Result<()> {
        for t in trainers.iter_mut() {
            t.train_step(&data)?;
        }
        for o in &objectives {
            use super::train::Objective;
            o.loss(&data)?;
        }
        Ok(())
    };
    let models = process_memory()?;
    step()?; // warm-up: allocates AdamW's state
    let loaded = process_memory()?;
    reset_peak_rss()?;
    let started = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let step_seconds = started.elapsed().as_secs_f64() / steps.max(1) as f64;
    let peak = process_memory()?;
    Ok(MemoryMeasurement {
        model: path.display().to_string(),
        setup,
        precision,
        parameters,
        trainable_parameters: trainable,
        arithmetic,
        rss_before_bytes: before.rss_bytes,
        rss_models_bytes: models.rss_bytes,
        rss_after_warmup_bytes: loaded.rss_bytes,
        peak_rss_bytes: peak.peak_rss_bytes.max(loaded.rss_bytes),
        step_seconds,
        tokens_per_sec: (batch * seq_len) as f64 / step_seconds,
    })
}

/// How a precision changes what the model computes, against f32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionQuality {
    pub precision: Precision,
    /// max |logits − f32 logits| over one fixed text.
    pub max_logit_diff: f64,
    /// Greedy continuations of the prompts.
    pub continuations: Vec<String>,
    /// How many continuations equal f32's word for word.
    pub same_as_f32: usize,
    /// exp(mean next-token loss) on the held-out corpus.
    pub perplexity: f64,
}

/// The quality table: for each precision, logits against f32 on `text`,
/// greedy continuations of `prompts` (`new_tokens` each) and held-out
/// perplexity on the corpus in `corpus` (its `valid.txt`, `windows` windows of 64).
pub fn precision_quality(
    path: &Path,
    precisions: &[Precision],
    text: &str,
    prompts: &[&str],
    new_tokens: usize,
    corpus: &Path,
    windows: usize,
) -> Result<Vec<PrecisionQuality>> {
    let device = Device::Cpu;
    let run = |precision: Precision| -> Result<(candle_core::Tensor, Vec<String>, f64)> {
        let lm = load_in(path, precision, &device)?;
        let logits = lm.logits(text)?;
        let cfg = super::SamplingConfig::greedy(new_tokens);
        let continuations = prompts
            .iter()
            .map(|p| Ok(lm.generate(p, &cfg)?.completion))
            .collect::<Result<Vec<_>>>()?;
        let loss = super::pretrain::held_out_loss(&lm, corpus, windows, 64)?["loss"];
        Ok((logits, continuations, loss.exp()))
    };
    // f32 is the reference: measured once, reused when it is also in the list.
    let f32_run = run(Precision::F32)?;
    precisions
        .iter()
        .map(|&precision| {
            let (logits, continuations, perplexity) = match precision {
                Precision::F32 => f32_run.clone(),
                _ => run(precision)?,
            };
            let (reference, reference_text, _) = &f32_run;
            let same_as_f32 = continuations
                .iter()
                .zip(reference_text)
                .filter(|(a, b)| a == b)
                .count();
            Ok(PrecisionQuality {
                precision,
                max_logit_diff: super::ops::max_abs_diff(&logits, reference)? as f64,
                continuations,
                same_as_f32,
                perplexity,
            })
        })
        .collect()
}

/// What the `memory` benchmark writes per model (`datasets/memory/<model>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// `tiny` or `smollm2`.
    pub model: String,
    /// Rows per measured step.
    pub batch: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// The adapters of the LoRA setups.
    pub lora: LoraConfig,
    /// Where it was measured (CPU threads).
    pub machine: String,
    pub measurements: Vec<MemoryMeasurement>,
    pub quality: Vec<PrecisionQuality>,
}

impl MemoryReport {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a memory report", path.display()))
    }

    /// The measurements in one precision.
    pub fn in_precision(&self, precision: Precision) -> Vec<MemoryMeasurement> {
        self.measurements
            .iter()
            .filter(|m| m.precision == precision)
            .cloned()
            .collect()
    }
}

/// `datasets/memory/<model>.json`: the benchmark's committed measurements.
pub fn recorded_memory_path(model: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/memory")
        .join(format!("{model}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_memory_is_read_and_a_large_allocation_shows() {
        let before = process_memory().unwrap();
        assert!(before.rss_bytes > 0 && before.peak_rss_bytes >= before.rss_bytes);
        reset_peak_rss().unwrap();
        let v = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = process_memory().unwrap();
        assert!(
            after.peak_rss_bytes >= before.rss_bytes + (60 << 20),
            "{before:?} → {after:?}"
        );
        drop(v);
    }

    #[test]
    fn names_parse_back() {
        for s in Setup::ALL {
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(Setup::parse(v.as_str().unwrap()).unwrap(), s);
        }
        assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
        assert!(Precision::parse("fp8").is_err());
    }
}
