//! The committed datasets are exactly what their generators write.

use rlhf_lab::lm::{pretrain, sft_data};
use rlhf_lab::splits::Splits;

fn same_file(a: &std::path::Path, b: &std::path::Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(
        x == y,
        "{} differs from the generator's output {} (regenerate it)",
        a.display(),
        b.display()
    );
}

#[test]
fn corpus_and_demonstrations_match_their_generators() {
    let tmp = std::env::temp_dir().join(format!("rlhf-datasets-{}", std::process::id()));
    pretrain::write_corpus(
        &tmp.join("corpus"),
        pretrain::CORPUS_SEED,
        pretrain::CORPUS_DOCUMENTS,
    )
    .unwrap();
    for f in ["train.txt", "valid.txt"] {
        same_file(&pretrain::corpus_dir().join(f), &tmp.join("corpus").join(f));
    }
    sft_data::write_dataset(
        &tmp.join("sft"),
        sft_data::DATASET_SEED,
        sft_data::DATASET_PER_KIND,
    )
    .unwrap();
    for f in ["train.jsonl", "validation.jsonl", "test.jsonl", "README.md"] {
        same_file(&sft_data::sft_dir().join(f), &tmp.join("sft").join(f));
    }
    // The committed tokenizer is the one training on train.txt and the demonstrations gives.
    let train = pretrain::read_corpus(&pretrain::corpus_dir())
        .unwrap()
        .train;
    let retrained = pretrain::train_tokenizer(&train).unwrap();
    let committed = pretrain::corpus_tokenizer(&pretrain::corpus_dir()).unwrap();
    let text = &train[0];
    assert_eq!(
        retrained.encode(text).unwrap(),
        committed.encode(text).unwrap()
    );
    assert_eq!(retrained.vocab_size(), committed.vocab_size());
    // Every line of the splits validates.
    let Splits {
        train: t,
        validation: v,
        test: te,
    } = sft_data::read_splits(&sft_data::sft_dir()).unwrap();
    assert_eq!((t.len(), v.len(), te.len()), (2240, 280, 280));
    std::fs::remove_dir_all(&tmp).ok();
}

/// `datasets/preferences` is what `rlhf-lab rm data` writes: the prompts, the
/// judgements of the committed answers and every file's bytes match the
/// generator, and the committed SFT model answers the first 32 prompts again
/// exactly as committed (the whole set takes a minute to sample; the first
/// batch of 32 is the same computation as in the full run).
#[test]
#[cfg_attr(
    feature = "avx512",
    ignore = "the committed values come from the default (AVX2) matmul kernels; see README, Speed"
)]
fn preference_data_matches_its_generator() {
    use rlhf_lab::rlhf::preferences::{self, PreferenceConfig};
    let dir = preferences::preferences_dir();
    let committed = preferences::read(&dir).unwrap();
    let config = PreferenceConfig::default();
    let all: Vec<_> = committed.all_prompts().cloned().collect();
    let regenerated = rlhf_lab::feedback::candidates::chat_prompts(
        &rlhf_lab::world::World::generate(0),
        all.len(),
        config.seed,
    );
    assert_eq!(all, regenerated, "prompts differ from chat_prompts");
    let rejudged = committed.judged_by(
        &config.crowd.annotators(),
        config.pairs_per_prompt,
        config.seed,
    );
    assert_eq!(
        rejudged, committed.comparisons,
        "judgements differ from the simulated crowd's"
    );
    let tmp = std::env::temp_dir().join(format!("rlhf-prefs-{}", std::process::id()));
    preferences::write(&tmp, &committed, &config).unwrap();
    for f in [
        "prompts.jsonl",
        "responses.jsonl",
        "train.jsonl",
        "validation.jsonl",
        "test.jsonl",
        "trl/train.jsonl",
        "trl/validation.jsonl",
        "trl/test.jsonl",
        "README.md",
    ] {
        same_file(&dir.join(f), &tmp.join(f));
    }
    std::fs::remove_dir_all(&tmp).ok();

    let lm = rlhf_lab::lm::LanguageModel::load(
        &preferences::tiny_sft_dir(),
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    let first = &all[..32];
    let sampled = preferences::sample_responses(&lm, first, &config).unwrap();
    let ids: std::collections::HashSet<&str> = first.iter().map(|p| p.id.as_str()).collect();
    let want: Vec<_> = committed
        .responses
        .iter()
        .filter(|r| ids.contains(r.prompt_id.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        sampled, want,
        "the SFT model's answers differ from the committed ones"
    );
}
