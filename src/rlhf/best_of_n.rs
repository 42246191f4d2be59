//! Best-of-n sampling: the baseline every RLHF method is measured against.
//! Sample n answers from the SFT model, keep the one the reward model scores
//! highest. No training at all; its distance from the SFT policy is bounded by
//!
//! ```text
//! KL(π_best-of-n ‖ π_SFT) ≤ log n − (n − 1)/n
//! ```
//!
//! (Stiennon et al. 2020; the bound is tight only for distinct samples,
//! Beirami et al. 2024). Gao, Schulman & Hilton (2022) fit the gold score of
//! best-of-n with R(d) = d(α − β·d), d = √KL.

use super::ppo::sample_answers;
use super::reward_model::RewardModel;
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::gold_score_turn;
use crate::lm::LanguageModel;
use crate::seeds::{seed_for, Stream};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// How to sample for [`best_of_n_curve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BestOfNConfig {
    /// The largest n; the curve covers 1, 2, 4, … up to it.
    pub max_n: usize,
    /// Sampling temperature of the SFT model.
    pub temperature: f64,
    /// Longest answer in tokens.
    pub max_new_tokens: usize,
    /// Subtracted from the reward of an answer that never ended.
    pub missing_eos_penalty: f64,
    /// Seeds the sampling dice of every prompt and answer.
    pub seed: u64,
}

impl Default for BestOfNConfig {
    /// PPO's sampling defaults ([`super::ppo::RlhfPpoConfig`]), so that the
    /// two optimisers are compared on the same answers.
    fn default() -> Self {
        Self {
            max_n: 16,
            temperature: 1.0,
            max_new_tokens: 64,
            missing_eos_penalty: 1.0,
            seed: 0,
        }
    }
}

/// One point of the best-of-n curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestOfNPoint {
    pub n: usize,
    /// The analytic bound log n − (n − 1)/n on KL(best-of-n ‖ SFT).
    pub kl: f64,
    /// Mean reward-model score of the chosen answers (the proxy).
    pub proxy_score: f64,
    /// Mean gold score of the chosen answers.
    pub gold_score: f64,
}

/// log n − (n − 1)/n.
pub fn best_of_n_kl(n: usize) -> f64 {
    let n = n.max(1) as f64;
    n.ln() - (n - 1.0) / n
}

/// Sample `max_n` answers per prompt once; for n = 1, 2, 4, … ≤ max_n, pick
/// the best of the first n by the reward model and report the mean proxy and
/// gold scores of the picks.
pub fn best_of_n_curve(
    sft: &LanguageModel,
    rm: &RewardModel,
    prompts: &[Prompt],
    config: &BestOfNConfig,
) -> Result<Vec<BestOfNPoint>> {
    Ok(best_of_n_curves(sft, &[rm], prompts, config)?.remove(0))
}

/// [`best_of_n_curve`] for several reward models on the **same** samples
/// (one sampling pass): each picks its own best of n, so their curves differ
/// only by the reward model. One curve per reward model, in order.
pub fn best_of_n_curves(
    sft: &LanguageModel,
    rms: &[&RewardModel],
    prompts: &[Prompt],
    config: &BestOfNConfig,
) -> Result<Vec<Vec<BestOfNPoint>>> {
    // scores[m][p][k] = (proxy of model m, gold) of the k-th sample of prompt p.
    let mut scores: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new(); prompts.len()]; rms.len()];
    for k in 0..config.max_n.max(1) {
        for (c, chunk) in prompts.chunks(32).enumerate() {
            let seed = seed_for(config.seed, Stream::BestOfNSample, (k * 1009 + c) as u64);
            let sampled =
                sample_answers(sft, chunk, config.temperature, config.max_new_tokens, seed)?;
            let (ended, turns) = (sampled.ended, sampled.turns);
            let gold: Vec<f64> = chunk
                .iter()
                .zip(&turns)
                .map(|(p, t)| gold_score_turn(p, t))
                .collect();
            for (rm, scores) in rms.iter().zip(scores.iter_mut()) {
                let seqs = chunk
                    .iter()
                    .zip(&turns)
                    .map(|(p, t)| rm.encode(&p.text, t))
                    .collect::<Result<Vec<_>>>()?;
                let proxy = rm.rewards_of_ids(&seqs, 32)?;
                for (i, ((s, &e), &g)) in proxy.into_iter().zip(&ended).zip(&gold).enumerate() {
                    let s = if e { s } else { s - config.missing_eos_penalty };
                    scores[c * 32 + i].push((s, g));
                }
            }
        }
    }
    Ok(scores.iter().map(|s| curve_of(s, config.max_n)).collect())
}

/// The best-of-n points of per-prompt (proxy, gold) samples.
fn curve_of(scores: &[Vec<(f64, f64)>], max_n: usize) -> Vec<BestOfNPoint> {
    let mut out = Vec::new();
    let mut n = 1;
    while n <= max_n.max(1) {
        let (mut proxy, mut gold) = (0.0, 0.0);
        for s in scores {
            let best = s[..n]
                .iter()
                .fold(s[0], |b, &x| if x.0 > b.0 { x } else { b });
            proxy += best.0;
            gold += best.1;
        }
        let m = scores.len().max(1) as f64;
        out.push(BestOfNPoint {
            n,
            kl: best_of_n_kl(n),
            proxy_score: proxy / m,
            gold_score: gold / m,
        });
        n *= 2;
    }
    out
}

/// `datasets/ppo-runs/best-of-n.json`: the curve `rlhf-lab best-of-n --n 16
/// --json` printed once (the SFT model, `tiny-rm`, the 60 test prompts, the
/// defaults above), for the comparison of methods in notebook 09.
pub fn recorded_curve_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/ppo-runs/best-of-n.json")
}

/// A best-of-n curve written as JSON (a list of [`BestOfNPoint`]); errors name the file.
pub fn read_curve(path: &std::path::Path) -> Result<Vec<BestOfNPoint>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a list of best-of-n points", path.display()))
}
