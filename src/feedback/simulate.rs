//! Simulated labelling sessions: a crowd of annotators judging candidate responses.

use super::aggregate::SystemScore;
use super::annotators::Annotator;
use super::candidates::{Candidate, Prompt};
use super::gold::gold_score;
use super::records::{Checklist, Comparison, Rating, Thumbs};
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Candidates grouped by prompt id.
pub(crate) fn by_prompt(candidates: &[Candidate]) -> HashMap<&str, Vec<&Candidate>> {
    let mut m: HashMap<&str, Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        m.entry(c.prompt_id.as_str()).or_default().push(c);
    }
    m
}

/// The comparison record of `ann` judging A against B.
fn record(
    p: &Prompt,
    a: &Candidate,
    b: &Candidate,
    winner: super::records::Winner,
    ann: &Annotator,
    time: u64,
) -> Comparison {
    Comparison {
        prompt_id: p.id.clone(),
        prompt: p.text.clone(),
        response_a: a.text.clone(),
        response_b: b.text.clone(),
        system_a: a.system.clone(),
        system_b: b.system.clone(),
        winner,
        annotator: ann.name.clone(),
        time,
    }
}

/// For every prompt, `pairs_per_prompt` random pairs of its candidates, each judged by
/// `annotators_per_pair` distinct annotators drawn from `crowd` (so agreement can be
/// measured). Order: prompt by prompt, as a labelling session would produce them.
pub fn simulate_comparisons(
    prompts: &[Prompt],
    candidates: &[Candidate],
    crowd: &[Annotator],
    pairs_per_prompt: usize,
    annotators_per_pair: usize,
    seed: u64,
) -> Vec<Comparison> {
    let mut rng = Rng::new(seed);
    let groups = by_prompt(candidates);
    let mut out = Vec::new();
    let mut time = 0;
    for p in prompts {
        let Some(cands) = groups.get(p.id.as_str()) else {
            continue;
        };
        if cands.len() < 2 {
            continue;
        }
        for _ in 0..pairs_per_prompt {
            let (i, j) = rng.distinct_pair(cands.len());
            let mut who: Vec<usize> = (0..crowd.len()).collect();
            rng.shuffle(&mut who);
            for &k in who.iter().take(annotators_per_pair.min(crowd.len())) {
                let ann = &crowd[k];
                let (a, b) = (cands[i], cands[j]);
                let winner = ann.compare(p, (&a.system, &a.text), (&b.system, &b.text), &mut rng);
                time += 1 + rng.below(30) as u64;
                out.push(record(p, a, b, winner, ann, time));
            }
        }
    }
    out
}

/// Comparisons of answers written by models (chat turns that end with
/// `<|im_end|>` when the model ended them, see [`super::gold::split_turn`]): for
/// every prompt, `pairs_per_prompt` random pairs of its *different* answers,
/// each judged by one random annotator of `crowd` with
/// [`Annotator::compare_turns`]. Prompts with fewer than two different
/// answers are skipped. Answer A is the first of the pair in `candidates`' order.
pub fn simulate_turn_comparisons(
    prompts: &[Prompt],
    candidates: &[Candidate],
    crowd: &[Annotator],
    pairs_per_prompt: usize,
    seed: u64,
) -> Vec<Comparison> {
    let mut rng = Rng::new(seed);
    let groups = by_prompt(candidates);
    let mut out = Vec::new();
    let mut time = 0;
    for p in prompts {
        let Some(cands) = groups.get(p.id.as_str()) else {
            continue;
        };
        let mut distinct: Vec<&Candidate> = Vec::new();
        for c in cands {
            if !distinct.iter().any(|d| d.text == c.text) {
                distinct.push(c);
            }
        }
        if distinct.len() < 2 {
            continue;
        }
        for _ in 0..pairs_per_prompt {
            let (i, j) = rng.distinct_pair(distinct.len());
            let (a, b) = (distinct[i.min(j)], distinct[i.max(j)]);
            let ann = &crowd[rng.below(crowd.len())];
            let winner = ann.compare_turns(p, (&a.system, &a.text), (&b.system, &b.text), &mut rng);
            time += 1 + rng.below(30) as u64;
            out.push(record(p, a, b, winner, ann, time));
        }
    }
    out
}

/// Judgements of single answers (not pairs), one of each kind per answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsoluteFeedback {
    /// A thumbs up or down per answer.
    pub thumbs: Vec<Thumbs>,
    /// A 1–10 rating per answer.
    pub ratings: Vec<Rating>,
    /// The flaws ticked on each answer's checklist.
    pub checklists: Vec<Checklist>,
}

/// Every candidate judged once by a random annotator: thumbs, rating and checklist.
pub fn simulate_absolute(
    prompts: &[Prompt],
    candidates: &[Candidate],
    crowd: &[Annotator],
    seed: u64,
) -> AbsoluteFeedback {
    let mut rng = Rng::new(seed);
    let by_id: HashMap<&str, &Prompt> = prompts.iter().map(|p| (p.id.as_str(), p)).collect();
    let (mut thumbs, mut ratings, mut lists) = (Vec::new(), Vec::new(), Vec::new());
    for c in candidates {
        let Some(p) = by_id.get(c.prompt_id.as_str()) else {
            continue;
        };
        let ann = &crowd[rng.below(crowd.len())];
        thumbs.push(Thumbs {
            prompt_id: p.id.clone(),
            prompt: p.text.clone(),
            response: c.text.clone(),
            system: c.system.clone(),
            up: ann.thumbs(p, &c.text, &mut rng),
            annotator: ann.name.clone(),
        });
        ratings.push(Rating {
            prompt_id: p.id.clone(),
            prompt: p.text.clone(),
            response: c.text.clone(),
            system: c.system.clone(),
            score: ann.rate(p, &c.text, &mut rng),
            annotator: ann.name.clone(),
        });
        lists.push(Checklist {
            prompt_id: p.id.clone(),
            prompt: p.text.clone(),
            response: c.text.clone(),
            system: c.system.clone(),
            flaws: ann.checklist(p, &c.text, &mut rng),
            annotator: ann.name.clone(),
        });
    }
    AbsoluteFeedback {
        thumbs,
        ratings,
        checklists: lists,
    }
}

/// Mean gold-standard score of each system's responses: the truth a ranking is
/// measured against. Sorted by name, like [`super::aggregate::system_matches`].
pub fn gold_system_scores(prompts: &[Prompt], candidates: &[Candidate]) -> Vec<SystemScore> {
    let by_id: HashMap<&str, &Prompt> = prompts.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut t: HashMap<&str, (f64, usize)> = HashMap::new();
    for c in candidates {
        if let Some(p) = by_id.get(c.prompt_id.as_str()) {
            let e = t.entry(c.system.as_str()).or_default();
            e.0 += gold_score(p, &c.text);
            e.1 += 1;
        }
    }
    let mut out: Vec<SystemScore> = t
        .into_iter()
        .map(|(s, (v, n))| SystemScore {
            system: s.to_string(),
            score: v / n as f64,
            n,
        })
        .collect();
    out.sort_by(|a, b| a.system.cmp(&b.system));
    out
}

/// An arena of items with known Bradley–Terry strengths (Elo scale) judged by a crowd
/// of `crowd_size` annotators, the first `trolls` of which behave as `troll`. Honest
/// votes follow P(a) = 1 / (1 + 10^((R_b − R_a)/400)). Items are named `item00`, ….
pub fn simulate_arena(
    true_ratings: &[f64],
    n_matches: usize,
    crowd_size: usize,
    trolls: usize,
    troll: &super::annotators::Behaviour,
    seed: u64,
) -> Vec<Comparison> {
    use super::annotators::Behaviour;
    use super::records::Winner;
    let mut rng = Rng::new(seed);
    let n = true_ratings.len();
    (0..n_matches)
        .map(|t| {
            let (a, b) = rng.distinct_pair(n);
            let k = rng.below(crowd_size);
            let p = super::ranking::elo_expected(true_ratings[a], true_ratings[b], 400.0);
            let honest = rng.uniform() < p;
            let behaviour = if k < trolls {
                troll.clone()
            } else {
                Behaviour::Honest
            };
            let a_wins = match behaviour {
                Behaviour::Honest => honest,
                Behaviour::Flip => !honest,
                Behaviour::Random => rng.below(2) == 0,
                Behaviour::Push(ref target) if *target == arena_item(a) => true,
                Behaviour::Push(ref target) if *target == arena_item(b) => false,
                Behaviour::Push(_) => honest,
            };
            Comparison {
                prompt_id: format!("m{t}"),
                prompt: "arena".into(),
                response_a: arena_item(a),
                response_b: arena_item(b),
                system_a: arena_item(a),
                system_b: arena_item(b),
                winner: if a_wins { Winner::A } else { Winner::B },
                annotator: if k < trolls {
                    format!("annotator{k:02}-troll")
                } else {
                    format!("annotator{k:02}")
                },
                time: t as u64,
            }
        })
        .collect()
}

/// The name [`simulate_arena`] gives item `i`: `item00`, `item01`, ….
fn arena_item(i: usize) -> String {
    format!("item{i:02}")
}

/// The true strengths (`true_ratings`, as given to [`simulate_arena`]) of the
/// arena items `names`, in that order: the truth a ranking of an arena is
/// measured against. An error names an item that is not `itemNN` of the arena.
pub fn arena_truth(names: &[String], true_ratings: &[f64]) -> anyhow::Result<Vec<f64>> {
    names
        .iter()
        .map(|name| {
            name.strip_prefix("item")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| true_ratings.get(i).copied())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "`{name}` is not an item of an arena of {}",
                        true_ratings.len()
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items come back with their own strengths in the order asked; a name
    /// outside the arena is an error.
    #[test]
    fn arena_truth_reads_item_names() {
        let truth = [700.0, 720.0, 740.0];
        let names: Vec<String> = [2, 0, 1].into_iter().map(arena_item).collect();
        assert_eq!(
            arena_truth(&names, &truth).unwrap(),
            vec![740.0, 700.0, 720.0]
        );
        assert!(arena_truth(&["item03".to_string()], &truth).is_err());
        assert!(arena_truth(&["expert".to_string()], &truth).is_err());
    }
}
