//! The fused CPU kernel of [`super::swiglu`], `y = silu(a) ⊙ b` with
//! silu(a) = a·σ(a), and its backward (σ' = σ(1 − σ)):
//!
//! ```text
//! ∂L/∂a = ∂L/∂y ⊙ b ⊙ σ(a)·(1 + a·(1 − σ(a)))
//! ∂L/∂b = ∂L/∂y ⊙ silu(a)
//! ```
//!
//! The forward computes silu exactly as candle's `silu` does,
//! `a / (1 + exp(−a))`, so its values are bit-identical to the composed op's;
//! the backward (training only) uses the vectorisable [`super::exp`].

use super::contiguous_slice;
use super::threads;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Elements handed to one task.
const ELEMENTS_PER_TASK: usize = 4096;

/// silu(a) = a / (1 + e^(−a)), written as candle writes it.
fn silu(a: f32) -> f32 {
    a / (1.0 + (-a).exp())
}

simd_kernel! {
    /// ∂L/∂a = g·b·σ(a)·(1 + a·(1 − σ(a))) and ∂L/∂b = g·a·σ(a) for one
    /// task's elements.
    fn gradients(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dy: &[f32]) {
        let inputs = a.iter().zip(b).zip(dy);
        for ((dai, dbi), ((&ai, &bi), &dyi)) in da.iter_mut().zip(db).zip(inputs) {
            let sigma = 1.0 / (1.0 + super::exp::exp(-ai));
            *dai = dyi * bi * sigma * (1.0 + ai * (1.0 - sigma));
            *dbi = dyi * ai * sigma;
        }
    }
}

/// The forward pass: `a` (the gate) and `b` (the up projection), same shape,
/// f32, contiguous.
pub(super) struct FusedSwiGlu;

impl candle_core::CustomOp2 for FusedSwiGlu {
    fn name(&self) -> &'static str {
        "rlhf-lab-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = contiguous_slice::<f32>(s1, l1, "swiglu: the gate")?;
        let b = contiguous_slice::<f32>(s2, l2, "swiglu: the up projection")?;
        let mut out = vec![0f32; a.len()];
        let tasks = out
            .chunks_mut(ELEMENTS_PER_TASK)
            .zip(a.chunks(ELEMENTS_PER_TASK))
            .zip(b.chunks(ELEMENTS_PER_TASK));
        threads::for_each(tasks, |((o, a), b)| {
            for ((oi, &ai), &bi) in o.iter_mut().zip(a).zip(b) {
                *oi = silu(ai) * bi;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = a.apply_op3_no_bwd(b, &grad_res.contiguous()?, &SwiGluGrad)?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// The backward pass in one pass: output (2, …a) holding ∂L/∂a and ∂L/∂b.
struct SwiGluGrad;

impl candle_core::CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "rlhf-lab-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = contiguous_slice::<f32>(s1, l1, "swiglu backward: the gate")?;
        let b = contiguous_slice::<f32>(s2, l2, "swiglu backward: the up projection")?;
        let dy = contiguous_slice::<f32>(s3, l3, "swiglu backward: the gradient")?;
        let mut out = vec![0f32; 2 * a.len()];
        let (da, db) = out.split_at_mut(a.len());
        let tasks = da
            .chunks_mut(ELEMENTS_PER_TASK)
            .zip(db.chunks_mut(ELEMENTS_PER_TASK))
            .zip(a.chunks(ELEMENTS_PER_TASK))
            .zip(
                b.chunks(ELEMENTS_PER_TASK)
                    .zip(dy.chunks(ELEMENTS_PER_TASK)),
            );
        threads::for_each(tasks, |(((da, db), a), (b, dy))| {
            gradients(da, db, a, b, dy)
        });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}
