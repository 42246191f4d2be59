//! Prompt ⊕ answer sequences in one padded batch, and what a language model
//! assigns to the answer tokens: the one place where PPO (rung 7) and DPO
//! (rung 8) read log π(y_t | x, y_<t) off the logits.
//!
//! ```text
//! row r:  [ q_1 … q_m | a_1 … a_n | pad … ]
//! log π(a_k) = log_softmax(logits[r, m + k − 2] / T)[a_k]     (0-based positions)
//! log π(y | x) = Σ_k log π(a_k)                                the sequence log-prob
//! ```

use super::reward_model::RewardModel;
use crate::lm::LanguageModel;
use crate::ppo;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

/// Sequences of prompt ⊕ answer, right-padded, and for each answer token the
/// position whose logits predict it.
pub struct AnswerBatch {
    pub input_ids: Tensor,
    /// (b·T,) rows of the flattened (b·L) positions predicting answer token t
    /// (row r·L + q_r + t − 1; 0 for padding, masked).
    pub predict_at: Tensor,
    /// (b, T) the answer tokens (0 for padding).
    pub tokens: Tensor,
    /// (b, T) 1 for answer tokens.
    pub mask: Tensor,
    /// Rows.
    pub b: usize,
    /// Answer positions (the longest answer).
    pub t: usize,
}

impl AnswerBatch {
    /// Row r is `queries[r]` ⊕ `answers[r]`, padded with `pad` on the right.
    /// Every query needs at least one token (the position that predicts the
    /// first answer token).
    pub fn new(
        queries: &[&Vec<u32>],
        answers: &[&Vec<u32>],
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        let b = queries.len();
        if answers.len() != b {
            bail!("{b} queries but {} answers", answers.len());
        }
        if let Some(r) = queries.iter().position(|q| q.is_empty()) {
            bail!("query {r} is empty: nothing predicts its answer's first token");
        }
        let l = queries
            .iter()
            .zip(answers)
            .map(|(q, a)| q.len() + a.len())
            .max()
            .unwrap_or(1);
        let t = answers.iter().map(|a| a.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![pad; b * l];
        let (mut at, mut tok, mut mask) = (vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t]);
        for r in 0..b {
            let (q, a) = (queries[r], answers[r]);
            ids[r * l..r * l + q.len()].copy_from_slice(q);
            ids[r * l + q.len()..r * l + q.len() + a.len()].copy_from_slice(a);
            for k in 0..a.len() {
                at[r * t + k] = (r * l + q.len() + k - 1) as u32;
                tok[r * t + k] = a[k];
                mask[r * t + k] = 1.0;
            }
        }
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, l), device)?,
            predict_at: Tensor::from_vec(at, b * t, device)?,
            tokens: Tensor::from_vec(tok, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            b,
            t,
        })
    }

    /// The logits (b·T, V) that predict each answer token, divided by the temperature.
    pub fn answer_logits(&self, lm: &LanguageModel, temperature: f64) -> Result<Tensor> {
        let logits = lm.model.forward(&self.input_ids)?.logits;
        let (b, l, v) = logits.dims3()?;
        Ok((logits
            .reshape((b * l, v))?
            .index_select(&self.predict_at, 0)?
            / temperature)?)
    }

    /// log π(y_t) of every answer token (b, T) under `lm` at `temperature`
    /// (0 on padding).
    pub fn log_probs(&self, lm: &LanguageModel, temperature: f64) -> Result<Tensor> {
        let logits = self.answer_logits(lm, temperature)?;
        self.token_log_probs(&logits)
    }

    /// [`Self::log_probs`] and the mean entropy over the answer tokens. The
    /// entropy is a metric here (this PPO has no entropy bonus), so it is
    /// computed on detached logits: the backward pass never goes through it.
    pub fn log_probs_and_entropy(
        &self,
        lm: &LanguageModel,
        temperature: f64,
    ) -> Result<(Tensor, Tensor)> {
        let logits = self.answer_logits(lm, temperature)?;
        let mask = self.mask.flatten_all()?;
        let entropy = ppo::entropy(&logits.detach(), Some(&mask))?;
        Ok((self.token_log_probs(&logits)?, entropy))
    }

    /// log π(y | x) = Σ_t log π(y_t) of each row's answer (b,), at `temperature`.
    pub fn sequence_log_probs(&self, lm: &LanguageModel, temperature: f64) -> Result<Tensor> {
        Ok(self.log_probs(lm, temperature)?.sum(1)?)
    }

    /// Gather log π(y_t) from the (b·T, V) answer logits, (b, T), 0 on padding.
    pub fn token_log_probs(&self, logits: &Tensor) -> Result<Tensor> {
        let flat_tokens = self.tokens.flatten_all()?;
        let logp = ppo::log_prob_of(logits, &flat_tokens)?.reshape((self.b, self.t))?;
        Ok((logp * &self.mask)?)
    }

    /// V(s_t) of every answer position (b, T): the value model read at the
    /// position before each answer token.
    pub fn values(&self, value: &RewardModel) -> Result<Tensor> {
        let all = value.scores_at_every_position(&self.input_ids)?;
        let (b, l) = all.dims2()?;
        let v = all
            .reshape(b * l)?
            .index_select(&self.predict_at, 0)?
            .reshape((self.b, self.t))?;
        Ok((v * &self.mask)?)
    }
}
