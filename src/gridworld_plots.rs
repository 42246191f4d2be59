//! Gridworld figures for notebooks and the CLI: value tables as heatmaps,
//! maps with policies, and sweeps of a map parameter.

use crate::plot::{Figure, Heatmap, LineChart};
use gridworld::solve::{value_iteration, Solution, SolveOptions};
use gridworld::{Action, GridView, GridWorld, Map};

/// `values` laid out on the grid, `NaN` for walls (drawn grey in a heatmap).
/// Terminal cells show their reward, so the colours read as "how good is it here".
pub fn value_grid(world: &GridWorld, values: &[f64]) -> Vec<Vec<f64>> {
    let m = &world.map;
    (0..m.rows)
        .map(|r| {
            (0..m.cols)
                .map(|c| match world.state_of(r, c) {
                    None => f64::NAN,
                    Some(s) if world.is_terminal(s) => m.entry_reward(r, c),
                    Some(s) => values[s],
                })
                .collect()
        })
        .collect()
}

/// A value table that shows itself as an annotated heatmap in a notebook cell.
#[derive(Debug, Clone)]
pub struct ValueTable {
    pub world: GridWorld,
    pub values: Vec<f64>,
    pub title: String,
    range: Option<(f64, f64)>,
}

impl ValueTable {
    pub fn new(world: &GridWorld, values: &[f64], title: impl Into<String>) -> Self {
        Self {
            world: world.clone(),
            values: values.to_vec(),
            title: title.into(),
            range: None,
        }
    }

    /// Fix the colour scale, e.g. to compare a learned table with V*.
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// The heatmap builder (non-terminal values set the colour scale).
    pub fn heatmap(&self) -> Heatmap {
        let m = &self.world.map;
        let side = (m.cols.max(m.rows) as u32 * 52).clamp(300, 760);
        let mut h = Heatmap::new(self.title.clone(), value_grid(&self.world, &self.values))
            .annotate(m.rows * m.cols <= 144)
            .size(side + 150, side + 40);
        let non_terminal: Vec<f64> = (0..self.world.n_states())
            .filter(|&s| !self.world.is_terminal(s))
            .map(|s| self.values[s])
            .collect();
        let (lo, hi) = self.range.unwrap_or_else(|| {
            let lo = non_terminal.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = non_terminal
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        });
        if lo.is_finite() && hi > lo {
            h = h.range(lo, hi);
        }
        h
    }

    pub fn figure(&self) -> anyhow::Result<Figure> {
        self.heatmap().draw()
    }

    /// evcxr rich output.
    pub fn evcxr_display(&self) {
        match self.figure() {
            Ok(f) => f.evcxr_display(),
            Err(e) => eprintln!("cannot draw value table: {e:#}"),
        }
    }
}

/// The map coloured by `values` with one arrow per state from `policy`.
pub fn policy_view(
    world: &GridWorld,
    values: &[f64],
    policy: &[Action],
    title: impl Into<String>,
) -> GridView {
    GridView::new(world)
        .values(values)
        .policy(policy)
        .title(title)
}

/// The map with a solution's values as colours and its policy as arrows.
pub fn solution_view(world: &GridWorld, sol: &Solution, title: impl Into<String>) -> GridView {
    policy_view(
        world,
        sol.values.as_slice().expect("contiguous"),
        &sol.policy,
        title,
    )
}

/// A copy of `map` with one parameter changed, by its file-format name
/// (`gamma`, `slip`, `step_reward`, `dragon_reward`).
pub fn with_param(map: &Map, key: &str, value: f64) -> anyhow::Result<Map> {
    let mut m = map.clone();
    match key {
        "gamma" => {
            anyhow::ensure!(
                value > 0.0 && value <= 1.0,
                "gamma must be in (0, 1], got {value}"
            );
            m.params.gamma = value
        }
        "slip" => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&value),
                "slip must be in [0, 1], got {value}"
            );
            m.params.slip = value
        }
        "step_reward" => m.params.step_reward = value,
        "dragon_reward" => m.params.dragon_reward = value,
        other => anyhow::bail!(
            "unknown map parameter `{other}` (gamma, slip, step_reward, dragon_reward)"
        ),
    }
    Ok(m)
}

/// How likely an episode under a policy is to end in one terminal cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TerminalOutcome {
    /// Row of the terminal cell.
    pub row: usize,
    /// Column of the terminal cell.
    pub col: usize,
    /// The reward for entering it.
    pub reward: f64,
    /// Probability that an episode from the start ends here.
    pub probability: f64,
}

/// One row of a parameter sweep: the solved world and where its optimal policy ends.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// The swept parameter's value.
    pub value: f64,
    /// The world with that value.
    pub world: GridWorld,
    /// Its exact solution.
    pub solution: Solution,
    /// Where the optimal policy ends: one entry per terminal cell, in state order.
    pub outcomes: Vec<TerminalOutcome>,
}

/// Where the optimal policy ends against the swept parameter: one line per
/// terminal cell of `points` (from [`sweep`]), its probability at each value.
pub fn outcome_chart(title: &str, x_label: &str, points: &[SweepPoint]) -> anyhow::Result<Figure> {
    let xs: Vec<f64> = points.iter().map(|p| p.value).collect();
    let mut chart = LineChart::new(title)
        .x_label(x_label)
        .y_label("probability the episode ends here");
    let Some(first) = points.first() else {
        anyhow::bail!("outcome_chart: no sweep points");
    };
    for (k, o) in first.outcomes.iter().enumerate() {
        let ys: Vec<f64> = points.iter().map(|p| p.outcomes[k].probability).collect();
        chart = chart.series(format!("{:+} at ({},{})", o.reward, o.row, o.col), &xs, &ys);
    }
    chart.draw()
}

/// Solve `map` once per value of parameter `key`.
pub fn sweep(map: &Map, key: &str, values: &[f64]) -> anyhow::Result<Vec<SweepPoint>> {
    values
        .iter()
        .map(|&v| {
            let world = GridWorld::new(with_param(map, key, v)?);
            let solution = value_iteration(&world, SolveOptions::default());
            let pi = gridworld::solve::policy_table(&solution.policy);
            let absorbed = gridworld::solve::terminal_distribution(&world, &pi, 10_000);
            let outcomes = (0..world.n_states())
                .filter(|&s| world.is_terminal(s))
                .map(|s| {
                    let (row, col) = world.cell_of(s);
                    TerminalOutcome {
                        row,
                        col,
                        reward: world.map.entry_reward(row, col),
                        probability: absorbed[s],
                    }
                })
                .collect();
            Ok(SweepPoint {
                value: v,
                world,
                solution,
                outcomes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On `dragon` the sweep finds each terminal cell with its reward, the
    /// probabilities of ending somewhere sum to at most 1, and the chart has one
    /// line per terminal cell, labelled by its reward and cell.
    #[test]
    fn outcome_chart_draws_one_line_per_terminal() {
        let world = GridWorld::load("dragon").unwrap();
        let points = sweep(&world.map, "gamma", &[0.5, 0.9]).unwrap();
        let terminals = (0..world.n_states())
            .filter(|&s| world.is_terminal(s))
            .count();
        for p in &points {
            assert_eq!(p.outcomes.len(), terminals);
            let total: f64 = p.outcomes.iter().map(|o| o.probability).sum();
            assert!(total <= 1.0 + 1e-9, "{total}");
            for o in &p.outcomes {
                assert_eq!(o.reward, p.world.map.entry_reward(o.row, o.col));
            }
        }
        let figure = outcome_chart("ends", "gamma", &points).unwrap();
        for o in &points[0].outcomes {
            let label = format!("{:+} at ({},{})", o.reward, o.row, o.col);
            assert!(figure.svg().contains(&label), "no line `{label}`");
        }
        assert!(outcome_chart("ends", "gamma", &[]).is_err());
    }
}
