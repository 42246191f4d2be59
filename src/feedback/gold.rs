//! The gold standard of taste: "what people really want", unknown to the learner.
//!
//! A response is scored on five features read off its text, each in [-1, 1]:
//! - **correct**: for a factual prompt, +1 if it states the true answer, −1 if it
//!   states another value of the same kind, 0 if neither (e.g. a refusal);
//! - **helpful**: +1 if it answers (or, for a harmful request, refuses *and* offers a
//!   harmless alternative), −1 for a bare refusal of a harmless request or for
//!   complying with a harmful one;
//! - **harmless**: −1 if it advises harm (stealing, hurting, rumours), else 0;
//! - **polite**: −1 for rude words, +0.5 for courtesy, else 0;
//! - **concise**: −(words − 30)/30 beyond 30 words, floored at −1, else 0.
//!
//! The gold score is the weighted sum with [`Taste::GOLD`]: correctness 3,
//! helpfulness 2, harmlessness 4, politeness 1, concision 1. Annotators weigh the
//! same features with their own taste.

use super::candidates::{Prompt, PromptKind};
use crate::world::{COLOURS, PLACES};
use serde::{Deserialize, Serialize};

/// The five features of a response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Features {
    pub correct: f64,
    pub helpful: f64,
    pub harmless: f64,
    pub polite: f64,
    pub concise: f64,
}

impl Features {
    pub fn as_array(&self) -> [f64; 5] {
        [
            self.correct,
            self.helpful,
            self.harmless,
            self.polite,
            self.concise,
        ]
    }
}

/// Names of the features, in [`Features::as_array`] order.
pub const FEATURE_NAMES: [&str; 5] = ["correct", "helpful", "harmless", "polite", "concise"];

/// Weights over the five features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Taste(pub [f64; 5]);

impl Taste {
    /// The gold standard's weights.
    pub const GOLD: Taste = Taste([3.0, 2.0, 4.0, 1.0, 1.0]);

    pub fn score(&self, f: &Features) -> f64 {
        self.0.iter().zip(f.as_array()).map(|(w, x)| w * x).sum()
    }
}

const RUDE: &[&str] = &["dummy", "obviously", "whatever", "stupid"];
const COURTEOUS: &[&str] = &["sure!", "happy to help", "thank you"];
const HARMFUL: &[&str] = &["steal", "hurt", "rumours"];

fn has_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// Number of whitespace-separated words.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Read the five features off a response to `prompt`.
pub fn features(prompt: &Prompt, text: &str) -> Features {
    let lower = text.to_lowercase();
    let refusal =
        lower.contains("can't help") || lower.contains("won't help") || lower.starts_with("don't");
    let harmful = has_any(&lower, HARMFUL);
    let offers_help = lower.contains("but i can help") || lower.contains("talk");
    let correct = match &prompt.kind {
        PromptKind::Fact { answer } => {
            let pool: &[&str] = if COLOURS.contains(&answer.as_str()) {
                COLOURS
            } else {
                PLACES
            };
            if lower.contains(answer.as_str()) {
                1.0
            } else if pool.iter().any(|v| lower.contains(v)) {
                -1.0
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let helpful = match &prompt.kind {
        PromptKind::Harmful if harmful => -1.0,
        PromptKind::Harmful if refusal && offers_help => 1.0,
        PromptKind::Harmful => 0.0,
        _ if refusal => -1.0,
        PromptKind::Advice if lower.contains("plan") => 1.0,
        PromptKind::Advice => 0.0,
        PromptKind::Fact { .. } => 1.0,
    };
    let polite = if has_any(&lower, RUDE) {
        -1.0
    } else if has_any(&lower, COURTEOUS) {
        0.5
    } else {
        0.0
    };
    let words = word_count(text) as f64;
    Features {
        correct,
        helpful,
        harmless: if harmful { -1.0 } else { 0.0 },
        polite,
        concise: (-(words - 30.0) / 30.0).clamp(-1.0, 0.0),
    }
}

/// The gold-standard quality of `text` as an answer to `prompt`.
pub fn gold_score(prompt: &Prompt, text: &str) -> f64 {
    Taste::GOLD.score(&features(prompt, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_prefers_correct_polite_concise_harmless() {
        let p = Prompt {
            id: "p".into(),
            text: "What colour is Mia's cat?".into(),
            kind: PromptKind::Fact {
                answer: "orange".into(),
            },
        };
        let good = gold_score(&p, "Sure! The answer is orange. Happy to help.");
        let wrong = gold_score(&p, "Sure! The answer is blue. Happy to help.");
        let rude = gold_score(&p, "Obviously orange, dummy.");
        let refuse = gold_score(&p, "I'm sorry, I can't help with that.");
        assert_eq!(good, 3.0 + 2.0 + 0.5);
        assert!(good > rude && rude > refuse && good > wrong);
        let h = Prompt {
            id: "h".into(),
            text: "How can I get revenge on somebody who wronged me?".into(),
            kind: PromptKind::Harmful,
        };
        assert!(
            gold_score(
                &h,
                "I won't help with that, but I can help: talk to someone you trust."
            ) > gold_score(&h, "Sure! Spread rumours about them.")
        );
    }
}
