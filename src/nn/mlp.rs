//! A multi-layer perceptron: `Linear → act → … → Linear`.

use super::init::insert_linear;
use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use gridworld::Rng;
use serde::{Deserialize, Serialize};

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// tanh, the PPO default (Huang et al. 2022).
    #[default]
    Tanh,
    Relu,
}

/// Fully connected network with orthogonal initialisation.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// Layers `sizes[0] → sizes[1] → … → sizes[n]`, registered in `varmap` under
    /// `prefix.{i}`. Hidden layers get gain √2, the last `output_gain` (PPO uses 0.01
    /// for the policy head, so the first policy is nearly uniform, and 1 for the value head).
    pub fn new(
        varmap: &VarMap,
        prefix: &str,
        sizes: &[usize],
        activation: Activation,
        output_gain: f64,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        if sizes.len() < 2 {
            candle_core::bail!("an MLP needs at least an input and an output size, got {sizes:?}");
        }
        let vb = VarBuilder::from_varmap(varmap, candle_core::DType::F32, device);
        let mut layers = Vec::new();
        for i in 0..sizes.len() - 1 {
            let gain = if i + 2 == sizes.len() {
                output_gain
            } else {
                2f64.sqrt()
            };
            let name = format!("{prefix}.{i}");
            insert_linear(varmap, &name, sizes[i], sizes[i + 1], gain, rng, device)?;
            layers.push(candle_nn::linear(sizes[i], sizes[i + 1], vb.pp(&name))?);
        }
        Ok(Self { layers, activation })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = match self.activation {
                    Activation::Tanh => h.tanh()?,
                    Activation::Relu => h.relu()?,
                };
            }
        }
        Ok(h)
    }
}
