//! Optimisation: Adam(W) with inspectable, saveable state; global gradient-norm
//! clipping; finiteness checks. One implementation for every trainer in the crate.

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;

/// Hyper-parameters of [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 gives plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam (Kingma & Ba 2015) with decoupled weight decay (Loshchilov & Hutter 2019):
///
/// ```text
/// m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
/// m̂ = m / (1 − β1^t)             v̂ = v / (1 − β2^t)
/// θ ← θ − lr · (m̂ / (√v̂ + ε) + λ θ)
/// ```
///
/// Unlike `candle_nn::AdamW`, its moments can be saved and restored, so training
/// resumes exactly where it stopped.
#[derive(Debug)]
pub struct Adam {
    pub config: AdamConfig,
    vars: Vec<(String, Var)>,
    moments: Vec<Moments>,
    step: usize,
}

/// First and second moments of one variable: plain vectors for f32 CPU variables
/// (updated in one fused loop), tensors on other devices.
#[derive(Debug)]
enum Moments {
    Host(Vec<f32>, Vec<f32>),
    Device(Tensor, Tensor),
}

fn fused_on_host(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == DType::F32
}

impl Adam {
    /// Optimise the named variables (names are used when saving state).
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|(_, v)| -> candle_core::Result<Moments> {
                if fused_on_host(v) {
                    Ok(Moments::Host(
                        vec![0.0; v.elem_count()],
                        vec![0.0; v.elem_count()],
                    ))
                } else {
                    let z = Tensor::zeros(v.shape(), DType::F32, v.device())?;
                    Ok(Moments::Device(z.clone(), z))
                }
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            config,
            vars,
            moments,
            step: 0,
        })
    }

    /// Number of updates taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The optimised variables.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update with gradients multiplied by `grad_scale` (from clipping).
    /// Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            match &mut self.moments[i] {
                Moments::Host(m, v) => {
                    // The same formulas as below, in one pass over the parameters.
                    let g: Vec<f32> = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
                    let mut theta: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
                    let (b1, b2, lr) = (c.beta1 as f32, c.beta2 as f32, c.lr as f32);
                    let (bc1, bc2, eps) = (bc1 as f32, bc2 as f32, c.eps as f32);
                    let (decay, scale) = (1.0 - (c.lr * c.weight_decay) as f32, grad_scale as f32);
                    for j in 0..theta.len() {
                        let gj = g[j] * scale;
                        m[j] = b1 * m[j] + (1.0 - b1) * gj;
                        v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                        let update = (m[j] / bc1) / ((v[j] / bc2).sqrt() + eps);
                        theta[j] = theta[j] * decay - lr * update;
                    }
                    var.set(&Tensor::from_vec(theta, var.shape(), var.device())?)?;
                }
                Moments::Device(m, v) => {
                    let g = (g.to_dtype(DType::F32)? * grad_scale)?;
                    *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                    *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    let m_hat = (&*m / bc1)?;
                    let v_hat = (&*v / bc2)?;
                    let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
                    let theta = var.as_tensor().to_dtype(DType::F32)?;
                    let theta = if c.weight_decay > 0.0 {
                        (&theta * (1.0 - c.lr * c.weight_decay))?
                    } else {
                        theta
                    };
                    var.set(&(theta - (update * c.lr)?)?.to_dtype(var.dtype())?)?;
                }
            }
        }
        Ok(())
    }

    /// Moments and step count as named tensors (`m.NAME`, `v.NAME`, `step`).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for ((name, var), mom) in self.vars.iter().zip(&self.moments) {
            let (m, v) = match mom {
                Moments::Host(m, v) => (
                    Tensor::from_slice(m, var.shape(), var.device())?,
                    Tensor::from_slice(v, var.shape(), var.device())?,
                ),
                Moments::Device(m, v) => (m.clone(), v.clone()),
            };
            out.insert(format!("m.{name}"), m);
            out.insert(format!("v.{name}"), v);
        }
        out.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?,
        );
        Ok(out)
    }

    /// Restore what [`Self::state`] saved; names must match.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let mut loaded = Vec::new();
            for key in [format!("m.{name}"), format!("v.{name}")] {
                let Some(t) = state.get(&key) else {
                    bail!("optimizer state has no `{key}`")
                };
                if t.dims() != var.dims() {
                    bail!(
                        "optimizer state `{key}` has shape {:?}, the variable {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                loaded.push(t.to_device(var.device())?.to_dtype(DType::F32)?);
            }
            let (m, v) = (loaded.remove(0), loaded.remove(0));
            self.moments[i] = if fused_on_host(var) {
                Moments::Host(m.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?)
            } else {
                Moments::Device(m, v)
            };
        }
        let Some(step) = state.get("step") else {
            bail!("optimizer state has no `step`")
        };
        self.step = step
            .to_device(&candle_core::Device::Cpu)?
            .to_vec1::<u32>()?[0] as usize;
        Ok(())
    }
}

/// Global L2 norm of the gradients of `vars`: √(Σ_i ‖g_i‖²) (missing gradients count 0).
pub fn grad_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f64> {
    let mut total = 0.0;
    for (_, v) in vars {
        if let Some(g) = grads.get(v) {
            total += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(total.sqrt())
}

/// The factor that clips the global gradient norm to `max_norm` (Pascanu et al. 2013):
/// `min(1, max_norm / (norm + 1e-6))`, as `torch.nn.utils.clip_grad_norm_`.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Stop training with a clear message when a number is NaN or infinite.
pub fn ensure_finite(what: &str, value: f64, step: usize) -> Result<()> {
    if !value.is_finite() {
        bail!("{what} became {value} at update {step}: training stopped (try a smaller learning rate)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One Adam step from zero state moves every coordinate by ≈ lr·sign(g)
    /// (m̂ = g, v̂ = g², so the update is g / (|g| + ε)).
    #[test]
    fn first_adam_step_is_lr_times_sign() {
        let x = Var::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let mut opt = Adam::new(
            vec![("x".into(), x.clone())],
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        let loss = (x.as_tensor() * Tensor::new(&[2.0f32, -0.5, 0.0], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads, 1.0).unwrap();
        let got: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-5
                && (got[1] + 1.9).abs() < 1e-5
                && (got[2] - 3.0).abs() < 1e-6
        );
        // State round-trips.
        let st = opt.state().unwrap();
        let mut opt2 = Adam::new(vec![("x".into(), x.clone())], AdamConfig::default()).unwrap();
        opt2.load_state(&st).unwrap();
        assert_eq!(opt2.step_count(), 1);
        assert!(opt2.load_state(&HashMap::new()).is_err());
    }

    #[test]
    fn clipping_and_finiteness() {
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 0.25).abs() < 1e-6);
        assert!(ensure_finite("loss", f64::NAN, 3)
            .unwrap_err()
            .to_string()
            .contains("loss became NaN at update 3"));
        assert!(ensure_finite("loss", 1.0, 3).is_ok());
    }
}
