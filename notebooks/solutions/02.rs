// Reference solutions of notebook 02's exercises, one section per exercise id.
// `scripts/run_notebooks.py --solutions notebooks/solutions` puts each section in
// place of the cell tagged `exercise:<id>` before running the notebook (and fails
// unless every check cell prints ✓); tests/exercises.rs compiles this file and
// runs the checkers on it. Try the exercises yourself before you read on.

// exercise: 02-gae
use rlhf_lab::exercises::ppo::Trajectory;

/// Â_t for every step: δ_t = r_t + γ·V(s'_t)·(1 − terminated_t) − V(s_t),
/// Â_t = δ_t + γλ·(1 − episode_end_t)·Â_{t+1}, walking backwards.
fn my_gae(traj: &Trajectory, gamma: f64, lambda: f64) -> Vec<f64> {
    let n = traj.rewards.len();
    let mut advantages = vec![0.0; n];
    let mut next_advantage = 0.0;
    for t in (0..n).rev() {
        let alive = if traj.terminated[t] { 0.0 } else { 1.0 };
        let flows = if traj.episode_end[t] { 0.0 } else { 1.0 };
        let delta = traj.rewards[t] + gamma * traj.next_values[t] * alive - traj.values[t];
        next_advantage = delta + gamma * lambda * flows * next_advantage;
        advantages[t] = next_advantage;
    }
    advantages
}

// exercise: 02-clipped-surrogate
/// PPO's objective for one sample: min(ρ·Â, clip(ρ, 1 − ε, 1 + ε)·Â).
fn my_clipped_objective(ratio: f64, advantage: f64, eps: f64) -> f64 {
    let unclipped = ratio * advantage;
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * advantage;
    unclipped.min(clipped)
}

// exercise: 02-kl-k3
/// k3 = mean((ρ − 1) − log ρ), log ρ = log π_new − log π_old.
fn my_kl_k3(new_logp: &[f64], old_logp: &[f64]) -> f64 {
    let total: f64 = new_logp
        .iter()
        .zip(old_logp)
        .map(|(new, old)| {
            let log_ratio = new - old;
            log_ratio.exp() - 1.0 - log_ratio
        })
        .sum();
    total / new_logp.len() as f64
}
