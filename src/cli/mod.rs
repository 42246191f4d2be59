//! Command-line interface. Each rung adds a subcommand group.

mod dpo_cmd;
mod feedback_cmd;
mod gridworld_cmd;
mod gridworld_train;
mod judge_cmd;
#[cfg(feature = "label")]
mod label_cmd;
mod lm_cmd;
mod lora_args;
mod ppo_cmd;
mod progress;
mod rm_cmd;
mod sft_cmd;
mod value_parsers;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rlhf-lab",
    version,
    about = "Learn RLHF rung by rung: gridworld RL, PPO, language models, feedback."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rung 1–2: the gridworld (solve exactly, draw).
    #[command(subcommand)]
    Gridworld(gridworld_cmd::GridworldCommand),
    /// Rung 3: the language model (corpus, pre-training, sampling).
    #[command(subcommand)]
    Lm(lm_cmd::LmCommand),
    /// Rung 4: supervised fine-tuning on demonstrations.
    Sft(sft_cmd::SftArgs),
    /// Write the SFT demonstrations (train/validation/test JSONL and a data card).
    SftData(sft_cmd::SftDataArgs),
    /// Rung 5: human feedback (simulate a labelling session, rank systems).
    #[command(subcommand)]
    Feedback(feedback_cmd::FeedbackCommand),
    /// Label in the browser: serve a labelling page backed by SQLite, export its judgements.
    #[cfg(feature = "label")]
    #[command(subcommand)]
    Label(label_cmd::LabelCommand),
    /// Rung 6: the reward model (preference data, training, scoring).
    #[command(subcommand)]
    Rm(rm_cmd::RmCommand),
    /// Rung 7: KL-constrained PPO of the policy against the reward model.
    Ppo(ppo_cmd::PpoArgs),
    /// Rung 8: Direct Preference Optimization of the policy on the comparisons.
    Dpo(dpo_cmd::DpoArgs),
    /// The best of n answers of the SFT model by the reward model (no training).
    BestOfN(ppo_cmd::BestOfNArgs),
    /// Render SVG figures (e.g. target/notebooks/*/cell*.svg) to PNG files beside them.
    SvgToPng {
        /// SVG files; each FILE.svg becomes FILE.png.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Gridworld(cmd) => gridworld_cmd::run(cmd),
        Command::Lm(cmd) => lm_cmd::run(cmd),
        Command::Sft(a) => sft_cmd::run(a),
        Command::SftData(a) => sft_cmd::data(a),
        Command::Feedback(cmd) => feedback_cmd::run(cmd),
        #[cfg(feature = "label")]
        Command::Label(cmd) => label_cmd::run(cmd),
        Command::Rm(cmd) => rm_cmd::run(cmd),
        Command::Ppo(a) => ppo_cmd::run(a),
        Command::Dpo(a) => dpo_cmd::run(a),
        Command::BestOfN(a) => ppo_cmd::best_of_n(a),
        Command::SvgToPng { files } => {
            use anyhow::Context;
            for svg in files {
                let text = std::fs::read_to_string(&svg)
                    .with_context(|| format!("reading {}", svg.display()))?;
                let fig = rlhf_lab::plot::Figure::from_svg_document(text)
                    .with_context(|| format!("parsing {}", svg.display()))?;
                let png = svg.with_extension("png");
                fig.save_png(&png)
                    .with_context(|| format!("rendering {} to PNG", svg.display()))?;
                println!("{}", png.display());
            }
            Ok(())
        }
    }
}
