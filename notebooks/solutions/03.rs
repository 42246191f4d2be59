// Reference solutions of notebook 03's exercises, one section per exercise id.
// `scripts/run_notebooks.py --solutions notebooks/solutions` puts each section in
// place of the cell tagged `exercise:<id>` before running the notebook (and fails
// unless every check cell prints ✓); tests/exercises.rs compiles this file and
// runs the checkers on it. Try the exercises yourself before you read on.

// exercise: 03-attention-weights
/// Causal attention weights: row i = softmax over j ≤ i of q_i·k_j/√d, 0 for j > i.
fn my_attention_weights(q: &[Vec<f64>], k: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let t = q.len();
    let d = q[0].len() as f64;
    let mut weights = vec![vec![0.0; t]; t];
    for i in 0..t {
        // Scores of the keys this query may see: itself and the tokens before it.
        let scores: Vec<f64> = (0..=i)
            .map(|j| q[i].iter().zip(&k[j]).map(|(a, b)| a * b).sum::<f64>() / d.sqrt())
            .collect();
        // Subtract the largest score so that exp cannot overflow.
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        for j in 0..=i {
            weights[i][j] = exps[j] / total;
        }
    }
    weights
}

// exercise: 03-next-token-loss
/// Mean of −log softmax(logits[t])[tokens[t + 1]] over t = 0 … T − 2, in nats.
fn my_next_token_loss(logits: &[Vec<f64>], tokens: &[u32]) -> f64 {
    let predictions = tokens.len() - 1;
    let mut total = 0.0;
    for t in 0..predictions {
        let row = &logits[t];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_z = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        total -= row[tokens[t + 1] as usize] - log_z;
    }
    total / predictions as f64
}
