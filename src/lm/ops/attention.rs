//! The fused CPU kernel of [`super::fused_attention`]: scaled dot-product
//! attention with grouped-query heads, one rayon task per (sequence,
//! key/value head), and its backward pass.
//!
//! For query head h reading key/value head g = ⌊h / n_rep⌋:
//!
//! ```text
//! S = s·Q_h K_gᵀ + M        P = softmax(S) (rows)        Y_h = P V_g
//! ```
//!
//! and, with G = ∂L/∂Y_h (Vaswani et al. 2017; the backward as in
//! FlashAttention, Dao et al. 2022, Alg. 4, with P kept from the forward pass,
//! as the composed op keeps it):
//!
//! ```text
//! ∂L/∂V_g += Pᵀ G           ∂L/∂P = G V_gᵀ
//! ∂L/∂S = P ⊙ (∂L/∂P − rowsum(∂L/∂P ⊙ P))
//! ∂L/∂Q_h = s·∂L/∂S K_g     ∂L/∂K_g += s·(∂L/∂S)ᵀ Q_h
//! ```
//!
//! The composed version repeats K and V for every query head (a copy),
//! runs the products one head at a time on one thread, and puts seven nodes
//! in the graph whose backward allocates and adds a zero gradient each. Here
//! the heads sharing a key/value head are one task. The forward makes the
//! same `gemm` calls, scaling and masking as the composed op; its softmax
//! takes the vectorisable [`super::exp`], so the values agree with the
//! composed op's to about 1e-7 rather than bit for bit (it runs in training
//! steps only).

use super::gemm::{gemm_into, Matrix, Threads};
use candle_core::{CpuStorage, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Attention over q (b, h, t, d), k and v (b, h_kv, T, d), f32, contiguous,
/// h a multiple of h_kv; output (b, h, t, d).
pub(super) struct FusedAttention {
    /// s, usually 1/√d.
    pub scale: f32,
    /// Additive bias M, (b or 1, 1, t, T) f32 contiguous, or none.
    pub bias: Option<Tensor>,
    /// P (b, h, t, T) from the forward pass, for the backward pass.
    pub probs: Mutex<Option<Arc<Vec<f32>>>>,
}

/// The sizes of one call.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    queries: usize,
    keys: usize,
    head_dim: usize,
}

impl Dims {
    fn n_rep(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// The sizes of q (b, h, t, d), k and v (b, h_kv, T, d), or an error naming
/// the shapes when they do not fit (h a multiple of h_kv).
pub(super) fn check_dims(q: &[usize], k: &[usize], v: &[usize]) -> Result<Dims> {
    let (&[batch, heads, queries, head_dim], &[kb, kv_heads, keys, kd]) = (q, k) else {
        candle_core::bail!("attention: q and k must have rank 4, got {q:?} and {k:?}");
    };
    if k != v || kb != batch || kd != head_dim || kv_heads == 0 || heads % kv_heads != 0 {
        candle_core::bail!(
            "attention: q {q:?}, k {k:?} and v {v:?} do not fit (b, h, t, d) and (b, h_kv, T, d) with h a multiple of h_kv"
        );
    }
    Ok(Dims {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        head_dim,
    })
}

/// The f32 elements of a contiguous CPU tensor.
fn with_slice<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("{what} must be on the CPU");
    };
    f(super::contiguous_slice::<f32>(cpu, layout, what)?)
}

/// P = softmax(s·Q Kᵀ + M) row by row into `probs` (t, T): the composed op's
/// arithmetic in its order (product, scale, bias, then softmax).
fn probabilities(
    dims: Dims,
    q: &[f32],
    k: &[f32],
    scale: f32,
    bias: Option<&[f32]>,
    probs: &mut [f32],
) {
    let (t, keys, d) = (dims.queries, dims.keys, dims.head_dim);
    gemm_into(
        (t, keys, d),
        probs,
        false,
        Matrix::rows(q, d),
        Matrix::transposed(k, d),
        Threads::One,
    );
    for (i, row) in probs.chunks_mut(keys).enumerate() {
        match bias {
            Some(m) => {
                for (s, &mij) in row.iter_mut().zip(&m[i * keys..(i + 1) * keys]) {
                    *s = *s * scale + mij;
                }
            }
            None => row.iter_mut().for_each(|s| *s *= scale),
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let inv = 1.0 / super::exp::exp_in_place(row, max);
        row.iter_mut().for_each(|p| *p *= inv);
    }
}

impl FusedAttention {
    /// The bias rows of sequence `bi`, checked against `dims`.
    fn bias_of<'a>(&self, dims: Dims, bias: Option<&'a [f32]>, bi: usize) -> Option<&'a [f32]> {
        let block = dims.queries * dims.keys;
        bias.map(|m| {
            let rows = m.len() / block.max(1);
            let at = if rows == 1 { 0 } else { bi };
            &m[at * block..(at + 1) * block]
        })
    }

    fn check_bias(&self, dims: Dims) -> Result<()> {
        if let Some(m) = &self.bias {
            let ok = matches!(m.dims(), &[bb, 1, t, keys]
                if (bb == 1 || bb == dims.batch) && t == dims.queries && keys == dims.keys);
            if !ok {
                candle_core::bail!(
                    "attention: bias has shape {:?}, expected (1 or {}, 1, {}, {})",
                    m.dims(),
                    dims.batch,
                    dims.queries,
                    dims.keys
                );
            }
        }
        Ok(())
    }

    /// Runs `f` with the bias elements (contiguous f32), if any.
    fn with_bias<R>(&self, f: impl FnOnce(Option<&[f32]>) -> Result<R>) -> Result<R> {
        match &self.bias {
            Some(m) => {
                let m = m.contiguous()?;
                with_slice(&m, "attention: the bias", |s| f(Some(s)))
            }
            None => f(None),
        }
    }
}

impl candle_core::CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "rlhf-lab-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = check_dims(lq.dims(), lk.dims(), lv.dims())?;
        self.check_bias(dims)?;
        let q = super::contiguous_slice::<f32>(sq, lq, "attention: q")?;
        let k = super::contiguous_slice::<f32>(sk, lk, "attention: k")?;
        let v = super::contiguous_slice::<f32>(sv, lv, "attention: v")?;
        let (t, keys, d, n_rep) = (dims.queries, dims.keys, dims.head_dim, dims.n_rep());
        let mut y = vec![0f32; q.len()];
        let mut probs = vec![0f32; dims.batch * dims.heads * t * keys];
        self.with_bias(|bias| {
            // One task per (sequence, key/value head): its n_rep query heads
            // are adjacent in q, y and P.
            y.par_chunks_mut(n_rep * t * d)
                .zip(probs.par_chunks_mut(n_rep * t * keys))
                .zip(q.par_chunks(n_rep * t * d))
                .zip(k.par_chunks(keys * d).zip(v.par_chunks(keys * d)))
                .enumerate()
                .for_each(|(group, (((y, p), q), (k, v)))| {
                    let bias = self.bias_of(dims, bias, group / dims.kv_heads);
                    let heads = y.chunks_mut(t * d).zip(p.chunks_mut(t * keys));
                    for ((yh, ph), qh) in heads.zip(q.chunks(t * d)) {
                        probabilities(dims, qh, k, self.scale, bias, ph);
                        gemm_into(
                            (t, d, keys),
                            yh,
                            false,
                            Matrix::rows(ph, keys),
                            Matrix::rows(v, d),
                            Threads::One,
                        );
                    }
                });
            Ok(())
        })?;
        *self.probs.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(probs));
        Ok((CpuStorage::F32(y), lq.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = check_dims(q.dims(), k.dims(), v.dims())?;
        let grad = grad_res.contiguous()?;
        let (t, keys, d, n_rep) = (dims.queries, dims.keys, dims.head_dim, dims.n_rep());
        let mut dq = vec![0f32; q.elem_count()];
        let mut dk = vec![0f32; k.elem_count()];
        let mut dv = vec![0f32; v.elem_count()];
        let saved = self.probs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(saved) = saved else {
            candle_core::bail!("attention: backward pass without a forward pass");
        };
        with_slice(q, "attention: q", |q| {
            with_slice(k, "attention: k", |k| {
                with_slice(v, "attention: v", |v| {
                    with_slice(&grad, "attention: the gradient", |g| {
                        let group_q = n_rep * t * d;
                        let group_p = n_rep * t * keys;
                        let inputs = q.par_chunks(group_q).zip(g.par_chunks(group_q));
                        let kv = k.par_chunks(keys * d).zip(v.par_chunks(keys * d));
                        let outputs = dq
                            .par_chunks_mut(group_q)
                            .zip(dk.par_chunks_mut(keys * d).zip(dv.par_chunks_mut(keys * d)));
                        outputs.zip(inputs.zip(kv)).enumerate().for_each(
                            |(group, ((dq, (dk, dv)), ((q, g), (k, v))))| {
                                let mut ds = vec![0f32; t * keys];
                                let heads = dq
                                    .chunks_mut(t * d)
                                    .zip(q.chunks(t * d).zip(g.chunks(t * d)));
                                for (r, (dqh, (qh, gh))) in heads.enumerate() {
                                    let at = group * group_p + r * t * keys;
                                    let p = &saved[at..at + t * keys];
                                    // ∂L/∂V_g += Pᵀ G
                                    gemm_into(
                                        (keys, d, t),
                                        dv,
                                        true,
                                        Matrix::transposed(p, keys),
                                        Matrix::rows(gh, d),
                                        Threads::One,
                                    );
                                    // ∂L/∂P = G V_gᵀ
                                    gemm_into(
                                        (t, keys, d),
                                        &mut ds,
                                        false,
                                        Matrix::rows(gh, d),
                                        Matrix::transposed(v, d),
                                        Threads::One,
                                    );
                                    // ∂L/∂S, times s for both products below
                                    for (dsr, pr) in ds.chunks_mut(keys).zip(p.chunks(keys)) {
                                        let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
                                        for (x, &pij) in dsr.iter_mut().zip(pr) {
                                            *x = pij * (*x - dot) * self.scale;
                                        }
                                    }
                                    // ∂L/∂Q_h = s·∂L/∂S K_g
                                    gemm_into(
                                        (t, d, keys),
                                        dqh,
                                        false,
                                        Matrix::rows(&ds, keys),
                                        Matrix::rows(k, d),
                                        Threads::One,
                                    );
                                    // ∂L/∂K_g += s·(∂L/∂S)ᵀ Q_h
                                    gemm_into(
                                        (keys, d, t),
                                        dk,
                                        true,
                                        Matrix::transposed(&ds, keys),
                                        Matrix::rows(qh, d),
                                        Threads::One,
                                    );
                                }
                            },
                        );
                        Ok(())
                    })
                })
            })
        })?;
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), device)?),
            Some(Tensor::from_vec(dk, k.shape(), device)?),
            Some(Tensor::from_vec(dv, v.shape(), device)?),
        ))
    }
}
