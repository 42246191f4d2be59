//! Every result reproducible to the bit: each CLI command that is fast on tiny
//! inputs runs twice, in two fresh folders, with the same seed, and every file
//! it writes (and its standard output, where that holds no timing) must be
//! byte for byte the same.
//!
//! Wall-clock measurements are the one exception: in JSON, JSON Lines and CSV
//! files, keys and columns whose name contains `second` or `per_sec`
//! (`wall_seconds`, `solved_at_seconds`, `steps_per_second`, `tokens_per_sec`,
//! `seconds_per_1000_labels`, …) are removed before comparing. Everything
//! else, including simulated session clocks such as a comparison's `time`, must match.
//!
//! Covered: `feedback simulate`, `feedback rank` (elo, bt, robust; JSON and
//! table), `feedback judge` (tiny model), `gridworld solve`, `gridworld train`
//! (metrics, summary, agent checkpoint, figures), `lm corpus`, `lm sample`,
//! `sft-data`, `rm data`, `rm score`, `best-of-n`. Not covered (too slow for two
//! runs here): `lm pretrain`, `sft`, `rm train`, `ppo`, `dpo`.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `datasets/...` of this repository as an absolute path string.
fn repo(rel: &str) -> String {
    Path::new(ROOT).join(rel).display().to_string()
}

/// Is this JSON key or CSV column a wall-clock measurement?
fn is_wall_clock(key: &str) -> bool {
    key.contains("second") || key.contains("per_sec")
}

/// `v` without wall-clock keys, at any depth.
fn strip_wall_clock(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !is_wall_clock(k));
            m.values_mut().for_each(strip_wall_clock);
        }
        serde_json::Value::Array(xs) => xs.iter_mut().for_each(strip_wall_clock),
        _ => {}
    }
}

/// A JSON text without wall-clock keys (unchanged if it is not JSON).
fn normalise_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            strip_wall_clock(&mut v);
            v.to_string()
        }
        Err(_) => text.to_string(),
    }
}

/// A CSV text without wall-clock columns.
fn normalise_csv(text: &str) -> String {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let keep: Vec<bool> = header.split(',').map(|c| !is_wall_clock(c)).collect();
    std::iter::once(header)
        .chain(lines)
        .map(|l| {
            l.split(',')
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file's bytes as compared: wall-clock fields removed from JSON, JSONL and CSV.
fn comparable(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        return bytes;
    };
    match ext {
        "json" => normalise_json(&text).into_bytes(),
        "jsonl" => text
            .lines()
            .map(normalise_json)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        "csv" => normalise_csv(&text).into_bytes(),
        _ => bytes,
    }
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A fresh empty folder.
fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlhf-repro-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `rlhf-lab` in `dir`; its standard output is saved as `dir/<stdout_to>` when given.
fn run_in(dir: &Path, args: &[String], stdout_to: Option<&str>) {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run rlhf-lab");
    assert!(
        out.status.success(),
        "rlhf-lab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(name) = stdout_to {
        std::fs::write(dir.join(name), &out.stdout).unwrap();
    }
}

/// A command and the file its standard output is saved to (`None`: not
/// compared, e.g. it prints a duration).
type Step = (Vec<String>, Option<&'static str>);

/// Run `steps` (commands, each with where to keep its stdout) in two fresh
/// folders after `setup`, and assert that both hold the same files with the
/// same comparable bytes. Returns how many files were compared.
fn twice(name: &str, setup: impl Fn(&Path), steps: &[Step]) -> usize {
    let dirs = [fresh(&format!("{name}-a")), fresh(&format!("{name}-b"))];
    for d in &dirs {
        setup(d);
        for (args, stdout_to) in steps {
            run_in(d, args, *stdout_to);
        }
    }
    let (a, b) = (files(&dirs[0]), files(&dirs[1]));
    assert_eq!(a, b, "{name}: the two runs wrote different files");
    assert!(!a.is_empty(), "{name}: nothing written");
    for f in &a {
        assert!(
            comparable(&dirs[0].join(f)) == comparable(&dirs[1].join(f)),
            "{name}: {} differs between two runs with the same seed",
            f.display()
        );
    }
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
    a.len()
}

fn args(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// A tiny preference dataset: the committed prompts and answers, and the first
/// 20 test comparisons as every split.
fn tiny_preferences(dir: &Path) {
    let d = dir.join("prefs");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["prompts.jsonl", "responses.jsonl"] {
        std::fs::copy(repo(&format!("datasets/preferences/{f}")), d.join(f)).unwrap();
    }
    let test = std::fs::read_to_string(repo("datasets/preferences/test.jsonl")).unwrap();
    let head: String = test.lines().take(20).map(|l| format!("{l}\n")).collect();
    for split in ["train", "validation", "test"] {
        std::fs::write(d.join(format!("{split}.jsonl")), &head).unwrap();
    }
}

#[test]
fn is_wall_clock_strips_only_timings() {
    let mut v = serde_json::json!({"wall_seconds": 1.5, "time": 3, "m": [{"steps_per_second": 9, "loss": 1}]});
    strip_wall_clock(&mut v);
    assert_eq!(v, serde_json::json!({"time": 3, "m": [{"loss": 1}]}));
    assert_eq!(normalise_csv("a,tokens_per_sec,b\n1,2,3"), "a,b\n1,3");
}

#[test]
fn feedback_simulate_and_rank_are_reproducible() {
    let mut steps: Vec<Step> = vec![(
        args(&[
            "feedback",
            "simulate",
            "--prompts",
            "20",
            "--annotators",
            "6",
            "--troll-share",
            "0.2",
            "--troll",
            "random",
            "--length-bias",
            "0.5",
            "--seed",
            "5",
            "--out",
            "comps.jsonl",
        ]),
        Some("simulate.txt"),
    )];
    // The simulated session, and the committed crowd's 2,400 comparisons (with
    // trolls, which robust BT down-weights), by every method, as JSON and as a table.
    let train = repo("datasets/preferences/train.jsonl");
    let outputs: [[[&str; 2]; 3]; 2] = [
        [
            ["sim-elo.json", "sim-elo.txt"],
            ["sim-bt.json", "sim-bt.txt"],
            ["sim-robust.json", "sim-robust.txt"],
        ],
        [
            ["crowd-elo.json", "crowd-elo.txt"],
            ["crowd-bt.json", "crowd-bt.txt"],
            ["crowd-robust.json", "crowd-robust.txt"],
        ],
    ];
    for (file, names) in ["comps.jsonl".to_string(), train].iter().zip(outputs) {
        for (method, [json_out, table_out]) in ["elo", "bt", "robust"].into_iter().zip(names) {
            let rank = args(&[
                "feedback", "rank", file, "--method", method, "--rounds", "20",
            ]);
            let mut json = rank.clone();
            json.push("--json".into());
            steps.push((json, Some(json_out)));
            steps.push((rank, Some(table_out)));
        }
    }
    assert_eq!(twice("feedback", |_| {}, &steps), 14);
}

#[test]
fn gridworld_solve_and_train_are_reproducible() {
    twice(
        "gw-solve",
        |_| {},
        &[(
            args(&["gridworld", "solve", "--map", "dragon", "--json"]),
            Some("stdout.txt"),
        )],
    );
    let n = twice(
        "gw-train",
        |_| {},
        &[(
            args(&[
                "gridworld",
                "train",
                "--map",
                "dragon",
                "--total-timesteps",
                "2000",
                "--seed",
                "1",
                "--out",
                "gw",
            ]),
            None,
        )],
    );
    assert!(n >= 8, "metrics, summary, figures and the agent: {n} files");
}

#[test]
fn data_writers_are_reproducible() {
    twice(
        "corpus",
        |_| {},
        &[(
            args(&["lm", "corpus", "--documents", "50", "--out", "corpus"]),
            Some("stdout.txt"),
        )],
    );
    twice(
        "sft-data",
        |_| {},
        &[(
            args(&["sft-data", "--per-kind", "5", "--out", "sft"]),
            Some("stdout.txt"),
        )],
    );
    twice(
        "rm-data",
        |d| {
            std::fs::write(
                d.join("config.json"),
                r#"{"prompts": {"train": 2, "validation": 1, "test": 1}, "max_new_tokens": 8}"#,
            )
            .unwrap();
        },
        &[(
            vec![
                "rm".into(),
                "data".into(),
                "--model".into(),
                repo("datasets/models/tiny-sft"),
                "--config".into(),
                "config.json".into(),
                "--out".into(),
                "prefs".into(),
            ],
            None,
        )],
    );
}

#[test]
fn models_sample_score_and_judge_reproducibly() {
    let tiny_sft = repo("datasets/models/tiny-sft");
    let tiny_rm = repo("datasets/models/tiny-rm");
    twice(
        "lm-sample",
        |_| {},
        &[(
            vec![
                "lm".into(),
                "sample".into(),
                "--model".into(),
                tiny_sft.clone(),
                "--prompt".into(),
                "Tell me about Zoe's pet.".into(),
                "--chat".into(),
                "--seed".into(),
                "3".into(),
                "--n".into(),
                "3".into(),
                "--temperature".into(),
                "1.0".into(),
                "--max-new-tokens".into(),
                "16".into(),
            ],
            Some("stdout.txt"),
        )],
    );
    twice(
        "rm-score",
        tiny_preferences,
        &[(
            vec![
                "rm".into(),
                "score".into(),
                "--model".into(),
                tiny_rm.clone(),
                "--data".into(),
                "prefs/test.jsonl".into(),
                "--json".into(),
            ],
            Some("stdout.txt"),
        )],
    );
    twice(
        "judge",
        tiny_preferences,
        &[(
            vec![
                "feedback".into(),
                "judge".into(),
                "--judge".into(),
                tiny_sft.clone(),
                "--pairs".into(),
                "prefs/test.jsonl".into(),
                "--data".into(),
                "prefs".into(),
                "--limit".into(),
                "6".into(),
                "--out".into(),
                "judged/labels.jsonl".into(),
            ],
            None,
        )],
    );
    twice(
        "best-of-n",
        |_| {},
        &[(
            vec![
                "best-of-n".into(),
                "--policy".into(),
                tiny_sft,
                "--reward-model".into(),
                tiny_rm,
                "--data".into(),
                repo("datasets/preferences"),
                "--n".into(),
                "2".into(),
                "--seed".into(),
                "4".into(),
                "--json".into(),
            ],
            Some("stdout.txt"),
        )],
    );
}
