//! The sequence a notebook cell runs: start the labelling server on a
//! background thread, print the link, let simulated annotators label through
//! HTTP (a headless run), then read the database, rank the systems, and export
//! files that the project's readers take unchanged.
#![cfg(feature = "label")]

mod common;

use common::{rlhf_lab, scratch};
use rlhf_lab::feedback::aggregate::{system_matches, ItemMatches};
use rlhf_lab::feedback::annotators::honest_crowd;
use rlhf_lab::feedback::ranking::{bradley_terry, BtOptions};
use rlhf_lab::feedback::records::{comparisons, read_feedback, read_preference_pairs};
use rlhf_lab::label::db::LabelDb;
use rlhf_lab::label::export::{export_dir, to_records};
use rlhf_lab::label::{serve_in_background, simulate_annotators, ServerConfig, SimConfig};
use rlhf_lab::rlhf::preferences;
use std::collections::HashSet;
use std::path::Path;

#[test]
fn notebook_sequence_serve_simulate_rank_export() {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences");
    let dir = scratch("notebook");
    let mut config = ServerConfig::new(data_dir.join("responses.jsonl"), dir.join("labels.sqlite"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    let server = serve_in_background(&config).unwrap();
    println!("label at {}", server.link);
    assert!(server.link.starts_with("http://127.0.0.1:"));

    let data = preferences::read(&data_dir).unwrap();
    let mut sim = SimConfig::new(honest_crowd(4, 7), 25);
    sim.prompts = data.all_prompts().cloned().collect();
    let report = simulate_annotators(&server.url, &sim).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.acknowledged.len(), 100);

    // Read the database and rank, as the notebook would.
    let db = LabelDb::open(&server.db).unwrap();
    let pairs = db.pairs().unwrap();
    assert_eq!(pairs.len(), 100);
    let ids: HashSet<&str> = pairs.iter().map(|p| p.submission_id.as_str()).collect();
    for a in &report.acknowledged {
        assert!(
            ids.contains(a.submission_id.as_str()),
            "acknowledged {} is missing",
            a.submission_id
        );
    }
    let comps = comparisons(&to_records(&pairs, &[]));
    let ItemMatches { names, matches } = system_matches(&comps);
    let ratings = bradley_terry(names.len(), &matches, BtOptions::default());
    assert_eq!(ratings.len(), names.len());
    assert!(names.len() >= 3, "{names:?}");
    // Each pair goes to 3 annotators first (the default overlap), so their
    // agreement can be measured.
    let board = rlhf_lab::label::leaderboard::leaderboard(&pairs);
    let kappa = board
        .fleiss_kappa
        .expect("pairs judged by several annotators");
    assert!((-1.0..=1.0).contains(&kappa), "{kappa}");
    assert_eq!(board.consensus.len(), 4);

    // The export reads back with the project's readers: rung 5's records,
    // `feedback rank`, the reward model's labels folder, TRL pairs.
    let out = dir.join("export");
    let summary = export_dir(&db, &out).unwrap();
    assert_eq!(summary.n_comparisons, 100);
    assert_eq!(read_feedback(&summary.records).unwrap().len(), 100);
    assert_eq!(
        read_preference_pairs(&summary.trl).unwrap().len(),
        summary.n_trl_pairs
    );
    let relabelled = preferences::read(&data_dir)
        .unwrap()
        .with_labels_from(&out)
        .unwrap();
    assert_eq!(relabelled.comparisons.train.len(), 100);
    let rank = rlhf_lab(&[
        "feedback",
        "rank",
        summary.records.to_str().unwrap(),
        "--rounds",
        "20",
    ]);
    assert!(
        rank.status.success(),
        "{}",
        String::from_utf8_lossy(&rank.stderr)
    );
    let table = String::from_utf8_lossy(&rank.stdout);
    assert!(
        table.contains("rank") && table.contains(&names[0]),
        "{table}"
    );
    // The CLI export writes the same files.
    let cli_out = dir.join("cli-export");
    drop(db);
    server.stop().unwrap();
    let e = rlhf_lab(&[
        "label",
        "export",
        "--db",
        dir.join("labels.sqlite").to_str().unwrap(),
        "--out",
        cli_out.to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert_eq!(
        std::fs::read_to_string(cli_out.join("train.jsonl")).unwrap(),
        std::fs::read_to_string(out.join("train.jsonl")).unwrap()
    );
}
