//! Which pair (or single answer) an annotator judges next: one they have not
//! judged. Pairs still short of the *overlap* (the number of annotators each
//! pair should get, so that agreement can be measured) come first, the
//! closest to it first; then those judged least often overall. Ties go to the
//! prompt judged least often — so votes spread evenly over the items — then
//! to a per-annotator hash, so annotators working at once get different items.

use super::items::{Catalogue, PairRef};
use std::collections::{HashMap, HashSet};

/// Counts of judgements so far, kept in memory beside the database (rebuilt
/// from it at start).
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    /// Annotators each pair should get before new pairs are opened (at least 1).
    overlap: u32,
    pair_counts: Vec<u32>,
    prompt_counts: Vec<u32>,
    single_counts: Vec<u32>,
    done_pairs: HashMap<String, HashSet<usize>>,
    done_singles: HashMap<String, HashSet<usize>>,
    pair_index: HashMap<(usize, usize, usize), usize>,
    single_index: HashMap<(usize, usize), usize>,
}

/// SplitMix64: a well-mixed hash of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a name: the annotator's tie-breaking salt.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Scheduler {
    /// An empty scheduler for `catalogue`, each pair to be judged by
    /// `overlap` annotators (1: every pair once before any twice).
    pub fn new(catalogue: &Catalogue, overlap: u32) -> Self {
        Self {
            overlap: overlap.max(1),
            pair_counts: vec![0; catalogue.pairs.len()],
            prompt_counts: vec![0; catalogue.prompts.len()],
            single_counts: vec![0; catalogue.singles.len()],
            done_pairs: HashMap::new(),
            done_singles: HashMap::new(),
            pair_index: catalogue
                .pairs
                .iter()
                .enumerate()
                .map(|(i, p)| ((p.prompt, p.a, p.b), i))
                .collect(),
            single_index: catalogue
                .singles
                .iter()
                .enumerate()
                .map(|(i, s)| ((s.prompt, s.answer), i))
                .collect(),
        }
    }

    /// The index in [`Catalogue::pairs`] of the pair of answers `a` and `b`
    /// (either order) of prompt `prompt`.
    pub fn pair_index(&self, prompt: usize, a: usize, b: usize) -> Option<usize> {
        self.pair_index.get(&(prompt, a.min(b), a.max(b))).copied()
    }

    /// The index in [`Catalogue::singles`] of answer `answer` of prompt `prompt`.
    pub fn single_index(&self, prompt: usize, answer: usize) -> Option<usize> {
        self.single_index.get(&(prompt, answer)).copied()
    }

    /// Count a judgement of pair `pair` (an index into [`Catalogue::pairs`]).
    pub fn record_pair(&mut self, catalogue: &Catalogue, annotator: &str, pair: usize) {
        if self
            .done_pairs
            .entry(annotator.to_string())
            .or_default()
            .insert(pair)
        {
            self.pair_counts[pair] += 1;
            self.prompt_counts[catalogue.pairs[pair].prompt] += 1;
        }
    }

    /// Count a judgement of single answer `single`.
    pub fn record_single(&mut self, annotator: &str, single: usize) {
        if self
            .done_singles
            .entry(annotator.to_string())
            .or_default()
            .insert(single)
        {
            self.single_counts[single] += 1;
        }
    }

    /// The next pair for `annotator`, `None` when they have judged them all.
    pub fn next_pair(&self, catalogue: &Catalogue, annotator: &str) -> Option<PairRef> {
        let done = self.done_pairs.get(annotator);
        let salt = name_hash(annotator);
        (0..self.pair_counts.len())
            .filter(|i| done.is_none_or(|d| !d.contains(i)))
            .min_by_key(|&i| {
                let n = self.pair_counts[i];
                // Short of the overlap: (0, votes missing); else (1, votes).
                let need = if n < self.overlap {
                    (0, self.overlap - n)
                } else {
                    (1, n)
                };
                (
                    need,
                    self.prompt_counts[catalogue.pairs[i].prompt],
                    mix(salt ^ i as u64),
                )
            })
            .map(|i| catalogue.pairs[i])
    }

    /// The next single answer for `annotator` (an index into [`Catalogue::singles`]).
    pub fn next_single(&self, annotator: &str) -> Option<usize> {
        let done = self.done_singles.get(annotator);
        let salt = name_hash(annotator);
        (0..self.single_counts.len())
            .filter(|i| done.is_none_or(|d| !d.contains(i)))
            .min_by_key(|&i| (self.single_counts[i], mix(salt ^ i as u64)))
    }

    /// Pairs judged by `annotator` so far.
    pub fn pairs_done(&self, annotator: &str) -> usize {
        self.done_pairs.get(annotator).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::items::{Answer, PromptItem};

    fn catalogue() -> Catalogue {
        let answer = |k: &str| Answer {
            key: k.into(),
            system: k.into(),
            text: format!("answer {k}"),
        };
        Catalogue::new(
            (0..3)
                .map(|p| PromptItem {
                    prompt_id: format!("p{p}"),
                    prompt: "q".into(),
                    answers: vec![answer("x"), answer("y"), answer("z")],
                })
                .collect(),
        )
    }

    #[test]
    fn every_pair_once_per_annotator_spread_over_prompts() {
        let c = catalogue();
        let mut s = Scheduler::new(&c, 1);
        let mut seen = HashSet::new();
        let mut prompts = Vec::new();
        while let Some(p) = s.next_pair(&c, "ann") {
            let i = s.pair_index(p.prompt, p.b, p.a).unwrap();
            assert!(seen.insert(i), "pair {i} offered twice");
            prompts.push(p.prompt);
            s.record_pair(&c, "ann", i);
        }
        assert_eq!(seen.len(), c.pairs.len());
        // The first three pairs cover the three prompts (balanced across items).
        let mut first: Vec<usize> = prompts[..3].to_vec();
        first.sort();
        assert_eq!(first, vec![0, 1, 2]);
        // A second annotator starts with pairs nobody else judged twice.
        let p = s.next_pair(&c, "other").unwrap();
        assert_eq!(s.pairs_done("other"), 0);
        assert!(s.pair_index(p.prompt, p.a, p.b).is_some());
        // With an overlap of 2, a second annotator is first given the pairs
        // someone judged, so that agreement can be measured.
        let mut o = Scheduler::new(&c, 2);
        let first = o.next_pair(&c, "ann").unwrap();
        let i = o.pair_index(first.prompt, first.a, first.b).unwrap();
        o.record_pair(&c, "ann", i);
        assert_eq!(o.next_pair(&c, "other"), Some(first));
        assert_ne!(o.next_pair(&c, "ann"), Some(first));
        let mut n = 0;
        while let Some(i) = s.next_single("ann") {
            s.record_single("ann", i);
            n += 1;
        }
        assert_eq!(n, c.singles.len());
    }
}
