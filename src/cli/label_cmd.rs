//! `rlhf-lab label …`: the labelling web page (serve) and its database as the
//! project's files (export).

use anyhow::Result;
use clap::Subcommand;
use rlhf_lab::label::db::LabelDb;
use rlhf_lab::label::export::export_dir;
use rlhf_lab::label::{serve, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum LabelCommand {
    /// Serve a labelling web page: an arena (A vs B), single answers (thumbs, 1–10, flaws)
    /// and a live leaderboard; every judgement is stored in SQLite before it is acknowledged.
    Serve {
        /// Items to label: feedback records (rung 5), answers with `prompt_id`, `text` and
        /// `system` (rung 5's candidates) or `source` (rung 6's responses.jsonl, prompts
        /// from the prompts.jsonl beside it).
        #[arg(long)]
        items: PathBuf,
        /// The SQLite database of judgements (created if missing; reopened to continue).
        #[arg(long, default_value = "labels.sqlite")]
        db: PathBuf,
        /// Address to listen on. Anything but loopback requires --token.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Shared secret (at least 8 characters) annotators give in the link
        /// (`?token=…`, then kept in a cookie).
        #[arg(long)]
        token: Option<String>,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = rlhf_lab::label::server::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Annotators each pair gets before new pairs are opened (agreement needs
        /// pairs judged by several; 1 spreads votes over as many pairs as possible).
        #[arg(long, default_value_t = rlhf_lab::label::server::DEFAULT_OVERLAP)]
        overlap: u32,
    },
    /// Write the judgements of a database as the project's files: records.jsonl (every
    /// record), train.jsonl (comparisons) and trl/train.jsonl (prompt / chosen / rejected).
    Export {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: LabelCommand) -> Result<()> {
    match cmd {
        LabelCommand::Serve {
            items,
            db,
            bind,
            token,
            body_limit,
            overlap,
        } => {
            let config = ServerConfig {
                items,
                db,
                bind,
                token,
                body_limit,
                overlap,
            };
            serve(&config, |info| {
                println!(
                    "serving {} prompts ({} pairs) from {}; judgements go to {} ({} stored so far)",
                    info.prompts,
                    info.pairs,
                    config.items.display(),
                    config.db.display(),
                    info.stored
                );
                if config.token.is_some() {
                    println!(
                        "every request needs the token (in the link, then a cookie); give annotators: {}",
                        info.link
                    );
                }
                if !config.bind.ip().is_loopback() {
                    println!(
                        "bound to {}: reachable from other machines (use this machine's address \
                         in the link), so every request needs the token",
                        info.addr
                    );
                }
                println!("listening on {}", info.url);
                println!("open {}  (Ctrl-C stops)", info.link);
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
        }
        LabelCommand::Export { db, out } => {
            anyhow::ensure!(db.exists(), "{}: no such database", db.display());
            let db = LabelDb::open(&db)?;
            let s = export_dir(&db, &out)?;
            println!(
                "wrote {} records to {}, {} comparisons to {}, {} TRL pairs to {}",
                s.n_records,
                s.records.display(),
                s.n_comparisons,
                s.comparisons.display(),
                s.n_trl_pairs,
                s.trl.display()
            );
            Ok(())
        }
    }
}
