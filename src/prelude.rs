//! Everything a notebook needs in scope: `use rlhf_lab::prelude::*;`.

pub use crate::gridworld_plots::{
    policy_agreement, solution_view, sweep, value_grid, with_param, SweepPoint, ValueTable,
};
pub use crate::plot::{BarChart, Figure, Heatmap, Histogram, LineChart};
pub use crate::rl::plots::{
    agent_vs_truth, compare_curves, gradient_variance_chart, learning_curve, metric_curve,
};
pub use crate::rl::{
    compare_algorithms, gradient_variance, metrics_to_csv, AdvantageEstimator, Algorithm,
    GridworldTrainer, GroundTruthReport, IterationMetrics, LearningCurve, PpoConfig,
};
pub use anyhow;
pub use gridworld::render::{ascii, ascii_values};
pub use gridworld::solve::{
    bellman_residual, expected_return, optimal_actions, policy_evaluation, policy_iteration,
    policy_table, terminal_distribution, uniform_policy, value_iteration, SolveOptions,
};
pub use gridworld::{Action, Cell, Encoding, Env, GridView, GridWorld, Map, Rng, Step, VecEnv};
