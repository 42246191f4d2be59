use super::gridworld_cmd::{solve_exactly, Method};
use super::progress::Progress;
use anyhow::{Context, Result};
use rlhf_lab::gridworld::GridWorld;
use rlhf_lab::io::write_atomic;
use rlhf_lab::rl::plots::{agent_vs_truth, learning_curve};
use rlhf_lab::rl::{metrics_to_csv, metrics_to_jsonl, GridworldTrainer, PpoConfig};
use std::path::PathBuf;
use std::time::Instant;

/// `gridworld train`'s arguments (see the CLI's help).
pub struct TrainArgs {
    pub map: String,
    pub config: Option<PathBuf>,
    pub seed: Option<u64>,
    pub total_timesteps: Option<usize>,
    pub out: PathBuf,
    pub stop_when_solved: bool,
    /// Iterations between checkpoints of OUT/checkpoint.
    pub checkpoint_every: usize,
    /// Continue from OUT/checkpoint (or `checkpoint.old`, left by an interrupted write).
    pub resume: bool,
}

/// A new trainer from the map and the config, or (`--resume`) the one in
/// OUT/checkpoint; `--total-timesteps` may raise a resumed run's budget.
fn trainer_for(a: &TrainArgs, agent: &std::path::Path) -> Result<GridworldTrainer> {
    if a.resume {
        let mut t = GridworldTrainer::resume(agent).with_context(|| {
            format!("--resume: no checkpoint to continue in {}", agent.display())
        })?;
        if let Some(steps) = a.total_timesteps {
            t.config.total_timesteps = steps;
            t.config.validate()?;
        }
        println!(
            "resumed at iteration {} ({} env steps) from {}",
            t.iteration(),
            t.global_step(),
            agent.display()
        );
        return Ok(t);
    }
    let world = GridWorld::load(&a.map)?;
    let mut cfg = match &a.config {
        Some(path) => PpoConfig::from_file(path)?,
        None => PpoConfig::default(),
    };
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(t) = a.total_timesteps {
        cfg.total_timesteps = t;
    }
    cfg.validate()?;
    GridworldTrainer::new(world, cfg)
}

pub fn train(a: TrainArgs) -> Result<()> {
    let out = a.out.as_path();
    let agent = out.join("checkpoint");
    let mut trainer = trainer_for(&a, &agent)?;
    rlhf_lab::io::check_output_dir_writable(out)?;
    let world = trainer.world().clone();
    let map_label = if a.resume {
        agent
            .join(rlhf_lab::io::checkpoint::TRAINER_STATE)
            .display()
            .to_string()
    } else {
        a.map.clone()
    };
    let (optimal, _) = solve_exactly(&map_label, &world, Method::Value)?;
    let cfg = trainer.config.clone();
    let stop_when_solved = a.stop_when_solved;
    let iterations = cfg.num_iterations();
    let bar = Progress::new(&format!("PPO on {}", world.map.name), iterations);
    let started = Instant::now();
    let mut solved_at = None;
    while trainer.iteration() < iterations {
        let m = trainer.train_iterations(1)?[0].clone();
        if m.iteration % a.checkpoint_every == 0 {
            trainer
                .save_checkpoint(&agent)
                .with_context(|| format!("writing the checkpoint {}", agent.display()))?;
        }
        if m.iteration % 5 == 0 || m.iteration == iterations {
            let report = trainer.compare(&optimal)?;
            if report.solved() && solved_at.is_none() {
                solved_at = Some((trainer.global_step(), started.elapsed().as_secs_f64()));
            }
            bar.update(
                m.iteration,
                &format!(
                    "return {:>7.3}  greedy {:.3}/{:.3}  agree {:>3.0}%",
                    m.discounted_return,
                    report.greedy_return,
                    report.optimal_return,
                    100.0 * report.policy_agreement
                ),
            );
            if stop_when_solved && solved_at.is_some() {
                break;
            }
        }
    }
    bar.finish();
    let wall = started.elapsed().as_secs_f64();
    let report = trainer.compare(&optimal)?;

    let w = |name: &str, text: &str| -> Result<()> {
        let p = out.join(name);
        write_atomic(&p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))
    };
    w("metrics.csv", &metrics_to_csv(trainer.metrics()))?;
    w("metrics.jsonl", &metrics_to_jsonl(trainer.metrics()))?;
    let summary = serde_json::json!({
        "map": world.map.name,
        "config": cfg,
        "env_steps": trainer.global_step(),
        "wall_seconds": wall,
        "solved": report.solved(),
        "solved_at_env_steps": solved_at.map(|s| s.0),
        "solved_at_seconds": solved_at.map(|s| s.1),
        "report": report,
    });
    w("summary.json", &serde_json::to_string_pretty(&summary)?)?;
    trainer.save_checkpoint(&agent)?;

    let curve = learning_curve(
        &format!(
            "PPO on {}: discounted return from the start",
            world.map.name
        ),
        trainer.metrics(),
        report.optimal_return,
    )
    .draw()?;
    let side_by_side = agent_vs_truth(&trainer, &optimal)?;
    for (name, fig) in [
        ("learning_curve", &curve),
        ("values_and_policies", &side_by_side),
    ] {
        fig.save_svg(out.join(format!("{name}.svg")))?;
        fig.save_png(out.join(format!("{name}.png")))?;
    }
    println!(
        "map {}  seed {}  {} env steps in {:.2} s ({:.0} steps/s)",
        world.map.name,
        cfg.seed,
        trainer.global_step(),
        wall,
        trainer.global_step() as f64 / wall
    );
    println!(
        "greedy return {:.4} vs optimal {:.4} ({:+.2}%)   policy agreement {:.1}%   value RMSE vs V* {:.3}",
        report.greedy_return,
        report.optimal_return,
        100.0 * (report.greedy_return - report.optimal_return) / report.optimal_return.abs(),
        100.0 * report.policy_agreement,
        report.value_rmse_vs_optimal
    );
    match solved_at {
        Some((steps, secs)) => println!("solved (>= 95% optimal actions, return within 2%) after {steps} env steps, {secs:.2} s"),
        None => println!("not solved within the budget"),
    }
    println!(
        "wrote metrics, summary, figures and the checkpoint to {}",
        out.display()
    );
    Ok(())
}
