//! Rung 2: learning the gridworld by trial and error.
//!
//! A policy network and a value network trained with PPO (or, for comparison,
//! REINFORCE with and without a learned baseline) over a batch of environments,
//! and held against the exact solution of rung 1.
//!
//! ```no_run
//! use rlhf_lab::rl::{PpoConfig, GridworldTrainer};
//! use rlhf_lab::gridworld::GridWorld;
//! let world = GridWorld::load("dragon").unwrap();
//! let mut trainer = GridworldTrainer::new(world, PpoConfig::default()).unwrap();
//! trainer.train_iterations(10).unwrap();          // work cell by cell...
//! trainer.config.ent_coef = 0.0;                  // ...change a hyper-parameter...
//! trainer.train().unwrap();                       // ...and continue to the budget.
//! ```

mod config;
mod experiment;
mod metrics;
pub mod plots;
mod rollout;
mod trainer;
mod update;

pub use config::{Algorithm, PpoConfig, MAX_HIDDEN_SIZE, MAX_ROLLOUT_TRANSITIONS};
pub use experiment::{compare_algorithms, gradient_variance, GradientStats, LearningCurve};
pub use metrics::{metrics_to_csv, metrics_to_jsonl, IterationMetrics};
pub use rollout::AdvantageEstimator;
pub use trainer::{reward_scale, GridworldTrainer, GroundTruthReport, MAX_UPDATE_KL};
