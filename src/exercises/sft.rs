//! Notebook 04's exercises: the assistant-only loss mask of a ChatML
//! conversation, and the masked next-token loss.
//!
//! Ground truth: [`crate::lm::sft::tokenize_with_mask`] (what SFT trains on) and
//! [`crate::ppo::masked_mean`] (what [`crate::lm::data::next_token_loss`] averages with).

use super::{close, Check};
use crate::lm::sft::tokenize_with_mask;
use crate::lm::{ChatMessage, TextTokenizer};
use crate::ppo::masked_mean;
use candle_core::{Device, Tensor};

/// Exercise id: which tokens of a conversation SFT trains on.
pub const LOSS_MASK: &str = "04-loss-mask";
/// Exercise id: the loss averaged over the counted tokens only.
pub const MASKED_LOSS: &str = "04-masked-loss";

/// The conversations [`check_loss_mask`] tries: one question and answer, then a
/// conversation with a system message and two assistant turns.
pub fn mask_examples() -> Vec<Vec<ChatMessage>> {
    vec![
        vec![
            ChatMessage::user("How old is Mia?"),
            ChatMessage::assistant("Mia is 9 years old."),
        ],
        vec![
            ChatMessage::system("Answer in a few words."),
            ChatMessage::user("Name a pet."),
            ChatMessage::assistant("A hamster."),
            ChatMessage::user("Another one?"),
            ChatMessage::assistant("A yellow cat."),
        ],
    ]
}

/// Each token's text (`tok.decode` of its id alone) and whether SFT trains on it.
pub fn reference_mask(
    tok: &TextTokenizer,
    messages: &[ChatMessage],
) -> anyhow::Result<(Vec<String>, Vec<bool>)> {
    let (ids, mask) = tokenize_with_mask(tok, messages)?;
    let pieces = ids
        .iter()
        .map(|&id| tok.decode(&[id], false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((pieces, mask))
}

/// Where a token sits in the ChatML text: (role of its message, part), part being
/// `header`, `content`, `end` (`<|im_end|>`) or `newline` (after it).
fn parts(pieces: &[String]) -> Vec<(String, &'static str)> {
    let mut out = Vec::with_capacity(pieces.len());
    let (mut role, mut state, mut header) = (String::new(), "newline", String::new());
    for p in pieces {
        if p == "<|im_start|>" {
            state = "header";
            header.clear();
            out.push((String::new(), "header"));
            continue;
        }
        match state {
            "header" => {
                header.push_str(p);
                if header.contains('\n') {
                    role = header.trim().to_string();
                    state = "content";
                }
                out.push((header.trim().to_string(), "header"));
            }
            "content" if p == "<|im_end|>" => {
                state = "end";
                out.push((role.clone(), "end"));
            }
            "content" => out.push((role.clone(), "content")),
            _ => out.push((role.clone(), "newline")),
        }
    }
    out
}

/// Checks `loss_mask(tokens)`, which gets the text of each token of a conversation
/// rendered in ChatML (`<|im_start|>`, the role, a newline, the content,
/// `<|im_end|>`, a newline, per message) and should return, per token, whether SFT
/// trains on it: the assistant's content and the `<|im_end|>` that closes it, nothing
/// else. Tried on [`mask_examples`] tokenized by `tok`, against
/// [`tokenize_with_mask`].
pub fn check_loss_mask(tok: &TextTokenizer, loss_mask: impl Fn(&[String]) -> Vec<bool>) -> Check {
    let id = LOSS_MASK;
    let examples = mask_examples();
    let mut counted = 0;
    for (n, messages) in examples.iter().enumerate() {
        let (pieces, expected) = match reference_mask(tok, messages) {
            Ok(x) => x,
            Err(e) => return Check::fail(id, format!("tokenizing the example failed: {e}")),
        };
        counted += expected.iter().filter(|&&m| m).count();
        let got = loss_mask(&pieces);
        if got.len() != expected.len() {
            return Check::fail(
                id,
                format!(
                    "for conversation {} ({} tokens) you returned {} flags: return one per token",
                    n + 1,
                    pieces.len(),
                    got.len()
                ),
            );
        }
        let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) else {
            continue;
        };
        let (role, part) = parts(&pieces)[i].clone();
        let why = match (part, expected[i]) {
            ("content", true) => "it is part of the assistant's answer: count it".to_string(),
            ("end", true) => "it closes the assistant's answer: count it — learning to stop is part of the format".to_string(),
            ("content", false) => format!("it is part of the {role} message, which is given, not predicted"),
            ("end", false) => format!("it closes the {role} message, which the model does not write"),
            ("header", _) => "it belongs to a message's header (<|im_start|>role and its newline): headers are given".to_string(),
            _ => "it is the newline between messages, which the template writes".to_string(),
        };
        return Check::fail(
            id,
            format!(
                "your mask is wrong at token {i} ({:?}) of conversation {} ({} tokens): expected {}, got {} — {why}",
                pieces[i],
                n + 1,
                pieces.len(),
                expected[i],
                got[i]
            ),
        );
    }
    Check::pass(
        id,
        format!(
            "your mask matches tokenize_with_mask on {} conversations ({counted} tokens counted)",
            examples.len()
        ),
    )
}

/// The log-probabilities and mask [`check_masked_loss`] tries: 10 tokens, 4 of them
/// the answer's.
pub fn masked_loss_example() -> (Vec<f64>, Vec<bool>) {
    (
        vec![-3.2, -0.4, -5.1, -2.2, -0.9, -0.1, -1.7, -0.05, -0.6, -4.0],
        vec![
            false, false, false, false, false, true, true, true, true, false,
        ],
    )
}

fn reference_masked_loss(logp: &[f64], mask: &[bool]) -> candle_core::Result<f64> {
    let x = Tensor::new(logp, &Device::Cpu)?;
    let m: Vec<f64> = mask.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    let m = Tensor::new(m.as_slice(), &Device::Cpu)?;
    masked_mean(&x, Some(&m))?.neg()?.to_scalar::<f64>()
}

/// Checks `masked_loss(logp, mask)`, which should return SFT's loss from each
/// token's log-probability `logp[i]` = log π(yᵢ | y<ᵢ) and its mask:
/// `L = −Σᵢ mᵢ·logp[i] / Σᵢ mᵢ`. Tried on [`masked_loss_example`], against
/// [`masked_mean`].
pub fn check_masked_loss(masked_loss: impl Fn(&[f64], &[bool]) -> f64) -> Check {
    let id = MASKED_LOSS;
    let (logp, mask) = masked_loss_example();
    let expected = match reference_masked_loss(&logp, &mask) {
        Ok(v) => v,
        Err(e) => return Check::fail(id, format!("the reference failed: {e}")),
    };
    let got = masked_loss(&logp, &mask);
    if close(expected, got, 1e-9) {
        return Check::pass(id, format!("your loss {got:.4} matches masked_mean"));
    }
    let counted = mask.iter().filter(|&&m| m).count() as f64;
    let n = logp.len() as f64;
    let all = -logp.iter().sum::<f64>() / n;
    let why = if close(expected * counted / n, got, 1e-9) {
        format!(" — you divided by all {n} tokens: divide by the {counted} counted ones (Σ mᵢ)")
    } else if close(all, got, 1e-9) {
        " — that averages every token: the prompt's tokens must not count".to_string()
    } else if close(-expected, got, 1e-9) {
        " — wrong sign: the loss is the negative log-probability".to_string()
    } else if close(expected * counted, got, 1e-9) {
        " — that is the sum: divide by the number of counted tokens".to_string()
    } else {
        String::new()
    };
    Check::fail(
        id,
        format!(
            "your loss for {n} tokens, {counted} of them counted, is off: expected {expected:.4}, got {got:.4}{why}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> TextTokenizer {
        let dir = crate::lm::pretrain::tiny_pretrained_dir();
        TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap()
    }

    // The notebook's stubs, unchanged.
    fn stub_mask(tokens: &[String]) -> Vec<bool> {
        vec![false; tokens.len()]
    }
    fn stub_loss(_logp: &[f64], _mask: &[bool]) -> f64 {
        0.0
    }

    fn by_hand_mask(tokens: &[String]) -> Vec<bool> {
        let mut mask = Vec::with_capacity(tokens.len());
        let (mut header, mut in_header, mut in_answer) = (String::new(), false, false);
        for t in tokens {
            if t == "<|im_start|>" {
                in_header = true;
                header.clear();
                mask.push(false);
            } else if in_header {
                header.push_str(t);
                if header.contains('\n') {
                    in_header = false;
                    in_answer = header.trim() == "assistant";
                }
                mask.push(false);
            } else if t == "<|im_end|>" {
                mask.push(in_answer);
                in_answer = false;
            } else {
                mask.push(in_answer);
            }
        }
        mask
    }

    #[test]
    fn loss_mask_reference_passes_and_stub_gets_the_token() {
        let tok = tokenizer();
        let ok = check_loss_mask(&tok, by_hand_mask);
        assert!(ok.passed, "{ok}");
        let stub = check_loss_mask(&tok, stub_mask);
        assert!(!stub.passed);
        assert!(stub.message.contains("of conversation 1"), "{stub}");
        assert!(
            stub.message
                .contains("expected true, got false — it is part of the assistant's answer"),
            "{stub}"
        );
        let everything = check_loss_mask(&tok, |t| vec![true; t.len()]);
        assert!(
            everything.message.contains("expected false, got true"),
            "{everything}"
        );
        let no_end = check_loss_mask(&tok, |t| {
            by_hand_mask(t)
                .into_iter()
                .zip(t)
                .map(|(m, p)| m && p != "<|im_end|>")
                .collect()
        });
        assert!(no_end.message.contains("learning to stop"), "{no_end}");
    }

    #[test]
    fn masked_loss_reference_passes_and_stub_and_mistakes_fail() {
        let ok = check_masked_loss(|lp, m| {
            let counted: Vec<f64> = lp.iter().zip(m).filter(|p| *p.1).map(|p| *p.0).collect();
            -counted.iter().sum::<f64>() / counted.len() as f64
        });
        assert!(ok.passed, "{ok}");
        let stub = check_masked_loss(stub_loss);
        let (lp, m) = masked_loss_example();
        let expected = reference_masked_loss(&lp, &m).unwrap();
        assert_eq!(
            stub.to_string(),
            format!("✗ 04-masked-loss: your loss for 10 tokens, 4 of them counted, is off: expected {expected:.4}, got 0.0000")
        );
        let wrong_count = check_masked_loss(|lp, m| {
            -lp.iter().zip(m).filter(|p| *p.1).map(|p| *p.0).sum::<f64>() / lp.len() as f64
        });
        assert!(
            wrong_count.message.contains("divided by all 10 tokens"),
            "{wrong_count}"
        );
    }
}
