//! Benchmark: Bradley–Terry and online Elo on 1,000,000 comparisons among 1,000 items.
//! Run with `cargo bench --bench feedback_ranking`.

use rlhf_lab::feedback::ranking::{
    bradley_terry, elo, kendall_tau, simulate_matches, BtOptions, EloConfig,
};
use std::time::Instant;

fn main() {
    let truth: Vec<f64> = (0..1000).map(|i| 600.0 + 0.8 * i as f64).collect();
    let t = Instant::now();
    let matches = simulate_matches(&truth, 1_000_000, 7);
    println!(
        "simulate 1,000,000 matches among 1,000 items: {:>8.3} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = elo(
        truth.len(),
        &matches,
        EloConfig {
            k: 4.0,
            ..Default::default()
        },
    );
    println!(
        "online Elo (K = 4):                           {:>8.3} s   tau vs truth {:.3}",
        t.elapsed().as_secs_f64(),
        kendall_tau(&r, &truth)
    );
    let t = Instant::now();
    let r = bradley_terry(
        truth.len(),
        &matches,
        BtOptions {
            tolerance: 1e-6,
            ..Default::default()
        },
    );
    println!(
        "Bradley-Terry (MM, tolerance 1e-6):           {:>8.3} s   tau vs truth {:.3}",
        t.elapsed().as_secs_f64(),
        kendall_tau(&r, &truth)
    );
}
