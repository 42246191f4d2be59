//! Online (iterative) DPO: each round, the pairs are the policy's own fresh
//! answers, labelled by a judge — the reward model, or the gold standard —
//! instead of a fixed set of comparisons written by other systems.
//!
//! Offline DPO only moves the probability of the text in its pairs; when most
//! of that text is text the policy never writes, the policy's own answers
//! barely change (rung 8's finding). Sampling the pairs from the current
//! policy puts the loss where the policy's probability mass is (Guo et al.
//! 2024, "Direct language model alignment from online AI feedback"; Xiong et
//! al. 2024, iterative DPO with a reward model as the labeller; Rafailov et al.
//! 2023 §6 already sample the pairs from the SFT model). Taking the best and
//! the worst of k answers by the judge gives the clearest pair per prompt
//! (Pace et al. 2024; Xu et al. 2023):
//!
//! ```text
//! π ← SFT model; π_ref ← SFT model (frozen)
//! for round in 0..rounds:
//!     for each training prompt x: y_1 … y_k ~ π(·|x)            (T = 1)
//!     s_i = judge(x, y_i)                 reward model (or gold standard)
//!     pair (x, y_c = argmax s, y_r = argmin s), where the scores differ
//!     log π_ref of every new answer, once                       DpoData
//!     one pass of DPO over the round's pairs                    lm::Trainer
//! ```
//!
//! One optimiser and one learning-rate schedule run across all rounds; the
//! reference stays the SFT model, so the KL that β constrains is always
//! measured from the same place, and the held-out measurements are those of
//! offline DPO and PPO.

use super::dpo::DpoData;
use super::ppo::sample_answers;
use super::reward_model::RewardModel;
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::gold_score_turn;
use crate::feedback::records::{Comparison, Winner};
use crate::lm::train::BatchSource;
use crate::lm::LanguageModel;
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// Who labels the policy's answers in online DPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnlineJudge {
    /// The reward model (rung 6): the RLHF pipeline, judged later by gold.
    #[default]
    RewardModel,
    /// The gold standard itself: the oracle a perfect labeller would be.
    Gold,
}

impl std::str::FromStr for OnlineJudge {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reward-model" | "rm" => Ok(Self::RewardModel),
            "gold" => Ok(Self::Gold),
            other => bail!("unknown judge `{other}`: use `reward-model` (or `rm`) or `gold`"),
        }
    }
}

/// The online part of a DPO run (`DpoConfig::online`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineDpoConfig {
    /// Rounds of sample → label → one pass of DPO.
    pub rounds: usize,
    /// Answers sampled per training prompt each round (k); the pair is the best and the worst.
    pub answers_per_prompt: usize,
    /// `reward-model` or `gold`.
    pub judge: OnlineJudge,
}

impl Default for OnlineDpoConfig {
    fn default() -> Self {
        Self {
            rounds: 3,
            answers_per_prompt: 4,
            judge: OnlineJudge::RewardModel,
        }
    }
}

impl OnlineDpoConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            bail!("DPO config field `online.rounds` must be at least 1");
        }
        if self.answers_per_prompt < 2 {
            bail!(
                "DPO config field `online.answers_per_prompt` must be at least 2 (a pair), got {}",
                self.answers_per_prompt
            );
        }
        Ok(())
    }
}

/// What one round of online DPO sampled and labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineRound {
    pub round: usize,
    /// The update the round's pairs started at.
    pub first_step: usize,
    /// Prompts whose best and worst answers scored differently (the round's pairs).
    pub pairs: usize,
    /// Answers sampled.
    pub answers: usize,
    /// Mean judge score of all answers, of the chosen and of the rejected ones.
    pub judge_mean: f64,
    pub judge_chosen: f64,
    pub judge_rejected: f64,
    /// Mean gold score of all answers, of the chosen and of the rejected ones.
    pub gold_mean: f64,
    pub gold_chosen: f64,
    pub gold_rejected: f64,
    /// Seconds sampling and labelling, and computing the new answers' reference log-probs.
    pub sample_seconds: f64,
    pub reference_seconds: f64,
}

/// A round's pairs and their statistics.
pub struct RoundPairs {
    pub comparisons: Vec<Comparison>,
    pub round: OnlineRound,
}

/// Sample `answers_per_prompt` answers of `policy` to each prompt, score them
/// with the judge, and pair the best with the worst (prompts whose answers all
/// score the same give no pair). `missing_eos_penalty` is subtracted from the
/// reward model's score of an answer that never ended, as in PPO.
#[allow(clippy::too_many_arguments)]
pub fn label_own_answers(
    policy: &LanguageModel,
    reward: &RewardModel,
    prompts: &[Prompt],
    online: &OnlineDpoConfig,
    temperature: f64,
    max_new_tokens: usize,
    missing_eos_penalty: f64,
    seed: u64,
) -> Result<RoundPairs> {
    let started = std::time::Instant::now();
    let k = online.answers_per_prompt;
    // answers[p] = (turn, judge score, gold score) of prompt p's k answers.
    let mut answers: Vec<Vec<(String, f64, f64)>> = vec![Vec::with_capacity(k); prompts.len()];
    for sample in 0..k {
        for (chunk_index, chunk) in prompts.chunks(32).enumerate() {
            let dice = seed_for(
                seed,
                Stream::OnlineDpoAnswer,
                (sample * 7919 + chunk_index) as u64,
            );
            let s = sample_answers(policy, chunk, temperature, max_new_tokens, dice)?;
            let gold: Vec<f64> = chunk
                .iter()
                .zip(&s.turns)
                .map(|(p, t)| gold_score_turn(p, t))
                .collect();
            let judge = match online.judge {
                OnlineJudge::Gold => gold.clone(),
                OnlineJudge::RewardModel => {
                    let ids = chunk
                        .iter()
                        .zip(&s.turns)
                        .map(|(p, t)| reward.encode(&p.text, t))
                        .collect::<Result<Vec<_>>>()?;
                    reward
                        .rewards_of_ids(&ids, 32)?
                        .into_iter()
                        .zip(&s.ended)
                        .map(|(r, &e)| if e { r } else { r - missing_eos_penalty })
                        .collect()
                }
            };
            for (i, turn) in s.turns.into_iter().enumerate() {
                answers[chunk_index * 32 + i].push((turn, judge[i], gold[i]));
            }
        }
    }
    let mut comparisons = Vec::new();
    let (mut chosen_judge, mut rejected_judge, mut chosen_gold, mut rejected_gold) =
        (0.0, 0.0, 0.0, 0.0);
    for (p, a) in prompts.iter().zip(&answers) {
        let by_judge = |x: &&(String, f64, f64), y: &&(String, f64, f64)| x.1.total_cmp(&y.1);
        let (Some(best), Some(worst)) = (a.iter().max_by(by_judge), a.iter().min_by(by_judge))
        else {
            continue;
        };
        if best.1 <= worst.1 || best.0 == worst.0 {
            continue;
        }
        chosen_judge += best.1;
        rejected_judge += worst.1;
        chosen_gold += best.2;
        rejected_gold += worst.2;
        comparisons.push(Comparison {
            prompt_id: p.id.clone(),
            prompt: p.text.clone(),
            response_a: best.0.clone(),
            response_b: worst.0.clone(),
            system_a: "policy".into(),
            system_b: "policy".into(),
            winner: Winner::A,
            annotator: match online.judge {
                OnlineJudge::RewardModel => "reward-model".into(),
                OnlineJudge::Gold => "gold".into(),
            },
            time: 0,
        });
    }
    let n = comparisons.len().max(1) as f64;
    let all: Vec<&(String, f64, f64)> = answers.iter().flatten().collect();
    let m = all.len().max(1) as f64;
    Ok(RoundPairs {
        round: OnlineRound {
            round: 0,
            first_step: 0,
            pairs: comparisons.len(),
            answers: all.len(),
            judge_mean: all.iter().map(|a| a.1).sum::<f64>() / m,
            judge_chosen: chosen_judge / n,
            judge_rejected: rejected_judge / n,
            gold_mean: all.iter().map(|a| a.2).sum::<f64>() / m,
            gold_chosen: chosen_gold / n,
            gold_rejected: rejected_gold / n,
            sample_seconds: started.elapsed().as_secs_f64(),
            reference_seconds: 0.0,
        },
        comparisons,
    })
}

/// A round's [`DpoData`] seen by the trainer from update `first_step` on:
/// update `first_step + i` is the round's batch `i` (one pass over its pairs
/// in a fresh shuffle), whatever the round's number of pairs.
pub struct RoundSource<'a> {
    pub data: &'a DpoData,
    pub first_step: usize,
}

impl BatchSource for RoundSource<'_> {
    type Batch = super::dpo::DpoBatch;

    fn train_batch(&self, step: usize, device: &Device) -> Result<Self::Batch> {
        self.data
            .train_batch(step.saturating_sub(self.first_step), device)
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<Self::Batch>> {
        self.data.eval_batches(device)
    }
}
