//! Command-line interface. Each rung adds a subcommand group.

mod gridworld_cmd;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rlhf-lab", version, about = "Learn RLHF rung by rung: gridworld RL, PPO, language models, feedback.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rung 1–2: the gridworld (solve exactly, draw).
    #[command(subcommand)]
    Gridworld(gridworld_cmd::GridworldCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Gridworld(cmd) => gridworld_cmd::run(cmd),
    }
}
