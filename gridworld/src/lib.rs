//! # gridworld
//!
//! A small gridworld Markov decision process for teaching reinforcement learning:
//! points to collect, a dragon to avoid, a step penalty that acts as a constraint,
//! and slippery moves. It has exact solutions (value iteration, policy iteration), so
//! every learning algorithm can be held against the truth.
//!
//! Depends on `ndarray` and `serde` only.
//!
//! ```
//! use gridworld::{GridWorld, solve::{value_iteration, SolveOptions}};
//! let world = GridWorld::load("aima").unwrap();
//! let sol = value_iteration(&world, SolveOptions::default());
//! assert!(sol.values[world.start_state()] > 0.7);
//! ```

pub mod color;
pub mod env;
pub mod map;
pub mod mdp;
pub mod obs;
pub mod render;
pub mod rng;
pub mod solve;

pub use env::{Env, Episode, EpisodeSummary, Step, VecEnv, VecEnvSnapshot, VecStep};
pub use map::{Cell, Map, MapError, MapErrorKind, MapParams};
pub use mdp::{Action, GridWorld, Transition};
pub use obs::Encoding;
pub use render::GridView;
pub use rng::{stream_seed, Rng};
pub use solve::{Solution, SolveOptions};
