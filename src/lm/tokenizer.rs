//! Text ↔ token ids: byte-level BPE (Sennrich et al. 2016; Radford et al. 2019),
//! through Hugging Face's `tokenizers` crate.
//!
//! A [`TextTokenizer`] is trained on the project's corpus, read from any
//! `tokenizer.json`, or rebuilt from the vocabulary and merges stored inside a
//! GGUF file. It also knows the model's special tokens and its chat template
//! (ChatML, as SmolLM2 uses), and encodes batches with padding and attention masks.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

/// End of a document in pre-training text.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// ChatML: start of a message (followed by the role and a newline).
pub const IM_START: &str = "<|im_start|>";
/// ChatML: end of a message.
pub const IM_END: &str = "<|im_end|>";

/// One chat message, as in Hugging Face / OpenAI chat formats. Fields other
/// than `role` and `content` are errors (not silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
    pub fn system(content: &str) -> Self {
        Self::new("system", content)
    }
}

/// Special tokens and chat settings (Hugging Face keeps these in
/// `tokenizer_config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSettings {
    pub bos_token: Option<String>,
    pub eos_token: String,
    pub pad_token: String,
    /// ChatML system message added when a conversation has none (SmolLM2 has one).
    pub default_system_prompt: Option<String>,
}

/// A batch of token ids padded to one length, with its attention mask.
#[derive(Debug, Clone)]
pub struct PaddedBatch {
    /// (b, t) u32
    pub input_ids: Tensor,
    /// (b, t) u32, 1 for tokens and 0 for padding
    pub attention_mask: Tensor,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
}

/// Which side padding goes on: left for generation (every prompt ends at the
/// same column), right for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingSide {
    Left,
    Right,
}

/// A tokenizer plus the model's special tokens and chat template.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pub settings: TokenizerSettings,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Byte-level pre-tokenisation as GPT-2 (no prefix space), optionally
/// splitting every digit on its own first (SmolLM2's "smollm" rule).
fn pre_tokenizer(split_digits: bool) -> PreTokenizerWrapper {
    let byte_level = ByteLevel::new(false, true, true);
    if split_digits {
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else {
        byte_level.into()
    }
}

impl TextTokenizer {
    /// Train a byte-level BPE tokenizer of `vocab_size` tokens (special tokens
    /// included) on `texts`. Digits are split individually, as SmolLM2 does, so
    /// numbers are spelled digit by digit. Special tokens: `<|endoftext|>` (id 0,
    /// end of document and padding), `<|im_start|>` (1), `<|im_end|>` (2, end of a
    /// chat turn).
    pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let specials: Vec<AddedToken> = [END_OF_TEXT, IM_START, IM_END]
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        let mut tok = Tokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(pre_tokenizer(true)));
        tok.with_decoder(Some(ByteLevel::default()));
        tok.train(&mut trainer, texts)
            .map_err(|e| anyhow::anyhow!("training the BPE tokenizer: {e}"))?;
        Ok(Self {
            inner: tok,
            settings: TokenizerSettings {
                bos_token: None,
                eos_token: END_OF_TEXT.into(),
                pad_token: END_OF_TEXT.into(),
                default_system_prompt: None,
            },
        })
    }

    /// The test fixture: a 300-token BPE tokenizer trained in milliseconds on
    /// three sentences of the small world ("Mia has a red cat.", …). Unit
    /// tests, integration tests and doc examples that need *a* tokenizer, not
    /// the corpus's ([`crate::lm::pretrain`] trains that one), use this.
    pub fn tiny() -> Self {
        let texts = [
            "Mia has a red cat.",
            "Leo has a blue dog.",
            "The cat sat in the park 12 times.",
        ];
        Self::train_bpe(texts.iter().cycle().take(300), 300)
            .expect("training on fixed sentences succeeds")
    }

    /// Read `tokenizer.json`, and `tokenizer_config.json` beside it when present
    /// (for the special tokens). Without one, the special tokens are guessed from
    /// the vocabulary (`<|im_end|>` or `<|endoftext|>` or `</s>` ends a sequence).
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{}: not a valid tokenizer.json: {e}", path.display()))?;
        let config = path.with_file_name("tokenizer_config.json");
        let settings = if config.exists() {
            read_tokenizer_config(&config)?
        } else {
            let has = |t: &str| inner.token_to_id(t).is_some();
            let eos = [IM_END, END_OF_TEXT, "</s>"]
                .into_iter()
                .find(|t| has(t))
                .with_context(|| {
                    format!(
                        "{}: no tokenizer_config.json beside it and no known end-of-sequence token",
                        path.display()
                    )
                })?;
            TokenizerSettings {
                bos_token: ["<s>"].into_iter().find(|t| has(t)).map(String::from),
                eos_token: eos.into(),
                pad_token: eos.into(),
                default_system_prompt: None,
            }
        };
        let tok = Self { inner, settings };
        tok.check_settings(&path.display().to_string())?;
        Ok(tok)
    }

    /// Rebuild the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`):
    /// byte-level BPE from `tokens` and `merges`, control tokens (type 3) as
    /// special tokens, `bos/eos/padding_token_id`, and the default system
    /// prompt of a ChatML `tokenizer.chat_template`.
    pub fn from_gguf(
        content: &candle_core::quantized::gguf_file::Content,
        source: &str,
    ) -> Result<Self> {
        let md = &content.metadata;
        let get = |k: &str| {
            md.get(k)
                .with_context(|| format!("{source}: GGUF metadata has no `{k}`"))
        };
        let model = get("tokenizer.ggml.model")?.to_string()?.clone();
        if model != "gpt2" {
            bail!("{source}: tokenizer.ggml.model is `{model}`; only byte-level BPE (`gpt2`) is supported");
        }
        let tokens: Vec<String> = get("tokenizer.ggml.tokens")?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()?;
        let merges: Vec<(String, String)> = get("tokenizer.ggml.merges")?
            .to_vec()?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let m = v.to_string()?;
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .with_context(|| format!("{source}: merge {i} (`{m}`) is not two tokens"))
            })
            .collect::<Result<_>>()?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(t) => t
                .to_vec()?
                .iter()
                .map(|v| v.to_i32())
                .collect::<candle_core::Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| anyhow::anyhow!("{source}: building BPE: {e}"))?;
        let mut inner = Tokenizer::new(bpe);
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|p| p.to_string().ok().cloned())
            .unwrap_or_default();
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre == "smollm")));
        inner.with_decoder(Some(ByteLevel::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &ty)| ty == 3)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| anyhow::anyhow!("{source}: adding special tokens: {e}"))?;
        let id_token = |key: &str| -> Result<Option<String>> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.to_u32()? as usize;
                    tokens.get(id).cloned().map(Some).with_context(|| {
                        format!("{source}: `{key}` = {id} is outside the vocabulary")
                    })
                }
            }
        };
        let eos = id_token("tokenizer.ggml.eos_token_id")?.with_context(|| {
            format!("{source}: GGUF metadata has no `tokenizer.ggml.eos_token_id`")
        })?;
        let template = md
            .get("tokenizer.chat_template")
            .and_then(|t| t.to_string().ok().cloned())
            .unwrap_or_default();
        let settings = TokenizerSettings {
            bos_token: id_token("tokenizer.ggml.bos_token_id")?,
            pad_token: id_token("tokenizer.ggml.padding_token_id")?.unwrap_or(eos.clone()),
            eos_token: eos,
            default_system_prompt: default_system_prompt(&template),
        };
        let tok = Self { inner, settings };
        tok.check_settings(source)?;
        Ok(tok)
    }

    fn check_settings(&self, source: &str) -> Result<()> {
        let s = &self.settings;
        for t in [Some(&s.eos_token), Some(&s.pad_token), s.bos_token.as_ref()]
            .into_iter()
            .flatten()
        {
            if self.inner.token_to_id(t).is_none() {
                bail!("{source}: special token `{t}` is not in the vocabulary");
            }
        }
        Ok(())
    }

    /// Write `tokenizer.json` and `tokenizer_config.json` (with the ChatML
    /// template as Jinja, so Hugging Face transformers can use it too) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| anyhow::anyhow!("serialising the tokenizer: {e}"))?;
        crate::io::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())
            .with_context(|| format!("writing {}", dir.join("tokenizer.json").display()))?;
        let s = &self.settings;
        let config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": s.bos_token,
            "eos_token": s.eos_token,
            "pad_token": s.pad_token,
            "default_system_prompt": s.default_system_prompt,
            "chat_template": chatml_jinja(s.default_system_prompt.as_deref()),
        });
        let path = dir.join("tokenizer_config.json");
        crate::io::write_json_atomic(&path, &config)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Number of token ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn eos_id(&self) -> u32 {
        self.token_id(&self.settings.eos_token)
            .expect("checked at load")
    }

    pub fn pad_id(&self) -> u32 {
        self.token_id(&self.settings.pad_token)
            .expect("checked at load")
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.settings
            .bos_token
            .as_deref()
            .and_then(|t| self.token_id(t))
    }

    /// Ids that end generation: the end-of-sequence token, plus `<|im_end|>`
    /// and `<|endoftext|>` when the vocabulary has them.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.eos_id()];
        for t in [IM_END, END_OF_TEXT] {
            if let Some(id) = self.token_id(t) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`)
    /// become their ids; no BOS is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("encoding {text:?}: {e}"))?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`; special tokens are dropped when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow::anyhow!("decoding {ids:?}: {e}"))
    }

    /// The text piece of each token of `text` (for a coloured token view).
    /// Pieces that are not whole characters (part of a multi-byte letter) show
    /// as `�`.
    pub fn pieces(&self, text: &str) -> Result<Vec<(u32, String)>> {
        let ids = self.encode(text)?;
        ids.iter()
            .map(|&id| Ok((id, self.decode(&[id], false)?)))
            .collect()
    }

    /// ChatML text of a conversation (SmolLM2's template):
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, preceded by the
    /// default system message when the conversation has none, and followed by
    /// `<|im_start|>assistant\n` when `add_generation_prompt`.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> String {
        let mut out = String::new();
        if let Some(sys) = &self.settings.default_system_prompt {
            if messages.first().map(|m| m.role.as_str()) != Some("system") {
                out.push_str(&format!("{IM_START}system\n{sys}{IM_END}\n"));
            }
        }
        for m in messages {
            out.push_str(&format!("{IM_START}{}\n{}{IM_END}\n", m.role, m.content));
        }
        if add_generation_prompt {
            out.push_str(&format!("{IM_START}assistant\n"));
        }
        out
    }

    /// Encode several texts and pad them to the longest with the pad token.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        side: PaddingSide,
        device: &Device,
    ) -> Result<PaddedBatch> {
        let rows = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>>>()?;
        pad_batch(&rows, self.pad_id(), side, device)
    }
}

/// Pad token-id rows to the longest one; returns ids, attention mask and lengths.
pub fn pad_batch(
    rows: &[Vec<u32>],
    pad_id: u32,
    side: PaddingSide,
    device: &Device,
) -> Result<PaddedBatch> {
    if rows.is_empty() {
        bail!("cannot pad an empty batch");
    }
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut ids: Vec<u32> = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len() * t);
    for r in rows {
        let pad = t - r.len();
        let (pad_ids, pad_mask) = (vec![pad_id; pad], vec![0u32; pad]);
        if side == PaddingSide::Left {
            ids.extend(&pad_ids);
            mask.extend(&pad_mask);
        }
        ids.extend(r);
        mask.extend(std::iter::repeat_n(1u32, r.len()));
        if side == PaddingSide::Right {
            ids.extend(&pad_ids);
            mask.extend(&pad_mask);
        }
    }
    Ok(PaddedBatch {
        input_ids: Tensor::from_vec(ids, (rows.len(), t), device)?,
        attention_mask: Tensor::from_vec(mask, (rows.len(), t), device)?,
        lengths: rows.iter().map(|r| r.len()).collect(),
    })
}

fn read_tokenizer_config(path: &Path) -> Result<TokenizerSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    // Tokens may be plain strings or {"content": "..."} objects.
    let token = |k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
            _ => None,
        }
    };
    let eos = token("eos_token").with_context(|| format!("{}: no `eos_token`", path.display()))?;
    let template = v
        .get("chat_template")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let default_system = match v.get("default_system_prompt") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => None,
        None => default_system_prompt(template),
    };
    Ok(TokenizerSettings {
        bos_token: token("bos_token"),
        pad_token: token("pad_token").unwrap_or(eos.clone()),
        eos_token: eos,
        default_system_prompt: default_system,
    })
}

/// The system message a ChatML Jinja template inserts when a conversation has
/// none: the text between `<|im_start|>system\n` and `<|im_end|>` in the template.
fn default_system_prompt(template: &str) -> Option<String> {
    // The newline is either a real one or the escape `\n` inside a Jinja string.
    for start in [
        format!("{IM_START}system\n"),
        format!("{IM_START}system\\n"),
    ] {
        if let Some(at) = template.find(&start) {
            let from = at + start.len();
            let len = template[from..].find(IM_END)?;
            return Some(template[from..from + len].replace("\\n", "\n"));
        }
    }
    None
}

/// The Jinja form of [`TextTokenizer::apply_chat_template`].
fn chatml_jinja(default_system: Option<&str>) -> String {
    let system = match default_system {
        Some(s) => format!(
            "{{% if loop.first and messages[0]['role'] != 'system' %}}{{{{ '{IM_START}system\\n{s}{IM_END}\\n' }}}}{{% endif %}}"
        ),
        None => String::new(),
    };
    format!(
        "{{% for message in messages %}}{system}{{{{'{IM_START}' + message['role'] + '\\n' + message['content'] + '{IM_END}' + '\\n'}}}}{{% endfor %}}{{% if add_generation_prompt %}}{{{{ '{IM_START}assistant\\n' }}}}{{% endif %}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_specials_and_files() {
        let tok = TextTokenizer::tiny();
        let text = "Mia has a blue cat! 🐉 Ünïcödé 345";
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Digits are split one by one.
        let digits: Vec<String> = tok
            .pieces("345")
            .unwrap()
            .into_iter()
            .map(|p| p.1)
            .collect();
        assert_eq!(digits, ["3", "4", "5"]);
        // Special tokens are single ids.
        assert_eq!(tok.encode("<|im_start|>user").unwrap()[0], 1);
        assert_eq!(tok.eos_id(), 0);
        let dir = std::env::temp_dir().join(format!("rlhf-tok-{}", std::process::id()));
        tok.save(&dir).unwrap();
        let back = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        assert_eq!(back.encode(text).unwrap(), ids);
        assert_eq!(back.settings, tok.settings);
        std::fs::write(dir.join("broken.json"), "{").unwrap();
        let err = TextTokenizer::from_file(&dir.join("broken.json")).unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn chat_template_and_padding() {
        let mut tok = TextTokenizer::tiny();
        let msgs = [ChatMessage::user("Hi")];
        assert_eq!(
            tok.apply_chat_template(&msgs, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        tok.settings.default_system_prompt = Some("Be kind.".into());
        assert!(tok
            .apply_chat_template(&msgs, false)
            .starts_with("<|im_start|>system\nBe kind.<|im_end|>\n"));
        let jinja = chatml_jinja(Some("Be kind."));
        assert_eq!(default_system_prompt(&jinja).as_deref(), Some("Be kind."));

        let b = tok
            .encode_batch(
                &["Mia", "Mia has a red cat."],
                PaddingSide::Left,
                &Device::Cpu,
            )
            .unwrap();
        let mask: Vec<Vec<u32>> = b.attention_mask.to_vec2().unwrap();
        let ids: Vec<Vec<u32>> = b.input_ids.to_vec2().unwrap();
        let n = b.lengths[0];
        let t = ids[0].len();
        assert_eq!(&mask[0][..t - n], vec![0; t - n].as_slice());
        assert_eq!(&ids[0][t - n..], tok.encode("Mia").unwrap().as_slice());
        assert!(mask[1].iter().all(|&m| m == 1));
    }
}
