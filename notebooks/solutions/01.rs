// Reference solutions of notebook 01's exercises, one section per exercise id.
// `scripts/run_notebooks.py --solutions notebooks/solutions` puts each section in
// place of the cell tagged `exercise:<id>` before running the notebook (and fails
// unless every check cell prints ✓); tests/exercises.rs compiles this file and
// runs the checkers on it. Try the exercises yourself before you read on.

// exercise: 01-returns-to-go
/// The discounted return from every step: G_t = r_{t+1} + γ·G_{t+1}, walking backwards.
fn my_returns_to_go(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut returns = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        returns[t] = g;
    }
    returns
}

// exercise: 01-bellman-backup
/// One Bellman backup: Q(s, a) = Σ_s' P(s'|s,a) · [r(s') + γ·V(s')], V(terminal) = 0.
fn my_q_value(world: &GridWorld, values: &[f64], s: usize, a: Action) -> f64 {
    world
        .transitions(s, a)
        .iter()
        .map(|t| {
            let future = if t.terminal { 0.0 } else { world.gamma() * values[t.next] };
            t.prob * (t.reward + future)
        })
        .sum()
}

// exercise: 01-value-iteration
/// V*(s) by value iteration: sweep V(s) ← max_a Q(s, a) until nothing changes.
fn my_value_iteration(world: &GridWorld) -> Vec<f64> {
    let mut v = vec![0.0; world.n_states()];
    loop {
        let mut next = v.clone();
        let mut largest_change: f64 = 0.0;
        for s in 0..world.n_states() {
            if world.is_terminal(s) {
                continue; // V = 0 after the episode ends
            }
            let best = Action::ALL
                .iter()
                .map(|&a| my_q_value(world, &v, s, a))
                .fold(f64::NEG_INFINITY, f64::max);
            largest_change = largest_change.max((best - v[s]).abs());
            next[s] = best;
        }
        v = next;
        if largest_change < 1e-12 {
            return v;
        }
    }
}
