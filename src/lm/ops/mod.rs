//! Differentiable building blocks of the transformer.
//!
//! candle 0.11's fused CPU/CUDA kernels for softmax, RMSNorm and RoPE have no
//! backward pass: used in training, they silently cut the gradient. These
//! versions are differentiable: on CPU in f32, softmax, RMSNorm, RoPE,
//! SwiGLU and the target log-probabilities of the cross-entropy are fused
//! kernels of our own with analytic backward passes (fewer, larger passes over
//! memory than a chain of small ops, one file each below); elsewhere they are
//! composed from differentiable primitives. Tests check them against candle's
//! kernels and the composed versions on values, and against finite
//! differences on gradients.

/// A kernel function compiled twice: as is (the build's baseline, SSE2 on
/// x86-64: 4 f32 lanes) and with AVX2 enabled (8 lanes), the AVX2 one taken
/// when the CPU has it. The same operations in the same order run either way
/// (AVX2 without FMA, and Rust does not fuse a multiply and an add on its
/// own), so the results are bit-identical; only the width of the vectorised
/// loops changes.
macro_rules! simd_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

mod attention;
mod cross_entropy;
mod exp;
mod gemm;
mod heads;
mod linear;
mod rms_norm;
mod rope;
mod softmax;
mod swiglu;
mod threads;

use candle_core::{DType, Result, Tensor, D};
use cross_entropy::FusedTargetLogProb;
use softmax::FusedSoftmax;

/// RMSNorm: `y = x / √(mean(x², last axis) + ε) ⊙ g`, normalised in (at least)
/// f32 and cast back, as Hugging Face's `LlamaRMSNorm`; composed from
/// differentiable primitives.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    rms_norm_composed(x, weight, eps)
}

/// [`rms_norm`] for training: on CPU in f32 one fused pass per row, with the
/// analytic backward given in `ops/rms_norm.rs`; elsewhere [`rms_norm`].
///
/// Values agree with [`rms_norm`] to about 1e-7 but not bit for bit (the fused
/// sum of squares adds in another order than candle's SIMD sum), which is why
/// inference keeps [`rms_norm`]: a seeded sampler must draw the committed
/// samples from the committed checkpoints.
pub fn rms_norm_for_training(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let width = x.dims().last().copied().unwrap_or(0);
    let fused = cpu_f32(x) && cpu_f32(weight) && weight.dims() == [width];
    if fused {
        let op = rms_norm::FusedRmsNorm { eps: eps as f32 };
        return x.contiguous()?.apply_op2(&weight.contiguous()?, op);
    }
    rms_norm_composed(x, weight, eps)
}

fn rms_norm_composed(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = match dtype {
        DType::F64 => x.clone(),
        _ => x.to_dtype(DType::F32)?,
    };
    let inv_rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    x32.broadcast_mul(&inv_rms)?
        .to_dtype(dtype)?
        .broadcast_mul(weight)
}

/// A bias-free linear layer `y = x Wᵀ` for x of any rank (…, in) and W (out, in).
///
/// The leading axes are flattened into one before the matmul. candle's
/// `Linear` instead broadcasts W over the batch, which makes backward build a
/// weight gradient per batch element and then sum them: flattening makes the
/// weight gradient one matmul (a 2× faster training step on the tiny model).
///
/// On CPU in f32 the product is one graph node (`ops/linear.rs`) whose
/// backward writes ∂L/∂x and ∂L/∂W with one matrix product each; its values
/// are bit-identical to the composed `matmul(&w.t())`. Elsewhere it is
/// composed.
pub fn linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if cpu_f32(x) && cpu_f32(weight) && weight.rank() == 2 && x.rank() >= 1 {
        return x
            .contiguous()?
            .apply_op2(&weight.contiguous()?, linear::FusedLinear);
    }
    let dims = x.dims();
    let inner = *dims.last().unwrap_or(&1);
    let rows = x.elem_count() / inner.max(1);
    let y = x.reshape((rows, inner))?.matmul(&weight.t()?)?;
    let mut out_dims = dims.to_vec();
    *out_dims.last_mut().expect("rank ≥ 1") = weight.dim(0)?;
    y.reshape(out_dims)
}

/// max |a − b| over all elements (in f32): how tests and notebooks compare
/// two implementations.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F32)?
        .to_scalar()
}

/// Softmax over the last axis, `pᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x)`,
/// differentiable. On CPU in f32 it is one fused pass per row (rows in
/// parallel) with the analytic backward `∂L/∂x = p ⊙ (g − Σⱼ gⱼ pⱼ)`; elsewhere
/// it is composed from differentiable primitives.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(x) {
        return x.contiguous()?.apply_op1(FusedSoftmax);
    }
    softmax_composed(x)
}

fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// log p(yᵢ) of each row's target under the softmax of its logits,
/// `log p(yᵢ) = zᵢ[yᵢ] − log Σⱼ exp(zᵢ[j])`: the values of
/// [`crate::ppo::log_prob_of`], whose negative mean is the next-token
/// cross-entropy. `logits` is (…, V), `targets` (…) u32.
///
/// On CPU in f32 it is one fused pass per row (rows in parallel, with the
/// vectorisable `exp` of `ops/exp.rs`) instead of
/// log-softmax's chain of full-size tensors, with the analytic backward
/// `∂L/∂zᵢⱼ = gᵢ · (1[j = yᵢ] − softmax(zᵢ)ⱼ)` in one more pass (the gradient
/// of cross-entropy, Goodfellow et al. 2016, §6.2.2.2); elsewhere it is
/// [`crate::ppo::log_prob_of`]. A target outside the vocabulary is an error
/// naming it.
pub fn target_log_probs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let fused = cpu_f32(logits) && targets.dtype() == DType::U32 && logits.rank() >= 1;
    if !fused {
        return crate::ppo::log_prob_of(logits, targets);
    }
    let (lead, _vocab) = logits.dims().split_at(logits.rank() - 1);
    if targets.dims() != lead {
        candle_core::bail!(
            "target_log_probs: targets have shape {:?}, expected {lead:?} (the logits' {:?} without the vocabulary axis)",
            targets.dims(),
            logits.dims()
        );
    }
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, FusedTargetLogProb::default())
}

/// SwiGLU's gating, `silu(a) ⊙ b` with silu(a) = a·σ(a) (Shazeer 2020), for
/// the gate a = W_gate x and the up projection b = W_up x of the same shape.
///
/// On CPU in f32 it is one fused pass (`ops/swiglu.rs`),
/// bit-identical to candle's `silu` then a multiply, with a one-pass analytic
/// backward; elsewhere it is composed.
pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cpu_f32(a) && cpu_f32(b) && a.dims() == b.dims() {
        return a
            .contiguous()?
            .apply_op2(&b.contiguous()?, swiglu::FusedSwiGlu);
    }
    swiglu_composed(a, b)
}

fn swiglu_composed(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(a)? * b
}

/// (b, t, n·d) → (b, n, t, d): each position's row split into n heads of
/// width d, one contiguous (t, d) matrix per head, as attention reads them.
/// The value of `x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()`; on
/// CPU in f32 one graph node whose backward is [`merge_heads`]
/// (`ops/heads.rs`), elsewhere that composition.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, width) = x.dims3()?;
    if heads == 0 || width % heads != 0 {
        candle_core::bail!("split_heads: a width of {width} does not split into {heads} heads");
    }
    if cpu_f32(x) {
        return x
            .contiguous()?
            .apply_op1(heads::HeadLayout::Split { heads });
    }
    x.reshape((b, t, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// (b, n, t, d) → (b, t, n·d), the inverse of [`split_heads`]: the heads'
/// outputs side by side again in each position's row. One graph node on CPU
/// in f32, `x.transpose(1, 2)?.reshape((b, t, n·d))` elsewhere.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, heads, t, d) = x.dims4()?;
    if cpu_f32(x) {
        return x.contiguous()?.apply_op1(heads::HeadLayout::Merge);
    }
    x.transpose(1, 2)?.reshape((b, t, heads * d))
}

/// Whether [`fused_attention`] runs for these q (b, h, t, d), k and v
/// (b, h_kv, T, d): on the CPU in f32 with h a multiple of h_kv.
pub fn fused_attention_applies(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let shapes_fit = attention::check_dims(q.dims(), k.dims(), v.dims()).is_ok();
    shapes_fit && cpu_f32(q) && cpu_f32(k) && cpu_f32(v)
}

/// Scaled dot-product attention with grouped-query heads,
/// `Y_h = softmax(s·Q_h K_gᵀ + M) V_g` for query head h and key/value head
/// g = ⌊h / (h / h_kv)⌋ (Vaswani et al. 2017; Ainslie et al. 2023), as one
/// fused CPU kernel (`ops/attention.rs`): q (b, h, t, d), k and v
/// (b, h_kv, T, d), the additive bias M (b or 1, 1, t, T) or none; returns
/// (b, h, t, d).
///
/// Values agree to about 1e-7 with repeating K and V per query head, then
/// `softmax_last_dim(q.matmul(kᵀ)·s + M).matmul(v)` (the same products; the
/// softmax's `exp` is a vectorised one). An error where
/// [`fused_attention_applies`] is false.
pub fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    if !fused_attention_applies(q, k, v) {
        candle_core::bail!(
            "fused_attention runs on the CPU in f32 with q (b, h, t, d) and k, v (b, h_kv, T, d), h a multiple of h_kv; got q {:?} {:?}, k {:?}, v {:?}",
            q.dims(),
            q.dtype(),
            k.dims(),
            v.dims()
        );
    }
    let op = attention::FusedAttention {
        scale: scale as f32,
        bias: bias.cloned(),
        probs: Default::default(),
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// Whether `t` is an f32 tensor on the CPU: where the fused kernels run.
fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The elements of a fused op's contiguous input; `what` names it in the
/// error ("softmax: input must be contiguous").
fn contiguous_slice<'a, T: candle_core::WithDType>(
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
    what: &str,
) -> Result<&'a [T]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what} must be contiguous");
    };
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// Rotary embedding in the "rotate half" layout: with x = [x₁, x₂] split in
/// halves along the last axis, `[x₁ cos − x₂ sin, x₂ cos + x₁ sin]`.
/// `cos`/`sin` have the shape of x₁ or broadcast to it.
///
/// On CPU in f32 with x of rank 4 (b, h, t, d) it is one fused pass
/// (`ops/rope.rs`), bit-identical to the composed version, whose backward
/// is the inverse rotation; elsewhere it is composed.
pub fn rotate_half_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if cpu_f32(x) && cpu_f32(cos) && cpu_f32(sin) && x.rank() == 4 && x.dim(3)? % 2 == 0 {
        let (b, _, t, d) = x.dims4()?;
        let table = |c: &Tensor| c.broadcast_as((b, 1, t, d / 2))?.contiguous();
        let op = rope::FusedRope { inverse: false };
        return x.contiguous()?.apply_op3(&table(cos)?, &table(sin)?, op);
    }
    rotate_half_rope_composed(x, cos, sin)
}

fn rotate_half_rope_composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[a, b], D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = gridworld::Rng::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        super::max_abs_diff(a, b).unwrap()
    }

    /// Same values as candle's fused kernels (which we cannot train through).
    #[test]
    fn match_candle_fused_kernels() {
        let x = randn(&[2, 3, 5, 8], 1);
        let w = randn(&[8], 2);
        let fused = candle_nn::ops::rms_norm(&x, &w, 1e-5).unwrap();
        assert!(max_abs_diff(&rms_norm(&x, &w, 1e-5).unwrap(), &fused) < 1e-5);
        let fused = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert!(max_abs_diff(&softmax_last_dim(&x).unwrap(), &fused) < 1e-6);
        assert!(max_abs_diff(&softmax_composed(&x).unwrap(), &fused) < 1e-6);
        let cos = randn(&[5, 4], 3);
        let sin = randn(&[5, 4], 4);
        let fused = candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap();
        assert!(max_abs_diff(&rotate_half_rope(&x, &cos, &sin).unwrap(), &fused) < 1e-5);
    }

    /// The fused CPU softmax's backward equals the composed one's (f32, 1e-6).
    #[test]
    fn fused_softmax_gradient_matches_composed() {
        let x = Var::from_tensor(&randn(&[3, 4, 7], 11)).unwrap();
        let proj = randn(&[3, 4, 7], 12);
        let g1 = (softmax_last_dim(x.as_tensor()).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (softmax_composed(x.as_tensor()).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_abs_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-6);
    }

    /// The fused target log-probabilities equal the composed log-softmax and
    /// gather of `ppo::log_prob_of` (values 1e-5, gradients 1e-6, f32), and a
    /// target outside the vocabulary is an error naming it.
    #[test]
    fn fused_target_log_probs_match_composed() {
        let logits = Var::from_tensor(&(randn(&[3, 5, 11], 21) * 3.0).unwrap()).unwrap();
        let targets = Tensor::from_vec(
            (0..15u32).map(|i| (i * 7) % 11).collect::<Vec<_>>(),
            (3, 5),
            &Device::Cpu,
        )
        .unwrap();
        let weights = randn(&[3, 5], 22);
        let fused = target_log_probs(logits.as_tensor(), &targets).unwrap();
        let composed = crate::ppo::log_prob_of(logits.as_tensor(), &targets).unwrap();
        assert_eq!(fused.dims(), [3, 5]);
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        let grad = |t: &Tensor| {
            let g = (t * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            g.get(&logits).unwrap().clone()
        };
        assert!(max_abs_diff(&grad(&fused), &grad(&composed)) < 1e-6);
        let bad = Tensor::from_vec(vec![3u32, 11], 2, &Device::Cpu).unwrap();
        let row = logits.as_tensor().get(0).unwrap().narrow(0, 0, 2).unwrap();
        let err = target_log_probs(&row, &bad).unwrap_err().to_string();
        assert!(
            err.contains("target token 11 is outside the vocabulary of 11"),
            "{err}"
        );
    }

    /// The fused backward agrees with central finite differences of the
    /// fused forward (f32, h = 1e-2, tolerance 2e-3: f32 rounding over h).
    #[test]
    fn fused_target_log_probs_gradient_matches_finite_differences() {
        let x0 = randn(&[4, 9], 23);
        let targets = Tensor::from_vec(vec![0u32, 8, 3, 3], 4, &Device::Cpu).unwrap();
        let weights = randn(&[4], 24);
        let loss = |x: &Tensor| {
            (target_log_probs(x, &targets).unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        assert_gradient_matches_finite_differences("target_log_probs", &x0, &loss, 1e-2, 2e-3);
    }

    /// The gradient of `Σ f(x) ⊙ proj` with respect to each of `inputs`.
    fn grads_of(inputs: &[&Var], y: &Tensor, proj: &Tensor) -> Vec<Tensor> {
        let g = (y * proj).unwrap().sum_all().unwrap().backward().unwrap();
        inputs
            .iter()
            .map(|v| g.get(v).expect("a gradient").clone())
            .collect()
    }

    /// The fused RMSNorm for training equals the composed one: values 1e-6,
    /// gradients for x and the weight 1e-5 (f32; the weight's gradient sums
    /// 30 rows).
    #[test]
    fn fused_rms_norm_matches_composed() {
        let x = Var::from_tensor(&(randn(&[2, 15, 24], 31) * 2.0).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(&[24], 32)).unwrap();
        let proj = randn(&[2, 15, 24], 33);
        let fused = rms_norm_for_training(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
        let composed = rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-6);
        let g1 = grads_of(&[&x, &w], &fused, &proj);
        let g2 = grads_of(&[&x, &w], &composed, &proj);
        assert!(max_abs_diff(&g1[0], &g2[0]) < 1e-5);
        assert!(max_abs_diff(&g1[1], &g2[1]) < 1e-5);
    }

    /// Splitting and merging heads give the composed layouts' values and
    /// gradients bit for bit (a permutation), are each other's inverse, and
    /// a width that does not split is an error naming it.
    #[test]
    fn split_and_merge_heads_match_composed() {
        let x = Var::from_tensor(&randn(&[2, 5, 12], 51)).unwrap();
        let split = split_heads(x.as_tensor(), 3).unwrap();
        let composed = x
            .as_tensor()
            .reshape((2, 5, 3, 4))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        assert_eq!(split.dims(), &[2, 3, 5, 4]);
        assert_eq!(max_abs_diff(&split, &composed), 0.0);
        let proj = randn(&[2, 3, 5, 4], 52);
        let g1 = grads_of(&[&x], &split, &proj);
        let g2 = grads_of(&[&x], &composed, &proj);
        assert_eq!(max_abs_diff(&g1[0], &g2[0]), 0.0);

        let y = Var::from_tensor(&randn(&[2, 3, 5, 4], 53)).unwrap();
        let merged = merge_heads(y.as_tensor()).unwrap();
        let composed = y
            .as_tensor()
            .transpose(1, 2)
            .unwrap()
            .reshape((2, 5, 12))
            .unwrap();
        assert_eq!(max_abs_diff(&merged, &composed), 0.0);
        let proj = randn(&[2, 5, 12], 54);
        let g1 = grads_of(&[&y], &merged, &proj);
        let g2 = grads_of(&[&y], &composed, &proj);
        assert_eq!(max_abs_diff(&g1[0], &g2[0]), 0.0);
        let round_trip = merge_heads(&split_heads(x.as_tensor(), 3).unwrap()).unwrap();
        assert_eq!(max_abs_diff(&round_trip, x.as_tensor()), 0.0);

        let bad = split_heads(x.as_tensor(), 5).unwrap_err().to_string();
        assert!(
            bad.contains("width of 12") && bad.contains("5 heads"),
            "{bad}"
        );
    }

    /// The fused RoPE and SwiGLU give exactly the composed values (same
    /// arithmetic in the same order) and the same gradients (1e-6, f32).
    #[test]
    fn fused_rope_and_swiglu_match_composed() {
        let x = Var::from_tensor(&randn(&[2, 3, 5, 8], 41)).unwrap();
        let cos = randn(&[2, 1, 5, 4], 42);
        let sin = randn(&[2, 1, 5, 4], 43);
        let proj = randn(&[2, 3, 5, 8], 44);
        let fused = rotate_half_rope(x.as_tensor(), &cos, &sin).unwrap();
        let composed = rotate_half_rope_composed(x.as_tensor(), &cos, &sin).unwrap();
        assert_eq!(max_abs_diff(&fused, &composed), 0.0);
        let (g1, g2) = (
            grads_of(&[&x], &fused, &proj),
            grads_of(&[&x], &composed, &proj),
        );
        assert!(max_abs_diff(&g1[0], &g2[0]) < 1e-6);

        let a = Var::from_tensor(&(randn(&[3, 7, 10], 45) * 3.0).unwrap()).unwrap();
        let b = Var::from_tensor(&randn(&[3, 7, 10], 46)).unwrap();
        let proj = randn(&[3, 7, 10], 47);
        let fused = swiglu(a.as_tensor(), b.as_tensor()).unwrap();
        let composed = swiglu_composed(a.as_tensor(), b.as_tensor()).unwrap();
        assert_eq!(max_abs_diff(&fused, &composed), 0.0);
        let g1 = grads_of(&[&a, &b], &fused, &proj);
        let g2 = grads_of(&[&a, &b], &composed, &proj);
        assert!(max_abs_diff(&g1[0], &g2[0]) < 1e-6);
        assert!(max_abs_diff(&g1[1], &g2[1]) < 1e-6);
    }

    /// The composed linear layer: the flattened input times Wᵀ.
    fn linear_composed(x: &Tensor, w: &Tensor) -> Tensor {
        let (inner, out) = (x.dim(D::Minus1).unwrap(), w.dim(0).unwrap());
        let mut dims = x.dims().to_vec();
        *dims.last_mut().unwrap() = out;
        x.reshape(((), inner))
            .unwrap()
            .matmul(&w.t().unwrap())
            .unwrap()
            .reshape(dims)
            .unwrap()
    }

    /// The fused linear layer gives exactly the composed values (the same
    /// gemm call) on inputs of rank 1 to 3, and the same gradients: ∂L/∂x
    /// exactly, ∂L/∂W to 1e-5 (f32; it sums the rows in another order).
    #[test]
    fn fused_linear_matches_composed() {
        let w = Var::from_tensor(&randn(&[7, 10], 61)).unwrap();
        for (i, shape) in [vec![10], vec![5, 10], vec![3, 4, 10]].iter().enumerate() {
            let x = Var::from_tensor(&randn(shape, 62 + i as u64)).unwrap();
            let mut out_shape = shape.clone();
            *out_shape.last_mut().unwrap() = 7;
            let proj = randn(&out_shape, 70 + i as u64);
            let fused = linear(x.as_tensor(), w.as_tensor()).unwrap();
            let composed = linear_composed(x.as_tensor(), w.as_tensor());
            assert_eq!(fused.dims(), out_shape.as_slice());
            assert_eq!(max_abs_diff(&fused, &composed), 0.0, "shape {shape:?}");
            let g1 = grads_of(&[&x, &w], &fused, &proj);
            let g2 = grads_of(&[&x, &w], &composed, &proj);
            assert_eq!(max_abs_diff(&g1[0], &g2[0]), 0.0, "∂x, shape {shape:?}");
            assert!(max_abs_diff(&g1[1], &g2[1]) < 1e-5, "∂W, shape {shape:?}");
        }
        // A weight whose width does not match is an error naming both.
        let bad = linear(&randn(&[2, 9], 80), w.as_tensor()).unwrap_err();
        assert!(bad.to_string().contains("9 features"), "{bad}");
    }

    /// Composed grouped-query attention: K and V repeated per query head,
    /// then softmax(q kᵀ·s + M) v (the model's unfused path).
    fn attention_composed(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        s: f64,
        m: Option<&Tensor>,
    ) -> Tensor {
        let n_rep = q.dim(1).unwrap() / k.dim(1).unwrap();
        let k = crate::lm::model::repeat_kv(k, n_rep).unwrap();
        let v = crate::lm::model::repeat_kv(v, n_rep).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * s).unwrap();
        let scores = match m {
            Some(m) => scores.broadcast_add(m).unwrap(),
            None => scores,
        };
        softmax_last_dim(&scores).unwrap().matmul(&v).unwrap()
    }

    /// A causal bias (1, 1, t, t): 0 on and below the diagonal, −1e30 above,
    /// as the model builds it.
    fn causal_bias(t: usize) -> Tensor {
        let m: Vec<f32> = (0..t * t)
            .map(|i| if i % t > i / t { -1e30 } else { 0.0 })
            .collect();
        Tensor::from_vec(m, (1, 1, t, t), &Device::Cpu).unwrap()
    }

    /// The fused attention agrees with the composed one, values to 1e-6 and
    /// the gradients of q, k and v to 1e-5 (f32), with 4 query heads over 2
    /// and 4 key/value heads, with a shared causal bias, a per-sequence bias
    /// and none.
    #[test]
    fn fused_attention_matches_composed() {
        let (b, t, d) = (2, 6, 8);
        let per_sequence = {
            let mut m = causal_bias(t)
                .broadcast_as((b, 1, t, t))
                .unwrap()
                .contiguous()
                .unwrap();
            // The second sequence's first key is padding.
            let pad = Tensor::full(-1e30f32, (1, 1, t, 1), &Device::Cpu).unwrap();
            let rest = m.narrow(0, 1, 1).unwrap().narrow(3, 1, t - 1).unwrap();
            let second = Tensor::cat(&[&pad, &rest], 3).unwrap();
            m = Tensor::cat(&[&m.narrow(0, 0, 1).unwrap(), &second], 0).unwrap();
            m
        };
        for kv_heads in [2, 4] {
            for (name, bias) in [
                ("causal", Some(causal_bias(t))),
                ("per sequence", Some(per_sequence.clone())),
                ("none", None),
            ] {
                let q = Var::from_tensor(&randn(&[b, 4, t, d], 91)).unwrap();
                let k = Var::from_tensor(&randn(&[b, kv_heads, t, d], 92)).unwrap();
                let v = Var::from_tensor(&randn(&[b, kv_heads, t, d], 93)).unwrap();
                let proj = randn(&[b, 4, t, d], 94);
                let s = 1.0 / (d as f64).sqrt();
                let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
                let fused = fused_attention(qt, kt, vt, s, bias.as_ref()).unwrap();
                let composed = attention_composed(qt, kt, vt, s, bias.as_ref());
                let diff = max_abs_diff(&fused, &composed);
                assert!(diff < 1e-6, "{diff} ({name}, {kv_heads} kv heads)");
                let g1 = grads_of(&[&q, &k, &v], &fused, &proj);
                let g2 = grads_of(&[&q, &k, &v], &composed, &proj);
                for (i, x) in ["q", "k", "v"].iter().enumerate() {
                    let diff = max_abs_diff(&g1[i], &g2[i]);
                    assert!(diff < 1e-5, "∂{x}: {diff} ({name}, {kv_heads} kv heads)");
                }
            }
        }
        // Heads that do not group are an error, not a panic.
        let q = randn(&[1, 3, 4, 8], 95);
        let k = randn(&[1, 2, 4, 8], 96);
        assert!(!fused_attention_applies(&q, &k, &k));
        assert!(fused_attention(&q, &k, &k, 1.0, None).is_err());
    }

    /// The fused kernels' backward passes agree with central finite
    /// differences of their forward passes (f32, h = 1e-2, tolerance 2e-3).
    #[test]
    fn fused_kernel_gradients_match_finite_differences() {
        let proj = randn(&[2, 3, 4, 6], 51);
        let w = randn(&[6], 52);
        let cos = randn(&[2, 1, 4, 3], 53);
        let sin = randn(&[2, 1, 4, 3], 54);
        let other = randn(&[2, 3, 4, 6], 55);
        let weight = randn(&[6, 6], 57);
        let input = randn(&[2, 3, 4, 24], 58);
        // Attention with 4 query heads of 3 queries over 2 key/value heads of
        // 6 keys (the queries are the last 3 positions): 144 = 2·4·3·6 = 2·2·6·6.
        let att_q = randn(&[2, 4, 3, 6], 59);
        let att_k = randn(&[2, 2, 6, 6], 60);
        let att_v = randn(&[2, 2, 6, 6], 61);
        let att_bias = {
            let m: Vec<f32> = (0..18)
                .map(|i| if i % 6 > i / 6 + 3 { -1e30 } else { 0.0 })
                .collect();
            Tensor::from_vec(m, (1, 1, 3, 6), &Device::Cpu).unwrap()
        };
        type F<'a> = dyn Fn(&Tensor) -> Tensor + 'a;
        let fns: Vec<(&str, Box<F>)> = vec![
            (
                "rms_norm",
                Box::new(|x| rms_norm_for_training(x, &w, 1e-5).unwrap()),
            ),
            (
                "rope",
                Box::new(|x| rotate_half_rope(x, &cos, &sin).unwrap()),
            ),
            ("swiglu gate", Box::new(|x| swiglu(x, &other).unwrap())),
            ("swiglu up", Box::new(|x| swiglu(&other, x).unwrap())),
            ("linear input", Box::new(|x| linear(x, &weight).unwrap())),
            (
                "attention q",
                Box::new(|x| {
                    let x = x.reshape((2, 4, 3, 6)).unwrap();
                    let y = fused_attention(&x, &att_k, &att_v, 0.4, Some(&att_bias)).unwrap();
                    y.reshape((2, 3, 4, 6)).unwrap()
                }),
            ),
            (
                "attention k",
                Box::new(|x| {
                    let x = x.reshape((2, 2, 6, 6)).unwrap();
                    let y = fused_attention(&att_q, &x, &att_v, 0.4, Some(&att_bias)).unwrap();
                    y.reshape((2, 3, 4, 6)).unwrap()
                }),
            ),
            (
                "attention v",
                Box::new(|x| {
                    let x = x.reshape((2, 2, 6, 6)).unwrap();
                    let y = fused_attention(&att_q, &att_k, &x, 0.4, Some(&att_bias)).unwrap();
                    y.reshape((2, 3, 4, 6)).unwrap()
                }),
            ),
            (
                "linear weight",
                Box::new(|w| linear(&input, &w.reshape((6, 24)).unwrap()).unwrap()),
            ),
        ];
        let x0 = randn(&[2, 3, 4, 6], 56);
        for (name, f) in fns {
            let loss = |x: &Tensor| (f(x) * &proj).unwrap().sum_all().unwrap();
            assert_gradient_matches_finite_differences(name, &x0, &loss, 1e-2, 2e-3);
        }
    }

    /// Gradients agree with central finite differences (f64, tolerance 1e-6).
    #[test]
    fn gradients_match_finite_differences() {
        let x0 = randn(&[2, 6], 5).to_dtype(DType::F64).unwrap();
        let w = randn(&[6], 6).to_dtype(DType::F64).unwrap();
        let proj = randn(&[2, 6], 7).to_dtype(DType::F64).unwrap();
        let cos = randn(&[3], 8).to_dtype(DType::F64).unwrap();
        let sin = randn(&[3], 9).to_dtype(DType::F64).unwrap();
        type F<'a> = dyn Fn(&Tensor) -> Tensor + 'a;
        let fns: Vec<(&str, Box<F>)> = vec![
            (
                "rms_norm",
                Box::new(|x: &Tensor| rms_norm(x, &w, 1e-5).unwrap()),
            ),
            (
                "softmax",
                Box::new(|x: &Tensor| softmax_last_dim(x).unwrap()),
            ),
            (
                "rope",
                Box::new(|x: &Tensor| rotate_half_rope(x, &cos, &sin).unwrap()),
            ),
        ];
        for (name, f) in fns {
            let loss = |x: &Tensor| (f(x) * &proj).unwrap().sum_all().unwrap();
            assert_gradient_matches_finite_differences(name, &x0, &loss, 1e-5, 1e-6);
        }
    }

    /// Assert that the autograd gradient of the scalar `loss` at `x0` equals
    /// central finite differences `(L(x + h eᵢ) − L(x − h eᵢ)) / 2h` within
    /// `tol`, coordinate by coordinate (compared in f64, evaluated in x0's dtype).
    fn assert_gradient_matches_finite_differences(
        name: &str,
        x0: &Tensor,
        loss: &dyn Fn(&Tensor) -> Tensor,
        h: f64,
        tol: f64,
    ) {
        let as_f64 = |t: &Tensor| -> Vec<f64> {
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let var = Var::from_tensor(x0).unwrap();
        let grads = loss(var.as_tensor()).backward().unwrap();
        let g = as_f64(grads.get(&var).unwrap());
        let flat = as_f64(x0);
        for i in 0..flat.len() {
            let eval = |delta: f64| {
                let mut v = flat.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, x0.shape(), &Device::Cpu)
                    .unwrap()
                    .to_dtype(x0.dtype())
                    .unwrap();
                as_f64(&loss(&t))[0]
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            assert!(
                (numeric - g[i]).abs() < tol,
                "{name}: d/dx[{i}] analytic {} vs numeric {numeric}",
                g[i]
            );
        }
    }
}
