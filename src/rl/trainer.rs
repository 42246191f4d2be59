use super::config::{Algorithm, PpoConfig};
use super::metrics::IterationMetrics;
use crate::nn::{named_vars, Mlp};
use crate::optim::{optimize, AdamConfig, AdamW};
use crate::ppo;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, VarMap};
use gridworld::solve::{
    expected_return, policy_agreement, policy_evaluation, policy_table, Solution, SolveOptions,
};
use gridworld::{Action, GridWorld, Rng, VecEnv, VecEnvSnapshot};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_values: Vec<f32>,
    pub terminated: Vec<f32>,
    pub episode_end: Vec<f32>,
    /// Every episode that began at the start cell and ended in this rollout.
    pub finished: Vec<FinishedEpisode>,
}

/// The largest approximate KL (k3, nats) one update may move the policy
/// before [`GridworldTrainer`] calls the run diverged. PPO's updates move it
/// by about 0.01 (the clipped objective keeps ratios near [0.8, 1.2]).
pub const MAX_UPDATE_KL: f64 = 10.0;

/// Actions whose Q* is within this of the best count as optimal.
const OPTIMAL_ACTION_TOLERANCE: f64 = 1e-6;
/// The solved bar: share of reachable states with an optimal greedy action...
const SOLVED_AGREEMENT: f64 = 0.95;
/// ...and the greedy return within this fraction of V*(start).
const SOLVED_RETURN_TOLERANCE: f64 = 0.02;

/// The solved bar of the issue and the tests.
fn meets_solved_bar(agreement: f64, greedy_return: f64, optimal_return: f64) -> bool {
    agreement >= SOLVED_AGREEMENT
        && (greedy_return - optimal_return).abs() <= SOLVED_RETURN_TOLERANCE * optimal_return.abs()
}

/// How the learned agent compares with the exact solution of the map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruthReport {
    /// Share of reachable non-terminal states where the greedy policy takes an optimal action.
    pub policy_agreement: f64,
    /// Exact expected discounted return of the greedy policy from the start.
    pub greedy_return: f64,
    /// Exact expected return of the stochastic policy from the start.
    pub stochastic_return: f64,
    /// V*(start).
    pub optimal_return: f64,
    /// RMSE of the value network against V* over reachable non-terminal states.
    pub value_rmse_vs_optimal: f64,
    /// RMSE of the value network against V^π of its own (stochastic) policy, the
    /// quantity the critic is actually trained to predict.
    pub value_rmse_vs_own_policy: f64,
}

impl GroundTruthReport {
    /// The test suite's bar: ≥ 95% agreement and greedy return within 2% of V*(start).
    pub fn solved(&self) -> bool {
        meets_solved_bar(
            self.policy_agreement,
            self.greedy_return,
            self.optimal_return,
        )
    }
}

/// Saved alongside the weights: everything else needed to resume exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: PpoConfig,
    map_text: String,
    iteration: usize,
    global_step: usize,
    rng: Rng,
    envs: VecEnvSnapshot,
    episode_discount: Vec<(f64, f64)>,
    metrics: Vec<IterationMetrics>,
}

/// A policy network and a value network learning a gridworld.
pub struct GridworldTrainer {
    /// Hyper-parameters; may be changed between calls to `train_iterations`.
    pub config: PpoConfig,
    world: Arc<GridWorld>,
    envs: VecEnv,
    device: Device,
    varmap: VarMap,
    policy: Mlp,
    value: Mlp,
    optimizer: AdamW,
    rng: Rng,
    /// Encodings of every state, `[n_states, obs_dim]`.
    all_obs: Tensor,
    iteration: usize,
    global_step: usize,
    /// Per environment: the running discounted return of its current episode and γ^t.
    episode_discount: Vec<(f64, f64)>,
    metrics: Vec<IterationMetrics>,
}

impl GridworldTrainer {
    /// A fresh agent on the CPU.
    pub fn new(world: GridWorld, config: PpoConfig) -> Result<Self> {
        Self::new_on(world, config, Device::Cpu)
    }

    /// A fresh agent on `device`.
    pub fn new_on(world: GridWorld, config: PpoConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let world = Arc::new(world);
        let mut rng = Rng::new(config.seed);
        let obs_dim = config.encoding.dim(&world);
        let varmap = VarMap::new();
        let mut sizes = vec![obs_dim];
        sizes.extend(&config.hidden_sizes);
        let policy = Mlp::new(
            &varmap,
            "policy",
            &[sizes.clone(), vec![world.n_actions()]].concat(),
            Default::default(),
            0.01,
            &mut rng,
            &device,
        )?;
        let value = Mlp::new(
            &varmap,
            "value",
            &[sizes, vec![1]].concat(),
            Default::default(),
            1.0,
            &mut rng,
            &device,
        )?;
        let vars = named_vars(&varmap);
        let optimizer = AdamW::new(
            vars,
            AdamConfig {
                lr: config.learning_rate,
                eps: 1e-5,
                ..Default::default()
            },
        )?;
        let max_steps = config
            .max_episode_steps
            .unwrap_or(world.map.params.max_steps);
        let mut envs = VecEnv::new(world.clone(), config.num_envs, rng.next_u64())
            .with_max_steps(max_steps)
            .with_exploring_starts(config.exploring_starts);
        envs.reset();
        let all: Vec<usize> = (0..world.n_states()).collect();
        let all_obs = Tensor::from_vec(
            config.encoding.encode_batch(&world, &all),
            (all.len(), obs_dim),
            &device,
        )?;
        Ok(Self {
            config,
            world,
            envs,
            device,
            varmap,
            policy,
            value,
            optimizer,
            rng,
            all_obs,
            iteration: 0,
            global_step: 0,
            episode_discount: Vec::new(),
            metrics: Vec::new(),
        })
    }

    /// The world being learned.
    pub fn world(&self) -> &GridWorld {
        &self.world
    }

    /// Metrics of every iteration so far.
    pub fn metrics(&self) -> &[IterationMetrics] {
        &self.metrics
    }

    /// Environment steps taken.
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// Iterations done.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// All trainable variables by name (`policy.0.weight`, …, `value.2.bias`).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The entropy coefficient in force now (schedule × reward scale).
    pub fn entropy_coefficient(&self) -> f64 {
        let scale = if self.config.entropy_in_reward_units {
            reward_scale(&self.world)
        } else {
            1.0
        };
        self.config.ent_coef_at(self.iteration.max(1)) * scale
    }

    fn gamma(&self) -> f64 {
        self.config.gamma.unwrap_or(self.world.gamma())
    }

    /// Policy logits for every state, `[n_states, 4]`.
    pub fn policy_logits(&self) -> Result<Tensor> {
        Ok(self.policy.forward(&self.all_obs)?)
    }

    /// π(a|s) for every state: `[n_states, 4]`.
    pub fn policy_probabilities(&self) -> Result<Array2<f64>> {
        let p = candle_nn::ops::softmax(&self.policy_logits()?, D::Minus1)?.to_dtype(DType::F64)?;
        let rows: Vec<Vec<f64>> = p.to_vec2()?;
        let n = rows.len();
        Ok(Array2::from_shape_vec((n, 4), rows.concat())?)
    }

    /// The most probable action in every state.
    pub fn greedy_policy(&self) -> Result<Vec<Action>> {
        let p = self.policy_probabilities()?;
        Ok(gridworld::solve::greedy_policy(&p))
    }

    /// The value network's V(s) for every state.
    pub fn value_table(&self) -> Result<Vec<f64>> {
        let v = self
            .value
            .forward(&self.all_obs)?
            .squeeze(1)?
            .to_dtype(DType::F64)?;
        Ok(v.to_vec1()?)
    }

    /// Hold the agent against the exact solution `optimal` of the same map.
    pub fn compare(&self, optimal: &Solution) -> Result<GroundTruthReport> {
        let w = &*self.world;
        let greedy = self.greedy_policy()?;
        let reach = w.reachable_states();
        let agree = policy_agreement(w, optimal, &greedy, OPTIMAL_ACTION_TOLERANCE);
        let probs = self.policy_probabilities()?;
        let (v_pi, _) = policy_evaluation(w, &probs, SolveOptions::default());
        let v = self.value_table()?;
        let rmse = |target: &dyn Fn(usize) -> f64| {
            (reach
                .iter()
                .map(|&s| (v[s] - target(s)).powi(2))
                .sum::<f64>()
                / reach.len().max(1) as f64)
                .sqrt()
        };
        Ok(GroundTruthReport {
            policy_agreement: agree,
            greedy_return: expected_return(w, &policy_table(&greedy)),
            stochastic_return: v_pi[w.start_state()],
            optimal_return: optimal.values[w.start_state()],
            value_rmse_vs_optimal: rmse(&|s| optimal.values[s]),
            value_rmse_vs_own_policy: rmse(&|s| v_pi[s]),
        })
    }

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

    /// Advantages and returns of a rollout for the configured algorithm.
    pub(crate) fn advantages(
        &self,
        r: &Rollout,
        use_critic: bool,
        lambda: f64,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
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
        let (adv, ret) = ppo::gae(&inputs, self.gamma(), lambda)?;
        Ok((adv.flatten_all()?.to_vec1()?, ret.flatten_all()?.to_vec1()?))
    }

    /// Run `n` iterations (rollout + update each). Returns their metrics.
    pub fn train_iterations(&mut self, n: usize) -> Result<&[IterationMetrics]> {
        self.config.validate()?;
        let first = self.metrics.len();
        for _ in 0..n {
            self.iterate()?;
        }
        Ok(&self.metrics[first..])
    }

    /// Train until `config.total_timesteps` environment steps have been taken.
    pub fn train(&mut self) -> Result<&[IterationMetrics]> {
        let remaining = self.config.num_iterations().saturating_sub(self.iteration);
        self.train_iterations(remaining)
    }

    /// Train until the greedy policy meets the solved bar of [`GroundTruthReport::solved`]
    /// (≥ 95% optimal actions, greedy return within 2% of V*(start)), checking after
    /// every iteration, or until the budget ends. Returns whether the bar was reached.
    pub fn train_until_solved(&mut self, optimal: &Solution) -> Result<bool> {
        let v_star = optimal.values[self.world.start_state()];
        while self.iteration < self.config.num_iterations() {
            self.iterate()?;
            // The cheap half of the check first: agreement needs only the greedy policy.
            let greedy = self.greedy_policy()?;
            let agree = policy_agreement(&self.world, optimal, &greedy, OPTIMAL_ACTION_TOLERANCE);
            if agree >= SOLVED_AGREEMENT {
                let g = expected_return(&self.world, &policy_table(&greedy));
                if meets_solved_bar(agree, g, v_star) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn iterate(&mut self) -> Result<()> {
        let started = Instant::now();
        let cfg = self.config.clone();
        self.iteration += 1;
        if cfg.anneal_lr {
            let frac = 1.0 - (self.iteration - 1) as f64 / cfg.num_iterations().max(1) as f64;
            self.optimizer.set_lr(cfg.learning_rate * frac.max(0.0));
        } else {
            self.optimizer.set_lr(cfg.learning_rate);
        }
        let rollout = self.collect_rollout()?;
        let (use_critic, lambda) = match cfg.algorithm {
            Algorithm::Ppo => (true, cfg.gae_lambda),
            Algorithm::Reinforce => (false, 1.0),
            Algorithm::ReinforceBaseline => (true, 1.0),
        };
        let (adv, ret) = self.advantages(&rollout, use_critic, lambda)?;
        let d = self.device.clone();
        let batch = cfg.batch_size();
        let b_states = Tensor::from_vec(
            rollout.states.iter().map(|&s| s as u32).collect::<Vec<_>>(),
            batch,
            &d,
        )?;
        let b_actions = Tensor::from_slice(&rollout.actions, batch, &d)?;
        let b_logp = Tensor::from_slice(&rollout.logp, batch, &d)?;
        let b_values = Tensor::from_slice(&rollout.values, batch, &d)?;
        let b_adv = Tensor::from_slice(&adv, batch, &d)?;
        let b_ret = Tensor::from_slice(&ret, batch, &d)?;
        let explained_variance = ppo::explained_variance(&b_values, &b_ret, None)?;

        let (epochs, minibatches) = match cfg.algorithm {
            Algorithm::Ppo => (cfg.update_epochs, cfg.num_minibatches),
            _ => (1, 1),
        };
        let mb_size = batch / minibatches;
        let mut idx: Vec<u32> = (0..batch as u32).collect();
        let (mut pl, mut vl, mut ent, mut gn, mut count) = (0.0, 0.0, 0.0, 0.0, 0.0);
        'epochs: for _ in 0..epochs {
            self.rng.shuffle(&mut idx);
            for mb in idx.chunks(mb_size).filter(|c| c.len() == mb_size) {
                let mb = Tensor::from_slice(mb, mb.len(), &d)?;
                let obs = self
                    .all_obs
                    .index_select(&b_states.index_select(&mb, 0)?, 0)?;
                let actions = b_actions.index_select(&mb, 0)?;
                let old_logp = b_logp.index_select(&mb, 0)?;
                let mut mb_adv = b_adv.index_select(&mb, 0)?;
                let logits = self.policy.forward(&obs)?;
                let new_logp = ppo::log_prob_of(&logits, &actions)?;
                let entropy = ppo::entropy(&logits, None)?;
                // The three algorithms differ only in the policy loss and the critic's terms.
                let (policy_loss, new_v, old_v) = match cfg.algorithm {
                    Algorithm::Ppo => {
                        if cfg.norm_adv {
                            mb_adv = ppo::whiten(&mb_adv, None)?;
                        }
                        let clip = ppo::PolicyLoss::Clipped {
                            clip_eps: cfg.clip_coef,
                        };
                        let new_v = self.value.forward(&obs)?.squeeze(1)?;
                        (clip, Some(new_v), Some(b_values.index_select(&mb, 0)?))
                    }
                    Algorithm::Reinforce => (ppo::PolicyLoss::Vanilla, None, None),
                    Algorithm::ReinforceBaseline => {
                        let new_v = self.value.forward(&obs)?.squeeze(1)?;
                        // No clipping: the "old" values are the new ones.
                        (ppo::PolicyLoss::Vanilla, Some(new_v.clone()), Some(new_v))
                    }
                };
                let returns = b_ret.index_select(&mb, 0)?;
                let value = match (&new_v, &old_v) {
                    (Some(new_values), Some(old_values)) => Some(ppo::ValueTerms {
                        new_values,
                        old_values,
                        returns: &returns,
                        clip_eps: (cfg.algorithm == Algorithm::Ppo && cfg.clip_vloss)
                            .then_some(cfg.clip_coef),
                    }),
                    _ => None,
                };
                let (loss, info) = ppo::minibatch_loss(
                    &ppo::MinibatchLoss {
                        new_logp: &new_logp,
                        old_logp: &old_logp,
                        advantages: &mb_adv,
                        entropy: &entropy,
                        value,
                        mask: None,
                    },
                    policy_loss,
                    self.entropy_coefficient(),
                    cfg.vf_coef,
                )?;
                let update = optimize(&loss, &mut self.optimizer, cfg.max_grad_norm)?;
                pl += info.policy_loss;
                vl += info.value_loss;
                ent += info.entropy;
                gn += update.grad_norm;
                count += 1.0;
                if let Some(target) = cfg.target_kl {
                    let new_logp = ppo::log_prob_of(&self.policy.forward(&obs)?, &actions)?;
                    if ppo::approx_kl(&new_logp, &old_logp, None)?.1 > target {
                        break 'epochs;
                    }
                }
            }
        }
        // KL and clip fraction of the whole update, on the whole rollout.
        let all_obs = self.all_obs.index_select(&b_states, 0)?;
        let new_logp = ppo::log_prob_of(&self.policy.forward(&all_obs)?, &b_actions)?;
        let (k1, k3) = ppo::approx_kl(&new_logp, &b_logp, None)?;
        let clip_fraction = ppo::clip_fraction(&new_logp, &b_logp, cfg.clip_coef, None)?;
        let fin = &rollout.finished;
        let mean = |f: &dyn Fn(&FinishedEpisode) -> f64| {
            if fin.is_empty() {
                f64::NAN
            } else {
                fin.iter().map(f).sum::<f64>() / fin.len() as f64
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let metrics = IterationMetrics {
            iteration: self.iteration,
            global_step: self.global_step,
            episodic_return: mean(&|e| e.total_reward),
            discounted_return: mean(&|e| e.discounted_return),
            episodic_length: mean(&|e| e.length as f64),
            episodes: fin.len(),
            policy_loss: pl / count,
            value_loss: vl / count,
            entropy: ent / count,
            approx_kl_k1: k1,
            approx_kl_k3: k3,
            clip_fraction,
            explained_variance,
            grad_norm: gn / count,
            learning_rate: self.optimizer.config.lr,
            steps_per_second: batch as f64 / secs.max(1e-9),
        };
        self.check_divergence(&metrics)?;
        self.metrics.push(metrics);
        Ok(())
    }

    /// The largest |discounted return| any episode can have here: the map's
    /// reward scale ([`reward_scale`]) times the horizon, the smaller of the
    /// truncation length and 1/(1 − γ) (Σ γ^t ≤ both); at least 1, the scale
    /// of an untrained critic's outputs (a map whose rewards are all 0 has G = 0).
    pub fn return_bound(&self) -> f64 {
        let max_steps = self
            .config
            .max_episode_steps
            .unwrap_or(self.world.map.params.max_steps) as f64;
        let gamma = self.gamma();
        let horizon = if gamma < 1.0 {
            max_steps.min(1.0 / (1.0 - gamma))
        } else {
            max_steps
        };
        (reward_scale(&self.world) * horizon).max(1.0)
    }

    /// The divergence check, once per iteration (the one place training is
    /// stopped for numbers that are finite but impossible; NaN and Inf are
    /// stopped by [`optimize`]):
    ///
    /// - value loss ½·mean(V − R)² above 2·G² (G = [`Self::return_bound`]):
    ///   every return lies in [−G, G], so the critic's errors average more
    ///   than 2G only if it predicts values no episode can reach;
    /// - approximate KL (k3) of one update above [`MAX_UPDATE_KL`] nats: the
    ///   update moved the policy away from the actions it just took.
    ///
    /// Either is an error naming the metric, its value, the bound and the
    /// iteration; the iteration's metrics are not recorded.
    fn check_divergence(&self, m: &IterationMetrics) -> Result<()> {
        let g = self.return_bound();
        let value_bound = 2.0 * g * g;
        if m.value_loss > value_bound {
            bail!(
                "training diverged at iteration {}: value loss {:.4e} exceeds its bound {:.4e} \
                 (2·G² with G = {g:.4}, the largest return this map allows; the critic predicts \
                 values no episode can reach) — training stopped; lower `learning_rate` \
                 (now {})",
                m.iteration,
                m.value_loss,
                value_bound,
                self.config.learning_rate
            );
        }
        if m.approx_kl_k3 > MAX_UPDATE_KL {
            bail!(
                "training diverged at iteration {}: approximate KL of one update {:.4e} exceeds \
                 its bound {MAX_UPDATE_KL} nats (the update made the actions just taken about \
                 e^{MAX_UPDATE_KL} times less likely) — training stopped; lower `learning_rate` \
                 (now {})",
                m.iteration,
                m.approx_kl_k3,
                self.config.learning_rate
            );
        }
        Ok(())
    }

    /// Write the agent to `dir`: `weights.safetensors` (networks and Adam moments) and
    /// `trainer.json` (config, map, counters, RNG and environment states, metrics).
    /// Both files are written atomically; loading them continues training exactly.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, var) in named_vars(&self.varmap) {
            tensors.insert(format!("model.{name}"), var.as_tensor().clone());
        }
        for (name, t) in self.optimizer.state()? {
            tensors.insert(format!("adam.{name}"), t);
        }
        crate::io::save_safetensors_atomic(&tensors, &dir.join("weights.safetensors"))?;
        let state = TrainerState {
            config: self.config.clone(),
            map_text: self.world.map.to_text(),
            iteration: self.iteration,
            global_step: self.global_step,
            rng: self.rng.clone(),
            envs: self.envs.snapshot(),
            episode_discount: self.episode_discount.clone(),
            metrics: self.metrics.clone(),
        };
        let json = serde_json::to_string_pretty(&state)?;
        crate::io::write_atomic(&dir.join("trainer.json"), json.as_bytes())
            .with_context(|| format!("writing {}", dir.join("trainer.json").display()))
    }

    /// Write a checkpoint to `dir` atomically as a whole folder
    /// ([`crate::io::write_dir_atomic`], as every trainer does): [`Self::save`]'s
    /// files, so weights, Adam's moments, the iteration, the RNG and the
    /// environments. `dir` always holds a complete checkpoint.
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::io::write_dir_atomic(dir.as_ref(), |tmp| self.save(tmp))
    }

    /// Continue from the checkpoint folder `dir` (or `DIR.old` after a crash
    /// mid-swap, [`crate::io::checkpoint_to_resume`]) exactly where it stopped.
    pub fn resume(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load(crate::io::checkpoint_to_resume(
            dir.as_ref(),
            "trainer.json",
        )?)
    }

    /// Load an agent saved with [`Self::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(dir, Device::Cpu)
    }

    /// Load an agent saved with [`Self::save`] onto `device`.
    pub fn load_on(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let state_path = dir.join("trainer.json");
        let text = std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?;
        let state: TrainerState = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a trainer state", state_path.display()))?;
        let map = gridworld::Map::from_str_named(&state.map_text, "saved")
            .map_err(|e| anyhow::anyhow!("{}: saved map: {e}", state_path.display()))?;
        let mut t = Self::new_on(GridWorld::new(map), state.config.clone(), device.clone())?;
        let weights_path = dir.join("weights.safetensors");
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .with_context(|| format!("reading {}", weights_path.display()))?;
        for (name, var) in named_vars(&t.varmap) {
            let key = format!("model.{name}");
            let Some(w) = tensors.get(&key) else {
                bail!("{}: missing tensor `{key}`", weights_path.display())
            };
            if w.dims() != var.dims() {
                bail!(
                    "{}: tensor `{key}` has shape {:?}, expected {:?}",
                    weights_path.display(),
                    w.dims(),
                    var.dims()
                );
            }
            var.set(w)?;
        }
        let adam: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("adam.").map(|k| (k.to_string(), v.clone())))
            .collect();
        t.optimizer
            .load_state(&adam)
            .with_context(|| format!("{}: optimizer state", weights_path.display()))?;
        t.iteration = state.iteration;
        t.global_step = state.global_step;
        t.rng = state.rng;
        t.envs = VecEnv::restore(t.world.clone(), &state.envs);
        t.episode_discount = state.episode_discount;
        t.metrics = state.metrics;
        Ok(t)
    }

    /// Encodings of the given states, `[states.len(), obs_dim]`.
    fn observations(&self, states: &[usize]) -> Result<Tensor> {
        let idx = Tensor::from_vec(
            states.iter().map(|&s| s as u32).collect::<Vec<_>>(),
            states.len(),
            &self.device,
        )?;
        Ok(self.all_obs.index_select(&idx, 0)?)
    }

    /// Gradients of one PPO loss on a fresh rollout, by variable name (for tests and
    /// teaching: every trainable variable should receive a finite, non-zero gradient).
    pub fn probe_gradients(&mut self) -> Result<HashMap<String, Tensor>> {
        let rollout = self.collect_rollout()?;
        let (adv, ret) = self.advantages(&rollout, true, self.config.gae_lambda)?;
        let d = self.device.clone();
        let n = rollout.states.len();
        let obs = self.observations(&rollout.states)?;
        let logits = self.policy.forward(&obs)?;
        let new_logp = ppo::log_prob_of(&logits, &Tensor::from_slice(&rollout.actions, n, &d)?)?;
        // Perturb the old log-probabilities so that the ratio is not exactly 1.
        let old_logp = (Tensor::from_slice(&rollout.logp, n, &d)? - 0.05)?;
        let adv = ppo::whiten(&Tensor::from_slice(&adv, n, &d)?, None)?;
        let pg =
            ppo::clipped_surrogate_loss(&new_logp, &old_logp, &adv, self.config.clip_coef, None)?;
        let new_v = self.value.forward(&obs)?.squeeze(1)?;
        let old_v = Tensor::from_slice(&rollout.values, n, &d)?;
        let vl = ppo::value_loss(
            &new_v,
            &old_v,
            &Tensor::from_slice(&ret, n, &d)?,
            Some(self.config.clip_coef),
            None,
        )?;
        let loss = ((pg - (ppo::entropy(&logits, None)? * 0.01)?)? + vl)?;
        let grads = loss.backward()?;
        let mut out = HashMap::new();
        for (name, var) in named_vars(&self.varmap) {
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
        use_critic: bool,
        lambda: f64,
    ) -> Result<Vec<f64>> {
        let rollout = self.collect_rollout()?;
        let (adv, _) = self.advantages(&rollout, use_critic, lambda)?;
        let d = self.device.clone();
        let n = rollout.states.len();
        let obs = self.observations(&rollout.states)?;
        let logp = ppo::log_prob_of(
            &self.policy.forward(&obs)?,
            &Tensor::from_slice(&rollout.actions, n, &d)?,
        )?;
        let loss = ppo::policy_gradient_loss(&logp, &Tensor::from_slice(&adv, n, &d)?, None)?;
        let grads = loss.backward()?;
        let mut flat = Vec::new();
        for (name, var) in named_vars(&self.varmap) {
            if name.starts_with("policy.") {
                if let Some(g) = grads.get(&var) {
                    flat.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
                }
            }
        }
        Ok(flat)
    }
}

/// The largest |reward| the map can pay (terminal rewards and the step reward).
pub fn reward_scale(world: &GridWorld) -> f64 {
    let m = &world.map;
    let mut scale = m.params.step_reward.abs();
    for s in 0..world.n_states() {
        let (r, c) = world.cell_of(s);
        scale = scale.max(m.entry_reward(r, c).abs());
    }
    scale.max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let (_, ret) = t.advantages(&r, false, 1.0).unwrap();
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
