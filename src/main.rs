//! `rlhf-lab`: the command-line face of the library (the same API the notebooks use).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    rlhf_lab::allocator::keep_freed_memory();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
