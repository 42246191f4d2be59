//! Rung 7: KL-constrained PPO of the language model against the reward model
//! (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022), one readable
//! file in the manner of CleanRL's `ppo.py`. The mathematics of PPO itself —
//! GAE, whitening, the clipped losses — is the one copy in [`crate::ppo`] that
//! the gridworld trainer of rung 2 uses too.
//!
//! ```text
//! policy π ← SFT model; reference π_ref ← SFT model (frozen); reward model R (frozen);
//! value model V ← R (a copy, trained)
//! for iteration:
//!     x  = the next prompts;  y ~ π(·|x) at temperature T, up to max_new_tokens   rollout
//!     logπ(y_t), logπ_ref(y_t)   from logits / T, at every answer token
//!     V(s_t)                     the value model at every answer position
//!     s = R(x, y) − penalty·[y never ended]                                   the proxy score
//!     r_t = −β · KL_t            KL_t = logπ − logπ_ref (k1) or (e^−ℓ − 1) + ℓ (k3)
//!     r_T += s                   at the end-of-turn token itself (not the padding after it)
//!     Â, R̂ = GAE(r, V; γ = 1, λ = 0.95) over answer tokens;  Â whitened over the batch
//!     for epoch in 1..K, for minibatch of answers:
//!         L = clipped surrogate(Â) + c_vf · clipped value loss(R̂)              crate::ppo
//!         one backward; AdamW steps on the policy and on the value model,     crate::optim
//!         each with its own learning rate and gradient clip
//!     β ← β · (1 + clip(KL / KL_target − 1, ±0.2) · batch / horizon)       adaptive, optional
//!     every eval_every iterations: the policy on the held-out prompts        HeldOutRecord
//! ```
//!
//! The training rollouts answer different prompts every iteration, so their
//! mean gold score swings by up to ±0.7 with the prompts' difficulty alone; the
//! held-out measurements ([`PpoTrainer::evaluate_on`]) answer the same prompts
//! with the same dice every time, so their curve moves with the policy.
//!
//! The value model is a copy of the reward model, as in TRL's PPO example —
//! its trunk reads answers the way the reward model does — with the head set
//! to zero (Huang et al. 2023), so the first advantages are plain returns
//! rather than the reward head's scores of half-written answers. A value head
//! on the policy would save a model but couple the critic's gradients to the
//! policy's text; keeping them apart keeps the policy update exactly PPO's.

use super::answer_batch::AnswerBatch;
use super::preferences::PreferenceData;
use super::reward_model::RewardModel;
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::{gold_score_turn, END_OF_TURN};
use crate::lm::lora::LoraConfig;
use crate::lm::tokenizer::ChatMessage;
use crate::lm::train::Metrics;
use crate::lm::{LanguageModel, SamplingConfig};
use crate::optim::{optimize_each, AdamConfig, AdamW, ParamGroup};
use crate::ppo;
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// How the per-token KL penalty is estimated from a sampled token
/// (Schulman 2020; ℓ = log π(y_t) − log π_ref(y_t)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// k1 = ℓ: unbiased, can be negative on a single token.
    K1,
    /// k3 = (e^−ℓ − 1) + ℓ: unbiased, never negative, lower variance.
    K3,
}

/// What scores the policy's answers during PPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardSource {
    /// The reward model: RLHF proper, optimising a learned proxy.
    RewardModel,
    /// The gold standard itself, (gold − 3.5) / 1.5 — about the reward model's
    /// scale on the SFT model's answers. An oracle no real lab has: it shows
    /// what PPO does when the reward is the truth.
    Gold,
}

/// The adaptive KL controller of Ziegler et al. (2019): β moves so the KL
/// per answer tracks `target`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveKl {
    /// The KL per answer (nats) to aim for.
    pub target: f64,
    /// How many answers it takes β to move by a factor e^0.2 at full error.
    pub horizon: f64,
}

/// Every hyper-parameter of [`PpoTrainer`], each documented in one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlhfPpoConfig {
    /// PPO iterations (rollout + update) to run.
    pub iterations: usize,
    /// Answers per iteration (the rollout batch).
    pub prompts_per_iteration: usize,
    /// Answers sampled per prompt within an iteration (`prompts_per_iteration`
    /// must be a multiple): several answers to one prompt let the update
    /// compare them, not only prompts of different difficulty.
    pub samples_per_prompt: usize,
    /// Answers per minibatch of the update.
    pub minibatch_size: usize,
    /// Passes over each rollout batch.
    pub ppo_epochs: usize,
    /// AdamW learning rate of the policy.
    pub learning_rate: f64,
    /// AdamW learning rate of the value model (its own optimiser and gradient
    /// clip): a critic that lags gives advantages that are mostly noise.
    pub value_learning_rate: f64,
    /// β: weight of the per-token KL penalty against the reference (0: no guardrail).
    pub kl_coef: f64,
    /// Estimator of the per-token KL in the reward.
    pub kl_estimator: KlEstimator,
    /// Move β to track a target KL (None: β stays fixed).
    pub adaptive_kl: Option<AdaptiveKl>,
    /// What scores the answers: the reward model, or the gold standard (an oracle).
    pub reward: RewardSource,
    /// Sampling temperature; log-probabilities of policy and reference use it too.
    pub temperature: f64,
    /// Longest answer in tokens; longer answers are cut and never end.
    pub max_new_tokens: usize,
    /// Subtracted from the reward model's score of an answer that never ended.
    pub missing_eos_penalty: f64,
    /// ε of the clipped surrogate.
    pub clip_range: f64,
    /// ε of the clipped value loss.
    pub value_clip_range: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Discount over answer tokens.
    pub gamma: f64,
    /// GAE λ.
    pub lam: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Keep one answer to each of four prompts every this many iterations (0: never).
    pub sample_every: usize,
    /// Measure the policy on the held-out prompts (see [`PpoTrainer::evaluate_on`])
    /// before training and every this many iterations (0: never).
    pub eval_every: usize,
    /// Answers per held-out prompt in those measurements (same seed each time,
    /// so two measurements differ by the policy, not by the dice).
    pub eval_samples_per_prompt: usize,
    /// Seed of the prompt order and the sampling.
    pub seed: u64,
    /// Train low-rank adapters (LoRA) on the policy instead of every weight,
    /// the reference being the same model with its adapters off (one copy of
    /// the base); `None`: full fine-tuning against a separate reference.
    pub lora: Option<LoraConfig>,
}

impl Default for RlhfPpoConfig {
    /// Sized for the tiny models on a CPU (about 4 s an iteration on 2 cores).
    /// Temperature 1: at 0.7 the SFT model is nearly deterministic (0.05 nats
    /// of entropy per token), so every sample of a prompt is the same answer
    /// and PPO has nothing to compare. Policy learning rate 2e-5 with 64
    /// answers per iteration: at 5e-5 the policy finds the reward model's
    /// blind spot within 20 iterations even with β = 0.05 (measured: proxy
    /// up, gold 3.2 → 2.1). The value model learns 15× faster, as OpenRLHF's
    /// critic does, so that its baseline (explained variance ≈ 0.7 after 10
    /// iterations) is there before the policy has moved.
    fn default() -> Self {
        Self {
            iterations: 30,
            prompts_per_iteration: 64,
            samples_per_prompt: 4,
            minibatch_size: 16,
            ppo_epochs: 2,
            learning_rate: 2e-5,
            value_learning_rate: 3e-4,
            kl_coef: 0.05,
            kl_estimator: KlEstimator::K1,
            adaptive_kl: None,
            reward: RewardSource::RewardModel,
            temperature: 1.0,
            max_new_tokens: 64,
            missing_eos_penalty: 1.0,
            clip_range: 0.2,
            value_clip_range: 0.2,
            vf_coef: 0.1,
            gamma: 1.0,
            lam: 0.95,
            max_grad_norm: 1.0,
            sample_every: 5,
            eval_every: 5,
            eval_samples_per_prompt: 2,
            seed: 0,
            lora: None,
        }
    }
}

impl RlhfPpoConfig {
    /// The settings of the held-out measurements ([`PpoTrainer::measure_held_out`]):
    /// `eval_samples_per_prompt` answers at the training temperature and length,
    /// the same dice every time.
    pub fn eval_settings(&self) -> EvalSettings {
        EvalSettings {
            samples_per_prompt: self.eval_samples_per_prompt,
            temperature: self.temperature,
            max_new_tokens: self.max_new_tokens,
            missing_eos_penalty: self.missing_eos_penalty,
            seed: self.seed ^ 0x4E1D,
        }
    }

    /// Check every field; the error names it and says why.
    pub fn validate(&self) -> Result<()> {
        if let Some(lora) = &self.lora {
            lora.validate().context("PPO config field `lora`")?;
            if lora.lora_dropout != 0.0 {
                bail!("PPO config field `lora.lora_dropout` is {}: PPO runs without dropout (as TRL's disable_dropout does: it would make π_old ≠ π before any update), so set it to 0", lora.lora_dropout);
            }
        }
        let positive = [
            ("iterations", self.iterations),
            ("prompts_per_iteration", self.prompts_per_iteration),
            ("samples_per_prompt", self.samples_per_prompt),
            ("minibatch_size", self.minibatch_size),
            ("ppo_epochs", self.ppo_epochs),
            ("max_new_tokens", self.max_new_tokens),
            ("eval_samples_per_prompt", self.eval_samples_per_prompt),
        ];
        for (name, v) in positive {
            if v == 0 {
                bail!("PPO config field `{name}` must be at least 1");
            }
        }
        if self.prompts_per_iteration % self.samples_per_prompt != 0 {
            bail!(
                "PPO config field `prompts_per_iteration` ({}) must be a multiple of `samples_per_prompt` ({})",
                self.prompts_per_iteration,
                self.samples_per_prompt
            );
        }
        if self.minibatch_size > self.prompts_per_iteration {
            bail!(
                "PPO config field `minibatch_size` ({}) is larger than `prompts_per_iteration` ({})",
                self.minibatch_size,
                self.prompts_per_iteration
            );
        }
        let checks = [
            (
                "learning_rate",
                self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            ),
            (
                "value_learning_rate",
                self.value_learning_rate > 0.0 && self.value_learning_rate.is_finite(),
            ),
            ("kl_coef", self.kl_coef >= 0.0 && self.kl_coef.is_finite()),
            (
                "temperature",
                self.temperature > 0.0 && self.temperature.is_finite(),
            ),
            ("missing_eos_penalty", self.missing_eos_penalty.is_finite()),
            ("clip_range", self.clip_range > 0.0 && self.clip_range < 1.0),
            ("value_clip_range", self.value_clip_range > 0.0),
            ("vf_coef", self.vf_coef >= 0.0 && self.vf_coef.is_finite()),
            ("gamma", (0.0..=1.0).contains(&self.gamma)),
            ("lam", (0.0..=1.0).contains(&self.lam)),
            ("max_grad_norm", self.max_grad_norm > 0.0),
        ];
        for (name, ok) in checks {
            if !ok {
                bail!("PPO config field `{name}` is out of range");
            }
        }
        if let Some(a) = self.adaptive_kl {
            if !(a.target > 0.0 && a.horizon > 0.0) {
                bail!("PPO config field `adaptive_kl` needs a positive `target` and `horizon`");
            }
        }
        Ok(())
    }
}

/// The metrics of one iteration, named as TRL and CleanRL name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoRecord {
    pub iteration: usize,
    /// Mean reward-model score of the answers (the proxy), after the missing-end penalty.
    #[serde(rename = "objective/scores")]
    pub proxy_score: f64,
    /// Mean gold-standard score of the same answers (what the proxy stands for).
    #[serde(rename = "objective/gold")]
    pub gold_score: f64,
    /// KL(π‖π_ref) per answer: the k1 estimate summed over its tokens, mean over answers.
    #[serde(rename = "objective/kl")]
    pub kl: f64,
    /// The same with the k3 estimator.
    #[serde(rename = "objective/kl_k3")]
    pub kl_k3: f64,
    /// Mean score − β·KL: what PPO maximises.
    #[serde(rename = "objective/rlhf_reward")]
    pub rlhf_reward: f64,
    /// Mean entropy of the policy per answer token (nats).
    #[serde(rename = "objective/entropy")]
    pub entropy: f64,
    /// ½·mean (log π − log π_old)² over the update: how far the update moved the policy.
    #[serde(rename = "policy/approxkl")]
    pub approx_kl: f64,
    /// Share of answer tokens where the ratio was clipped.
    #[serde(rename = "policy/clipfrac")]
    pub clip_fraction: f64,
    #[serde(rename = "loss/policy")]
    pub policy_loss: f64,
    #[serde(rename = "loss/value")]
    pub value_loss: f64,
    /// 1 − Var(R̂ − V)/Var(R̂) of the value model on this rollout.
    #[serde(rename = "val/explained_variance")]
    pub explained_variance: f64,
    /// Mean answer length in tokens (the end-of-turn token included).
    #[serde(rename = "answers/length")]
    pub answer_length: f64,
    /// Share of answers that ended with the end-of-turn token.
    #[serde(rename = "answers/ended")]
    pub ended: f64,
    /// β in force this iteration.
    pub kl_coef: f64,
    /// Answer tokens generated per second of rollout.
    #[serde(rename = "charts/generation_tokens_per_sec")]
    pub generation_tokens_per_sec: f64,
    /// Seconds spent generating, scoring (reference, reward and value models), updating.
    #[serde(rename = "time/generation")]
    pub seconds_generation: f64,
    #[serde(rename = "time/scoring")]
    pub seconds_scoring: f64,
    #[serde(rename = "time/update")]
    pub seconds_update: f64,
}

/// The policy measured on the held-out prompts during training: the same
/// prompts and dice every time, so the curve moves only when the policy does
/// (the training rollouts answer different prompts each iteration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOutRecord {
    /// Iterations done when measured (0: the starting policy).
    pub iteration: usize,
    #[serde(flatten)]
    pub evaluation: PolicyEvaluation,
    /// Seconds the measurement took (not part of the iteration's time split).
    pub seconds: f64,
}

/// An answer kept to read later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoSample {
    pub iteration: usize,
    pub prompt: String,
    /// The chat turn (ends with `<|im_end|>` when the policy ended it).
    pub answer: String,
    pub proxy_score: f64,
    pub gold_score: f64,
    /// KL of this answer (k1, summed over its tokens).
    pub kl: f64,
}

/// One answer's update, quantity by quantity (see [`PpoTrainer::step_with_anatomy`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateAnatomy {
    pub prompt: String,
    pub answer: String,
    /// The answer's tokens as text.
    pub tokens: Vec<String>,
    /// −β · KL_t at each token.
    pub kl_penalty: Vec<f64>,
    /// The reward model's score (after the missing-end penalty), added at the last token.
    pub score: f64,
    /// r_t = −β·KL_t, plus the score at the last token.
    pub rewards: Vec<f64>,
    /// V(s_t) of the value model.
    pub values: Vec<f64>,
    /// Â_t (GAE, whitened over the batch).
    pub advantages: Vec<f64>,
    /// R̂_t = GAE + V, the value targets.
    pub returns: Vec<f64>,
    /// π_new(y_t) / π_old(y_t) after the update; the clipped surrogate stops
    /// pushing a token once its ratio leaves [1 − ε, 1 + ε] in Â's direction.
    pub ratio: Vec<f64>,
    pub clip_range: f64,
}

/// Answers to a batch of prompts and everything computed about them.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub prompts: Vec<Prompt>,
    /// Chat-template ids of each prompt.
    pub query_ids: Vec<Vec<u32>>,
    /// Generated ids of each answer (the stop token included when there is one).
    pub answer_ids: Vec<Vec<u32>>,
    /// The answers as chat turns (text, then `<|im_end|>` when the policy ended it).
    pub turns: Vec<String>,
    pub ended: Vec<bool>,
    /// Per answer token, (b, T) f32, padded with 0 beyond each answer: the
    /// policy's and the reference's log-probabilities (logits / T), the value
    /// model's values, the mask (1 for answer tokens).
    pub logp: Tensor,
    pub ref_logp: Tensor,
    pub values: Tensor,
    pub mask: Tensor,
    /// The reward model's normalised score, after the missing-end penalty.
    pub scores: Vec<f64>,
    pub gold: Vec<f64>,
}

/// The per-token rewards of a rollout (b, T):
/// `r_t = −β · KL_t` on every answer token, plus the answer's score on its
/// last token — the end-of-turn token itself when the answer ended, the last
/// generated token when it was cut off. Padding gets 0.
pub fn per_token_rewards(
    logp: &Tensor,
    ref_logp: &Tensor,
    mask: &Tensor,
    scores: &[f64],
    kl_coef: f64,
    estimator: KlEstimator,
) -> Result<Tensor> {
    let kl = kl_per_token(logp, ref_logp, mask, estimator)?;
    let mut rewards: Vec<Vec<f32>> = (kl * -kl_coef)?.to_vec2()?;
    let lengths: Vec<f32> = mask.sum(1)?.to_vec1()?;
    for (r, (len, score)) in lengths.iter().zip(scores).enumerate() {
        let last = (*len as usize).saturating_sub(1);
        rewards[r][last] += *score as f32;
    }
    let (b, t) = logp.dims2()?;
    Ok(Tensor::from_vec(rewards.concat(), (b, t), logp.device())?)
}

/// The per-token KL estimate (b, T), 0 on padding: k1 = ℓ, k3 = (e^−ℓ − 1) + ℓ
/// with ℓ = log π − log π_ref.
pub fn kl_per_token(
    logp: &Tensor,
    ref_logp: &Tensor,
    mask: &Tensor,
    estimator: KlEstimator,
) -> Result<Tensor> {
    let l = (logp - ref_logp)?;
    let kl = match estimator {
        KlEstimator::K1 => l,
        KlEstimator::K3 => ((l.neg()?.exp()? - 1.0)? + &l)?,
    };
    Ok((kl * mask)?)
}

/// GAE over the answer tokens of a rollout (γ, λ), the one copy of
/// [`crate::ppo::gae`]: each answer is one episode that terminates at its last
/// token. Returns (advantages, returns), (b, T), 0 on padding.
pub fn answer_advantages(
    rewards: &Tensor,
    values: &Tensor,
    mask: &Tensor,
    gamma: f64,
    lam: f64,
) -> Result<(Tensor, Tensor)> {
    let (b, t) = rewards.dims2()?;
    let m: Vec<Vec<f32>> = mask.to_vec2()?;
    let v: Vec<Vec<f32>> = values.to_vec2()?;
    let mut next = vec![0f32; b * t];
    let mut end = vec![0f32; b * t];
    for r in 0..b {
        for k in 0..t {
            let last = k + 1 >= t || m[r][k + 1] == 0.0;
            next[r * t + k] = if last { 0.0 } else { v[r][k + 1] };
            end[r * t + k] = if last { 1.0 } else { 0.0 };
        }
    }
    let device = rewards.device();
    let tm = |x: Tensor| x.t()?.contiguous();
    let next = tm(Tensor::from_vec(next, (b, t), device)?)?;
    let end = tm(Tensor::from_vec(end, (b, t), device)?)?;
    let (r_tm, v_tm) = (tm(rewards.clone())?, tm(values.clone())?);
    let inputs = ppo::GaeInputs {
        rewards: &r_tm,
        values: &v_tm,
        next_values: &next,
        terminated: &end,
        episode_end: &end,
    };
    let ppo::Gae {
        advantages: adv,
        returns: ret,
    } = ppo::gae(&inputs, gamma, lam)?;
    Ok((
        (adv.t()?.contiguous()? * mask)?,
        (ret.t()?.contiguous()? * mask)?,
    ))
}

/// The chat-template ids of a prompt.
pub fn query_ids(lm: &LanguageModel, prompt: &Prompt) -> Result<Vec<u32>> {
    lm.tokenizer.encode(
        &lm.tokenizer
            .apply_chat_template(&[ChatMessage::user(&prompt.text)], true),
    )
}

/// What [`sample_answers`] returns, one entry per prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledAnswers {
    /// The chat-template ids of each prompt.
    pub query_ids: Vec<Vec<u32>>,
    /// The generated ids (the end-of-turn token included when it came).
    pub answer_ids: Vec<Vec<u32>>,
    /// Whether each answer ended with `<|im_end|>`.
    pub ended: Vec<bool>,
    /// Each answer as a chat turn: the text, then `<|im_end|>` when it ended.
    pub turns: Vec<String>,
}

/// Answers of `lm` to `prompts` at `temperature` (top-p 1, the KV cache, one
/// batch). Generation stops only at the end-of-turn token.
pub fn sample_answers(
    lm: &LanguageModel,
    prompts: &[Prompt],
    temperature: f64,
    max_new_tokens: usize,
    seed: u64,
) -> Result<SampledAnswers> {
    let end = lm
        .tokenizer
        .token_id(END_OF_TURN)
        .context("the tokenizer has no <|im_end|> token: the policy needs a chat template")?;
    let queries = prompts
        .iter()
        .map(|p| query_ids(lm, p))
        .collect::<Result<Vec<_>>>()?;
    let cfg = SamplingConfig {
        max_new_tokens,
        temperature,
        top_k: None,
        top_p: None,
        seed,
        stop_tokens: vec![end],
        use_kv_cache: true,
    };
    let gens =
        crate::lm::sample::generate_ids(&lm.model, &queries, lm.tokenizer.pad_id(), &[end], &cfg)?;
    let mut answers = Vec::new();
    let mut ended = Vec::new();
    let mut turns = Vec::new();
    for g in gens {
        let stopped = g.stopped;
        let body = if stopped {
            &g.new_ids[..g.new_ids.len() - 1]
        } else {
            &g.new_ids[..]
        };
        let mut turn = lm.tokenizer.decode(body, true)?.trim().to_string();
        if stopped {
            turn.push_str(END_OF_TURN);
        }
        turns.push(turn);
        ended.push(stopped);
        answers.push(g.new_ids);
    }
    Ok(SampledAnswers {
        query_ids: queries,
        answer_ids: answers,
        ended,
        turns,
    })
}

/// What a policy's answers to held-out prompts score (see [`evaluate_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvaluation {
    /// Mean reward-model score (normalised, missing-end penalty included).
    pub proxy_score: f64,
    pub gold_score: f64,
    /// Mean KL(π‖π_ref) per answer, k1 summed over its tokens.
    pub kl: f64,
    pub answer_length: f64,
    pub ended: f64,
    pub answers: usize,
}

/// The models of RLHF: the policy being trained, the frozen reference and
/// reward models, and the value model.
pub struct RlhfModels {
    pub policy: LanguageModel,
    pub reference: LanguageModel,
    pub reward: RewardModel,
    pub value: RewardModel,
}

impl RlhfModels {
    /// The usual start: the policy a copy of the SFT model, the reference the
    /// SFT model itself, the value model a copy of the reward model's trunk
    /// with a zero head (Huang et al. 2023: "value head init zero"). The
    /// reward model's own head would give every prefix of an answer the score
    /// of an unfinished answer, on the reward model's raw scale: values that
    /// are wrong from the first token, whose errors would steer the first
    /// updates. A zero critic starts every advantage at the plain return.
    pub fn new(sft: &LanguageModel, reward: &RewardModel) -> Result<Self> {
        let value = reward.deep_clone()?;
        value.zero_head()?;
        Ok(Self {
            policy: sft.deep_clone()?,
            reference: sft.frozen(),
            reward: reward.clone(),
            value,
        })
    }

    /// The start under LoRA (Hu et al. 2021): the policy is the SFT model's
    /// weights, shared and frozen, plus fresh adapters (B = 0, so π = π_ref at
    /// the first rollout); the reference is the same model with its adapters
    /// off (PEFT's `disable_adapter()`), so the base weights are held once.
    pub fn with_lora(
        sft: &LanguageModel,
        reward: &RewardModel,
        lora: &LoraConfig,
        seed: u64,
    ) -> Result<Self> {
        let value = reward.deep_clone()?;
        value.zero_head()?;
        let policy = sft.with_lora(lora, seed)?;
        Ok(Self {
            reference: policy.base_model(),
            policy,
            reward: reward.clone(),
            value,
        })
    }

    /// [`Self::new`] or [`Self::with_lora`], as `config.lora` says.
    pub fn for_config(
        sft: &LanguageModel,
        reward: &RewardModel,
        config: &RlhfPpoConfig,
    ) -> Result<Self> {
        match &config.lora {
            Some(lora) => Self::with_lora(sft, reward, lora, config.seed),
            None => Self::new(sft, reward),
        }
    }

    /// The three models a measurement of the policy reads (not the value model).
    pub fn scoring(&self) -> ScoringModels<'_> {
        ScoringModels {
            policy: &self.policy,
            reference: &self.reference,
            reward: &self.reward,
        }
    }
}

/// The models that measure a policy's answers: the policy that answers, the
/// reference its KL is measured against, and the reward model that gives the
/// proxy score (the gold standard needs no model). [`RlhfModels::scoring`]
/// borrows them from a PPO run; DPO builds them from its policy alone.
#[derive(Clone, Copy)]
pub struct ScoringModels<'a> {
    /// The policy whose answers are measured.
    pub policy: &'a LanguageModel,
    /// The reference model: the KL is KL(policy ‖ reference).
    pub reference: &'a LanguageModel,
    /// The reward model: the proxy score.
    pub reward: &'a RewardModel,
}

impl ScoringModels<'_> {
    /// The scores PPO optimises (from `source`, missing-end penalty included)
    /// and the gold scores of answer turns.
    fn score(
        &self,
        prompts: &[Prompt],
        turns: &[String],
        ended: &[bool],
        penalty: f64,
        source: RewardSource,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let gold: Vec<f64> = prompts
            .iter()
            .zip(turns)
            .map(|(p, t)| gold_score_turn(p, t))
            .collect();
        if source == RewardSource::Gold {
            // The gold score already charges an unfinished answer.
            return Ok((gold.iter().map(|g| (g - 3.5) / 1.5).collect(), gold));
        }
        let seqs = prompts
            .iter()
            .zip(turns)
            .map(|(p, t)| self.reward.encode(&p.text, t))
            .collect::<Result<Vec<_>>>()?;
        let proxy = self
            .reward
            .rewards_of_ids(&seqs, 32)?
            .into_iter()
            .zip(ended)
            .map(|(s, &e)| if e { s } else { s - penalty })
            .collect();
        Ok((proxy, gold))
    }
}

/// How [`evaluate_policy`] samples and scores a policy's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Answers sampled per prompt.
    pub samples_per_prompt: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Longest answer, in tokens.
    pub max_new_tokens: usize,
    /// Subtracted from the reward model's score of an answer that never ended.
    pub missing_eos_penalty: f64,
    /// Seed of the sampling dice (the same seed: the same dice).
    pub seed: u64,
}

/// One answer of a policy, scored: the reward model's and the gold
/// standard's verdicts and its KL from the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredTurn {
    pub prompt: String,
    /// The chat turn (ends with `<|im_end|>` when the policy ended it).
    pub turn: String,
    pub ended: bool,
    /// Answer tokens, the end-of-turn token included.
    pub length: usize,
    /// Reward-model score (normalised, missing-end penalty included).
    pub proxy_score: f64,
    pub gold_score: f64,
    /// KL(π‖π_ref) of this answer: k1 summed over its tokens.
    pub kl: f64,
}

/// How [`answer_and_score`] samples one answer per prompt and scores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerSettings {
    /// Sampling temperature.
    pub temperature: f64,
    /// Longest answer, in tokens.
    pub max_new_tokens: usize,
    /// Subtracted from the reward model's score of an answer that never ended.
    pub missing_eos_penalty: f64,
    /// Seed of the sampling dice (the same seed: the same answers).
    pub seed: u64,
}

/// One answer of `models.policy` to each prompt (one batch, the KV cache),
/// scored by the reward model and the gold standard, with its KL.
pub fn answer_and_score(
    models: ScoringModels<'_>,
    prompts: &[Prompt],
    settings: &AnswerSettings,
) -> Result<Vec<ScoredTurn>> {
    let AnswerSettings {
        temperature,
        max_new_tokens,
        missing_eos_penalty,
        seed,
    } = *settings;
    let s = sample_answers(models.policy, prompts, temperature, max_new_tokens, seed)?;
    let (proxy, gold) = models.score(
        prompts,
        &s.turns,
        &s.ended,
        missing_eos_penalty,
        RewardSource::RewardModel,
    )?;
    let qs: Vec<&Vec<u32>> = s.query_ids.iter().collect();
    let as_: Vec<&Vec<u32>> = s.answer_ids.iter().collect();
    let batch = AnswerBatch::new(
        &qs,
        &as_,
        models.policy.tokenizer.pad_id(),
        models.policy.device(),
    )?;
    let lp = batch.log_probs(models.policy, temperature)?;
    let lr = batch.log_probs(models.reference, temperature)?;
    let kl: Vec<f32> = kl_per_token(&lp, &lr, &batch.mask, KlEstimator::K1)?
        .sum(1)?
        .to_vec1()?;
    Ok((0..prompts.len())
        .map(|i| ScoredTurn {
            prompt: prompts[i].text.clone(),
            turn: s.turns[i].clone(),
            ended: s.ended[i],
            length: s.answer_ids[i].len(),
            proxy_score: proxy[i],
            gold_score: gold[i],
            kl: kl[i] as f64,
        })
        .collect())
}

/// Sample `settings.samples_per_prompt` answers per prompt from
/// `models.policy` and measure them ([`answer_and_score`] in batches of 32):
/// mean proxy and gold scores, KL to the reference, length and share ended.
pub fn evaluate_policy(
    models: ScoringModels<'_>,
    prompts: &[Prompt],
    settings: &EvalSettings,
) -> Result<PolicyEvaluation> {
    let mut turns = Vec::new();
    for round in 0..settings.samples_per_prompt {
        for (k, chunk) in prompts.chunks(32).enumerate() {
            let seed = seed_for(
                settings.seed,
                Stream::PolicyEvaluation,
                (round * 7919 + k) as u64,
            );
            let answer = AnswerSettings {
                temperature: settings.temperature,
                max_new_tokens: settings.max_new_tokens,
                missing_eos_penalty: settings.missing_eos_penalty,
                seed,
            };
            turns.extend(answer_and_score(models, chunk, &answer)?);
        }
    }
    let n = turns.len();
    let mean = |f: fn(&ScoredTurn) -> f64| turns.iter().map(f).sum::<f64>() / n.max(1) as f64;
    Ok(PolicyEvaluation {
        proxy_score: mean(|t| t.proxy_score),
        gold_score: mean(|t| t.gold_score),
        kl: mean(|t| t.kl),
        answer_length: mean(|t| t.length as f64),
        ended: mean(|t| f64::from(u8::from(t.ended))),
        answers: n,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PpoState {
    config: RlhfPpoConfig,
    iteration: usize,
    kl_coef: f64,
    history: Vec<PpoRecord>,
    samples: Vec<PpoSample>,
    #[serde(default)]
    held_out: Vec<HeldOutRecord>,
}

/// PPO of a language model against a reward model, driven one iteration at a
/// time ([`Self::step`] returns the iteration's record), as the gridworld
/// trainer is.
pub struct PpoTrainer {
    pub config: RlhfPpoConfig,
    pub models: RlhfModels,
    /// The prompts answered during training (in a fresh order each pass).
    pub prompts: Vec<Prompt>,
    pub iteration: usize,
    /// β in force now (changes with the adaptive controller).
    pub kl_coef: f64,
    pub history: Vec<PpoRecord>,
    pub samples: Vec<PpoSample>,
    /// Held-out prompts measured every `config.eval_every` iterations (none: no measurements).
    pub eval_prompts: Vec<Prompt>,
    /// Those measurements, the starting policy's first.
    pub held_out: Vec<HeldOutRecord>,
    policy_optimizer: AdamW,
    value_optimizer: AdamW,
}

impl PpoTrainer {
    /// A trainer for `models` on `prompts` (the preference data's training prompts).
    pub fn new(models: RlhfModels, prompts: Vec<Prompt>, config: RlhfPpoConfig) -> Result<Self> {
        config.validate()?;
        crate::allocator::keep_freed_memory();
        if config.lora.is_some() != models.policy.lora().is_some() {
            bail!(
                "the PPO config {} `lora` but the policy {} adapters: build the models with RlhfModels::for_config",
                if config.lora.is_some() { "sets" } else { "does not set" },
                if models.policy.lora().is_some() { "has" } else { "has no" }
            );
        }
        let distinct = config.prompts_per_iteration / config.samples_per_prompt;
        if prompts.len() < distinct {
            bail!(
                "PPO needs at least prompts_per_iteration / samples_per_prompt ({distinct}) prompts, got {}",
                prompts.len()
            );
        }
        let adam = |vars, lr| {
            AdamW::with_groups(
                ParamGroup::decay_matrices_only(vars, 0.0),
                AdamConfig {
                    learning_rate: lr,
                    eps: 1e-5,
                    ..AdamConfig::default()
                },
            )
        };
        let policy_optimizer = adam(models.policy.trainable_vars(), config.learning_rate)?;
        let value_optimizer = adam(models.value.vars(), config.value_learning_rate)?;
        Ok(Self {
            kl_coef: config.kl_coef,
            config,
            models,
            prompts,
            iteration: 0,
            history: Vec::new(),
            samples: Vec::new(),
            eval_prompts: Vec::new(),
            held_out: Vec::new(),
            policy_optimizer,
            value_optimizer,
        })
    }

    /// The prompts of iteration `it`: consecutive slices of a shuffle of the
    /// prompts, a fresh shuffle each pass (a function of the iteration, so a
    /// resumed run sees the same prompts), each repeated `samples_per_prompt`
    /// times in a row.
    pub fn prompt_batch(&self, it: usize) -> Vec<Prompt> {
        let n = self.prompts.len();
        let m = self.config.prompts_per_iteration / self.config.samples_per_prompt;
        let per_pass = (n / m).max(1);
        let (pass, k) = (it / per_pass, it % per_pass);
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed_for(
            self.config.seed,
            Stream::PpoPromptPass,
            pass as u64,
        ))
        .shuffle(&mut order);
        order[k * m..(k + 1) * m]
            .iter()
            .flat_map(|&i| {
                std::iter::repeat_n(self.prompts[i].clone(), self.config.samples_per_prompt)
            })
            .collect()
    }

    /// Collect a rollout: answers, log-probabilities, values and scores.
    pub fn rollout(&self, prompts: Vec<Prompt>, seed: u64) -> Result<(Rollout, f64, f64)> {
        let c = &self.config;
        let m = &self.models;
        let t0 = Instant::now();
        let SampledAnswers {
            query_ids,
            answer_ids,
            ended,
            turns,
        } = sample_answers(&m.policy, &prompts, c.temperature, c.max_new_tokens, seed)?;
        let generation = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let qs: Vec<&Vec<u32>> = query_ids.iter().collect();
        let as_: Vec<&Vec<u32>> = answer_ids.iter().collect();
        let batch = AnswerBatch::new(&qs, &as_, m.policy.tokenizer.pad_id(), m.policy.device())?;
        let logp = batch.log_probs(&m.policy, c.temperature)?;
        let ref_logp = batch.log_probs(&m.reference, c.temperature)?;
        let values = batch.values(&m.value)?;
        let (scores, gold) =
            m.scoring()
                .score(&prompts, &turns, &ended, c.missing_eos_penalty, c.reward)?;
        let scoring = t1.elapsed().as_secs_f64();
        Ok((
            Rollout {
                prompts,
                query_ids,
                answer_ids,
                turns,
                ended,
                logp: logp.detach(),
                ref_logp: ref_logp.detach(),
                values: values.detach(),
                mask: batch.mask,
                scores,
                gold,
            },
            generation,
            scoring,
        ))
    }

    /// One PPO iteration: a rollout of the next prompts, then `ppo_epochs`
    /// passes of minibatch updates. Returns the iteration's record.
    pub fn step(&mut self) -> Result<PpoRecord> {
        Ok(self.iterate(false)?.0)
    }

    /// [`Self::step`], also returning every quantity of the update for the
    /// first answer of the batch: "what is the policy loss in RLHF?".
    pub fn step_with_anatomy(&mut self) -> Result<(PpoRecord, UpdateAnatomy)> {
        let (record, anatomy) = self.iterate(true)?;
        Ok((record, anatomy.expect("asked for")))
    }

    fn iterate(&mut self, explain: bool) -> Result<(PpoRecord, Option<UpdateAnatomy>)> {
        let c = self.config.clone();
        let it = self.iteration;
        if self.held_out.is_empty() && self.evaluates() {
            self.measure_held_out()?;
        }
        let seed = seed_for(c.seed, Stream::PpoRollout, it as u64);
        let (ro, seconds_generation, seconds_scoring) =
            self.rollout(self.prompt_batch(it), seed)?;

        // Per-token rewards, advantages and returns.
        let rewards = per_token_rewards(
            &ro.logp,
            &ro.ref_logp,
            &ro.mask,
            &ro.scores,
            self.kl_coef,
            c.kl_estimator,
        )?;
        let (adv, returns) = answer_advantages(&rewards, &ro.values, &ro.mask, c.gamma, c.lam)?;
        let adv = ppo::whiten(&adv, Some(&ro.mask))?;
        let explained_variance = ppo::explained_variance(&ro.values, &returns, Some(&ro.mask))?;
        let mut anatomy = if explain {
            Some(self.anatomy_before(&ro, &rewards, &adv, &returns)?)
        } else {
            None
        };

        // The update.
        let t2 = Instant::now();
        let b = ro.prompts.len();
        let mut order: Vec<usize> = (0..b).collect();
        let mut rng = Rng::new(seed ^ 0x5EED);
        let (mut pl, mut vl, mut ent, mut akl, mut cf, mut count) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for _ in 0..c.ppo_epochs {
            rng.shuffle(&mut order);
            for mb in order.chunks(c.minibatch_size) {
                let rows = Tensor::from_vec(
                    mb.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    mb.len(),
                    ro.mask.device(),
                )?;
                let qs: Vec<&Vec<u32>> = mb.iter().map(|&i| &ro.query_ids[i]).collect();
                let as_: Vec<&Vec<u32>> = mb.iter().map(|&i| &ro.answer_ids[i]).collect();
                let batch = AnswerBatch::new(
                    &qs,
                    &as_,
                    self.models.policy.tokenizer.pad_id(),
                    ro.mask.device(),
                )?;
                let t = batch.t;
                let pick = |x: &Tensor| -> Result<Tensor> {
                    Ok(x.index_select(&rows, 0)?.narrow(1, 0, t)?.contiguous()?)
                };
                let (old_logp, mb_adv, mb_ret, old_v) = (
                    pick(&ro.logp)?,
                    pick(&adv)?,
                    pick(&returns)?,
                    pick(&ro.values)?,
                );
                let (new_logp, entropy) =
                    batch.log_probs_and_entropy(&self.models.policy, c.temperature)?;
                let new_v = batch.values(&self.models.value)?;
                let (loss, info) = ppo::minibatch_loss(
                    &ppo::MinibatchLoss {
                        new_logp: &new_logp,
                        old_logp: &old_logp,
                        advantages: &mb_adv,
                        entropy: &entropy,
                        value: Some(ppo::ValueTerms {
                            new_values: &new_v,
                            old_values: &old_v,
                            returns: &mb_ret,
                            clip_eps: Some(c.value_clip_range),
                        }),
                        mask: Some(&batch.mask),
                    },
                    ppo::PolicyLoss::Clipped {
                        clip_eps: c.clip_range,
                    },
                    0.0,
                    c.vf_coef,
                )?;
                optimize_each(
                    &loss,
                    &mut [&mut self.policy_optimizer, &mut self.value_optimizer],
                    c.max_grad_norm,
                )
                .with_context(|| format!("PPO iteration {}", it + 1))?;
                let log_ratio = ((&new_logp - &old_logp)? * &batch.mask)?;
                akl += 0.5 * scalar(&ppo::masked_mean(&log_ratio.sqr()?, Some(&batch.mask))?)?;
                cf += ppo::clip_fraction(&new_logp, &old_logp, c.clip_range, Some(&batch.mask))?;
                pl += info.policy_loss;
                vl += info.value_loss;
                ent += info.entropy;
                count += 1.0;
            }
        }
        let seconds_update = t2.elapsed().as_secs_f64();
        if let Some(a) = anatomy.as_mut() {
            // The ratio π_new / π_old of answer 0's tokens after the update.
            let batch = AnswerBatch::new(
                &[&ro.query_ids[0]],
                &[&ro.answer_ids[0]],
                self.models.policy.tokenizer.pad_id(),
                ro.mask.device(),
            )?;
            let new_logp = batch.log_probs(&self.models.policy, c.temperature)?;
            let new: Vec<f32> = new_logp.squeeze(0)?.to_vec1()?;
            let old: Vec<f32> = ro.logp.get(0)?.to_vec1()?;
            a.ratio = new
                .iter()
                .zip(&old)
                .take(a.tokens.len())
                .map(|(n, o)| ((n - o) as f64).exp())
                .collect();
        }

        // Metrics.
        let n = b as f64;
        let kl1: Vec<f32> = kl_per_token(&ro.logp, &ro.ref_logp, &ro.mask, KlEstimator::K1)?
            .sum(1)?
            .to_vec1()?;
        let kl3: Vec<f32> = kl_per_token(&ro.logp, &ro.ref_logp, &ro.mask, KlEstimator::K3)?
            .sum(1)?
            .to_vec1()?;
        let kl = kl1.iter().map(|&x| x as f64).sum::<f64>() / n;
        let proxy = ro.scores.iter().sum::<f64>() / n;
        let tokens: usize = ro.answer_ids.iter().map(Vec::len).sum();
        self.iteration += 1;
        let record = PpoRecord {
            iteration: self.iteration,
            proxy_score: proxy,
            gold_score: ro.gold.iter().sum::<f64>() / n,
            kl,
            kl_k3: kl3.iter().map(|&x| x as f64).sum::<f64>() / n,
            rlhf_reward: proxy - self.kl_coef * kl,
            entropy: ent / count,
            approx_kl: akl / count,
            clip_fraction: cf / count,
            policy_loss: pl / count,
            value_loss: vl / count,
            explained_variance,
            answer_length: tokens as f64 / n,
            ended: ro.ended.iter().filter(|&&e| e).count() as f64 / n,
            kl_coef: self.kl_coef,
            generation_tokens_per_sec: tokens as f64 / seconds_generation.max(1e-9),
            seconds_generation,
            seconds_scoring,
            seconds_update,
        };
        if let Some(a) = c.adaptive_kl {
            let error = (kl / a.target - 1.0).clamp(-0.2, 0.2);
            self.kl_coef *= 1.0 + error * n / a.horizon;
        }
        if c.sample_every > 0 && (self.iteration == 1 || self.iteration % c.sample_every == 0) {
            // One answer to each of the first four prompts.
            let every = c.samples_per_prompt;
            for (i, kl) in kl1.iter().enumerate().step_by(every).take(4) {
                self.samples.push(PpoSample {
                    iteration: self.iteration,
                    prompt: ro.prompts[i].text.clone(),
                    answer: ro.turns[i].clone(),
                    proxy_score: ro.scores[i],
                    gold_score: ro.gold[i],
                    kl: *kl as f64,
                });
            }
        }
        self.history.push(record.clone());
        let due = self.iteration % c.eval_every.max(1) == 0 || self.iteration == c.iterations;
        if self.evaluates() && due {
            self.measure_held_out()?;
        }
        Ok((record, anatomy))
    }

    /// Measure the policy every `config.eval_every` iterations on `prompts`
    /// (the preference data's test prompts: PPO never trains on them).
    pub fn evaluate_on(mut self, prompts: Vec<Prompt>) -> Self {
        self.eval_prompts = prompts;
        self
    }

    fn evaluates(&self) -> bool {
        self.config.eval_every > 0 && !self.eval_prompts.is_empty()
    }

    /// Measure the policy now on the held-out prompts and keep the record.
    pub fn measure_held_out(&mut self) -> Result<HeldOutRecord> {
        let c = &self.config;
        let t = Instant::now();
        let evaluation = evaluate_policy(
            self.models.scoring(),
            &self.eval_prompts,
            &c.eval_settings(),
        )?;
        let record = HeldOutRecord {
            iteration: self.iteration,
            evaluation,
            seconds: t.elapsed().as_secs_f64(),
        };
        self.held_out.push(record);
        Ok(record)
    }

    /// Everything about answer 0 of a rollout before the update.
    fn anatomy_before(
        &self,
        ro: &Rollout,
        rewards: &Tensor,
        adv: &Tensor,
        returns: &Tensor,
    ) -> Result<UpdateAnatomy> {
        let n = ro.answer_ids[0].len();
        let row = |t: &Tensor| -> Result<Vec<f64>> {
            let v: Vec<f32> = t.get(0)?.to_vec1()?;
            Ok(v.into_iter().take(n).map(f64::from).collect())
        };
        let kl = kl_per_token(&ro.logp, &ro.ref_logp, &ro.mask, self.config.kl_estimator)?;
        let tok = &self.models.policy.tokenizer;
        Ok(UpdateAnatomy {
            prompt: ro.prompts[0].text.clone(),
            answer: ro.turns[0].clone(),
            tokens: ro.answer_ids[0]
                .iter()
                .map(|&id| tok.decode(&[id], false))
                .collect::<Result<_>>()?,
            kl_penalty: row(&kl)?.into_iter().map(|k| -self.kl_coef * k).collect(),
            score: ro.scores[0],
            rewards: row(rewards)?,
            values: row(&ro.values)?,
            advantages: row(adv)?,
            returns: row(returns)?,
            ratio: Vec::new(),
            clip_range: self.config.clip_range,
        })
    }

    /// Run iterations until `config.iterations`.
    pub fn train(&mut self) -> Result<()> {
        self.train_with(|_| {})
    }

    /// [`Self::train`], calling `on_record` with every iteration's record.
    pub fn train_with(&mut self, mut on_record: impl FnMut(&PpoRecord)) -> Result<()> {
        while self.iteration < self.config.iterations {
            let r = self.step()?;
            on_record(&r);
        }
        Ok(())
    }

    /// Save the policy (`policy/`, Hugging Face format), the value model
    /// (`value/`), the optimiser and the trainer state to `dir`, atomically
    /// (written beside it, then swapped in).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        use crate::io::checkpoint::OPTIMIZER;
        crate::io::write_dir_atomic(dir, |tmp| {
            self.models.policy.save(&tmp.join("policy"))?;
            self.models.value.save(&tmp.join("value"))?;
            self.policy_optimizer
                .save_state(&tmp.join(format!("policy_{OPTIMIZER}")))?;
            self.value_optimizer
                .save_state(&tmp.join(format!("value_{OPTIMIZER}")))?;
            let state = PpoState {
                config: self.config.clone(),
                iteration: self.iteration,
                kl_coef: self.kl_coef,
                history: self.history.clone(),
                samples: self.samples.clone(),
                held_out: self.held_out.clone(),
            };
            crate::io::write_trainer_state(tmp, &state)
        })
    }

    /// Continue from a checkpoint written by [`Self::save_checkpoint`], with
    /// the same reference and reward models and prompts. `config.iterations`
    /// can be raised afterwards.
    pub fn resume(
        dir: &Path,
        reference: &LanguageModel,
        reward: &RewardModel,
        prompts: Vec<Prompt>,
    ) -> Result<Self> {
        let dir = crate::io::checkpoint_to_resume(dir)?;
        let state: PpoState = crate::io::read_trainer_state(&dir, "a PPO trainer state")?;
        let device = reference.device().clone();
        let policy = LanguageModel::load(&dir.join("policy"), &device, DType::F32)?;
        // Under LoRA the checkpoint holds the adapters and names the base: the
        // reference is that base, adapters off.
        let reference = match policy.lora() {
            Some(_) => policy.base_model(),
            None => reference.clone(),
        };
        let models = RlhfModels {
            policy,
            reference,
            reward: reward.clone(),
            value: RewardModel::load(&dir.join("value"), &device)?,
        };
        let mut t = Self::new(models, prompts, state.config)?;
        use crate::io::checkpoint::OPTIMIZER;
        t.policy_optimizer
            .load_state_file(&dir.join(format!("policy_{OPTIMIZER}")))?;
        t.value_optimizer
            .load_state_file(&dir.join(format!("value_{OPTIMIZER}")))?;
        t.iteration = state.iteration;
        t.kl_coef = state.kl_coef;
        t.history = state.history;
        t.samples = state.samples;
        t.held_out = state.held_out;
        Ok(t)
    }

    /// The history as CSV and JSONL in `dir` (`metrics.csv`, `metrics.jsonl`).
    pub fn write_metrics(&self, dir: &Path) -> Result<()> {
        crate::metrics::write_metrics(dir, &self.history)
    }

    /// The record's numbers by metric name.
    pub fn metrics(record: &PpoRecord) -> Result<Metrics> {
        Ok(crate::metrics::flatten(record)?
            .into_iter()
            .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
            .collect())
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The training prompts of the preference data (PPO's prompts, as TRL uses
/// the reward model's prompts without their answers).
pub fn training_prompts(data: &PreferenceData) -> Vec<Prompt> {
    data.prompts.train.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t2(rows: &[&[f32]]) -> Tensor {
        Tensor::from_vec(rows.concat(), (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
    }

    fn v2(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2().unwrap()
    }

    /// Two answers: the first ended after 3 tokens (its 3rd token is
    /// `<|im_end|>`), the second was cut off after 2 (padding after). β = 0.1,
    /// ℓ = log π − log π_ref per token. The score goes on the last real token
    /// of each answer — the end-of-turn token itself, not the padding after
    /// it — and the cut-off answer's score already carries the missing-end
    /// penalty (1.5 − 1.0 = 0.5), as `RlhfModels::score` applies it.
    #[test]
    fn per_token_rewards_by_hand() {
        let logp = t2(&[&[-1.0, -2.0, -0.5], &[-1.0, -1.0, 0.0]]);
        let ref_logp = t2(&[&[-1.5, -2.0, -0.25], &[-0.5, -1.0, 0.0]]);
        let mask = t2(&[&[1.0, 1.0, 1.0], &[1.0, 1.0, 0.0]]);
        let r = per_token_rewards(
            &logp,
            &ref_logp,
            &mask,
            &[2.0, 1.5 - 1.0],
            0.1,
            KlEstimator::K1,
        )
        .unwrap();
        // Row 0: ℓ = [0.5, 0, −0.25] → −βℓ = [−0.05, 0, 0.025], + 2 on token 3.
        // Row 1: ℓ = [−0.5, 0, (pad)] → [0.05, 0], + 0.5 on token 2; padding 0.
        let want = [[-0.05, 0.0, 2.025], [0.05, 0.5, 0.0]];
        for (got, want) in v2(&r).iter().zip(want) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{:?}", v2(&r));
            }
        }
        // k3 = (e^−ℓ − 1) + ℓ is never negative.
        let k3 = kl_per_token(&logp, &ref_logp, &mask, KlEstimator::K3).unwrap();
        let k3 = v2(&k3);
        assert!(k3.iter().flatten().all(|&x| x >= 0.0));
        assert!((k3[0][0] - ((-0.5f32).exp() - 1.0 + 0.5)).abs() < 1e-6);
    }

    /// γ = 1, λ = 0.5 over one answer of 3 tokens, values [1, 2, 3], rewards
    /// [0, 0, 4]: δ = [0 + 2 − 1, 0 + 3 − 2, 4 − 3] = [1, 1, 1];
    /// Â₂ = 1, Â₁ = 1 + 0.5·1 = 1.5, Â₀ = 1 + 0.5·1.5 = 1.75; R̂ = Â + V.
    /// The padded second answer (1 token) gets Â = r − V there and 0 after.
    #[test]
    fn answer_advantages_by_hand() {
        let rewards = t2(&[&[0.0, 0.0, 4.0], &[2.0, 0.0, 0.0]]);
        let values = t2(&[&[1.0, 2.0, 3.0], &[0.5, 0.0, 0.0]]);
        let mask = t2(&[&[1.0, 1.0, 1.0], &[1.0, 0.0, 0.0]]);
        let (adv, ret) = answer_advantages(&rewards, &values, &mask, 1.0, 0.5).unwrap();
        let (adv, ret) = (v2(&adv), v2(&ret));
        for (g, w) in adv[0].iter().zip([1.75, 1.5, 1.0]) {
            assert!((g - w).abs() < 1e-6, "{adv:?}");
        }
        for (g, w) in ret[0].iter().zip([2.75, 3.5, 4.0]) {
            assert!((g - w).abs() < 1e-6, "{ret:?}");
        }
        assert_eq!(adv[1], vec![1.5, 0.0, 0.0]);
    }

    /// With the policy equal to the reference, every per-token KL is 0 and the
    /// probability ratio of the first update is 1 (so nothing is clipped).
    #[test]
    fn policy_equal_to_reference_has_zero_kl() {
        let tok = crate::lm::TextTokenizer::train_bpe(
            ["What pet does Mia have? Mia has a cat."]
                .iter()
                .cycle()
                .take(20),
            300,
        )
        .unwrap();
        let cfg = crate::lm::LlamaConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            ..crate::lm::LlamaConfig::tiny(tok.vocab_size())
        };
        let lm = LanguageModel::new_random(cfg, tok, 1, &Device::Cpu, DType::F32).unwrap();
        let reference = lm.deep_clone().unwrap();
        let q = lm.tokenizer.encode("What pet does Mia have?").unwrap();
        let a = lm.tokenizer.encode(" Mia has a cat.").unwrap();
        let b = lm.tokenizer.encode(" a cat").unwrap();
        let batch = AnswerBatch::new(&[&q, &q], &[&a, &b], 0, &Device::Cpu).unwrap();
        let lp = batch.log_probs(&lm, 0.7).unwrap();
        let lr = batch.log_probs(&reference, 0.7).unwrap();
        let kl = kl_per_token(&lp, &lr, &batch.mask, KlEstimator::K1).unwrap();
        assert!(v2(&kl).iter().flatten().all(|&x| x == 0.0));
        let ratio = (&lp - &lr).unwrap().exp().unwrap();
        assert!(v2(&ratio).iter().flatten().all(|&x| x == 1.0));
        assert_eq!(
            ppo::clip_fraction(&lp, &lr, 0.2, Some(&batch.mask)).unwrap(),
            0.0
        );
        // Log-probabilities at T = 0.7 are those of logits / 0.7, on the
        // answer tokens only, 0 on padding.
        let mask = v2(&batch.mask);
        let want: Vec<f32> = (0..a.len())
            .map(|i| if i < b.len() { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(mask[1], want);
        assert!(v2(&lp)[1][b.len()..].iter().all(|&x| x == 0.0));
    }

    /// Padding never counts: changing the advantages, log-probabilities or
    /// values at padded positions leaves the minibatch loss unchanged.
    #[test]
    fn masked_losses_ignore_padding() {
        let mask = t2(&[&[1.0, 1.0, 0.0]]);
        let loss = |pad: f32| {
            let new = t2(&[&[-1.0, -0.5, pad]]);
            let old = t2(&[&[-1.2, -0.5, -pad]]);
            let adv = t2(&[&[1.0, -1.0, 10.0 * pad]]);
            let (v, v_old, ret) = (
                t2(&[&[0.5, 0.2, pad]]),
                t2(&[&[0.4, 0.1, 0.0]]),
                t2(&[&[1.0, 0.0, -pad]]),
            );
            let entropy = Tensor::new(0.0f32, &Device::Cpu).unwrap();
            let (l, _) = ppo::minibatch_loss(
                &ppo::MinibatchLoss {
                    new_logp: &new,
                    old_logp: &old,
                    advantages: &adv,
                    entropy: &entropy,
                    value: Some(ppo::ValueTerms {
                        new_values: &v,
                        old_values: &v_old,
                        returns: &ret,
                        clip_eps: Some(0.2),
                    }),
                    mask: Some(&mask),
                },
                ppo::PolicyLoss::Clipped { clip_eps: 0.2 },
                0.0,
                0.1,
            )
            .unwrap();
            l.to_scalar::<f32>().unwrap()
        };
        assert_eq!(loss(0.0), loss(7.0));
    }
}
