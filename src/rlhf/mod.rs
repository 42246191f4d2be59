//! Rungs 6 and up: reinforcement learning from human feedback proper, built on
//! the language model ([`crate::lm`]) and the feedback ([`crate::feedback`]).
//!
//! | module | job |
//! |---|---|
//! | [`preferences`] | preference data about the SFT model's own answers (rung 6) |
//! | [`losses`] | preference losses: Bradley–Terry pairs, regression, DPO / IPO |
//! | [`reward_model`] | the reward model: trunk + scalar head, HF `LlamaForSequenceClassification` |
//! | [`reward_training`] | its three objectives (bt, elo, robust) and held-out metrics |
//! | [`reward_probe`] | a linear head on frozen features: objectives compared cheaply |
//! | [`reward_analysis`] | reward vs gold, calibration, what the reward model over-values |
//! | [`answer_batch`] | prompt ⊕ answer batches and their per-token log-probs (PPO, DPO) |
//! | [`ppo`] | rung 7: KL-constrained PPO of the language model against the reward model |
//! | [`ppo_run`] | a finished PPO run on disk (summary, metrics, samples), read back |
//! | [`dpo`] | rung 8: Direct Preference Optimization on the comparisons (no reward model, no sampling) |
//! | [`online_dpo`] | rung 8: online DPO — pairs of the policy's own answers, labelled each round by the reward model or the gold standard |
//! | [`best_of_n`] | best-of-n sampling, the no-training baseline |
//! | [`overoptimization`] | Gao et al.'s gold-vs-√KL forms, fitted |
//! | [`plots`] | the figures of notebooks 06 and 07 |
//! | [`speed`] | the reward model's training speed, the third shape of [`crate::lm::speed`] |

pub mod answer_batch;
pub mod best_of_n;
pub mod dpo;
pub mod judge;
pub mod losses;
pub mod online_dpo;
pub mod overoptimization;
pub mod plots;
pub mod ppo;
pub mod ppo_run;
pub mod preferences;
pub mod reward_analysis;
pub mod reward_model;
pub mod reward_probe;
pub mod reward_training;
pub mod speed;

pub use preferences::{PreferenceConfig, PreferenceData, Response, Splits};
pub use reward_model::{RewardModel, RewardNormalization, SequenceBatch};
pub use reward_training::{
    PairMetrics, RewardData, RewardDataConfig, RewardObjective, RewardObjectiveKind,
};
