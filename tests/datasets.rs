//! The committed datasets are exactly what their generators write.

use rlhf_lab::lm::{pretrain, sft};

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
    sft::write_dataset(&tmp.join("sft"), sft::DATASET_SEED, sft::DATASET_PER_KIND).unwrap();
    for f in ["train.jsonl", "validation.jsonl", "test.jsonl", "README.md"] {
        same_file(&sft::sft_dir().join(f), &tmp.join("sft").join(f));
    }
    // The committed tokenizer is the one training on train.txt and the demonstrations gives.
    let (train, _) = pretrain::read_corpus(&pretrain::corpus_dir()).unwrap();
    let retrained = pretrain::train_tokenizer(&train).unwrap();
    let committed = pretrain::corpus_tokenizer(&pretrain::corpus_dir()).unwrap();
    let text = &train[0];
    assert_eq!(
        retrained.encode(text).unwrap(),
        committed.encode(text).unwrap()
    );
    assert_eq!(retrained.vocab_size(), committed.vocab_size());
    // Every line of the splits validates.
    let (t, v, te) = sft::read_splits(&sft::sft_dir()).unwrap();
    assert_eq!((t.len(), v.len(), te.len()), (2240, 280, 280));
    std::fs::remove_dir_all(&tmp).ok();
}
