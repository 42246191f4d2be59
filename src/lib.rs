//! # rlhf-lab
//!
//! A Rust toolkit for learning and teaching reinforcement learning from human
//! feedback, one rung at a time, from Jupyter notebooks on the evcxr kernel.
//!
//! | rung | module | notebook |
//! |---|---|---|
//! | 1. RL basics on a gridworld | [`gridworld`] (crate), [`gridworld_plots`] | `01_rl_basics` |
//! | 2. PPO with a policy and a value network | [`ppo`] (shared math), [`nn`], [`optim`], [`rl`] | `02_ppo_gridworld` |
//! | 3. A transformer language model | [`lm`] | `03_transformers` |
//! | 4. Supervised fine-tuning | [`lm::sft`], [`lm::sft_data`], [`lm::behaviour`], [`world::demonstrations`] | `04_sft` |
//! | 5. Human feedback: Elo, Bradley–Terry, annotators | [`feedback`], [`world`] | `05_human_feedback` |
//!
//! Labelling in the browser (a web page storing judgements in SQLite): [`label`]
//! (the `label` feature, on by default).
//!
//! Notebooks 01–05 end with exercises that check themselves: [`exercises`].
//!
//! Figures: [`plot`]. Files (atomic writes, JSON Lines, checkpoints): [`io`].
//! Seeds of a run's streams (batches, dropout, sampled rows): [`seeds`].
//! Train / validation / test of any dataset: [`splits`]. Notebooks start with
//! `use rlhf_lab::prelude::*;` (the project's kernel does this for you).

pub mod allocator;
pub mod exercises;
pub mod feedback;
pub mod gridworld_plots;
pub mod io;
#[cfg(feature = "label")]
pub mod label;
pub mod lm;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod ppo;
pub mod prelude;
pub mod rl;
pub mod rlhf;
pub mod seeds;
pub mod splits;
pub mod world;

pub use anyhow;
pub use gridworld;
