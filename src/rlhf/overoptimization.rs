//! Reward-model overoptimisation (Gao, Schulman & Hilton 2022, *Scaling laws
//! for reward model overoptimization*): as a policy moves away from where it
//! started, measured by d = √KL(π ‖ π_init), the gold reward first rises and
//! then falls while the proxy keeps rising. Their functional forms, with the
//! gold reward measured from the starting policy's (R(0) = 0):
//!
//! ```text
//! best-of-n:  R(d) = d (α − β d)
//! RL:         R(d) = d (α − β log d)
//! ```
//!
//! Both are linear in (α, β), so least squares fits them exactly.

use super::best_of_n::BestOfNPoint;
use super::ppo::HeldOutRecord;
use serde::{Deserialize, Serialize};

/// One policy's distance from the starting policy and how much its gold and
/// proxy scores moved from the starting policy's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// d = √KL(π ‖ π_init), nats^½.
    pub d: f64,
    /// Gold score − the starting policy's gold score.
    pub gold_gain: f64,
    /// Reward-model score − the starting policy's.
    pub proxy_gain: f64,
}

/// The best-of-n curve as drift points: d from the analytic KL bound, gains
/// over n = 1 (the SFT policy itself).
pub fn best_of_n_drift(curve: &[BestOfNPoint]) -> Vec<DriftPoint> {
    let Some(base) = curve.iter().find(|p| p.n == 1) else {
        return Vec::new();
    };
    curve
        .iter()
        .map(|p| DriftPoint {
            d: p.kl.max(0.0).sqrt(),
            gold_gain: p.gold_score - base.gold_score,
            proxy_gain: p.proxy_score - base.proxy_score,
        })
        .collect()
}

/// A PPO run as drift points: its held-out measurements (the same prompts
/// and dice each time, see [`HeldOutRecord`]), gains over the first one —
/// the starting policy, at KL 0.
pub fn ppo_drift(held_out: &[HeldOutRecord]) -> Vec<DriftPoint> {
    let Some(first) = held_out.first() else {
        return Vec::new();
    };
    let start = first.evaluation;
    held_out
        .iter()
        .map(|r| DriftPoint {
            d: r.evaluation.kl.max(0.0).sqrt(),
            gold_gain: r.evaluation.gold_score - start.gold_score,
            proxy_gain: r.evaluation.proxy_score - start.proxy_score,
        })
        .collect()
}

/// Fitted coefficients of one of the forms above.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GoldFit {
    pub alpha: f64,
    pub beta: f64,
    /// Points used.
    pub points: usize,
}

impl GoldFit {
    /// R(d) of the best-of-n form.
    pub fn best_of_n(&self, d: f64) -> f64 {
        d * (self.alpha - self.beta * d)
    }

    /// R(d) of the RL form (R(0) = 0).
    pub fn rl(&self, d: f64) -> f64 {
        if d <= 0.0 {
            0.0
        } else {
            d * (self.alpha - self.beta * d.ln())
        }
    }
}

/// Least squares of y ≈ α·u − β·v (no intercept) over the points.
fn two_feature_fit(u: &[f64], v: &[f64], y: &[f64]) -> GoldFit {
    // Normal equations for (α, b) in y = α u + b v, then β = −b.
    let (mut suu, mut suv, mut svv, mut suy, mut svy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for ((&a, &b), &t) in u.iter().zip(v).zip(y) {
        suu += a * a;
        suv += a * b;
        svv += b * b;
        suy += a * t;
        svy += b * t;
    }
    let det = suu * svv - suv * suv;
    let (alpha, b) = if det.abs() < 1e-12 {
        (if suu > 0.0 { suy / suu } else { 0.0 }, 0.0)
    } else {
        ((suy * svv - svy * suv) / det, (svy * suu - suy * suv) / det)
    };
    GoldFit {
        alpha,
        beta: -b,
        points: y.len(),
    }
}

/// Fit R(d) = d(α − βd) to points (d, R).
pub fn fit_best_of_n(d: &[f64], r: &[f64]) -> GoldFit {
    let sq: Vec<f64> = d.iter().map(|x| x * x).collect();
    two_feature_fit(d, &sq, r)
}

/// Fit the best-of-n form to the gold gains of `points`.
pub fn fit_best_of_n_gold(points: &[DriftPoint]) -> GoldFit {
    let (d, r): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (p.d, p.gold_gain)).unzip();
    fit_best_of_n(&d, &r)
}

/// Fit the RL form to the gold gains of `points`.
pub fn fit_rl_gold(points: &[DriftPoint]) -> GoldFit {
    let (d, r): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (p.d, p.gold_gain)).unzip();
    fit_rl(&d, &r)
}

/// Fit R(d) = d(α − β log d) to points (d, R); points with d ≤ 0 are left out.
pub fn fit_rl(d: &[f64], r: &[f64]) -> GoldFit {
    let (mut u, mut v, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (&x, &t) in d.iter().zip(r) {
        if x > 0.0 {
            u.push(x);
            v.push(x * x.ln());
            y.push(t);
        }
    }
    two_feature_fit(&u, &v, &y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points drawn exactly from each form are fitted back exactly.
    #[test]
    fn fits_recover_known_coefficients() {
        let d: Vec<f64> = (1..=12).map(|i| i as f64 * 0.25).collect();
        let bon: Vec<f64> = d.iter().map(|x| x * (1.5 - 0.4 * x)).collect();
        let f = fit_best_of_n(&d, &bon);
        assert!(
            (f.alpha - 1.5).abs() < 1e-9 && (f.beta - 0.4).abs() < 1e-9,
            "{f:?}"
        );
        let rl: Vec<f64> = d.iter().map(|x| x * (0.8 - 0.3 * x.ln())).collect();
        let f = fit_rl(&d, &rl);
        assert!(
            (f.alpha - 0.8).abs() < 1e-9 && (f.beta - 0.3).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f.rl(2.0) - 2.0 * (0.8 - 0.3 * 2f64.ln())).abs() < 1e-9);
        assert_eq!(f.rl(0.0), 0.0);
    }

    /// Best-of-n points are measured from n = 1 with d = √(log n − (n−1)/n);
    /// PPO points are the held-out measurements, gains from the first (KL 0).
    #[test]
    fn drift_points_from_best_of_n_and_ppo_history() {
        let bon: Vec<BestOfNPoint> = [(1, 3.0, -0.5), (2, 3.4, 0.0), (4, 3.3, 0.3)]
            .iter()
            .map(|&(n, gold, proxy)| BestOfNPoint {
                n,
                kl: crate::rlhf::best_of_n::best_of_n_kl(n),
                proxy_score: proxy,
                gold_score: gold,
            })
            .collect();
        let d = best_of_n_drift(&bon);
        assert_eq!(
            d[0],
            DriftPoint {
                d: 0.0,
                gold_gain: 0.0,
                proxy_gain: 0.0
            }
        );
        assert!((d[1].d - (2f64.ln() - 0.5).sqrt()).abs() < 1e-12);
        assert!((d[2].gold_gain - 0.3).abs() < 1e-12 && (d[2].proxy_gain - 0.8).abs() < 1e-12);

        let measured = |iteration: usize, kl: f64, gold: f64, proxy: f64| HeldOutRecord {
            iteration,
            evaluation: crate::rlhf::ppo::PolicyEvaluation {
                proxy_score: proxy,
                gold_score: gold,
                kl,
                answer_length: 20.0,
                ended: 1.0,
                answers: 120,
            },
            seconds: 1.0,
        };
        let h = vec![
            measured(0, 0.0, 3.0, 0.0),
            measured(5, 1.0, 3.2, 0.2),
            measured(10, 9.0, 1.5, 1.5),
        ];
        let p = ppo_drift(&h);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].d, 0.0);
        assert!((p[1].d - 1.0).abs() < 1e-12 && (p[1].gold_gain - 0.2).abs() < 1e-12);
        assert!((p[2].d - 3.0).abs() < 1e-12);
        assert!((p[2].gold_gain + 1.5).abs() < 1e-12 && (p[2].proxy_gain - 1.5).abs() < 1e-12);
        assert!(ppo_drift(&[]).is_empty());
    }
}
