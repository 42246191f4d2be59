//! A Llama-style decoder-only transformer, in the spirit of nanoGPT's `model.py`:
//! one file, every piece of maths written out.
//!
//! ```text
//! x₀ = E[tokens]                                      token embedding, (b, t, d)
//! for each layer ℓ:
//!     x = x + Attention(RMSNorm(x))                   pre-norm residual blocks
//!     x = x + SwiGLU(RMSNorm(x))
//! h = RMSNorm(x)                                      final hidden states
//! logits = h Wₒᵤₜᵀ     (Wₒᵤₜ = E when embeddings are tied)
//! ```
//!
//! References: Touvron et al. 2023, *LLaMA*; Zhang & Sennrich 2019 (RMSNorm);
//! Su et al. 2021, *RoFormer* (rotary embeddings); Shazeer 2020, *GLU variants*
//! (SwiGLU); Ainslie et al. 2023 (grouped-query attention). Weight names follow
//! Hugging Face's `LlamaForCausalLM`, so checkpoints load in either library.
//!
//! Every operation here is differentiable: candle 0.11's fused `softmax_last_dim`,
//! `rms_norm` and `rope` kernels have no backward pass and silently stop gradients,
//! so this file uses [`super::ops`] instead.

use super::config::LlamaConfig;
use super::lora::{LoraAdapter, LoraConfig, LoraWeights};
use super::ops;
use super::quantize::Int8Matrix;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// RMSNorm (Zhang & Sennrich 2019): `y = x / √(mean(x²) + ε) · g`, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }

    /// The norm in a forward pass: in a training step the fused kernel with its
    /// analytic backward ([`ops::rms_norm_for_training`]), otherwise the
    /// composed op, whose values the committed samples were drawn with.
    pub fn forward_in(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        if training {
            ops::rms_norm_for_training(x, &self.weight, self.eps)
        } else {
            ops::rms_norm(x, &self.weight, self.eps)
        }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.weight, self.eps)
    }
}

/// Rotary position embeddings (Su et al. 2021) in Hugging Face's "rotate half"
/// layout: head dimension i < d/2 pairs with i + d/2, and position p rotates the
/// pair by angle p·θ^(−2i/d):
///
/// ```text
/// x'ᵢ       = xᵢ cos(pωᵢ) − xᵢ₊d/2 sin(pωᵢ)
/// x'ᵢ₊d/2   = xᵢ₊d/2 cos(pωᵢ) + xᵢ sin(pωᵢ)        ωᵢ = θ^(−2i/d)
/// ```
///
/// so the score qᵀk depends on positions only through their difference.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// cos(pωᵢ), (max_positions, d/2)
    cos: Tensor,
    sin: Tensor,
}

impl RotaryEmbedding {
    pub fn new(cfg: &LlamaConfig, dtype: DType, device: &Device) -> Result<Self> {
        let half = cfg.head_dim() / 2;
        let n = cfg.max_position_embeddings;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for i in 0..half {
                // In f32, like the reference implementations.
                let omega =
                    1.0 / (cfg.rope_theta as f32).powf((2 * i) as f32 / cfg.head_dim() as f32);
                let angle = (p as f32) * omega;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (n, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (n, half), device)?.to_dtype(dtype)?,
        })
    }

    /// Rotate `x` of shape (b, heads, t, d_head) by the positions (b, t) (u32).
    pub fn apply(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
        self.tables(positions)?.rotate(x)
    }

    /// cos and sin at the positions (b, t) (u32), gathered once per forward
    /// pass and shared by every layer's queries and keys.
    pub fn tables(&self, positions: &Tensor) -> Result<RopeTables> {
        let (b, t) = positions.dims2()?;
        let half = self.cos.dim(1)?;
        let flat = positions.flatten_all()?;
        let gather = |table: &Tensor| table.index_select(&flat, 0)?.reshape((b, 1, t, half));
        Ok(RopeTables {
            cos: gather(&self.cos)?,
            sin: gather(&self.sin)?,
        })
    }
}

/// The rotary tables at one forward pass's positions, (b, 1, t, d_head/2) each.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables {
    /// Rotate `x` (b, heads, t, d_head).
    pub fn rotate(&self, x: &Tensor) -> Result<Tensor> {
        ops::rotate_half_rope(x, &self.cos, &self.sin)
    }
}

/// A bias-free linear layer `y = x Wᵀ`, W of shape (out, in) (see [`ops::linear`]),
/// with an optional low-rank adapter: `y = x Wᵀ + s·(x Aᵀ) Bᵀ` while the
/// adapter is active (see [`super::lora`]).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    lora: Option<LoraAdapter>,
}

/// W as a dense matrix, or int8 dequantized in the forward pass (a frozen
/// base, see [`super::quantize`]).
#[derive(Debug, Clone)]
enum Weight {
    Dense(Tensor),
    Int8(Int8Matrix),
}

impl Linear {
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self::from_weight(vb.get((out_dim, in_dim), "weight")?))
    }

    pub fn from_weight(weight: Tensor) -> Self {
        Self {
            weight: Weight::Dense(weight),
            lora: None,
        }
    }

    /// (in, out) of W.
    fn in_out(&self) -> Result<(usize, usize)> {
        let (out, inp) = match &self.weight {
            Weight::Dense(w) => w.dims2()?,
            Weight::Int8(m) => m.dims(),
        };
        Ok((inp, out))
    }

    fn detach(&mut self) {
        if let Weight::Dense(w) = &self.weight {
            self.weight = Weight::Dense(w.detach());
        }
        self.lora = self.lora.as_ref().map(LoraAdapter::detached);
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Dense(w) => ops::linear(x, w)?,
            Weight::Int8(m) => ops::linear(x, &m.dequantize()?)?,
        };
        match &self.lora {
            Some(adapter) if adapter.is_active() => {
                y + adapter.update(x).map_err(candle_core::Error::wrap)?
            }
            _ => Ok(y),
        }
    }
}

/// Keys and values of earlier positions, one entry per layer, each
/// (b, kv_heads, past, d_head), stored after the rotation.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map(|(k, _)| k.dim(2).unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the cached keys and values.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }

    /// Keep only the rows `rows` of the batch (for batched generation).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

/// Causal self-attention with grouped-query heads (Ainslie et al. 2023):
///
/// ```text
/// Q = x W_qᵀ, K = x W_kᵀ, V = x W_vᵀ     (h query heads, h_kv ≤ h key/value heads)
/// A = softmax(rope(Q) rope(K)ᵀ / √d_head + M)     M = 0 where allowed, −∞ otherwise
/// y = concat_heads(A V) W_oᵀ
/// ```
///
/// Query head j reads key/value head ⌊j / (h / h_kv)⌋.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let hd = cfg.head_dim();
        let kv = cfg.num_key_value_heads * hd;
        let linear = |i, o, name: &str| -> Result<Linear> { Linear::new(vb.pp(name), i, o) };
        Ok(Self {
            q_proj: linear(d, cfg.num_attention_heads * hd, "q_proj")?,
            k_proj: linear(d, kv, "k_proj")?,
            v_proj: linear(d, kv, "v_proj")?,
            o_proj: linear(cfg.num_attention_heads * hd, d, "o_proj")?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    /// `x` (b, t, d) at positions `at`, reading and extending this layer's
    /// `cache` slot when given. Returns the output (b, t, d) and the attention
    /// probabilities A (b, h, t, past + t), except in a training step (which
    /// does not keep them).
    fn forward(
        &self,
        x: &Tensor,
        at: &Positions,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        // (b, t, n·d) → (b, n, t, d)
        let q = ops::split_heads(&self.q_proj.forward(x)?, self.num_heads)?;
        let k = ops::split_heads(&self.k_proj.forward(x)?, self.num_kv_heads)?;
        let v = ops::split_heads(&self.v_proj.forward(x)?, self.num_kv_heads)?;
        let q = at.rope.rotate(&q)?;
        let mut k = at.rope.rotate(&k)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // A training step takes the fused kernel (values within about 1e-7 of
        // the composed path's, no probabilities returned; see
        // `ops::fused_attention`).
        if at.training && cache.is_none() && ops::fused_attention_applies(&q, &k, &v) {
            let y = ops::fused_attention(&q, &k, &v, scale, at.bias.as_ref())?;
            return Ok((self.o_proj.forward(&ops::merge_heads(&y)?)?, None));
        }
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let n_rep = self.num_heads / self.num_kv_heads;
        let k = repeat_kv(&k, n_rep)?;
        let v = repeat_kv(&v, n_rep)?;

        // Scores in f32 whatever the weights' precision.
        let dtype = q.dtype();
        let q = q.to_dtype(DType::F32)?;
        let k = k.to_dtype(DType::F32)?;
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let scores = match &at.bias {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = ops::softmax_last_dim(&scores)?;
        let y = probs.to_dtype(dtype)?.matmul(&v.contiguous()?)?;
        let out = self.o_proj.forward(&ops::merge_heads(&y)?)?; // (b, t, h·d)
        Ok((out, Some(probs)))
    }
}

/// (b, h_kv, T, d) → (b, h_kv · n_rep, T, d), each key/value head repeated for
/// the n_rep query heads that share it.
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, d) = x.dims4()?;
    Tensor::cat(&vec![x; n_rep], 2)?.reshape((b, kv * n_rep, t, d))
}

/// SwiGLU feed-forward (Shazeer 2020): `W_down (silu(W_gate x) ⊙ W_up x)`.
#[derive(Debug, Clone)]
pub struct SwiGlu {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl SwiGlu {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let linear = |i, o, name: &str| -> Result<Linear> { Linear::new(vb.pp(name), i, o) };
        Ok(Self {
            gate_proj: linear(d, f, "gate_proj")?,
            up_proj: linear(d, f, "up_proj")?,
            down_proj: linear(f, d, "down_proj")?,
        })
    }
}

impl Module for SwiGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = ops::swiglu(&self.gate_proj.forward(x)?, &self.up_proj.forward(x)?)?;
        self.down_proj.forward(&gated)
    }
}

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: SwiGlu,
}

impl DecoderLayer {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: SwiGlu::new(cfg, vb.pp("mlp"))?,
        })
    }

    /// The pre-norm residual block, as nanoGPT's `Block` and candle's llama
    /// `Block` write it. Returns the new x and this block's attention
    /// probabilities (b, h, t, past + t), which a training step does not keep.
    fn forward(
        &self,
        x: &Tensor,
        at: &Positions,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let norm1 = self.input_layernorm.forward_in(x, at.training)?;
        let (attn, probs) = self.self_attn.forward(&norm1, at, cache)?;
        let x = (x + attn)?; // x = x + attn(norm1(x))    (b, t, d)
        let norm2 = self.post_attention_layernorm.forward_in(&x, at.training)?;
        let x = (&x + self.mlp.forward(&norm2)?)?; // x = x + mlp(norm2(x))    (b, t, d)
        Ok((x, probs))
    }

    /// The block's seven projections by their names inside the block.
    fn projections(&self) -> [(&'static str, &Linear); 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            ("self_attn.q_proj", &a.q_proj),
            ("self_attn.k_proj", &a.k_proj),
            ("self_attn.v_proj", &a.v_proj),
            ("self_attn.o_proj", &a.o_proj),
            ("mlp.gate_proj", &m.gate_proj),
            ("mlp.up_proj", &m.up_proj),
            ("mlp.down_proj", &m.down_proj),
        ]
    }

    fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        let (a, m) = (&mut self.self_attn, &mut self.mlp);
        [
            ("self_attn.q_proj", &mut a.q_proj),
            ("self_attn.k_proj", &mut a.k_proj),
            ("self_attn.v_proj", &mut a.v_proj),
            ("self_attn.o_proj", &mut a.o_proj),
            ("mlp.gate_proj", &mut m.gate_proj),
            ("mlp.up_proj", &mut m.up_proj),
            ("mlp.down_proj", &mut m.down_proj),
        ]
    }
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Next-token logits at every position, (b, t, vocab), f32.
    pub logits: Tensor,
    /// Final hidden states after the last RMSNorm, (b, t, d): where reward and
    /// value heads sit.
    pub hidden: Tensor,
}

/// The decoder: token embedding, `num_hidden_layers` blocks, final norm, output head.
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: LlamaConfig,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `None` for a trunk without a language-modelling head (a reward model's).
    lm_head: Option<Linear>,
    rope: RotaryEmbedding,
    /// In a training step ([`Self::set_training`]): RMSNorm takes its fused
    /// kernel (see [`RmsNorm::forward_in`]). Shared by clones.
    training: Arc<AtomicBool>,
}

impl Llama {
    /// Build from weights named as in Hugging Face's `LlamaForCausalLM`
    /// (`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`, …).
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(cfg, vb, true)
    }

    /// The transformer without its output head (`model.*` weights only), as
    /// Hugging Face's `LlamaForSequenceClassification` holds it: for reward and
    /// value models, which read [`Self::hidden_states`].
    pub fn new_trunk(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(cfg, vb, false)
    }

    fn build(cfg: &LlamaConfig, vb: VarBuilder, with_head: bool) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let embed = vb
            .pp("model.embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let lm_head = match (with_head, cfg.tie_word_embeddings) {
            (false, _) => None,
            (true, true) => Some(Linear::from_weight(embed.clone())),
            (true, false) => Some(Linear::new(
                vb.pp("lm_head"),
                cfg.hidden_size,
                cfg.vocab_size,
            )?),
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, vb.pp(format!("model.layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            embed_tokens: Embedding::new(embed, cfg.hidden_size),
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("model.norm"))?,
            lm_head,
            rope: RotaryEmbedding::new(cfg, vb.dtype(), vb.device())?,
            training: Arc::default(),
        })
    }

    /// The projections `config` targets, as (module name, in, out), block by
    /// block: what adapters are built for and checked against.
    pub fn lora_modules(&self, config: &LoraConfig) -> Result<Vec<(String, usize, usize)>> {
        let targets = config.targets();
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, linear) in layer.projections() {
                let proj = name.rsplit('.').next().unwrap_or(name);
                if targets.contains(&proj) {
                    let (inp, o) = linear.in_out()?;
                    out.push((format!("model.layers.{i}.{name}"), inp, o));
                }
            }
        }
        Ok(out)
    }

    /// This model with every weight (adapters included) detached from
    /// autograd, storage shared, so in-place updates of the variables still
    /// show: backward passes compute no gradient for them — no (out, in)
    /// gradient per frozen matrix, as PyTorch's `requires_grad = False` — and
    /// a forward pass keeps no intermediate tensors for a backward pass.
    pub fn frozen(&self) -> Self {
        let mut model = self.clone();
        model.training = Arc::default();
        let detach = |n: &mut RmsNorm| n.weight = n.weight.detach();
        model.embed_tokens = Embedding::new(
            self.embed_tokens.embeddings().detach(),
            self.config.hidden_size,
        );
        detach(&mut model.norm);
        if let Some(head) = model.lm_head.as_mut() {
            head.detach();
        }
        for layer in model.layers.iter_mut() {
            detach(&mut layer.input_layernorm);
            detach(&mut layer.post_attention_layernorm);
            for (_, linear) in layer.projections_mut() {
                linear.detach();
            }
        }
        model
    }

    /// This model, [`Self::frozen`], with the seven projections of every block
    /// stored as per-channel int8 (embeddings, norms and the output head stay
    /// as they are, as in LLM.int8()). Adapters already on it are kept.
    pub fn with_int8_projections(&self) -> Result<Self> {
        let mut model = self.frozen();
        for layer in model.layers.iter_mut() {
            for (_, linear) in layer.projections_mut() {
                if let Weight::Dense(w) = &linear.weight {
                    linear.weight = Weight::Int8(Int8Matrix::quantize(w)?);
                }
            }
        }
        Ok(model)
    }

    /// Bytes held by the weights this model reads (int8 projections at 1 byte
    /// per weight, tied embeddings once), not counting adapters.
    pub fn weight_bytes(&self) -> usize {
        let dense = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let mut total = dense(self.embed_tokens.embeddings()) + dense(&self.norm.weight);
        if let (Some(head), false) = (&self.lm_head, self.config.tie_word_embeddings) {
            if let Weight::Dense(w) = &head.weight {
                total += dense(w);
            }
        }
        for layer in &self.layers {
            total += dense(&layer.input_layernorm.weight)
                + dense(&layer.post_attention_layernorm.weight);
            for (_, linear) in layer.projections() {
                total += match &linear.weight {
                    Weight::Dense(w) => dense(w),
                    Weight::Int8(m) => m.bytes(),
                };
            }
        }
        total
    }

    /// This model with `adapters` on its target projections. The base weights
    /// are shared, not copied, and [`Self::frozen`]: only the adapters get
    /// gradients.
    pub fn with_adapters(&self, adapters: &LoraWeights) -> Result<Self> {
        let mut model = self.frozen();
        for (i, layer) in model.layers.iter_mut().enumerate() {
            for (name, linear) in layer.projections_mut() {
                linear.lora = adapters.adapter(&format!("model.layers.{i}.{name}"));
            }
        }
        Ok(model)
    }

    /// This model with every adapter removed: the base model (weights shared).
    pub fn without_adapters(&self) -> Self {
        let mut model = self.clone();
        for layer in model.layers.iter_mut() {
            for (_, linear) in layer.projections_mut() {
                linear.lora = None;
            }
        }
        model
    }

    pub fn device(&self) -> &Device {
        self.embed_tokens.embeddings().device()
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.embeddings().dtype()
    }

    /// Forward over whole sequences (b, t) of token ids, no padding: training
    /// on packed text and the parity tests against transformers.
    pub fn forward(&self, input_ids: &Tensor) -> Result<ForwardOutput> {
        self.run(input_ids, None, None)
    }

    /// Forward over a padded batch, with an attention mask (b, t) of 1 (token) /
    /// 0 (padding): padded keys are never attended to and positions count real
    /// tokens only, so a left-padded row gives the same results as the row alone.
    pub fn forward_masked(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<ForwardOutput> {
        self.run(input_ids, Some(attention_mask), None)
    }

    /// Incremental decoding, for generation: run only the new tokens, reading
    /// and extending `cache`. `attention_mask`, when given, covers cached and
    /// new positions, (b, past + t).
    pub fn forward_cached(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<ForwardOutput> {
        self.run(input_ids, attention_mask, Some(cache))
    }

    /// Next-token logits (b, vocab) at one position per row — `last[i]` of row
    /// i — after the cached positions. The head runs only on those b positions,
    /// not on every token (a judge or a classifier reading one verdict per row).
    pub fn logits_at_cached(
        &self,
        input_ids: &Tensor,
        cache: &mut KvCache,
        last: &[usize],
    ) -> Result<Tensor> {
        let Some(lm_head) = &self.lm_head else {
            candle_core::bail!("this model is a trunk without a language-modelling head")
        };
        let hidden = self.run_hidden(input_ids, None, Some(cache))?;
        let (b, t, _) = hidden.dims3()?;
        if last.len() != b || last.iter().any(|&i| i >= t) {
            candle_core::bail!("positions {last:?} do not fit a batch of {b} rows of {t} tokens");
        }
        let rows = last
            .iter()
            .enumerate()
            .map(|(row, &i)| hidden.get(row)?.get(i))
            .collect::<Result<Vec<_>>>()?;
        lm_head
            .forward(&Tensor::stack(&rows, 0)?)?
            .to_dtype(DType::F32)
    }

    /// Every layer's attention probabilities (b, h, t, t) over whole sequences
    /// (b, t), for pictures of who attends to whom. A loop of its own, so that
    /// the other forward passes keep no layer's probabilities.
    pub fn attention_maps(&self, input_ids: &Tensor) -> Result<Vec<Tensor>> {
        let (b, t) = input_ids.dims2()?;
        let at = Positions {
            training: false, // the maps are kept outside a training step only
            ..self.positions(b, t, 0, None)?
        };
        let mut x = self.embed_tokens.forward(input_ids)?;
        let mut maps = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (next, probs) = layer.forward(&x, &at, None)?;
            x = next;
            maps.push(candle_core::Context::context(
                probs,
                "attention probabilities outside a training step",
            )?);
        }
        Ok(maps)
    }

    /// log p(x_{i+1} | x_{≤i}) of each next token, (b, t − 1): the per-token
    /// log-probabilities that SFT, DPO and PPO all need.
    pub fn token_log_probs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = match attention_mask {
            Some(m) => self.forward_masked(input_ids, m)?,
            None => self.forward(input_ids)?,
        };
        let t = input_ids.dim(1)?;
        let logits = out.logits.narrow(1, 0, t - 1)?;
        let targets = input_ids.narrow(1, 1, t - 1)?.contiguous()?;
        crate::ppo::log_prob_of(&logits, &targets)
    }

    /// The final hidden states (b, t, d) without the output head — what reward
    /// and value heads read. `attention_mask` as in [`Self::forward_masked`].
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.run_hidden(input_ids, attention_mask, None)
    }

    /// Mark the forward passes that follow as part of a training step (`true`)
    /// or not, for this model and its clones. Only the kernel choice changes
    /// (values agree to 1e-6), never what is computed.
    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    /// A fresh, empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Hidden states and the output head: the logits of every position.
    fn run(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<ForwardOutput> {
        let Some(lm_head) = &self.lm_head else {
            candle_core::bail!(
                "this model is a trunk without a language-modelling head (a reward or value model): use hidden_states"
            )
        };
        let hidden = self.run_hidden(input_ids, attention_mask, cache)?;
        let logits = lm_head.forward(&hidden)?.to_dtype(DType::F32)?;
        Ok(ForwardOutput { logits, hidden })
    }

    /// Embedding, blocks and final norm: the hidden states (b, t, d).
    fn run_hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let at = self.positions(b, t, past, attention_mask)?;
        let mut x = self.embed_tokens.forward(input_ids)?; // (b, t, d)
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(&x, &at, slot)?.0; // (b, t, d)
        }
        self.norm.forward_in(&x, at.training)
    }

    /// Where `t` new tokens after `past` cached ones sit, from the attention
    /// mask (b, past + t) when there is one; checks the mask's shape and that
    /// no position exceeds `max_position_embeddings`.
    fn positions(
        &self,
        b: usize,
        t: usize,
        past: usize,
        attention_mask: Option<&Tensor>,
    ) -> Result<Positions> {
        let mask_rows: Option<Vec<Vec<u32>>> = match attention_mask {
            Some(m) => {
                let m = m.to_dtype(DType::U32)?.to_device(&Device::Cpu)?;
                if m.dims() != [b, past + t] {
                    candle_core::bail!(
                        "attention mask has shape {:?}; expected (batch {b}, cached {past} + new {t})",
                        m.dims()
                    );
                }
                Some(m.to_vec2()?)
            }
            None => None,
        };
        let (ids, bias) = positions_and_bias(b, t, past, mask_rows.as_deref());
        let max = self.config.max_position_embeddings;
        if let Some(&largest) = ids.iter().max() {
            if largest as usize >= max {
                candle_core::bail!(
                    "position {largest} is beyond max_position_embeddings ({max}): use a shorter sequence"
                );
            }
        }
        let device = self.device();
        let ids = Tensor::from_vec(ids, (b, t), device)?;
        Ok(Positions {
            rope: self.rope.tables(&ids)?,
            training: self.training.load(Ordering::Relaxed),
            bias: match bias {
                Some((data, rows)) => Some(Tensor::from_vec(data, (rows, 1, t, past + t), device)?),
                None => None,
            },
        })
    }
}

/// Where the new tokens of a forward pass sit: what every block's attention
/// reads.
#[derive(Debug)]
struct Positions {
    /// The rotary tables at the position ids (b, t).
    rope: RopeTables,
    /// Whether this forward pass is part of a training step.
    training: bool,
    /// Additive attention bias (b or 1, 1, t, past + t) in f32, or `None` for a
    /// single new token that may see everything.
    bias: Option<Tensor>,
}

/// Position ids (b·t, row-major) and the additive attention bias for `t` new
/// tokens after `past` cached ones. Without a padding mask, position = past + i
/// and the bias is the causal mask shared by all rows (none at all for a single
/// new token). With a mask, position = (number of real tokens up to and
/// including this one) − 1, and padded keys are masked too. Masked scores get
/// −1e30 rather than −∞ so that an all-padding query row stays finite.
fn positions_and_bias(
    b: usize,
    t: usize,
    past: usize,
    mask: Option<&[Vec<u32>]>,
) -> (Vec<u32>, Option<(Vec<f32>, usize)>) {
    const MASKED: f32 = -1e30;
    let total = past + t;
    match mask {
        None => {
            let positions = (0..b)
                .flat_map(|_| (0..t).map(|i| (past + i) as u32))
                .collect();
            if t == 1 {
                return (positions, None);
            }
            let mut bias = vec![0f32; t * total];
            for i in 0..t {
                for j in past + i + 1..total {
                    bias[i * total + j] = MASKED;
                }
            }
            (positions, Some((bias, 1)))
        }
        Some(rows) => {
            let mut positions = Vec::with_capacity(b * t);
            let mut bias = vec![0f32; b * t * total];
            for (r, row) in rows.iter().enumerate() {
                let mut seen = row[..past].iter().filter(|&&m| m != 0).count() as u32;
                for i in 0..t {
                    if row[past + i] != 0 {
                        seen += 1;
                    }
                    positions.push(seen.saturating_sub(1));
                    for j in 0..total {
                        if j > past + i || row[j] == 0 {
                            bias[(r * t + i) * total + j] = MASKED;
                        }
                    }
                }
            }
            (positions, Some((bias, b)))
        }
    }
}
