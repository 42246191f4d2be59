//! Benchmark: exact solvers on the 12×12 `castle` map and a generated 100×100 map.
//! Run with `cargo bench --bench gridworld_solvers`. Prints wall time per solve.

use gridworld::solve::{policy_iteration, value_iteration, SolveOptions};
use gridworld::{GridWorld, Map, Rng};
use std::time::Instant;

/// A `size`×`size` maze-ish map: 20% random walls, start top-left, +10 bottom-right,
/// a few dragons and small rewards, γ = 0.99, slip 0.1.
fn generated_map(size: usize, seed: u64) -> Map {
    let mut rng = Rng::new(seed);
    let mut text =
        String::from("name = generated\ngamma = 0.99\nslip = 0.1\nstep_reward = -0.01\n");
    for r in 0..size {
        for c in 0..size {
            let token = if (r, c) == (0, 0) {
                "S".to_string()
            } else if (r, c) == (size - 1, size - 1) {
                "+10".to_string()
            } else if r <= 1 || c <= 1 || r + 2 >= size || c + 2 >= size {
                ".".to_string() // keep a free border so the goal is reachable
            } else {
                match rng.below(100) {
                    0..=19 => "#".to_string(),
                    20 => "D".to_string(),
                    21 => "+1".to_string(),
                    _ => ".".to_string(),
                }
            };
            text.push_str(&format!(" {token}"));
        }
        text.push('\n');
    }
    Map::from_str_named(&text, "generated").expect("generated map is valid")
}

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) -> T {
    let mut out = f();
    let t = Instant::now();
    for _ in 0..reps {
        out = f();
    }
    let per = t.elapsed().as_secs_f64() / reps as f64;
    println!("{label:<48} {:>10.3} ms", per * 1e3);
    out
}

fn main() {
    let opts = SolveOptions::default();
    let castle = GridWorld::load("castle").expect("castle map");
    let big = GridWorld::new(generated_map(100, 1));
    println!(
        "castle: {} states; generated 100x100: {} states",
        castle.n_states(),
        big.n_states()
    );
    let s = time("value iteration, castle 12x12 (tol 1e-12)", 20, || {
        value_iteration(&castle, opts)
    });
    println!("    {} sweeps", s.iterations);
    let s = time("policy iteration, castle 12x12", 5, || {
        policy_iteration(&castle, opts)
    });
    println!("    {} improvement steps", s.iterations);
    let s = time("value iteration, generated 100x100 (tol 1e-12)", 2, || {
        value_iteration(&big, opts)
    });
    println!("    {} sweeps", s.iterations);
    let loose = SolveOptions {
        tolerance: 1e-6,
        ..opts
    };
    let s = time("value iteration, generated 100x100 (tol 1e-6)", 2, || {
        value_iteration(&big, loose)
    });
    println!("    {} sweeps", s.iterations);
}
