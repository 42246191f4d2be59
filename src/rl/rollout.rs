//! Steps 1 and 2 of every iteration: play the current policy in N environments
//! for T steps (CleanRL's rollout phase), then turn the rewards into advantages
//! Â and return targets R (GAE from [`crate::ppo::gae`], the one copy shared
//! with the language-model PPO).

use super::trainer::GridworldTrainer;
use crate::ppo;
use anyhow::Result;
use candle_core::{Device, Tensor, D};
use candle_nn::Module;
use gridworld::Action;
use serde::{Deserialize, Serialize};

/// An episode that began at the start cell and ended during a rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FinishedEpisode {
    /// Sum of its rewards.
    pub total_reward: f64,
    /// Its discounted return Σ γ^t r_t.
    pub discounted_return: f64,
    /// Its number of steps.
    pub length: usize,
}

/// One rollout of N environments × T steps, time-major.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub states: Vec<usize>,
    pub actions: Vec<u32>,
    /// log π_old(a|s) of the actions taken.
    pub logp: Vec<f32>,
    /// V_old(s) of the states seen.
    pub values: Vec<f32>,
    pub rewards: Vec<f32>,
    /// V_old of the state each step led to (before any reset).
    pub next_values: Vec<f32>,
    /// 1 where the step reached a terminal state (no bootstrap).
    pub terminated: Vec<f32>,
    /// 1 where the episode ended, by termination or truncation.
    pub episode_end: Vec<f32>,
    /// Every episode that began at the start cell and ended in this rollout.
    pub finished: Vec<FinishedEpisode>,
}

/// How the advantage Â_t in the policy gradient `E[∇ log π(a_t|s_t) Â_t]` is formed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AdvantageEstimator {
    /// Â_t = G_t, the Monte-Carlo return (REINFORCE, no critic).
    MonteCarlo,
    /// Â_t = G_t − V(s_t) with the learned critic as baseline.
    MonteCarloBaseline,
    /// Â_t = GAE(γ, λ) with the learned critic.
    Gae(f64),
}

impl AdvantageEstimator {
    /// Whether the critic's values enter (else V ≡ 0), and GAE's λ: the
    /// Monte-Carlo estimators are GAE with λ = 1.
    fn critic_and_lambda(self) -> (bool, f64) {
        match self {
            AdvantageEstimator::MonteCarlo => (false, 1.0),
            AdvantageEstimator::MonteCarloBaseline => (true, 1.0),
            AdvantageEstimator::Gae(lambda) => (true, lambda),
        }
    }
}

/// A rollout with its advantages and returns, flattened to N·T entries as
/// tensors: what the update samples minibatches from.
pub(crate) struct Batch {
    /// State index of each transition (u32), to look up its observation.
    pub states: Tensor,
    pub actions: Tensor,
    /// log π_old(a|s).
    pub logp: Tensor,
    /// V_old(s).
    pub values: Tensor,
    pub advantages: Tensor,
    pub returns: Tensor,
}

impl Batch {
    /// `rollout` with its advantages and returns, as tensors on `device`.
    pub fn new(
        rollout: &Rollout,
        advantages: &[f32],
        returns: &[f32],
        device: &Device,
    ) -> Result<Self> {
        let n = rollout.states.len();
        let states: Vec<u32> = rollout.states.iter().map(|&s| s as u32).collect();
        Ok(Self {
            states: Tensor::from_vec(states, n, device)?,
            actions: Tensor::from_slice(&rollout.actions, n, device)?,
            logp: Tensor::from_slice(&rollout.logp, n, device)?,
            values: Tensor::from_slice(&rollout.values, n, device)?,
            advantages: Tensor::from_slice(advantages, n, device)?,
            returns: Tensor::from_slice(returns, n, device)?,
        })
    }

    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.actions.dims1().unwrap_or(0)
    }
}

impl GridworldTrainer {
    /// Play `config.num_steps` steps in every environment with the current policy.
    pub(crate) fn collect_rollout(&mut self) -> Result<Rollout> {
        let probs: Vec<Vec<f32>> =
            candle_nn::ops::softmax(&self.policy_logits()?, D::Minus1)?.to_vec2()?;
        let values: Vec<f32> = self.value.forward(&self.all_obs)?.squeeze(1)?.to_vec1()?;
        let (n, t_len) = (self.config.num_envs, self.config.num_steps);
        let gamma = self.gamma();
        let mut r = Rollout {
            states: Vec::with_capacity(n * t_len),
            actions: Vec::with_capacity(n * t_len),
            logp: Vec::with_capacity(n * t_len),
            values: Vec::with_capacity(n * t_len),
            rewards: Vec::with_capacity(n * t_len),
            next_values: Vec::with_capacity(n * t_len),
            terminated: Vec::with_capacity(n * t_len),
            episode_end: Vec::with_capacity(n * t_len),
            finished: Vec::new(),
        };
        // Per environment: the discounted return of its current episode so far, and γ^t.
        let mut disc = std::mem::take(&mut self.episode_discount);
        disc.resize(n, (0.0, 1.0));
        let start = self.world.start_state();
        let mut states = self.envs.states();
        for _ in 0..t_len {
            let mut actions = Vec::with_capacity(n);
            for &s in &states {
                let w: Vec<f64> = probs[s].iter().map(|&p| p as f64).collect();
                let a = self.rng.categorical(&w);
                r.states.push(s);
                r.actions.push(a as u32);
                r.logp.push(probs[s][a].max(1e-30).ln());
                r.values.push(values[s]);
                actions.push(Action::from_index(a));
            }
            let st = self.envs.step(&actions);
            for i in 0..n {
                r.rewards.push(st.rewards[i] as f32);
                r.next_values.push(values[st.final_states[i]]);
                r.terminated.push(st.terminated[i] as u8 as f32);
                let end = st.terminated[i] || st.truncated[i];
                r.episode_end.push(end as u8 as f32);
                let (g, k) = &mut disc[i];
                *g += *k * st.rewards[i];
                *k *= gamma;
                if let Some(ep) = st.finished[i] {
                    if ep.start == start {
                        r.finished.push(FinishedEpisode {
                            total_reward: ep.total_reward,
                            discounted_return: *g,
                            length: ep.length,
                        });
                    }
                    disc[i] = (0.0, 1.0);
                }
            }
            states = st.states;
        }
        self.episode_discount = disc;
        self.global_step += n * t_len;
        Ok(r)
    }

    /// Advantages and returns `(Â, R)` of a rollout, time-major like it, by
    /// `estimator`.
    pub(crate) fn advantages(
        &self,
        r: &Rollout,
        estimator: AdvantageEstimator,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (use_critic, lambda) = estimator.critic_and_lambda();
        let (n, t_len) = (self.config.num_envs, self.config.num_steps);
        let d = &self.device;
        let mk = |v: &[f32]| Tensor::from_slice(v, (t_len, n), d);
        let zeros = vec![0f32; n * t_len];
        let (values, next_values) = if use_critic {
            (mk(&r.values)?, mk(&r.next_values)?)
        } else {
            (mk(&zeros)?, mk(&zeros)?)
        };
        let (rewards, terminated, episode_end) =
            (mk(&r.rewards)?, mk(&r.terminated)?, mk(&r.episode_end)?);
        let inputs = ppo::GaeInputs {
            rewards: &rewards,
            values: &values,
            next_values: &next_values,
            terminated: &terminated,
            episode_end: &episode_end,
        };
        let ppo::Gae {
            advantages: adv,
            returns: ret,
        } = ppo::gae(&inputs, self.gamma(), lambda)?;
        Ok((adv.flatten_all()?.to_vec1()?, ret.flatten_all()?.to_vec1()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::PpoConfig;
    use gridworld::solve::{policy_evaluation, SolveOptions};
    use gridworld::GridWorld;

    /// The rollout, termination/truncation handling and GAE with λ = 1 must give
    /// Monte-Carlo targets whose mean per state equals the exact V^π of the (fixed,
    /// untrained) policy, computed by policy evaluation.
    #[test]
    fn monte_carlo_targets_match_exact_policy_value() {
        let world = GridWorld::load("aima").unwrap();
        let cfg = PpoConfig {
            num_envs: 16,
            num_steps: 400,
            exploring_starts: 1.0,
            total_timesteps: 6400,
            // No truncation: V^π is the infinite-horizon value.
            max_episode_steps: Some(1_000_000),
            ..Default::default()
        };
        let mut t = GridworldTrainer::new(world.clone(), cfg).unwrap();
        let probs = t.policy_probabilities().unwrap();
        let (v_pi, _) = policy_evaluation(&world, &probs, SolveOptions::default());
        let (mut sum, mut count) = (vec![0.0; world.n_states()], vec![0usize; world.n_states()]);
        for _ in 0..100 {
            let r = t.collect_rollout().unwrap();
            let (_, ret) = t.advantages(&r, AdvantageEstimator::MonteCarlo).unwrap();
            // Without a critic the last steps of each environment are cut off by the
            // rollout's end; use only the first half of the rollout.
            for (k, (&s, &g)) in r.states.iter().zip(&ret).enumerate() {
                if k / 16 < 200 {
                    sum[s] += g as f64;
                    count[s] += 1;
                }
            }
        }
        for s in world.reachable_states() {
            let mean = sum[s] / count[s] as f64;
            // ~20k correlated samples per state: the standard error is about 0.01.
            assert!(
                (mean - v_pi[s]).abs() < 0.05,
                "{:?}: MC {mean:.3} vs V^pi {:.3} ({} samples)",
                world.cell_of(s),
                v_pi[s],
                count[s]
            );
        }
    }
}
