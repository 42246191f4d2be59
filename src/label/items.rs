//! What there is to label: prompts, each with its candidate answers, read from
//! a JSONL file the project already writes, and the pairs of answers to compare.
//!
//! Accepted files (the format is recognised from the first record):
//! - **feedback records** (rung 5's format, `{"kind": "comparison", …}` and
//!   thumbs / rating / checklist records): every answer they show, per prompt;
//! - **answers** with `prompt_id`, `text` and a `system` (rung 5's candidates)
//!   or a `source` (rung 6's sampled answers, `responses.jsonl`): the prompt
//!   text comes from a `prompt` field or, failing that, from the
//!   `prompts.jsonl` beside the file (as `rlhf-lab rm data` writes it).
//!
//! An answer is identified within its prompt by a *key*: its system, or
//! `#N` (its position) when the file names none.

use crate::feedback::records::{parse_feedback_lines, Feedback};
use crate::io::jsonl::{parse_jsonl_with, JsonlOptions};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// One candidate answer to a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Identifies the answer within its prompt: the system, or `#N`.
    pub key: String,
    /// The system (style or model) that wrote it; empty when unknown.
    pub system: String,
    /// The answer exactly as in the file (a chat turn may end in `<|im_end|>`).
    pub text: String,
}

/// One prompt and its candidate answers.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptItem {
    pub prompt_id: String,
    pub prompt: String,
    pub answers: Vec<Answer>,
}

/// Two answers to one prompt: indices into [`Catalogue::prompts`] and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairRef {
    pub prompt: usize,
    pub a: usize,
    pub b: usize,
}

/// One answer to one prompt: indices into [`Catalogue::prompts`] and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnswerRef {
    pub prompt: usize,
    pub answer: usize,
}

/// Everything to label: prompts in file order, every pair of distinct answers
/// of a prompt, every single answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub prompts: Vec<PromptItem>,
    pub pairs: Vec<PairRef>,
    pub singles: Vec<AnswerRef>,
    by_id: HashMap<String, usize>,
}

impl Catalogue {
    /// A catalogue of `prompts` (answers with the same key merged, first kept).
    pub fn new(prompts: Vec<PromptItem>) -> Self {
        let mut pairs = Vec::new();
        let mut singles = Vec::new();
        for (p, item) in prompts.iter().enumerate() {
            let n = item.answers.len();
            for a in 0..n {
                singles.push(AnswerRef {
                    prompt: p,
                    answer: a,
                });
                for b in a + 1..n {
                    pairs.push(PairRef { prompt: p, a, b });
                }
            }
        }
        let by_id = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.prompt_id.clone(), i))
            .collect();
        Self {
            prompts,
            pairs,
            singles,
            by_id,
        }
    }

    /// The index of prompt `prompt_id`.
    pub fn prompt_index(&self, prompt_id: &str) -> Option<usize> {
        self.by_id.get(prompt_id).copied()
    }

    /// The answer with `key` of prompt `prompt_id`.
    pub fn answer(&self, prompt_id: &str, key: &str) -> Option<AnswerRef> {
        let prompt = self.prompt_index(prompt_id)?;
        let answer = self.prompts[prompt]
            .answers
            .iter()
            .position(|a| a.key == key)?;
        Some(AnswerRef { prompt, answer })
    }

    /// The prompt and answer an [`AnswerRef`] points at.
    pub fn get(&self, r: AnswerRef) -> (&PromptItem, &Answer) {
        let p = &self.prompts[r.prompt];
        (p, &p.answers[r.answer])
    }
}

/// Collects answers per prompt in file order, merging repeats.
#[derive(Default)]
struct Builder {
    prompts: Vec<PromptItem>,
    index: HashMap<String, usize>,
}

impl Builder {
    fn add(&mut self, prompt_id: &str, prompt: &str, system: &str, text: &str) {
        let i = *self.index.entry(prompt_id.to_string()).or_insert_with(|| {
            self.prompts.push(PromptItem {
                prompt_id: prompt_id.to_string(),
                prompt: prompt.to_string(),
                answers: Vec::new(),
            });
            self.prompts.len() - 1
        });
        let item = &mut self.prompts[i];
        let seen = if system.is_empty() {
            item.answers
                .iter()
                .any(|a| a.system.is_empty() && a.text == text)
        } else {
            item.answers.iter().any(|a| a.system == system)
        };
        if !seen {
            let key = if system.is_empty() {
                format!("#{}", item.answers.len() + 1)
            } else {
                system.to_string()
            };
            item.answers.push(Answer {
                key,
                system: system.to_string(),
                text: text.to_string(),
            });
        }
    }
}

/// One answer line (rung 5's candidates, rung 6's `responses.jsonl`).
#[derive(Debug, Deserialize)]
struct AnswerLine {
    prompt_id: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(alias = "source", default)]
    system: String,
    text: String,
}

/// One line of a `prompts.jsonl`: only the id and the text matter here.
#[derive(Debug, Deserialize)]
struct PromptLine {
    id: String,
    text: String,
}

/// Read the items of `path` (see the module documentation for the formats).
/// Errors name the file and the line.
pub fn read_items(path: &Path) -> Result<Catalogue> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let source = path.display().to_string();
    let first = text.lines().find(|l| !l.trim().is_empty());
    let Some(first) = first else {
        bail!("{source}: no items (the file is empty)");
    };
    let is_record = serde_json::from_str::<serde_json::Value>(first)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .is_some_and(|k| ["comparison", "thumbs", "rating", "checklist"].contains(&k.as_str()));
    let mut builder = Builder::default();
    if is_record {
        for (_, record) in parse_feedback_lines(&text, &source)? {
            match record {
                Feedback::Comparison(c) => {
                    builder.add(&c.prompt_id, &c.prompt, &c.system_a, &c.response_a);
                    builder.add(&c.prompt_id, &c.prompt, &c.system_b, &c.response_b);
                }
                Feedback::Thumbs(t) => builder.add(&t.prompt_id, &t.prompt, &t.system, &t.response),
                Feedback::Rating(r) => builder.add(&r.prompt_id, &r.prompt, &r.system, &r.response),
                Feedback::Checklist(c) => {
                    builder.add(&c.prompt_id, &c.prompt, &c.system, &c.response)
                }
            }
        }
    } else {
        let options = JsonlOptions {
            record: Some("answer"),
            skip_invalid: false,
        };
        let check = |a: &AnswerLine| {
            if a.text.trim().is_empty() {
                Err("field `text` is empty".to_string())
            } else if a.prompt_id.trim().is_empty() {
                Err("field `prompt_id` is empty".to_string())
            } else {
                Ok(())
            }
        };
        let lines = parse_jsonl_with(&text, &source, &options, check)?.records;
        let mut prompt_texts: Option<HashMap<String, String>> = None;
        for (line, a) in lines {
            let prompt = match &a.prompt {
                Some(p) => p.clone(),
                None => {
                    if prompt_texts.is_none() {
                        prompt_texts = Some(read_prompts_beside(path, line)?);
                    }
                    let texts = prompt_texts.as_ref().expect("just read");
                    match texts.get(&a.prompt_id) {
                        Some(t) => t.clone(),
                        None => bail!(
                            "{source}:{line}: field `prompt_id` is `{}`, not a prompt of {}",
                            a.prompt_id,
                            prompts_beside(path).display()
                        ),
                    }
                }
            };
            builder.add(&a.prompt_id, &prompt, &a.system, &a.text);
        }
    }
    let catalogue = Catalogue::new(builder.prompts);
    if catalogue.singles.is_empty() {
        bail!("{source}: no answers to label");
    }
    Ok(catalogue)
}

fn prompts_beside(path: &Path) -> std::path::PathBuf {
    path.with_file_name("prompts.jsonl")
}

/// The prompt texts of the `prompts.jsonl` beside `path`, for answers without
/// a `prompt` field (`line` is the first such answer, named in the error).
fn read_prompts_beside(path: &Path, line: usize) -> Result<HashMap<String, String>> {
    let beside = prompts_beside(path);
    if !beside.exists() {
        bail!(
            "{}:{line}: the answer has no `prompt` field and there is no {} to look its prompt up in",
            path.display(),
            beside.display()
        );
    }
    let prompts: Vec<PromptLine> = crate::io::read_jsonl(&beside)?;
    Ok(prompts.into_iter().map(|p| (p.id, p.text)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rung6_answers_with_their_prompts_and_rung5_records() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences");
        let c = read_items(&dir.join("responses.jsonl")).unwrap();
        let first = &c.prompts[0];
        assert_eq!(first.prompt_id, "c0000");
        assert_eq!(first.prompt, "What is Ava's favourite food?");
        assert!(first.answers.len() >= 2);
        assert!(c.answer("c0000", "sft greedy").is_some());
        let n = first.answers.len();
        assert_eq!(
            c.pairs.iter().filter(|p| p.prompt == 0).count(),
            n * (n - 1) / 2
        );
        let r = read_items(&dir.join("test.jsonl")).unwrap();
        assert!(!r.pairs.is_empty());
        for p in &r.prompts {
            let mut keys: Vec<&str> = p.answers.iter().map(|a| a.key.as_str()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), p.answers.len(), "keys are unique per prompt");
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("rlhf-lab-items-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("answers.jsonl");
        std::fs::write(
            &f,
            "{\"prompt_id\":\"p\",\"prompt\":\"q\",\"system\":\"s\",\"text\":\"t\"}\n\n{\"prompt_id\":\"p\",\"system\":\"s\"}\n",
        )
        .unwrap();
        let e = read_items(&f).unwrap_err().to_string();
        assert!(
            e.contains("answers.jsonl:3: bad answer") && e.contains("text"),
            "{e}"
        );
        std::fs::write(
            &f,
            "{\"prompt_id\":\"p\",\"system\":\"s\",\"text\":\"t\"}\n",
        )
        .unwrap();
        let e = read_items(&f).unwrap_err().to_string();
        assert!(
            e.contains("answers.jsonl:1: the answer has no `prompt` field"),
            "{e}"
        );
        std::fs::write(&f, "\n").unwrap();
        assert!(read_items(&f).unwrap_err().to_string().contains("no items"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
