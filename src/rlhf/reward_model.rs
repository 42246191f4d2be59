//! The reward model: the SFT language model's transformer with its output head
//! replaced by a scalar head that reads the hidden state of the last real token
//! (Ouyang et al. 2022; Huang et al. 2023, *The N implementation details of
//! RLHF with PPO*):
//!
//! ```text
//! h = Trunk(prompt ⊕ answer)[last real token]      (b, d)
//! r = h · wᵀ                                        (b,)    w: (1, d), N(0, 1/(d+1)) at init
//! reward = (r − μ) / σ                              μ, σ: the SFT policy's answers score N(0, 1)
//! ```
//!
//! Saved in Hugging Face's `LlamaForSequenceClassification` layout — the
//! trunk's `model.*` weights and `score.weight` (1, d), no bias, `num_labels: 1`
//! in `config.json` — so `AutoModelForSequenceClassification` loads it and gives
//! the same raw scores r. The normalisation (μ, σ) is stored beside them in
//! `config.json` as `reward_normalization`.

use crate::lm::config::LlamaConfig;
use crate::lm::lora::{LoraConfig, LoraWeights};
use crate::lm::model::Llama;
use crate::lm::tokenizer::{ChatMessage, TextTokenizer};
use crate::lm::weights;
use crate::lm::LanguageModel;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The affine map from raw scores to rewards: `reward = (r − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardNormalization {
    pub mean: f64,
    pub std: f64,
}

impl Default for RewardNormalization {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl RewardNormalization {
    /// The map that gives `raw_scores` mean 0 and standard deviation 1.
    pub fn fit(raw_scores: &[f64]) -> Self {
        let n = raw_scores.len().max(1) as f64;
        let mean = raw_scores.iter().sum::<f64>() / n;
        let var = raw_scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt().max(1e-8),
        }
    }

    pub fn apply(&self, raw: f64) -> f64 {
        (raw - self.mean) / self.std
    }
}

/// Token sequences for a scalar head: right-padded ids (b, t) and the index
/// of each row's last real token. With right padding and causal attention no
/// mask is needed: real tokens never see the padding after them.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    pub input_ids: Tensor,
    /// (b,) u32: where row r's last real token sits in the flattened (b·t)
    /// positions, r·t + (length − 1): the token the head reads.
    pub read_at: Tensor,
    /// Real tokens in the batch.
    pub tokens: usize,
}

impl SequenceBatch {
    pub fn new(sequences: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        if sequences.is_empty() || sequences.iter().any(|s| s.is_empty()) {
            bail!("a sequence batch needs at least one non-empty sequence");
        }
        let t = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let b = sequences.len();
        let mut ids = vec![pad_id; b * t];
        for (r, s) in sequences.iter().enumerate() {
            ids[r * t..r * t + s.len()].copy_from_slice(s);
        }
        let read_at: Vec<u32> = sequences
            .iter()
            .enumerate()
            .map(|(r, s)| (r * t + s.len() - 1) as u32)
            .collect();
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            read_at: Tensor::from_vec(read_at, b, device)?,
            tokens: sequences.iter().map(Vec::len).sum(),
        })
    }

    pub fn len(&self) -> usize {
        self.read_at.dims1().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A transformer trunk with a scalar head (see the module docs).
#[derive(Clone)]
pub struct RewardModel {
    pub config: LlamaConfig,
    pub tokenizer: TextTokenizer,
    pub normalization: RewardNormalization,
    /// Sequences longer than this are cut from the left (the answer is kept).
    pub max_len: usize,
    trunk: Llama,
    score: Var,
    varmap: VarMap,
    /// Low-rank adapters on the trunk, if it trains with LoRA (see [`Self::with_lora`]).
    lora: Option<LoraWeights>,
}

impl std::fmt::Debug for RewardModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RewardModel({} parameters, {} layers, width {}, reward = (r − {:.3}) / {:.3})",
            self.num_parameters(),
            self.config.num_hidden_layers,
            self.config.hidden_size,
            self.normalization.mean,
            self.normalization.std
        )
    }
}

/// The name of the head's weight in `LlamaForSequenceClassification`.
const SCORE: &str = "score.weight";

impl RewardModel {
    /// A reward model initialised from `lm` (its own copy of the trunk's
    /// weights; `lm` is untouched) with a fresh head drawn from N(0, 1/(d+1))
    /// with the project's seeded RNG (Huang et al. 2023, detail on reward heads).
    pub fn from_language_model(lm: &LanguageModel, seed: u64) -> Result<Self> {
        let d = lm.config.hidden_size;
        let mut rng = Rng::new(seed);
        let std = 1.0 / ((d + 1) as f64).sqrt();
        let head: Vec<f32> = (0..d).map(|_| (rng.normal() * std) as f32).collect();
        let mut tensors: std::collections::HashMap<String, Tensor> = lm
            .vars()
            .into_iter()
            .filter(|(name, _)| name.starts_with("model."))
            .map(|(name, var)| Ok((name, var.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        tensors.insert(SCORE.into(), Tensor::from_vec(head, (1, d), &Device::Cpu)?);
        Self::from_tensors(
            lm.config.clone(),
            lm.tokenizer.clone(),
            tensors,
            RewardNormalization::default(),
            lm.device(),
            lm.model.dtype(),
            "initialisation",
        )
    }

    fn from_tensors(
        config: LlamaConfig,
        tokenizer: TextTokenizer,
        mut tensors: std::collections::HashMap<String, Tensor>,
        normalization: RewardNormalization,
        device: &Device,
        dtype: DType,
        source: &str,
    ) -> Result<Self> {
        let score = tensors
            .remove(SCORE)
            .with_context(|| format!("{source}: missing weight `{SCORE}`"))?;
        if score.dims() != [1, config.hidden_size] {
            bail!(
                "{source}: weight `{SCORE}` has shape {:?}, expected [1, {}] (num_labels must be 1)",
                score.dims(),
                config.hidden_size
            );
        }
        tensors.remove("lm_head.weight");
        let varmap = weights::into_varmap_with(
            weights::trunk_shapes(&config),
            tensors,
            device,
            dtype,
            source,
        )?;
        let score = Var::from_tensor(&score.to_dtype(dtype)?.to_device(device)?)?;
        varmap
            .data()
            .lock()
            .expect("varmap lock")
            .insert(SCORE.into(), score.clone());
        let trunk = Llama::new_trunk(&config, VarBuilder::from_varmap(&varmap, dtype, device))?;
        Ok(Self {
            max_len: config.max_position_embeddings,
            config,
            tokenizer,
            normalization,
            trunk,
            score,
            varmap,
            lora: None,
        })
    }

    /// Load a folder written by [`Self::save`] (or any single-label
    /// `LlamaForSequenceClassification` checkpoint with a tokenizer).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = LlamaConfig::from_file(&config_path)?;
        let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
            .with_context(|| format!("{}: not valid JSON", config_path.display()))?;
        if let Some(n) = raw.get("num_labels").and_then(|v| v.as_u64()) {
            if n != 1 {
                bail!(
                    "{}: field `num_labels` is {n}; a reward model has one",
                    config_path.display()
                );
            }
        }
        let normalization = match raw.get("reward_normalization") {
            Some(v) => serde_json::from_value(v.clone()).with_context(|| {
                format!("{}: field `reward_normalization`", config_path.display())
            })?,
            None => RewardNormalization::default(),
        };
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let tensors = weights::read_safetensors_dir(dir)?;
        Self::from_tensors(
            config,
            tokenizer,
            tensors,
            normalization,
            device,
            DType::F32,
            &dir.display().to_string(),
        )
    }

    /// Save as `LlamaForSequenceClassification`: `config.json` (with
    /// `num_labels: 1` and `reward_normalization`), `model.safetensors`
    /// (`model.*` and `score.weight`), the tokenizer; each file atomically.
    /// A model with adapters is saved merged ([`Self::merged`]), so that every
    /// reader of reward models (PPO, best-of-n, `rm score`) takes it as it is.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.lora.is_some() {
            return self.merged()?.save(dir);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cfg = crate::lm::pretrained::config_with_special_tokens(&self.config, &self.tokenizer);
        let json = cfg.to_hf_json_as(
            "LlamaForSequenceClassification",
            &[
                ("num_labels", 1.into()),
                ("id2label", serde_json::json!({"0": "LABEL_0"})),
                ("label2id", serde_json::json!({"LABEL_0": 0})),
                (
                    "reward_normalization",
                    serde_json::to_value(self.normalization)?,
                ),
            ],
        );
        crate::io::write_atomic(&dir.join("config.json"), json.as_bytes())?;
        crate::io::save_safetensors_atomic(
            &weights::tensors_of(&self.varmap),
            &dir.join("model.safetensors"),
        )?;
        self.tokenizer.save(dir)
    }

    /// Every weight (trunk and head), sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        weights::named_vars(&self.varmap)
    }

    /// What training updates: every weight, or under LoRA the adapters and the
    /// scalar head (PEFT's `modules_to_save = ["score"]` for a sequence
    /// classifier), sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        match &self.lora {
            Some(lora) => {
                let mut vars = lora.vars();
                vars.push((SCORE.into(), self.score.clone()));
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                vars
            }
            None => self.vars(),
        }
    }

    /// This reward model with fresh low-rank adapters on its trunk (B = 0: the
    /// scores are unchanged until it trains), sharing its weights.
    pub fn with_lora(&self, config: &LoraConfig, seed: u64) -> Result<Self> {
        if self.lora.is_some() {
            bail!("this reward model already has adapters");
        }
        let modules = self.trunk.lora_modules(config)?;
        let lora = LoraWeights::init(config, &modules, seed, self.trunk.dtype(), self.device())?;
        Ok(Self {
            trunk: self.trunk.with_adapters(&lora)?,
            lora: Some(lora),
            ..self.clone()
        })
    }

    /// Training mode (adapter dropout on; the trunk's fused training kernels,
    /// [`Llama::set_training`]) or eval mode; see
    /// [`crate::lm::LanguageModel::set_training`].
    pub fn set_training(&self, training: bool, step_seed: u64) {
        self.trunk.set_training(training);
        if let Some(lora) = &self.lora {
            lora.switch.set_training(training, step_seed);
        }
    }

    /// The adapters, if any.
    pub fn lora(&self) -> Option<&LoraWeights> {
        self.lora.as_ref()
    }

    /// A copy without adapters whose trunk weights are W + s·BA (PEFT's
    /// `merge_and_unload`); a model without adapters is copied as it is.
    pub fn merged(&self) -> Result<Self> {
        let mut tensors: std::collections::HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        if let Some(lora) = &self.lora {
            for (module, _, _) in self.trunk.lora_modules(&lora.config)? {
                let adapter = lora.adapter(&module).context("an adapter went missing")?;
                let key = format!("{module}.weight");
                let w = tensors
                    .remove(&key)
                    .context("a trunk weight went missing")?;
                let merged = (w + adapter.delta_weight()?.to_dtype(self.trunk.dtype())?)?;
                tensors.insert(key, merged);
            }
        }
        let mut copy = Self::from_tensors(
            self.config.clone(),
            self.tokenizer.clone(),
            tensors,
            self.normalization,
            self.device(),
            self.trunk.dtype(),
            "a merged copy",
        )?;
        copy.max_len = self.max_len;
        Ok(copy)
    }

    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    pub fn device(&self) -> &Device {
        self.trunk.device()
    }

    /// A copy with its own weights (a value model starts as one). Adapters,
    /// if any, are merged into the copy (see [`Self::merged`]).
    pub fn deep_clone(&self) -> Result<Self> {
        self.merged()
    }

    /// Set the scalar head's weights to zero: every score becomes 0 while the
    /// trunk keeps what it learned (a value model starts so, Huang et al. 2023).
    pub fn zero_head(&self) -> Result<()> {
        Ok(self.score.set(&self.score.as_tensor().zeros_like()?)?)
    }

    /// The token ids the model reads for `answer` to the user message `prompt`:
    /// the chat template with the assistant's header, then the answer. In the
    /// preference data an answer ends with `<|im_end|>` when the model ended
    /// its turn, so an unfinished answer looks unfinished to the reward model.
    pub fn encode(&self, prompt: &str, answer: &str) -> Result<Vec<u32>> {
        let header = self
            .tokenizer
            .apply_chat_template(&[ChatMessage::user(prompt)], true);
        let mut ids = self.tokenizer.encode(&header)?;
        ids.extend(self.tokenizer.encode(answer)?);
        Ok(self.truncate(ids))
    }

    /// Keep the last `max_len` tokens (the answer and the end of the prompt).
    pub fn truncate(&self, mut ids: Vec<u32>) -> Vec<u32> {
        if ids.len() > self.max_len {
            ids.drain(..ids.len() - self.max_len);
        }
        ids
    }

    /// The trunk's hidden state at each row's last real token, (b, d).
    fn last_hidden(&self, batch: &SequenceBatch) -> Result<Tensor> {
        let hidden = self.trunk.hidden_states(&batch.input_ids, None)?;
        let (b, t, d) = hidden.dims3()?;
        Ok(hidden
            .reshape((b * t, d))?
            .index_select(&batch.read_at, 0)?)
    }

    /// Raw scores at every position, (b, t), differentiable: what a value
    /// model built from a reward model predicts for each prefix (rung 7).
    pub fn scores_at_every_position(&self, input_ids: &Tensor) -> Result<Tensor> {
        let hidden = self.trunk.hidden_states(input_ids, None)?;
        let (b, t, d) = hidden.dims3()?;
        let r = hidden
            .reshape((b * t, d))?
            .matmul(&self.score.as_tensor().t()?)?
            .reshape((b, t))?;
        Ok(r.to_dtype(DType::F32)?)
    }

    /// Raw scores r (b,) of a batch, differentiable (for training).
    pub fn raw_scores(&self, batch: &SequenceBatch) -> Result<Tensor> {
        let r = self
            .last_hidden(batch)?
            .matmul(&self.score.as_tensor().t()?)?
            .squeeze(1)?;
        Ok(r.to_dtype(DType::F32)?)
    }

    /// The trunk's hidden state at each sequence's last token, (b, d), detached.
    pub fn last_hidden_of_ids(&self, sequences: &[Vec<u32>]) -> Result<Tensor> {
        let seqs: Vec<Vec<u32>> = sequences.iter().map(|s| self.truncate(s.clone())).collect();
        let batch = SequenceBatch::new(&seqs, self.tokenizer.pad_id(), self.device())?;
        Ok(self.last_hidden(&batch)?.to_dtype(DType::F32)?.detach())
    }

    /// Normalised rewards of token sequences, in batches of `batch_size` (no
    /// gradients kept).
    pub fn rewards_of_ids(&self, sequences: &[Vec<u32>], batch_size: usize) -> Result<Vec<f64>> {
        Ok(self
            .raw_scores_of_ids(sequences, batch_size)?
            .into_iter()
            .map(|r| self.normalization.apply(r))
            .collect())
    }

    /// Raw scores of token sequences, in batches of `batch_size`.
    pub fn raw_scores_of_ids(&self, sequences: &[Vec<u32>], batch_size: usize) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(sequences.len());
        for chunk in sequences.chunks(batch_size.max(1)) {
            let chunk: Vec<Vec<u32>> = chunk.iter().map(|s| self.truncate(s.clone())).collect();
            let batch = SequenceBatch::new(&chunk, self.tokenizer.pad_id(), self.device())?;
            let r: Vec<f32> = self.raw_scores(&batch)?.detach().to_vec1()?;
            out.extend(r.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// The normalised reward of one answer to one user message.
    pub fn reward(&self, prompt: &str, answer: &str) -> Result<f64> {
        Ok(self.rewards_of_ids(&[self.encode(prompt, answer)?], 1)?[0])
    }
}
