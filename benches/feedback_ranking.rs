//! Benchmark: Bradley–Terry and online Elo on 1,000,000 comparisons among 1,000 items;
//! then the whole CLI path, `rlhf-lab feedback rank` on a JSONL file of 1,000,000
//! simulated comparisons (reading, validating, ranking, bootstrap intervals).
//! Run with `cargo bench --bench feedback_ranking`.

use rlhf_lab::feedback::annotators::honest_crowd;
use rlhf_lab::feedback::candidates::{candidates, prompts};
use rlhf_lab::feedback::ranking::{
    bradley_terry, elo, kendall_tau, simulate_matches, BtOptions, EloConfig,
};
use rlhf_lab::feedback::records::{write_feedback, Feedback};
use rlhf_lab::feedback::simulate::simulate_comparisons;
use rlhf_lab::world::World;
use std::process::Command;
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
    cli_rank_of_a_million_comparisons();
}

/// `rlhf-lab feedback rank` on 1,000,008 comparisons (a simulated session of
/// 27,778 prompts, 9 comparisons each, repeated 4 times: 371 MB): wall seconds per command.
fn cli_rank_of_a_million_comparisons() {
    let world = World::generate(0);
    let ps = prompts(&world, 27_778, 0);
    let cands = candidates(&ps, 1);
    let session = simulate_comparisons(&ps, &cands, &honest_crowd(20, 2), 3, 3, 3);
    let records: Vec<Feedback> = std::iter::repeat_n(&session, 4)
        .flatten()
        .cloned()
        .map(Feedback::Comparison)
        .collect();
    let file = std::env::temp_dir().join(format!("rlhf-lab-bench-{}.jsonl", std::process::id()));
    write_feedback(&file, &records).expect("writing the benchmark's comparisons");
    let megabytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "\nrlhf-lab feedback rank on {} comparisons ({megabytes:.0} MB of JSONL):",
        records.len()
    );
    for args in [
        &["--rounds", "1"][..],
        &[][..],
        &["--method", "elo"][..],
        &["--method", "robust"][..],
    ] {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
            .args(["feedback", "rank"])
            .arg(&file)
            .args(args)
            .output()
            .expect("running rlhf-lab");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "  feedback rank {:<22} {:>8.3} s",
            args.join(" "),
            t.elapsed().as_secs_f64()
        );
    }
    std::fs::remove_file(&file).ok();
}
