//! The training loop of rungs 3–4: pre-training lowers held-out loss, the same
//! seed gives the same run, a resumed run equals an uninterrupted one, NaN stops
//! training and keeps the last good checkpoint, and SFT on the committed tiny
//! model improves validation loss and factual exact match.

use candle_core::{DType, Device, Tensor};
use rlhf_lab::lm::behaviour::{behaviour_table, evaluate_behaviour};
use rlhf_lab::lm::pretrain;
use rlhf_lab::lm::sft::SftDataset;
use rlhf_lab::lm::sft_data;
use rlhf_lab::lm::{
    resume_language_model, LanguageModel, LlamaConfig, NextTokenLoss, ResumedRun, RunOptions,
    TokenStream, TrainConfig, Trainer,
};
use rlhf_lab::splits::Splits;

fn small_setup(seed: u64) -> (LanguageModel, TokenStream) {
    let dir = pretrain::corpus_dir();
    let tok = pretrain::corpus_tokenizer(&dir).unwrap();
    let corpus = pretrain::read_corpus(&dir).unwrap();
    let (train, valid) = (&corpus.train, &corpus.valid);
    let data = TokenStream::new(&tok, &train[..2000], &valid[..100], 8, 32, seed).unwrap();
    let cfg = LlamaConfig {
        hidden_size: 64,
        intermediate_size: 176,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..LlamaConfig::tiny(tok.vocab_size())
    };
    (
        LanguageModel::new_random(cfg, tok, seed, &Device::Cpu, DType::F32).unwrap(),
        data,
    )
}

fn weights_of(lm: &LanguageModel) -> Vec<f32> {
    lm.vars()
        .iter()
        .flat_map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn pretraining_lowers_held_out_loss_and_is_deterministic() {
    let config = TrainConfig {
        steps: 60,
        eval_every: 30,
        warmup_steps: 5,
        ..TrainConfig::default()
    };
    let run = || {
        let (lm, data) = small_setup(1);
        let mut t = Trainer::new(NextTokenLoss::new(&lm), config.clone()).unwrap();
        t.train(&data, &RunOptions::default()).unwrap();
        (t.history.clone(), weights_of(&lm))
    };
    let (h1, w1) = run();
    let first = h1[0].eval_loss().unwrap();
    let last = h1.last().unwrap().eval_loss().unwrap();
    // Uniform over ~800 tokens is ln(800) ≈ 6.7; 60 small updates reach ≈ 3.
    assert!(
        first > 6.0 && last < 4.0,
        "held-out loss {first:.3} → {last:.3}"
    );
    let (h2, w2) = run();
    assert_eq!(
        h1.iter().map(|r| r.loss).collect::<Vec<_>>(),
        h2.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    assert_eq!(w1, w2, "same seed, same weights");
}

#[test]
fn resume_equals_uninterrupted_and_nan_keeps_last_good_checkpoint() {
    let dir = std::env::temp_dir().join(format!("rlhf-lm-resume-{}", std::process::id()));
    let ckpt = dir.join("checkpoint");
    let config = TrainConfig {
        steps: 12,
        eval_every: 6,
        warmup_steps: 2,
        ..TrainConfig::default()
    };
    // Uninterrupted.
    let (lm, data) = small_setup(2);
    let mut t = Trainer::new(NextTokenLoss::new(&lm), config.clone()).unwrap();
    t.train(&data, &RunOptions::default()).unwrap();
    let uninterrupted = weights_of(&lm);

    // Stopped after 6 updates (checkpoint), resumed to 12.
    let (lm, data) = small_setup(2);
    let mut t = Trainer::new(NextTokenLoss::new(&lm), config.clone()).unwrap();
    let opts = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        ..Default::default()
    };
    t.train_until(&data, &opts, 6).unwrap();
    let ResumedRun {
        model: lm2,
        trainer: mut t2,
    } = resume_language_model(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(t2.step, 6);
    t2.train(&data, &RunOptions::default()).unwrap();
    let resumed = weights_of(&lm2);
    let max_diff = uninterrupted
        .iter()
        .zip(&resumed)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(max_diff, 0.0, "resumed run differs by {max_diff}");

    // Poison one weight: the next update stops with a clear error, and the
    // checkpoint on disk is still the good one from update 6.
    let (name, var) = lm.vars().into_iter().next().unwrap();
    let nan = Tensor::full(f32::NAN, var.shape(), &Device::Cpu).unwrap();
    var.set(&nan).unwrap();
    let err = format!("{:#}", t.train(&data, &opts).unwrap_err());
    assert!(
        err.contains("training loss became NaN at update 7"),
        "{err}"
    );
    assert!(err.contains("last good checkpoint"), "{err}");
    let ResumedRun {
        model: good,
        trainer: t3,
    } = resume_language_model(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(t3.step, 6);
    let restored = good.vars().into_iter().find(|(n, _)| *n == name).unwrap().1;
    let finite: f32 = restored
        .as_tensor()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(finite.is_finite());
    std::fs::remove_dir_all(&dir).ok();
}

/// SFT of the committed tiny model (`datasets/models/tiny-pretrained`, made by
/// `rlhf-lab lm pretrain --steps 600`) on a CPU budget: validation loss falls
/// and factual exact match rises from zero.
#[test]
fn sft_lowers_validation_loss_and_raises_exact_match() {
    let model_dir = pretrain::tiny_pretrained_dir();
    let lm = LanguageModel::load(&model_dir, &Device::Cpu, DType::F32).unwrap();
    let Splits {
        train,
        validation: valid,
        test,
    } = sft_data::read_splits(&sft_data::sft_dir()).unwrap();
    let facts: Vec<_> = test
        .iter()
        .filter(|c| c.kind == "fact")
        .take(20)
        .cloned()
        .collect();
    let valid = sft_data::take_per_kind(&valid, 8);
    let data = SftDataset::new(&lm.tokenizer, &train, &valid, 8, 128, 0).unwrap();
    let before = evaluate_behaviour(&lm, &facts, 20).unwrap();
    let mut t = Trainer::new(
        NextTokenLoss::new(&lm),
        TrainConfig {
            steps: 160,
            learning_rate: 2e-3,
            warmup_steps: 10,
            eval_every: 160,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    t.train(&data, &RunOptions::default()).unwrap();
    let after = evaluate_behaviour(&lm, &facts, 20).unwrap();
    let (v0, v1) = (
        t.history[0].eval_loss().unwrap(),
        t.history.last().unwrap().eval_loss().unwrap(),
    );
    eprintln!("{}", behaviour_table(&before, &after));
    assert!(v1 < 0.5 * v0, "validation loss {v0:.3} → {v1:.3}");
    let (em0, em1) = (
        before[0].exact_match.unwrap(),
        after[0].exact_match.unwrap(),
    );
    // Measured on 2 CPU threads: 0% → 45% (9 of 20) after 160 updates.
    assert!(
        em1 > em0 && em1 >= 0.25,
        "fact exact match {em0:.2} → {em1:.2}"
    );
}

/// The objective-based loop gives the losses recorded for this seed. The
/// numbers were measured with the refactored loop after checking that it
/// reproduces the earlier hard-wired loop bit for bit (same losses, gradient
/// norms and evaluation losses on the previous tokenizer and model; and a
/// byte-identical `model.safetensors` after 600 pre-training updates).
/// Tolerance 1e-4 relative: other CPUs may round matrix products differently.
#[test]
fn recorded_losses_for_a_fixed_seed() {
    let close = |got: &[f64], want: &[f64], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}: {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs(),
                "{what}: {got:?} vs {want:?}"
            );
        }
    };
    let (lm, data) = small_setup(1);
    let config = TrainConfig {
        steps: 20,
        eval_every: 10,
        warmup_steps: 5,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(NextTokenLoss::new(&lm), config).unwrap();
    t.train(&data, &RunOptions::default()).unwrap();
    let losses: Vec<f64> = t.history.iter().map(|r| r.loss).collect();
    close(
        &losses,
        &[
            7.038941442966461,
            7.052495002746582,
            7.005041599273682,
            6.9132609367370605,
            6.727561950683594,
            6.567121982574463,
            6.389914512634277,
            6.188887119293213,
            6.048495292663574,
            5.846288681030273,
            5.688385009765625,
            5.580577850341797,
            5.501784324645996,
            5.3682122230529785,
            5.345797061920166,
            5.250452995300293,
            5.193329811096191,
            5.192069053649902,
            5.168632507324219,
            5.1543049812316895,
            5.08645486831665,
        ],
        "pre-training losses",
    );
    let evals: Vec<f64> = t.history.iter().filter_map(|r| r.eval_loss()).collect();
    close(
        &evals,
        &[7.038941442966461, 5.606101155281067, 5.103562891483307],
        "pre-training held-out losses",
    );

    let lm =
        LanguageModel::load(&pretrain::tiny_pretrained_dir(), &Device::Cpu, DType::F32).unwrap();
    let Splits {
        train,
        validation: valid,
        ..
    } = sft_data::read_splits(&sft_data::sft_dir()).unwrap();
    let data = SftDataset::new(
        &lm.tokenizer,
        &train,
        &sft_data::take_per_kind(&valid, 4),
        8,
        192,
        0,
    )
    .unwrap();
    let config = TrainConfig {
        steps: 10,
        learning_rate: 2e-3,
        warmup_steps: 3,
        eval_every: 5,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(NextTokenLoss::new(&lm), config).unwrap();
    t.train(&data, &RunOptions::default()).unwrap();
    let losses: Vec<f64> = t.history.iter().map(|r| r.loss).collect();
    close(
        &losses,
        &[
            10.888457748957189,
            12.666608810424805,
            9.669526100158691,
            6.6159749031066895,
            5.78200626373291,
            5.749151229858398,
            5.698641300201416,
            5.066866874694824,
            5.466521263122559,
            4.880005836486816,
            4.874101638793945,
        ],
        "SFT losses",
    );
    let evals: Vec<f64> = t.history.iter().filter_map(|r| r.eval_loss()).collect();
    close(
        &evals,
        &[10.888457748957189, 4.8992492610758, 4.266643507727261],
        "SFT held-out losses",
    );
}
