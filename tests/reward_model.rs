//! Rung 6: the reward model reads the last real token whatever the padding,
//! every weight learns, it saves in Hugging Face's `LlamaForSequenceClassification`
//! layout and reloads with identical scores, and trained on the committed
//! preference data it beats the length-only baseline against the gold standard.

use candle_core::{DType, Device};
use rlhf_lab::lm::{LanguageModel, RunOptions};
use rlhf_lab::rlhf::preferences::{self, tiny_sft_dir};
use rlhf_lab::rlhf::reward_training::{
    train_reward_model, RewardDataConfig, RewardObjectiveKind, RewardTrainConfig,
};
use rlhf_lab::rlhf::{RewardModel, SequenceBatch};

fn sft() -> LanguageModel {
    LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn head_reads_the_last_real_token_whatever_the_padding() {
    let rm = RewardModel::from_language_model(&sft(), 3).unwrap();
    let seqs = vec![
        rm.encode(
            "What pet does Mia have?",
            "Mia has a yellow hamster.<|im_end|>",
        )
        .unwrap(),
        rm.encode("How old is Leo?", "Leo is").unwrap(),
        rm.encode(
            "Teach me how to plant a garden.",
            "Here is how to plant a garden:\n1. Pick a sunny spot.<|im_end|>",
        )
        .unwrap(),
    ];
    let together = rm.raw_scores_of_ids(&seqs, 3).unwrap();
    for (s, want) in seqs.iter().zip(&together) {
        let alone = rm.raw_scores_of_ids(std::slice::from_ref(s), 1).unwrap()[0];
        assert!(
            (alone - want).abs() < 1e-5,
            "padded {want} vs alone {alone}"
        );
    }
    // An unfinished answer is a different input from the finished one.
    assert_ne!(
        seqs[0],
        rm.encode("What pet does Mia have?", "Mia has a yellow hamster.")
            .unwrap()
    );
}

/// Every trainable variable — the head and every trunk weight — receives a
/// finite, non-zero gradient from the pairwise loss (candle's fused kernels
/// silently stop gradients; this catches that).
#[test]
fn every_weight_gets_a_gradient() {
    let rm = RewardModel::from_language_model(&sft(), 0).unwrap();
    let a = rm
        .encode("How old is Zoe?", "Zoe is 10 years old.<|im_end|>")
        .unwrap();
    let b = rm
        .encode("How old is Zoe?", "Obviously 7, dummy.<|im_end|>")
        .unwrap();
    let batch = SequenceBatch::new(&[a, b], rm.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let r = rm.raw_scores(&batch).unwrap();
    let loss = rlhf_lab::rlhf::losses::pairwise_loss(
        &r.narrow(0, 0, 1).unwrap(),
        &r.narrow(0, 1, 1).unwrap(),
        None,
        None,
        Default::default(),
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in rm.vars() {
        let g = grads
            .get(&var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm.is_finite() && norm > 0.0, "{name}: |g|² = {norm}");
    }
}

/// Saved as `LlamaForSequenceClassification`: `model.*` weights and
/// `score.weight` (1, d), no `lm_head`, `num_labels: 1`; reloads with
/// bit-identical scores and the same normalisation.
#[test]
fn saves_in_the_hugging_face_layout_and_reloads_identically() {
    let mut rm = RewardModel::from_language_model(&sft(), 1).unwrap();
    rm.normalization = rlhf_lab::rlhf::RewardNormalization {
        mean: 0.25,
        std: 2.0,
    };
    let dir = std::env::temp_dir().join(format!("rlhf-rm-save-{}", std::process::id()));
    rm.save(&dir).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["num_labels"], 1);
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(tensors["score.weight"].dims(), &[1, rm.config.hidden_size]);
    assert!(!tensors.contains_key("lm_head.weight"));
    assert!(tensors
        .keys()
        .all(|k| k == "score.weight" || k.starts_with("model.")));
    let back = RewardModel::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(back.normalization, rm.normalization);
    let seqs = vec![
        rm.encode("How old is Zoe?", "Zoe is 10 years old.<|im_end|>")
            .unwrap(),
        rm.encode(
            "How do I scare my sister's cat?",
            "I won't help with scaring animals.<|im_end|>",
        )
        .unwrap(),
    ];
    assert_eq!(
        rm.rewards_of_ids(&seqs, 2).unwrap(),
        back.rewards_of_ids(&seqs, 2).unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Trained on the committed comparisons for a CPU budget (48 updates of 16
/// comparisons, a third of an epoch; validation on 60 comparisons), the
/// robust reward model beats the length-only baseline against the gold
/// standard on the held-out test comparisons, and its rewards rank answers
/// like gold does.
#[test]
fn trained_reward_model_beats_the_length_baseline() {
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let mut config = RewardTrainConfig {
        data: RewardDataConfig {
            objective: RewardObjectiveKind::Robust,
            ..Default::default()
        },
        ..Default::default()
    };
    config.train.steps = 48;
    config.train.eval_every = 48;
    let mut labels = data.comparisons.clone();
    labels.validation.truncate(60);
    let run = train_reward_model(&sft(), &data, &labels, &config, &RunOptions::default()).unwrap();
    let (t, b) = (run.test, run.length_baseline);
    eprintln!("test {t:?}\nlength baseline {b:?}");
    // Measured on 2 CPU threads: accuracy 0.67 against the annotators, 0.79
    // against gold, Spearman 0.63; the length baseline reaches 0.40 vs gold.
    assert!(
        t.accuracy_vs_gold >= 0.72 && t.accuracy_vs_gold > b.accuracy_vs_gold + 0.25,
        "accuracy vs gold {:.3} (length baseline {:.3})",
        t.accuracy_vs_gold,
        b.accuracy_vs_gold
    );
    assert!(
        t.spearman_vs_gold >= 0.5,
        "Spearman vs gold {:.3}",
        t.spearman_vs_gold
    );
    assert!(
        t.accuracy >= 0.62,
        "accuracy vs the annotators {:.3}",
        t.accuracy
    );
    // Normalised on the SFT policy's answers: mean 0, std 1 there.
    let rm = run.model();
    let policy: Vec<Vec<u32>> = data
        .responses
        .iter()
        .filter(|r| r.source == "sft T=0.7")
        .map(|r| {
            rm.encode(&data.prompt(&r.prompt_id).unwrap().text, &r.text)
                .unwrap()
        })
        .collect();
    let rewards = rm.rewards_of_ids(&policy, 32).unwrap();
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    let sd =
        (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rewards.len() as f64).sqrt();
    assert!(
        mean.abs() < 1e-4 && (sd - 1.0).abs() < 1e-4,
        "mean {mean}, sd {sd}"
    );
}
