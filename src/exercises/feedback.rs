//! Notebook 05's exercises: one Elo update, a Wilson interval, Cohen's κ.
//!
//! Ground truth: [`crate::feedback::ranking::elo`],
//! [`crate::feedback::aggregate::wilson_interval`] and
//! [`crate::feedback::agreement::cohen_kappa_labels`].

use super::{close, Check};
use crate::feedback::aggregate::{wilson_interval, ProportionInterval};
use crate::feedback::agreement::cohen_kappa_labels;
use crate::feedback::ranking::{elo, EloConfig, Match};

/// Exercise id: one Elo update.
pub const ELO_UPDATE: &str = "05-elo-update";
/// Exercise id: the Wilson score interval.
pub const WILSON: &str = "05-wilson-interval";
/// Exercise id: Cohen's κ from two annotators' labels.
pub const COHEN_KAPPA: &str = "05-cohen-kappa";

/// One Elo case: the matches played before (between items 0 = A and 1 = B), then
/// the match to update for, with K.
#[derive(Debug, Clone)]
pub struct EloCase {
    /// Earlier matches, which set the ratings before the update.
    pub before: Vec<Match>,
    /// The match the learner updates for.
    pub game: Match,
    /// Elo's K.
    pub k: f64,
}

/// The cases [`check_elo_update`] tries: a first match between equals, an upset
/// after A won three times, a tie after B won twice with K = 32.
pub fn elo_cases() -> Vec<EloCase> {
    vec![
        EloCase {
            before: vec![],
            game: Match::new(0, 1, 1.0),
            k: 16.0,
        },
        EloCase {
            before: vec![Match::new(0, 1, 1.0); 3],
            game: Match::new(0, 1, 0.0),
            k: 16.0,
        },
        EloCase {
            before: vec![Match::new(0, 1, 0.0); 2],
            game: Match::new(0, 1, 0.5),
            k: 32.0,
        },
    ]
}

fn outcome(score_a: f64) -> &'static str {
    if score_a == 1.0 {
        "A wins"
    } else if score_a == 0.0 {
        "A loses"
    } else {
        "a tie"
    }
}

/// Checks `elo_update(r_a, r_b, score_a, k)`, which should return the ratings after
/// one match, `(R_A + K·(S_A − E_A), R_B − K·(S_A − E_A))` with
/// `E_A = 1 / (1 + 10^((R_B − R_A)/400))`, on [`elo_cases`]: the ratings before and
/// after come from [`elo`] itself, run over the earlier matches and then this one.
pub fn check_elo_update(elo_update: impl Fn(f64, f64, f64, f64) -> (f64, f64)) -> Check {
    let id = ELO_UPDATE;
    let cases = elo_cases();
    for case in &cases {
        let cfg = EloConfig {
            k: case.k,
            ..EloConfig::default()
        };
        let before = elo(2, &case.before, cfg);
        let mut all = case.before.clone();
        all.push(case.game);
        let after = elo(2, &all, cfg);
        let (ra, rb, s, k) = (before[0], before[1], case.game.score_a, case.k);
        let got = elo_update(ra, rb, s, k);
        if close(after[0], got.0, 1e-9) && close(after[1], got.1, 1e-9) {
            continue;
        }
        let delta = after[0] - ra;
        let natural = k * (s - 1.0 / (1.0 + ((rb - ra) / cfg.scale).exp()));
        let why = if close(ra - delta, got.0, 1e-9) && close(rb + delta, got.1, 1e-9) {
            " — wrong direction: A's rating moves by K·(S_A − E_A), up when A did better than expected"
        } else if close(after[0], got.0, 1e-9) && close(rb, got.1, 1e-9) {
            " — B's rating must move too, by the same amount the other way"
        } else if close(ra + natural, got.0, 1e-9) {
            " — E_A uses powers of 10 on the 400-point scale: 1 / (1 + 10^((R_B − R_A)/400))"
        } else if close(ra + k * s, got.0, 1e-9) {
            " — subtract the expected score E_A: a win against a weaker player earns less"
        } else {
            ""
        };
        return Check::fail(
            id,
            format!(
                "your update for R_A = {ra:.1}, R_B = {rb:.1}, {} (S_A = {s}, K = {k}) is off: expected ({:.2}, {:.2}), got ({:.2}, {:.2}){why}",
                outcome(s),
                after[0],
                after[1],
                got.0,
                got.1
            ),
        );
    }
    Check::pass(
        id,
        format!(
            "your updates match rlhf_lab's elo on {} matches",
            cases.len()
        ),
    )
}

/// (successes, trials) [`check_wilson`] tries, at z = 1.96.
pub const WILSON_CASES: [(usize, usize); 4] = [(3, 10), (0, 5), (48, 50), (130, 200)];

/// Checks `wilson_interval(successes, n, z)`, which should return the Wilson score
/// interval `(lo, hi)`:
///
/// ```text
/// p = k/n,  centre = (p + z²/2n) / (1 + z²/n),
/// half = z·√(p(1 − p)/n + z²/4n²) / (1 + z²/n),   (lo, hi) = centre ∓ half
/// ```
///
/// on [`WILSON_CASES`], against [`wilson_interval`].
pub fn check_wilson(my_wilson: impl Fn(usize, usize, f64) -> (f64, f64)) -> Check {
    let id = WILSON;
    let z = 1.96;
    for (k, n) in WILSON_CASES {
        let ProportionInterval {
            estimate: p,
            lo,
            hi,
        } = wilson_interval(k, n, z);
        let got = my_wilson(k, n, z);
        if close(lo, got.0, 1e-9) && close(hi, got.1, 1e-9) {
            continue;
        }
        let wald = z * (p * (1.0 - p) / n as f64).sqrt();
        let why = if close(p - wald, got.0, 1e-9) && close(p + wald, got.1, 1e-9) {
            " — that is the normal (Wald) interval p ± z·√(p(1 − p)/n), which collapses to a point at 0 or n successes; Wilson's is centred at (p + z²/2n)/(1 + z²/n)"
        } else if close(hi, got.0, 1e-9) && close(lo, got.1, 1e-9) {
            " — lo and hi are swapped"
        } else {
            ""
        };
        return Check::fail(
            id,
            format!(
                "your interval for {k} thumbs up of {n} (z = {z}) is off: expected [{lo:.4}, {hi:.4}], got [{:.4}, {:.4}]{why}",
                got.0, got.1
            ),
        );
    }
    Check::pass(
        id,
        format!(
            "your intervals match rlhf_lab's wilson_interval on {} counts",
            WILSON_CASES.len()
        ),
    )
}

/// Label pairs [`check_cohen_kappa`] tries (0 = "A is better", 1 = "B is better",
/// 2 = tie; `(annotator 1, annotator 2)` per item): a balanced one, and one where
/// both say "A" nearly always, so that raw agreement is high and κ is not.
pub fn kappa_examples() -> Vec<Vec<(usize, usize)>> {
    vec![
        vec![
            (0, 0),
            (0, 0),
            (1, 1),
            (1, 0),
            (2, 2),
            (0, 1),
            (1, 1),
            (0, 0),
            (2, 1),
            (1, 1),
            (0, 2),
            (0, 0),
        ],
        vec![
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 0),
        ],
    ]
}

/// Checks `cohen_kappa(pairs, k)`, which should return Cohen's κ for two annotators'
/// labels over `k` categories, `κ = (p_o − p_e) / (1 − p_e)` with p_o the share of
/// items they label alike and p_e = Σ_c p_1(c)·p_2(c) the agreement expected by
/// chance from each one's label frequencies, on [`kappa_examples`], against
/// [`cohen_kappa_labels`].
pub fn check_cohen_kappa(my_cohen_kappa: impl Fn(&[(usize, usize)], usize) -> f64) -> Check {
    let id = COHEN_KAPPA;
    let examples = kappa_examples();
    for (i, pairs) in examples.iter().enumerate() {
        let k = 3;
        let expected = cohen_kappa_labels(pairs, k);
        let got = my_cohen_kappa(pairs, k);
        if close(expected, got, 1e-9) {
            continue;
        }
        let n = pairs.len() as f64;
        let po = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
        let uniform = (po - 1.0 / k as f64) / (1.0 - 1.0 / k as f64);
        let why = if close(po, got, 1e-9) {
            " — that is the raw agreement p_o: subtract the chance agreement p_e and divide by 1 − p_e"
        } else if close(uniform, got, 1e-9) {
            " — chance agreement p_e comes from each annotator's own label frequencies, Σ_c p_1(c)·p_2(c), not 1/k"
        } else {
            ""
        };
        return Check::fail(
            id,
            format!(
                "your κ for example {} ({} label pairs, raw agreement {po:.3}) is off: expected {expected:.4}, got {got:.4}{why}",
                i + 1,
                pairs.len()
            ),
        );
    }
    Check::pass(
        id,
        format!(
            "your κ matches rlhf_lab's cohen_kappa_labels on {} examples",
            examples.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::ranking::elo_expected;

    // The notebook's stubs, unchanged.
    fn stub_elo_update(r_a: f64, r_b: f64, _score_a: f64, _k: f64) -> (f64, f64) {
        (r_a, r_b)
    }
    fn stub_wilson(_successes: usize, _n: usize, _z: f64) -> (f64, f64) {
        (0.0, 0.0)
    }
    fn stub_kappa(_pairs: &[(usize, usize)], _k: usize) -> f64 {
        0.0
    }

    #[test]
    fn elo_reference_passes_and_stub_gets_the_match() {
        let ok = check_elo_update(|ra, rb, s, k| {
            let d = k * (s - elo_expected(ra, rb, 400.0));
            (ra + d, rb - d)
        });
        assert!(ok.passed, "{ok}");
        let stub = check_elo_update(stub_elo_update);
        assert_eq!(
            stub.to_string(),
            "✗ 05-elo-update: your update for R_A = 1000.0, R_B = 1000.0, A wins (S_A = 1, K = 16) is off: expected (1008.00, 992.00), got (1000.00, 1000.00)"
        );
        let backwards = check_elo_update(|ra, rb, s, k| {
            let d = k * (s - elo_expected(ra, rb, 400.0));
            (ra - d, rb + d)
        });
        assert!(backwards.message.contains("wrong direction"), "{backwards}");
        let only_a =
            check_elo_update(|ra, rb, s, k| (ra + k * (s - elo_expected(ra, rb, 400.0)), rb));
        assert!(only_a.message.contains("B's rating must move"), "{only_a}");
    }

    #[test]
    fn wilson_reference_passes_and_stub_and_wald_fail() {
        let ok = check_wilson(|k, n, z| {
            let ProportionInterval { lo, hi, .. } = wilson_interval(k, n, z);
            (lo, hi)
        });
        assert!(ok.passed, "{ok}");
        let stub = check_wilson(stub_wilson);
        let ProportionInterval { lo, hi, .. } = wilson_interval(3, 10, 1.96);
        assert_eq!(
            stub.to_string(),
            format!("✗ 05-wilson-interval: your interval for 3 thumbs up of 10 (z = 1.96) is off: expected [{lo:.4}, {hi:.4}], got [0.0000, 0.0000]")
        );
        let wald = check_wilson(|k, n, z| {
            let p = k as f64 / n as f64;
            let h = z * (p * (1.0 - p) / n as f64).sqrt();
            (p - h, p + h)
        });
        assert!(wald.message.contains("Wald"), "{wald}");
    }

    #[test]
    fn kappa_reference_passes_and_stub_and_raw_agreement_fail() {
        let ok = check_cohen_kappa(|pairs, k| {
            let n = pairs.len() as f64;
            let po = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
            let pe: f64 = (0..k)
                .map(|c| {
                    let p1 = pairs.iter().filter(|p| p.0 == c).count() as f64 / n;
                    let p2 = pairs.iter().filter(|p| p.1 == c).count() as f64 / n;
                    p1 * p2
                })
                .sum();
            (po - pe) / (1.0 - pe)
        });
        assert!(ok.passed, "{ok}");
        let stub = check_cohen_kappa(stub_kappa);
        assert!(!stub.passed);
        assert!(
            stub.message
                .starts_with("your κ for example 1 (12 label pairs, raw agreement 0.667) is off"),
            "{stub}"
        );
        let raw = check_cohen_kappa(|pairs, _| {
            pairs.iter().filter(|(a, b)| a == b).count() as f64 / pairs.len() as f64
        });
        assert!(raw.message.contains("raw agreement p_o"), "{raw}");
    }
}
