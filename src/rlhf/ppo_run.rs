//! A finished PPO run on disk: what `rlhf-lab ppo --out DIR` writes and a
//! notebook reads back.
//!
//! | file | holds |
//! |---|---|
//! | `summary.json` | [`PpoSummary`]: held-out scores before and after, the alignment tax, time split, config |
//! | `metrics.jsonl` (and `metrics.csv`) | one [`PpoRecord`] per iteration |
//! | `samples.json` | the [`PpoSample`] answers kept during training |
//! | `held_out.jsonl` | [`HeldOutRecord`]s: the policy measured on the held-out prompts during training |
//! | `policy/` | the final policy, Hugging Face layout (not read here: [`crate::lm::LanguageModel::load`]) |

use super::ppo::{
    HeldOutRecord, PolicyEvaluation, PpoRecord, PpoSample, PpoTrainer, RlhfPpoConfig,
};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `datasets/ppo-runs/<name>`: a run made once with `rlhf-lab ppo` and
/// committed (its folder minus the checkpoint), for results that need more
/// iterations than a notebook's CPU budget; `datasets/README.md` gives each
/// run's command.
pub fn recorded_run_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/ppo-runs")
        .join(name)
}

/// One number measured before and after training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    pub before: f64,
    pub after: f64,
}

/// Mean seconds per PPO iteration spent in each phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeSplit {
    /// Sampling the answers (the KV-cached rollout).
    pub generation: f64,
    /// Reference, reward and value models on the finished answers.
    pub scoring: f64,
    /// The PPO epochs: forward, backward and optimiser steps.
    pub update: f64,
}

impl TimeSplit {
    /// The mean over the iterations of `history` (zeros for an empty one).
    pub fn mean_of(history: &[PpoRecord]) -> Self {
        let n = history.len().max(1) as f64;
        let mean = |f: fn(&PpoRecord) -> f64| history.iter().map(f).sum::<f64>() / n;
        Self {
            generation: mean(|r| r.seconds_generation),
            scoring: mean(|r| r.seconds_scoring),
            update: mean(|r| r.seconds_update),
        }
    }

    pub fn total(&self) -> f64 {
        self.generation + self.scoring + self.update
    }
}

/// What a run achieved, as `summary.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoSummary {
    /// The starting policy on the held-out prompts.
    pub before: PolicyEvaluation,
    /// The trained policy on the same prompts.
    pub after: PolicyEvaluation,
    /// Next-token loss on held-out pre-training text: the alignment tax is `after − before`.
    pub held_out_corpus_loss: BeforeAfter,
    pub iterations: usize,
    /// Wall-clock seconds of the training iterations (evaluations excluded).
    pub seconds: f64,
    pub seconds_per_iteration: TimeSplit,
    /// Mean rollout speed, answer tokens per second.
    pub generation_tokens_per_sec: f64,
    pub config: RlhfPpoConfig,
}

impl PpoSummary {
    /// The summary of `trainer`'s run from its history and the measurements around it.
    pub fn new(
        trainer: &PpoTrainer,
        before: PolicyEvaluation,
        after: PolicyEvaluation,
        held_out_corpus_loss: BeforeAfter,
        seconds: f64,
    ) -> Self {
        let n = trainer.history.len().max(1) as f64;
        Self {
            before,
            after,
            held_out_corpus_loss,
            iterations: trainer.iteration,
            seconds,
            seconds_per_iteration: TimeSplit::mean_of(&trainer.history),
            generation_tokens_per_sec: trainer
                .history
                .iter()
                .map(|r| r.generation_tokens_per_sec)
                .sum::<f64>()
                / n,
            config: trainer.config.clone(),
        }
    }
}

/// A run read back from its folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoRun {
    pub summary: PpoSummary,
    /// One record per iteration.
    pub history: Vec<PpoRecord>,
    pub samples: Vec<PpoSample>,
    /// Measurements on the held-out prompts (empty for a run made without them).
    pub held_out: Vec<HeldOutRecord>,
}

impl PpoRun {
    /// The run `trainer` has made, with its summary.
    pub fn of_trainer(trainer: &PpoTrainer, summary: PpoSummary) -> Self {
        Self {
            summary,
            history: trainer.history.clone(),
            samples: trainer.samples.clone(),
            held_out: trainer.held_out.clone(),
        }
    }

    /// Read `summary.json`, `metrics.jsonl` and `samples.json` from `dir`;
    /// errors name the file (and the line of a bad record).
    pub fn read(dir: &Path) -> Result<Self> {
        let json = |name: &str| -> Result<String> {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (is this an `rlhf-lab ppo --out` folder?)",
                    path.display()
                )
            })
        };
        let summary = serde_json::from_str(&json("summary.json")?).with_context(|| {
            format!("{}: not a PPO summary", dir.join("summary.json").display())
        })?;
        let samples = serde_json::from_str(&json("samples.json")?)
            .with_context(|| format!("{}: not PPO samples", dir.join("samples.json").display()))?;
        let history = crate::io::read_jsonl(&dir.join("metrics.jsonl"))?;
        let held_out_path = dir.join("held_out.jsonl");
        let held_out = if held_out_path.exists() {
            crate::io::read_jsonl(&held_out_path)?
        } else {
            Vec::new()
        };
        Ok(Self {
            summary,
            history,
            samples,
            held_out,
        })
    }

    /// Write the run's files into `dir` (created if missing), each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::io::write_json_atomic(&dir.join("summary.json"), &self.summary)?;
        crate::io::write_json_atomic(&dir.join("samples.json"), &self.samples)?;
        let held_out = crate::metrics::to_jsonl(&self.held_out)?;
        let path = dir.join("held_out.jsonl");
        crate::io::write_atomic(&path, held_out.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        crate::metrics::write_metrics(dir, &self.history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(iteration: usize) -> PpoRecord {
        PpoRecord {
            iteration,
            proxy_score: -0.25,
            gold_score: 3.5,
            kl: 0.125 * iteration as f64,
            kl_k3: 0.1,
            rlhf_reward: -0.3,
            entropy: 0.4,
            approx_kl: 0.002,
            clip_fraction: 0.01,
            policy_loss: -0.02,
            value_loss: 0.3,
            explained_variance: 0.5,
            answer_length: 24.0,
            ended: 0.9375,
            kl_coef: 0.05,
            generation_tokens_per_sec: 1000.0,
            seconds_generation: 0.5,
            seconds_scoring: 0.25,
            seconds_update: 3.0,
        }
    }

    #[test]
    fn a_written_run_reads_back_equal_and_a_bad_line_is_named() {
        let evaluation = PolicyEvaluation {
            proxy_score: -0.2,
            gold_score: 3.4,
            kl: 0.0,
            answer_length: 23.5,
            ended: 0.95,
            answers: 240,
        };
        let history = vec![record(1), record(2)];
        let run = PpoRun {
            summary: PpoSummary {
                before: evaluation,
                after: PolicyEvaluation {
                    gold_score: 3.6,
                    kl: 0.5,
                    ..evaluation
                },
                held_out_corpus_loss: BeforeAfter {
                    before: 2.5,
                    after: 2.625,
                },
                iterations: 2,
                seconds: 7.5,
                seconds_per_iteration: TimeSplit::mean_of(&history),
                generation_tokens_per_sec: 1000.0,
                config: RlhfPpoConfig::default(),
            },
            history,
            samples: vec![PpoSample {
                iteration: 2,
                prompt: "What does Sam like to eat?".into(),
                answer: "Soup.<|im_end|>".into(),
                proxy_score: 1.0,
                gold_score: 5.0,
                kl: 0.25,
            }],
            held_out: vec![HeldOutRecord {
                iteration: 0,
                evaluation,
                seconds: 1.5,
            }],
        };
        assert_eq!(run.summary.seconds_per_iteration.total(), 3.75);
        let dir = std::env::temp_dir().join(format!("rlhf-ppo-run-{}", std::process::id()));
        run.write(&dir).unwrap();
        assert_eq!(PpoRun::read(&dir).unwrap(), run);

        let metrics = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics).unwrap();
        std::fs::write(&metrics, text.replacen("\"objective/gold\"", "\"gold\"", 2)).unwrap();
        let err = format!("{:#}", PpoRun::read(&dir).unwrap_err());
        assert!(err.contains("metrics.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = format!("{:#}", PpoRun::read(&dir).unwrap_err());
        assert!(err.contains("summary.json"), "{err}");
    }
}
