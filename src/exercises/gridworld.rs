//! Notebook 01's exercises: returns-to-go, one Bellman backup, value iteration.
//!
//! Ground truth: [`gridworld::Episode::discounted_return`],
//! [`gridworld::solve::q_from_values`] and [`gridworld::solve::value_iteration`].

use super::{all_close, close, first_mismatch, Check};
use gridworld::solve::{
    bellman_residual, policy_evaluation, q_from_values, uniform_policy, value_iteration,
    SolveOptions,
};
use gridworld::{Action, Env, Episode, GridWorld, Rng};
use ndarray::Array1;
use std::sync::Arc;

/// Exercise id: G_t for every step of an episode.
pub const RETURNS_TO_GO: &str = "01-returns-to-go";
/// Exercise id: Q(s, a) from a value table, one Bellman backup.
pub const BELLMAN_BACKUP: &str = "01-bellman-backup";
/// Exercise id: V* by value iteration.
pub const VALUE_ITERATION: &str = "01-value-iteration";

/// The episodes [`check_returns_to_go`] tries: a short hand-made one with γ = 0.5
/// (so that a missing discount shows) and a random walk on `dragon` with its γ.
pub fn returns_to_go_cases() -> Vec<(String, Vec<f64>, f64)> {
    let world = GridWorld::load("dragon").expect("the shipped map loads");
    let gamma = world.gamma();
    let mut env = Env::new(Arc::new(world), 3);
    let mut rng = Rng::new(5);
    let walk = env.run_episode(|_| Action::from_index(rng.below(4)));
    vec![
        (
            "a 4-step episode".to_string(),
            vec![-0.1, -0.1, -0.1, 1.0],
            0.5,
        ),
        (
            format!("a {}-step random walk on `dragon`", walk.len()),
            walk.rewards,
            gamma,
        ),
    ]
}

/// G_t = r_{t+1} + γ r_{t+2} + …, the library's way: the discounted return of the
/// episode's rewards from step t on.
fn reference_returns(rewards: &[f64], gamma: f64) -> Vec<f64> {
    (0..rewards.len())
        .map(|t| {
            Episode {
                rewards: rewards[t..].to_vec(),
                ..Episode::default()
            }
            .discounted_return(gamma)
        })
        .collect()
}

/// Checks `returns_to_go(rewards, gamma)`, which should give the discounted return
/// from every step, `G_t = r_{t+1} + γ·G_{t+1}` (the last one is the last reward),
/// one per reward, against [`Episode::discounted_return`].
pub fn check_returns_to_go(returns_to_go: impl Fn(&[f64], f64) -> Vec<f64>) -> Check {
    let id = RETURNS_TO_GO;
    let cases = returns_to_go_cases();
    for (what, rewards, gamma) in &cases {
        let (rewards, gamma) = (rewards.as_slice(), *gamma);
        let expected = reference_returns(rewards, gamma);
        let got = returns_to_go(rewards, gamma);
        if got.len() != expected.len() {
            return Check::fail(
                id,
                format!(
                    "for {what} you returned {} values: return one G_t per reward ({})",
                    got.len(),
                    expected.len()
                ),
            );
        }
        if let Some(t) = first_mismatch(&expected, &got, 1e-9) {
            let n = rewards.len();
            let undiscounted: f64 = rewards[t..].iter().sum();
            let why = if close(undiscounted, got[t], 1e-9)
                && !close(undiscounted, expected[t], 1e-9)
            {
                " — that is the undiscounted sum: each later reward counts γ times less per step"
                    .to_string()
            } else if close(gamma * expected[t], got[t], 1e-9) {
                " — that is γ·G_t: the first reward r_{t+1} counts in full".to_string()
            } else if t == n - 1 {
                " — the last return is just the last reward".to_string()
            } else {
                String::new()
            };
            return Check::fail(
                id,
                format!(
                    "your G_t is off at t = {t} of {what} (γ = {gamma}): expected {:.4}, got {:.4}{why}",
                    expected[t], got[t]
                ),
            );
        }
    }
    let steps: usize = cases.iter().map(|c| c.1.len()).sum();
    Check::pass(
        id,
        format!(
            "all {steps} returns of {} episodes match Episode::discounted_return",
            cases.len()
        ),
    )
}

/// The value table [`check_bellman_backup`] backs up: random values in [−5, 5] for
/// every state, terminal ones included (a backup must not use those).
pub fn backup_test_values(world: &GridWorld) -> Vec<f64> {
    let mut rng = Rng::new(12);
    (0..world.n_states())
        .map(|_| -5.0 + 10.0 * rng.uniform())
        .collect()
}

/// Q(s, a) with the parts of the backup switched off, to name a mistake.
fn variant_backup(
    world: &GridWorld,
    values: &[f64],
    s: usize,
    a: Action,
    mask_terminal: bool,
    discount: bool,
    weight: bool,
) -> f64 {
    let g = if discount { world.gamma() } else { 1.0 };
    world
        .transitions(s, a)
        .iter()
        .map(|t| {
            let future = if mask_terminal && t.terminal {
                0.0
            } else {
                g * values[t.next]
            };
            (if weight { t.prob } else { 1.0 }) * (t.reward + future)
        })
        .sum()
}

/// Checks `q_value(world, values, s, a)`, which should be one Bellman backup:
/// `Q(s, a) = Σ_s' P(s'|s,a) · [r(s') + γ·V(s')]`, with V(s') counting as 0 when s'
/// is terminal. Tried on every non-terminal state and action of `dragon` with
/// [`backup_test_values`], against [`q_from_values`].
pub fn check_bellman_backup(q_value: impl Fn(&GridWorld, &[f64], usize, Action) -> f64) -> Check {
    let id = BELLMAN_BACKUP;
    let world = GridWorld::load("dragon").expect("the shipped map loads");
    let values = backup_test_values(&world);
    let q = q_from_values(&world, &Array1::from(values.clone()));
    let mut tried = 0;
    for s in (0..world.n_states()).filter(|&s| !world.is_terminal(s)) {
        for a in Action::ALL {
            tried += 1;
            let expected = q[[s, a.index()]];
            let got = q_value(&world, &values, s, a);
            if close(expected, got, 1e-9) {
                continue;
            }
            let like = |m: bool, d: bool, w: bool| {
                close(variant_backup(&world, &values, s, a, m, d, w), got, 1e-9)
            };
            let intended = world.move_from(s, a);
            let only_intended = world
                .transitions(s, a)
                .iter()
                .find(|t| t.next == intended)
                .map(|t| {
                    t.reward
                        + if t.terminal {
                            0.0
                        } else {
                            world.gamma() * values[t.next]
                        }
                });
            let why = if like(false, true, true) {
                " — you added γ·V(s′) after a step into a terminal cell: the episode ends there, so V(s′) counts as 0"
            } else if like(true, false, true) {
                " — you left out the discount γ"
            } else if like(true, true, false) {
                " — weight each outcome by its probability P(s′|s,a) (t.prob)"
            } else if only_intended.is_some_and(|v| close(v, got, 1e-9)) {
                " — that is only the intended move: the floor is slippery, sum over every outcome in world.transitions(s, a)"
            } else {
                ""
            };
            let (r, c) = world.cell_of(s);
            return Check::fail(
                id,
                format!(
                    "your Q(s, a) for state {s} at (row, col) = ({r}, {c}), action {}, is off by {:.3}: expected {expected:.4}, got {got:.4}{why}",
                    a.name(),
                    got - expected
                ),
            );
        }
    }
    Check::pass(
        id,
        format!("all {tried} backups on `dragon` match the solver's q_from_values"),
    )
}

/// Checks `value_iteration(world)`, which should return V*(s) for every state
/// (0 in terminal states), on `dragon` (γ = 0.95) and `aima` (γ = 1), against
/// [`value_iteration`].
pub fn check_value_iteration(my_value_iteration: impl Fn(&GridWorld) -> Vec<f64>) -> Check {
    let id = VALUE_ITERATION;
    let maps = ["dragon", "aima"];
    for name in maps {
        let world = GridWorld::load(name).expect("the shipped map loads");
        let expected = value_iteration(&world, SolveOptions::default())
            .values
            .to_vec();
        let got = my_value_iteration(&world);
        if got.len() != expected.len() {
            return Check::fail(
                id,
                format!(
                    "on `{name}` you returned {} values: return one per state (world.n_states() = {})",
                    got.len(),
                    expected.len()
                ),
            );
        }
        if let Some(s) = (0..got.len()).find(|&s| world.is_terminal(s) && got[s] != 0.0) {
            let (r, c) = world.cell_of(s);
            return Check::fail(
                id,
                format!(
                    "on `{name}` the terminal cell ({r}, {c}) has value {:.3}: nothing follows the end of an episode, so V = 0 there (its reward is paid on the way in)",
                    got[s]
                ),
            );
        }
        if all_close(&expected, &got, 1e-6) {
            continue;
        }
        let worst = (0..got.len())
            .max_by(|&x, &y| {
                let dx = (got[x] - expected[x]).abs();
                let dy = (got[y] - expected[y]).abs();
                dx.total_cmp(&dy)
            })
            .expect("at least one state");
        let (r, c) = world.cell_of(worst);
        let random = policy_evaluation(&world, &uniform_policy(&world), SolveOptions::default()).0;
        let residual = bellman_residual(&world, &Array1::from(got.clone()));
        let why = if all_close(random.as_slice().expect("contiguous"), &got, 1e-6) {
            " — those are the values of the random policy: take the max over actions, not the average".to_string()
        } else if residual.is_finite() && residual > 1e-6 {
            format!(
                " — one more sweep would still change your values by up to {residual:.2e}: sweep until nothing changes"
            )
        } else {
            String::new()
        };
        return Check::fail(
            id,
            format!(
                "your value iteration differs from V* on `{name}` most at (row, col) = ({r}, {c}), by {:.3}: expected {:.4}, got {:.4}{why}",
                got[worst] - expected[worst],
                expected[worst],
                got[worst]
            ),
        );
    }
    Check::pass(
        id,
        format!("your values match V* on `{}` to 1e-6", maps.join("` and `")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The notebook's stubs, unchanged: they must fail with a hint naming the place.
    fn stub_returns_to_go(rewards: &[f64], _gamma: f64) -> Vec<f64> {
        vec![0.0; rewards.len()]
    }
    fn stub_q_value(_world: &GridWorld, _values: &[f64], _s: usize, _a: Action) -> f64 {
        0.0
    }
    fn stub_value_iteration(world: &GridWorld) -> Vec<f64> {
        vec![0.0; world.n_states()]
    }

    #[test]
    fn returns_to_go_reference_passes_and_stub_gets_the_step() {
        let reference = |r: &[f64], g: f64| {
            let mut out = vec![0.0; r.len()];
            let mut acc = 0.0;
            for t in (0..r.len()).rev() {
                acc = r[t] + g * acc;
                out[t] = acc;
            }
            out
        };
        let ok = check_returns_to_go(reference);
        assert!(ok.passed, "{ok}");
        assert!(ok.to_string().starts_with("✓ 01-returns-to-go"));
        let stub = check_returns_to_go(stub_returns_to_go);
        assert!(!stub.passed);
        // r = (−0.1, −0.1, −0.1, 1), γ = ½: G_0 = −0.1 − 0.05 − 0.025 + 0.125 = −0.05.
        assert_eq!(
            stub.to_string(),
            "✗ 01-returns-to-go: your G_t is off at t = 0 of a 4-step episode (γ = 0.5): expected -0.0500, got 0.0000"
        );
        let undiscounted =
            check_returns_to_go(|r: &[f64], _| (0..r.len()).map(|t| r[t..].iter().sum()).collect());
        assert!(
            undiscounted.message.contains("undiscounted sum"),
            "{undiscounted}"
        );
        let short = check_returns_to_go(|_: &[f64], _| Vec::new());
        assert!(short.message.contains("returned 0 values"), "{short}");
    }

    #[test]
    fn bellman_backup_reference_passes_and_mistakes_are_named() {
        let reference = |w: &GridWorld, v: &[f64], s: usize, a: Action| {
            w.transitions(s, a)
                .iter()
                .map(|t| {
                    t.prob
                        * (t.reward
                            + if t.terminal {
                                0.0
                            } else {
                                w.gamma() * v[t.next]
                            })
                })
                .sum::<f64>()
        };
        let ok = check_bellman_backup(reference);
        assert!(ok.passed, "{ok}");
        let stub = check_bellman_backup(stub_q_value);
        assert!(!stub.passed);
        assert!(
            stub.message.starts_with(
                "your Q(s, a) for state 0 at (row, col) = (0, 0), action up, is off by"
            ),
            "{stub}"
        );
        assert!(stub.message.contains("got 0.0000"), "{stub}");
        let no_mask = check_bellman_backup(|w: &GridWorld, v: &[f64], s, a| {
            w.transitions(s, a)
                .iter()
                .map(|t| t.prob * (t.reward + w.gamma() * v[t.next]))
                .sum::<f64>()
        });
        assert!(no_mask.message.contains("terminal cell"), "{no_mask}");
        let no_gamma = check_bellman_backup(|w: &GridWorld, v: &[f64], s, a| {
            w.transitions(s, a)
                .iter()
                .map(|t| t.prob * (t.reward + if t.terminal { 0.0 } else { v[t.next] }))
                .sum::<f64>()
        });
        assert!(no_gamma.message.contains("discount γ"), "{no_gamma}");
    }

    #[test]
    fn value_iteration_reference_passes_and_stub_gets_the_worst_cell() {
        let reference = |w: &GridWorld| {
            let mut v = vec![0.0; w.n_states()];
            loop {
                let q = q_from_values(w, &Array1::from(v.clone()));
                let next: Vec<f64> = (0..w.n_states())
                    .map(|s| {
                        if w.is_terminal(s) {
                            0.0
                        } else {
                            q.row(s).iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                        }
                    })
                    .collect();
                let delta = next
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                v = next;
                if delta < 1e-12 {
                    return v;
                }
            }
        };
        let ok = check_value_iteration(reference);
        assert!(ok.passed, "{ok}");
        let stub = check_value_iteration(stub_value_iteration);
        assert!(!stub.passed);
        let world = GridWorld::load("dragon").unwrap();
        let v = value_iteration(&world, SolveOptions::default()).values;
        let worst = (0..v.len())
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .unwrap();
        let (r, c) = world.cell_of(worst);
        assert!(
            stub.message.starts_with(&format!(
                "your value iteration differs from V* on `dragon` most at (row, col) = ({r}, {c}), by {:.3}",
                -v[worst]
            )),
            "{stub}"
        );
        assert!(
            stub.message.contains("sweep until nothing changes"),
            "{stub}"
        );
        let random = check_value_iteration(|w: &GridWorld| {
            policy_evaluation(w, &uniform_policy(w), SolveOptions::default())
                .0
                .to_vec()
        });
        assert!(random.message.contains("random policy"), "{random}");
    }
}
