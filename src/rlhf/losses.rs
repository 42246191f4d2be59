//! Losses that turn preferences into gradients, written once: the reward
//! model's (rung 6) and DPO's (rung 8).
//!
//! References:
//! - R. A. Bradley, M. E. Terry. *Rank analysis of incomplete block designs*, 1952 —
//!   P(a ≻ b) = σ(r_a − r_b).
//! - L. Ouyang et al. *Training language models to follow instructions with human
//!   feedback* (InstructGPT), 2022, eq. 1 — the pairwise reward-model loss.
//! - H. Touvron et al. *Llama 2*, 2023, eq. 2 — the margin.
//! - J. Eisenstein et al. *Helping or herding? Reward model ensembles mitigate but
//!   do not eliminate reward hacking*, 2023 — the centring term (c = 0.01 in TRL).
//! - R. Rafailov et al. *Direct Preference Optimization: your language model is
//!   secretly a reward model*, 2023, eq. 7 — the DPO loss.
//! - M. G. Azar et al. *A general theoretical paradigm to understand learning from
//!   human preferences* (IPO), 2023, eq. 17 — the squared loss.

use candle_core::{DType, Result, Tensor};

/// log σ(x) = −ln(1 + e⁻ˣ), computed stably and with the exact gradient
/// 1 − σ(x) everywhere (also at x = 0, where formulas built on |x| have a kink).
/// Below x = −20, log σ(x) = x − ln(1 + eˣ) equals x to within 2·10⁻⁹, so that
/// branch is x itself; the other is evaluated at max(x, −20) so it never overflows.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    const FAR: f64 = -20.0;
    let safe = x.maximum(FAR)?;
    let near = (safe.neg()?.exp()? + 1.0)?.log()?.neg()?;
    x.lt(FAR)?.where_cond(x, &near)
}

/// Options of [`pairwise_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PairwiseOptions {
    /// c of the centring term c · mean((r_c + r_r)²), which keeps rewards near 0
    /// (Eisenstein et al. 2023; TRL's `center_rewards_coefficient`, 0.01 there).
    pub centering: f64,
}

/// The Bradley–Terry reward-model loss of chosen and rejected rewards (b,):
///
/// ```text
/// ℓᵢ = −log σ(r_c,i − r_r,i − mᵢ)                       (mᵢ the margin, 0 without one)
/// L  = Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ  +  c · mean((r_c + r_r)²)     (wᵢ = 1 without weights)
/// ```
///
/// Weights let a robust fit count each comparison by its annotator's
/// reliability; a margin asks the chosen answer to win by at least that much.
pub fn pairwise_loss(
    chosen: &Tensor,
    rejected: &Tensor,
    margin: Option<&Tensor>,
    weights: Option<&Tensor>,
    options: PairwiseOptions,
) -> Result<Tensor> {
    let mut diff = (chosen - rejected)?;
    if let Some(m) = margin {
        diff = (diff - m)?;
    }
    let per_pair = log_sigmoid(&diff)?.neg()?;
    let mut loss = match weights {
        None => per_pair.mean_all()?,
        Some(w) => {
            let w = w.to_dtype(per_pair.dtype())?;
            ((&per_pair * &w)?.sum_all()? / w.sum_all()?.maximum(1e-12)?)?
        }
    };
    if options.centering > 0.0 {
        let centre = (chosen + rejected)?.sqr()?.mean_all()?;
        loss = (loss + (centre * options.centering)?)?;
    }
    Ok(loss)
}

/// Which loss [`preference_optimization_loss`] puts on the log-ratio difference h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLossKind {
    /// DPO: −log σ(β·h) (TRL's `loss_type="sigmoid"`).
    #[default]
    Sigmoid,
    /// IPO: (h − 1/(2β))², which stops pushing once the margin reaches 1/(2β)
    /// instead of driving it to infinity on deterministic preferences.
    Ipo,
}

impl std::str::FromStr for DpoLossKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sigmoid" | "dpo" => Ok(Self::Sigmoid),
            "ipo" => Ok(Self::Ipo),
            other => Err(format!("unknown DPO loss `{other}` (sigmoid or ipo)")),
        }
    }
}

/// The loss of DPO or IPO on a batch of pairs, and the implicit rewards.
#[derive(Debug, Clone)]
pub struct PreferenceOptimizationLoss {
    /// The scalar to minimise.
    pub loss: Tensor,
    /// β·(log π(y_c|x) − log π_ref(y_c|x)) per pair (b,), detached: DPO's
    /// implicit reward of the chosen answer (TRL's `rewards/chosen`).
    pub rewards_chosen: Tensor,
    /// The same for the rejected answer.
    pub rewards_rejected: Tensor,
}

/// DPO's loss (Rafailov et al. 2023, eq. 7) or IPO's (Azar et al. 2023) on
/// sequence log-probabilities (b,) of chosen and rejected answers under the
/// policy and the frozen reference:
///
/// ```text
/// h  = [log π(y_c|x) − log π_ref(y_c|x)] − [log π(y_r|x) − log π_ref(y_r|x)]
/// ℓ  = −log σ(β·h)            (sigmoid: DPO)
///    = (h − 1/(2β))²          (IPO)
/// L  = Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ       (wᵢ = 1 without weights)
/// ```
///
/// The log-probabilities are sums over the answer tokens only (the prompt
/// masked), as TRL's `DPOTrainer` computes them. (TRL's IPO divides them by the
/// answer length first; here both losses see the same sums.)
pub fn preference_optimization_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    reference_chosen: &Tensor,
    reference_rejected: &Tensor,
    beta: f64,
    kind: DpoLossKind,
    weights: Option<&Tensor>,
) -> Result<PreferenceOptimizationLoss> {
    let chosen_ratio = (policy_chosen - reference_chosen)?;
    let rejected_ratio = (policy_rejected - reference_rejected)?;
    let h = (&chosen_ratio - &rejected_ratio)?;
    let per_pair = match kind {
        DpoLossKind::Sigmoid => log_sigmoid(&(&h * beta)?)?.neg()?,
        DpoLossKind::Ipo => (&h - 1.0 / (2.0 * beta))?.sqr()?,
    };
    let loss = match weights {
        None => per_pair.mean_all()?,
        Some(w) => {
            let w = w.to_dtype(per_pair.dtype())?;
            ((&per_pair * &w)?.sum_all()? / w.sum_all()?.maximum(1e-12)?)?
        }
    };
    Ok(PreferenceOptimizationLoss {
        loss,
        rewards_chosen: (chosen_ratio.detach() * beta)?,
        rewards_rejected: (rejected_ratio.detach() * beta)?,
    })
}

/// Regression onto target scores: `L = mean (r − y)²` (the reward model trained
/// on Elo / Bradley–Terry scores of each answer, normalised).
pub fn regression_loss(predicted: &Tensor, targets: &Tensor) -> Result<Tensor> {
    (predicted - targets.to_dtype(predicted.dtype())?)?
        .sqr()?
        .mean_all()
}

/// Share of pairs where the chosen reward is strictly higher (a tie counts as
/// wrong, as TRL counts it).
pub fn pairwise_accuracy(chosen: &Tensor, rejected: &Tensor) -> Result<f64> {
    (chosen - rejected)?
        .gt(0.0)?
        .to_dtype(DType::F64)?
        .mean_all()?
        .to_scalar::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f64 {
        x.to_dtype(DType::F64).unwrap().to_scalar().unwrap()
    }

    /// Two pairs worked by hand. r_c − r_r = [2, −1]:
    /// −log σ(2) = ln(1 + e⁻²) = 0.126928; −log σ(−1) = ln(1 + e) = 1.313262.
    #[test]
    fn pairwise_loss_by_hand() {
        let (c, r) = (t(&[1.5, 0.0]), t(&[-0.5, 1.0]));
        let plain = scalar(pairwise_loss(&c, &r, None, None, Default::default()).unwrap());
        assert!(
            (plain - (0.126928 + 1.313262) / 2.0).abs() < 1e-5,
            "{plain}"
        );
        // Margin 1 on the first pair: −log σ(1) = 0.313262.
        let m = t(&[1.0, 0.0]);
        let with_margin =
            scalar(pairwise_loss(&c, &r, Some(&m), None, Default::default()).unwrap());
        assert!((with_margin - (0.313262 + 1.313262) / 2.0).abs() < 1e-5);
        // Weights 3 and 1: (3·0.126928 + 1.313262) / 4.
        let w = t(&[3.0, 1.0]);
        let weighted = scalar(pairwise_loss(&c, &r, None, Some(&w), Default::default()).unwrap());
        assert!((weighted - (3.0 * 0.126928 + 1.313262) / 4.0).abs() < 1e-5);
        // Centring, c = 0.01: (r_c + r_r)² = [1, 1], mean 1 → + 0.01.
        let centred =
            scalar(pairwise_loss(&c, &r, None, None, PairwiseOptions { centering: 0.01 }).unwrap());
        assert!((centred - plain - 0.01).abs() < 1e-6);
        assert_eq!(pairwise_accuracy(&c, &r).unwrap(), 0.5);
        // A tie is not a win.
        assert_eq!(pairwise_accuracy(&t(&[1.0]), &t(&[1.0])).unwrap(), 0.0);
    }

    /// Two pairs worked by hand, β = 0.1.
    /// Pair 1: π_c −10, π_r −12, ref −11, −11 → h = 1 − (−1) = 2, β·h = 0.2,
    ///   −log σ(0.2) = ln(1 + e^−0.2) = 0.598139; IPO (2 − 5)² = 9.
    /// Pair 2: π_c −5, π_r −4, ref −5, −5 → h = 0 − 1 = −1, β·h = −0.1,
    ///   −log σ(−0.1) = ln(1 + e^0.1) = 0.744397; IPO (−1 − 5)² = 36.
    /// ∂L/∂π_c of pair 1 = −β(1 − σ(0.2)) / 2 = −0.1 · 0.450166 / 2 = −0.0225083.
    #[test]
    fn dpo_and_ipo_losses_by_hand() {
        let pc = candle_core::Var::new(&[-10f32, -5.0], &Device::Cpu).unwrap();
        let (pr, rc, rr) = (t(&[-12.0, -4.0]), t(&[-11.0, -5.0]), t(&[-11.0, -5.0]));
        let loss = |kind, weights: Option<&Tensor>| {
            preference_optimization_loss(pc.as_tensor(), &pr, &rc, &rr, 0.1, kind, weights).unwrap()
        };
        let out = loss(DpoLossKind::Sigmoid, None);
        let l = scalar(out.loss.clone());
        assert!((l - (0.598139 + 0.744397) / 2.0).abs() < 1e-5, "{l}");
        let chosen: Vec<f32> = out.rewards_chosen.to_vec1().unwrap();
        let rejected: Vec<f32> = out.rewards_rejected.to_vec1().unwrap();
        assert!((chosen[0] - 0.1).abs() < 1e-6 && chosen[1].abs() < 1e-6);
        assert!((rejected[0] + 0.1).abs() < 1e-6 && (rejected[1] - 0.1).abs() < 1e-6);
        let g: Vec<f32> = out
            .loss
            .backward()
            .unwrap()
            .get(&pc)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!((g[0] + 0.0225083).abs() < 1e-6, "{g:?}");
        let ipo = loss(DpoLossKind::Ipo, None);
        assert!((scalar(ipo.loss) - (9.0 + 36.0) / 2.0).abs() < 1e-4);
        // Weights 3 and 1.
        let w = t(&[3.0, 1.0]);
        let weighted = loss(DpoLossKind::Sigmoid, Some(&w));
        assert!((scalar(weighted.loss) - (3.0 * 0.598139 + 0.744397) / 4.0).abs() < 1e-5);
        // At the start of training the policy is the reference: h = 0, ℓ = ln 2.
        let start =
            preference_optimization_loss(&rc, &rr, &rc, &rr, 0.1, DpoLossKind::Sigmoid, None)
                .unwrap();
        assert!((scalar(start.loss) - 2f64.ln()).abs() < 1e-6);
    }

    /// log σ stays finite far out in both tails and has the right gradient:
    /// d/dx log σ(x) = 1 − σ(x).
    #[test]
    fn log_sigmoid_is_stable_and_differentiable() {
        let x = candle_core::Var::new(&[-80f32, -1.0, 0.0, 2.0, 80.0], &Device::Cpu).unwrap();
        let y = log_sigmoid(x.as_tensor()).unwrap();
        let v: Vec<f32> = y.to_vec1().unwrap();
        assert!((v[0] + 80.0).abs() < 1e-4 && v[4].abs() < 1e-6);
        assert!((v[2] + 2f32.ln()).abs() < 1e-6);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(&x).unwrap().to_vec1().unwrap();
        for (xi, gi) in [-80f32, -1.0, 0.0, 2.0, 80.0].iter().zip(g) {
            let want = 1.0 - 1.0 / (1.0 + (-xi).exp());
            assert!((gi - want).abs() < 1e-5, "x {xi}: {gi} vs {want}");
        }
        let mse = scalar(regression_loss(&t(&[1.0, 3.0]), &t(&[0.0, 1.0])).unwrap());
        assert!((mse - 2.5).abs() < 1e-6);
    }
}
