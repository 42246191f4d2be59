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

use serde::{Deserialize, Serialize};

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
}
