//! The fused CPU kernel of [`super::rotate_half_rope`]: with x = [x₁, x₂]
//! split in halves along the last axis,
//!
//! ```text
//! y = [x₁ cos − x₂ sin,  x₂ cos + x₁ sin]
//! ```
//!
//! in one pass, computed in the composed op's order so that the values are
//! bit-identical. The map is a rotation by angle θ per pair, so its backward is
//! the rotation by −θ: the same kernel with sin negated. The tables are
//! constants and get no gradient.

use super::contiguous_slice;
use super::threads;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Rotate x (b, h, t, d) by the tables cos, sin (b, 1, t, d/2), all f32 and
/// contiguous; `inverse` rotates by −θ.
pub(super) struct FusedRope {
    pub inverse: bool,
}

impl candle_core::CustomOp3 for FusedRope {
    fn name(&self) -> &'static str {
        "rlhf-lab-rope"
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
        let x = contiguous_slice::<f32>(s1, l1, "rope: x")?;
        let cos = contiguous_slice::<f32>(s2, l2, "rope: the cos table")?;
        let sin = contiguous_slice::<f32>(s3, l3, "rope: the sin table")?;
        let (_b, h, t, d) = l1.shape().dims4()?;
        let half = d / 2;
        let sign = if self.inverse { -1f32 } else { 1f32 };
        let mut out = vec![0f32; x.len()];
        // One task per (batch, head): t rows of width d.
        let tasks = out.chunks_mut(t * d).zip(x.chunks(t * d)).enumerate();
        threads::for_each(tasks, |(bh, (o, xs))| {
            let table = (bh / h.max(1)) * t * half;
            for (p, (orow, xrow)) in o.chunks_mut(d).zip(xs.chunks(d)).enumerate() {
                let c = &cos[table + p * half..table + (p + 1) * half];
                let s = &sin[table + p * half..table + (p + 1) * half];
                let (x1, x2) = xrow.split_at(half);
                let (o1, o2) = orow.split_at_mut(half);
                for i in 0..half {
                    let si = sign * s[i];
                    o1[i] = x1[i] * c[i] - x2[i] * si;
                    o2[i] = x2[i] * c[i] + x1[i] * si;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let inverse = FusedRope {
            inverse: !self.inverse,
        };
        let dx = grad_res.contiguous()?.apply_op3(cos, sin, inverse)?;
        Ok((Some(dx), None, None))
    }
}
