//! The fused kernels' one way into the `gemm` crate, the matrix multiply
//! candle's CPU backend calls: strided f32 operands, called with the same
//! arguments candle passes so that products match candle's bit for bit.

/// An f32 matrix in a slice: element (i, j) is at `i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A row-major matrix with `cols` columns.
    pub(super) fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns, read in place.
    pub(super) fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Whether every element of a (rows, cols) matrix lies in the slice.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || self.data.len() > (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// Threads for one product.
#[derive(Clone, Copy)]
pub(super) enum Threads {
    /// This thread only (the kernel already runs one task per head).
    One,
    /// As candle's CPU matmul: `get_num_threads()` (gemm still runs small
    /// products on one).
    Candle,
}

/// `dst (m, n) = [dst +] lhs (m, k) · rhs (k, n)`, dst row-major.
pub(super) fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Matrix,
    rhs: Matrix,
    threads: Threads,
) {
    assert!(dst.len() >= m * n && lhs.holds(m, k) && rhs.holds(k, n));
    let parallelism = match threads {
        Threads::Candle if candle_core::utils::get_num_threads() > 1 => {
            gemm::Parallelism::Rayon(candle_core::utils::get_num_threads())
        }
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the assert keeps every address the strides reach inside the
    // slices; dst is written with strides (n, 1) within its m·n elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `lhs (m, k) · rhs (k, n)` into a new row-major (m, n) buffer, threaded as
/// candle's matmul.
pub(super) fn matmul((m, n, k): (usize, usize, usize), lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    let mut dst = vec![0f32; m * n];
    gemm_into((m, n, k), &mut dst, false, lhs, rhs, Threads::Candle);
    dst
}
