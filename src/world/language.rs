//! The world's language: which words, and which pairs of neighbouring words,
//! its texts use — and how far a text strays from it.
//!
//! Rung 4 asks whether a fine-tuned model's answers are *readable*, and rung 5's
//! gold standard docks generated text for gibberish and loops; both measure it
//! here with [`Language::fluency`]:
//!
//! ```text
//! fluency = −min(1, 2·u + 2·r)
//! u = share of neighbouring word pairs the language never uses
//!     (for a one-word segment: whether the word itself is unknown)
//! r = share of word triples that repeat an earlier triple (loops)
//! ```
//!
//! 0 for any well-formed text in the world's language; −1 for gibberish, word
//! salad made of real words, or a loop.

use super::{corpus, demonstrations, World};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Lower-case words: letters, digits and apostrophes, possessives dropped
/// ("Leo's" → "leo"; "won't" stays).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.strip_suffix("'s").unwrap_or(w))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The words of `text` in segments (sentences, list items, clauses): a pair
/// of neighbouring words never crosses a `.`, `!`, `?`, `:` or line break.
/// Numbers become `<n>`.
pub fn segments(text: &str) -> Vec<Vec<String>> {
    text.split(['.', '!', '?', ':', '\n'])
        .map(|seg| {
            words(seg)
                .into_iter()
                .map(|w| {
                    if w.chars().all(|c| c.is_ascii_digit()) {
                        "<n>".to_string()
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every word and every pair of neighbouring words (within a segment, see
/// [`segments`]) of some texts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Language {
    words: HashSet<String>,
    pairs: HashSet<String>,
}

impl Language {
    /// The language of `texts`.
    pub fn from_texts<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Self {
        let mut lang = Self::default();
        for t in texts {
            lang.add(t.as_ref());
        }
        lang
    }

    /// Add the words and pairs of `text`.
    pub fn add(&mut self, text: &str) {
        for seg in segments(text) {
            for w in seg.windows(2) {
                self.pairs.insert(format!("{} {}", w[0], w[1]));
            }
            self.words.extend(seg);
        }
    }

    /// The language of the world that rungs 3 and 4 train on: the pre-training
    /// corpus and the SFT demonstrations, as `rlhf-lab` generates them
    /// (world seed 0, corpus seed 2024 with 14,000 documents, demonstrations
    /// seed 7 with 400 per kind). Built once, deterministically.
    pub fn of_world() -> &'static Language {
        static LANGUAGE: OnceLock<Language> = OnceLock::new();
        LANGUAGE.get_or_init(|| {
            let world = World::generate(0);
            let corpus = corpus::generate(&world, 2024, 14_000);
            let splits = demonstrations::generate(&world, 7, 400);
            let demonstrations = [splits.train, splits.validation, splits.test]
                .into_iter()
                .flatten()
                .map(|d| format!("{}\n{}", d.prompt, d.response));
            Language::from_texts(
                corpus
                    .train
                    .into_iter()
                    .chain(corpus.valid)
                    .chain(demonstrations),
            )
        })
    }

    /// Fluency in [−1, 0] (see the module docs).
    pub fn fluency(&self, text: &str) -> f64 {
        let (mut unknown, mut total) = (0usize, 0usize);
        for seg in &segments(text) {
            if seg.len() == 1 {
                total += 1;
                unknown += usize::from(!self.words.contains(&seg[0]) && seg[0] != "<n>");
            }
            for w in seg.windows(2) {
                total += 1;
                unknown += usize::from(!self.pairs.contains(&format!("{} {}", w[0], w[1])));
            }
        }
        if total == 0 {
            return 0.0;
        }
        let u = unknown as f64 / total as f64;
        let w = words(text);
        let mut seen = HashSet::new();
        let triples: Vec<String> = w.windows(3).map(|t| t.join(" ")).collect();
        let repeated = triples.iter().filter(|t| !seen.insert(t.as_str())).count() as f64
            / triples.len().max(1) as f64;
        -(2.0 * u + 2.0 * repeated).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluency_by_hand() {
        let lang = Language::from_texts(["Mia has a cat. The cat is red."]);
        assert_eq!(lang.fluency("Mia has a cat."), 0.0);
        // Pairs: "mia has", "has a", "a red": one of three unknown → u = 1/3.
        assert!((lang.fluency("Mia has a red.") + 2.0 / 3.0).abs() < 1e-12);
        // One-word segments are judged by the word: "cat" known, "zork" not.
        assert_eq!(lang.fluency("Cat."), 0.0);
        assert_eq!(lang.fluency("Zork."), -1.0);
        // A loop: "mia has a cat mia has a cat": triples 6, repeats 2 of them
        // ("mia has a", "has a cat") → r = 1/3; the pair "cat mia" is unknown
        // (u = 1/7), so −min(1, 2/7 + 2/3).
        let f = lang.fluency("Mia has a cat Mia has a cat");
        assert!((f + (2.0 / 7.0 + 2.0 / 3.0)).abs() < 1e-12, "{f}");
        assert_eq!(lang.fluency(""), 0.0);
    }

    #[test]
    fn the_worlds_own_texts_are_fluent() {
        let world = World::generate(0);
        let lang = Language::of_world();
        let docs = corpus::generate(&world, 2024, 20);
        // Every word pair of these texts is in the language; what fluency can
        // still dock is a repeated triple ("What do you …" twice in a dialogue).
        let mean =
            docs.train.iter().map(|d| lang.fluency(d)).sum::<f64>() / docs.train.len() as f64;
        eprintln!("mean fluency of the corpus's own texts: {mean:.3}");
        assert!(mean > -0.15, "{mean}");
        assert!(lang.fluency("Here is how to make a rcc and a little orad. Prusort.") < -0.5);
    }
}
