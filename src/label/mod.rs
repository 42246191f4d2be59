//! A labelling web page: people (or simulated annotators) judge answers in the
//! browser, and every judgement lands in SQLite, ready to export as the
//! project's feedback records and as TRL pairs. `rlhf-lab label serve` and
//! `rlhf-lab label export` are its command-line face.
//!
//! | module | job |
//! |---|---|
//! | [`items`] | what to label: prompts and candidate answers from a JSONL the project writes |
//! | [`db`] | the SQLite store: WAL, one transaction per judgement, idempotent by submission id |
//! | [`schedule`] | the next unjudged pair for an annotator, balanced across items |
//! | [`escape`] | HTML escaping (answers are hostile model output) |
//! | [`auth`] | shared-secret token, CSRF tokens, cookies, names |
//! | [`pages`] | the server-rendered HTML |
//! | [`leaderboard`] | Elo and Bradley–Terry with bootstrap intervals, agreement, the figure |
//! | [`export`] | the database as records JSONL and TRL JSONL |
//! | [`routes`] | the HTTP routes and their checks (axum) |
//! | [`server`] | starting it: foreground (CLI) or background thread (notebooks) |
//! | [`client`] | a tiny blocking HTTP client |
//! | [`sim`] | simulated annotators posting through the HTTP endpoints |
//!
//! From a notebook:
//!
//! ```no_run
//! use rlhf_lab::label::{serve_in_background, simulate_annotators, ServerConfig, SimConfig};
//! use rlhf_lab::feedback::annotators::honest_crowd;
//! # fn main() -> anyhow::Result<()> {
//! let mut config = ServerConfig::new("datasets/preferences/responses.jsonl", "labels.sqlite");
//! config.bind = "127.0.0.1:0".parse()?; // any free port
//! let server = serve_in_background(&config)?;
//! println!("label at {}", server.link);
//! let report = simulate_annotators(&server.url, &SimConfig::new(honest_crowd(5, 0), 20))?;
//! println!("{} judgements acknowledged", report.acknowledged.len());
//! let records = rlhf_lab::label::export::to_records(
//!     &rlhf_lab::label::db::LabelDb::open(&server.db)?.pairs()?, &[]);
//! # Ok(()) }
//! ```
//!
//! Behind the `label` cargo feature (on by default): axum, tokio, rusqlite.

pub mod auth;
pub mod client;
pub mod db;
pub mod escape;
pub mod export;
pub mod items;
pub mod leaderboard;
pub mod pages;
pub mod routes;
pub mod schedule;
pub mod server;
pub mod sim;

pub use server::{serve, serve_in_background, ServerConfig, ServerHandle, ServerInfo};
pub use sim::{simulate_annotators, SimConfig, SimReport};
