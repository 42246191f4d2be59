//! Step 3 of every iteration: the update. Epochs of shuffled minibatches, each
//! one optimiser step on the loss of [`crate::ppo::minibatch_loss`] (CleanRL's
//! "optimizing the policy and value network" loop). The four algorithms differ
//! only in the few settings of [`UpdateRule`]; the loop is the same.

use super::config::{Algorithm, PpoConfig};
use super::rollout::{AdvantageEstimator, Batch};
use super::trainer::GridworldTrainer;
use crate::nn::named_vars;
use crate::optim::optimize;
use crate::ppo;
use anyhow::Result;
use candle_core::{DType, Tensor};
use candle_nn::Module;
use std::collections::HashMap;

/// What the critic contributes to the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CriticLoss {
    /// No critic (REINFORCE): no value loss.
    None,
    /// ½·mean(V − R)², unclipped (REINFORCE with a baseline).
    Plain,
    /// PPO's value loss, clipped to V_old ± `clip` when set.
    Clipped { clip: Option<f64> },
}

/// How one algorithm updates: PPO, and REINFORCE as the variation with one
/// step on the whole rollout, the plain policy gradient and no clipping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UpdateRule {
    /// How the advantages are formed.
    pub advantages: AdvantageEstimator,
    /// Passes over the rollout.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Clipped surrogate (PPO) or vanilla policy gradient (REINFORCE).
    pub policy_loss: ppo::PolicyLoss,
    /// Whiten the advantages of each minibatch.
    pub whiten_advantages: bool,
    pub critic: CriticLoss,
}

impl UpdateRule {
    /// The rule of `config.algorithm`.
    pub fn of(config: &PpoConfig) -> Self {
        match config.algorithm {
            Algorithm::Ppo => Self {
                advantages: AdvantageEstimator::Gae(config.gae_lambda),
                epochs: config.update_epochs,
                minibatches: config.num_minibatches,
                policy_loss: ppo::PolicyLoss::Clipped {
                    clip_eps: config.clip_coef,
                },
                whiten_advantages: config.norm_adv,
                critic: CriticLoss::Clipped {
                    clip: config.clip_vloss.then_some(config.clip_coef),
                },
            },
            Algorithm::PpoNoCritic => Self {
                advantages: AdvantageEstimator::MonteCarlo,
                critic: CriticLoss::None,
                ..Self::of(&PpoConfig {
                    algorithm: Algorithm::Ppo,
                    ..config.clone()
                })
            },
            Algorithm::Reinforce => Self {
                advantages: AdvantageEstimator::MonteCarlo,
                epochs: 1,
                minibatches: 1,
                policy_loss: ppo::PolicyLoss::Vanilla,
                whiten_advantages: false,
                critic: CriticLoss::None,
            },
            Algorithm::ReinforceBaseline => Self {
                advantages: AdvantageEstimator::MonteCarloBaseline,
                epochs: 1,
                minibatches: 1,
                policy_loss: ppo::PolicyLoss::Vanilla,
                whiten_advantages: false,
                critic: CriticLoss::Plain,
            },
        }
    }
}

/// Sums over the minibatches of one update, for the iteration's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct UpdateStats {
    /// Optimiser steps taken.
    pub steps: usize,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

impl UpdateStats {
    /// The mean over the steps of one of the sums.
    pub fn mean(&self, sum: f64) -> f64 {
        sum / self.steps as f64
    }
}

/// How far the update moved the policy on the rollout's own transitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PolicyShift {
    /// KL(π_old ‖ π_new) estimates k1 and k3 (Schulman 2020).
    pub approx_kl_k1: f64,
    pub approx_kl_k3: f64,
    /// Share of transitions whose ratio lies outside [1 − ε, 1 + ε].
    pub clip_fraction: f64,
}

impl GridworldTrainer {
    /// Epochs of shuffled minibatches of `batch`, one optimiser step each,
    /// stopping early once the k3 KL passes `config.target_kl`.
    pub(crate) fn update(&mut self, batch: &Batch, rule: &UpdateRule) -> Result<UpdateStats> {
        let cfg = self.config.clone();
        let ent_coef = self.entropy_coefficient();
        let n = batch.len();
        let mb_size = n / rule.minibatches;
        let mut idx: Vec<u32> = (0..n as u32).collect();
        let mut stats = UpdateStats::default();
        'epochs: for _ in 0..rule.epochs {
            self.rng.shuffle(&mut idx);
            for mb in idx.chunks(mb_size).filter(|c| c.len() == mb_size) {
                let mb = Tensor::from_slice(mb, mb.len(), &self.device)?;
                let obs = self
                    .all_obs
                    .index_select(&batch.states.index_select(&mb, 0)?, 0)?;
                let actions = batch.actions.index_select(&mb, 0)?;
                let old_logp = batch.logp.index_select(&mb, 0)?;
                let mut advantages = batch.advantages.index_select(&mb, 0)?;
                if rule.whiten_advantages {
                    advantages = ppo::whiten(&advantages, None)?;
                }
                let returns = batch.returns.index_select(&mb, 0)?;

                let logits = self.policy.forward(&obs)?;
                let new_logp = ppo::log_prob_of(&logits, &actions)?;
                let entropy = ppo::entropy(&logits, None)?;
                let (new_values, old_values, clip_eps) = match rule.critic {
                    CriticLoss::None => (None, None, None),
                    CriticLoss::Plain => {
                        let v = self.value.forward(&obs)?.squeeze(1)?;
                        // No clipping: the "old" values are the new ones.
                        (Some(v.clone()), Some(v), None)
                    }
                    CriticLoss::Clipped { clip } => (
                        Some(self.value.forward(&obs)?.squeeze(1)?),
                        Some(batch.values.index_select(&mb, 0)?),
                        clip,
                    ),
                };
                let value = match (&new_values, &old_values) {
                    (Some(new_values), Some(old_values)) => Some(ppo::ValueTerms {
                        new_values,
                        old_values,
                        returns: &returns,
                        clip_eps,
                    }),
                    _ => None,
                };
                let (loss, info) = ppo::minibatch_loss(
                    &ppo::MinibatchLoss {
                        new_logp: &new_logp,
                        old_logp: &old_logp,
                        advantages: &advantages,
                        entropy: &entropy,
                        value,
                        mask: None,
                    },
                    rule.policy_loss,
                    ent_coef,
                    cfg.vf_coef,
                )?;
                let step = optimize(&loss, &mut self.optimizer, cfg.max_grad_norm)?;
                stats.steps += 1;
                stats.policy_loss += info.policy_loss;
                stats.value_loss += info.value_loss;
                stats.entropy += info.entropy;
                stats.grad_norm += step.grad_norm;

                if let Some(target) = cfg.target_kl {
                    let new_logp = ppo::log_prob_of(&self.policy.forward(&obs)?, &actions)?;
                    if ppo::approx_kl(&new_logp, &old_logp, None)?.1 > target {
                        break 'epochs;
                    }
                }
            }
        }
        Ok(stats)
    }

    /// KL and clip fraction of the whole update, on the whole rollout.
    pub(crate) fn policy_shift(&self, batch: &Batch) -> Result<PolicyShift> {
        let obs = self.all_obs.index_select(&batch.states, 0)?;
        let new_logp = ppo::log_prob_of(&self.policy.forward(&obs)?, &batch.actions)?;
        let (approx_kl_k1, approx_kl_k3) = ppo::approx_kl(&new_logp, &batch.logp, None)?;
        Ok(PolicyShift {
            approx_kl_k1,
            approx_kl_k3,
            clip_fraction: ppo::clip_fraction(&new_logp, &batch.logp, self.config.clip_coef, None)?,
        })
    }

    /// Gradients of one PPO loss on a fresh rollout, by variable name (for tests and
    /// teaching: every trainable variable should receive a finite, non-zero gradient).
    pub fn probe_gradients(&mut self) -> Result<HashMap<String, Tensor>> {
        let rollout = self.collect_rollout()?;
        let (adv, ret) =
            self.advantages(&rollout, AdvantageEstimator::Gae(self.config.gae_lambda))?;
        let batch = Batch::new(&rollout, &adv, &ret, &self.device)?;
        let obs = self.all_obs.index_select(&batch.states, 0)?;
        let logits = self.policy.forward(&obs)?;
        let new_logp = ppo::log_prob_of(&logits, &batch.actions)?;
        // Perturb the old log-probabilities so that the ratio is not exactly 1.
        let old_logp = (&batch.logp - 0.05)?;
        let adv = ppo::whiten(&batch.advantages, None)?;
        let pg =
            ppo::clipped_surrogate_loss(&new_logp, &old_logp, &adv, self.config.clip_coef, None)?;
        let new_v = self.value.forward(&obs)?.squeeze(1)?;
        let vl = ppo::value_loss(
            &new_v,
            &batch.values,
            &batch.returns,
            Some(self.config.clip_coef),
            None,
        )?;
        let loss = ((pg - (ppo::entropy(&logits, None)? * 0.01)?)? + vl)?;
        let grads = loss.backward()?;
        let mut out = HashMap::new();
        for (name, var) in named_vars(self.varmap()) {
            if let Some(g) = grads.get(&var) {
                out.insert(name, g.clone());
            }
        }
        Ok(out)
    }

    /// Policy-gradient estimate (flattened over the policy network's variables) of
    /// one fresh rollout, with advantages from `estimator`. Used by
    /// [`super::gradient_variance`].
    pub(crate) fn policy_gradient_sample(
        &mut self,
        estimator: AdvantageEstimator,
    ) -> Result<Vec<f64>> {
        let rollout = self.collect_rollout()?;
        let (adv, ret) = self.advantages(&rollout, estimator)?;
        let batch = Batch::new(&rollout, &adv, &ret, &self.device)?;
        let obs = self.all_obs.index_select(&batch.states, 0)?;
        let logp = ppo::log_prob_of(&self.policy.forward(&obs)?, &batch.actions)?;
        let loss = ppo::policy_gradient_loss(&logp, &batch.advantages, None)?;
        let grads = loss.backward()?;
        let mut flat = Vec::new();
        for (name, var) in named_vars(self.varmap()) {
            if name.starts_with("policy.") {
                if let Some(g) = grads.get(&var) {
                    flat.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
                }
            }
        }
        Ok(flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridworld::GridWorld;

    #[test]
    fn ppo_without_a_critic_differs_from_ppo_only_in_the_critic() {
        let config = PpoConfig::default();
        let ppo = UpdateRule::of(&config);
        let no_critic = UpdateRule::of(&PpoConfig {
            algorithm: Algorithm::PpoNoCritic,
            ..config
        });
        assert_eq!(no_critic.advantages, AdvantageEstimator::MonteCarlo);
        assert_eq!(no_critic.critic, CriticLoss::None);
        assert_eq!(
            UpdateRule {
                advantages: ppo.advantages,
                critic: ppo.critic,
                ..no_critic
            },
            ppo
        );
    }

    /// Without a critic the value network receives no gradient: its weights stay
    /// at their initial values, while the policy's move.
    #[test]
    fn ppo_without_a_critic_never_trains_the_value_network() {
        let world = GridWorld::load("dragon").unwrap();
        let config = PpoConfig {
            algorithm: Algorithm::PpoNoCritic,
            ..PpoConfig::default()
        };
        let mut trainer = GridworldTrainer::new(world, config).unwrap();
        let weights = |t: &GridworldTrainer, prefix: &str| -> Vec<f32> {
            named_vars(t.varmap())
                .into_iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .flat_map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        let (value_before, policy_before) =
            (weights(&trainer, "value."), weights(&trainer, "policy."));
        assert!(!value_before.is_empty() && !policy_before.is_empty());
        trainer.train_iterations(2).unwrap();
        assert_eq!(weights(&trainer, "value."), value_before);
        assert_ne!(weights(&trainer, "policy."), policy_before);
    }
}
