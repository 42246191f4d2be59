//! Losses that turn preferences into gradients, written once: the reward
//! model's (rung 6) and, later, DPO's (rung 8).
//!
//! References:
//! - R. A. Bradley, M. E. Terry. *Rank analysis of incomplete block designs*, 1952 —
//!   P(a ≻ b) = σ(r_a − r_b).
//! - L. Ouyang et al. *Training language models to follow instructions with human
//!   feedback* (InstructGPT), 2022, eq. 1 — the pairwise reward-model loss.
//! - H. Touvron et al. *Llama 2*, 2023, eq. 2 — the margin.
//! - J. Eisenstein et al. *Helping or herding? Reward model ensembles mitigate but
//!   do not eliminate reward hacking*, 2023 — the centring term (c = 0.01 in TRL).

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
