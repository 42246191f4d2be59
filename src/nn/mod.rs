//! Neural-network building blocks shared by the rungs (candle-nn shaped).

pub mod init;
pub mod mlp;

pub use init::{insert_linear, orthogonal};

use candle_core::Var;
use candle_nn::VarMap;

/// Every variable of `varmap`, sorted by name: a stable order for optimisers
/// and files (a `VarMap` is a hash map). Every model's parameter list.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
pub use mlp::{Activation, Mlp};
