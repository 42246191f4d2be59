//! Issue 15 for the gridworld commands: every bad input is a clear error (naming
//! the file, the field or the flag, and for limits the maximum and why) with a
//! non-zero exit and no panic; `gridworld train` survives a SIGKILL and
//! `--resume` ends byte-identical to an uninterrupted run.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{assert_clear_error, rlhf_lab, scratch};

/// The command failed with exit code 1 (an error, not clap's usage exit 2),
/// without a panic; returns its stderr.
fn failed(out: &Output) -> String {
    let err = assert_clear_error(out, &[]);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rollout_size_beyond_the_cap_or_overflowing_is_an_error_naming_the_field() {
    let dir = scratch("rollout");
    for (name, num_envs) in [
        ("max.json", "18446744073709551615"),
        ("huge.json", "100000000"),
    ] {
        let cfg = dir.join(name);
        std::fs::write(&cfg, format!("{{\"num_envs\": {num_envs}}}")).unwrap();
        let out = rlhf_lab(&[
            "gridworld",
            "train",
            "--map",
            "two_cells",
            "--config",
            s(&cfg),
            "--out",
            s(&dir.join("run")),
        ]);
        let err = failed(&out);
        assert!(
            err.contains(name)
                && err.contains("`num_envs`")
                && err.contains("the maximum is 4194304"),
            "{err}"
        );
    }
    assert!(!dir.join("run").exists(), "nothing is written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_config_that_is_not_a_json_object_is_an_error_naming_the_file() {
    let dir = scratch("array");
    let cfg = dir.join("list.json");
    std::fs::write(&cfg, "[]").unwrap();
    let out = rlhf_lab(&[
        "gridworld",
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.join("run")),
    ]);
    let err = failed(&out);
    assert!(
        err.contains("list.json") && err.contains("must be a JSON object") && err.contains("array"),
        "{err}"
    );
    assert!(!dir.join("run").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_stops_with_the_metric_and_iteration_and_writes_no_results() {
    let dir = scratch("diverge");
    let cfg = dir.join("lr.json");
    std::fs::write(&cfg, r#"{"learning_rate": 1e6}"#).unwrap();
    let run = dir.join("run");
    let out = rlhf_lab(&[
        "gridworld",
        "train",
        "--map",
        "dragon",
        "--config",
        s(&cfg),
        "--total-timesteps",
        "5120",
        "--out",
        s(&run),
    ]);
    let err = failed(&out);
    assert!(
        err.contains("training diverged at iteration 1")
            && err.contains("value loss")
            && err.contains("exceeds its bound"),
        "{err}"
    );
    for name in ["summary.json", "metrics.csv", "learning_curve.svg"] {
        assert!(!run.join(name).exists(), "{name} was written");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn svg_to_png_refuses_a_canvas_beyond_the_pixel_cap() {
    let dir = scratch("svg");
    let svg = dir.join("huge.svg");
    std::fs::write(
        &svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>"#,
    )
    .unwrap();
    let err = failed(&rlhf_lab(&["svg-to-png", s(&svg)]));
    assert!(
        err.contains("huge.svg")
            && err.contains("100000×100000")
            && err.contains("capped at 67108864 pixels"),
        "{err}"
    );
    assert!(!dir.join("huge.png").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A grid of `rows`×`cols` cells: S and +1 in the top-left corner, the rest empty.
fn grid_map(rows: usize, cols: usize) -> String {
    let mut t = String::with_capacity(rows * cols * 2 + rows);
    for r in 0..rows {
        for c in 0..cols {
            t.push_str(match (r, c) {
                (0, 0) => "S ",
                (0, 1) => "+1 ",
                _ => ". ",
            });
        }
        t.push('\n');
    }
    t
}

#[test]
fn solve_refuses_maps_beyond_the_cell_limit() {
    let dir = scratch("bigmap");
    for (name, rows, cols) in [("square.map", 2000, 2000), ("corridor.map", 1, 1_000_002)] {
        let map = dir.join(name);
        std::fs::write(&map, grid_map(rows, cols)).unwrap();
        let err = failed(&rlhf_lab(&["gridworld", "solve", "--map", s(&map)]));
        assert!(
            err.contains(name)
                && err.contains(&format!("{rows}×{cols}"))
                && err.contains("limit of 10000"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn solve_reports_non_convergence_instead_of_printing_false_values() {
    let dir = scratch("pocket");
    // γ = 1 and a bottom row walled off from every exit: its value has no limit.
    let map = dir.join("pocket.map");
    std::fs::write(
        &map,
        "gamma = 1\nstep_reward = -0.04\nslip = 0\nS . +1\n# # #\n. . .\n",
    )
    .unwrap();
    for method in ["value", "policy"] {
        let out = rlhf_lab(&["gridworld", "solve", "--map", s(&map), "--method", method]);
        let err = failed(&out);
        assert!(
            err.contains("pocket.map")
                && err.contains("did not converge")
                && err.contains("Bellman residual is 4.000e-2")
                && err.contains("100000 sweeps"),
            "{method}: {err}"
        );
        assert!(out.stdout.is_empty(), "no values printed");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn figure_extension_must_be_svg_or_png() {
    let dir = scratch("figure");
    let jpg = dir.join("x.jpg");
    let err = failed(&rlhf_lab(&[
        "gridworld",
        "solve",
        "--map",
        "aima",
        "--figure",
        s(&jpg),
    ]));
    assert!(
        err.contains("--figure") && err.contains("x.jpg") && err.contains(".svg or .png"),
        "{err}"
    );
    assert!(!jpg.exists(), "nothing written under a .jpg name");
    let bare = dir.join("noext");
    let err = failed(&rlhf_lab(&[
        "gridworld",
        "solve",
        "--map",
        "aima",
        "--figure",
        s(&bare),
    ]));
    assert!(err.contains("--figure") && err.contains("(none)"), "{err}");
    for (name, magic) in [("x.png", &b"\x89PNG"[..]), ("x.svg", &b"<svg"[..])] {
        let path = dir.join(name);
        let out = rlhf_lab(&["gridworld", "solve", "--map", "aima", "--figure", s(&path)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(magic), "{name} has the wrong format");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The deterministic part of a run's metrics (JSON Lines without the wall-clock speed).
fn metrics_without_speed(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("steps_per_second");
            v
        })
        .collect()
}

#[test]
fn a_killed_run_resumed_equals_an_uninterrupted_one() {
    let dir = scratch("resume");
    let (whole, killed) = (dir.join("whole"), dir.join("killed"));
    let args = |out: &Path| -> Vec<String> {
        [
            "gridworld",
            "train",
            "--map",
            "dragon",
            "--seed",
            "3",
            "--total-timesteps",
            "51200",
            "--checkpoint-every",
            "2",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(args(&whole))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGKILL as soon as the first checkpoint is on disk.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = killed.join("checkpoint/trainer_state.json");
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    assert!(
        !killed.join("summary.json").exists(),
        "killed before the end"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    let at = state["iteration"].as_u64().unwrap();
    assert!((2..100).contains(&at), "checkpoint at iteration {at}");

    let out = rlhf_lab(&["gridworld", "train", "--resume", "--out", s(&killed)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("resumed at iteration {at}")));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let bytes = |d: &Path| std::fs::read(d.join("checkpoint").join(file)).unwrap();
        assert!(
            bytes(&whole) == bytes(&killed),
            "{file} differs after resuming"
        );
    }
    assert_eq!(
        metrics_without_speed(&whole.join("metrics.jsonl")),
        metrics_without_speed(&killed.join("metrics.jsonl"))
    );
    let report = |d: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        (v["report"].clone(), v["env_steps"].clone())
    };
    assert_eq!(report(&whole), report(&killed));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_without_a_checkpoint_and_with_a_new_seed_are_errors() {
    let dir = scratch("noresume");
    let err = failed(&rlhf_lab(&[
        "gridworld",
        "train",
        "--resume",
        "--out",
        s(&dir.join("empty")),
    ]));
    assert!(
        err.contains("--resume")
            && err.contains("empty/checkpoint")
            && err.contains("trainer_state.json"),
        "{err}"
    );
    // A seed cannot change a resumed run (clap's usage error, exit 2).
    let out = rlhf_lab(&["gridworld", "train", "--resume", "--seed", "4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--seed") && !err.contains("panicked at"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
