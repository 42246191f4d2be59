//! PPO on the gridworld, held against the exact solution.

use rlhf_lab::gridworld::solve::{value_iteration, SolveOptions};
use rlhf_lab::gridworld::{GridWorld, Map};
use rlhf_lab::rl::{GridworldTrainer, IterationMetrics, PpoConfig};

/// The bar, for three fixed seeds within the default budget (102,400 steps):
/// ≥ 95% of reachable non-terminal states take an optimal action and the greedy
/// policy's exact expected return is within 2% of V*(start).
#[test]
fn ppo_solves_aima_and_dragon_for_three_seeds() {
    for map in ["aima", "dragon"] {
        let world = GridWorld::load(map).unwrap();
        let optimal = value_iteration(&world, SolveOptions::default());
        for seed in [1, 2, 3] {
            let cfg = PpoConfig {
                seed,
                ..Default::default()
            };
            let budget = cfg.total_timesteps;
            let mut t = GridworldTrainer::new(world.clone(), cfg).unwrap();
            let solved = t.train_until_solved(&optimal).unwrap();
            let r = t.compare(&optimal).unwrap();
            assert!(
                solved && r.solved(),
                "{map} seed {seed}: agreement {:.2}, greedy return {:.4} vs V* {:.4} after {} of {budget} steps",
                r.policy_agreement,
                r.greedy_return,
                r.optimal_return,
                t.global_step()
            );
        }
    }
}

#[test]
fn every_variable_gets_a_finite_nonzero_gradient() {
    let world = GridWorld::load("dragon").unwrap();
    let mut t = GridworldTrainer::new(world, PpoConfig::default()).unwrap();
    t.train_iterations(2).unwrap();
    let grads = t.probe_gradients().unwrap();
    let names: Vec<String> = t.varmap().data().lock().unwrap().keys().cloned().collect();
    assert_eq!(
        names.len(),
        12,
        "3 layers × (weight, bias) × 2 networks: {names:?}"
    );
    for name in names {
        let g = grads
            .get(&name)
            .unwrap_or_else(|| panic!("no gradient reached `{name}`"));
        let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "`{name}` has a non-finite gradient"
        );
        assert!(
            v.iter().any(|&x| x != 0.0),
            "`{name}` has an all-zero gradient"
        );
    }
}

/// Everything but wall-clock speed.
fn deterministic_part(m: &[IterationMetrics]) -> Vec<IterationMetrics> {
    m.iter()
        .map(|x| IterationMetrics {
            steps_per_second: 0.0,
            ..x.clone()
        })
        .collect()
}

#[test]
fn same_seed_same_metrics_and_exact_resume() {
    let world = GridWorld::load("dragon").unwrap();
    let run = |seed| {
        let mut t = GridworldTrainer::new(
            world.clone(),
            PpoConfig {
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        t.train_iterations(6).unwrap();
        (deterministic_part(t.metrics()), t.value_table().unwrap())
    };
    let a = run(4);
    assert_eq!(a, run(4), "same seed, different results");
    assert_ne!(a.0, run(5).0);

    // Save after 3 iterations, continue 3 more; a loaded copy continues identically.
    let dir = std::env::temp_dir().join(format!("rlhf-ppo-resume-{}", std::process::id()));
    let mut t = GridworldTrainer::new(
        world.clone(),
        PpoConfig {
            seed: 4,
            ..Default::default()
        },
    )
    .unwrap();
    t.train_iterations(3).unwrap();
    t.save(&dir).unwrap();
    t.train_iterations(3).unwrap();
    let mut loaded = GridworldTrainer::load(&dir).unwrap();
    loaded.train_iterations(3).unwrap();
    let (a, b) = (
        deterministic_part(loaded.metrics()),
        deterministic_part(t.metrics()),
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "resumed run differs at iteration {}", y.iteration);
    }
    assert_eq!(loaded.value_table().unwrap(), t.value_table().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_finite_loss_stops_training_with_a_message() {
    // Rewards of 1e38 overflow f32 in the squared value error.
    let map = Map::from_str_named("S . +1e38\n", "huge").unwrap();
    let mut t = GridworldTrainer::new(GridWorld::new(map), PpoConfig::default()).unwrap();
    let err = format!("{:#}", t.train_iterations(3).unwrap_err());
    assert!(
        err.contains("became") && err.contains("training stopped"),
        "{err}"
    );
}

#[test]
fn bad_config_is_rejected_before_training() {
    let world = GridWorld::load("aima").unwrap();
    let bad = PpoConfig {
        num_envs: 0,
        ..Default::default()
    };
    let err = GridworldTrainer::new(world, bad)
        .err()
        .expect("rejected")
        .to_string();
    assert!(err.contains("`num_envs`"), "{err}");
}
