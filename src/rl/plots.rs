//! Figures of rung 2: learning curves, diagnostics and the learned agent next to the truth.

use super::experiment::{GradientStats, LearningCurve};
use super::metrics::IterationMetrics;
use super::trainer::GridworldTrainer;
use crate::gridworld_plots::{policy_view, solution_view, ValueTable};
use crate::plot::{BarChart, Figure, LineChart};
use anyhow::Result;
use gridworld::Solution;

/// One metric over training, ready for [`LineChart::series`]: x is the
/// environment steps taken by the end of each iteration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricCurve {
    /// Environment steps at the end of each iteration (the x axis).
    pub steps: Vec<f64>,
    /// The metric at those iterations (the y axis).
    pub values: Vec<f64>,
}

/// `f(metrics)` of every iteration against the environment steps.
pub fn metric_curve(
    metrics: &[IterationMetrics],
    f: impl Fn(&IterationMetrics) -> f64,
) -> MetricCurve {
    let (steps, values) = metrics.iter().map(|m| (m.global_step as f64, f(m))).unzip();
    MetricCurve { steps, values }
}

/// Discounted return from the start per iteration, with V*(start) as a reference line.
pub fn learning_curve(title: &str, metrics: &[IterationMetrics], optimal_return: f64) -> LineChart {
    let curve = metric_curve(metrics, |m| m.discounted_return);
    LineChart::new(title)
        .x_label("environment steps")
        .y_label("discounted return from the start")
        .smoothing(0.6)
        .series("agent", &curve.steps, &curve.values)
        .hline("V*(start)", optimal_return)
}

/// Mean ± one standard deviation over seeds, one band per learning rule.
pub fn compare_curves(title: &str, curves: &[LearningCurve], optimal_return: f64) -> LineChart {
    let mut chart = LineChart::new(title)
        .x_label("environment steps")
        .y_label("discounted return from the start");
    for c in curves {
        chart = chart.series_with_band(&c.label, &c.steps, &c.mean, &c.lo, &c.hi);
    }
    chart.hline("V*(start)", optimal_return)
}

/// Value network next to V* on one colour scale, and the learned greedy policy next
/// to the optimal one.
pub fn agent_vs_truth(trainer: &GridworldTrainer, optimal: &Solution) -> Result<Figure> {
    let world = trainer.world();
    let values = trainer.value_table()?;
    let non_terminal: Vec<f64> = (0..world.n_states())
        .filter(|&s| !world.is_terminal(s))
        .flat_map(|s| [values[s], optimal.values[s]])
        .collect();
    let lo = non_terminal.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = non_terminal
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let greedy = trainer.greedy_policy()?;
    Ok(Figure::grid(
        &[
            ValueTable::new(world, &values, "value network V(s)")
                .range(lo, hi)
                .figure()?,
            ValueTable::new(
                world,
                optimal.values.as_slice().expect("contiguous"),
                "V* (value iteration)",
            )
            .range(lo, hi)
            .figure()?,
            Figure::from(policy_view(
                world,
                &values,
                &greedy,
                "learned greedy policy",
            )),
            Figure::from(solution_view(world, optimal, "optimal policy")),
        ],
        2,
    ))
}

/// Relative variance of the policy-gradient estimate per advantage estimator.
pub fn gradient_variance_chart(stats: &[GradientStats]) -> BarChart {
    let labels: Vec<String> = stats
        .iter()
        .map(|s| match s.estimator {
            super::AdvantageEstimator::MonteCarlo => "G_t (no critic)".to_string(),
            super::AdvantageEstimator::MonteCarloBaseline => "G_t - V(s_t)".to_string(),
            super::AdvantageEstimator::Gae(l) => format!("GAE, lambda={l}"),
        })
        .collect();
    let values: Vec<f64> = stats.iter().map(|s| s.relative_variance).collect();
    BarChart::new("Noise of the policy-gradient estimate (variance / squared mean)")
        .y_label("relative variance")
        .bars(&labels, &values)
}
