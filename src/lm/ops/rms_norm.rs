//! The fused CPU RMSNorm kernel of [`super::rms_norm`] and its backward.
//!
//! With r = 1/√(mean(x²) + ε) per row, y = x·r ⊙ g, u = g ⊙ ∂L/∂y and n the
//! width (Zhang & Sennrich 2019, eq. 4):
//!
//! ```text
//! ∂L/∂x = r·u − x · r³ · (Σⱼ xⱼuⱼ) / n
//! ∂L/∂g = Σ_rows x·r ⊙ ∂L/∂y
//! ```

use super::contiguous_slice;
use super::threads;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Rows handed to one task.
const ROWS_PER_TASK: usize = 16;

/// `1/√(mean(x²) + ε)` of one row.
#[inline(always)]
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / row.len().max(1) as f32;
    1.0 / (mean_sq + eps).sqrt()
}

simd_kernel! {
    /// yᵢ = xᵢ·r·gᵢ with r = 1/√(mean(x²) + ε), row by row.
    fn normalize_rows(out: &mut [f32], x: &[f32], g: &[f32], eps: f32) {
        let n = g.len().max(1);
        for (orow, xrow) in out.chunks_mut(n).zip(x.chunks(n)) {
            let r = inv_rms(xrow, eps);
            for ((oi, &xi), &gi) in orow.iter_mut().zip(xrow).zip(g) {
                *oi = xi * r * gi;
            }
        }
    }
}

simd_kernel! {
    /// ∂L/∂x row by row into `dx`, and each row's x·r ⊙ ∂L/∂y added to `dw`.
    fn rows_backward(dx: &mut [f32], dw: &mut [f32], x: &[f32], dy: &[f32], g: &[f32], eps: f32) {
        let n = g.len().max(1);
        for (dx, (x, dy)) in dx.chunks_mut(n).zip(x.chunks(n).zip(dy.chunks(n))) {
            let r = inv_rms(x, eps);
            let xu: f32 = x.iter().zip(dy).zip(g).map(|((x, d), w)| x * w * d).sum();
            let c = r * r * r * xu / n as f32;
            for i in 0..n {
                dx[i] = r * g[i] * dy[i] - x[i] * c;
                dw[i] += x[i] * r * dy[i];
            }
        }
    }
}

/// The forward pass: x (…, n) and the weight g (n), f32, contiguous.
pub(super) struct FusedRmsNorm {
    pub eps: f32,
}

impl candle_core::CustomOp2 for FusedRmsNorm {
    fn name(&self) -> &'static str {
        "rlhf-lab-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s1, l1, "rms_norm: x")?;
        let g = contiguous_slice::<f32>(s2, l2, "rms_norm: the weight")?;
        let n = g.len().max(1);
        let mut out = vec![0f32; x.len()];
        let tasks = out
            .chunks_mut(n * ROWS_PER_TASK)
            .zip(x.chunks(n * ROWS_PER_TASK));
        threads::for_each(tasks, |(o, xs)| normalize_rows(o, xs, g, self.eps));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = grad_res.contiguous()?;
        // One pass writes ∂L/∂x followed by ∂L/∂g.
        let both = x.apply_op3_no_bwd(weight, &dy, &RmsNormGrad { eps: self.eps })?;
        let n = x.elem_count();
        let dx = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = both
            .narrow(0, n, weight.elem_count())?
            .reshape(weight.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// The backward pass, one pass per row: output (len(x) + n,) holding ∂L/∂x
/// then ∂L/∂g (each task sums its rows' x·r ⊙ ∂L/∂y; the tasks' sums
/// are added at the end).
struct RmsNormGrad {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rlhf-lab-rms-norm-grad"
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
        let x = contiguous_slice::<f32>(s1, l1, "rms_norm backward: x")?;
        let g = contiguous_slice::<f32>(s2, l2, "rms_norm backward: the weight")?;
        let dy = contiguous_slice::<f32>(s3, l3, "rms_norm backward: the gradient")?;
        let n = g.len().max(1);
        let mut out = vec![0f32; x.len() + n];
        let (dx, dw) = out.split_at_mut(x.len());
        let chunk = n * ROWS_PER_TASK;
        let tasks = dx
            .chunks_mut(chunk)
            .zip(x.chunks(chunk).zip(dy.chunks(chunk)));
        let partial_dw: Vec<Vec<f32>> = threads::map(tasks, |(dxs, (xs, dys))| {
            let mut dw = vec![0f32; n];
            rows_backward(dxs, &mut dw, xs, dys, g, self.eps);
            dw
        });
        for part in partial_dw {
            dw.iter_mut().zip(part).for_each(|(total, p)| *total += p);
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + n)))
    }
}
