//! Neural-network building blocks shared by the rungs (candle-nn shaped).

pub mod init;
pub mod mlp;

pub use init::{insert_linear, orthogonal};
pub use mlp::{Activation, Mlp};
