//! Low-rank adapters (LoRA; Hu et al. 2021, *LoRA: Low-Rank Adaptation of Large
//! Language Models*), in Hugging Face PEFT's conventions and file format.
//!
//! A frozen projection `W` (out, in) gets a trainable low-rank update:
//!
//! ```text
//! y = W x + s · B A x          A (r, in), B (out, r), r ≪ min(in, out)
//! s = α / r                    (rsLoRA, Kalajdzievski 2023: s = α / √r)
//! A ~ U(−1/√in, 1/√in)         PEFT's kaiming_uniform_(a = √5)
//! B = 0                        so at initialisation the model is the base model
//! ```
//!
//! Training A and B only costs `r · (in + out)` parameters per projection instead
//! of `in · out`. Switching the adapters off gives back the base model exactly —
//! in RLHF that is the frozen reference policy, without a second copy of the
//! weights. Merging writes `W ← W + s·BA` (one matrix product at inference);
//! unmerging subtracts it again.
//!
//! Files, as PEFT's `save_pretrained` writes them: `adapter_config.json`
//! ([`LoraConfig`]) and `adapter_model.safetensors` with keys
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (r, in)
//! and `….lora_B.weight` (out, r).

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The seven projections of a Llama block that can carry an adapter, by
/// Hugging Face's module names.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The adapter's hyper-parameters, serialised as PEFT's `adapter_config.json`.
/// Fields PEFT writes that rlhf-lab does not use are kept as they were read
/// (`other`); those that would change the maths if set (DoRA, per-layer ranks,
/// extra trained modules, …) are refused by [`Self::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// Always `"LORA"`.
    pub peft_type: String,
    /// PEFT's task type: `"CAUSAL_LM"` for a language model.
    pub task_type: Option<String>,
    /// Rank r of the update B·A.
    pub r: usize,
    /// α: the update is scaled by α/r (or α/√r with `use_rslora`).
    pub lora_alpha: f64,
    /// Projections that get an adapter, from [`PROJECTIONS`] (or `"all-linear"`;
    /// PEFT's files may also hold that shorthand as a plain string).
    #[serde(deserialize_with = "one_or_many")]
    pub target_modules: Vec<String>,
    /// Dropout on the adapter's input during training (PEFT's default 0).
    pub lora_dropout: f64,
    /// Which biases train: only `"none"` (Llama has no biases).
    pub bias: String,
    /// rsLoRA scaling α/√r instead of α/r.
    pub use_rslora: bool,
    /// Where the base model lives (a folder, a `.gguf` file or a hub id).
    pub base_model_name_or_path: Option<String>,
    /// Anything else in the file, kept for a faithful round trip.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A list of names, or one name as a string (PEFT writes `"all-linear"` so).
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for LoraConfig {
    /// PEFT's defaults for a Llama: r = 8, α = 8, q and v projections, no dropout.
    fn default() -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: 8,
            lora_alpha: 8.0,
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            lora_dropout: 0.0,
            bias: "none".into(),
            use_rslora: false,
            base_model_name_or_path: None,
            other: BTreeMap::new(),
        }
    }
}

/// PEFT options that change what the adapter computes, with the value that
/// means "off". A file that sets one of them otherwise is refused rather than
/// silently read as plain LoRA.
const UNSUPPORTED_WHEN_SET: [(&str, &str); 11] = [
    ("use_dora", "false"),
    ("fan_in_fan_out", "false"),
    ("modules_to_save", "null"),
    ("layers_to_transform", "null"),
    ("rank_pattern", "{}"),
    ("alpha_pattern", "{}"),
    ("megatron_config", "null"),
    ("lora_bias", "false"),
    ("layer_replication", "null"),
    ("target_parameters", "null"),
    ("trainable_token_indices", "null"),
];

impl LoraConfig {
    /// `r` and `α` with the other fields at PEFT's defaults.
    pub fn new(r: usize, lora_alpha: f64, target_modules: &[&str]) -> Self {
        Self {
            r,
            lora_alpha,
            target_modules: target_modules.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    /// The scale s of the update: α/r, or α/√r with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// The target projections, `"all-linear"` expanded, in [`PROJECTIONS`] order.
    pub fn targets(&self) -> Vec<&'static str> {
        let all = self.target_modules.iter().any(|t| t == "all-linear");
        PROJECTIONS
            .into_iter()
            .filter(|p| all || self.target_modules.iter().any(|t| t == p))
            .collect()
    }

    /// Errors name the field and say what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.peft_type != "LORA" {
            bail!(
                "peft_type is {:?}; only \"LORA\" adapters are supported",
                self.peft_type
            );
        }
        if self.r == 0 {
            bail!("r must be at least 1 (the rank of the update B·A)");
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            bail!(
                "lora_alpha must be a positive number, got {}",
                self.lora_alpha
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            bail!("lora_dropout must be in [0, 1), got {}", self.lora_dropout);
        }
        if self.bias != "none" {
            bail!(
                "bias is {:?}; only \"none\" is supported (Llama's projections have no bias)",
                self.bias
            );
        }
        if self.target_modules.is_empty() {
            bail!(
                "target_modules is empty: name at least one of {PROJECTIONS:?} (or \"all-linear\")"
            );
        }
        for t in &self.target_modules {
            if t != "all-linear" && !PROJECTIONS.contains(&t.as_str()) {
                bail!("target_modules: unknown module {t:?}; expected one of {PROJECTIONS:?} or \"all-linear\"");
            }
        }
        for (field, off) in UNSUPPORTED_WHEN_SET {
            if let Some(v) = self.other.get(field) {
                let off: serde_json::Value = serde_json::from_str(off).expect("constant JSON");
                let empty_list = v.as_array().is_some_and(|a| a.is_empty());
                if *v != off && !empty_list {
                    bail!("{field} is {v}; rlhf-lab supports plain LoRA only ({field}: {off})");
                }
            }
        }
        Ok(())
    }

    /// Read and check `adapter_config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a LoRA adapter config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    /// The JSON PEFT reads (pretty-printed, `inference_mode` set as PEFT saves
    /// it, `"all-linear"` spelled out as the module names it stands for).
    pub fn to_json(&self) -> String {
        let mut cfg = self.clone();
        cfg.target_modules = self.targets().iter().map(|t| t.to_string()).collect();
        cfg.other
            .entry("inference_mode".into())
            .or_insert(serde_json::Value::Bool(true));
        serde_json::to_string_pretty(&cfg).expect("a LoraConfig always serialises")
    }
}

/// Whether adapters add their update, and whether they are training (dropout
/// on): shared by every adapter of one model, so one call switches them all
/// (PEFT's `disable_adapter()`, PyTorch's `train()` / `eval()`).
#[derive(Debug, Clone, Default)]
pub struct AdapterSwitch(Arc<SwitchState>);

#[derive(Debug, Default)]
struct SwitchState {
    state: AtomicU8,
    training: AtomicBool,
    /// Seed of the current training step's dropout masks.
    step_seed: AtomicU64,
    /// Masks drawn so far in this step.
    masks: AtomicU64,
}

/// The state of an [`AdapterSwitch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterState {
    /// `y = W x + s·B A x`.
    Active,
    /// `y = W x`: the base model.
    Disabled,
    /// `W` already holds `W + s·BA`, so the adapter adds nothing more.
    Merged,
}

impl AdapterSwitch {
    pub fn state(&self) -> AdapterState {
        match self.0.state.load(Ordering::SeqCst) {
            0 => AdapterState::Active,
            1 => AdapterState::Disabled,
            _ => AdapterState::Merged,
        }
    }

    pub fn set(&self, state: AdapterState) {
        let v = match state {
            AdapterState::Active => 0,
            AdapterState::Disabled => 1,
            AdapterState::Merged => 2,
        };
        self.0.state.store(v, Ordering::SeqCst);
    }

    /// Training mode (dropout on) for the step seeded `step_seed`, or eval
    /// mode. Entering training restarts the step's sequence of masks, so a
    /// step's masks depend on its seed only (a resumed run draws the same).
    pub fn set_training(&self, training: bool, step_seed: u64) {
        self.0.step_seed.store(step_seed, Ordering::SeqCst);
        self.0.masks.store(0, Ordering::SeqCst);
        self.0.training.store(training, Ordering::SeqCst);
    }

    pub fn is_training(&self) -> bool {
        self.0.training.load(Ordering::SeqCst)
    }

    /// The seed of the next dropout mask of this step.
    fn next_mask_seed(&self) -> u64 {
        let k = self.0.masks.fetch_add(1, Ordering::SeqCst);
        crate::seeds::seed_for(
            self.0.step_seed.load(Ordering::SeqCst),
            crate::seeds::Stream::DropoutMask,
            k,
        )
    }
}

/// Inverted dropout's mask (Srivastava et al. 2014): each of `n` entries is 0
/// with probability `p`, else 1/(1 − p), so the expected value is 1; drawn
/// from the project's seeded RNG.
pub fn dropout_mask(n: usize, p: f64, seed: u64) -> Vec<f32> {
    let mut rng = gridworld::Rng::new(seed);
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..n)
        .map(|_| if rng.uniform() < p { 0.0 } else { keep })
        .collect()
}

/// One projection's adapter: the update `s · B A x`.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// A, (r, in).
    pub a: Tensor,
    /// B, (out, r).
    pub b: Tensor,
    /// s = α/r (or α/√r).
    pub scale: f64,
    /// Dropout probability on the adapter's input while training.
    pub dropout: f64,
    switch: AdapterSwitch,
}

impl LoraAdapter {
    pub fn new(a: Tensor, b: Tensor, scale: f64, dropout: f64, switch: AdapterSwitch) -> Self {
        Self {
            a,
            b,
            scale,
            dropout,
            switch,
        }
    }

    /// Whether the update is added in the forward pass (on and not merged).
    pub fn is_active(&self) -> bool {
        self.switch.state() == AdapterState::Active
    }

    /// `(s·B) (A dropout(x))` for x (…, in): two thin matrix products, never
    /// the full (out, in) matrix; the scale goes on the small B (out, r), so
    /// the only activation-sized tensors are A x (r wide) and the update
    /// itself. Dropout acts only in training mode, as in PEFT.
    pub fn update(&self, x: &Tensor) -> Result<Tensor> {
        let dropped;
        let x = if self.dropout > 0.0 && self.switch.is_training() {
            let mask = dropout_mask(x.elem_count(), self.dropout, self.switch.next_mask_seed());
            let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
            dropped = (x * mask)?;
            &dropped
        } else {
            x
        };
        let down = super::ops::linear(x, &self.a)?;
        Ok(super::ops::linear(&down, &(&self.b * self.scale)?)?)
    }

    /// The same adapter with A and B detached from autograd (a frozen model).
    pub fn detached(&self) -> Self {
        Self {
            a: self.a.detach(),
            b: self.b.detach(),
            ..self.clone()
        }
    }

    /// `s · B A`, (out, in): what merging adds to W.
    pub fn delta_weight(&self) -> Result<Tensor> {
        Ok((self.b.matmul(&self.a)? * self.scale)?)
    }
}

/// (name, in, out) of the seven projections of one block of `cfg`.
pub fn projection_shapes(cfg: &super::LlamaConfig) -> [(&'static str, usize, usize); 7] {
    let (d, f, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
    [
        ("q_proj", d, q),
        ("k_proj", d, kv),
        ("v_proj", d, kv),
        ("o_proj", q, d),
        ("gate_proj", d, f),
        ("up_proj", d, f),
        ("down_proj", f, d),
    ]
}

/// Trainable parameters of `lora` on a model of shape `cfg`: r·(in + out)
/// per target projection per block.
pub fn lora_parameters(cfg: &super::LlamaConfig, lora: &LoraConfig) -> usize {
    let targets = lora.targets();
    let per_block: usize = projection_shapes(cfg)
        .iter()
        .filter(|(name, _, _)| targets.contains(name))
        .map(|(_, i, o)| lora.r * (i + o))
        .sum();
    per_block * cfg.num_hidden_layers
}

/// PEFT's key of a projection's A or B matrix: `module` is the model's name
/// for the projection (`model.layers.3.mlp.down_proj`), `which` "A" or "B".
pub fn peft_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// A model's adapters: their config, their variables (under PEFT's key names)
/// and the switch they share.
#[derive(Clone)]
pub struct LoraWeights {
    pub config: LoraConfig,
    varmap: VarMap,
    pub switch: AdapterSwitch,
}

impl std::fmt::Debug for LoraWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LoraWeights(r = {}, α = {}, {:?}, {} parameters, {:?})",
            self.config.r,
            self.config.lora_alpha,
            self.config.targets(),
            self.num_parameters(),
            self.switch.state()
        )
    }
}

impl LoraWeights {
    /// Fresh adapters for `modules` (name, in, out): A Kaiming-uniform from
    /// `seed`, B zero.
    pub fn init(
        config: &LoraConfig,
        modules: &[(String, usize, usize)],
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let mut rng = gridworld::Rng::new(seed);
        let mut tensors = HashMap::new();
        for (name, in_dim, out_dim) in modules {
            let bound = 1.0 / (*in_dim as f64).sqrt();
            let a: Vec<f32> = (0..config.r * in_dim)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                .collect();
            tensors.insert(
                peft_key(name, "A"),
                Tensor::from_vec(a, (config.r, *in_dim), device)?,
            );
            tensors.insert(
                peft_key(name, "B"),
                Tensor::zeros((*out_dim, config.r), DType::F32, device)?,
            );
        }
        Self::from_tensors(config, modules, tensors, dtype, device, "initialisation")
    }

    /// Adapters from tensors named as PEFT names them; errors name `source`
    /// and the key.
    pub fn from_tensors(
        config: &LoraConfig,
        modules: &[(String, usize, usize)],
        mut tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
        source: &str,
    ) -> Result<Self> {
        config.validate().with_context(|| source.to_string())?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, in_dim, out_dim) in modules {
                for (which, shape) in [("A", [config.r, *in_dim]), ("B", [*out_dim, config.r])] {
                    let key = peft_key(name, which);
                    let t = tensors
                        .remove(&key)
                        .with_context(|| format!("{source}: missing adapter weight `{key}`"))?;
                    if t.dims() != shape {
                        bail!(
                            "{source}: adapter weight `{key}` has shape {:?}; r = {} and the base model need {shape:?}",
                            t.dims(),
                            config.r
                        );
                    }
                    let t = t.to_dtype(dtype)?.to_device(device)?;
                    data.insert(key, Var::from_tensor(&t)?);
                }
            }
        }
        if let Some(extra) = tensors.keys().min() {
            bail!(
                "{source}: adapter weight `{extra}` matches no target module of the config ({:?})",
                config.target_modules
            );
        }
        Ok(Self {
            config: config.clone(),
            varmap,
            switch: AdapterSwitch::default(),
        })
    }

    /// Read `adapter_model.safetensors` from `dir` for `modules` (name, in,
    /// out) under `config` (read from the same folder's `adapter_config.json`).
    pub fn load(
        dir: &Path,
        config: &LoraConfig,
        modules: &[(String, usize, usize)],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let file = dir.join("adapter_model.safetensors");
        let tensors = super::weights::read_safetensors_file(&file)?;
        // PEFT keeps the adapter's name in memory (`lora_A.default.weight`) and
        // drops it on saving; accept either.
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k.replace(".default.weight", ".weight"), v))
            .collect();
        Self::from_tensors(
            config,
            modules,
            tensors,
            dtype,
            device,
            &file.display().to_string(),
        )
    }

    /// Write `adapter_config.json` and `adapter_model.safetensors` (f32 unless
    /// the adapters are in another precision), each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::io::write_atomic(
            &dir.join("adapter_config.json"),
            self.config.to_json().as_bytes(),
        )?;
        let tensors = super::weights::tensors_of(&self.varmap);
        crate::io::save_safetensors_atomic(&tensors, &dir.join("adapter_model.safetensors"))
    }

    /// The adapter of `module`, if it has one.
    pub fn adapter(&self, module: &str) -> Option<LoraAdapter> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let a = data.get(&peft_key(module, "A"))?.as_tensor().clone();
        let b = data.get(&peft_key(module, "B"))?.as_tensor().clone();
        Some(LoraAdapter::new(
            a,
            b,
            self.config.scale(),
            self.config.lora_dropout,
            self.switch.clone(),
        ))
    }

    /// The adapters' variables (A and B of every target), sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        super::weights::named_vars(&self.varmap)
    }

    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// A copy with its own variables and its own switch (state copied).
    pub fn deep_clone(&self) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, var) in self.vars() {
                data.insert(name, Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        let switch = AdapterSwitch::default();
        switch.set(self.switch.state());
        Ok(Self {
            config: self.config.clone(),
            varmap,
            switch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_alpha_over_r_or_over_root_r() {
        let mut c = LoraConfig::new(16, 8.0, &["q_proj"]);
        assert_eq!(c.scale(), 0.5);
        c.use_rslora = true;
        assert_eq!(c.scale(), 2.0);
    }

    /// A fraction p of zeros, the rest 1/(1 − p): mean 1. 100,000 draws at
    /// p = 0.2 land within 1% of both; the same seed gives the same mask.
    #[test]
    fn dropout_mask_keeps_the_expected_value() {
        let m = dropout_mask(100_000, 0.2, 3);
        let zeros = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
        let mean = m.iter().map(|&x| x as f64).sum::<f64>() / m.len() as f64;
        assert!(
            (zeros - 0.2).abs() < 0.01 && (mean - 1.0).abs() < 0.01,
            "{zeros} {mean}"
        );
        assert!(m.iter().all(|&x| x == 0.0 || x == 1.25));
        assert_eq!(m, dropout_mask(100_000, 0.2, 3));
        assert_ne!(m, dropout_mask(100_000, 0.2, 4));
    }

    #[test]
    fn all_linear_expands_to_the_seven_projections() {
        let c = LoraConfig::new(4, 4.0, &["all-linear"]);
        assert_eq!(c.targets(), PROJECTIONS.to_vec());
        let c = LoraConfig::new(4, 4.0, &["v_proj", "q_proj"]);
        assert_eq!(c.targets(), vec!["q_proj", "v_proj"]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = |f: &dyn Fn(&mut LoraConfig)| {
            let mut c = LoraConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(&|c| c.r = 0).contains("r must"));
        assert!(bad(&|c| c.target_modules = vec!["qkv".into()]).contains("target_modules"));
        assert!(bad(&|c| c.bias = "all".into()).contains("bias"));
        assert!(bad(&|c| c.lora_alpha = f64::NAN).contains("lora_alpha"));
        assert!(bad(&|c| {
            c.other
                .insert("use_dora".into(), serde_json::Value::Bool(true));
        })
        .contains("use_dora"));
    }

    #[test]
    fn peft_config_round_trips_and_keeps_unknown_fields() {
        let text = r#"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 16,
            "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0, "bias": "none",
            "use_dora": false, "rank_pattern": {}, "modules_to_save": null, "revision": null}"#;
        let c: LoraConfig = serde_json::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!((c.r, c.lora_alpha, c.scale()), (4, 16.0, 4.0));
        let again: LoraConfig = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(again.r, 4);
        // PEFT's shorthand as a string; written back as the names it stands for.
        let short: LoraConfig =
            serde_json::from_str(r#"{"r": 2, "target_modules": "all-linear"}"#).unwrap();
        assert_eq!(short.targets().len(), 7);
        let written: serde_json::Value = serde_json::from_str(&short.to_json()).unwrap();
        assert_eq!(written["target_modules"].as_array().unwrap().len(), 7);
        assert!(again.other.contains_key("revision"));
        assert_eq!(again.other["inference_mode"], serde_json::Value::Bool(true));
    }

    #[test]
    fn init_is_kaiming_uniform_a_and_zero_b() {
        let cfg = LoraConfig::new(4, 8.0, &["q_proj"]);
        let modules = vec![("model.layers.0.self_attn.q_proj".to_string(), 64, 32)];
        let w = LoraWeights::init(&cfg, &modules, 7, DType::F32, &Device::Cpu).unwrap();
        let ad = w.adapter("model.layers.0.self_attn.q_proj").unwrap();
        assert_eq!(ad.a.dims(), [4, 64]);
        assert_eq!(ad.b.dims(), [32, 4]);
        let a: Vec<f32> = ad.a.flatten_all().unwrap().to_vec1().unwrap();
        let bound = 1.0 / 8.0;
        assert!(a.iter().all(|x| x.abs() <= bound));
        // A uniform on (−1/8, 1/8) has mean |x| = 1/16; 256 draws land within 10%.
        let mean_abs = a.iter().map(|x| x.abs() as f64).sum::<f64>() / a.len() as f64;
        assert!((mean_abs - 1.0 / 16.0).abs() < 0.1 / 16.0, "{mean_abs}");
        let b: Vec<f32> = ad.b.flatten_all().unwrap().to_vec1().unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
        assert_eq!(w.num_parameters(), 4 * 64 + 32 * 4);
    }

    #[test]
    fn wrong_shapes_and_stray_keys_are_errors_naming_the_key() {
        let cfg = LoraConfig::new(4, 8.0, &["q_proj"]);
        let modules = vec![("model.layers.0.self_attn.q_proj".to_string(), 8, 8)];
        let dev = Device::Cpu;
        let mut t = HashMap::new();
        t.insert(
            peft_key(&modules[0].0, "A"),
            Tensor::zeros((4, 8), DType::F32, &dev).unwrap(),
        );
        t.insert(
            peft_key(&modules[0].0, "B"),
            Tensor::zeros((8, 3), DType::F32, &dev).unwrap(),
        );
        let err = LoraWeights::from_tensors(&cfg, &modules, t.clone(), DType::F32, &dev, "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lora_B") && err.contains("[8, 3]"), "{err}");
        t.insert(
            peft_key(&modules[0].0, "B"),
            Tensor::zeros((8, 4), DType::F32, &dev).unwrap(),
        );
        t.insert(
            "base_model.model.model.layers.9.mlp.up_proj.lora_A.weight".into(),
            Tensor::zeros((4, 8), DType::F32, &dev).unwrap(),
        );
        let err = LoraWeights::from_tensors(&cfg, &modules, t, DType::F32, &dev, "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers.9.mlp.up_proj"), "{err}");
    }
}
