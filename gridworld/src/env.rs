//! A simulator over the MDP: `reset(seed)` / `step(action)`, one environment or a batch.
//!
//! Termination (the agent entered a terminal cell) is kept distinct from truncation
//! (the episode hit `max_steps`): an RL algorithm must bootstrap from the value of
//! the last state after a truncation, but not after a termination.

use crate::mdp::{Action, GridWorld};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What one step returns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The state after the move.
    pub state: usize,
    pub reward: f64,
    /// Entered a terminal cell.
    pub terminated: bool,
    /// Reached `max_steps` without terminating.
    pub truncated: bool,
}

/// A finished episode: s_0, a_0, r_1, s_1, a_1, r_2, … (`states` has one more entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub states: Vec<usize>,
    pub actions: Vec<Action>,
    pub rewards: Vec<f64>,
    /// Ended in a terminal cell (false: truncated at `max_steps`).
    pub terminated: bool,
}

impl Episode {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when no step was taken.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Undiscounted return Σ_t r_t.
    pub fn total_reward(&self) -> f64 {
        self.rewards.iter().sum()
    }

    /// Discounted return G_0 = Σ_t γ^t r_{t+1}.
    pub fn discounted_return(&self, gamma: f64) -> f64 {
        self.rewards.iter().rev().fold(0.0, |g, r| r + gamma * g)
    }
}

/// One gridworld episode at a time.
#[derive(Debug, Clone)]
pub struct Env {
    world: Arc<GridWorld>,
    rng: Rng,
    state: usize,
    steps: usize,
    max_steps: usize,
    done: bool,
    exploring_starts: f64,
    episode_start: usize,
}

impl Env {
    /// A simulator for `world`, truncating after the map's `max_steps`.
    pub fn new(world: Arc<GridWorld>, seed: u64) -> Self {
        let max_steps = world.map.params.max_steps;
        let state = world.start_state();
        Self {
            world,
            rng: Rng::new(seed),
            state,
            steps: 0,
            max_steps,
            done: false,
            exploring_starts: 0.0,
            episode_start: state,
        }
    }

    /// Exploring starts (Sutton & Barto §5.3): with probability `p` an episode begins
    /// in a uniformly random non-terminal state instead of the start cell, so that
    /// every state keeps being visited and learned about.
    pub fn with_exploring_starts(mut self, p: f64) -> Self {
        self.exploring_starts = p.clamp(0.0, 1.0);
        self
    }

    /// The state the current episode began in.
    pub fn episode_start(&self) -> usize {
        self.episode_start
    }

    /// Change the truncation horizon.
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps.max(1);
        self
    }

    /// Start a new episode at the start cell; `Some(seed)` re-seeds the slip randomness.
    pub fn reset(&mut self, seed: Option<u64>) -> usize {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        self.state = self.world.start_state();
        if self.exploring_starts > 0.0 && self.rng.uniform() < self.exploring_starts {
            let candidates: Vec<usize> = (0..self.world.n_states())
                .filter(|&s| !self.world.is_terminal(s))
                .collect();
            self.state = candidates[self.rng.below(candidates.len())];
        }
        self.episode_start = self.state;
        self.steps = 0;
        self.done = false;
        self.state
    }

    /// Take `action`. Stepping a finished episode is an error in the caller's logic,
    /// so it returns the same final step again (reward 0) rather than moving.
    pub fn step(&mut self, action: Action) -> Step {
        if self.done {
            return Step {
                state: self.state,
                reward: 0.0,
                terminated: self.world.is_terminal(self.state),
                truncated: !self.world.is_terminal(self.state),
            };
        }
        let outcomes = self.world.transitions(self.state, action);
        let weights: Vec<f64> = outcomes.iter().map(|t| t.prob).collect();
        let t = outcomes[self.rng.categorical(&weights)];
        self.state = t.next;
        self.steps += 1;
        let terminated = t.terminal;
        let truncated = !terminated && self.steps >= self.max_steps;
        self.done = terminated || truncated;
        Step {
            state: t.next,
            reward: t.reward,
            terminated,
            truncated,
        }
    }

    /// Play one whole episode from the start, choosing actions with `policy(state)`.
    pub fn run_episode(&mut self, mut policy: impl FnMut(usize) -> Action) -> Episode {
        let mut s = self.reset(None);
        let mut ep = Episode {
            states: vec![s],
            ..Episode::default()
        };
        loop {
            let a = policy(s);
            let st = self.step(a);
            ep.actions.push(a);
            ep.rewards.push(st.reward);
            ep.states.push(st.state);
            s = st.state;
            if st.terminated || st.truncated {
                ep.terminated = st.terminated;
                return ep;
            }
        }
    }

    /// Current state.
    pub fn state(&self) -> usize {
        self.state
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The MDP.
    pub fn world(&self) -> &Arc<GridWorld> {
        &self.world
    }
}

/// The result of stepping every environment of a batch once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VecStep {
    /// State each environment is in now (already reset if its episode ended).
    pub states: Vec<usize>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// The last state of an episode that ended on this step (before the reset);
    /// equals `states[i]` when the episode goes on. Needed to bootstrap truncations.
    pub final_states: Vec<usize>,
    /// A summary of every episode that ended on this step, per environment.
    pub finished: Vec<Option<EpisodeSummary>>,
}

/// Everything needed to continue a batch of environments exactly where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VecEnvSnapshot {
    /// Per environment: `(rng, state, steps, done, running return, episode start)`.
    pub envs: Vec<(Rng, usize, usize, bool, f64, usize)>,
    pub max_steps: usize,
    pub exploring_starts: f64,
}

/// What a finished episode earned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpisodeSummary {
    /// Undiscounted return.
    pub total_reward: f64,
    pub length: usize,
    /// The state it began in (the start cell unless exploring starts chose another).
    pub start: usize,
}

/// N environments stepped together, each resetting itself when its episode ends.
#[derive(Debug, Clone)]
pub struct VecEnv {
    envs: Vec<Env>,
    returns: Vec<f64>,
}

impl VecEnv {
    /// `n` environments over one world; environment i gets its own stream from `seed`.
    pub fn new(world: Arc<GridWorld>, n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let envs = (0..n)
            .map(|_| Env::new(world.clone(), rng.next_u64()))
            .collect();
        Self {
            envs,
            returns: vec![0.0; n],
        }
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// Reset all; returns their states.
    pub fn reset(&mut self) -> Vec<usize> {
        self.returns.iter_mut().for_each(|r| *r = 0.0);
        self.envs.iter_mut().map(|e| e.reset(None)).collect()
    }

    /// A snapshot from which [`VecEnv::restore`] continues identically.
    pub fn snapshot(&self) -> VecEnvSnapshot {
        VecEnvSnapshot {
            envs: self
                .envs
                .iter()
                .zip(&self.returns)
                .map(|(e, &r)| (e.rng.clone(), e.state, e.steps, e.done, r, e.episode_start))
                .collect(),
            max_steps: self.envs.first().map_or(1, |e| e.max_steps),
            exploring_starts: self.envs.first().map_or(0.0, |e| e.exploring_starts),
        }
    }

    /// Rebuild a batch from a snapshot taken over the same world.
    pub fn restore(world: Arc<GridWorld>, snap: &VecEnvSnapshot) -> Self {
        let mut envs = Vec::new();
        let mut returns = Vec::new();
        for (rng, state, steps, done, ret, start) in &snap.envs {
            let mut e = Env::new(world.clone(), 0)
                .with_max_steps(snap.max_steps)
                .with_exploring_starts(snap.exploring_starts);
            e.episode_start = *start;
            e.rng = rng.clone();
            e.state = *state;
            e.steps = *steps;
            e.done = *done;
            envs.push(e);
            returns.push(*ret);
        }
        Self { envs, returns }
    }

    /// Exploring starts for every environment (see [`Env::with_exploring_starts`]).
    pub fn with_exploring_starts(mut self, p: f64) -> Self {
        self.envs = self
            .envs
            .into_iter()
            .map(|e| e.with_exploring_starts(p))
            .collect();
        self
    }

    /// Set every environment's truncation horizon.
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.envs = self
            .envs
            .into_iter()
            .map(|e| e.with_max_steps(max_steps))
            .collect();
        self
    }

    /// Current states.
    pub fn states(&self) -> Vec<usize> {
        self.envs.iter().map(|e| e.state()).collect()
    }

    /// Step environment i with `actions[i]`; finished episodes reset automatically.
    ///
    /// # Panics
    /// If `actions.len() != self.len()`.
    pub fn step(&mut self, actions: &[Action]) -> VecStep {
        assert_eq!(actions.len(), self.envs.len(), "one action per environment");
        let mut out = VecStep::default();
        for (i, (env, &a)) in self.envs.iter_mut().zip(actions).enumerate() {
            let st = env.step(a);
            self.returns[i] += st.reward;
            out.rewards.push(st.reward);
            out.terminated.push(st.terminated);
            out.truncated.push(st.truncated);
            out.final_states.push(st.state);
            if st.terminated || st.truncated {
                out.finished.push(Some(EpisodeSummary {
                    total_reward: self.returns[i],
                    length: env.steps(),
                    start: env.episode_start(),
                }));
                self.returns[i] = 0.0;
                out.states.push(env.reset(None));
            } else {
                out.finished.push(None);
                out.states.push(st.state);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_terminates_or_truncates() {
        let w = Arc::new(GridWorld::load("two_cells").unwrap());
        let mut env = Env::new(w.clone(), 0).with_max_steps(3);
        env.reset(Some(1));
        // Pushing left never reaches the exit: truncated after 3 steps, not terminated.
        let mut last = env.step(Action::Left);
        for _ in 0..2 {
            assert!(!last.truncated && !last.terminated);
            last = env.step(Action::Left);
        }
        assert!(last.truncated && !last.terminated);
        env.reset(None);
        let mut st = env.step(Action::Right);
        while !st.terminated {
            assert!(!st.truncated);
            st = env.step(Action::Right);
        }
        assert_eq!(st.reward, 1.0);
        let ep = env.run_episode(|_| Action::Right);
        assert!(ep.terminated && !ep.is_empty() && ep.states.len() == ep.len() + 1);
        assert_eq!(*ep.rewards.last().unwrap(), 1.0);
        let g = ep.discounted_return(0.9);
        let n = ep.len() as i32;
        let expect = (0..n - 1).map(|t| -0.1 * 0.9f64.powi(t)).sum::<f64>() + 0.9f64.powi(n - 1);
        assert!((g - expect).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_trajectories_and_autoreset() {
        let w = Arc::new(GridWorld::load("aima").unwrap());
        let run = |seed| {
            let mut v = VecEnv::new(w.clone(), 4, seed);
            v.reset();
            let mut log = Vec::new();
            for t in 0..200 {
                let acts: Vec<Action> = (0..4).map(|i| Action::from_index((t + i) % 4)).collect();
                let st = v.step(&acts);
                for i in 0..4 {
                    if st.terminated[i] || st.truncated[i] {
                        assert_eq!(st.states[i], w.start_state());
                        assert!(st.finished[i].is_some());
                    }
                }
                log.push(st);
            }
            log
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn exploring_starts_visit_other_states_and_snapshots_resume() {
        let w = Arc::new(GridWorld::load("dragon").unwrap());
        let mut env = Env::new(w.clone(), 3).with_exploring_starts(1.0);
        let starts: std::collections::HashSet<usize> = (0..200).map(|_| env.reset(None)).collect();
        assert!(starts.len() > 15 && starts.iter().all(|&s| !w.is_terminal(s)));
        let mut v = VecEnv::new(w.clone(), 3, 9).with_exploring_starts(0.5);
        v.reset();
        let acts = [Action::Up, Action::Right, Action::Left];
        for _ in 0..17 {
            v.step(&acts);
        }
        let mut copy = VecEnv::restore(w.clone(), &v.snapshot());
        for _ in 0..50 {
            assert_eq!(v.step(&acts), copy.step(&acts));
        }
    }
}
