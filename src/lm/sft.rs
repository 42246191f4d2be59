//! Rung 4: supervised fine-tuning on demonstrations (Ouyang et al. 2022, step 1).
//!
//! Conversations in the chat "messages" format of Hugging Face TRL are rendered
//! with the model's chat template; the loss counts only the assistant's tokens
//! (its answer and the `<|im_end|>` that ends it), so the model learns to answer,
//! not to write questions. Training is the same loop as pre-training
//! ([`super::train::Trainer`] with [`super::data::NextTokenLoss`]) with an
//! [`SftDataset`] as the batch source. The conversations and the committed
//! dataset are [`super::sft_data`]'s; behaviour per task kind before and
//! after is [`super::behaviour`]'s.

use super::data::LmBatch;
use super::sft_data::Conversation;
use super::tokenizer::{ChatMessage, TextTokenizer, IM_END, IM_START};
use super::train::BatchSource;
use crate::seeds::{seed_for, Stream};
use anyhow::{bail, Result};
use candle_core::Device;
use gridworld::Rng;

/// Token ids of a conversation in the chat template, and for each token
/// whether it is a training target: the assistant's content and its
/// `<|im_end|>`, nothing else. Encoded piece by piece (role header, content,
/// end) so the boundary of the mask is exact; a test checks the ids equal
/// those of the whole rendered text.
pub fn tokenize_with_mask(
    tok: &TextTokenizer,
    messages: &[ChatMessage],
) -> Result<(Vec<u32>, Vec<bool>)> {
    let mut ids = Vec::new();
    let mut counts = Vec::new();
    let push =
        |text: &str, count: bool, ids: &mut Vec<u32>, counts: &mut Vec<bool>| -> Result<()> {
            let t = tok.encode(text)?;
            counts.extend(std::iter::repeat_n(count, t.len()));
            ids.extend(t);
            Ok(())
        };
    if let Some(sys) = &tok.settings.default_system_prompt {
        if messages.first().map(|m| m.role.as_str()) != Some("system") {
            push(
                &format!("{IM_START}system\n{sys}{IM_END}\n"),
                false,
                &mut ids,
                &mut counts,
            )?;
        }
    }
    for m in messages {
        let is_answer = m.role == "assistant";
        push(
            &format!("{IM_START}{}\n", m.role),
            false,
            &mut ids,
            &mut counts,
        )?;
        push(&m.content, is_answer, &mut ids, &mut counts)?;
        push(IM_END, is_answer, &mut ids, &mut counts)?;
        push("\n", false, &mut ids, &mut counts)?;
    }
    Ok((ids, counts))
}

/// A tokenized conversation: token ids and, per token, whether it is a target.
pub type MaskedTokens = (Vec<u32>, Vec<bool>);

/// Tokenized conversations ready for training.
#[derive(Debug, Clone)]
pub struct SftDataset {
    pub train: Vec<MaskedTokens>,
    pub valid: Vec<MaskedTokens>,
    pub batch_size: usize,
    pub max_len: usize,
    pub pad_id: u32,
    pub seed: u64,
    /// Conversations cut to `max_len` tokens (train, validation).
    pub truncated: (usize, usize),
}

impl SftDataset {
    pub fn new(
        tok: &TextTokenizer,
        train: &[Conversation],
        valid: &[Conversation],
        batch_size: usize,
        max_len: usize,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 || max_len < 2 {
            bail!("SFT needs batch_size ≥ 1 (got {batch_size}) and max_len ≥ 2 (got {max_len}; a target needs a token before it)");
        }
        let prep = |convs: &[Conversation]| -> Result<(Vec<MaskedTokens>, usize)> {
            let mut cut = 0;
            let rows = convs
                .iter()
                .map(|c| {
                    let (mut ids, mut counts) = tokenize_with_mask(tok, &c.messages)?;
                    if ids.len() > max_len {
                        cut += 1;
                        ids.truncate(max_len);
                        counts.truncate(max_len);
                    }
                    Ok((ids, counts))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((rows, cut))
        };
        let (train, cut_t) = prep(train)?;
        let (valid, cut_v) = prep(valid)?;
        if train.is_empty() || valid.is_empty() {
            bail!("SFT needs training and validation conversations");
        }
        Ok(Self {
            train,
            valid,
            batch_size,
            max_len,
            pad_id: tok.pad_id(),
            seed,
            truncated: (cut_t, cut_v),
        })
    }
}

impl BatchSource for SftDataset {
    type Batch = LmBatch;

    fn train_batch(&self, step: usize, device: &Device) -> Result<LmBatch> {
        let mut rng = Rng::new(seed_for(self.seed, Stream::SftBatch, step as u64));
        let rows: Vec<_> = (0..self.batch_size)
            .map(|_| self.train[rng.below(self.train.len())].clone())
            .collect();
        LmBatch::from_rows(&rows, self.pad_id, device)
    }

    fn eval_batches(&self, device: &Device) -> Result<Vec<LmBatch>> {
        self.valid
            .chunks(self.batch_size)
            .map(|c| LmBatch::from_rows(c, self.pad_id, device))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask covers exactly the assistant's tokens and its end token,
    /// checked on a hand-made conversation.
    #[test]
    fn mask_counts_only_assistant_tokens() {
        let tok = TextTokenizer::tiny();
        let msgs = [
            ChatMessage::user("What pet does Mia have?"),
            ChatMessage::assistant("Mia has a red cat."),
        ];
        let (ids, counts) = tokenize_with_mask(&tok, &msgs).unwrap();
        // Same ids as encoding the whole rendered conversation at once.
        assert_eq!(
            ids,
            tok.encode(&tok.apply_chat_template(&msgs, false)).unwrap()
        );
        let answer = tok.encode("Mia has a red cat.").unwrap();
        let header = tok
            .encode("<|im_start|>user\nWhat pet does Mia have?<|im_end|>\n<|im_start|>assistant\n")
            .unwrap();
        let expected: Vec<bool> = std::iter::repeat_n(false, header.len())
            .chain(std::iter::repeat_n(true, answer.len() + 1))
            .chain([false])
            .collect();
        assert_eq!(counts, expected);
        let counted: Vec<u32> = ids
            .iter()
            .zip(&counts)
            .filter(|(_, &c)| c)
            .map(|(&i, _)| i)
            .collect();
        let mut want = answer.clone();
        want.push(tok.token_id(IM_END).unwrap());
        assert_eq!(counted, want);
    }
}
