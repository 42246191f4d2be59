// Reference solutions of notebook 05's exercises, one section per exercise id.
// `scripts/run_notebooks.py --solutions notebooks/solutions` puts each section in
// place of the cell tagged `exercise:<id>` before running the notebook (and fails
// unless every check cell prints ✓); tests/exercises.rs compiles this file and
// runs the checkers on it. Try the exercises yourself before you read on.

// exercise: 05-elo-update
/// Ratings after one match: both move by K·(S_A − E_A), in opposite directions.
fn my_elo_update(r_a: f64, r_b: f64, score_a: f64, k: f64) -> (f64, f64) {
    let expected_a = 1.0 / (1.0 + 10f64.powf((r_b - r_a) / 400.0));
    let change = k * (score_a - expected_a);
    (r_a + change, r_b - change)
}

// exercise: 05-wilson-interval
/// The Wilson score interval (lo, hi) for `successes` of `n`.
fn my_wilson_interval(successes: usize, n: usize, z: f64) -> (f64, f64) {
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (centre - half, centre + half)
}

// exercise: 05-cohen-kappa
/// Cohen's κ = (p_o − p_e) / (1 − p_e) for two annotators' labels in 0..k.
fn my_cohen_kappa(pairs: &[(usize, usize)], k: usize) -> f64 {
    let n = pairs.len() as f64;
    let p_o = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let p_e: f64 = (0..k)
        .map(|c| {
            let p1 = pairs.iter().filter(|p| p.0 == c).count() as f64 / n;
            let p2 = pairs.iter().filter(|p| p.1 == c).count() as f64 / n;
            p1 * p2
        })
        .sum();
    (p_o - p_e) / (1.0 - p_e)
}
