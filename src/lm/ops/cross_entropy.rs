//! The fused CPU kernels of [`super::target_log_probs`]: the cross-entropy's
//! log-softmax and gather in one pass per row, and its backward.

use super::contiguous_slice;
use candle_core::{DType, Result, Tensor};

/// `log Σⱼ exp(zⱼ)` of one row, stable (the max subtracted first), with the
/// vectorisable [`super::exp`].
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + super::exp::sum_exp(row, max).ln()
}

/// The contiguous f32 logits and u32 targets of a fused op's storages.
fn logits_and_targets<'a>(
    s1: &'a candle_core::CpuStorage,
    l1: &candle_core::Layout,
    s2: &'a candle_core::CpuStorage,
    l2: &candle_core::Layout,
) -> Result<(&'a [f32], &'a [u32], usize)> {
    let logits = contiguous_slice::<f32>(s1, l1, "target_log_probs: the logits")?;
    let targets = contiguous_slice::<u32>(s2, l2, "target_log_probs: the targets")?;
    let vocab = l1.dims().last().copied().unwrap_or(1).max(1);
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!(
            "target_log_probs: target token {t} is outside the vocabulary of {vocab}"
        );
    }
    Ok((logits, targets, vocab))
}

/// The forward pass of [`target_log_probs`] on CPU, with its backward.
pub(super) struct FusedTargetLogProb;

impl candle_core::CustomOp2 for FusedTargetLogProb {
    fn name(&self) -> &'static str {
        "rlhf-lab-target-log-prob"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (logits, targets, vocab) = logits_and_targets(s1, l1, s2, l2)?;
        let out: Vec<f32> = logits
            .par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &t)| row[t as usize] - log_sum_exp(row))
            .collect();
        Ok((candle_core::CpuStorage::F32(out), l2.shape().clone()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = logits.apply_op3_no_bwd(
            targets,
            &grad_res.to_dtype(DType::F32)?.contiguous()?,
            &TargetLogProbGrad,
        )?;
        Ok((Some(grad), None))
    }
}

/// `gᵢ · (1[j = yᵢ] − softmax(zᵢ)ⱼ)`: the gradient of [`target_log_probs`]
/// with respect to the logits, one pass per row.
struct TargetLogProbGrad;

impl candle_core::CustomOp3 for TargetLogProbGrad {
    fn name(&self) -> &'static str {
        "rlhf-lab-target-log-prob-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
        s3: &candle_core::CpuStorage,
        l3: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (logits, targets, vocab) = logits_and_targets(s1, l1, s2, l2)?;
        let grads = contiguous_slice::<f32>(s3, l3, "target_log_probs backward: the gradient")?;
        let mut out = vec![0f32; logits.len()];
        out.par_chunks_mut(vocab)
            .zip(logits.par_chunks(vocab))
            .zip(targets.par_iter().zip(grads.par_iter()))
            .for_each(|((o, row), (&t, &g))| {
                let lse = log_sum_exp(row);
                for (oj, &z) in o.iter_mut().zip(row) {
                    *oj = -g * super::exp::exp(z - lse);
                }
                o[t as usize] += g;
            });
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}
