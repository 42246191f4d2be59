//! "Why a value network?" — experiments that compare learning rules.

use super::config::PpoConfig;
use super::rollout::AdvantageEstimator;
use super::trainer::{GridworldTrainer, GroundTruthReport};
use anyhow::Result;
use gridworld::solve::{value_iteration, SolveOptions};
use gridworld::GridWorld;
use serde::{Deserialize, Serialize};

/// Learning curves of one configuration over several seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearningCurve {
    pub label: String,
    /// Environment steps at the end of each iteration.
    pub steps: Vec<f64>,
    /// Per seed: mean discounted return of the episodes finished in each iteration
    /// (carried forward through iterations where none finished).
    pub runs: Vec<Vec<f64>>,
    /// Mean over seeds, and mean ± one standard deviation.
    pub mean: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    /// How each seed's final agent compares with the exact solution.
    pub final_reports: Vec<GroundTruthReport>,
}

/// Train each `(label, config)` once per seed on `world` and gather learning curves.
pub fn compare_algorithms(
    world: &GridWorld,
    configs: &[(String, PpoConfig)],
    seeds: &[u64],
) -> Result<Vec<LearningCurve>> {
    let optimal = value_iteration(world, SolveOptions::default());
    let mut curves = Vec::new();
    for (label, config) in configs {
        let mut runs = Vec::new();
        let mut steps = Vec::new();
        let mut final_reports = Vec::new();
        for &seed in seeds {
            let cfg = PpoConfig {
                seed,
                ..config.clone()
            };
            let mut t = GridworldTrainer::new(world.clone(), cfg)?;
            t.train()?;
            steps = t.metrics().iter().map(|m| m.global_step as f64).collect();
            let mut last = f64::NAN;
            let run: Vec<f64> = t
                .metrics()
                .iter()
                .map(|m| {
                    if m.discounted_return.is_finite() {
                        last = m.discounted_return;
                    }
                    last
                })
                .collect();
            runs.push(run);
            final_reports.push(t.compare(&optimal)?);
        }
        let len = steps.len();
        let (mut mean, mut lo, mut hi) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        for i in 0..len {
            let xs: Vec<f64> = runs
                .iter()
                .map(|r| r[i])
                .filter(|x| x.is_finite())
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
            let sd =
                (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len().max(1) as f64).sqrt();
            if xs.is_empty() {
                (mean[i], lo[i], hi[i]) = (f64::NAN, f64::NAN, f64::NAN);
            } else {
                (mean[i], lo[i], hi[i]) = (m, m - sd, m + sd);
            }
        }
        curves.push(LearningCurve {
            label: label.clone(),
            steps,
            runs,
            mean,
            lo,
            hi,
            final_reports,
        });
    }
    Ok(curves)
}

/// Spread of policy-gradient estimates from independent rollouts of one policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradientStats {
    pub estimator: AdvantageEstimator,
    pub samples: usize,
    /// ‖mean gradient‖.
    pub mean_norm: f64,
    /// Total variance: the trace of the covariance of the gradient estimate,
    /// Σ_j Var(ĝ_j), over the policy network's parameters.
    pub total_variance: f64,
    /// total_variance / ‖mean‖²: noise relative to signal.
    pub relative_variance: f64,
}

/// Draw `samples` rollouts with the trainer's current policy (no update) and measure
/// the variance of the policy-gradient estimate under each advantage estimator.
pub fn gradient_variance(
    trainer: &mut GridworldTrainer,
    estimator: AdvantageEstimator,
    samples: usize,
) -> Result<GradientStats> {
    let grads: Vec<Vec<f64>> = (0..samples.max(2))
        .map(|_| trainer.policy_gradient_sample(estimator))
        .collect::<Result<_>>()?;
    let k = grads.len() as f64;
    let dim = grads[0].len();
    let mean: Vec<f64> = (0..dim)
        .map(|j| grads.iter().map(|g| g[j]).sum::<f64>() / k)
        .collect();
    let total_variance: f64 = (0..dim)
        .map(|j| grads.iter().map(|g| (g[j] - mean[j]).powi(2)).sum::<f64>() / (k - 1.0))
        .sum();
    let mean_sq: f64 = mean.iter().map(|x| x * x).sum();
    Ok(GradientStats {
        estimator,
        samples: grads.len(),
        mean_norm: mean_sq.sqrt(),
        total_variance,
        relative_variance: total_variance / mean_sq.max(1e-300),
    })
}
