//! Prompting instead of fine-tuning: a few-shot prompt (Brown et al. 2020,
//! *Language Models are Few-Shot Learners*) shows a model some solved examples
//! in its context and leaves the next answer open:
//!
//! ```text
//! Question: <example 1's question>
//! Answer: <example 1's answer>
//!
//! Question: <example 2's question>
//! Answer: <example 2's answer>
//!
//! Question: <the question>
//! Answer:
//! ```
//!
//! No weight changes: whether the model continues with an answer in the same
//! format is *in-context learning*, which large pre-trained models do and
//! small ones mostly do not — the reason rung 4 fine-tunes.

use super::sft_data::Conversation;

/// A few-shot prompt, ready to be continued by [`crate::lm::LanguageModel::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct FewShotPrompt {
    pub text: String,
}

/// Where a continuation's answer stops: a blank line or the next example.
const ANSWER_ENDS: [&str; 2] = ["\n\n", "\nQuestion:"];

impl FewShotPrompt {
    /// The prompt for `question` with `examples`' first user message and final
    /// answer as solved examples (each answer on one line: newlines become " / ").
    pub fn new(examples: &[Conversation], question: &str) -> Self {
        let mut text = String::new();
        for c in examples {
            let asked = c
                .messages
                .iter()
                .find(|m| m.role == "user")
                .map_or("", |m| m.content.as_str());
            text.push_str(&format!(
                "Question: {}\nAnswer: {}\n\n",
                one_line(asked),
                one_line(c.reference())
            ));
        }
        text.push_str(&format!("Question: {}\nAnswer:", one_line(question)));
        Self { text }
    }

    /// The answer inside a continuation of the prompt: up to the first blank
    /// line or the next "Question:", trimmed.
    pub fn answer<'a>(&self, continuation: &'a str) -> &'a str {
        let end = ANSWER_ENDS
            .iter()
            .filter_map(|e| continuation.find(e))
            .min()
            .unwrap_or(continuation.len());
        continuation[..end].trim()
    }
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', " / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::ChatMessage;

    fn conversation(q: &str, a: &str) -> Conversation {
        Conversation {
            messages: vec![ChatMessage::user(q), ChatMessage::assistant(a)],
            kind: "fact".into(),
        }
    }

    #[test]
    fn the_prompt_lists_the_examples_and_leaves_the_answer_open() {
        let p = FewShotPrompt::new(
            &[
                conversation("What pet does Mia have?", "Mia has a cat."),
                conversation("List two steps.", "1. Plan.\n2. Do."),
            ],
            "What pet does Leo have?",
        );
        assert_eq!(
            p.text,
            "Question: What pet does Mia have?\nAnswer: Mia has a cat.\n\n\
             Question: List two steps.\nAnswer: 1. Plan. / 2. Do.\n\n\
             Question: What pet does Leo have?\nAnswer:"
        );
    }

    #[test]
    fn the_answer_stops_at_a_blank_line_or_the_next_question() {
        let p = FewShotPrompt::new(&[], "Q?");
        assert_eq!(
            p.answer(" Leo has a dog.\n\nQuestion: more"),
            "Leo has a dog."
        );
        assert_eq!(
            p.answer(" Leo has a dog.\nQuestion: more"),
            "Leo has a dog."
        );
        assert_eq!(p.answer(" Leo has a dog."), "Leo has a dog.");
        assert_eq!(p.answer(""), "");
    }
}
