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
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// A row-major f32 matrix in a slice, or a transposed view of one: element
/// (i, j) is at `i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

/// `lhs (m, k) · rhs (k, n)` into a new row-major (m, n) buffer, by the
/// `gemm` crate as candle's CPU matmul calls it (threads as candle's
/// `get_num_threads`).
fn matmul(m: usize, n: usize, k: usize, lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    assert!(lhs.data.len() >= m * k && rhs.data.len() >= k * n);
    let mut dst = vec![0f32; m * n];
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: dst holds m·n elements written with strides (n, 1); lhs and rhs
    // hold at least m·k and k·n elements and their strides address only
    // those (checked above and by the callers' shapes).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    dst
}

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
        let x = Matrix {
            data: x,
            row_stride: inner,
            col_stride: 1,
        };
        // Wᵀ (in, out) read from W (out, in).
        let w_t = Matrix {
            data: w,
            row_stride: 1,
            col_stride: inner,
        };
        let y = matmul(n, out, inner, x, w_t);
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
        let grad_x = grad.apply_op2_no_bwd(w, &InputGrad)?;
        let grad_w = grad.apply_op2_no_bwd(x, &WeightGrad)?;
        Ok((Some(grad_x), Some(grad_w)))
    }
}

/// ∂L/∂X = G W for G (…, out) and W (out, in); (…, in).
struct InputGrad;

impl candle_core::CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "rlhf-lab-linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, out) = dims2(l1, "linear backward: the output gradient")?;
        let (_, inner) = dims2(l2, "linear backward: the weight")?;
        let g = Matrix {
            data: contiguous_slice::<f32>(s1, l1, "linear backward: the output gradient")?,
            row_stride: out,
            col_stride: 1,
        };
        let w = Matrix {
            data: contiguous_slice::<f32>(s2, l2, "linear backward: the weight")?,
            row_stride: inner,
            col_stride: 1,
        };
        Ok((
            CpuStorage::F32(matmul(n, inner, out, g, w)),
            with_last(l1.dims(), inner),
        ))
    }
}

/// ∂L/∂W = Gᵀ X for G (…, out) and X (…, in), summed over all leading
/// axes; (out, in).
struct WeightGrad;

impl candle_core::CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "rlhf-lab-linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, out) = dims2(l1, "linear backward: the output gradient")?;
        let (_, inner) = dims2(l2, "linear backward: the input")?;
        // Gᵀ (out, n) read from G (n, out).
        let g_t = Matrix {
            data: contiguous_slice::<f32>(s1, l1, "linear backward: the output gradient")?,
            row_stride: 1,
            col_stride: out,
        };
        let x = Matrix {
            data: contiguous_slice::<f32>(s2, l2, "linear backward: the input")?,
            row_stride: inner,
            col_stride: 1,
        };
        Ok((
            CpuStorage::F32(matmul(out, inner, n, g_t, x)),
            Shape::from((out, inner)),
        ))
    }
}
