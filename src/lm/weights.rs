//! Where a model's numbers come from: fresh initialisation, Hugging Face
//! safetensors, or a GGUF file (dequantized). Every source ends as a `VarMap`
//! of trainable variables named as in `LlamaForCausalLM`.

use super::config::LlamaConfig;
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gridworld::Rng;
use std::collections::HashMap;
use std::path::Path;

/// The names and shapes of every weight a model of `cfg` has.
pub fn expected_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, d],
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        out.extend([
            (format!("{p}.input_layernorm.weight"), vec![d]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q, d]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, d]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, d]),
            (format!("{p}.self_attn.o_proj.weight"), vec![d, q]),
            (format!("{p}.post_attention_layernorm.weight"), vec![d]),
            (format!("{p}.mlp.gate_proj.weight"), vec![f, d]),
            (format!("{p}.mlp.up_proj.weight"), vec![f, d]),
            (format!("{p}.mlp.down_proj.weight"), vec![d, f]),
        ]);
    }
    out.push(("model.norm.weight".into(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![cfg.vocab_size, d]));
    }
    out
}

/// Fresh weights from the project's seeded RNG, as GPT-2 / nanoGPT initialise:
/// N(0, 0.02²) for embeddings and projections, N(0, (0.02/√(2L))²) for the
/// projections that write into the residual stream (`o_proj`, `down_proj`),
/// ones for the RMSNorm gains. The same seed gives the same model everywhere.
pub fn init_weights(cfg: &LlamaConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut rng = Rng::new(seed);
    let residual_std = 0.02 / (2.0 * cfg.num_hidden_layers as f64).sqrt();
    expected_shapes(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else {
                let std = if name.contains("o_proj") || name.contains("down_proj") {
                    residual_std
                } else {
                    0.02
                };
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let t = Tensor::from_vec(data, shape, &Device::Cpu).expect("shape matches data");
            (name, t)
        })
        .collect()
}

/// The weights of the transformer without its output head (`model.*`), as
/// `LlamaForSequenceClassification` holds them.
pub fn trunk_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    expected_shapes(cfg)
        .into_iter()
        .filter(|(name, _)| name.starts_with("model."))
        .collect()
}

/// Check names and shapes against `cfg` (errors name the tensor and `source`),
/// then move the tensors into a `VarMap` on `device` in `dtype`.
pub fn into_varmap(
    cfg: &LlamaConfig,
    tensors: HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
    source: &str,
) -> Result<VarMap> {
    into_varmap_with(expected_shapes(cfg), tensors, device, dtype, source)
}

/// [`into_varmap`] against an explicit list of names and shapes.
pub fn into_varmap_with(
    shapes: Vec<(String, Vec<usize>)>,
    mut tensors: HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
    source: &str,
) -> Result<VarMap> {
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().expect("varmap lock");
        for (name, shape) in shapes {
            let t = tensors
                .remove(&name)
                .with_context(|| format!("{source}: missing weight `{name}`"))?;
            if t.dims() != shape.as_slice() {
                bail!(
                    "{source}: weight `{name}` has shape {:?}, the config needs {shape:?}",
                    t.dims()
                );
            }
            let t = t.to_dtype(dtype)?.to_device(device)?;
            data.insert(name, Var::from_tensor(&t)?);
        }
    }
    // A tied checkpoint may still carry lm_head (a copy of the embedding): ignore it.
    tensors.remove("lm_head.weight");
    if let Some(extra) = tensors.keys().next() {
        bail!("{source}: unexpected weight `{extra}` (is the config right?)");
    }
    Ok(varmap)
}

pub use crate::nn::named_vars;

/// Tensors of `varmap` (for saving).
pub fn tensors_of(varmap: &VarMap) -> HashMap<String, Tensor> {
    named_vars(varmap)
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect()
}

/// Read `model.safetensors`, or every shard listed in `model.safetensors.index.json`.
pub fn read_safetensors_dir(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if single.exists() {
        vec![single]
    } else if index.exists() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading {}", index.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .with_context(|| format!("{}: no `weight_map`", index.display()))?;
        let mut names: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        bail!(
            "{}: no model.safetensors or model.safetensors.index.json",
            dir.display()
        );
    };
    let mut out = HashMap::new();
    for f in files {
        out.extend(read_safetensors_file(&f)?);
    }
    Ok(out)
}

/// Read one safetensors file of weights (on the CPU); a tensor holding NaN or
/// ±Inf is an error naming the file and the tensor ([`ensure_finite_weight`]).
pub fn read_safetensors_file(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
    let source = path.display().to_string();
    for (name, t) in &tensors {
        ensure_finite_weight(t, name, &source)?;
    }
    Ok(tensors)
}

/// An error naming `source` and the tensor `name` if `t` holds a NaN or an
/// infinity: such a model loads but computes NaN everywhere (and samples the
/// empty string), so it is refused where it is read.
pub fn ensure_finite_weight(t: &Tensor, name: &str, source: &str) -> Result<()> {
    if !t.dtype().is_float() {
        return Ok(());
    }
    // x · 0 is 0 for every finite x and NaN for NaN and ±Inf.
    let s = t
        .affine(0.0, 0.0)?
        .sum_all()?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?;
    if s != 0.0 {
        bail!("{source}: weight `{name}` holds NaN or infinite values; the model is broken (was it saved from a run that diverged?)");
    }
    Ok(())
}

/// The model config stored in GGUF metadata (`llama.*` keys).
pub fn gguf_config(content: &gguf_file::Content, source: &str) -> Result<LlamaConfig> {
    let md = &content.metadata;
    let get = |k: &str| {
        md.get(k)
            .with_context(|| format!("{source}: GGUF metadata has no `{k}`"))
    };
    let arch = get("general.architecture")?.to_string()?.clone();
    if arch != "llama" {
        bail!("{source}: architecture `{arch}` is not supported (only `llama`)");
    }
    let u = |k: &str| -> Result<usize> { Ok(get(k)?.to_u32()? as usize) };
    let vocab_size = match md.get("llama.vocab_size") {
        Some(v) => v.to_u32()? as usize,
        None => get("tokenizer.ggml.tokens")?.to_vec()?.len(),
    };
    let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
    let cfg = LlamaConfig {
        vocab_size,
        hidden_size: u("llama.embedding_length")?,
        intermediate_size: u("llama.feed_forward_length")?,
        num_hidden_layers: u("llama.block_count")?,
        num_attention_heads: u("llama.attention.head_count")?,
        num_key_value_heads: u("llama.attention.head_count_kv")?,
        max_position_embeddings: u("llama.context_length")?,
        rms_norm_eps: get("llama.attention.layer_norm_rms_epsilon")?.to_f32()? as f64,
        rope_theta: md
            .get("llama.rope.freq_base")
            .map(|v| v.to_f32())
            .transpose()?
            .unwrap_or(10_000.0) as f64,
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_id: id("tokenizer.ggml.eos_token_id"),
        pad_token_id: id("tokenizer.ggml.padding_token_id"),
    };
    // Check the fields before `head_dim()` divides by one of them.
    cfg.validate().with_context(|| source.to_string())?;
    if let Some(rd) = md.get("llama.rope.dimension_count") {
        if rd.to_u32()? as usize != cfg.head_dim() {
            bail!("{source}: partial rotary embeddings (llama.rope.dimension_count) are not supported");
        }
    }
    Ok(cfg)
}

/// GGUF tensor names → Hugging Face names.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Undo llama.cpp's reordering of query/key rows. The converter stores each
/// head's rows interleaved (pairs (2j, 2j+1) rotate together, `rope_i`), where
/// Hugging Face keeps halves (j, j + d/2): row (h, j, p) of the file is row
/// (h, p, j) of the Hugging Face weight.
pub fn unpermute_qk(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / heads;
    Ok(w.reshape((heads, hd / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Dequantize every tensor of a GGUF llama file to f32, with Hugging Face names
/// and layout.
pub fn read_gguf_tensors(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
    cfg: &LlamaConfig,
    source: &str,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else {
            if name == "rope_freqs.weight" {
                bail!("{source}: `rope_freqs.weight` (scaled RoPE) is not supported");
            }
            bail!("{source}: unexpected tensor `{name}`");
        };
        let q = content
            .tensor(file, name, &Device::Cpu)
            .with_context(|| format!("{source}: reading tensor `{name}`"))?;
        let mut t = q.dequantize(&Device::Cpu)?;
        ensure_finite_weight(&t, name, source)?;
        if hf.ends_with("q_proj.weight") {
            t = unpermute_qk(&t, cfg.num_attention_heads)?;
        } else if hf.ends_with("k_proj.weight") {
            t = unpermute_qk(&t, cfg.num_key_value_heads)?;
        }
        out.insert(hf, t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The un-permutation inverts llama.cpp's `permute` (written here as in
    /// convert_hf_to_gguf.py: reshape(h, 2, d/2, c).swapaxes(1, 2)).
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, hd, cols) = (3, 4, 2);
        let w = Tensor::arange(0f32, (heads * hd * cols) as f32, &Device::Cpu)
            .unwrap()
            .reshape((heads * hd, cols))
            .unwrap();
        let permuted = w
            .reshape((heads, 2, hd / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((heads * hd, cols))
            .unwrap();
        let back = unpermute_qk(&permuted, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        assert_ne!(
            permuted.to_vec2::<f32>().unwrap(),
            w.to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn varmap_checks_names_and_shapes() {
        let cfg = LlamaConfig {
            num_hidden_layers: 1,
            ..LlamaConfig::tiny(50)
        };
        let mut w = init_weights(&cfg, 1);
        assert!(into_varmap(&cfg, w.clone(), &Device::Cpu, DType::F32, "x").is_ok());
        w.insert(
            "model.norm.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = into_varmap(&cfg, w.clone(), &Device::Cpu, DType::F32, "ckpt")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("ckpt: weight `model.norm.weight` has shape [3]"),
            "{err}"
        );
        w.remove("model.norm.weight");
        let err = into_varmap(&cfg, w, &Device::Cpu, DType::F32, "ckpt")
            .err()
            .unwrap();
        assert!(err
            .to_string()
            .contains("missing weight `model.norm.weight`"));
    }
}
