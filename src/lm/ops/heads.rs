//! The fused CPU kernels of [`super::split_heads`] and [`super::merge_heads`]:
//! attention's change of layout between (b, t, n·d), a row per position with
//! the n heads side by side as the projections write them, and (b, n, t, d),
//! one contiguous (t, d) matrix per head as attention reads them.
//!
//! Composed, `x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()` puts
//! three nodes in the graph; backward gives each a zero-filled gradient and
//! an add, and copies the transposed gradient through its strides once more.
//! Here each direction is one node whose backward is the other direction. A
//! permutation moves values without arithmetic, so the results are the
//! composed op's bit for bit.

use super::contiguous_slice;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Which way the layout changes.
#[derive(Clone, Copy)]
pub(super) enum HeadLayout {
    /// (b, t, n·d) → (b, n, t, d) with n = `heads`.
    Split { heads: usize },
    /// (b, n, t, d) → (b, t, n·d).
    Merge,
}

impl candle_core::CustomOp1 for HeadLayout {
    fn name(&self) -> &'static str {
        match self {
            Self::Split { .. } => "rlhf-lab-split-heads",
            Self::Merge => "rlhf-lab-merge-heads",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, "attention heads: the input")?;
        // Written in order, so the buffer is never zero-filled first.
        let mut out = Vec::with_capacity(x.len());
        let shape = match *self {
            Self::Split { heads } => {
                let (b, t, width) = layout.shape().dims3()?;
                if heads == 0 || width % heads != 0 {
                    candle_core::bail!(
                        "split_heads: a width of {width} does not split into {heads} heads"
                    );
                }
                let d = width / heads;
                for (sequence, h) in (0..b).flat_map(|s| (0..heads).map(move |h| (s, h))) {
                    for p in 0..t {
                        let row = (sequence * t + p) * width + h * d;
                        out.extend_from_slice(&x[row..row + d]);
                    }
                }
                Shape::from((b, heads, t, d))
            }
            Self::Merge => {
                let (b, heads, t, d) = layout.shape().dims4()?;
                for (sequence, p) in (0..b).flat_map(|s| (0..t).map(move |p| (s, p))) {
                    for h in 0..heads {
                        let row = ((sequence * heads + h) * t + p) * d;
                        out.extend_from_slice(&x[row..row + d]);
                    }
                }
                Shape::from((b, t, heads * d))
            }
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let inverse = match self {
            Self::Split { .. } => Self::Merge,
            Self::Merge => Self::Split { heads: arg.dim(1)? },
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}
