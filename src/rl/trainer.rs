//! The gridworld agent: its networks, optimiser and environments, the
//! iteration loop (rollout → advantages → update, from [`super::rollout`] and
//! [`super::update`]), the comparison with the exact solution, and checkpoints.

use super::config::PpoConfig;
use super::metrics::IterationMetrics;
use super::rollout::{Batch, FinishedEpisode};
use super::update::UpdateRule;
use crate::nn::{named_vars, Mlp};
use crate::optim::{AdamConfig, AdamW};
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

/// The bar of [`GroundTruthReport::solved`].
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
    pub(super) world: Arc<GridWorld>,
    pub(super) envs: VecEnv,
    pub(super) device: Device,
    varmap: VarMap,
    pub(super) policy: Mlp,
    pub(super) value: Mlp,
    pub(super) optimizer: AdamW,
    pub(super) rng: Rng,
    /// Encodings of every state, `[n_states, obs_dim]`.
    pub(super) all_obs: Tensor,
    iteration: usize,
    pub(super) global_step: usize,
    /// Per environment: the running discounted return of its current episode and γ^t.
    pub(super) episode_discount: Vec<(f64, f64)>,
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
        crate::allocator::keep_freed_memory();
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
                learning_rate: config.learning_rate,
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

    pub(super) fn gamma(&self) -> f64 {
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

    /// One iteration, as CleanRL's `ppo.py` loop: anneal the learning rate,
    /// collect a rollout, estimate advantages and returns, update on
    /// minibatches, then measure. [`UpdateRule`] holds how REINFORCE differs.
    fn iterate(&mut self) -> Result<()> {
        let started = Instant::now();
        self.iteration += 1;
        self.optimizer.set_learning_rate(self.learning_rate_now());
        let rule = UpdateRule::of(&self.config);

        let rollout = self.collect_rollout()?;
        let (advantages, returns) = self.advantages(&rollout, rule.advantages)?;
        let batch = Batch::new(&rollout, &advantages, &returns, &self.device)?;
        let explained_variance = ppo::explained_variance(&batch.values, &batch.returns, None)?;
        let stats = self.update(&batch, &rule)?;
        let shift = self.policy_shift(&batch)?;

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
            policy_loss: stats.mean(stats.policy_loss),
            value_loss: stats.mean(stats.value_loss),
            entropy: stats.mean(stats.entropy),
            approx_kl_k1: shift.approx_kl_k1,
            approx_kl_k3: shift.approx_kl_k3,
            clip_fraction: shift.clip_fraction,
            explained_variance,
            grad_norm: stats.mean(stats.grad_norm),
            learning_rate: self.optimizer.config.learning_rate,
            steps_per_second: batch.len() as f64 / secs.max(1e-9),
        };
        self.check_divergence(&metrics)?;
        self.metrics.push(metrics);
        Ok(())
    }

    /// The learning rate of this iteration: `learning_rate`, decayed linearly
    /// to 0 over the budget when `anneal_lr` is set.
    fn learning_rate_now(&self) -> f64 {
        let cfg = &self.config;
        if cfg.anneal_lr {
            let frac = 1.0 - (self.iteration - 1) as f64 / cfg.num_iterations().max(1) as f64;
            cfg.learning_rate * frac.max(0.0)
        } else {
            cfg.learning_rate
        }
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

    /// Write the agent to `dir` in the checkpoint layout of every trainer
    /// ([`crate::io::checkpoint`]): `model.safetensors` (the networks),
    /// `optimizer.safetensors` (Adam's moments) and `trainer_state.json`
    /// (config, map, counters, RNG and environment states, metrics). Each file
    /// is written atomically; loading them continues training exactly.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        use crate::io::checkpoint::{MODEL, OPTIMIZER};
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let weights: HashMap<String, Tensor> = named_vars(&self.varmap)
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().clone()))
            .collect();
        crate::io::save_safetensors_atomic(&weights, &dir.join(MODEL))?;
        self.optimizer.save_state(&dir.join(OPTIMIZER))?;
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
        crate::io::write_trainer_state(dir, &state)
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
        Self::load(crate::io::checkpoint_to_resume(dir.as_ref())?)
    }

    /// Load an agent saved with [`Self::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(dir, Device::Cpu)
    }

    /// Load an agent saved with [`Self::save`] onto `device`.
    pub fn load_on(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        use crate::io::checkpoint::{MODEL, OPTIMIZER, TRAINER_STATE};
        let dir = dir.as_ref();
        let state: TrainerState = crate::io::read_trainer_state(dir, "a gridworld trainer state")?;
        let map = gridworld::Map::from_str_named(&state.map_text, "saved").map_err(|e| {
            anyhow::anyhow!("{}: saved map: {e}", dir.join(TRAINER_STATE).display())
        })?;
        let mut t = Self::new_on(GridWorld::new(map), state.config.clone(), device.clone())?;
        let weights_path = dir.join(MODEL);
        let weights = candle_core::safetensors::load(&weights_path, &device)
            .with_context(|| format!("reading {}", weights_path.display()))?;
        for (name, var) in named_vars(&t.varmap) {
            let Some(w) = weights.get(&name) else {
                bail!("{}: missing tensor `{name}`", weights_path.display())
            };
            if w.dims() != var.dims() {
                bail!(
                    "{}: tensor `{name}` has shape {:?}, expected {:?}",
                    weights_path.display(),
                    w.dims(),
                    var.dims()
                );
            }
            var.set(w)?;
        }
        t.optimizer.load_state_file(&dir.join(OPTIMIZER))?;
        t.iteration = state.iteration;
        t.global_step = state.global_step;
        t.rng = state.rng;
        t.envs = VecEnv::restore(t.world.clone(), &state.envs);
        t.episode_discount = state.episode_discount;
        t.metrics = state.metrics;
        Ok(t)
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
