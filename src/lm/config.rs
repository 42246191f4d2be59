//! The shape of a Llama-style model, read from and written to Hugging Face's
//! `config.json` (`LlamaForCausalLM`).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Hyper-parameters of a [`super::Llama`] decoder, with the field names of
/// Hugging Face's `LlamaConfig` so that `config.json` round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Number of token ids the embedding and the output head cover.
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads h.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention: h / kv query heads share one).
    pub num_key_value_heads: usize,
    /// Longest sequence the rotary tables cover.
    pub max_position_embeddings: usize,
    /// ε inside RMSNorm's square root.
    pub rms_norm_eps: f64,
    /// Base θ of the rotary frequencies θ^(−2i/d_head).
    pub rope_theta: f64,
    /// Share the output projection with the token embedding.
    pub tie_word_embeddings: bool,
    /// Start-of-sequence token, when the tokenizer has one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token (the first, when `config.json` lists several).
    pub eos_token_id: Option<u32>,
    /// Padding token, when the tokenizer has one.
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
    /// The file is read into a serde struct (`HfConfigJson`) that carries
    /// transformers' defaults; then the shapes are checked ([`Self::validate`]).
    pub fn from_json_str(text: &str, source: &str) -> Result<Self> {
        let hf: HfConfigJson =
            serde_json::from_str(text).map_err(|e| json_error(e, text, source))?;
        if let Some(mt) = hf.model_type.as_deref() {
            if !["llama", "mistral", "qwen2", "smollm"].contains(&mt) {
                bail!("{source}: model_type `{mt}` is not a Llama-style decoder");
            }
        }
        if let Some(rs) = hf.rope_scaling.as_ref().filter(|r| !r.is_null()) {
            let kind = rs
                .get("rope_type")
                .or(rs.get("type"))
                .and_then(|t| t.as_str());
            if kind != Some("default") {
                bail!("{source}: field `rope_scaling` ({rs}) is not supported; only plain RoPE is");
            }
        }
        let rope_theta = hf
            .rope_theta
            .or(hf.rope_parameters.and_then(|p| p.rope_theta))
            .unwrap_or(DEFAULT_ROPE_THETA);
        let cfg = Self {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            max_position_embeddings: hf.max_position_embeddings,
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta,
            tie_word_embeddings: hf.tie_word_embeddings,
            bos_token_id: hf.bos_token_id.and_then(TokenIds::first),
            eos_token_id: hf.eos_token_id.and_then(TokenIds::first),
            pad_token_id: hf.pad_token_id.and_then(TokenIds::first),
        };
        // Check the fields before `head_dim()` divides by one of them.
        cfg.validate().with_context(|| source.to_string())?;
        if let Some(hd) = hf.head_dim.filter(|&hd| hd != cfg.head_dim()) {
            bail!(
                "{source}: field `head_dim` ({hd}) differs from hidden_size / num_attention_heads ({}); not supported",
                cfg.head_dim()
            );
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

// transformers' `LlamaConfig` defaults for the fields a `config.json` may leave out.
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
/// Also used when `rope_parameters` holds no `rope_theta` either.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// `config.json` as Hugging Face writes it, as candle-transformers' `LlamaConfig`
/// reads it: the fields rlhf-lab uses, optional ones with transformers' defaults,
/// anything else ignored. [`LlamaConfig::from_json_str`] turns it into a
/// [`LlamaConfig`].
#[derive(Debug, Deserialize)]
struct HfConfigJson {
    /// `llama`, `mistral`, `qwen2` or `smollm`; anything else is refused.
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    /// Absent: one key/value head per query head (no grouping).
    num_key_value_heads: Option<usize>,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    /// At the top level (transformers 4) or under `rope_parameters` (transformers 5).
    rope_theta: Option<f64>,
    rope_parameters: Option<RopeParameters>,
    /// Only absent, null or `{"rope_type": "default"}` is supported.
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    tie_word_embeddings: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
    pad_token_id: Option<TokenIds>,
    /// When present it must equal hidden_size / num_attention_heads.
    head_dim: Option<usize>,
}

/// transformers 5's `rope_parameters` object.
#[derive(Debug, Deserialize)]
struct RopeParameters {
    rope_theta: Option<f64>,
}

/// A token id, or a list of them (SmolLM2-Instruct lists several `eos_token_id`s).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// The id, or the first of the list.
    fn first(self) -> Option<u32> {
        match self {
            TokenIds::One(id) => Some(id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }
}

/// serde's error with the file name in front. serde names a missing field
/// itself; for a value of the wrong type it gives only the position, so the
/// key that value belongs to is named too.
fn json_error(e: serde_json::Error, text: &str, source: &str) -> anyhow::Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data if !e.to_string().starts_with("missing field") => {
            match key_before(text, e.line(), e.column()) {
                Some(key) => anyhow!("{source}: field `{key}`: {e}"),
                None => anyhow!("{source}: {e}"),
            }
        }
        Category::Data => anyhow!("{source}: {e}"),
        _ => anyhow!("{source}: not valid JSON: {e}"),
    }
}

/// The last `"key":` in `text` before 1-based `line`:`column`, where serde_json
/// reports a bad value.
fn key_before(text: &str, line: usize, column: usize) -> Option<&str> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let before = text.get(..(line_start + column).min(text.len()))?;
    let mut rest = before;
    while let Some(colon) = rest.rfind(':') {
        rest = &rest[..colon];
        if let Some(quoted) = rest.trim_end().strip_suffix('"') {
            if let Some(open) = quoted.rfind('"') {
                return Some(&quoted[open + 1..]);
            }
        }
    }
    None
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
    fn wrong_types_name_file_and_field_and_defaults_fill_the_rest() {
        let mut v: serde_json::Value =
            serde_json::from_str(&LlamaConfig::tiny(100).to_hf_json()).unwrap();
        v["num_attention_heads"] = serde_json::json!("four");
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            let err = format!(
                "{:#}",
                LlamaConfig::from_json_str(&text, "c.json").unwrap_err()
            );
            assert!(
                err.starts_with("c.json: field `num_attention_heads`: invalid type"),
                "{err}"
            );
        }
        let err = LlamaConfig::from_json_str("{", "c.json").unwrap_err();
        assert!(
            err.to_string().starts_with("c.json: not valid JSON"),
            "{err}"
        );

        v["num_attention_heads"] = 4.into();
        v["eos_token_id"] = serde_json::json!([7, 9]);
        for field in [
            "num_key_value_heads",
            "max_position_embeddings",
            "rms_norm_eps",
        ] {
            v.as_object_mut().unwrap().remove(field);
        }
        let c = LlamaConfig::from_json_str(&v.to_string(), "c.json").unwrap();
        assert_eq!(c.eos_token_id, Some(7));
        assert_eq!(c.num_key_value_heads, 4);
        assert_eq!(c.max_position_embeddings, 2048);
        assert_eq!(c.rms_norm_eps, 1e-6);
    }

    #[test]
    fn parameter_count_of_smollm2_135m() {
        // The published count of SmolLM2-135M.
        assert_eq!(LlamaConfig::smollm2_135m().num_parameters(), 134_515_008);
    }
}
