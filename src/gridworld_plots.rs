//! Gridworld figures for notebooks and the CLI: value tables as heatmaps,
//! maps with policies, and sweeps of a map parameter.

use crate::plot::{Figure, Heatmap, LineChart};
use gridworld::solve::{value_iteration, Solution, SolveOptions};
use gridworld::{Action, GridView, GridWorld, Map};
use plotters::style::RGBColor;

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

/// The terminal cells of `world`, as (row, column, reward for entering).
fn terminal_cells(world: &GridWorld) -> Vec<(usize, usize, f64)> {
    let m = &world.map;
    (0..m.rows)
        .flat_map(|r| (0..m.cols).map(move |c| (r, c)))
        .filter(|&(r, c)| world.state_of(r, c).is_some_and(|s| world.is_terminal(s)))
        .map(|(r, c)| (r, c, m.entry_reward(r, c)))
        .collect()
}

/// A terminal cell's fill: green for a reward, red for a penalty, grey for 0.
fn terminal_fill(reward: f64) -> RGBColor {
    if reward > 0.0 {
        RGBColor(44, 160, 44)
    } else if reward < 0.0 {
        RGBColor(214, 39, 40)
    } else {
        RGBColor(150, 150, 150)
    }
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

    /// The heatmap builder. Terminal cells are drawn apart, in their own
    /// colour (green when the reward is positive, red when negative) with
    /// the reward written in them; the other states' values set the scale.
    pub fn heatmap(&self) -> Heatmap {
        let m = &self.world.map;
        let side = (m.cols.max(m.rows) as u32 * 52).clamp(300, 760);
        let mut h = Heatmap::new(self.title.clone(), value_grid(&self.world, &self.values))
            .annotate(m.rows * m.cols <= 144)
            .size(side + 150, side + 40);
        for (r, c, reward) in terminal_cells(&self.world) {
            h = h.mark_cell(r, c, terminal_fill(reward), format!("{reward:+}"));
        }
        if let Some((lo, hi)) = self.range {
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

/// Where episodes from the start end under policy `pi` within `horizon` steps:
/// one entry per terminal cell, in state order, exactly (by
/// [`gridworld::solve::terminal_distribution`]). The probabilities sum to at
/// most 1; the rest is the chance an episode is still running after `horizon`
/// steps (with the map's `max_steps` as horizon: the share cut off).
pub fn terminal_outcomes(
    world: &GridWorld,
    pi: &ndarray::Array2<f64>,
    horizon: usize,
) -> Vec<TerminalOutcome> {
    let absorbed = gridworld::solve::terminal_distribution(world, pi, horizon);
    (0..world.n_states())
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
        .collect()
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
            let outcomes = terminal_outcomes(&world, &pi, 10_000);
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

    /// Terminal cells of `dragon` (+1 goal, −10 dragon) are drawn in their
    /// own colours with their rewards, and the colour scale spans the other
    /// states' values only.
    #[test]
    fn value_table_draws_terminal_cells_apart() {
        let world = GridWorld::load("dragon").unwrap();
        let values: Vec<f64> = (0..world.n_states()).map(|s| 0.01 * s as f64).collect();
        let table = ValueTable::new(&world, &values, "v");
        let (lo, hi) = table.heatmap().colour_range();
        let inner: Vec<f64> = (0..world.n_states())
            .filter(|&s| !world.is_terminal(s))
            .map(|s| values[s])
            .collect();
        assert_eq!(lo, inner.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(hi, inner.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        let svg = table.figure().unwrap().svg().to_string();
        let terminals = terminal_cells(&world);
        assert!(terminals.iter().any(|t| t.2 > 0.0) && terminals.iter().any(|t| t.2 < 0.0));
        for (_, _, reward) in terminals {
            assert!(
                svg.contains(&format!(">\n{reward:+}\n</text>")),
                "no `{reward:+}` in a cell"
            );
        }
        let up = svg.to_uppercase();
        assert!(
            up.contains("#2CA02C") && up.contains("#D62728"),
            "green and red cells"
        );
    }

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

    /// The exact endings of the random walk within `max_steps` agree with
    /// 20,000 simulated episodes to within 4 standard errors (≈ 0.014), and
    /// the cut-off share is what the terminal cells leave.
    #[test]
    fn terminal_outcomes_match_simulated_episodes() {
        let world = GridWorld::load("dragon").unwrap();
        let horizon = world.map.params.max_steps;
        let exact = terminal_outcomes(&world, &gridworld::solve::uniform_policy(&world), horizon);
        let mut env = gridworld::Env::new(std::sync::Arc::new(world.clone()), 3);
        let mut rng = gridworld::Rng::new(5);
        let n = 20_000;
        let mut ends = std::collections::HashMap::new();
        let mut cut_off = 0;
        for _ in 0..n {
            let e = env.run_episode(|_| Action::from_index(rng.below(4)));
            if e.terminated {
                *ends.entry(*e.states.last().unwrap()).or_insert(0usize) += 1;
            } else {
                cut_off += 1;
            }
        }
        let tolerance = |p: f64| 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9;
        for o in &exact {
            let s = world.state_of(o.row, o.col).unwrap();
            let sampled = *ends.get(&s).unwrap_or(&0) as f64 / n as f64;
            assert!(
                (sampled - o.probability).abs() <= tolerance(o.probability),
                "({},{}): exact {:.4}, sampled {sampled:.4}",
                o.row,
                o.col,
                o.probability
            );
        }
        let exact_cut: f64 = 1.0 - exact.iter().map(|o| o.probability).sum::<f64>();
        let sampled_cut = cut_off as f64 / n as f64;
        assert!((sampled_cut - exact_cut).abs() <= tolerance(exact_cut));
    }
}
