use super::value_parsers::{at_least_one, finite, share};
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use rlhf_lab::feedback::aggregate::{robust_bradley_terry, system_matches, ItemMatches};
use rlhf_lab::feedback::annotators::{honest_crowd, narrow_group, with_trolls, Behaviour};
use rlhf_lab::feedback::candidates::{candidates, prompts};
use rlhf_lab::feedback::ranking::{
    bootstrap, bootstrap_bradley_terry, bradley_terry, elo, BtOptions, EloConfig,
};
use rlhf_lab::feedback::records::{
    check_systems_known, parse_votes, write_feedback, Feedback, Vote,
};
use rlhf_lab::feedback::simulate::simulate_comparisons;
use rlhf_lab::io::mapped::MappedText;
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
        #[arg(long, default_value_t = 200, value_parser = at_least_one)]
        prompts: usize,
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        annotators: usize,
        /// Pairs of responses judged per prompt.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        pairs_per_prompt: usize,
        /// Annotators judging each pair (distinct, so at most --annotators).
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        per_pair: usize,
        /// Share of bad-faith annotators, from 0 to 1.
        #[arg(long, default_value_t = 0.0, value_parser = share, allow_negative_numbers = true)]
        troll_share: f64,
        #[arg(long, value_enum, default_value = "flip")]
        troll: Troll,
        /// Every annotator likes long answers this much (a narrow group).
        #[arg(long, default_value_t = 0.0, value_parser = finite, allow_hyphen_values = true)]
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
        /// Bootstrap resamples (at least 1: the intervals are their percentiles).
        #[arg(long, default_value_t = 200, value_parser = at_least_one)]
        rounds: usize,
        #[arg(long)]
        json: bool,
        /// The known systems, comma-separated: a comparison naming any other
        /// system is an error (a typo or a made-up id would be ranked as a new system).
        #[arg(long, value_delimiter = ',')]
        systems: Option<Vec<String>>,
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
                per_pair <= annotators,
                "--per-pair is {per_pair}, at most --annotators ({annotators}): \
                 each pair is judged by distinct annotators"
            );
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
            systems,
        } => {
            let source = file.display().to_string();
            let text = MappedText::open(&file)?;
            let numbered = parse_votes(text.as_str(), &source)?;
            anyhow::ensure!(!numbered.is_empty(), "{source}: no comparisons");
            if let Some((line, _)) = numbered
                .iter()
                .find(|(_, v)| v.system_a.is_empty() || v.system_b.is_empty())
            {
                anyhow::bail!(
                    "{source}:{line}: every comparison needs `system_a` and `system_b` to rank systems"
                );
            }
            if let Some(known) = &systems {
                check_systems_known(&source, &numbered, known)?;
            }
            let votes: Vec<Vote> = numbered.into_iter().map(|(_, v)| v).collect();
            let ItemMatches { names, matches } = system_matches(&votes);
            let n = names.len();
            let bt_intervals =
                || bootstrap_bradley_terry(n, &matches, rounds, 1, BtOptions::default());
            let (ratings, intervals) = match method {
                Method::Elo => (
                    elo(n, &matches, EloConfig::default()),
                    bootstrap(n, &matches, rounds, 1, |m| elo(n, m, EloConfig::default())),
                ),
                Method::Bt => (
                    bradley_terry(n, &matches, BtOptions::default()),
                    bt_intervals(),
                ),
                Method::Robust => (robust_bradley_terry(&votes, 3).ratings, bt_intervals()),
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
