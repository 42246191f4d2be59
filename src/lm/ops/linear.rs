//! The fused CPU kernel of [`super::linear`], `Y = X Wᵀ` for X (n, in) and
//! W (out, in), and its backward as two matrix products written straight into
//! the layouts the gradients are stored in:
//!
//! ```text
//! ∂L/∂X = ∂L/∂Y · W        (n, out)·(out, in)
//! ∂L/∂W = (∂L/∂Y)ᵀ · X     (out, n)·(n, in)
//! ```
//!
//! Composed from candle ops, `x.reshape(..).matmul(&w.t())` puts four nodes in
//! the graph (two reshapes, a transpose, the product); backward then allocates
//! and adds a zero gradient for each and copies ∂L/∂W through a strided
//! transpose. Here it is one node. The forward calls the `gemm` crate with
//! exactly the arguments candle's CPU matmul passes it, so its values are
//! bit-identical to the composed op's; so is ∂L/∂X.

use super::contiguous_slice;
use super::gemm::{matmul, Matrix};
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// (rows, cols) of a layout read as a matrix: its last axis is the columns,
/// all leading axes together the rows. An error naming `what` for a scalar.
fn dims2(layout: &Layout, what: &str) -> Result<(usize, usize)> {
    match layout.dims().split_last() {
        Some((&cols, lead)) => Ok((lead.iter().product(), cols)),
        None => candle_core::bail!("{what} must have at least one axis"),
    }
}

/// `dims` with its last axis replaced by `last`.
fn with_last(dims: &[usize], last: usize) -> Shape {
    let mut dims = dims.to_vec();
    if let Some(d) = dims.last_mut() {
        *d = last;
    }
    Shape::from(dims)
}

/// The forward pass `Y = X Wᵀ`: X (…, in) and W (out, in), f32, contiguous;
/// Y is (…, out).
pub(super) struct FusedLinear;

impl candle_core::CustomOp2 for FusedLinear {
    fn name(&self) -> &'static str {
        "rlhf-lab-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, inner) = dims2(l1, "linear: the input")?;
        let (out, w_inner) = dims2(l2, "linear: the weight")?;
        if l2.dims().len() != 2 || inner != w_inner {
            candle_core::bail!(
                "linear: input has {inner} features, the weight (out {out}, in {w_inner}) expects {w_inner}"
            );
        }
        let x = contiguous_slice::<f32>(s1, l1, "linear: the input")?;
        let w = contiguous_slice::<f32>(s2, l2, "linear: the weight")?;
        // X (n, in) times Wᵀ (in, out), read from W (out, in).
        let y = matmul(
            (n, out, inner),
            Matrix::rows(x, inner),
            Matrix::transposed(w, inner),
        );
        Ok((CpuStorage::F32(y), with_last(l1.dims(), out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.contiguous()?;
        let grad_x = grad.apply_op2_no_bwd(w, &LinearGrad::Input)?;
        let grad_w = grad.apply_op2_no_bwd(x, &LinearGrad::Weight)?;
        Ok((Some(grad_x), Some(grad_w)))
    }
}

/// The two products of the backward pass, each from the output gradient
/// G (…, out) and one operand.
enum LinearGrad {
    /// ∂L/∂X = G W from W (out, in); (…, in).
    Input,
    /// ∂L/∂W = Gᵀ X from X (…, in), summed over all leading axes; (out, in).
    Weight,
}

impl candle_core::CustomOp2 for LinearGrad {
    fn name(&self) -> &'static str {
        match self {
            Self::Input => "rlhf-lab-linear-input-grad",
            Self::Weight => "rlhf-lab-linear-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let what = "linear backward: the output gradient";
        let (n, out) = dims2(l1, what)?;
        let g = contiguous_slice::<f32>(s1, l1, what)?;
        let what = match self {
            Self::Input => "linear backward: the weight",
            Self::Weight => "linear backward: the input",
        };
        let (_, inner) = dims2(l2, what)?;
        let other = contiguous_slice::<f32>(s2, l2, what)?;
        Ok(match self {
            Self::Input => (
                CpuStorage::F32(matmul(
                    (n, inner, out),
                    Matrix::rows(g, out),
                    Matrix::rows(other, inner),
                )),
                with_last(l1.dims(), inner),
            ),
            // Gᵀ (out, n) read from G (n, out).
            Self::Weight => (
                CpuStorage::F32(matmul(
                    (out, inner, n),
                    Matrix::transposed(g, out),
                    Matrix::rows(other, inner),
                )),
                Shape::from((out, inner)),
            ),
        })
    }
}
