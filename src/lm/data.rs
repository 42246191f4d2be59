//! Batches for next-token training. One format serves pre-training (every token
//! counts) and supervised fine-tuning (only the assistant's tokens count): input
//! ids, the targets (the inputs shifted by one) and a loss mask.

use super::model::Llama;
use super::pretrained::LanguageModel;
use super::train::{mean_over_batches, BatchSource, LossOutput, Metrics, Objective};
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use gridworld::Rng;

/// Inputs x (b, t), targets y (b, t) with yᵢ = xᵢ₊₁, and loss weights (b, t)
/// in f32: 1 where the target counts, 0 for prompt and padding.
#[derive(Debug, Clone)]
pub struct LmBatch {
    pub input_ids: Tensor,
    pub targets: Tensor,
    pub loss_mask: Tensor,
}

impl LmBatch {
    /// Build from token rows and a per-token weight (`counts[i]`: does token i
    /// count as a target?). Rows are right-padded with `pad_id`; padding never
    /// counts. Right padding needs no attention mask: with causal attention, real
    /// tokens never see the padding after them.
    pub fn from_rows(rows: &[(Vec<u32>, Vec<bool>)], pad_id: u32, device: &Device) -> Result<Self> {
        if rows.is_empty() {
            bail!("empty batch");
        }
        let t = rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        if t == 0 {
            bail!("every row needs at least two tokens");
        }
        let b = rows.len();
        let mut x = vec![pad_id; b * t];
        let mut y = vec![pad_id; b * t];
        let mut m = vec![0f32; b * t];
        for (r, (tokens, counts)) in rows.iter().enumerate() {
            if counts.len() != tokens.len() {
                bail!(
                    "row {r}: {} tokens but {} mask entries",
                    tokens.len(),
                    counts.len()
                );
            }
            for i in 0..tokens.len().saturating_sub(1) {
                x[r * t + i] = tokens[i];
                y[r * t + i] = tokens[i + 1];
                m[r * t + i] = if counts[i + 1] { 1.0 } else { 0.0 };
            }
        }
        Ok(Self {
            input_ids: Tensor::from_vec(x, (b, t), device)?,
            targets: Tensor::from_vec(y, (b, t), device)?,
            loss_mask: Tensor::from_vec(m, (b, t), device)?,
        })
    }

    /// Number of target tokens that count.
    pub fn counted_tokens(&self) -> Result<f64> {
        Ok(self
            .loss_mask
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?)
    }
}

/// Mean negative log-likelihood of the counted targets:
/// `L = − Σᵢ mᵢ log p(yᵢ | x≤ᵢ) / Σᵢ mᵢ` (cross-entropy; perplexity is e^L).
pub fn next_token_loss(model: &Llama, batch: &LmBatch) -> Result<Tensor> {
    let logits = model.forward(&batch.input_ids)?.logits;
    let logp = super::ops::target_log_probs(&logits, &batch.targets)?;
    Ok(crate::ppo::masked_mean(&logp, Some(&batch.loss_mask))?.neg()?)
}

/// The next-token objective of pre-training and SFT: [`next_token_loss`] on
/// [`LmBatch`]es, training every weight of a [`LanguageModel`] (shared with it:
/// training the objective trains the model). Held-out metrics: `loss` and
/// `perplexity` = e^loss.
#[derive(Debug, Clone)]
pub struct NextTokenLoss {
    lm: LanguageModel,
}

impl NextTokenLoss {
    pub fn new(lm: &LanguageModel) -> Self {
        Self { lm: lm.clone() }
    }
}

impl Objective for NextTokenLoss {
    type Batch = LmBatch;

    fn loss(&self, batch: &LmBatch) -> Result<LossOutput> {
        let counted = batch.counted_tokens()?;
        Ok(LossOutput {
            loss: next_token_loss(&self.lm.model, batch)?,
            metrics: Metrics::new(),
            tokens: counted,
            weight: counted,
        })
    }

    fn evaluate(&self, batches: &[LmBatch]) -> Result<Metrics> {
        let mut m = mean_over_batches(self, batches)?;
        m.insert("perplexity".into(), m["loss"].exp());
        Ok(m)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.lm.trainable_vars()
    }

    fn save(&self, dir: &std::path::Path) -> Result<()> {
        self.lm.save(dir)
    }

    fn set_training(&self, training: bool, step_seed: u64) {
        self.lm.set_training(training, step_seed);
    }

    fn sampler(&self) -> Option<&LanguageModel> {
        Some(&self.lm)
    }
}

/// Pre-training data: documents tokenized and concatenated (each followed by
/// the end-of-text token); batches are random windows of `seq_len + 1` tokens.
#[derive(Debug, Clone)]
pub struct TokenStream {
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub batch_size: usize,
    pub seq_len: usize,
    pub eval_batches: usize,
    pub seed: u64,
}

impl TokenStream {
    /// Tokenize `train` and `valid` documents with `tokenizer`.
    pub fn new(
        tokenizer: &super::TextTokenizer,
        train: &[String],
        valid: &[String],
        batch_size: usize,
        seq_len: usize,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 || seq_len == 0 {
            bail!("batch_size ({batch_size}) and seq_len ({seq_len}) must be at least 1");
        }
        let eot = tokenizer.eos_id();
        let encode = |docs: &[String]| -> Result<Vec<u32>> {
            let mut out = Vec::new();
            for d in docs {
                out.extend(tokenizer.encode(d)?);
                out.push(eot);
            }
            Ok(out)
        };
        let s = Self {
            train: encode(train)?,
            valid: encode(valid)?,
            batch_size,
            seq_len,
            eval_batches: 8,
            seed,
        };
        if s.train.len() <= seq_len + 1 || s.valid.len() <= seq_len + 1 {
            bail!(
                "corpus too small: {} train / {} validation tokens for windows of {}",
                s.train.len(),
                s.valid.len(),
                seq_len + 1
            );
        }
        Ok(s)
    }

    fn window_batch(&self, tokens: &[u32], starts: &[usize], device: &Device) -> Result<LmBatch> {
        let rows: Vec<(Vec<u32>, Vec<bool>)> = starts
            .iter()
            .map(|&s| {
                let w = tokens[s..s + self.seq_len + 1].to_vec();
                let n = w.len();
                (w, vec![true; n])
            })
            .collect();
        LmBatch::from_rows(&rows, 0, device)
    }
}

impl BatchSource for TokenStream {
    type Batch = LmBatch;

    fn train_batch(&self, step: usize, device: &Device) -> Result<LmBatch> {
        let mut rng = Rng::new(seed_for(self.seed, Stream::CorpusBatch, step as u64));
        let max_start = self.train.len() - self.seq_len - 1;
        let starts: Vec<usize> = (0..self.batch_size)
            .map(|_| rng.below(max_start + 1))
            .collect();
        self.window_batch(&self.train, &starts, device)
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<LmBatch>> {
        // Consecutive, non-overlapping windows from the start of the held-out text.
        let w = self.seq_len + 1;
        let available = self.valid.len() / w;
        let starts: Vec<usize> = (0..available.min(self.eval_batches * self.batch_size))
            .map(|i| i * w)
            .collect();
        starts
            .chunks(self.batch_size)
            .map(|c| self.window_batch(&self.valid, c, device))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shifted_and_masked() {
        let rows = vec![
            (vec![1, 2, 3, 4], vec![false, false, true, true]),
            (vec![5, 6], vec![true, true]),
        ];
        let b = LmBatch::from_rows(&rows, 0, &Device::Cpu).unwrap();
        assert_eq!(
            b.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![1, 2, 3], vec![5, 0, 0]]
        );
        assert_eq!(
            b.targets.to_vec2::<u32>().unwrap(),
            vec![vec![2, 3, 4], vec![6, 0, 0]]
        );
        assert_eq!(
            b.loss_mask.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 0.0]]
        );
        assert_eq!(b.counted_tokens().unwrap(), 3.0);
    }
}
