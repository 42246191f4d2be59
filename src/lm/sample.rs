//! Sampling: the language model as a policy. At each step the state is the text
//! so far, the policy π(·|state) = softmax(logits / T) over the vocabulary, and
//! the action is the next token.
//!
//! Greedy decoding takes argmax π; temperature T rescales the logits; top-k
//! keeps the k most likely tokens; top-p (nucleus sampling, Holtzman et al.
//! 2020) keeps the smallest set whose probability reaches p. Generation stops
//! at a stop token or after `max_new_tokens`.

use super::model::Llama;
use super::pretrained::LanguageModel;
use super::tokenizer::{pad_batch, PaddingSide};
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Result};
use candle_core::{IndexOp, Tensor};
use gridworld::Rng;
use serde::{Deserialize, Serialize};

/// How to pick the next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Most tokens to generate (generation also stops at a stop token).
    pub max_new_tokens: usize,
    /// Divides the logits before the softmax; 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep only the k most likely tokens (None: all of them).
    pub top_k: Option<usize>,
    /// Nucleus sampling (Holtzman et al. 2020): keep the smallest set of tokens
    /// whose probabilities sum to at least p (None: all of them).
    pub top_p: Option<f64>,
    /// Seed of the sampling dice: the same seed gives the same text.
    pub seed: u64,
    /// Tokens that end generation; empty means the tokenizer's stop tokens.
    pub stop_tokens: Vec<u32>,
    /// Reuse keys and values of earlier positions (same result, much faster).
    pub use_kv_cache: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.8,
            top_k: None,
            top_p: Some(0.95),
            seed: 0,
            stop_tokens: Vec::new(),
            use_kv_cache: true,
        }
    }
}

impl SamplingConfig {
    /// Greedy decoding of up to `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!(
                "sampling field `temperature` must be ≥ 0, got {}",
                self.temperature
            );
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                bail!("sampling field `top_p` must be in (0, 1], got {p}");
            }
        }
        if self.top_k == Some(0) {
            bail!("sampling field `top_k` must be at least 1");
        }
        Ok(())
    }

    /// The random stream of batch row `row` (row 0 uses `seed` itself), so a
    /// prompt sampled in a batch at row i gives the same tokens as alone with
    /// seed `seed_for_row(i)`.
    pub fn seed_for_row(&self, row: usize) -> u64 {
        match row {
            0 => self.seed,
            r => seed_for(self.seed, Stream::SampleRow, r as u64 - 1),
        }
    }
}

/// The distribution the sampler draws from, after temperature, top-k and
/// top-p: (token, probability) pairs, most likely first, summing to 1.
/// Greedy (T = 0) puts all mass on the argmax.
pub fn next_token_distribution(logits: &[f32], cfg: &SamplingConfig) -> Vec<(u32, f64)> {
    let argmax = logits
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0;
    if cfg.temperature == 0.0 {
        return vec![(argmax as u32, 1.0)];
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if let Some(k) = cfg.top_k {
        order.truncate(k.max(1));
    }
    let max = logits[order[0] as usize] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i as usize] as f64 - max) / cfg.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut dist: Vec<(u32, f64)> = order
        .into_iter()
        .zip(weights.into_iter().map(|w| w / total))
        .collect();
    if let Some(p) = cfg.top_p {
        let mut cum = 0.0;
        let mut keep = dist.len();
        for (i, (_, q)) in dist.iter().enumerate() {
            cum += q;
            if cum >= p {
                keep = i + 1;
                break;
            }
        }
        dist.truncate(keep);
        let total: f64 = dist.iter().map(|d| d.1).sum();
        dist.iter_mut().for_each(|d| d.1 /= total);
    }
    dist
}

/// Draw one token from [`next_token_distribution`].
pub fn sample_token(logits: &[f32], cfg: &SamplingConfig, rng: &mut Rng) -> u32 {
    let dist = next_token_distribution(logits, cfg);
    if dist.len() == 1 {
        return dist[0].0;
    }
    let weights: Vec<f64> = dist.iter().map(|d| d.1).collect();
    dist[rng.categorical(&weights)].0
}

/// The tokens generated for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub prompt_ids: Vec<u32>,
    /// New tokens, including the stop token when one ended generation.
    pub new_ids: Vec<u32>,
    /// Whether a stop token ended it (rather than `max_new_tokens`).
    pub stopped: bool,
}

/// Generate continuations of several token-id prompts at once. Prompts of
/// different lengths are left-padded with `pad_id` and masked, so each row gets
/// the same tokens it would get alone (same seed for that row, see
/// [`SamplingConfig::seed_for_row`]).
pub fn generate_ids(
    model: &Llama,
    prompts: &[Vec<u32>],
    pad_id: u32,
    stop_ids: &[u32],
    cfg: &SamplingConfig,
) -> Result<Vec<Generated>> {
    cfg.validate()?;
    if prompts.iter().any(|p| p.is_empty()) {
        bail!("cannot generate from an empty prompt");
    }
    let device = model.device();
    let b = prompts.len();
    let batch = pad_batch(prompts, pad_id, PaddingSide::Left, device)?;
    let mut ids: Vec<Vec<u32>> = batch.input_ids.to_vec2()?;
    let mut mask: Vec<Vec<u32>> = batch.attention_mask.to_vec2()?;
    let mut rngs: Vec<Rng> = (0..b).map(|r| Rng::new(cfg.seed_for_row(r))).collect();
    let mut out: Vec<Generated> = prompts
        .iter()
        .map(|p| Generated {
            prompt_ids: p.clone(),
            new_ids: Vec::new(),
            stopped: false,
        })
        .collect();
    let padded = mask.iter().any(|r| r.contains(&0));
    let mut cache = model.new_cache();
    let mut input = batch.input_ids.clone();
    for _ in 0..cfg.max_new_tokens {
        let t_total = ids[0].len();
        let mask_t = Tensor::from_vec(mask.concat(), (b, t_total), device)?;
        let logits = if cfg.use_kv_cache {
            let m = padded.then_some(&mask_t);
            model.forward_cached(&input, m, &mut cache)?.logits
        } else {
            let all = Tensor::from_vec(ids.concat(), (b, t_total), device)?;
            if padded {
                model.forward_masked(&all, &mask_t)?.logits
            } else {
                model.forward(&all)?.logits
            }
        };
        let last = logits.i((.., logits.dim(1)? - 1, ..))?.to_vec2::<f32>()?;
        let mut next = Vec::with_capacity(b);
        for r in 0..b {
            let done = out[r].stopped;
            let tok = if done {
                pad_id
            } else {
                sample_token(&last[r], cfg, &mut rngs[r])
            };
            if !done {
                out[r].new_ids.push(tok);
                out[r].stopped = stop_ids.contains(&tok);
            }
            ids[r].push(tok);
            mask[r].push(u32::from(!done));
            next.push(tok);
        }
        if out.iter().all(|g| g.stopped) {
            break;
        }
        input = Tensor::from_vec(next, (b, 1), device)?;
    }
    Ok(out)
}

/// A prompt and its generated text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextGeneration {
    pub prompt: String,
    /// The new text, special tokens removed.
    pub completion: String,
    pub new_tokens: usize,
    pub stopped: bool,
    /// The stop token that ended generation, if one did.
    pub stop_token: Option<u32>,
}

impl LanguageModel {
    /// Continue `prompt` (plain text; special tokens written as text are honoured).
    pub fn generate(&self, prompt: &str, cfg: &SamplingConfig) -> Result<TextGeneration> {
        Ok(self.generate_batch(&[prompt], cfg)?.remove(0))
    }

    /// Continue several prompts in one batch.
    pub fn generate_batch(
        &self,
        prompts: &[&str],
        cfg: &SamplingConfig,
    ) -> Result<Vec<TextGeneration>> {
        let ids = prompts
            .iter()
            .map(|p| self.tokenizer.encode(p))
            .collect::<Result<Vec<_>>>()?;
        let stops = if cfg.stop_tokens.is_empty() {
            self.tokenizer.stop_ids()
        } else {
            cfg.stop_tokens.clone()
        };
        let gens = generate_ids(&self.model, &ids, self.tokenizer.pad_id(), &stops, cfg)?;
        prompts
            .iter()
            .zip(gens)
            .map(|(p, g)| {
                Ok(TextGeneration {
                    prompt: p.to_string(),
                    completion: self.tokenizer.decode(&g.new_ids, true)?,
                    new_tokens: g.new_ids.len(),
                    stopped: g.stopped,
                    stop_token: if g.stopped {
                        g.new_ids.last().copied()
                    } else {
                        None
                    },
                })
            })
            .collect()
    }

    /// Answer a chat: apply the chat template with a generation prompt and
    /// generate until `<|im_end|>`.
    pub fn chat(
        &self,
        messages: &[super::tokenizer::ChatMessage],
        cfg: &SamplingConfig,
    ) -> Result<String> {
        let prompt = self.tokenizer.apply_chat_template(messages, true);
        Ok(self.generate(&prompt, cfg)?.completion.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_top_k_and_top_p() {
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let greedy = next_token_distribution(&logits, &SamplingConfig::greedy(1));
        assert_eq!(greedy, vec![(0, 1.0)]);
        let plain = SamplingConfig {
            temperature: 1.0,
            top_p: None,
            ..Default::default()
        };
        let d = next_token_distribution(&logits, &plain);
        let z: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
        for (tok, p) in &d {
            assert!((p - (logits[*tok as usize] as f64).exp() / z).abs() < 1e-12);
        }
        // Softmax probabilities are 0.644, 0.237, 0.087, 0.032: p = 0.85 keeps two.
        let nucleus = next_token_distribution(
            &logits,
            &SamplingConfig {
                top_p: Some(0.85),
                ..plain.clone()
            },
        );
        assert_eq!(nucleus.len(), 2);
        assert!((nucleus[0].1 - 0.644 / (0.644 + 0.237)).abs() < 1e-3);
        let k = next_token_distribution(
            &logits,
            &SamplingConfig {
                top_k: Some(3),
                ..plain.clone()
            },
        );
        assert_eq!(k.iter().map(|d| d.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        // Higher temperature flattens.
        let hot = next_token_distribution(
            &logits,
            &SamplingConfig {
                temperature: 5.0,
                ..plain.clone()
            },
        );
        assert!(hot[0].1 < d[0].1);
        // Sampling frequencies follow the distribution (10k draws, ±0.02).
        let mut rng = Rng::new(3);
        let mut counts = [0usize; 4];
        for _ in 0..10_000 {
            counts[sample_token(&logits, &plain, &mut rng) as usize] += 1;
        }
        assert!((counts[0] as f64 / 1e4 - 0.644).abs() < 0.02, "{counts:?}");
        assert!(SamplingConfig {
            top_p: Some(1.5),
            ..plain
        }
        .validate()
        .is_err());
    }
}
