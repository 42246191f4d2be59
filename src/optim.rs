//! Optimisation: AdamW with parameter groups and inspectable, saveable state;
//! [`optimize`], the one optimiser step (finite check → backward → gradient
//! norm → clipping → AdamW) that every trainer in the crate takes.

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;

/// Hyper-parameters of [`AdamW`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate (changed during training by a schedule, see
    /// [`AdamW::set_learning_rate`]; `lr` in files of earlier versions).
    #[serde(alias = "lr")]
    pub learning_rate: f64,
    /// Decay rate of the first moment (the running mean of gradients).
    pub beta1: f64,
    /// Decay rate of the second moment (the running mean of squared gradients).
    pub beta2: f64,
    /// Added to √v̂ so that rarely-updated parameters do not take huge steps.
    pub eps: f64,
    /// Decoupled weight decay (AdamW) of the single group [`AdamW::new`] makes;
    /// 0 gives plain Adam. With [`AdamW::with_groups`] each group has its own.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Variables that share a weight decay (PyTorch's "parameter group").
#[derive(Debug, Clone)]
pub struct ParamGroup {
    pub vars: Vec<(String, Var)>,
    pub weight_decay: f64,
}

impl ParamGroup {
    /// The usual split (nanoGPT, Hugging Face): matrices and embeddings (rank ≥ 2)
    /// decay by `weight_decay`; vectors — norm gains, biases — do not.
    pub fn decay_matrices_only(vars: Vec<(String, Var)>, weight_decay: f64) -> Vec<ParamGroup> {
        let (matrices, vectors): (Vec<_>, Vec<_>) =
            vars.into_iter().partition(|(_, v)| v.rank() >= 2);
        vec![
            ParamGroup {
                vars: matrices,
                weight_decay,
            },
            ParamGroup {
                vars: vectors,
                weight_decay: 0.0,
            },
        ]
    }
}

/// Adam (Kingma & Ba 2015) with decoupled weight decay (Loshchilov & Hutter 2019),
/// λ per parameter group:
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
pub struct AdamW {
    pub config: AdamConfig,
    /// Every variable with the weight decay of its group.
    params: Vec<Param>,
    step: usize,
}

#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    weight_decay: f64,
    moments: Moments,
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

fn zero_moments(v: &Var) -> candle_core::Result<Moments> {
    if fused_on_host(v) {
        Ok(Moments::Host(
            vec![0.0; v.elem_count()],
            vec![0.0; v.elem_count()],
        ))
    } else {
        let z = Tensor::zeros(v.shape(), DType::F32, v.device())?;
        Ok(Moments::Device(z.clone(), z))
    }
}

impl AdamW {
    /// Optimise the named variables (names are used when saving state), all
    /// with `config.weight_decay`.
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let group = ParamGroup {
            vars,
            weight_decay: config.weight_decay,
        };
        Self::with_groups(vec![group], config)
    }

    /// Optimise several groups of variables, each with its own weight decay.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Result<Self> {
        let mut params = Vec::new();
        for g in groups {
            for (name, var) in g.vars {
                params.push(Param {
                    moments: zero_moments(&var)?,
                    name,
                    var,
                    weight_decay: g.weight_decay,
                });
            }
        }
        let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("the variable `{}` is in the optimiser twice", w[0]);
        }
        Ok(Self {
            config,
            params,
            step: 0,
        })
    }

    /// Number of updates taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    /// The optimised variables with their names.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.clone()))
            .collect()
    }

    /// One update with gradients multiplied by `grad_scale` (from clipping).
    /// Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for p in self.params.iter_mut() {
            let var = &p.var;
            let Some(g) = grads.get(var) else { continue };
            match &mut p.moments {
                Moments::Host(m, v) => {
                    let update = HostUpdate {
                        moments: std::sync::Mutex::new((m, v)),
                        beta1: c.beta1 as f32,
                        beta2: c.beta2 as f32,
                        learning_rate: c.learning_rate as f32,
                        bias_correction1: bc1 as f32,
                        bias_correction2: bc2 as f32,
                        eps: c.eps as f32,
                        decay: 1.0 - (c.learning_rate * p.weight_decay) as f32,
                        grad_scale: grad_scale as f32,
                    };
                    update.apply(var, g)?;
                }
                Moments::Device(m, v) => {
                    let g = (g.to_dtype(DType::F32)? * grad_scale)?;
                    *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                    *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    let m_hat = (&*m / bc1)?;
                    let v_hat = (&*v / bc2)?;
                    let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
                    let theta = var.as_tensor().to_dtype(DType::F32)?;
                    let theta = if p.weight_decay > 0.0 {
                        (&theta * (1.0 - c.learning_rate * p.weight_decay))?
                    } else {
                        theta
                    };
                    var.set(&(theta - (update * c.learning_rate)?)?.to_dtype(var.dtype())?)?;
                }
            }
        }
        Ok(())
    }

    /// Moments and step count as named tensors (`m.NAME`, `v.NAME`, `step`).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            let (m, v) = match &p.moments {
                Moments::Host(m, v) => (
                    Tensor::from_slice(m, p.var.shape(), p.var.device())?,
                    Tensor::from_slice(v, p.var.shape(), p.var.device())?,
                ),
                Moments::Device(m, v) => (m.clone(), v.clone()),
            };
            out.insert(format!("m.{}", p.name), m);
            out.insert(format!("v.{}", p.name), v);
        }
        out.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?,
        );
        Ok(out)
    }

    /// Write [`Self::state`] to `path` as safetensors, atomically: the
    /// [`OPTIMIZER`](crate::io::checkpoint::OPTIMIZER) file of a checkpoint.
    pub fn save_state(&self, path: &std::path::Path) -> anyhow::Result<()> {
        crate::io::save_safetensors_atomic(&self.state()?, path)
    }

    /// Restore the moments from a file written by [`Self::save_state`], onto
    /// the variables' device; errors name the file.
    pub fn load_state_file(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let device = match self.params.first() {
            Some(p) => p.var.device().clone(),
            None => candle_core::Device::Cpu,
        };
        let state = candle_core::safetensors::load(path, &device)
            .with_context(|| format!("reading {}", path.display()))?;
        self.load_state(&state)
            .with_context(|| path.display().to_string())
    }

    /// Restore what [`Self::state`] saved; names must match.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for p in self.params.iter_mut() {
            let mut loaded = Vec::new();
            for key in [format!("m.{}", p.name), format!("v.{}", p.name)] {
                let Some(t) = state.get(&key) else {
                    bail!("optimizer state has no `{key}`")
                };
                if t.dims() != p.var.dims() {
                    bail!(
                        "optimizer state `{key}` has shape {:?}, the variable {:?}",
                        t.dims(),
                        p.var.dims()
                    );
                }
                loaded.push(t.to_device(p.var.device())?.to_dtype(DType::F32)?);
            }
            let (m, v) = (loaded.remove(0), loaded.remove(0));
            p.moments = if fused_on_host(&p.var) {
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

/// One AdamW update of an f32 CPU variable with moments kept on the host:
/// the formulas of [`AdamW`] in one pass over θ, g, m and v, writing θ in
/// place (no copies of the parameters or the gradient).
struct HostUpdate<'a> {
    /// m and v of the variable (a lock only to make the op `Sync`).
    moments: std::sync::Mutex<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    beta1: f32,
    beta2: f32,
    learning_rate: f32,
    /// 1 − β1^t.
    bias_correction1: f32,
    /// 1 − β2^t.
    bias_correction2: f32,
    eps: f32,
    /// 1 − lr·λ, the decoupled weight decay as a factor on θ.
    decay: f32,
    /// The clipping factor the gradient is multiplied by.
    grad_scale: f32,
}

impl HostUpdate<'_> {
    fn apply(&self, var: &Var, grad: &Tensor) -> Result<()> {
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = grad.storage_and_layout();
        let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        else {
            bail!("AdamW: the gradient is not a contiguous CPU tensor");
        };
        let op = HostUpdateOp {
            update: self,
            grad: &cpu.as_slice::<f32>()?[start..end],
        };
        var.as_tensor().inplace_op1(&op)?;
        Ok(())
    }
}

/// [`HostUpdate`] with the gradient's elements, as candle's in-place op on θ.
struct HostUpdateOp<'a, 'b> {
    update: &'a HostUpdate<'b>,
    grad: &'a [f32],
}

impl candle_core::InplaceOp1 for HostUpdateOp<'_, '_> {
    fn name(&self) -> &'static str {
        "rlhf-lab-adamw"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let u = self.update;
        let (candle_core::CpuStorage::F32(theta), Some((start, end))) =
            (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("AdamW: the variable is not a contiguous f32 tensor");
        };
        let theta = &mut theta[start..end];
        let mut moments = u.moments.lock().unwrap_or_else(|e| e.into_inner());
        let (m, v) = &mut *moments;
        if theta.len() != self.grad.len() || m.len() != theta.len() || v.len() != theta.len() {
            candle_core::bail!(
                "AdamW: {} parameters but {} gradients and {} moments",
                theta.len(),
                self.grad.len(),
                m.len()
            );
        }
        let state = m.iter_mut().zip(v.iter_mut());
        for ((t, &g), (m, v)) in theta.iter_mut().zip(self.grad).zip(state) {
            let g = g * u.grad_scale;
            *m = u.beta1 * *m + (1.0 - u.beta1) * g;
            *v = u.beta2 * *v + (1.0 - u.beta2) * g * g;
            let step = (*m / u.bias_correction1) / ((*v / u.bias_correction2).sqrt() + u.eps);
            *t = *t * u.decay - u.learning_rate * step;
        }
        Ok(())
    }
}

/// What one call of [`optimize`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    /// The loss before the update.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The factor clipping multiplied the gradients by (1 when not clipped).
    pub clip_scale: f64,
    /// Wall-clock seconds of the backward pass (shared by every optimiser of
    /// one [`optimize_each`]).
    pub backward_seconds: f64,
    /// Wall-clock seconds of this optimiser's gradient norm, clipping and step.
    pub step_seconds: f64,
}

/// The one optimiser step of every trainer in the crate:
///
/// ```text
/// stop if L is NaN/Inf
/// g = ∇L                                   (backward)
/// stop if ‖g‖ is NaN/Inf
/// g ← g · min(1, max_grad_norm / ‖g‖)      (global-norm clipping; 0 turns it off)
/// AdamW(g)
/// ```
///
/// Nothing changes when it stops: the error names the update
/// ("training loss became NaN at update 7").
pub fn optimize(loss: &Tensor, optimizer: &mut AdamW, max_grad_norm: f64) -> Result<Update> {
    Ok(optimize_each(loss, &mut [optimizer], max_grad_norm)?[0])
}

/// [`optimize`] for several optimisers sharing one loss — an actor and a
/// critic, say, each with its own learning rate: one backward pass, then each
/// optimiser clips the norm of *its own* variables' gradients and steps
/// (as OpenRLHF clips actor and critic separately). Nothing changes unless
/// every norm is finite.
pub fn optimize_each(
    loss: &Tensor,
    optimizers: &mut [&mut AdamW],
    max_grad_norm: f64,
) -> Result<Vec<Update>> {
    let update = optimizers.first().map_or(0, |o| o.step_count()) + 1;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    ensure_finite("training loss", value, update)?;
    let backward_start = std::time::Instant::now();
    let grads = loss.backward()?;
    let backward_seconds = backward_start.elapsed().as_secs_f64();
    let mut updates = Vec::with_capacity(optimizers.len());
    for optimizer in optimizers.iter() {
        let step_start = std::time::Instant::now();
        let norm = grad_norm(&grads, &optimizer.vars())?;
        ensure_finite("gradient norm", norm, update)?;
        let clip_scale = if max_grad_norm > 0.0 {
            clip_scale(norm, max_grad_norm)
        } else {
            1.0
        };
        updates.push(Update {
            loss: value,
            grad_norm: norm,
            clip_scale,
            backward_seconds,
            step_seconds: step_start.elapsed().as_secs_f64(),
        });
    }
    for (optimizer, u) in optimizers.iter_mut().zip(&mut updates) {
        let step_start = std::time::Instant::now();
        optimizer.step(&grads, u.clip_scale)?;
        u.step_seconds += step_start.elapsed().as_secs_f64();
    }
    Ok(updates)
}

/// Global L2 norm of the gradients of `vars`: √(Σ_i ‖g_i‖²) (missing gradients count 0).
pub fn grad_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f64> {
    let mut total = 0.0;
    for (_, v) in vars {
        if let Some(g) = grads.get(v) {
            total += sum_of_squares(g)?;
        }
    }
    Ok(total.sqrt())
}

/// Σ g² of one gradient in f64, added in index order: the value of
/// `g.to_dtype(F64)?.sqr()?.sum_all()?` (candle sums a contiguous tensor
/// one element after another), read in place for a contiguous f32 CPU
/// gradient instead of through two f64 copies.
fn sum_of_squares(g: &Tensor) -> Result<f64> {
    if g.dtype() == DType::F32 {
        let (storage, layout) = g.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            let xs = &cpu.as_slice::<f32>()?[start..end];
            return Ok(xs
                .iter()
                .fold(0.0, |sum, &x| sum + f64::from(x) * f64::from(x)));
        }
    }
    Ok(g.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
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
        let mut opt = AdamW::new(
            vec![("x".into(), x.clone())],
            AdamConfig {
                learning_rate: 0.1,
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
        let mut opt2 = AdamW::new(vec![("x".into(), x.clone())], AdamConfig::default()).unwrap();
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

    /// One backward, two optimisers: each measures and clips the norm of its
    /// own variables' gradients and steps at its own learning rate.
    #[test]
    fn optimize_each_clips_each_optimiser_on_its_own() {
        let a = Var::new(&[1.0f32, 1.0], &Device::Cpu).unwrap();
        let b = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let adam = |name: &str, v: &Var, lr| {
            AdamW::new(
                vec![(name.to_string(), v.clone())],
                AdamConfig {
                    learning_rate: lr,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let (mut oa, mut ob) = (adam("a", &a, 0.1), adam("b", &b, 0.01));
        // L = 3·(a0 + a1) + 4·b: ‖∇a‖ = 3√2, ‖∇b‖ = 4.
        let loss = ((a.as_tensor().sum_all().unwrap() * 3.0).unwrap()
            + (b.as_tensor().sum_all().unwrap() * 4.0).unwrap())
        .unwrap();
        let u = optimize_each(&loss, &mut [&mut oa, &mut ob], 1.0).unwrap();
        assert!((u[0].grad_norm - 3.0 * 2f64.sqrt()).abs() < 1e-5);
        assert!((u[1].grad_norm - 4.0).abs() < 1e-5);
        assert!((u[0].clip_scale - 1.0 / (3.0 * 2f64.sqrt())).abs() < 1e-6);
        assert!((u[1].clip_scale - 0.25).abs() < 1e-6);
        // A first Adam step moves each coordinate by its own lr.
        let got_a: Vec<f32> = a.as_tensor().to_vec1().unwrap();
        let got_b: Vec<f32> = b.as_tensor().to_vec1().unwrap();
        assert!(got_a.iter().all(|x| (x - 0.9).abs() < 1e-5), "{got_a:?}");
        assert!((got_b[0] - 0.99).abs() < 1e-5, "{got_b:?}");
    }
}
