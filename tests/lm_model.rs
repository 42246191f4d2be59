//! The transformer of rung 3 against its references: gradients reach every
//! weight, the KV cache changes nothing, logits equal candle-transformers'
//! `llama`, batched generation equals one prompt at a time, checkpoints and the
//! hub cache round-trip.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use rlhf_lab::lm::sample::generate_ids;
use rlhf_lab::lm::tokenizer::{pad_batch, PaddingSide};
use rlhf_lab::lm::{
    hub, weights, LanguageModel, Llama, LlamaConfig, SamplingConfig, TextTokenizer,
};

fn tiny_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_word_embeddings: false,
        bos_token_id: None,
        eos_token_id: None,
        pad_token_id: None,
    }
}

/// Random weights, scaled up from the 0.02 initialisation so that attention is
/// far from uniform and the tests are sensitive to mistakes.
fn random_model(
    cfg: &LlamaConfig,
    seed: u64,
) -> (Llama, std::collections::HashMap<String, Tensor>) {
    let mut w = weights::init_weights(cfg, seed);
    let mut rng = rlhf_lab::gridworld::Rng::new(seed + 100);
    for (name, t) in w.iter_mut() {
        if name.contains("norm") {
            let n = t.elem_count();
            let v: Vec<f32> = (0..n).map(|_| 1.0 + 0.3 * rng.normal() as f32).collect();
            *t = Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap();
        } else {
            *t = (&*t * 10.0).unwrap();
        }
    }
    let varmap = weights::into_varmap(cfg, w.clone(), &Device::Cpu, DType::F32, "test").unwrap();
    let model = Llama::new(
        cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    (model, w)
}

fn ids(rows: &[&[u32]]) -> Tensor {
    let t = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), t), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    rlhf_lab::lm::ops::max_abs_diff(a, b).unwrap()
}

#[test]
fn every_weight_gets_a_finite_nonzero_gradient() {
    for tie in [false, true] {
        let cfg = LlamaConfig {
            tie_word_embeddings: tie,
            ..tiny_config()
        };
        let w = weights::init_weights(&cfg, 3);
        let varmap = weights::into_varmap(&cfg, w, &Device::Cpu, DType::F32, "test").unwrap();
        let model = Llama::new(
            &cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let x = ids(&[&[1, 5, 9, 2, 7, 3], &[4, 4, 8, 1, 0, 6]]);
        let logp = model.token_log_probs(&x, None).unwrap();
        let loss = logp.mean_all().unwrap().neg().unwrap();
        let grads = loss.backward().unwrap();
        let vars = weights::named_vars(&varmap);
        assert_eq!(vars.len(), weights::expected_shapes(&cfg).len());
        for (name, var) in vars {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("no gradient for `{name}` (tied={tie})"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm.is_finite() && norm > 0.0,
                "`{name}` gradient norm² = {norm}"
            );
        }
    }
}

/// Incremental decoding (prefix, then one token at a time) gives the logits of
/// the full forward pass, with and without left padding. Tolerance 1e-4 (f32).
#[test]
fn kv_cache_logits_equal_full_forward() {
    let cfg = tiny_config();
    let (model, _) = random_model(&cfg, 1);
    let seq: Vec<u32> = vec![3, 14, 15, 9, 2, 6, 5, 35, 8, 9];
    let full = model.forward(&ids(&[&seq])).unwrap().logits;
    let mut cache = model.new_cache();
    let mut pieces = vec![
        model
            .forward_cached(&ids(&[&seq[..4]]), None, &mut cache)
            .unwrap()
            .logits,
    ];
    for &tok in &seq[4..] {
        pieces.push(
            model
                .forward_cached(&ids(&[&[tok]]), None, &mut cache)
                .unwrap()
                .logits,
        );
    }
    assert_eq!(cache.len(), seq.len());
    let incremental = Tensor::cat(&pieces, 1).unwrap();
    let d = max_abs_diff(&full, &incremental);
    assert!(d < 1e-4, "max |Δlogit| = {d}");

    // Row 0 left-padded by 3: its real positions must match the unpadded run.
    let short = &seq[..7];
    let batch = pad_batch(
        &[short.to_vec(), seq.clone()],
        0,
        PaddingSide::Left,
        &Device::Cpu,
    )
    .unwrap();
    let padded = model
        .forward_masked(&batch.input_ids, &batch.attention_mask)
        .unwrap()
        .logits;
    let alone = model.forward(&ids(&[short])).unwrap().logits;
    let d = max_abs_diff(&padded.i((0..1, 3..10, ..)).unwrap(), &alone);
    assert!(d < 1e-4, "padded vs alone: {d}");
    let d = max_abs_diff(&padded.i((1..2, .., ..)).unwrap(), &full);
    assert!(d < 1e-4, "unpadded row in a padded batch: {d}");
}

/// Same weights, same input: our logits equal candle-transformers' `llama`
/// (which returns the last position only) within 1e-4 in f32, for several
/// prefixes, both with and without tied embeddings and with GQA.
#[test]
fn logits_match_candle_transformers_llama() {
    use candle_transformers::models::llama as reference;
    for tie in [false, true] {
        let cfg = LlamaConfig {
            tie_word_embeddings: tie,
            ..tiny_config()
        };
        let (model, w) = random_model(&cfg, 7);
        let ref_cfg = reference::Config {
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            vocab_size: cfg.vocab_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: cfg.num_attention_heads,
            num_key_value_heads: cfg.num_key_value_heads,
            use_flash_attn: false,
            rms_norm_eps: cfg.rms_norm_eps,
            rope_theta: cfg.rope_theta as f32,
            bos_token_id: None,
            eos_token_id: None,
            rope_scaling: None,
            max_position_embeddings: cfg.max_position_embeddings,
            tie_word_embeddings: tie,
        };
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let reference_model = reference::Llama::load(vb, &ref_cfg).unwrap();
        let seq: Vec<u32> = vec![1, 2, 3, 60, 17, 42, 9, 9, 0, 33, 12];
        let ours = model.forward(&ids(&[&seq])).unwrap().logits;
        for end in [1, 4, seq.len()] {
            let mut cache =
                reference::Cache::new(false, DType::F32, &ref_cfg, &Device::Cpu).unwrap();
            let theirs = reference_model
                .forward(&ids(&[&seq[..end]]), 0, &mut cache)
                .unwrap();
            let d = max_abs_diff(
                &ours.i((0, end - 1, ..)).unwrap().unsqueeze(0).unwrap(),
                &theirs,
            );
            assert!(d < 1e-4, "tie={tie} prefix {end}: max |Δlogit| = {d}");
        }
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    let cfg = tiny_config();
    let (model, _) = random_model(&cfg, 11);
    let prompts: Vec<Vec<u32>> = vec![vec![5, 6], vec![7, 8, 9, 10, 11], vec![12, 13, 14]];
    for sampling in [
        SamplingConfig::greedy(12),
        SamplingConfig {
            max_new_tokens: 12,
            temperature: 1.0,
            top_p: Some(0.9),
            seed: 5,
            ..Default::default()
        },
    ] {
        for use_kv_cache in [true, false] {
            let s = SamplingConfig {
                use_kv_cache,
                ..sampling.clone()
            };
            let batched = generate_ids(&model, &prompts, 0, &[1], &s).unwrap();
            for (r, p) in prompts.iter().enumerate() {
                let alone_cfg = SamplingConfig {
                    seed: s.seed_for_row(r),
                    ..s.clone()
                };
                let alone =
                    generate_ids(&model, std::slice::from_ref(p), 0, &[1], &alone_cfg).unwrap();
                assert_eq!(
                    batched[r], alone[0],
                    "row {r}, cache {use_kv_cache}, T {}",
                    s.temperature
                );
            }
        }
    }
    // With and without the cache: same greedy tokens.
    let a = generate_ids(&model, &prompts, 0, &[1], &SamplingConfig::greedy(12)).unwrap();
    let b = generate_ids(
        &model,
        &prompts,
        0,
        &[1],
        &SamplingConfig {
            use_kv_cache: false,
            ..SamplingConfig::greedy(12)
        },
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn checkpoint_and_hub_cache_round_trip() {
    let tok = TextTokenizer::tiny();
    let cfg = LlamaConfig {
        vocab_size: tok.vocab_size(),
        ..tiny_config()
    };
    let lm = LanguageModel::new_random(cfg, tok, 5, &Device::Cpu, DType::F32).unwrap();
    let dir = std::env::temp_dir().join(format!("rlhf-lm-ckpt-{}", std::process::id()));
    lm.save(&dir).unwrap();
    let back = LanguageModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let x = ids(&[&[1, 2, 3, 4]]);
    let d = max_abs_diff(
        &lm.model.forward(&x).unwrap().logits,
        &back.model.forward(&x).unwrap().logits,
    );
    assert_eq!(d, 0.0);
    assert_eq!(
        back.tokenizer.encode("Mia has a dog").unwrap(),
        lm.tokenizer.encode("Mia has a dog").unwrap()
    );

    // A hub cache laid out as huggingface_hub does, built by hand, read offline.
    let cache = dir.join("hub");
    let snap = cache.join("models--test-org--tiny/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(cache.join("models--test-org--tiny/refs")).unwrap();
    std::fs::write(cache.join("models--test-org--tiny/refs/main"), "0123abcd").unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(dir.join(f), snap.join(f)).unwrap();
    }
    let found = hub::snapshot("test-org/tiny", Some(&cache), false).unwrap();
    assert_eq!(found, snap);
    let from_hub = LanguageModel::from_dir(&found, &Device::Cpu, DType::F32).unwrap();
    let d = max_abs_diff(
        &lm.model.forward(&x).unwrap().logits,
        &from_hub.model.forward(&x).unwrap().logits,
    );
    assert_eq!(d, 0.0);

    // Missing files are named, with the cache searched.
    std::fs::remove_file(snap.join("model.safetensors")).unwrap();
    let err = hub::snapshot("test-org/tiny", Some(&cache), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing model.safetensors") && err.contains("hub"),
        "{err}"
    );
    let err = hub::snapshot("nobody/nothing", Some(&cache), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing config.json, tokenizer.json, model.safetensors"),
        "{err}"
    );

    // A corrupt config names the file and field.
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    let err = format!(
        "{:#}",
        LanguageModel::load(&dir, &Device::Cpu, DType::F32).unwrap_err()
    );
    assert!(
        err.contains("config.json: missing field `hidden_size`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Half precision runs the same code: bf16 and f16 logits stay close to f32.
#[test]
fn half_precision_close_to_f32() {
    let cfg = tiny_config();
    let w = weights::init_weights(&cfg, 2);
    let x = ids(&[&[1, 2, 3, 4, 5, 6]]);
    let run = |dtype| {
        let vm = weights::into_varmap(&cfg, w.clone(), &Device::Cpu, dtype, "t").unwrap();
        let m = Llama::new(&cfg, VarBuilder::from_varmap(&vm, dtype, &Device::Cpu)).unwrap();
        m.forward(&x).unwrap().logits
    };
    let f32_logits = run(DType::F32);
    for dtype in [DType::BF16, DType::F16] {
        let d = max_abs_diff(&f32_logits, &run(dtype));
        // Logits are O(0.1) at this initialisation; bf16 keeps ~3 significant digits.
        assert!(d < 2e-2, "{dtype:?}: {d}");
    }
}
