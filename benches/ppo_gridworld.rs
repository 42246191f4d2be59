//! Benchmark: wall time and environment steps for PPO to reach the solved bar
//! (≥ 95% optimal actions on reachable states, greedy return within 2% of V*(start))
//! on `dragon`, `aima` and the 12×12 `castle` map. Run with
//! `cargo bench --bench ppo_gridworld` (optionally `-- dragon castle`).

use rlhf_lab::gridworld::solve::{value_iteration, SolveOptions};
use rlhf_lab::gridworld::GridWorld;
use rlhf_lab::rl::{GridworldTrainer, PpoConfig};
use std::time::Instant;

/// Defaults per map; the environment variable `PPO_CONFIG` (a JSON object) overrides fields.
fn config_for(map: &str, seed: u64) -> PpoConfig {
    let base = base_config(map, seed);
    match std::env::var("PPO_CONFIG") {
        Ok(json) => {
            let mut v = serde_json::to_value(&base).expect("config serialises");
            let patch: serde_json::Value =
                serde_json::from_str(&json).expect("PPO_CONFIG is a JSON object");
            for (k, x) in patch.as_object().expect("PPO_CONFIG is a JSON object") {
                v[k] = x.clone();
            }
            serde_json::from_value(v).expect("PPO_CONFIG has valid fields")
        }
        Err(_) => base,
    }
}

fn base_config(map: &str, seed: u64) -> PpoConfig {
    match map {
        "castle" => PpoConfig {
            seed,
            num_steps: 64,
            hidden_sizes: vec![64, 64],
            total_timesteps: 1_000_000,
            ..PpoConfig::default()
        },
        _ => PpoConfig {
            seed,
            ..PpoConfig::default()
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let maps: Vec<String> = if args.is_empty() {
        vec!["aima".into(), "dragon".into(), "castle".into()]
    } else {
        args
    };
    println!(
        "{:<8} {:>5} {:>8} {:>11} {:>9} {:>10} {:>9}",
        "map", "seed", "solved", "env steps", "wall s", "steps/s", "agree"
    );
    for map in &maps {
        let world = GridWorld::load(map).expect("map");
        let optimal = value_iteration(&world, SolveOptions::default());
        for seed in 1..=3 {
            let mut t =
                GridworldTrainer::new(world.clone(), config_for(map, seed)).expect("trainer");
            let t0 = Instant::now();
            let solved = t.train_until_solved(&optimal).expect("training");
            let wall = t0.elapsed().as_secs_f64();
            let r = t.compare(&optimal).expect("compare");
            println!(
                "{:<8} {:>5} {:>8} {:>11} {:>9.2} {:>10.0} {:>8.1}%",
                map,
                seed,
                solved,
                t.global_step(),
                wall,
                t.global_step() as f64 / wall,
                100.0 * r.policy_agreement
            );
        }
    }
}
