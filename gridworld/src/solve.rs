//! Exact dynamic-programming solvers: value iteration, policy evaluation, policy iteration.
//!
//! Bellman optimality (Sutton & Barto, *Reinforcement Learning: An Introduction*,
//! 2nd ed., eq. 4.1–4.2, with the reward on the transition):
//!
//! ```text
//! Q*(s, a) = Σ_s' P(s'|s,a) [ r(s') + γ · V*(s') · 1[s' not terminal] ]
//! V*(s)    = max_a Q*(s, a)
//! ```
//! Terminal states have value 0. Value iteration repeats the second line as an
//! update until the largest change is below `tolerance`; policy iteration
//! alternates exact-enough policy evaluation (eq. 4.5) with greedy improvement.

use crate::mdp::{Action, GridWorld};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Values, action values and a greedy policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solution {
    /// V(s), one per state (0 for terminal states).
    pub values: Array1<f64>,
    /// Q(s, a), shape `[n_states, 4]`.
    pub q: Array2<f64>,
    /// Greedy action per state (`Up` for terminal states, where it does not matter).
    pub policy: Vec<Action>,
    /// Sweeps (value iteration) or improvement steps (policy iteration) used.
    pub iterations: usize,
    /// Value iteration: max_s |V_{k+1}(s) − V_k(s)| after each sweep (empty for policy iteration).
    pub deltas: Vec<f64>,
}

/// Stopping rule for the iterative solvers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SolveOptions {
    /// Stop when max_s |V_{k+1}(s) − V_k(s)| < tolerance.
    pub tolerance: f64,
    /// Give up after this many sweeps.
    pub max_iterations: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            tolerance: 1e-12,
            max_iterations: 100_000,
        }
    }
}

/// One Bellman backup: Σ_s' P(s'|s,a) [ r(s') + γ · V(s') · 1[s' not terminal] ].
fn backup(world: &GridWorld, values: &Array1<f64>, s: usize, a: Action) -> f64 {
    let g = world.gamma();
    world
        .transitions(s, a)
        .iter()
        .map(|t| t.prob * (t.reward + if t.terminal { 0.0 } else { g * values[t.next] }))
        .sum()
}

/// Q(s, a) from a value table V (one Bellman backup).
pub fn q_from_values(world: &GridWorld, values: &Array1<f64>) -> Array2<f64> {
    let mut q = Array2::zeros((world.n_states(), 4));
    for s in 0..world.n_states() {
        for a in Action::ALL {
            q[[s, a.index()]] = backup(world, values, s, a);
        }
    }
    q
}

/// Greedy policy: argmax_a Q(s, a), ties to the lowest action index.
pub fn greedy_policy(q: &Array2<f64>) -> Vec<Action> {
    q.rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for a in 1..row.len() {
                if row[a] > row[best] + 1e-12 {
                    best = a;
                }
            }
            Action::from_index(best)
        })
        .collect()
}

/// Actions whose Q is within `tol` of the best: every optimal action of each state.
pub fn optimal_actions(q: &Array2<f64>, tol: f64) -> Vec<Vec<Action>> {
    q.rows()
        .into_iter()
        .map(|row| {
            let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (0..row.len())
                .filter(|&a| row[a] >= best - tol)
                .map(Action::from_index)
                .collect()
        })
        .collect()
}

/// Share of reachable non-terminal states where `policy` takes an optimal action
/// (one whose Q* is within `tol` of the best).
pub fn policy_agreement(world: &GridWorld, optimal: &Solution, policy: &[Action], tol: f64) -> f64 {
    let best = optimal_actions(&optimal.q, tol);
    let states = world.reachable_states();
    let agree = states
        .iter()
        .filter(|&&s| best[s].contains(&policy[s]))
        .count();
    agree as f64 / states.len().max(1) as f64
}

/// |max_a Q(s,a) − V(s)| per state (0 for terminal states): zero everywhere for V*.
pub fn bellman_residuals(world: &GridWorld, values: &Array1<f64>) -> Vec<f64> {
    let q = q_from_values(world, values);
    (0..world.n_states())
        .map(|s| {
            if world.is_terminal(s) {
                return 0.0;
            }
            let best = q.row(s).iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (best - values[s]).abs()
        })
        .collect()
}

/// max_s |max_a Q(s,a) − V(s)| over non-terminal states: zero for V*.
pub fn bellman_residual(world: &GridWorld, values: &Array1<f64>) -> f64 {
    bellman_residuals(world, values)
        .into_iter()
        .fold(0.0, f64::max)
}

/// A Bellman residual above this means the solver stopped at its sweep cap
/// before its values became V* (a converged solve leaves about 1e-12).
pub const CONVERGED_RESIDUAL: f64 = 1e-6;

/// Why a solution is not V*: the solver hit its sweep cap with the Bellman
/// residual still above [`CONVERGED_RESIDUAL`].
#[derive(Debug, Clone, PartialEq)]
pub struct NotConverged {
    /// The largest Bellman residual.
    pub residual: f64,
    /// The cell `(row, col)` where it is largest, and its value there.
    pub worst_cell: (usize, usize),
    pub worst_value: f64,
    /// Sweeps (value iteration) or improvement steps (policy iteration) used.
    pub iterations: usize,
}

impl fmt::Display for NotConverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "did not converge: after {} iterations the Bellman residual is {:.3e} (a solution \
             needs less than {CONVERGED_RESIDUAL:e}); value iteration stops at {} sweeps and \
             policy evaluation at {} sweeps. The worst cell is (row {}, column {}) with V = {:.4}. With \
             gamma = 1 this happens when some cells cannot reach a terminal cell, so their \
             value has no limit: lower gamma below 1 or connect those cells",
            self.iterations,
            self.residual,
            SolveOptions::default().max_iterations,
            POLICY_EVALUATION_CAP,
            self.worst_cell.0,
            self.worst_cell.1,
            self.worst_value
        )
    }
}

impl std::error::Error for NotConverged {}

/// `Ok(residual)` when `sol` is V* of `world` (Bellman residual below
/// [`CONVERGED_RESIDUAL`]), else why not. Every caller that presents a
/// solution as exact checks it here.
pub fn check_converged(world: &GridWorld, sol: &Solution) -> Result<f64, NotConverged> {
    let residuals = bellman_residuals(world, &sol.values);
    let (worst_state, residual) = residuals
        .iter()
        .copied()
        .enumerate()
        .fold((0, 0.0), |acc, (s, r)| if r > acc.1 { (s, r) } else { acc });
    if residual < CONVERGED_RESIDUAL {
        return Ok(residual);
    }
    Err(NotConverged {
        residual,
        worst_cell: world.cell_of(worst_state),
        worst_value: sol.values[worst_state],
        iterations: sol.iterations,
    })
}

/// Value iteration (Bellman 1957; Sutton & Barto §4.4), synchronous sweeps.
pub fn value_iteration(world: &GridWorld, opts: SolveOptions) -> Solution {
    let n = world.n_states();
    let mut v = Array1::<f64>::zeros(n);
    let mut next = Array1::<f64>::zeros(n);
    let mut iterations = 0;
    let mut deltas = Vec::new();
    while iterations < opts.max_iterations {
        iterations += 1;
        let mut delta: f64 = 0.0;
        for s in 0..n {
            if world.is_terminal(s) {
                continue;
            }
            let mut best = f64::NEG_INFINITY;
            for a in Action::ALL {
                best = best.max(backup(world, &v, s, a));
            }
            next[s] = best;
            delta = delta.max((best - v[s]).abs());
        }
        std::mem::swap(&mut v, &mut next);
        deltas.push(delta);
        if delta < opts.tolerance {
            break;
        }
    }
    let q = q_from_values(world, &v);
    let policy = greedy_policy(&q);
    Solution {
        values: v,
        q,
        policy,
        iterations,
        deltas,
    }
}

/// Iterative policy evaluation (Sutton & Barto §4.1) of a stochastic policy
/// `pi[s, a]` = probability of action a in state s. Returns V^π and the sweeps used.
///
/// With γ = 1 a policy that never terminates has no finite value; the iteration then
/// stops at `max_iterations` with large values of the step reward's sign.
pub fn policy_evaluation(
    world: &GridWorld,
    pi: &Array2<f64>,
    opts: SolveOptions,
) -> (Array1<f64>, usize) {
    let n = world.n_states();
    let mut v = Array1::<f64>::zeros(n);
    let mut next = Array1::<f64>::zeros(n);
    let mut iterations = 0;
    while iterations < opts.max_iterations {
        iterations += 1;
        let mut delta: f64 = 0.0;
        for s in 0..n {
            if world.is_terminal(s) {
                continue;
            }
            let mut value = 0.0;
            for a in Action::ALL {
                let p_a = pi[[s, a.index()]];
                if p_a == 0.0 {
                    continue;
                }
                value += p_a * backup(world, &v, s, a);
            }
            next[s] = value;
            delta = delta.max((value - v[s]).abs());
        }
        std::mem::swap(&mut v, &mut next);
        if delta < opts.tolerance {
            break;
        }
    }
    (v, iterations)
}

/// A deterministic policy as a one-hot `pi[s, a]` table.
pub fn policy_table(policy: &[Action]) -> Array2<f64> {
    let mut pi = Array2::zeros((policy.len(), 4));
    for (s, a) in policy.iter().enumerate() {
        pi[[s, a.index()]] = 1.0;
    }
    pi
}

/// The uniform random policy.
pub fn uniform_policy(world: &GridWorld) -> Array2<f64> {
    Array2::from_elem((world.n_states(), 4), 0.25)
}

/// Sweeps of each policy evaluation inside [`policy_iteration`].
pub const POLICY_EVALUATION_CAP: usize = 20_000;

/// Policy iteration (Howard 1960; Sutton & Barto §4.3). Starts from "always up",
/// keeps the current action on ties so that it terminates.
pub fn policy_iteration(world: &GridWorld, opts: SolveOptions) -> Solution {
    let n = world.n_states();
    let mut policy = vec![Action::Up; n];
    // Evaluating an improper policy with γ = 1 does not converge; bound each evaluation.
    let eval_opts = SolveOptions {
        tolerance: opts.tolerance,
        max_iterations: opts.max_iterations.min(POLICY_EVALUATION_CAP),
    };
    let mut iterations = 0;
    let mut v;
    loop {
        iterations += 1;
        v = policy_evaluation(world, &policy_table(&policy), eval_opts).0;
        let q = q_from_values(world, &v);
        let mut stable = true;
        for s in 0..n {
            if world.is_terminal(s) {
                continue;
            }
            let current = q[[s, policy[s].index()]];
            let (best_a, best_q) = Action::ALL.iter().map(|&a| (a, q[[s, a.index()]])).fold(
                (policy[s], current),
                |acc, x| if x.1 > acc.1 + 1e-10 { x } else { acc },
            );
            if best_a != policy[s] && best_q > current + 1e-10 {
                policy[s] = best_a;
                stable = false;
            }
        }
        if stable || iterations >= opts.max_iterations {
            break;
        }
    }
    let q = q_from_values(world, &v);
    Solution {
        values: v,
        q,
        policy,
        iterations,
        deltas: Vec::new(),
    }
}

/// Expected return from the start state when following `pi` (exact, by evaluation).
pub fn expected_return(world: &GridWorld, pi: &Array2<f64>) -> f64 {
    let (v, _) = policy_evaluation(world, pi, SolveOptions::default());
    v[world.start_state()]
}

/// Where episodes end under policy `pi`: the probability of being absorbed in each
/// state after at most `horizon` steps from the start (non-zero only for terminal
/// states; the missing mass is the chance the episode is still running).
pub fn terminal_distribution(world: &GridWorld, pi: &Array2<f64>, horizon: usize) -> Array1<f64> {
    let n = world.n_states();
    let mut running = Array1::<f64>::zeros(n);
    running[world.start_state()] = 1.0;
    let mut absorbed = Array1::<f64>::zeros(n);
    for _ in 0..horizon {
        let mut next = Array1::<f64>::zeros(n);
        for s in 0..n {
            let mass = running[s];
            if mass == 0.0 {
                continue;
            }
            for a in Action::ALL {
                let p_a = pi[[s, a.index()]];
                for t in world.transitions(s, a) {
                    let m = mass * p_a * t.prob;
                    if t.terminal {
                        absorbed[t.next] += m;
                    } else {
                        next[t.next] += m;
                    }
                }
            }
        }
        running = next;
        if running.sum() < 1e-12 {
            break;
        }
    }
    absorbed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-cell world solved by hand (see `maps/two_cells.map`): S then +1,
    /// slip 0.2, step −0.1, γ = 0.9. Going right: V = 0.8·1 + 0.2·(−0.1 + 0.9V),
    /// so V = 0.78 / 0.82.
    #[test]
    fn two_cells_by_hand() {
        let w = GridWorld::load("two_cells").unwrap();
        let sol = value_iteration(&w, SolveOptions::default());
        let v = 0.78 / 0.82;
        let s = w.start_state();
        assert!((sol.values[s] - v).abs() < 1e-12);
        assert_eq!(sol.policy[s], Action::Right);
        // Left: every outcome bumps and stays.
        assert!((sol.q[[s, Action::Left.index()]] - (-0.1 + 0.9 * v)).abs() < 1e-12);
        // Up: bump with 0.9 total (0.8 up + 0.1 slip left), 0.1 slips right into the exit.
        assert!((sol.q[[s, Action::Up.index()]] - (0.9 * (-0.1 + 0.9 * v) + 0.1)).abs() < 1e-12);
    }

    /// Russell & Norvig, AIMA 3rd ed., Figure 17.3: utilities of the 4×3 world with
    /// R(s) = −0.04 and γ = 1, printed to three decimals. In AIMA the reward −0.04 is
    /// received in every non-terminal state and U(terminal) = ±1; here the reward
    /// is on entering. The two agree after one conversion:
    /// U_AIMA(s) = V(s) + step_reward for every non-terminal s.
    #[test]
    fn aima_matches_textbook_table() {
        let w = GridWorld::load("aima").unwrap();
        let sol = value_iteration(&w, SolveOptions::default());
        let table = [
            ((0, 0), 0.812),
            ((0, 1), 0.868),
            ((0, 2), 0.918),
            ((1, 0), 0.762),
            ((1, 2), 0.660),
            ((2, 0), 0.705),
            ((2, 1), 0.655),
            ((2, 2), 0.611),
            ((2, 3), 0.388),
        ];
        for ((r, c), u) in table {
            let s = w.state_of(r, c).unwrap();
            let aima = sol.values[s] + w.map.params.step_reward;
            assert!(
                (aima - u).abs() <= 5e-4 + 1e-9,
                "({r},{c}): {aima:.4} vs {u}"
            );
        }
        // The textbook's optimal policy: the famous "long way round" from (1,2).
        assert_eq!(sol.policy[w.state_of(1, 2).unwrap()], Action::Up);
        assert_eq!(sol.policy[w.state_of(2, 3).unwrap()], Action::Left);
    }

    #[test]
    fn residual_tiny_and_solvers_agree() {
        for name in ["aima", "dragon", "castle", "two_cells"] {
            let w = GridWorld::load(name).unwrap();
            let vi = value_iteration(&w, SolveOptions::default());
            assert!(bellman_residual(&w, &vi.values) < 1e-9, "{name}");
            let pi = policy_iteration(&w, SolveOptions::default());
            let diff = (&vi.values - &pi.values)
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(diff < 1e-8, "{name}: {diff}");
            // The greedy policy of V* evaluates back to V*.
            let (v, _) = policy_evaluation(&w, &policy_table(&vi.policy), SolveOptions::default());
            let diff = (&vi.values - &v).iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(diff < 1e-8, "{name}: {diff}");
        }
    }

    #[test]
    fn random_policy_is_worse_than_optimal() {
        let w = GridWorld::load("dragon").unwrap();
        let opt = value_iteration(&w, SolveOptions::default());
        let random = expected_return(&w, &uniform_policy(&w));
        assert!(random < opt.values[w.start_state()] - 1.0);
        // The optimal policy on `dragon` goes for the +10, and almost always gets it.
        let ends = terminal_distribution(&w, &policy_table(&opt.policy), 10_000);
        assert!((ends.sum() - 1.0).abs() < 1e-9);
        let big = w.state_of(0, 5).unwrap();
        assert!(ends[big] > 0.9, "{}", ends[big]);
    }

    /// With γ = 1, cells walled off from every terminal cell have no finite
    /// value: value iteration stops at its cap (V = −0.04 × 100,000 = −4000
    /// there) and the check says so, naming the cell; a shipped map passes.
    #[test]
    fn an_unreachable_pocket_at_gamma_one_does_not_converge() {
        let map = crate::Map::from_str_named(
            "gamma = 1\nstep_reward = -0.04\nslip = 0\nS . +1\n# # #\n. . .\n",
            "pocket",
        )
        .unwrap();
        let w = GridWorld::new(map);
        let sol = value_iteration(&w, SolveOptions::default());
        assert_eq!(sol.iterations, SolveOptions::default().max_iterations);
        let e = check_converged(&w, &sol).unwrap_err();
        assert_eq!(e.worst_cell.0, 2);
        assert!((e.worst_value + 4000.0).abs() < 1e-6, "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("did not converge") && msg.contains("100000 sweeps"),
            "{msg}"
        );
        let pi = policy_iteration(&w, SolveOptions::default());
        assert!(check_converged(&w, &pi).is_err());
        let aima = GridWorld::load("aima").unwrap();
        let r = check_converged(&aima, &value_iteration(&aima, SolveOptions::default())).unwrap();
        assert!(r < 1e-9);
    }
}
