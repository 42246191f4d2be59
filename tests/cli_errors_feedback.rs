//! Bad input to the feedback commands (and to every `--config` JSON) is a clear
//! error that names the file and line, or the flag and its allowed range; never
//! a panic, never silent acceptance.

use std::path::Path;

mod common;
use common::{assert_clear_error, rlhf_lab, scratch};

/// The first `n` lines of the committed preference test split.
fn test_lines(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences/test.jsonl"),
    )
    .unwrap();
    text.lines().take(n).map(str::to_string).collect()
}

/// `line` with the string field `field` set to `value`.
fn with_field(line: &str, field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[field] = serde_json::Value::String(value.into());
    v.to_string()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn comparison_of_a_system_with_itself_names_file_and_line() {
    let dir = scratch("self");
    let mut lines = test_lines(3);
    let system_a = serde_json::from_str::<serde_json::Value>(&lines[2]).unwrap()["system_a"]
        .as_str()
        .unwrap()
        .to_string();
    lines[2] = with_field(&lines[2], "system_b", &system_a);
    let file = dir.join("self.jsonl");
    write_lines(&file, &lines);
    let out = rlhf_lab(&["feedback", "rank", file.to_str().unwrap()]);
    assert_clear_error(
        &out,
        &[
            "self.jsonl:3:",
            "`system_a` and `system_b` are both",
            &format!("`{system_a}`"),
        ],
    );
    // Without the self-comparison the same file ranks fine.
    write_lines(&file, &lines[..2]);
    let ok = rlhf_lab(&["feedback", "rank", file.to_str().unwrap(), "--rounds", "5"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn unknown_system_against_the_systems_catalogue_names_file_line_and_id() {
    let dir = scratch("systems");
    let file = dir.join("s.jsonl");
    let sim = rlhf_lab(&[
        "feedback",
        "simulate",
        "--prompts",
        "3",
        "--annotators",
        "4",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let all = "expert,terse,verbose,rude,refuser,wrong,harmful";
    let ok = rlhf_lab(&[
        "feedback",
        "rank",
        file.to_str().unwrap(),
        "--rounds",
        "5",
        "--systems",
        all,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    lines[4] = with_field(&lines[4], "system_a", "gpt-9");
    write_lines(&file, &lines);
    let out = rlhf_lab(&["feedback", "rank", file.to_str().unwrap(), "--systems", all]);
    assert_clear_error(
        &out,
        &[
            "s.jsonl:5:",
            "field `system_a` is `gpt-9`",
            "not a known system",
        ],
    );
}

#[test]
fn rank_without_systems_names_the_line() {
    let dir = scratch("nosys");
    let mut lines = test_lines(3);
    lines[1] = with_field(&lines[1], "system_b", "");
    let file = dir.join("n.jsonl");
    write_lines(&file, &lines);
    let out = rlhf_lab(&["feedback", "rank", file.to_str().unwrap()]);
    assert_clear_error(&out, &["n.jsonl:2:", "`system_a` and `system_b`"]);
}

/// Pairs for the judge are checked against the preference dataset (the
/// catalogue of prompts, answers and who wrote them) before any model loads.
#[test]
fn made_up_answer_or_system_against_the_dataset_names_file_line_and_id() {
    let dir = scratch("catalogue");
    let out_file = dir.join("judged.jsonl");
    let run = |lines: &[String], name: &str| {
        let file = dir.join(name);
        write_lines(&file, lines);
        rlhf_lab(&[
            "feedback",
            "judge",
            "--pairs",
            file.to_str().unwrap(),
            "--judge",
            "datasets/models/does-not-exist",
            "--out",
            out_file.to_str().unwrap(),
        ])
    };
    let mut lines = test_lines(4);
    lines[3] = with_field(&lines[3], "system_b", "gpt-9");
    assert_clear_error(
        &run(&lines, "system.jsonl"),
        &[
            "system.jsonl:4:",
            "field `system_b` is `gpt-9`",
            "not a system that wrote",
        ],
    );
    let mut lines = test_lines(4);
    lines[1] = with_field(&lines[1], "response_a", "A made-up answer.");
    assert_clear_error(
        &run(&lines, "answer.jsonl"),
        &[
            "answer.jsonl:2:",
            "field `response_a` is not an answer to prompt",
        ],
    );
    let mut lines = test_lines(2);
    lines[0] = with_field(&lines[0], "prompt_id", "zzz999");
    assert_clear_error(
        &run(&lines, "prompt.jsonl"),
        &["prompt.jsonl:1:", "field `prompt_id` is `zzz999`"],
    );
    // The untouched lines pass the checks and fail only later, at the missing model.
    let fine = run(&test_lines(4), "fine.jsonl");
    assert_clear_error(&fine, &["does-not-exist"]);
    assert!(!String::from_utf8_lossy(&fine.stderr).contains("fine.jsonl:"));
}

#[test]
fn length_bias_must_be_finite() {
    for bad in ["NaN", "inf", "-inf"] {
        let out = rlhf_lab(&["feedback", "simulate", "--length-bias", bad]);
        assert_clear_error(&out, &["--length-bias", "must be a finite number"]);
    }
}

#[test]
fn rounds_must_be_at_least_one() {
    let out = rlhf_lab(&[
        "feedback",
        "rank",
        "datasets/preferences/test.jsonl",
        "--rounds",
        "0",
    ]);
    assert_clear_error(&out, &["--rounds", "must be at least 1"]);
}

#[test]
fn counts_must_be_at_least_one() {
    for flag in [
        "--prompts",
        "--annotators",
        "--pairs-per-prompt",
        "--per-pair",
    ] {
        let out = rlhf_lab(&["feedback", "simulate", flag, "0"]);
        assert_clear_error(&out, &[flag, "must be at least 1"]);
    }
    let out = rlhf_lab(&["feedback", "simulate", "--prompts=-3"]);
    assert_clear_error(&out, &["--prompts"]);
    let out = rlhf_lab(&[
        "feedback",
        "judge",
        "--pairs",
        "datasets/preferences/test.jsonl",
        "--limit",
        "0",
        "--out",
        "/dev/null",
    ]);
    assert_clear_error(&out, &["--limit", "must be at least 1"]);
}

#[test]
fn troll_share_must_be_a_share() {
    for bad in ["1.5", "-0.1", "NaN"] {
        let out = rlhf_lab(&["feedback", "simulate", "--troll-share", bad]);
        assert_clear_error(&out, &["--troll-share"]);
    }
    let out = rlhf_lab(&["feedback", "simulate", "--troll-share", "1.5"]);
    assert_clear_error(&out, &["must be a share from 0 to 1"]);
}

#[test]
fn per_pair_above_the_crowd_is_an_error_not_a_silent_cap() {
    let out = rlhf_lab(&[
        "feedback",
        "simulate",
        "--annotators",
        "4",
        "--per-pair",
        "5",
        "--out",
        "/dev/null",
    ]);
    assert_clear_error(
        &out,
        &[
            "--per-pair is 5",
            "at most --annotators (4)",
            "distinct annotators",
        ],
    );
}

/// `read_config` (dpo, rm train, ppo, …): a config that is valid JSON but not
/// an object (`[]` used to train with every default) names the file.
#[test]
fn config_that_is_not_an_object_names_the_file() {
    let dir = scratch("config");
    for (name, text, kind) in [
        ("array.json", "[]", "an array"),
        ("number.json", "3", "a number"),
        ("string.json", "\"lr\"", "a string"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        for cmd in [
            vec!["dpo", "--config", p],
            vec!["rm", "train", "--config", p],
            vec!["ppo", "--config", p],
        ] {
            let out = rlhf_lab(&cmd);
            assert_clear_error(&out, &[name, "must be a JSON object", kind]);
        }
    }
}
