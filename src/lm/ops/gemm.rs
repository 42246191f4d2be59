//! The fused kernels' one way into the `gemm` crate, the matrix multiply
//! candle's CPU backend calls: strided f32 operands, called with the same
//! arguments candle passes so that products match candle's bit for bit.

use std::mem::MaybeUninit;

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
    /// candle's CPU threads ([`super::threads`]), each taking a band of
    /// rows, for products as large as `gemm` would thread itself.
    Candle,
}

/// `gemm`'s own threading threshold (`m·n·k`, gemm-common 0.19's
/// `DEFAULT_THREADING_THRESHOLD`): smaller products run on one thread.
const THREADING_THRESHOLD: usize = 48 * 48 * 256;

/// Row bands start at multiples of this, `gemm`'s f32 register tile height
/// with AVX2 (16 rows), so that no band ends in a part-filled tile. Only for
/// speed: a row has the same bits whichever call computes it (tested).
const BAND_ALIGN: usize = 16;

/// `dst (m, n) = [dst +] lhs (m, k) · rhs (k, n)`, dst row-major.
///
/// Split across threads by bands of rows, each one `gemm` call on one
/// thread: a row's value is the same sum in the same order (`gemm` blocks
/// the depth k by k alone), so products are bit-identical for any thread
/// count and to candle's matmul.
pub(super) fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Matrix,
    rhs: Matrix,
    threads: Threads,
) {
    // SAFETY: the same memory seen as possibly-uninitialised elements; only
    // f32 values are written through it.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    gemm_in_bands(
        (m, n, k),
        dst,
        accumulate,
        lhs,
        rhs,
        bands(m, n, k, threads),
    );
}

/// How many row bands a product is split in.
fn bands(m: usize, n: usize, k: usize, threads: Threads) -> usize {
    match threads {
        Threads::One => 1,
        Threads::Candle if m.saturating_mul(n).saturating_mul(k) < THREADING_THRESHOLD => 1,
        Threads::Candle => super::threads::available(),
    }
}

/// [`gemm_into`] in (at most) `bands` bands of rows on candle's threads.
/// `dst` may be uninitialised unless `accumulate`; every element of its
/// first m·n is written.
fn gemm_in_bands(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    accumulate: bool,
    lhs: Matrix,
    rhs: Matrix,
    bands: usize,
) {
    assert!(dst.len() >= m * n && lhs.holds(m, k) && rhs.holds(k, n));
    let band_rows = m.div_ceil(bands.max(1)).next_multiple_of(BAND_ALIGN);
    if band_rows >= m || n == 0 {
        gemm_one_thread((m, n, k), &mut dst[..m * n], accumulate, lhs, rhs);
        return;
    }
    let band_jobs = dst[..m * n].chunks_mut(band_rows * n).enumerate();
    super::threads::for_each(band_jobs, |(band, dst)| {
        let lhs = Matrix {
            data: &lhs.data[band * band_rows * lhs.row_stride..],
            ..lhs
        };
        gemm_one_thread((dst.len() / n, n, k), dst, accumulate, lhs, rhs);
    });
}

/// One `gemm` call on this thread, with the arguments candle's CPU matmul
/// passes.
fn gemm_one_thread(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    accumulate: bool,
    lhs: Matrix,
    rhs: Matrix,
) {
    assert!(dst.len() >= m * n && lhs.holds(m, k) && rhs.holds(k, n));
    // SAFETY: the assert keeps every address the strides reach inside the
    // slices; dst is written with strides (n, 1) within its m·n elements,
    // and read only when accumulating (`read_dst`), when the callers pass
    // initialised elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
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
            gemm::Parallelism::None,
        );
    }
}

/// `lhs (m, k) · rhs (k, n)` into a new row-major (m, n) buffer, on
/// candle's CPU threads. The buffer is not zero-filled first: `gemm` writes
/// every element.
pub(super) fn matmul((m, n, k): (usize, usize, usize), lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    let len = m * n;
    let mut dst = Vec::with_capacity(len);
    let bands = bands(m, n, k, Threads::Candle);
    gemm_in_bands(
        (m, n, k),
        &mut dst.spare_capacity_mut()[..len],
        false,
        lhs,
        rhs,
        bands,
    );
    // SAFETY: a product that does not accumulate writes all m·n elements
    // (`gemm` writes zeros when k = 0).
    unsafe { dst.set_len(len) };
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn uninit(xs: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: only f32 values are written through it.
        unsafe { &mut *(xs as *mut [f32] as *mut [MaybeUninit<f32>]) }
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = gridworld::Rng::new(seed);
        (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect()
    }

    /// A product split in row bands (as on several threads) has the bits of
    /// one `gemm` call and of candle's matmul, for plain and transposed
    /// operands and when accumulating; sizes are above the threading
    /// threshold and not multiples of the band alignment.
    #[test]
    fn bands_are_bit_identical_to_one_call_and_to_candle() {
        let (m, n, k) = (300, 130, 600);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let start = values(m * n, 3);
        let cpu = &Device::Cpu;
        let a_t = Tensor::from_slice(&a, (m, k), cpu).unwrap();
        let b_t = Tensor::from_slice(&b, (k, n), cpu).unwrap();
        let candle: Vec<f32> = a_t
            .matmul(&b_t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // The transpose of a stored (k, m) matrix.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        for lhs in [Matrix::rows(&a, k), Matrix::transposed(&at, m)] {
            for accumulate in [false, true] {
                let run = |bands| {
                    let mut dst = start.clone();
                    gemm_in_bands(
                        (m, n, k),
                        uninit(&mut dst),
                        accumulate,
                        lhs,
                        Matrix::rows(&b, n),
                        bands,
                    );
                    dst
                };
                let one = run(1);
                // Rows computed in calls that start anywhere (not on a tile
                // boundary) have the same bits too.
                let mut pieces = start.clone();
                for (i, rows) in pieces.chunks_mut(37 * n).enumerate() {
                    let lhs = Matrix {
                        data: &lhs.data[i * 37 * lhs.row_stride..],
                        ..lhs
                    };
                    let m_piece = rows.len() / n;
                    let rhs = Matrix::rows(&b, n);
                    gemm_one_thread((m_piece, n, k), uninit(rows), accumulate, lhs, rhs);
                }
                assert_eq!(pieces, one, "37-row pieces, accumulate {accumulate}");
                for bands in [2, 3, 7] {
                    assert_eq!(run(bands), one, "{bands} bands, accumulate {accumulate}");
                }
                if !accumulate {
                    assert_eq!(one, candle);
                    let fresh = matmul((m, n, k), lhs, Matrix::rows(&b, n));
                    assert_eq!(fresh, candle, "matmul into a buffer not zero-filled");
                }
            }
        }
    }
}
