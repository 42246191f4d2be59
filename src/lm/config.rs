//! The shape of a Llama-style model, read from and written to Hugging Face's
//! `config.json` (`LlamaForCausalLM`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Hyper-parameters of a [`super::Llama`] decoder, with the field names of
/// Hugging Face's `LlamaConfig` so that `config.json` round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    /// Query heads h.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention: h / kv query heads share one).
    pub num_key_value_heads: usize,
    /// Longest sequence the rotary tables cover.
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    /// Base θ of the rotary frequencies θ^(−2i/d_head).
    pub rope_theta: f64,
    /// Share the output projection with the token embedding.
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// Width of one attention head, d / h.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The tiny model the CPU notebooks pre-train: 4 layers of width 128,
    /// 4 query heads sharing 2 key/value heads, tied embeddings.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 128,
            intermediate_size: 344,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 512,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// SmolLM2-135M's shape (Hugging Face `HuggingFaceTB/SmolLM2-135M`): 30
    /// layers of width 576, 9 query heads sharing 3 key/value heads, SwiGLU
    /// width 1536, vocabulary 49,152, tied embeddings — for arithmetic
    /// without loading the weights.
    pub fn smollm2_135m() -> Self {
        Self {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            max_position_embeddings: 8192,
            rope_theta: 100_000.0,
            ..Self::tiny(49152)
        }
    }

    /// The tiny model scaled by `scale` in width (heads grow with it) and
    /// depth: `scaled(v, 1)` is [`Self::tiny`]; `scaled(v, 4)` is a
    /// 16-layer, width-512 model for a GPU.
    pub fn scaled(vocab_size: usize, scale: usize) -> Self {
        let s = scale.max(1);
        let hidden = 128 * s;
        Self {
            hidden_size: hidden,
            intermediate_size: (hidden * 8 / 3).div_ceil(8) * 8,
            num_hidden_layers: 4 * s,
            num_attention_heads: 4 * s,
            num_key_value_heads: 2 * s,
            ..Self::tiny(vocab_size)
        }
    }

    /// Number of parameters (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let kv = self.num_key_value_heads * self.head_dim();
        let attn = d * d * 2 + d * kv * 2;
        let mlp = 3 * d * self.intermediate_size;
        let per_layer = attn + mlp + 2 * d;
        let embed = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + self.num_hidden_layers * per_layer + d
    }

    /// Check that the shapes fit together; errors name the field. Every
    /// field is checked before any arithmetic on it (no division by zero).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in positive {
            if v == 0 {
                bail!("config field `{name}` must be positive, got 0");
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "config field `hidden_size` ({}) must be a multiple of `num_attention_heads` ({})",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if self.head_dim() % 2 != 0 {
            bail!(
                "config fields `hidden_size` / `num_attention_heads` ({} / {} = {}) must give an even head width for rotary embeddings",
                self.hidden_size,
                self.num_attention_heads,
                self.head_dim()
            );
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            bail!(
                "config field `num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.num_key_value_heads
            );
        }
        for (name, v) in [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("config field `{name}` must be a positive finite number, got {v}");
            }
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= self.vocab_size) {
                bail!(
                    "config field `{name}` ({id}) must be below `vocab_size` ({})",
                    self.vocab_size
                );
            }
        }
        Ok(())
    }

    /// Parse Hugging Face `config.json` text. `source` names the file in errors.
    ///
    /// Reads `rope_theta` at the top level or, as transformers 5 writes it, under
    /// `rope_parameters.rope_theta`; `num_key_value_heads` defaults to
    /// `num_attention_heads`; a list of `eos_token_id`s keeps the first.
    pub fn from_json_str(text: &str, source: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).with_context(|| format!("{source}: not valid JSON"))?;
        let obj = v
            .as_object()
            .with_context(|| format!("{source}: expected a JSON object"))?;
        if let Some(mt) = obj.get("model_type").and_then(|m| m.as_str()) {
            if !["llama", "mistral", "qwen2"].contains(&mt) && mt != "smollm" {
                bail!("{source}: model_type `{mt}` is not a Llama-style decoder");
            }
        }
        let usize_field = |name: &str| -> Result<usize> {
            match obj.get(name) {
                Some(x) => x.as_u64().map(|x| x as usize).with_context(|| {
                    format!("{source}: field `{name}` must be a non-negative integer, got {x}")
                }),
                None => bail!("{source}: missing field `{name}`"),
            }
        };
        let f64_field = |name: &str| -> Result<Option<f64>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .with_context(|| format!("{source}: field `{name}` must be a number, got {x}")),
            }
        };
        let token_field = |name: &str| -> Result<Option<u32>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Array(a)) => {
                    Ok(a.first().and_then(|x| x.as_u64()).map(|x| x as u32))
                }
                Some(x) => x.as_u64().map(|x| Some(x as u32)).with_context(|| {
                    format!("{source}: field `{name}` must be a token id, got {x}")
                }),
            }
        };
        let heads = usize_field("num_attention_heads")?;
        let rope_theta = match f64_field("rope_theta")? {
            Some(t) => t,
            None => obj
                .get("rope_parameters")
                .and_then(|p| p.get("rope_theta"))
                .and_then(|t| t.as_f64())
                .unwrap_or(10_000.0),
        };
        if let Some(rs) = obj.get("rope_scaling").filter(|r| !r.is_null()) {
            let kind = rs
                .get("rope_type")
                .or(rs.get("type"))
                .and_then(|t| t.as_str());
            if kind != Some("default") {
                bail!("{source}: field `rope_scaling` ({rs}) is not supported; only plain RoPE is");
            }
        }
        let cfg = Self {
            vocab_size: usize_field("vocab_size")?,
            hidden_size: usize_field("hidden_size")?,
            intermediate_size: usize_field("intermediate_size")?,
            num_hidden_layers: usize_field("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: if obj.contains_key("num_key_value_heads") {
                usize_field("num_key_value_heads")?
            } else {
                heads
            },
            max_position_embeddings: if obj.contains_key("max_position_embeddings") {
                usize_field("max_position_embeddings")?
            } else {
                2048
            },
            rms_norm_eps: f64_field("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            tie_word_embeddings: obj
                .get("tie_word_embeddings")
                .and_then(|t| t.as_bool())
                .unwrap_or(false),
            bos_token_id: token_field("bos_token_id")?,
            eos_token_id: token_field("eos_token_id")?,
            pad_token_id: token_field("pad_token_id")?,
        };
        // Check the fields before `head_dim()` divides by one of them.
        cfg.validate().with_context(|| source.to_string())?;
        if let Some(hd) = obj.get("head_dim").and_then(|h| h.as_u64()) {
            if hd as usize != cfg.head_dim() {
                bail!(
                    "{source}: field `head_dim` ({hd}) differs from hidden_size / num_attention_heads ({}); not supported",
                    cfg.head_dim()
                );
            }
        }
        Ok(cfg)
    }

    /// Read `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// `config.json` text that Hugging Face transformers loads as `LlamaForCausalLM`.
    pub fn to_hf_json(&self) -> String {
        self.to_hf_json_as("LlamaForCausalLM", &[])
    }

    /// `config.json` text for another Llama architecture (for example
    /// `LlamaForSequenceClassification`), with `extra` fields added.
    pub fn to_hf_json_as(&self, architecture: &str, extra: &[(&str, serde_json::Value)]) -> String {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let o = v.as_object_mut().expect("object");
        o.insert("architectures".into(), serde_json::json!([architecture]));
        for (k, x) in extra {
            o.insert(k.to_string(), x.clone());
        }
        o.insert("model_type".into(), "llama".into());
        o.insert("hidden_act".into(), "silu".into());
        o.insert("torch_dtype".into(), "float32".into());
        o.insert("head_dim".into(), self.head_dim().into());
        o.insert("rope_scaling".into(), serde_json::Value::Null);
        serde_json::to_string_pretty(&v).expect("json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rope_theta_from_either_place_and_names_bad_fields() {
        let base = LlamaConfig::tiny(100);
        let back = LlamaConfig::from_json_str(&base.to_hf_json(), "c.json").unwrap();
        assert_eq!(back, base);

        let mut v: serde_json::Value = serde_json::from_str(&base.to_hf_json()).unwrap();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = serde_json::json!({"rope_theta": 100000.0, "rope_type": "default"});
        let c = LlamaConfig::from_json_str(&v.to_string(), "c.json").unwrap();
        assert_eq!(c.rope_theta, 100000.0);

        v.as_object_mut().unwrap().remove("hidden_size");
        let err = LlamaConfig::from_json_str(&v.to_string(), "dir/config.json").unwrap_err();
        assert!(format!("{err:#}").contains("dir/config.json: missing field `hidden_size`"));

        let mut bad = base.clone();
        bad.num_key_value_heads = 3;
        assert!(format!("{:#}", bad.validate().unwrap_err()).contains("num_key_value_heads"));
    }

    #[test]
    fn parameter_count_of_smollm2_135m() {
        // The published count of SmolLM2-135M.
        assert_eq!(LlamaConfig::smollm2_135m().num_parameters(), 134_515_008);
    }
}
