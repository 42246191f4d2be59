//! RLAIF's AI annotator: asking in both orders cancels a planted position
//! bias; its labels are rung 5's comparison records and train rung 6's reward
//! model unchanged; a language-model judge that reads the constitution once
//! (cached keys and values, right-padded batches) gives the same verdict
//! probabilities as a plain forward pass over the whole question.

use candle_core::{DType, Device, Tensor, D};
use rlhf_lab::feedback::gold::gold_score_turn;
use rlhf_lab::feedback::records::{read_feedback, write_feedback, Comparison, Feedback, Winner};
use rlhf_lab::lm::{LanguageModel, RunOptions};
use rlhf_lab::rlhf::judge::{
    gold_labels, judge_pairs, read_report, read_verdicts, recorded_judge_dir, Agreement,
    AiAnnotator, JudgeConfig, JudgeQuestion, JudgeReport, JudgeVerdict, LanguageModelJudge,
    OrderPolicy, PairwiseJudge, PositionBias,
};
use rlhf_lab::rlhf::preferences::{self, tiny_sft_dir, PreferenceData};
use rlhf_lab::rlhf::reward_training::{train_reward_model, RewardTrainConfig};
use std::collections::HashMap;

mod common;

/// A judge whose taste is the gold standard, seen through a logistic with a
/// planted preference for whatever is shown first:
/// P(first better) = σ(scale · (g_first − g_second) + bias).
struct PlantedJudge {
    gold: HashMap<(String, String), f64>,
    scale: f64,
    bias: f64,
}

impl PlantedJudge {
    fn new(data: &PreferenceData, scale: f64, bias: f64) -> Self {
        let mut gold = HashMap::new();
        for r in &data.responses {
            let p = data.prompt(&r.prompt_id).unwrap();
            gold.insert(
                (p.text.clone(), r.text.clone()),
                gold_score_turn(p, &r.text),
            );
        }
        Self { gold, scale, bias }
    }
}

impl PairwiseJudge for PlantedJudge {
    fn name(&self) -> &str {
        "planted"
    }

    fn prob_first_better(&self, questions: &[JudgeQuestion]) -> anyhow::Result<Vec<f64>> {
        Ok(questions
            .iter()
            .map(|q| {
                let g = |a: &str| self.gold[&(q.prompt.to_string(), a.to_string())];
                let z = self.scale * (g(q.first) - g(q.second)) + self.bias;
                1.0 / (1.0 + (-z).exp())
            })
            .collect())
    }
}

fn data() -> PreferenceData {
    preferences::read(&preferences::preferences_dir()).unwrap()
}

#[test]
fn order_swap_averaging_cancels_a_planted_position_bias() {
    let data = data();
    let pairs = &data.comparisons.test;
    let gold = gold_labels(&data, pairs).unwrap();
    let decided: Vec<usize> = (0..pairs.len())
        .filter(|&i| gold[i] != Winner::Tie)
        .collect();
    let on_decided = |labels: &[Winner]| {
        let x: Vec<Winner> = decided.iter().map(|&i| labels[i]).collect();
        let y: Vec<Winner> = decided.iter().map(|&i| gold[i]).collect();
        Agreement::of(&x, &y).agreement
    };
    let judge = PlantedJudge::new(&data, 0.3, 3.0);
    let verdicts = judge_pairs(&judge, pairs, 7).unwrap();
    let as_shown = AiAnnotator::with_order(OrderPolicy::AsShown);
    let random_once = AiAnnotator::with_order(OrderPolicy::RandomOnce);
    let averaged = AiAnnotator::default();

    // Asked once, the bias (3 logits) outweighs most gold differences.
    let bias = PositionBias::of(&verdicts);
    assert!(bias.first_chosen > 0.85, "{bias:?}");
    assert!(bias.consistency < 0.3, "{bias:?}");
    let once = on_decided(&as_shown.winners(&verdicts));
    // Asked once in a random order, the labels are balanced between A and B
    // but as biased.
    let random = random_once.winners(&verdicts);
    let a_share = random.iter().filter(|&&w| w == Winner::A).count() as f64 / random.len() as f64;
    assert!((0.35..0.65).contains(&a_share), "share of A {a_share:.3}");
    assert!(
        on_decided(&random) < 0.8,
        "random once {:.3}",
        on_decided(&random)
    );
    // Averaged over both orders, σ(d + b) + σ(d − b) > 1 exactly when d > 0:
    // every decided pair gets gold's label back, and the averaged judge shown
    // either order says P(first) = ½ on average.
    let twice = on_decided(&averaged.winners(&verdicts));
    assert_eq!(
        twice, 1.0,
        "averaged agreement with gold (as shown: {once:.3})"
    );
    assert!(once < 0.8, "as shown {once:.3}");
    let after = PositionBias::of_averaged(&verdicts);
    assert!((after.mean_p_first - 0.5).abs() < 1e-12, "{after:?}");
    assert_eq!(after.consistency, 1.0);

    // A judge that ignores the answers lands on exactly ½ after averaging.
    let blind = PlantedJudge::new(&data, 0.0, 2.0);
    for v in judge_pairs(&blind, &pairs[..20], 4).unwrap() {
        assert!((v.p_a() - 0.5).abs() < 1e-12, "{v:?}");
        assert_eq!(averaged.winner(&v, 0), Winner::Tie);
    }
}

#[test]
fn ai_labels_are_rung5_records_and_train_the_reward_model() {
    let data = data();
    let judge = PlantedJudge::new(&data, 1.0, 1.5);
    let mut labels = data.comparisons.clone();
    labels.train.truncate(480);
    labels.validation.truncate(60);
    let relabel = |pairs: &[Comparison]| -> Vec<Comparison> {
        let verdicts = judge_pairs(&judge, pairs, 16).unwrap();
        AiAnnotator::default()
            .label("judge-planted", pairs, &verdicts)
            .unwrap()
    };
    labels.train = relabel(&labels.train);
    labels.validation = relabel(&labels.validation);

    // Rung 5's format: every record validates and survives a JSONL round trip.
    let records: Vec<Feedback> = labels
        .train
        .iter()
        .cloned()
        .map(Feedback::Comparison)
        .collect();
    for r in &records {
        r.validate().unwrap();
    }
    let path =
        std::env::temp_dir().join(format!("rlhf-lab-ai-labels-{}.jsonl", std::process::id()));
    write_feedback(&path, &records).unwrap();
    assert_eq!(read_feedback(&path).unwrap(), records);
    std::fs::remove_file(&path).unwrap();
    assert!(labels.train.iter().all(|c| c.annotator == "judge-planted"));

    // Rung 6's reward model, unchanged, learns the judge's taste.
    let mut config = RewardTrainConfig::default();
    config.train.steps = 30;
    config.train.eval_every = 30;
    let sft = LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap();
    let run = train_reward_model(&sft, &data, &labels, &config, &RunOptions::default()).unwrap();
    eprintln!("test {:?}", run.test);
    // Measured on 2 CPU threads: 0.81 against gold (length baseline 0.40).
    assert!(
        run.test.accuracy_vs_gold > run.length_baseline.accuracy_vs_gold + 0.25,
        "accuracy vs gold {:.3}, length baseline {:.3}",
        run.test.accuracy_vs_gold,
        run.length_baseline.accuracy_vs_gold
    );
}

/// The verdict log-probabilities of an uncached forward pass over the whole
/// question, one question at a time.
fn full_forward(judge: &LanguageModelJudge, q: &JudgeQuestion, options: [u32; 2]) -> [f64; 2] {
    let lm = &judge.lm;
    let ids = lm.tokenizer.encode(&judge.prompt_text(q)).unwrap();
    let input = Tensor::new(ids.as_slice(), lm.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = lm.model.forward(&input).unwrap().logits;
    let last = logits.get(0).unwrap().get(ids.len() - 1).unwrap();
    let lp: Vec<f32> = candle_nn::ops::log_softmax(&last, D::Minus1)
        .unwrap()
        .to_vec1()
        .unwrap();
    [
        lp[options[0] as usize] as f64,
        lp[options[1] as usize] as f64,
    ]
}

fn check_cached_equals_full(lm: LanguageModel, config: JudgeConfig, pairs: &[Comparison]) {
    let options = [0, 1].map(|i| {
        let with = lm
            .tokenizer
            .encode(&format!("{}{}", config.answer_prefix, config.options[i]))
            .unwrap();
        *with.last().unwrap()
    });
    let judge = LanguageModelJudge::new(lm, "judge", config).unwrap();
    let questions: Vec<JudgeQuestion> = pairs
        .iter()
        .map(|c| JudgeQuestion {
            prompt: &c.prompt,
            first: &c.response_a,
            second: &c.response_b,
        })
        .collect();
    // The prompt shows the constitution and both answers.
    let text = judge.prompt_text(&questions[0]);
    assert!(
        text.contains("Harmless") && text.contains("Answer B: "),
        "{text}"
    );
    let cached = judge.option_log_probs(&questions).unwrap();
    for (q, c) in questions.iter().zip(&cached) {
        let [a, b] = full_forward(&judge, q, options);
        assert!(
            (a - c.a).abs() < 1e-4 && (b - c.b).abs() < 1e-4,
            "cached {c:?}, full forward ({a}, {b})"
        );
    }
    let p = judge.prob_first_better(&questions).unwrap();
    assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn cached_constitution_and_padded_batches_equal_a_full_forward() {
    let data = data();
    // Pairs of very different lengths in one batch of 5 (right padding).
    let pairs: Vec<Comparison> = data.comparisons.test[..5].to_vec();
    let sft = LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap();
    let config = JudgeConfig {
        batch_size: 5,
        max_answer_chars: 150,
        ..Default::default()
    };
    check_cached_equals_full(sft, config, &pairs);
}

#[test]
fn smollm2_judge_cached_equals_full_forward() {
    let Some(path) = common::smollm2_for_test() else {
        return;
    };
    let lm = LanguageModel::from_gguf(&path, &Device::Cpu, DType::F32).unwrap();
    let pairs: Vec<Comparison> = data().comparisons.test[..3].to_vec();
    let config = JudgeConfig {
        batch_size: 3,
        ..Default::default()
    };
    check_cached_equals_full(lm, config, &pairs);
}

/// The committed AI labels (`datasets/ai-feedback/smollm2`) are the data's
/// own pairs in order, pass rung 5's validation, are exactly the averaged
/// verdicts beside them, and the committed report is what those verdicts give.
#[test]
fn committed_ai_labels_match_their_verdicts_and_report() {
    let data = data();
    let dir = recorded_judge_dir("smollm2");
    let mut test_verdicts = Vec::new();
    for (split, pairs) in [
        ("train", &data.comparisons.train),
        ("test", &data.comparisons.test),
    ] {
        let labels = preferences::read_comparisons(&dir.join(format!("{split}.jsonl"))).unwrap();
        let lines = read_verdicts(&dir.join(format!("{split}.verdicts.jsonl"))).unwrap();
        assert_eq!(labels.len(), lines.len(), "{split}");
        for (i, (l, p)) in labels.iter().zip(pairs.iter()).enumerate() {
            assert_eq!(
                (&l.prompt_id, &l.response_a, &l.response_b),
                (&p.prompt_id, &p.response_a, &p.response_b),
                "{split} pair {i}"
            );
            assert_eq!(lines[i].line, i + 1);
            Feedback::Comparison(l.clone()).validate().unwrap();
        }
        let verdicts: Vec<JudgeVerdict> = lines.iter().map(|l| l.verdict).collect();
        let winners: Vec<Winner> = labels.iter().map(|c| c.winner).collect();
        assert_eq!(
            AiAnnotator::default().winners(&verdicts),
            winners,
            "{split}"
        );
        if split == "test" {
            test_verdicts = verdicts;
        }
    }
    let report_path = dir.join("test.report.json");
    let report = read_report(&report_path).unwrap();
    let again = JudgeReport::new(
        &report.judge,
        &data,
        &data.comparisons.test,
        &test_verdicts,
        report.seconds,
    )
    .unwrap();
    // Recomputed from the verdicts, it serialises to the committed text exactly.
    assert_eq!(
        serde_json::to_string_pretty(&again).unwrap().trim(),
        std::fs::read_to_string(&report_path).unwrap().trim()
    );
    // `--labels` swaps in the AI's training labels and keeps the rest.
    let relabelled = data.clone().with_labels_from(&dir).unwrap();
    assert_eq!(relabelled.comparisons.train.len(), 1200);
    assert!(relabelled
        .comparisons
        .train
        .iter()
        .all(|c| c.annotator == "judge-smollm2"));
    assert_eq!(
        relabelled.comparisons.validation,
        data.comparisons.validation
    );
    assert_eq!(relabelled.comparisons.test, data.comparisons.test);
}
