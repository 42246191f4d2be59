//! The fused CPU softmax kernel of [`super::softmax_last_dim`].

use super::contiguous_slice;
use candle_core::{Result, Tensor, D};

/// The CPU softmax kernel with its backward pass.
pub(super) struct FusedSoftmax;

impl candle_core::CustomOp1 for FusedSoftmax {
    fn name(&self) -> &'static str {
        "rlhf-lab-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, "softmax: input")?;
        let n = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        let tasks = out.chunks_mut(n * 64).zip(x.chunks(n * 64));
        super::threads::for_each(tasks, |(o, xs)| {
            for (orow, xrow) in o.chunks_mut(n).zip(xs.chunks(n)) {
                let max = xrow.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (oi, &xi) in orow.iter_mut().zip(xrow) {
                    *oi = (xi - max).exp();
                    sum += *oi;
                }
                let inv = 1.0 / sum;
                orow.iter_mut().for_each(|oi| *oi *= inv);
            }
        });
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((grad_res.broadcast_sub(&dot)? * res)?))
    }
}
