//! Nothing acknowledged is lost: spawn the real `rlhf-lab label serve`, let
//! simulated annotators label through HTTP, SIGKILL the server mid-load,
//! restart it on the same database, and count the judgements it acknowledged
//! (answered 303) that are not in the database. The count must be 0, and
//! every stored submission id must be stored once.
#![cfg(all(feature = "label", unix))]

mod common;

use common::scratch;
use rlhf_lab::feedback::annotators::honest_crowd;
use rlhf_lab::label::client::HttpClient;
use rlhf_lab::label::db::LabelDb;
use rlhf_lab::label::{simulate_annotators, SimConfig};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Start the binary on a free port; returns the child and its URL (read from
/// the `listening on URL` line it prints).
fn spawn_server(items: &Path, db: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(["label", "serve", "--items"])
        .arg(items)
        .arg("--db")
        .arg(db)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rlhf-lab label serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[test]
fn sigkill_during_load_loses_no_acknowledged_judgement() {
    let items = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences/responses.jsonl");
    let dir = scratch("kill");
    let db_path = dir.join("labels.sqlite");
    let (mut child, url) = spawn_server(&items, &db_path);

    // 8 annotators × up to 400 judgements: far more than happen before the kill.
    let sim = SimConfig::new(honest_crowd(8, 3), 400);
    let load_url = url.clone();
    let load = std::thread::spawn(move || simulate_annotators(&load_url, &sim).unwrap());
    // Kill once the database holds some judgements (the load is under way).
    let db = loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Ok(db) = LabelDb::open(&db_path) {
            if db.pairs().map(|p| p.len()).unwrap_or(0) >= 150 {
                break db;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server exited early"
        );
    };
    drop(db);
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    let report = load.join().unwrap();
    assert!(
        !report.errors.is_empty(),
        "the annotators should have been cut off by the kill"
    );
    let acknowledged = report.acknowledged.len();
    assert!(acknowledged >= 150, "only {acknowledged} acknowledged");

    // Restart on the same database: it serves again and has everything.
    let (mut child, url) = spawn_server(&items, &db_path);
    let mut c = HttpClient::new(&url).unwrap();
    assert_eq!(c.get("/").unwrap().status, 200);
    let db = LabelDb::open(&db_path).unwrap();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for id in db.submission_ids().unwrap() {
        *stored.entry(id).or_default() += 1;
    }
    let missing = report
        .acknowledged
        .iter()
        .filter(|a| !stored.contains_key(&a.submission_id))
        .count();
    println!(
        "kill test: {acknowledged} acknowledged before SIGKILL, {} rows after restart, {missing} acknowledged but missing",
        stored.len()
    );
    assert_eq!(missing, 0, "acknowledged judgements lost by the kill");
    assert!(
        stored.values().all(|&n| n == 1),
        "a submission stored twice"
    );
    // At most the requests in flight at the kill were stored but not acknowledged.
    assert!(stored.len() <= acknowledged + 8);
    child.kill().unwrap();
    child.wait().unwrap();
}
