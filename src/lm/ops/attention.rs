//! The fused CPU kernel of [`super::fused_attention`]: scaled dot-product
//! attention with grouped-query heads, one task per (sequence,
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
//! the heads sharing a key/value head are one task, and the softmax and its
//! backward skip the keys a query row cannot see (a bias of −∞ past its last
//! visible key, as causal and padding masks give: their probabilities are
//! exactly 0, see [`key_spans`]). The forward makes the
//! same `gemm` calls, scaling and masking as the composed op; its softmax
//! takes the vectorisable [`super::exp`], so the values agree with the
//! composed op's to about 1e-7 rather than bit for bit (it runs in training
//! steps only).

use super::gemm::{gemm_into, Matrix, Threads};
use super::threads;
use candle_core::{CpuStorage, Layout, Result, Shape, Storage, Tensor};
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

/// For each query row of one sequence's bias (t, T), how many leading keys
/// it can see: one past its last key whose bias is not −∞ (a causal row i
/// sees i + 1; padding keys at the end are cut too). Keys past a row's span
/// get probability exactly 0, so the kernels skip them. A row that sees no
/// key keeps all T (its softmax is NaN, as the composed op's). Without a bias
/// every row sees every key.
fn key_spans(bias: Option<&[f32]>, queries: usize, keys: usize) -> Vec<usize> {
    let Some(m) = bias else {
        return vec![keys; queries];
    };
    m.chunks(keys.max(1))
        .take(queries)
        .map(|row| {
            row.iter()
                .rposition(|&b| b != f32::NEG_INFINITY)
                .map_or(keys, |last| last + 1)
        })
        .collect()
}

/// The largest element, in 8 lanes so that the loop vectorises (the maximum
/// of a set does not depend on the order it is taken in).
#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, &x) in lanes.iter_mut().zip(c) {
            *lane = lane.max(x);
        }
    }
    rest.iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// P = softmax(s·Q Kᵀ + M) row by row into `probs` (t, T): the composed op's
/// arithmetic in its order (product, scale, bias, then softmax), over each
/// row's [`key_spans`] only; the keys past it are set to 0 (what eˣ of −∞
/// gives, so the values are the same).
fn probabilities(
    dims: Dims,
    q: &[f32],
    k: &[f32],
    scale: f32,
    bias: Option<&[f32]>,
    spans: &[usize],
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
    for (i, (row, &span)) in probs.chunks_mut(keys).zip(spans).enumerate() {
        let (row, masked) = row.split_at_mut(span);
        masked.fill(0.0);
        softmax_row(row, bias.map(|m| &m[i * keys..i * keys + span]), scale);
    }
}

simd_kernel! {
    /// One row of scores in place: s·x + M, then its softmax.
    fn softmax_row(row: &mut [f32], bias: Option<&[f32]>, scale: f32) {
        match bias {
            Some(m) => {
                for (s, &mij) in row.iter_mut().zip(m) {
                    *s = *s * scale + mij;
                }
            }
            None => row.iter_mut().for_each(|s| *s *= scale),
        }
        let max = max_of(row);
        let inv = 1.0 / super::exp::exp_in_place(row, max);
        row.iter_mut().for_each(|p| *p *= inv);
    }
}

simd_kernel! {
    /// One row of ∂L/∂S in place from ∂L/∂P (`ds`) and P:
    /// s·P ⊙ (∂L/∂P − Σⱼ ∂L/∂Pⱼ Pⱼ).
    fn softmax_grad_row(ds: &mut [f32], p: &[f32], scale: f32) {
        let dot: f32 = ds.iter().zip(p).map(|(a, b)| a * b).sum();
        for (x, &pij) in ds.iter_mut().zip(p) {
            *x = pij * (*x - dot) * scale;
        }
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

/// The backward pass of one query head h over its key/value head g.
struct HeadBackward<'a> {
    dims: Dims,
    scale: f32,
    /// Each query row's [`key_spans`].
    spans: &'a [usize],
    /// P (t, T) from the forward pass.
    p: &'a [f32],
    /// Q_h (t, d).
    q: &'a [f32],
    /// K_g and V_g (T, d).
    k: &'a [f32],
    v: &'a [f32],
    /// G = ∂L/∂Y_h (t, d).
    g: &'a [f32],
}

impl HeadBackward<'_> {
    /// Writes ∂L/∂Q_h into `dq` and adds this head's share of ∂L/∂K_g and
    /// ∂L/∂V_g to `dk` and `dv`; `ds` (t, T) is scratch space.
    fn run(&self, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32], ds: &mut [f32]) {
        let (t, keys, d) = (self.dims.queries, self.dims.keys, self.dims.head_dim);
        // ∂L/∂V_g += Pᵀ G
        gemm_into(
            (keys, d, t),
            dv,
            true,
            Matrix::transposed(self.p, keys),
            Matrix::rows(self.g, d),
            Threads::One,
        );
        // ∂L/∂P = G V_gᵀ
        gemm_into(
            (t, keys, d),
            ds,
            false,
            Matrix::rows(self.g, d),
            Matrix::transposed(self.v, d),
            Threads::One,
        );
        // ∂L/∂S = P ⊙ (∂L/∂P − rowsum(∂L/∂P ⊙ P)), times s for both products
        // below; 0 past each row's span, where P is 0.
        let rows = ds.chunks_mut(keys).zip(self.p.chunks(keys));
        for ((dsr, pr), &span) in rows.zip(self.spans) {
            let (dsr, masked) = dsr.split_at_mut(span);
            masked.fill(0.0);
            softmax_grad_row(dsr, &pr[..span], self.scale);
        }
        // ∂L/∂Q_h = s·∂L/∂S K_g
        gemm_into(
            (t, d, keys),
            dq,
            false,
            Matrix::rows(ds, keys),
            Matrix::rows(self.k, d),
            Threads::One,
        );
        // ∂L/∂K_g += s·(∂L/∂S)ᵀ Q_h
        gemm_into(
            (keys, d, t),
            dk,
            true,
            Matrix::transposed(ds, keys),
            Matrix::rows(self.q, d),
            Threads::One,
        );
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
            let groups = y
                .chunks_mut(n_rep * t * d)
                .zip(probs.chunks_mut(n_rep * t * keys))
                .zip(q.chunks(n_rep * t * d))
                .zip(k.chunks(keys * d).zip(v.chunks(keys * d)))
                .enumerate();
            threads::for_each(groups, |(group, (((y, p), q), (k, v)))| {
                let bias = self.bias_of(dims, bias, group / dims.kv_heads);
                let spans = key_spans(bias, t, keys);
                let heads = y.chunks_mut(t * d).zip(p.chunks_mut(t * keys));
                for ((yh, ph), qh) in heads.zip(q.chunks(t * d)) {
                    probabilities(dims, qh, k, self.scale, bias, &spans, ph);
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
        self.with_bias(|bias| {
            with_slice(q, "attention: q", |q| {
                with_slice(k, "attention: k", |k| {
                    with_slice(v, "attention: v", |v| {
                        with_slice(&grad, "attention: the gradient", |g| {
                            let group_q = n_rep * t * d;
                            let group_p = n_rep * t * keys;
                            let inputs = q.chunks(group_q).zip(g.chunks(group_q));
                            let kv = k.chunks(keys * d).zip(v.chunks(keys * d));
                            let outputs = dq
                                .chunks_mut(group_q)
                                .zip(dk.chunks_mut(keys * d).zip(dv.chunks_mut(keys * d)));
                            threads::for_each(
                                outputs.zip(inputs.zip(kv)).enumerate(),
                                |(group, ((dq, (dk, dv)), ((q, g), (k, v))))| {
                                    let bias = self.bias_of(dims, bias, group / dims.kv_heads);
                                    let spans = key_spans(bias, t, keys);
                                    let mut ds = vec![0f32; t * keys];
                                    let heads = dq
                                        .chunks_mut(t * d)
                                        .zip(q.chunks(t * d).zip(g.chunks(t * d)));
                                    for (r, (dqh, (qh, gh))) in heads.enumerate() {
                                        let at = group * group_p + r * t * keys;
                                        let head = HeadBackward {
                                            dims,
                                            scale: self.scale,
                                            spans: &spans,
                                            p: &saved[at..at + t * keys],
                                            q: qh,
                                            k,
                                            v,
                                            g: gh,
                                        };
                                        head.run(dqh, dk, dv, &mut ds);
                                    }
                                },
                            );
                            Ok(())
                        })
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
