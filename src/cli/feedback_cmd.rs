use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use rlhf_lab::feedback::aggregate::{robust_bradley_terry, system_matches};
use rlhf_lab::feedback::annotators::{honest_crowd, narrow_group, with_trolls, Behaviour};
use rlhf_lab::feedback::candidates::{candidates, prompts};
use rlhf_lab::feedback::ranking::{bootstrap, bradley_terry, elo, BtOptions, EloConfig};
use rlhf_lab::feedback::records::{comparisons, read_feedback, write_feedback, Feedback};
use rlhf_lab::feedback::simulate::simulate_comparisons;
use rlhf_lab::world::World;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Troll {
    Flip,
    Random,
    PushHarmful,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    Elo,
    Bt,
    Robust,
}

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Simulate a labelling session and write its comparisons as JSONL.
    Simulate {
        #[arg(long, default_value_t = 200)]
        prompts: usize,
        #[arg(long, default_value_t = 20)]
        annotators: usize,
        /// Pairs of responses judged per prompt.
        #[arg(long, default_value_t = 3)]
        pairs_per_prompt: usize,
        /// Annotators judging each pair.
        #[arg(long, default_value_t = 3)]
        per_pair: usize,
        /// Share of bad-faith annotators.
        #[arg(long, default_value_t = 0.0)]
        troll_share: f64,
        #[arg(long, value_enum, default_value = "flip")]
        troll: Troll,
        /// Every annotator likes long answers this much (a narrow group).
        #[arg(long, default_value_t = 0.0)]
        length_bias: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "runs/feedback/comparisons.jsonl")]
        out: PathBuf,
    },
    /// Rank the systems of a comparisons file: a leaderboard with 95% bootstrap intervals.
    Rank {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "bt")]
        method: Method,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// An AI annotator (a language model reading a constitution) labels comparison pairs (RLAIF).
    Judge(super::judge_cmd::JudgeArgs),
}

pub fn run(cmd: FeedbackCommand) -> Result<()> {
    match cmd {
        FeedbackCommand::Judge(a) => super::judge_cmd::run(a),
        FeedbackCommand::Simulate {
            prompts: n,
            annotators,
            pairs_per_prompt,
            per_pair,
            troll_share,
            troll,
            length_bias,
            seed,
            out,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&troll_share),
                "--troll-share must be in [0, 1], got {troll_share}"
            );
            anyhow::ensure!(annotators > 0, "--annotators must be at least 1");
            let world = World::generate(0);
            let ps = prompts(&world, n, seed);
            let cands = candidates(&ps, seed + 1);
            let behaviour = match troll {
                Troll::Flip => Behaviour::Flip,
                Troll::Random => Behaviour::Random,
                Troll::PushHarmful => Behaviour::Push("harmful".into()),
            };
            let mut crowd = with_trolls(honest_crowd(annotators, seed + 2), troll_share, behaviour);
            if length_bias != 0.0 {
                crowd = narrow_group(crowd, length_bias);
            }
            let comps =
                simulate_comparisons(&ps, &cands, &crowd, pairs_per_prompt, per_pair, seed + 3);
            let recs: Vec<Feedback> = comps.into_iter().map(Feedback::Comparison).collect();
            write_feedback(&out, &recs)?;
            println!("wrote {} comparisons to {}", recs.len(), out.display());
            Ok(())
        }
        FeedbackCommand::Rank {
            file,
            method,
            rounds,
            json,
        } => {
            let comps = comparisons(&read_feedback(&file)?);
            anyhow::ensure!(!comps.is_empty(), "{}: no comparisons", file.display());
            anyhow::ensure!(
                comps
                    .iter()
                    .all(|c| !c.system_a.is_empty() && !c.system_b.is_empty()),
                "{}: every comparison needs `system_a` and `system_b` to rank systems",
                file.display()
            );
            let (names, matches) = system_matches(&comps);
            let n = names.len();
            let (ratings, intervals) = match method {
                Method::Elo => (
                    elo(n, &matches, EloConfig::default()),
                    bootstrap(n, &matches, rounds, 1, |m| elo(n, m, EloConfig::default())),
                ),
                Method::Bt => (
                    bradley_terry(n, &matches, BtOptions::default()),
                    bootstrap(n, &matches, rounds, 1, |m| {
                        bradley_terry(n, m, BtOptions::default())
                    }),
                ),
                Method::Robust => {
                    let fit = robust_bradley_terry(&comps, 3);
                    let ci = bootstrap(n, &matches, rounds, 1, |m| {
                        bradley_terry(n, m, BtOptions::default())
                    });
                    (fit.ratings, ci)
                }
            };
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| ratings[b].total_cmp(&ratings[a]));
            let mut games = vec![0usize; n];
            for m in &matches {
                games[m.a] += 1;
                games[m.b] += 1;
            }
            if json {
                let rows: Vec<_> = order
                    .iter()
                    .enumerate()
                    .map(|(rank, &i)| {
                        serde_json::json!({"rank": rank + 1, "system": names[i], "rating": ratings[i],
                            "ci_low": intervals[i].lo, "ci_high": intervals[i].hi, "matches": games[i]})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).context("serialising the leaderboard")?
                );
            } else {
                println!(
                    "{:<5} {:<12} {:>8} {:>20} {:>8}",
                    "rank", "system", "rating", "95% interval", "matches"
                );
                for (rank, &i) in order.iter().enumerate() {
                    println!(
                        "{:<5} {:<12} {:>8.1} {:>9.1} .. {:>7.1} {:>8}",
                        rank + 1,
                        names[i],
                        ratings[i],
                        intervals[i].lo,
                        intervals[i].hi,
                        games[i]
                    );
                }
            }
            Ok(())
        }
    }
}
