//! The fused CPU kernels of [`super::target_log_probs`]: the cross-entropy's
//! log-softmax and gather in one pass per row, and its backward.

use super::contiguous_slice;
use candle_core::{DType, Result, Tensor};
use std::sync::{Arc, Mutex};

/// `log Σⱼ exp(zⱼ)` of one row, stable (the max subtracted first), with the
/// vectorisable [`super::exp`].
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + super::exp::sum_exp(row, max).ln()
}

simd_kernel! {
    /// oⱼ = c · exp(zⱼ − lse): softmax(z) times c, from the row's log-sum-exp.
    fn scaled_softmax(o: &mut [f32], row: &[f32], c: f32, lse: f32) {
        for (oj, &z) in o.iter_mut().zip(row) {
            *oj = c * super::exp::exp(z - lse);
        }
    }
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
#[derive(Default)]
pub(super) struct FusedTargetLogProb {
    /// Each row's `log Σⱼ exp(zⱼ)` from the forward pass, for the backward.
    log_sum_exps: Mutex<Option<Arc<Vec<f32>>>>,
}

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
        let (logits, targets, vocab) = logits_and_targets(s1, l1, s2, l2)?;
        let rows = logits.chunks(vocab).zip(targets);
        let per_row = super::threads::map(rows, |(row, &t)| {
            let lse = log_sum_exp(row);
            (row[t as usize] - lse, lse)
        });
        let (out, lse): (Vec<f32>, Vec<f32>) = per_row.into_iter().unzip();
        *self.log_sum_exps.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(lse));
        Ok((candle_core::CpuStorage::F32(out), l2.shape().clone()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = self
            .log_sum_exps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(log_sum_exps) = saved else {
            candle_core::bail!("target_log_probs: backward pass without a forward pass");
        };
        let grad = logits.apply_op3_no_bwd(
            targets,
            &grad_res.to_dtype(DType::F32)?.contiguous()?,
            &TargetLogProbGrad { log_sum_exps },
        )?;
        Ok((Some(grad), None))
    }
}

/// `gᵢ · (1[j = yᵢ] − softmax(zᵢ)ⱼ)`: the gradient of [`target_log_probs`]
/// with respect to the logits, one pass per row, with softmax(zᵢ)ⱼ =
/// exp(zᵢⱼ − lseᵢ) from the forward pass's log-sum-exps. A row whose gᵢ is 0
/// (a position the loss masks out) is written without its exps: −gᵢ·e has
/// the sign of −gᵢ for any e ≥ 0, so the bits are the same.
struct TargetLogProbGrad {
    log_sum_exps: Arc<Vec<f32>>,
}

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
        let (logits, targets, vocab) = logits_and_targets(s1, l1, s2, l2)?;
        let grads = contiguous_slice::<f32>(s3, l3, "target_log_probs backward: the gradient")?;
        let mut out = vec![0f32; logits.len()];
        if self.log_sum_exps.len() != targets.len() || grads.len() != targets.len() {
            candle_core::bail!(
                "target_log_probs backward: {} rows, {} gradients, {} saved log-sum-exps",
                targets.len(),
                grads.len(),
                self.log_sum_exps.len()
            );
        }
        let rows = out.chunks_mut(vocab).zip(logits.chunks(vocab)).zip(
            targets
                .iter()
                .zip(grads.iter().zip(self.log_sum_exps.iter())),
        );
        super::threads::for_each(rows, |((o, row), (&t, (&g, &lse)))| {
            if g == 0.0 {
                o.fill(-g);
            } else {
                scaled_softmax(o, row, -g, lse);
            }
            o[t as usize] += g;
        });
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}
