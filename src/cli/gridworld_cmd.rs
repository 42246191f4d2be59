use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use rlhf_lab::gridworld::render::{ascii, ascii_values};
use rlhf_lab::gridworld::solve::{
    check_converged, policy_iteration, value_iteration, Solution, SolveOptions,
};
use rlhf_lab::gridworld::{GridWorld, Map};
use rlhf_lab::gridworld_plots::{solution_view, ValueTable};
use rlhf_lab::plot::Figure;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    Value,
    Policy,
}

#[derive(Debug, Subcommand)]
pub enum GridworldCommand {
    /// Solve a map exactly and print V* and the optimal policy.
    Solve {
        /// A shipped map (aima, dragon, castle, two_cells) or a path to a .map file.
        #[arg(long, default_value = "aima")]
        map: String,
        /// Value iteration or policy iteration.
        #[arg(long, value_enum, default_value = "value")]
        method: Method,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write the solution as a picture (.svg or .png).
        #[arg(long)]
        figure: Option<PathBuf>,
    },
    /// List the shipped maps.
    Maps,
    /// Train a policy network and a value network with PPO (or REINFORCE) and compare
    /// them with the exact solution.
    Train {
        /// A shipped map or a path to a .map file.
        #[arg(long, default_value = "dragon")]
        map: String,
        /// A JSON file of PPO hyper-parameters (missing fields take defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override the config's budget of environment steps.
        #[arg(long)]
        total_timesteps: Option<usize>,
        /// Folder for metrics (CSV, JSONL), figures (SVG, PNG), the summary and the agent.
        #[arg(long, default_value = "runs/gridworld")]
        out: PathBuf,
        /// Stop as soon as the agent meets the solved bar.
        #[arg(long)]
        stop_when_solved: bool,
        /// Write the agent to OUT/checkpoint (atomically) every this many iterations
        /// and at the end, so an interrupted run can continue with --resume.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_every: u64,
        /// Continue the run whose checkpoint is in OUT/checkpoint (its map, config and
        /// seed); the result equals that of an uninterrupted run.
        #[arg(long, conflicts_with_all = ["config", "seed", "map"])]
        resume: bool,
    },
}

/// The picture formats `--figure` writes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FigureFormat {
    Svg,
    Png,
}

/// The format of `--figure PATH` from its extension (`.svg` or `.png`, any
/// case); any other extension is an error naming the flag, checked before
/// the solve so that no work is lost.
fn figure_format(path: &Path) -> Result<FigureFormat> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("svg") {
        Ok(FigureFormat::Svg)
    } else if ext.eq_ignore_ascii_case("png") {
        Ok(FigureFormat::Png)
    } else {
        bail!(
            "--figure {}: unsupported extension {}; --figure writes .svg or .png",
            path.display(),
            if ext.is_empty() {
                "(none)".to_string()
            } else {
                format!("`.{ext}`")
            }
        )
    }
}

/// Solve `world` (read from `map`) exactly with `method`. Returns the
/// solution and its Bellman residual; an error naming `map` when the solver
/// stopped at its sweep cap before converging ([`check_converged`]): the
/// values would not be V*, so they are not printed as if they were.
pub(super) fn solve_exactly(
    map: &str,
    world: &GridWorld,
    method: Method,
) -> Result<(Solution, f64)> {
    let (sol, name) = match method {
        Method::Value => (
            value_iteration(world, SolveOptions::default()),
            "value iteration",
        ),
        Method::Policy => (
            policy_iteration(world, SolveOptions::default()),
            "policy iteration",
        ),
    };
    match check_converged(world, &sol) {
        Ok(residual) => Ok((sol, residual)),
        Err(e) => bail!("map {map}: {name} {e}"),
    }
}

#[derive(Serialize)]
struct CellOut {
    row: usize,
    col: usize,
    state: usize,
    terminal: bool,
    /// V*(s); 0 for terminal cells.
    value: f64,
    /// Reward for entering this cell.
    reward: f64,
    /// The same value in the convention of Russell & Norvig's AIMA (reward received
    /// *in* each state): V(s) + step_reward for non-terminal cells, the cell's reward
    /// for terminal ones. This is the number their utility tables print.
    utility_reward_in_state: f64,
    /// Greedy action; null for terminal cells.
    action: Option<&'static str>,
    q: [f64; 4],
}

#[derive(Serialize)]
struct SolveOut {
    map: String,
    rows: usize,
    cols: usize,
    gamma: f64,
    slip: f64,
    step_reward: f64,
    method: &'static str,
    iterations: usize,
    bellman_residual: f64,
    start: (usize, usize),
    start_value: f64,
    cells: Vec<CellOut>,
}

pub fn run(cmd: GridworldCommand) -> Result<()> {
    match cmd {
        GridworldCommand::Train {
            map,
            config,
            seed,
            total_timesteps,
            out,
            stop_when_solved,
            checkpoint_every,
            resume,
        } => super::gridworld_train::train(super::gridworld_train::TrainArgs {
            map,
            config,
            seed,
            total_timesteps,
            out,
            stop_when_solved,
            checkpoint_every: checkpoint_every as usize,
            resume,
        }),
        GridworldCommand::Maps => {
            for (name, _) in rlhf_lab::gridworld::map::builtin::MAPS {
                let m = Map::load(name)?;
                println!(
                    "{name:<10} {}x{}  gamma={} slip={} step_reward={}",
                    m.rows, m.cols, m.params.gamma, m.params.slip, m.params.step_reward
                );
            }
            Ok(())
        }
        GridworldCommand::Solve {
            map,
            method,
            json,
            figure,
        } => {
            let format = figure.as_deref().map(figure_format).transpose()?;
            let world = GridWorld::load(&map)?;
            let (sol, residual) = solve_exactly(&map, &world, method)?;
            if let (Some(path), Some(format)) = (figure, format) {
                let view = solution_view(
                    &world,
                    &sol,
                    format!("{}: V* and the optimal policy", world.map.name),
                );
                let fig = Figure::grid(
                    &[
                        Figure::from(view),
                        ValueTable::new(&world, sol.values.as_slice().unwrap(), "V*").figure()?,
                    ],
                    2,
                );
                match format {
                    FigureFormat::Png => fig.save_png(&path)?,
                    FigureFormat::Svg => fig.save_svg(&path)?,
                }
                eprintln!("wrote {}", path.display());
            }
            if json {
                let cells = (0..world.n_states())
                    .map(|s| {
                        let (row, col) = world.cell_of(s);
                        let terminal = world.is_terminal(s);
                        CellOut {
                            row,
                            col,
                            state: s,
                            terminal,
                            value: sol.values[s],
                            reward: world.map.entry_reward(row, col),
                            utility_reward_in_state: if terminal {
                                world.map.entry_reward(row, col)
                            } else {
                                sol.values[s] + world.map.params.step_reward
                            },
                            action: (!terminal).then(|| sol.policy[s].name()),
                            q: [sol.q[[s, 0]], sol.q[[s, 1]], sol.q[[s, 2]], sol.q[[s, 3]]],
                        }
                    })
                    .collect();
                let out = SolveOut {
                    map: world.map.name.clone(),
                    rows: world.map.rows,
                    cols: world.map.cols,
                    gamma: world.gamma(),
                    slip: world.map.params.slip,
                    step_reward: world.map.params.step_reward,
                    method: match method {
                        Method::Value => "value_iteration",
                        Method::Policy => "policy_iteration",
                    },
                    iterations: sol.iterations,
                    bellman_residual: residual,
                    start: world.map.start,
                    start_value: sol.values[world.start_state()],
                    cells,
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let p = &world.map.params;
                println!(
                    "map {} ({}x{}), gamma={}, slip={}, step_reward={}",
                    world.map.name, world.map.rows, world.map.cols, p.gamma, p.slip, p.step_reward
                );
                println!(
                    "{:?} iteration: {} iterations, Bellman residual {:.2e}\n",
                    method, sol.iterations, residual
                );
                println!("V* (terminal cells show [their reward]):");
                println!("{}", ascii_values(&world, sol.values.as_slice().unwrap()));
                println!("optimal policy:");
                println!("{}", ascii(&world, Some(&sol.policy)));
                println!("V*(start) = {:.6}", sol.values[world.start_state()]);
            }
            Ok(())
        }
    }
}
