//! # rlhf-lab
//!
//! A Rust toolkit for learning and teaching reinforcement learning from human
//! feedback, one rung at a time, from Jupyter notebooks on the evcxr kernel.
//!
//! | rung | module | notebook |
//! |---|---|---|
//! | 1. RL basics on a gridworld | [`gridworld`] (crate), [`gridworld_plots`] | `01_rl_basics` |
//!
//! Figures: [`plot`]. Notebooks start with `use rlhf_lab::prelude::*;` (the
//! project's kernel does this for you).

pub mod gridworld_plots;
pub mod io;
pub mod plot;
pub mod prelude;

pub use anyhow;
pub use gridworld;
