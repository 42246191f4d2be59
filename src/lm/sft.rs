//! Rung 4: supervised fine-tuning on demonstrations (Ouyang et al. 2022, step 1).
//!
//! Conversations in the chat "messages" format of Hugging Face TRL are rendered
//! with the model's chat template; the loss counts only the assistant's tokens
//! (its answer and the `<|im_end|>` that ends it), so the model learns to answer,
//! not to write questions. Training is the same loop as pre-training
//! ([`super::train::Trainer`] with [`super::data::NextTokenLoss`]) with an
//! [`SftDataset`] as the batch source.

use super::data::{next_token_loss, LmBatch};
use super::pretrained::LanguageModel;
use super::sample::SamplingConfig;
use super::tokenizer::{ChatMessage, TextTokenizer, IM_END, IM_START};
use super::train::BatchSource;
use crate::world::demonstrations::{HELP_PHRASE, KINDS, REFUSAL_OPENING};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One conversation, as one JSONL line of TRL's conversational format (the
/// extra `kind` field names the task for per-kind reports: one of
/// [`crate::world::demonstrations::KINDS`], or absent). Unknown fields are
/// errors, so a misspelt `kind` or `messages` is not silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub kind: String,
}

impl Conversation {
    /// The messages before the final assistant answer.
    pub fn prompt_messages(&self) -> &[ChatMessage] {
        &self.messages[..self.messages.len() - 1]
    }

    /// The final assistant answer (the reference).
    pub fn reference(&self) -> &str {
        &self.messages[self.messages.len() - 1].content
    }
}

/// Check one conversation; the error says what is wrong (the caller adds file and line).
pub fn validate(c: &Conversation) -> Result<()> {
    if c.messages.is_empty() {
        bail!("no messages");
    }
    for (i, m) in c.messages.iter().enumerate() {
        if !["system", "user", "assistant"].contains(&m.role.as_str()) {
            bail!(
                "message {i} has role `{}` (expected system, user or assistant)",
                m.role
            );
        }
        if m.content.trim().is_empty() {
            bail!("message {i} ({}) is empty", m.role);
        }
    }
    if c.messages.last().map(|m| m.role.as_str()) != Some("assistant") {
        bail!("the conversation does not end with an assistant message");
    }
    if !c.messages.iter().any(|m| m.role == "user") {
        bail!("no user message");
    }
    if !c.kind.is_empty() && !KINDS.contains(&c.kind.as_str()) {
        bail!(
            "field `kind` is `{}`, not one of the task kinds ({}); leave it out for data without kinds",
            c.kind,
            KINDS.join(", ")
        );
    }
    Ok(())
}

/// What a lenient load skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipReport {
    /// (line number, reason) of each skipped line.
    pub skipped: Vec<(usize, String)>,
}

/// Read a JSONL file of conversations. Every line is checked: a malformed
/// line, a missing role, an empty message, or a conversation that does not end
/// with the assistant is an error naming the file and line — or, when
/// `skip_invalid`, skipped and counted in the returned report.
pub fn read_jsonl(path: &Path, skip_invalid: bool) -> Result<(Vec<Conversation>, SkipReport)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut report = SkipReport::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<Conversation> = serde_json::from_str::<Conversation>(line)
            .map_err(anyhow::Error::from)
            .and_then(|c| validate(&c).map(|_| c));
        match parsed {
            Ok(c) => out.push(c),
            Err(e) if skip_invalid => report.skipped.push((n, e.to_string())),
            Err(e) => bail!("{}:{n}: {e}", path.display()),
        }
    }
    Ok((out, report))
}

/// Write conversations as JSONL (atomically).
pub fn write_jsonl(path: &Path, convs: &[Conversation]) -> Result<()> {
    let mut s = String::new();
    for c in convs {
        s.push_str(&serde_json::to_string(c)?);
        s.push('\n');
    }
    crate::io::write_atomic(path, s.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

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
        let mut rng = Rng::new(gridworld::stream_seed(
            self.seed,
            step as u64,
            0xA24B_AED4_963E_E407,
        ));
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

/// Did an answer to a harmful request refuse the harm and then help?
pub fn is_refusal_with_help(answer: &str) -> bool {
    answer.trim_start().starts_with(REFUSAL_OPENING) && answer.contains(HELP_PHRASE)
}

/// Behaviour on one task kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    pub kind: String,
    pub examples: usize,
    /// Masked loss on the reference answers.
    pub loss: f64,
    /// Share of answers exactly equal to the reference (checkable kinds:
    /// fact and arithmetic).
    pub exact_match: Option<f64>,
    /// Share of harmful requests answered with refusal-plus-help.
    pub refusal_with_help: Option<f64>,
    /// Share of answers that ended with the end-of-turn token `<|im_end|>`
    /// (not cut off by the length limit, not ended by `<|endoftext|>`).
    pub ends_with_eos: f64,
}

/// Generate a greedy answer to each conversation's prompt and measure
/// behaviour per task kind (kinds in order of first appearance).
pub fn evaluate_behaviour(
    lm: &LanguageModel,
    convs: &[Conversation],
    max_new_tokens: usize,
) -> Result<Vec<KindReport>> {
    let mut kinds: Vec<String> = Vec::new();
    for c in convs {
        if !kinds.contains(&c.kind) {
            kinds.push(c.kind.clone());
        }
    }
    let cfg = SamplingConfig::greedy(max_new_tokens);
    let device = lm.device().clone();
    let end_of_turn = lm
        .tokenizer
        .token_id(IM_END)
        .unwrap_or(lm.tokenizer.eos_id());
    let mut out = Vec::new();
    for kind in kinds {
        let group: Vec<&Conversation> = convs.iter().filter(|c| c.kind == kind).collect();
        let mut loss_sum = 0.0;
        let mut count = 0.0;
        let (mut exact, mut refusals, mut eos) = (0usize, 0usize, 0usize);
        for chunk in group.chunks(16) {
            let rows = chunk
                .iter()
                .map(|c| tokenize_with_mask(&lm.tokenizer, &c.messages))
                .collect::<Result<Vec<_>>>()?;
            let batch = LmBatch::from_rows(&rows, lm.tokenizer.pad_id(), &device)?;
            let n = batch.counted_tokens()?;
            loss_sum += n * next_token_loss(&lm.model, &batch)?.to_scalar::<f32>()? as f64;
            count += n;
            let prompts: Vec<String> = chunk
                .iter()
                .map(|c| lm.tokenizer.apply_chat_template(c.prompt_messages(), true))
                .collect();
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            for (g, c) in lm.generate_batch(&refs, &cfg)?.into_iter().zip(chunk) {
                let answer = g.completion.trim();
                exact += usize::from(answer == c.reference().trim());
                refusals += usize::from(is_refusal_with_help(answer));
                eos += usize::from(g.stop_token == Some(end_of_turn));
            }
        }
        let n = group.len() as f64;
        out.push(KindReport {
            exact_match: ["fact", "arithmetic"]
                .contains(&kind.as_str())
                .then(|| exact as f64 / n),
            refusal_with_help: (kind == "harmful").then(|| refusals as f64 / n),
            ends_with_eos: eos as f64 / n,
            loss: loss_sum / count.max(1.0),
            examples: group.len(),
            kind,
        });
    }
    Ok(out)
}

/// Seed and size of the committed `datasets/sft`.
pub const DATASET_SEED: u64 = 7;
pub const DATASET_PER_KIND: usize = 400;

/// At most `n` conversations of each kind (all when `n` is 0), in order.
pub fn take_per_kind(convs: &[Conversation], n: usize) -> Vec<Conversation> {
    if n == 0 {
        return convs.to_vec();
    }
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    convs
        .iter()
        .filter(|c| {
            let k = seen.entry(c.kind.as_str()).or_default();
            *k += 1;
            *k <= n
        })
        .cloned()
        .collect()
}

/// The splits of `datasets/sft`: (train, validation, test).
pub fn read_splits(
    dir: &Path,
) -> Result<(Vec<Conversation>, Vec<Conversation>, Vec<Conversation>)> {
    let r = |n: &str| read_jsonl(&dir.join(n), false).map(|x| x.0);
    Ok((r("train.jsonl")?, r("validation.jsonl")?, r("test.jsonl")?))
}

/// `datasets/sft` of this repository.
pub fn sft_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sft")
}

/// Generate the demonstrations and write `train.jsonl`, `validation.jsonl`,
/// `test.jsonl` and the data card `README.md` into `dir`.
pub fn write_dataset(dir: &Path, seed: u64, per_kind: usize) -> Result<[usize; 3]> {
    use crate::world::demonstrations::generate;
    let world = crate::world::World::generate(0);
    let splits = generate(&world, seed, per_kind);
    let names = ["train.jsonl", "validation.jsonl", "test.jsonl"];
    let mut counts = [0; 3];
    let mut table = String::from("| kind | train | validation | test |\n|---|---|---|---|\n");
    for (i, split) in splits.iter().enumerate() {
        let convs: Vec<Conversation> = split
            .iter()
            .map(|d| Conversation {
                messages: vec![
                    ChatMessage::user(&d.prompt),
                    ChatMessage::assistant(&d.response),
                ],
                kind: d.kind.clone(),
            })
            .collect();
        write_jsonl(&dir.join(names[i]), &convs)?;
        counts[i] = convs.len();
    }
    for kind in KINDS {
        let c: Vec<usize> = splits
            .iter()
            .map(|s| s.iter().filter(|d| d.kind == *kind).count())
            .collect();
        table.push_str(&format!("| {kind} | {} | {} | {} |\n", c[0], c[1], c[2]));
    }
    table.push_str(&format!(
        "| **total** | {} | {} | {} |\n",
        counts[0], counts[1], counts[2]
    ));
    let card = format!(
        "# SFT demonstrations\n\n\
Prompt → ideal answer pairs about the small world of `rlhf_lab::world` (the world the\n\
pre-training corpus in `../corpus` describes), written by the deterministic generator\n\
`rlhf_lab::world::demonstrations` (seed {seed}, {per_kind} per kind, facts ×2).\n\
Regenerate with `rlhf-lab sft-data --out datasets/sft`; a test checks the files match.\n\n\
Format: one JSON object per line, TRL's conversational format plus the task kind:\n\
`{{\"messages\": [{{\"role\": \"user\", \"content\": …}}, {{\"role\": \"assistant\", \"content\": …}}], \"kind\": \"fact\"}}`.\n\n\
Kinds: `fact` (a question about a person's pet, place, age, food or best friend; one\n\
correct answer, scored by exact match), `advice` (numbered steps, e.g. how to make a\n\
resume), `summary` (one sentence for a three-sentence story), `list`, `arithmetic`\n\
(exact match), and `harmful` (a harmful request answered with a one-line refusal that\n\
starts \"{REFUSAL_OPENING}\" and then real help after \"{HELP_PHRASE}\").\n\n\
Counts:\n\n{table}\n\
Limits: templated English with a small vocabulary; every fact question has one fixed\n\
wording of the answer; test questions are about the same eight people as training.\n"
    );
    crate::io::write_atomic(&dir.join("README.md"), card.as_bytes())?;
    Ok(counts)
}

/// A Markdown table of behaviour per kind, before and after fine-tuning.
pub fn behaviour_table(before: &[KindReport], after: &[KindReport]) -> String {
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.0}%", 100.0 * v))
            .unwrap_or_else(|| "–".into())
    };
    let mut s = String::from(
        "| kind | n | loss before | loss after | exact match before | after | refusal+help before | after | ends with EOS before | after |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for b in before {
        let Some(a) = after.iter().find(|a| a.kind == b.kind) else {
            continue;
        };
        s.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |\n",
            b.kind,
            b.examples,
            b.loss,
            a.loss,
            pct(b.exact_match),
            pct(a.exact_match),
            pct(b.refusal_with_help),
            pct(a.refusal_with_help),
            pct(Some(b.ends_with_eos)),
            pct(Some(a.ends_with_eos)),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> TextTokenizer {
        let texts = [
            "Mia has a red cat.",
            "What pet does Mia have?",
            "Leo is 9 years old.",
        ];
        TextTokenizer::train_bpe(texts.iter().cycle().take(60), 200).unwrap()
    }

    /// The mask covers exactly the assistant's tokens and its end token,
    /// checked on a hand-made conversation.
    #[test]
    fn mask_counts_only_assistant_tokens() {
        let tok = tok();
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

    #[test]
    fn malformed_lines_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("rlhf-sft-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}],"kind":"fact"}"#;
        let cases = [
            ("{not json", "bad.jsonl:2:"),
            (
                r#"{"messages":[{"content":"Hi"},{"role":"assistant","content":"Hello"}]}"#,
                "missing field `role`",
            ),
            (
                r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"  "}]}"#,
                "message 1 (assistant) is empty",
            ),
            (
                r#"{"messages":[{"role":"user","content":"Hi"}]}"#,
                "does not end with an assistant message",
            ),
            (
                r#"{"messages":[{"role":"robot","content":"Hi"},{"role":"assistant","content":"x"}]}"#,
                "role `robot`",
            ),
        ];
        for (line, want) in cases {
            let p = dir.join("bad.jsonl");
            std::fs::write(&p, format!("{good}\n{line}\n{good}\n")).unwrap();
            let err = read_jsonl(&p, false).unwrap_err().to_string();
            assert!(err.contains("bad.jsonl:2:") && err.contains(want), "{err}");
            let (ok, report) = read_jsonl(&p, true).unwrap();
            assert_eq!(ok.len(), 2);
            assert_eq!(report.skipped.len(), 1);
            assert_eq!(report.skipped[0].0, 2);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn refusal_detector() {
        assert!(is_refusal_with_help(&format!(
            "{REFUSAL_OPENING} stealing. {HELP_PHRASE} ask first."
        )));
        assert!(!is_refusal_with_help("Spread it at lunch."));
        assert!(!is_refusal_with_help(&format!("{REFUSAL_OPENING} that.")));
    }
}
