//! Notebook 03's exercises: causal attention weights, the next-token loss.
//!
//! Ground truth: the attention of [`crate::lm::model`] (scores q·k/√d, the causal
//! mask as an additive −1e30, [`crate::lm::ops::softmax_last_dim`]) and the
//! next-token loss of [`crate::lm::data::next_token_loss`]
//! ([`crate::ppo::log_prob_of`] of the next token, averaged, negated).

use super::{close, Check};
use crate::lm::ops::softmax_last_dim;
use crate::ppo::log_prob_of;
use candle_core::{DType, Device, Tensor};
use gridworld::Rng;

/// Exercise id: causal softmax attention weights.
pub const ATTENTION_WEIGHTS: &str = "03-attention-weights";
/// Exercise id: next-token cross-entropy.
pub const NEXT_TOKEN_LOSS: &str = "03-next-token-loss";

/// A matrix as rows.
pub type Matrix = Vec<Vec<f64>>;

fn random_matrix(rows: usize, cols: usize, scale: f64, rng: &mut Rng) -> Vec<Vec<f64>> {
    (0..rows)
        .map(|_| (0..cols).map(|_| scale * rng.normal()).collect())
        .collect()
}

fn tensor(m: &[Vec<f64>]) -> candle_core::Result<Tensor> {
    let (r, c) = (m.len(), m.first().map_or(0, Vec::len));
    Tensor::from_vec(m.concat(), (r, c), &Device::Cpu)
}

/// The queries and keys [`check_attention_weights`] tries: 5 tokens with heads of
/// width 4, then the same with every number 40 times larger, whose scores reach
/// the hundreds (exp of them overflows unless the row's maximum is subtracted).
pub fn attention_examples() -> Vec<(Matrix, Matrix)> {
    let mut rng = Rng::new(3);
    let q = random_matrix(5, 4, 1.0, &mut rng);
    let k = random_matrix(5, 4, 1.0, &mut rng);
    let big = |m: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        m.iter()
            .map(|r| r.iter().map(|x| 40.0 * x).collect())
            .collect()
    };
    let (q_big, k_big) = (big(&q), big(&k));
    vec![(q, k), (q_big, k_big)]
}

/// Attention weights the model's way: softmax(q·kᵀ/√d + causal mask) per row.
pub fn reference_attention(
    q: &[Vec<f64>],
    k: &[Vec<f64>],
    causal: bool,
    scaled: bool,
) -> candle_core::Result<Vec<Vec<f64>>> {
    let t = q.len();
    let d = q.first().map_or(1, Vec::len);
    let mut scores = tensor(q)?.matmul(&tensor(k)?.t()?)?;
    if scaled {
        scores = (scores * (1.0 / (d as f64).sqrt()))?;
    }
    if causal {
        let mut bias = vec![0f64; t * t];
        for i in 0..t {
            for j in i + 1..t {
                bias[i * t + j] = -1e30;
            }
        }
        scores = (scores + Tensor::from_vec(bias, (t, t), &Device::Cpu)?)?;
    }
    softmax_last_dim(&scores.to_dtype(DType::F64)?)?.to_vec2::<f64>()
}

/// Checks `attention_weights(q, k)`, which should return the T×T matrix of causal
/// attention weights: row i is the softmax over positions j ≤ i of q_i·k_j/√d
/// (d = the width of a row of q), and 0 for j > i. Tried on
/// [`attention_examples`], against the model's computation.
pub fn check_attention_weights(
    attention_weights: impl Fn(&[Vec<f64>], &[Vec<f64>]) -> Vec<Vec<f64>>,
) -> Check {
    let id = ATTENTION_WEIGHTS;
    for (n, (q, k)) in attention_examples().iter().enumerate() {
        let what = if n == 0 {
            "5 tokens, d = 4".to_string()
        } else {
            "the same ×40 (scores in the hundreds)".to_string()
        };
        let expected = match reference_attention(q, k, true, true) {
            Ok(w) => w,
            Err(e) => return Check::fail(id, format!("the reference failed: {e}")),
        };
        let got = attention_weights(q, k);
        let t = q.len();
        if got.len() != t || got.iter().any(|r| r.len() != t) {
            return Check::fail(
                id,
                format!(
                    "for {what} return a {t}×{t} matrix (one row per query token, one column per key token); you returned {} rows of lengths {:?}",
                    got.len(),
                    got.iter().map(Vec::len).collect::<Vec<_>>()
                ),
            );
        }
        let mismatch = (0..t)
            .flat_map(|i| (0..t).map(move |j| (i, j)))
            .find(|&(i, j)| !close(expected[i][j], got[i][j], 1e-6));
        let Some((i, j)) = mismatch else { continue };
        let like = |causal, scaled| {
            reference_attention(q, k, causal, scaled)
                .is_ok_and(|w| (0..t).all(|a| (0..t).all(|b| close(w[a][b], got[a][b], 1e-6))))
        };
        let why = if got.iter().flatten().any(|x| !x.is_finite()) {
            " — some weights are not finite: exp of a large score overflows; subtract the row's largest (unmasked) score before exp, which leaves the softmax unchanged".to_string()
        } else if j > i && got[i][j] != 0.0 {
            format!(
                " — key {j} comes after query {i}: the causal mask gives it weight 0 (score −∞)"
            )
        } else if like(false, true) {
            " — the causal mask is missing: a token may not look at later tokens".to_string()
        } else if like(true, false) {
            " — divide the scores by √d before the softmax".to_string()
        } else if (got[i].iter().sum::<f64>() - 1.0).abs() > 1e-6 {
            format!(
                " — row {i} sums to {:.4}: each row is a softmax and sums to 1",
                got[i].iter().sum::<f64>()
            )
        } else {
            String::new()
        };
        return Check::fail(
            id,
            format!(
                "your attention weights for {what} are off at row {i} (query token {i}), column {j} (key token {j}): expected {:.4}, got {:.4}{why}",
                expected[i][j], got[i][j]
            ),
        );
    }
    Check::pass(
        id,
        "your weights match the model's causal softmax attention on both examples",
    )
}

/// The logits and tokens [`check_next_token_loss`] tries: 6 positions over a
/// vocabulary of 7.
pub fn next_token_example() -> (Vec<Vec<f64>>, Vec<u32>) {
    let mut rng = Rng::new(8);
    let logits = random_matrix(6, 7, 2.0, &mut rng);
    let tokens = (0..6).map(|_| rng.below(7) as u32).collect();
    (logits, tokens)
}

/// The next-token loss the library's way: log-probabilities of tokens[t + 1] under
/// logits[t] for t < T − 1, averaged and negated. With `shift` false, of tokens[t]
/// under logits[t] over all T positions (to name that mistake).
pub fn reference_next_token_loss(
    logits: &[Vec<f64>],
    tokens: &[u32],
    shift: bool,
) -> candle_core::Result<f64> {
    let (rows, targets) = if shift {
        (&logits[..logits.len() - 1], &tokens[1..])
    } else {
        (logits, tokens)
    };
    let targets = Tensor::new(targets, &Device::Cpu)?;
    let logp = log_prob_of(&tensor(rows)?, &targets)?;
    logp.mean_all()?.neg()?.to_scalar::<f64>()
}

/// Checks `next_token_loss(logits, tokens)`, which should return the mean
/// cross-entropy of predicting each next token: logits[t] (one row per position,
/// one column per vocabulary entry) predicts tokens[t + 1], so
/// `L = −(1/(T−1)) Σ_{t<T−1} log softmax(logits[t])[tokens[t+1]]`, in nats. Tried on
/// [`next_token_example`], against [`crate::lm::data::next_token_loss`]'s computation.
pub fn check_next_token_loss(next_token_loss: impl Fn(&[Vec<f64>], &[u32]) -> f64) -> Check {
    let id = NEXT_TOKEN_LOSS;
    let (logits, tokens) = next_token_example();
    let (expected, unshifted) = match (
        reference_next_token_loss(&logits, &tokens, true),
        reference_next_token_loss(&logits, &tokens, false),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Check::fail(id, format!("the reference failed: {e}")),
    };
    let got = next_token_loss(&logits, &tokens);
    if close(expected, got, 1e-9) {
        return Check::pass(
            id,
            format!(
                "your loss {got:.4} nats matches the library's next-token loss (perplexity {:.2})",
                expected.exp()
            ),
        );
    }
    let n = (tokens.len() - 1) as f64;
    let why = if close(unshifted, got, 1e-9) {
        " — logits[t] predicts the *next* token: score tokens[t + 1], for t = 0 … T − 2".to_string()
    } else if close(expected * n, got, 1e-9) {
        format!(" — that is the sum over the {n} predictions: take the mean")
    } else if close(-expected, got, 1e-9) {
        " — wrong sign: the loss is the *negative* log-probability".to_string()
    } else if close(expected / std::f64::consts::LN_2, got, 1e-9) {
        " — that is in bits: use the natural log (nats)".to_string()
    } else {
        String::new()
    };
    Check::fail(
        id,
        format!(
            "your loss for {} tokens over a vocabulary of {} is off: expected {expected:.4}, got {got:.4}{why}",
            tokens.len(),
            logits[0].len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The notebook's stubs, unchanged.
    fn stub_attention(q: &[Vec<f64>], _k: &[Vec<f64>]) -> Vec<Vec<f64>> {
        vec![vec![0.0; q.len()]; q.len()]
    }
    fn stub_loss(_logits: &[Vec<f64>], _tokens: &[u32]) -> f64 {
        0.0
    }

    fn by_hand_attention(q: &[Vec<f64>], k: &[Vec<f64>], stable: bool) -> Vec<Vec<f64>> {
        let d = q[0].len() as f64;
        q.iter()
            .enumerate()
            .map(|(i, qi)| {
                let s: Vec<f64> = k[..=i]
                    .iter()
                    .map(|kj| qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / d.sqrt())
                    .collect();
                let m = if stable {
                    s.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    0.0
                };
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let mut row = vec![0.0; q.len()];
                for (j, x) in e.iter().enumerate() {
                    row[j] = x / z;
                }
                row
            })
            .collect()
    }

    #[test]
    fn attention_reference_passes_and_stub_and_mistakes_fail() {
        let ok = check_attention_weights(|q, k| by_hand_attention(q, k, true));
        assert!(ok.passed, "{ok}");
        let stub = check_attention_weights(stub_attention);
        assert!(!stub.passed);
        assert!(
            stub.message.starts_with("your attention weights for 5 tokens, d = 4 are off at row 0 (query token 0), column 0 (key token 0): expected 1.0000, got 0.0000"),
            "{stub}"
        );
        let unstable = check_attention_weights(|q, k| by_hand_attention(q, k, false));
        assert!(unstable.message.contains("×40"), "{unstable}");
        assert!(unstable.message.contains("overflows"), "{unstable}");
        let no_mask =
            check_attention_weights(|q, k| reference_attention(q, k, false, true).unwrap());
        assert!(no_mask.message.contains("causal mask"), "{no_mask}");
        let unscaled =
            check_attention_weights(|q, k| reference_attention(q, k, true, false).unwrap());
        assert!(unscaled.message.contains("√d"), "{unscaled}");
    }

    #[test]
    fn next_token_loss_reference_passes_and_stub_and_mistakes_fail() {
        let by_hand = |logits: &[Vec<f64>], tokens: &[u32]| {
            let mut total = 0.0;
            for (row, &next) in logits.iter().zip(&tokens[1..]) {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
                total -= row[next as usize] - m - z.ln();
            }
            total / (tokens.len() - 1) as f64
        };
        let ok = check_next_token_loss(by_hand);
        assert!(ok.passed, "{ok}");
        let stub = check_next_token_loss(stub_loss);
        let (logits, tokens) = next_token_example();
        let expected = reference_next_token_loss(&logits, &tokens, true).unwrap();
        assert_eq!(
            stub.to_string(),
            format!("✗ 03-next-token-loss: your loss for 6 tokens over a vocabulary of 7 is off: expected {expected:.4}, got 0.0000")
        );
        let unshifted =
            check_next_token_loss(|l, t| reference_next_token_loss(l, t, false).unwrap());
        assert!(unshifted.message.contains("*next* token"), "{unshifted}");
        let summed = check_next_token_loss(|l, t| by_hand(l, t) * (t.len() - 1) as f64);
        assert!(summed.message.contains("take the mean"), "{summed}");
    }
}
