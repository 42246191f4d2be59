//! Rung 8a: low-rank adapters on the tiny SFT model. At initialisation (B = 0)
//! the adapted model computes exactly what the base does; with adapters off it
//! *is* the base, bit for bit; merged and unmerged forwards agree; only A and B
//! train; adapters round-trip through PEFT's file format, and an adapter that
//! Hugging Face PEFT wrote gives PEFT's logits.

use candle_core::{DType, Device, Tensor};
use rlhf_lab::lm::lora::LoraConfig;
use rlhf_lab::lm::ops::max_abs_diff;
use rlhf_lab::lm::sft::SftDataset;
use rlhf_lab::lm::sft_data;
use rlhf_lab::lm::{LanguageModel, NextTokenLoss, TrainConfig, Trainer};
use rlhf_lab::rlhf::preferences::tiny_sft_dir;
use rlhf_lab::splits::Splits;
use std::path::Path;

fn sft() -> LanguageModel {
    LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap()
}

fn ids(lm: &LanguageModel, text: &str) -> Tensor {
    let ids = lm.tokenizer.encode(text).unwrap();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn logits(lm: &LanguageModel, input: &Tensor) -> Tensor {
    lm.model.forward(input).unwrap().logits
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Give every B a non-zero value so the adapters change the output (as a
/// trained adapter would).
fn perturb_b(lm: &LanguageModel, seed: u64) {
    perturb_b_of(&lm.trainable_vars(), seed);
}

const TEXT: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nParis";

#[test]
fn fresh_adapters_compute_the_base_model_and_off_is_the_base_bit_for_bit() {
    let base = sft();
    let input = ids(&base, TEXT);
    let want = logits(&base, &input);
    let config = LoraConfig::new(8, 8.0, &["all-linear"]);
    let policy = base.with_lora(&config, 0).unwrap();
    // B = 0: W x + s·B A x = W x + 0 — equal up to the rounding of adding zero.
    assert_eq!(values(&logits(&policy, &input)), values(&want));
    let lp_policy = policy.model.token_log_probs(&input, None).unwrap();
    let lp_base = base.model.token_log_probs(&input, None).unwrap();
    let kl = values(&(lp_policy - lp_base).unwrap())
        .iter()
        .map(|x| x.abs())
        .fold(0f32, f32::max);
    assert_eq!(kl, 0.0, "per-token log-ratio at initialisation");

    perturb_b(&policy, 1);
    let adapted = logits(&policy, &input);
    assert!(max_abs_diff(&adapted, &want).unwrap() > 1e-2);
    // Off, by the switch or by the base view: the base model exactly.
    policy.set_adapters_enabled(false).unwrap();
    assert_eq!(values(&logits(&policy, &input)), values(&want));
    policy.set_adapters_enabled(true).unwrap();
    assert_eq!(values(&logits(&policy, &input)), values(&adapted));
    assert_eq!(values(&logits(&policy.base_model(), &input)), values(&want));
    // The base view shares the weights: no second copy.
    assert_eq!(policy.base_model().num_parameters(), base.num_parameters());
    assert_eq!(
        policy.num_trainable_parameters(),
        // r·(in + out) per projection: q 128+128, k 128+64, v 128+64, o 128+128,
        // gate/up 128+344 each, down 344+128; 4 layers, r = 8.
        8 * 4 * (256 + 192 + 192 + 256 + 472 * 3)
    );
}

/// Merged W + s·BA against the two thin products: f32 rounding only (1e-4 on
/// logits of size ~10). Unmerging restores W to 1e-6.
#[test]
fn merged_and_unmerged_forwards_agree() {
    let base = sft();
    let input = ids(&base, TEXT);
    let weights_before = base.vars();
    let before: Vec<Vec<f32>> = weights_before
        .iter()
        .map(|(_, v)| values(v.as_tensor()))
        .collect();
    let policy = base
        .with_lora(
            &LoraConfig::new(4, 16.0, &["q_proj", "v_proj", "down_proj"]),
            2,
        )
        .unwrap();
    perturb_b(&policy, 3);
    let unmerged = logits(&policy, &input);
    let standalone = policy.merged().unwrap();
    assert!(standalone.lora().is_none());
    let d_standalone = max_abs_diff(&logits(&standalone, &input), &unmerged).unwrap();
    policy.merge_adapters().unwrap();
    let d_merged = max_abs_diff(&logits(&policy, &input), &unmerged).unwrap();
    assert!(
        policy.set_adapters_enabled(false).is_err(),
        "switching off while merged"
    );
    policy.unmerge_adapters().unwrap();
    let d_unmerged = max_abs_diff(&logits(&policy, &input), &unmerged).unwrap();
    eprintln!("merged {d_merged:.2e}, merge_and_unload {d_standalone:.2e}, unmerged again {d_unmerged:.2e}");
    assert!(d_merged < 1e-4 && d_standalone < 1e-4 && d_unmerged < 1e-4);
    let restored = base
        .vars()
        .iter()
        .zip(&before)
        .map(|((_, v), b)| {
            values(v.as_tensor())
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        })
        .fold(0f32, f32::max);
    assert!(restored < 1e-6, "unmerge left the base off by {restored}");
}

/// An SFT update through rung 6's trainer moves A and B and leaves every base
/// weight bit-identical.
#[test]
fn only_the_adapters_train() {
    let base = sft();
    let before: Vec<Vec<f32>> = base.vars().iter().map(|(_, v)| values(v)).collect();
    let policy = base
        .with_lora(&LoraConfig::new(8, 16.0, &["q_proj", "v_proj"]), 4)
        .unwrap();
    let lora_before: Vec<Vec<f32>> = policy
        .trainable_vars()
        .iter()
        .map(|(_, v)| values(v))
        .collect();
    let Splits {
        train,
        validation: valid,
        ..
    } = sft_data::read_splits(&sft_data::sft_dir()).unwrap();
    let data = SftDataset::new(&policy.tokenizer, &train[..64], &valid[..8], 8, 128, 0).unwrap();
    let mut t = Trainer::new(
        NextTokenLoss::new(&policy),
        TrainConfig {
            steps: 3,
            learning_rate: 1e-3,
            warmup_steps: 0,
            eval_every: 3,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    t.train(&data, &Default::default()).unwrap();
    let after: Vec<Vec<f32>> = base.vars().iter().map(|(_, v)| values(v)).collect();
    assert_eq!(before, after, "a base weight changed");
    let moved = policy
        .trainable_vars()
        .iter()
        .zip(&lora_before)
        .filter(|((_, v), b)| values(v) != **b)
        .count();
    assert_eq!(moved, policy.trainable_vars().len(), "every A and B moves");
}

/// Adapter dropout (PEFT's `lora_dropout`) acts in training mode only: in
/// eval mode the logits are the dropout-free ones; in training mode they
/// differ, repeat exactly for the same step seed and change with the step. SFT
/// with dropout gives the same adapters twice for one seed, and other adapters
/// than without dropout.
#[test]
fn adapter_dropout_acts_only_in_training_and_is_seeded() {
    let base = sft();
    let input = ids(&base, TEXT);
    let config = LoraConfig {
        lora_dropout: 0.3,
        ..LoraConfig::new(4, 8.0, &["q_proj", "down_proj"])
    };
    let lm = base.with_lora(&config, 1).unwrap();
    perturb_b(&lm, 2);
    let eval = values(&logits(&lm, &input));
    lm.set_training(true, 5);
    let a = values(&logits(&lm, &input));
    lm.set_training(true, 5);
    let again = values(&logits(&lm, &input));
    lm.set_training(true, 6);
    let other = values(&logits(&lm, &input));
    lm.set_training(false, 0);
    assert_ne!(a, eval);
    assert_eq!(a, again, "same step seed, same masks");
    assert_ne!(a, other);
    assert_eq!(
        values(&logits(&lm, &input)),
        eval,
        "eval mode has no dropout"
    );

    let Splits {
        train,
        validation: valid,
        ..
    } = sft_data::read_splits(&sft_data::sft_dir()).unwrap();
    let run = |dropout: f64| -> Vec<Vec<f32>> {
        let config = LoraConfig {
            lora_dropout: dropout,
            ..config.clone()
        };
        let lm = base.with_lora(&config, 1).unwrap();
        let data = SftDataset::new(&lm.tokenizer, &train[..32], &valid[..8], 8, 128, 0).unwrap();
        let mut t = Trainer::new(
            NextTokenLoss::new(&lm),
            TrainConfig {
                steps: 2,
                learning_rate: 1e-3,
                warmup_steps: 0,
                eval_every: 2,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        t.train(&data, &Default::default()).unwrap();
        lm.trainable_vars().iter().map(|(_, v)| values(v)).collect()
    };
    let (d1, d2, none) = (run(0.3), run(0.3), run(0.0));
    assert_eq!(d1, d2, "same seed, same run");
    assert_ne!(d1, none, "dropout changed the updates");
}

/// Saved as PEFT saves (key names, shapes, config fields), loaded back by
/// folder through `base_model_name_or_path`: the same logits exactly.
#[test]
fn adapters_round_trip_in_peft_format() {
    let base = sft();
    let input = ids(&base, TEXT);
    let config = LoraConfig::new(4, 8.0, &["q_proj", "up_proj"]);
    let policy = base.with_lora(&config, 5).unwrap();
    perturb_b(&policy, 6);
    let dir = std::env::temp_dir().join(format!("rlhf-lab-lora-{}", std::process::id()));
    policy.save(&dir).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(written["peft_type"], "LORA");
    assert_eq!(written["r"], 4);
    assert_eq!(written["lora_alpha"], 8.0);
    assert_eq!(written["bias"], "none");
    assert_eq!(written["task_type"], "CAUSAL_LM");
    let base_path = written["base_model_name_or_path"].as_str().unwrap();
    assert_eq!(
        Path::new(base_path),
        std::fs::canonicalize(tiny_sft_dir()).unwrap()
    );
    let tensors =
        candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(tensors.len(), 4 * 2 * 2);
    let a = &tensors["base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"];
    let b = &tensors["base_model.model.model.layers.3.mlp.up_proj.lora_B.weight"];
    assert_eq!((a.dims(), b.dims()), (&[4, 128][..], &[344, 4][..]));

    let loaded = LanguageModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(loaded.lora().unwrap().config.r, 4);
    assert_eq!(
        values(&logits(&loaded, &input)),
        values(&logits(&policy, &input))
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// An adapter written by Hugging Face PEFT 0.21.2 (torch 2.15, f32; r = 4,
/// α = 16, all seven projections, B set to N(0, 0.05²)) on the tiny SFT model,
/// with PEFT's logits for 12 token ids, adapters on and off. rlhf-lab loads the
/// folder (base found through `base_model_name_or_path`) and gives the same
/// logits within 1e-4 (measured 9.5e-6 on, 7.2e-6 off).
#[test]
fn an_adapter_written_by_peft_gives_peft_logits() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft-lora-tiny-sft");
    let reference =
        candle_core::safetensors::load(dir.join("peft_logits.safetensors"), &Device::Cpu).unwrap();
    let input = reference["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let lm = LanguageModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(lm.lora().unwrap().config.targets().len(), 7);
    let on = logits(&lm, &input).squeeze(0).unwrap();
    let d_on = max_abs_diff(&on, &reference["logits"]).unwrap();
    let off = logits(&lm.base_model(), &input).squeeze(0).unwrap();
    let d_off = max_abs_diff(&off, &reference["base_logits"]).unwrap();
    let effect = max_abs_diff(&reference["logits"], &reference["base_logits"]).unwrap();
    eprintln!("PEFT parity: adapters on {d_on:.2e}, off {d_off:.2e} (the adapter moves logits by {effect:.2})");
    assert!(effect > 1.0, "the fixture's adapter must change the output");
    assert!(d_on < 1e-4 && d_off < 1e-4);
}

#[test]
fn bad_adapter_files_are_errors_naming_the_file() {
    let base = sft();
    let dir = std::env::temp_dir().join(format!("rlhf-lab-bad-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft-lora-tiny-sft");
    std::fs::copy(
        fixture.join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let text = std::fs::read_to_string(fixture.join("adapter_config.json")).unwrap();
    // Rank 8 in the config, rank-4 tensors in the file.
    std::fs::write(
        dir.join("adapter_config.json"),
        text.replace("\"r\": 4", "\"r\": 8"),
    )
    .unwrap();
    let err = format!("{:#}", base.with_adapter_from(&dir).unwrap_err());
    assert!(
        err.contains("adapter_model.safetensors") && err.contains("r = 8"),
        "{err}"
    );
    // DoRA is not plain LoRA: refused, not silently misread.
    std::fs::write(
        dir.join("adapter_config.json"),
        text.replace("\"use_dora\": false", "\"use_dora\": true"),
    )
    .unwrap();
    let err = format!("{:#}", base.with_adapter_from(&dir).unwrap_err());
    assert!(
        err.contains("adapter_config.json") && err.contains("use_dora"),
        "{err}"
    );
    // A second set of adapters on top of the first is refused.
    let once = base.with_lora(&LoraConfig::default(), 0).unwrap();
    assert!(once.with_lora(&LoraConfig::default(), 0).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// The other direction: an adapter rlhf-lab wrote (r = 8, α = 16; q, k, o and
/// gate projections; B perturbed from seed 12), loaded by Hugging Face PEFT
/// 0.21.2 onto the tiny SFT model, whose logits PEFT computed and are
/// committed beside it. Today's code must still write exactly that adapter
/// (same keys, shapes and values) and compute PEFT's logits within 1e-4.
#[test]
fn peft_reads_the_adapters_rlhf_lab_writes() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rlhf-lab-lora-tiny-sft");
    let base = sft();
    let policy = base
        .with_lora(
            &LoraConfig::new(8, 16.0, &["q_proj", "k_proj", "o_proj", "gate_proj"]),
            11,
        )
        .unwrap();
    perturb_b(&policy, 12);
    let dir = std::env::temp_dir().join(format!("rlhf-lab-lora-peft-{}", std::process::id()));
    policy.save(&dir).unwrap();
    let load = |d: &Path| {
        candle_core::safetensors::load(d.join("adapter_model.safetensors"), &Device::Cpu).unwrap()
    };
    let (now, committed) = (load(&dir), load(&fixture));
    assert_eq!(now.len(), committed.len());
    for (key, t) in &committed {
        assert_eq!(values(&now[key]), values(t), "{key}");
    }
    let reference =
        candle_core::safetensors::load(fixture.join("peft_logits.safetensors"), &Device::Cpu)
            .unwrap();
    let input = reference["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ours = logits(&policy, &input).squeeze(0).unwrap();
    let d = max_abs_diff(&ours, &reference["logits"]).unwrap();
    let effect = max_abs_diff(&reference["logits"], &reference["base_logits"]).unwrap();
    eprintln!("PEFT on rlhf-lab's adapter: {d:.2e} (the adapter moves logits by {effect:.2})");
    assert!(effect > 1.0 && d < 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}

/// A reward model with adapters: the same scores at initialisation; the
/// pairwise loss reaches every A, every B (after one update) and the head, and
/// no trunk weight; the merged model it is saved as scores what it scored.
#[test]
fn reward_model_with_lora_trains_adapters_and_head_and_saves_merged() {
    use rlhf_lab::rlhf::RewardModel;
    let rm = RewardModel::from_language_model(&sft(), 0).unwrap();
    let seqs = vec![
        rm.encode("How old is Zoe?", "Zoe is 10 years old.<|im_end|>")
            .unwrap(),
        rm.encode("How old is Zoe?", "Obviously 7, dummy.<|im_end|>")
            .unwrap(),
    ];
    let before = rm.raw_scores_of_ids(&seqs, 2).unwrap();
    let adapted = rm
        .with_lora(&LoraConfig::new(4, 8.0, &["all-linear"]), 1)
        .unwrap();
    assert_eq!(adapted.raw_scores_of_ids(&seqs, 2).unwrap(), before);
    let trainable = adapted.trainable_vars();
    assert_eq!(trainable.len(), 4 * 7 * 2 + 1);
    assert!(trainable.iter().any(|(n, _)| n == "score.weight"));
    perturb_b_of(&trainable, 2);
    let batch =
        rlhf_lab::rlhf::SequenceBatch::new(&seqs, rm.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let r = adapted.raw_scores(&batch).unwrap();
    let loss = (r.get(1).unwrap() - r.get(0).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in &trainable {
        assert!(grads.get(var).is_some(), "no gradient for {name}");
    }
    for (name, var) in rm.vars().iter().filter(|(n, _)| n != "score.weight") {
        assert!(grads.get(var).is_none(), "the frozen {name} got a gradient");
    }
    let scores = adapted.raw_scores_of_ids(&seqs, 2).unwrap();
    assert!((scores[0] - before[0]).abs() > 1e-3);
    let merged = adapted.merged().unwrap();
    assert!(merged.lora().is_none());
    for (m, s) in merged
        .raw_scores_of_ids(&seqs, 2)
        .unwrap()
        .iter()
        .zip(&scores)
    {
        assert!((m - s).abs() < 1e-4, "merged {m} vs adapted {s}");
    }
}

fn perturb_b_of(vars: &[(String, candle_core::Var)], seed: u64) {
    let mut rng = gridworld::Rng::new(seed);
    for (name, var) in vars {
        if name.contains("lora_B") {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| (rng.normal() * 0.05) as f32)
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}
