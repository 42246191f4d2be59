//! Pre-training from scratch on the project's corpus (`datasets/corpus/`): the
//! pieces the CLI (`rlhf-lab lm pretrain`) and notebook 03 share.

use super::config::LlamaConfig;
use super::data::TokenStream;
use super::pretrained::LanguageModel;
use super::tokenizer::TextTokenizer;
use crate::world::corpus::{self, Documents};
use crate::world::World;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

/// Seed of the committed corpus.
pub const CORPUS_SEED: u64 = 2024;
/// Number of documents in the committed corpus.
pub const CORPUS_DOCUMENTS: usize = 14_000;
/// Vocabulary size of the corpus tokenizer.
pub const CORPUS_VOCAB: usize = 2048;

/// `datasets/corpus` of this repository.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/corpus")
}

/// Generate the corpus of `seed` and write `train.txt` and `valid.txt` into `dir`
/// (atomically). Returns the documents written.
pub fn write_corpus(dir: &Path, seed: u64, documents: usize) -> Result<Documents> {
    let docs = corpus::generate(&World::generate(0), seed, documents);
    let Documents { train, valid } = &docs;
    crate::io::write_atomic(&dir.join("train.txt"), corpus::to_text(train).as_bytes())
        .with_context(|| format!("writing {}", dir.join("train.txt").display()))?;
    crate::io::write_atomic(&dir.join("valid.txt"), corpus::to_text(valid).as_bytes())
        .with_context(|| format!("writing {}", dir.join("valid.txt").display()))?;
    Ok(docs)
}

/// Read `train.txt` and `valid.txt` from `dir` as documents.
pub fn read_corpus(dir: &Path) -> Result<Documents> {
    let read = |name: &str| -> Result<Vec<String>> {
        let p = dir.join(name);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let docs = corpus::from_text(&text);
        if docs.is_empty() {
            anyhow::bail!("{}: no documents", p.display());
        }
        Ok(docs)
    };
    Ok(Documents {
        train: read("train.txt")?,
        valid: read("valid.txt")?,
    })
}

/// The corpus tokenizer: `dir/tokenizer.json` if present, else trained by
/// [`train_tokenizer`] on `train.txt` and saved there.
pub fn corpus_tokenizer(dir: &Path) -> Result<TextTokenizer> {
    let path = dir.join("tokenizer.json");
    if path.exists() {
        return TextTokenizer::from_file(&path);
    }
    let tok = train_tokenizer(&read_corpus(dir)?.train)?;
    tok.save(dir)?;
    Ok(tok)
}

/// The texts the project's tokenizer learns its merges from: the pre-training
/// documents, then the prompts and answers of the SFT demonstrations' training
/// split (`world::demonstrations`, the committed `datasets/sft` seed). With the
/// demonstrations in, the words of rung 4's answers ("resume", "practise") are
/// whole tokens instead of byte pieces the tiny model must learn to spell.
pub fn tokenizer_texts(corpus_train: &[String]) -> Vec<String> {
    let world = World::generate(0);
    let demos = crate::world::demonstrations::generate(
        &world,
        super::sft_data::DATASET_SEED,
        super::sft_data::DATASET_PER_KIND,
    )
    .train;
    let mut texts = corpus_train.to_vec();
    texts.extend(
        demos
            .into_iter()
            .map(|d| format!("{}\n{}", d.prompt, d.response)),
    );
    texts
}

/// Train the project's byte-level BPE ([`CORPUS_VOCAB`] tokens at most) on
/// [`tokenizer_texts`].
pub fn train_tokenizer(corpus_train: &[String]) -> Result<TextTokenizer> {
    TextTokenizer::train_bpe(tokenizer_texts(corpus_train).iter(), CORPUS_VOCAB)
}

/// Everything a pre-training run needs.
pub struct PretrainSetup {
    pub model: LanguageModel,
    pub data: TokenStream,
}

/// A fresh model of [`LlamaConfig::scaled`]`(vocab, scale)` and the corpus as
/// a token stream of `batch_size` windows of `seq_len` tokens.
pub fn setup(
    dir: &Path,
    scale: usize,
    batch_size: usize,
    seq_len: usize,
    seed: u64,
    device: &Device,
) -> Result<PretrainSetup> {
    let tokenizer = corpus_tokenizer(dir)?;
    let Documents { train, valid } = read_corpus(dir)?;
    let data = TokenStream::new(&tokenizer, &train, &valid, batch_size, seq_len, seed)?;
    let mut config = LlamaConfig::scaled(tokenizer.vocab_size(), scale);
    config.max_position_embeddings = config.max_position_embeddings.max(seq_len);
    let model = LanguageModel::new_random(config, tokenizer, seed, device, DType::F32)?;
    Ok(PretrainSetup { model, data })
}

/// `datasets/models/tiny-pretrained`: the tiny model pre-trained by
/// `rlhf-lab lm pretrain --steps 600 --seed 0` (committed, so rung 4 and its
/// tests start from a pre-trained model without pre-training again).
pub fn tiny_pretrained_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/models/tiny-pretrained")
}

/// Held-out next-token loss and perplexity of `lm` on the corpus's validation
/// text (`dir/valid.txt`): consecutive windows of `seq_len + 1` tokens, at
/// most `windows` of them. Later rungs measure their alignment tax with it:
/// how much fine-tuning towards answers costs the model's language modelling.
pub fn held_out_loss(
    lm: &LanguageModel,
    dir: &Path,
    windows: usize,
    seq_len: usize,
) -> Result<crate::lm::train::Metrics> {
    use crate::lm::train::Objective;
    let valid = read_corpus(dir)?.valid;
    let mut tokens = Vec::new();
    for d in &valid {
        tokens.extend(lm.tokenizer.encode(d)?);
        tokens.push(lm.tokenizer.eos_id());
    }
    let w = seq_len + 1;
    let rows: Vec<(Vec<u32>, Vec<bool>)> = tokens
        .chunks_exact(w)
        .take(windows.max(1))
        .map(|c| (c.to_vec(), vec![true; w]))
        .collect();
    if rows.is_empty() {
        anyhow::bail!(
            "{}: too little held-out text for one window of {w} tokens",
            dir.display()
        );
    }
    let batches = rows
        .chunks(16)
        .map(|c| super::data::LmBatch::from_rows(c, lm.tokenizer.pad_id(), lm.device()))
        .collect::<Result<Vec<_>>>()?;
    super::data::NextTokenLoss::new(lm).evaluate(&batches)
}
