//! `rlhf-lab sft --resume`: a run killed after a checkpoint and resumed ends
//! byte-identical to the uninterrupted run with the same seed; a torn
//! `checkpoint/` resumes from `checkpoint.old` and says so; `--lr` on
//! resuming is applied and announced; a different `--seed` is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rlhf-lab");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rlhf-sft-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The first 16 training and 8 validation conversations of `datasets/sft`
/// and its test split, in `dir/data`.
fn small_data(dir: &Path) -> PathBuf {
    let src = rlhf_lab::lm::sft_data::sft_dir();
    let d = dir.join("data");
    std::fs::create_dir_all(&d).unwrap();
    for (name, n) in [
        ("train.jsonl", 16),
        ("validation.jsonl", 8),
        ("test.jsonl", usize::MAX),
    ] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let head: Vec<&str> = text.lines().take(n).collect();
        std::fs::write(d.join(name), head.join("\n") + "\n").unwrap();
    }
    d
}

/// `sft` on the tiny pre-trained model with small batches, `extra` flags added.
fn sft(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/models/tiny-pretrained");
    let mut c = Command::new(BIN);
    c.args(["sft", "--model", model.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args([
            "--batch-size",
            "4",
            "--max-len",
            "64",
            "--eval-examples",
            "1",
        ])
        .args(extra);
    c
}

fn ok(mut c: Command) -> Output {
    let out = c.output().expect("run rlhf-lab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The update a checkpoint folder holds, if complete.
fn checkpoint_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("trainer_state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["step"].as_u64()
}

/// `metrics.jsonl` without the wall-clock columns.
fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_sec");
            o.remove("seconds");
            v
        })
        .collect()
}

const STEPS: [&str; 4] = ["--steps", "12", "--eval-every", "4"];

#[test]
fn killed_and_resumed_sft_equals_uninterrupted_to_the_bit() {
    let d = scratch("exact");
    let data = small_data(&d);
    let (a, b) = (d.join("a"), d.join("b"));
    ok(sft(&data, &a, &STEPS));

    // Kill the second run as soon as its first checkpoint (update 4) is complete.
    let mut child = sft(&data, &b, &STEPS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = b.join("checkpoint");
    let started = std::time::Instant::now();
    while checkpoint_step(&ckpt).is_none() && checkpoint_step(&d.join("b/checkpoint.old")).is_none()
    {
        assert!(
            started.elapsed().as_secs() < 600,
            "no checkpoint appeared in 10 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!b.join("model").exists(), "killed before the end");
    let at = checkpoint_step(&ckpt)
        .or(checkpoint_step(&d.join("b/checkpoint.old")))
        .unwrap();
    assert!(at < 12, "the run was not interrupted (checkpoint at {at})");

    let out = ok(sft(&data, &b, &[&STEPS[..], &["--resume"]].concat()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("resumed at update {at} of 12")),
        "{stdout}"
    );
    for f in ["model/model.safetensors", "behaviour.json"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between the uninterrupted and the resumed run"
        );
    }
    assert_eq!(metrics(&a), metrics(&b));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn torn_checkpoint_resumes_from_old_and_says_so_lr_applied_seed_checked() {
    let d = scratch("old");
    let data = small_data(&d);
    let out = d.join("run");
    ok(sft(&data, &out, &["--steps", "2", "--eval-every", "2"]));
    // A crash between a checkpoint swap's two renames: checkpoint.old holds
    // the complete folder, checkpoint/ is torn.
    let ckpt = out.join("checkpoint");
    let old = out.join("checkpoint.old");
    std::fs::rename(&ckpt, &old).unwrap();
    std::fs::create_dir_all(&ckpt).unwrap();

    let refused = sft(&data, &out, &["--steps", "4", "--resume", "--seed", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--seed 1 differs from the checkpoint's seed 0"),
        "{err}"
    );
    assert!(!err.contains("panicked at"), "{err}");

    let r = ok(sft(
        &data,
        &out,
        &[
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--resume",
            "--lr",
            "5e-4",
        ],
    ));
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stdout.contains(&format!("resumed at update 2 of 4 from {}", old.display()))
            && stdout.contains("is missing or incomplete"),
        "{stdout}"
    );
    assert!(
        stderr.contains("--lr 0.0005 replaces the checkpoint's peak learning rate 0.001"),
        "{stderr}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4);
    assert_eq!(state["config"]["learning_rate"], 5e-4);
    let rows = metrics(&out);
    assert_eq!(rows.len(), 5, "updates 0..=4 in one history");
    assert!(
        rows[3]["learning_rate"].as_f64().unwrap() <= 5e-4,
        "{:?}",
        rows[3]
    );
    std::fs::remove_dir_all(&d).ok();
}
