//! Load benchmark of the labelling server: 50 simulated annotators, each on
//! its own thread and connection, post 200 judgements each through HTTP
//! (`GET /api/arena/next`, `POST /arena`) against a local server on a free
//! port. Then every acknowledged judgement must be in the database exactly
//! once. Prints throughput and the latency percentiles of `POST /arena`
//! (which includes the committed, fsynced SQLite transaction).
//!
//! `cargo bench --bench label_load` (`-- ANNOTATORS JUDGEMENTS` to change the load).

use rlhf_lab::feedback::annotators::honest_crowd;
use rlhf_lab::feedback::ranking::percentile;
use rlhf_lab::label::db::LabelDb;
use rlhf_lab::label::{serve_in_background, simulate_annotators, ServerConfig, SimConfig};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let annotators = args.first().copied().unwrap_or(50);
    let per_annotator = args.get(1).copied().unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("rlhf-lab-label-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let items = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences/responses.jsonl");
    let mut config = ServerConfig::new(items, dir.join("labels.sqlite"));
    config.bind = "127.0.0.1:0".parse()?;
    let server = serve_in_background(&config)?;
    let sim = SimConfig::new(honest_crowd(annotators, 11), per_annotator);
    let t0 = Instant::now();
    let report = simulate_annotators(&server.url, &sim)?;
    let seconds = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.errors.is_empty(),
        "annotators failed: {:?}",
        report.errors
    );
    let n = report.acknowledged.len();
    anyhow::ensure!(
        n == annotators * per_annotator,
        "{n} judgements acknowledged, expected {}",
        annotators * per_annotator
    );

    let db = LabelDb::open(&server.db)?;
    let mut stored: HashMap<String, usize> = HashMap::new();
    for id in db.submission_ids()? {
        *stored.entry(id).or_default() += 1;
    }
    let missing = report
        .acknowledged
        .iter()
        .filter(|a| stored.get(&a.submission_id) != Some(&1))
        .count();
    anyhow::ensure!(
        missing == 0,
        "{missing} acknowledged judgements not stored exactly once"
    );
    anyhow::ensure!(
        stored.len() == n,
        "{} rows for {n} acknowledged judgements",
        stored.len()
    );

    let mut ms: Vec<f64> = report
        .acknowledged
        .iter()
        .map(|a| a.latency.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "label_load: {annotators} annotators x {per_annotator} judgements = {n} in {seconds:.1} s: \
         {:.0} judgements/s (each also fetched its next pair)",
        n as f64 / seconds
    );
    println!(
        "POST /arena latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&ms, 0.50),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
    println!("all {n} acknowledged judgements are in the database exactly once");
    server.stop()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
