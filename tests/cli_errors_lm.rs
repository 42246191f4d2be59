//! Bad input to the language-model commands (`lm pretrain`, `lm sample`,
//! `sft`, `rm train`, `dpo`, `ppo`) is a clear error naming the file, line,
//! field or flag — never a panic — and training stops name a checkpoint that
//! exists.

use candle_core::{DType, Device, Tensor};
use rlhf_lab::lm::sft::SftDataset;
use rlhf_lab::lm::sft_data;
use rlhf_lab::lm::{LanguageModel, NextTokenLoss, RunOptions, TrainConfig, Trainer};
use rlhf_lab::splits::Splits;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_clear_error, rlhf_lab, scratch};

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/models")
        .join(name)
}

/// A copy of `datasets/models/tiny-sft` in `dir` whose `config.json` has
/// `field` set to `value`.
fn tiny_with_config(dir: &Path, field: &str, value: serde_json::Value) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in std::fs::read_dir(tiny("tiny-sft")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, m.join(f.file_name().unwrap())).unwrap();
    }
    let path = m.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg[field] = value;
    std::fs::write(&path, cfg.to_string()).unwrap();
    m
}

fn sample(model: &Path) -> Output {
    rlhf_lab(&[
        "lm",
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Mia has a",
        "--max-new-tokens",
        "4",
    ])
}

#[test]
fn zero_attention_heads_is_an_error_naming_file_and_field() {
    let d = scratch("heads0");
    let m = tiny_with_config(&d, "num_attention_heads", 0.into());
    assert_clear_error(
        &sample(&m),
        &["config.json", "`num_attention_heads` must be positive"],
    );
}

#[test]
fn every_bad_config_field_is_named() {
    let d = scratch("badcfg");
    let cases: [(&str, serde_json::Value, &str); 6] = [
        (
            "num_key_value_heads",
            0.into(),
            "`num_key_value_heads` must be positive",
        ),
        (
            "num_key_value_heads",
            3.into(),
            "multiple of `num_key_value_heads`",
        ),
        (
            "hidden_size",
            130.into(),
            "`hidden_size` (130) must be a multiple",
        ),
        (
            "num_hidden_layers",
            0.into(),
            "`num_hidden_layers` must be positive",
        ),
        ("vocab_size", 0.into(), "`vocab_size` must be positive"),
        (
            "rms_norm_eps",
            (-1.0).into(),
            "`rms_norm_eps` must be a positive finite number",
        ),
    ];
    for (i, (field, value, want)) in cases.into_iter().enumerate() {
        let m = tiny_with_config(&d.join(i.to_string()), field, value);
        assert_clear_error(&sample(&m), &["config.json", want]);
    }
}

#[test]
fn zero_batch_size_steps_and_scale_name_the_flag() {
    let d = scratch("zeros");
    let out = d.join("out");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["lm", "pretrain", "--batch-size", "0", "--out", o],
            "--batch-size",
        ),
        (&["lm", "pretrain", "--steps", "0", "--out", o], "--steps"),
        (&["lm", "pretrain", "--scale", "0", "--out", o], "--scale"),
        (
            &["sft", "--model", "x", "--batch-size", "0", "--out", o],
            "--batch-size",
        ),
        (
            &["sft", "--model", "x", "--steps", "0", "--out", o],
            "--steps",
        ),
    ];
    for (args, flag) in cases {
        let e = assert_clear_error(&rlhf_lab(args), &[flag, "must be at least 1"]);
        assert!(!e.contains("chunk size"), "{e}");
    }
    assert!(!out.exists(), "nothing written for a refused command");
}

/// A copy of tiny-sft whose weight `name` holds one `bad` value.
fn tiny_with_bad_weight(dir: &Path, name: &str, bad: f32) -> PathBuf {
    let m = tiny_with_config(dir, "vocab_size", 1147.into());
    let path = m.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[3] = bad;
    let bad = Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), bad);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    m
}

#[test]
fn nan_weights_are_refused_on_load_naming_file_and_tensor() {
    let d = scratch("nanw");
    for (i, bad) in [f32::NAN, f32::INFINITY].into_iter().enumerate() {
        let m = tiny_with_bad_weight(&d.join(i.to_string()), "model.norm.weight", bad);
        assert_clear_error(
            &sample(&m),
            &[
                "model.safetensors",
                "`model.norm.weight`",
                "NaN or infinite",
            ],
        );
    }
}

#[test]
fn tokenizer_larger_than_vocab_is_refused_naming_both_files_and_sizes() {
    let d = scratch("tokvocab");
    let m = tiny_with_config(&d, "vocab_size", 1000.into());
    assert_clear_error(
        &sample(&m),
        &[
            "tokenizer.json has 1147 tokens",
            "config.json",
            "`vocab_size` is 1000",
        ],
    );
}

/// A small SFT data folder: the first `n` training and 8 validation
/// conversations of `datasets/sft`, and its whole test split.
fn small_sft_data(dir: &Path, n: usize) -> PathBuf {
    let src = sft_data::sft_dir();
    let d = dir.join("data");
    std::fs::create_dir_all(&d).unwrap();
    for (name, lines) in [
        ("train.jsonl", n),
        ("validation.jsonl", 8),
        ("test.jsonl", usize::MAX),
    ] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let head: Vec<&str> = text.lines().take(lines).collect();
        std::fs::write(d.join(name), head.join("\n") + "\n").unwrap();
    }
    d
}

#[test]
fn sft_records_with_unknown_fields_or_kinds_name_file_line_and_field() {
    let d = scratch("sftrec");
    let data = small_sft_data(&d, 4);
    let good = std::fs::read_to_string(data.join("train.jsonl")).unwrap();
    let cases = [
        (
            r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}],"kind":"fact","knd":"x"}"#,
            "unknown field `knd`",
        ),
        (
            r#"{"messages":[{"role":"user","content":"Hi","nmae":"x"},{"role":"assistant","content":"Hello"}],"kind":"fact"}"#,
            "unknown field `nmae`",
        ),
        (
            r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}],"kind":"poetry"}"#,
            "field `kind` is `poetry`",
        ),
    ];
    for (line, want) in cases {
        std::fs::write(data.join("train.jsonl"), format!("{good}{line}\n")).unwrap();
        let out = rlhf_lab(&[
            "sft",
            "--model",
            tiny("tiny-pretrained").to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            d.join("out").to_str().unwrap(),
        ]);
        assert_clear_error(&out, &["train.jsonl:5:", want]);
    }
}

#[test]
fn unwritable_output_folder_fails_before_training() {
    let d = scratch("unwritable");
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("sub");
    let o = out.to_str().unwrap();
    let pretrained = tiny("tiny-pretrained");
    let cases: [Vec<&str>; 6] = [
        vec!["lm", "pretrain", "--out", o],
        vec!["gridworld", "train", "--out", o],
        vec!["sft", "--model", pretrained.to_str().unwrap(), "--out", o],
        vec!["rm", "train", "--out", o],
        vec!["dpo", "--out", o],
        vec!["ppo", "--out", o],
    ];
    for args in cases {
        let r = rlhf_lab(&args);
        assert_clear_error(&r, &["output folder", "file/sub", "cannot be created"]);
        let stdout = String::from_utf8_lossy(&r.stdout);
        // Nothing printed: no progress, no training step, before the error.
        assert!(
            stdout.is_empty(),
            "{args:?} printed before failing: {stdout}"
        );
    }
}

/// The tiny pre-trained model, an SFT dataset of 8 conversations and a
/// trainer with checkpoints in `dir/checkpoint`.
fn tiny_sft_trainer(
    dir: &Path,
) -> (
    LanguageModel,
    SftDataset,
    Trainer<NextTokenLoss>,
    RunOptions,
) {
    let lm = LanguageModel::load(&tiny("tiny-pretrained"), &Device::Cpu, DType::F32).unwrap();
    let Splits {
        train,
        validation: valid,
        ..
    } = sft_data::read_splits(&small_sft_data(dir, 8)).unwrap();
    let data = SftDataset::new(&lm.tokenizer, &train, &valid, 4, 64, 0).unwrap();
    let config = TrainConfig {
        steps: 4,
        eval_every: 2,
        warmup_steps: 0,
        ..TrainConfig::default()
    };
    let t = Trainer::new(NextTokenLoss::new(&lm), config).unwrap();
    let opts = RunOptions {
        checkpoint_dir: Some(dir.join("checkpoint")),
        ..Default::default()
    };
    (lm, data, t, opts)
}

/// NaN before the first checkpoint of this run: the stop says no checkpoint
/// was written, even if a stale `checkpoint/` of an earlier run is there,
/// and a NaN held-out loss stops the run too.
#[test]
fn nan_before_first_checkpoint_names_no_stale_checkpoint() {
    let d = scratch("nanstop");
    std::fs::create_dir_all(d.join("checkpoint")).unwrap();
    std::fs::write(d.join("checkpoint/trainer_state.json"), "{}").unwrap();
    let (lm, data, mut t, opts) = tiny_sft_trainer(&d);
    let (_, var) = lm.vars().into_iter().next().unwrap();
    var.set(&Tensor::full(f32::NAN, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
    let err = format!("{:#}", t.train(&data, &opts).unwrap_err());
    assert!(
        err.contains("evaluation loss became NaN at update 0"),
        "{err}"
    );
    assert!(err.contains("no checkpoint was written"), "{err}");
    assert!(!err.contains("last good checkpoint"), "{err}");
}
