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

/// Metrics as CSV with a header row, one column per field (the crate's one
/// metrics writer, [`crate::metrics`]; NaN cells are empty).
pub fn metrics_to_csv(metrics: &[IterationMetrics]) -> String {
    crate::metrics::to_csv(metrics).expect("iteration metrics serialise")
}

/// Metrics as JSON Lines (NaN written as null).
pub fn metrics_to_jsonl(metrics: &[IterationMetrics]) -> String {
    crate::metrics::to_jsonl(metrics).expect("iteration metrics serialise")
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
        let columns: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(json.as_object().unwrap().len(), columns.len());
        assert_eq!(
            columns.len(),
            16,
            "one column per field of IterationMetrics"
        );
        assert_eq!(columns[0], "iteration");
        for c in columns {
            assert!(json.get(c).is_some(), "{c}");
        }
    }
}
