//! Command-line interface. Each rung adds a subcommand group.

mod feedback_cmd;
mod gridworld_cmd;
mod gridworld_train;
mod progress;

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
    /// Rung 5: human feedback (simulate a labelling session, rank systems).
    #[command(subcommand)]
    Feedback(feedback_cmd::FeedbackCommand),
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
        Command::Feedback(cmd) => feedback_cmd::run(cmd),
        Command::SvgToPng { files } => {
            use anyhow::Context;
            for svg in files {
                let text = std::fs::read_to_string(&svg)
                    .with_context(|| format!("reading {}", svg.display()))?;
                let fig = rlhf_lab::plot::Figure::from_svg_document(text)
                    .with_context(|| format!("parsing {}", svg.display()))?;
                let png = svg.with_extension("png");
                fig.save_png(&png)?;
                println!("{}", png.display());
            }
            Ok(())
        }
    }
}
