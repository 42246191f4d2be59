use serde::{Deserialize, Serialize};

/// What one training iteration (one rollout and its update) measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    pub iteration: usize,
    /// Environment steps so far.
    pub global_step: usize,
    /// Mean undiscounted return of the episodes that ended in this rollout (NaN if none).
    pub episodic_return: f64,
    /// Mean discounted return (from the start) of those episodes.
    pub discounted_return: f64,
    /// Mean length of those episodes.
    pub episodic_length: f64,
    pub episodes: usize,
    pub policy_loss: f64,
    pub value_loss: f64,
    /// Mean policy entropy (nats) over the minibatches.
    pub entropy: f64,
    /// KL(π_old ‖ π_new) estimates after the update (Schulman 2020).
    pub approx_kl_k1: f64,
    pub approx_kl_k3: f64,
    /// Share of samples where the PPO clip was active.
    pub clip_fraction: f64,
    /// 1 − Var(R − V)/Var(R) of the critic on this rollout.
    pub explained_variance: f64,
    /// Gradient norm before clipping (mean over minibatches).
    pub grad_norm: f64,
    pub learning_rate: f64,
    /// Environment steps per second of this iteration (rollout + update).
    pub steps_per_second: f64,
}

const COLUMNS: &[&str] = &[
    "iteration",
    "global_step",
    "episodic_return",
    "discounted_return",
    "episodic_length",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl_k1",
    "approx_kl_k3",
    "clip_fraction",
    "explained_variance",
    "grad_norm",
    "learning_rate",
    "steps_per_second",
];

/// Metrics as CSV with a header row.
pub fn metrics_to_csv(metrics: &[IterationMetrics]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for m in metrics {
        let row = [
            m.iteration as f64,
            m.global_step as f64,
            m.episodic_return,
            m.discounted_return,
            m.episodic_length,
            m.episodes as f64,
            m.policy_loss,
            m.value_loss,
            m.entropy,
            m.approx_kl_k1,
            m.approx_kl_k3,
            m.clip_fraction,
            m.explained_variance,
            m.grad_norm,
            m.learning_rate,
            m.steps_per_second,
        ];
        let cells: Vec<String> = row.iter().map(|x| format!("{x}")).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Metrics as JSON Lines (NaN written as null).
pub fn metrics_to_jsonl(metrics: &[IterationMetrics]) -> String {
    metrics
        .iter()
        .map(|m| serde_json::to_string(m).expect("metrics serialise") + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_column_per_field() {
        let m = IterationMetrics {
            iteration: 1,
            global_step: 2,
            episodic_return: f64::NAN,
            discounted_return: 0.5,
            episodic_length: 3.0,
            episodes: 0,
            policy_loss: 0.0,
            value_loss: 0.0,
            entropy: 1.0,
            approx_kl_k1: 0.0,
            approx_kl_k3: 0.0,
            clip_fraction: 0.0,
            explained_variance: 0.0,
            grad_norm: 0.0,
            learning_rate: 0.1,
            steps_per_second: 10.0,
        };
        let csv = metrics_to_csv(std::slice::from_ref(&m));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        // The JSON field names are the CSV columns.
        let json: serde_json::Value = serde_json::from_str(metrics_to_jsonl(&[m]).trim()).unwrap();
        assert_eq!(json.as_object().unwrap().len(), COLUMNS.len());
        for c in COLUMNS {
            assert!(json.get(*c).is_some(), "{c}");
        }
    }
}
