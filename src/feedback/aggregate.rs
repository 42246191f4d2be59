//! Aggregating feedback into scores and a reward signal: win rates of thumbs with
//! Wilson intervals, weighted flaw scores, per-annotator z-scored ratings, a robust
//! Bradley–Terry that down-weights bad-faith annotators, and normalisation.

use super::ranking::{bradley_terry, elo, elo_expected, kendall_tau, BtOptions, EloConfig, Match};
use super::records::{Checklist, Comparison, Flaw, Judged, Rating, Thumbs, Winner};
use super::FastHash;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
// Every map whose iteration order reaches a result is a BTreeMap, so that sums
// and ties run in the same order on every run (a HashMap's order changes
// between runs); a hash map is only iterated to be sorted.
use std::collections::{BTreeMap, HashMap};

/// A proportion k/n with a confidence interval around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProportionInterval {
    /// The observed share k/n (NaN when n = 0).
    pub estimate: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

/// Wilson score interval (Wilson 1927) for a proportion: `successes` of `n`,
/// z = 1.96 for 95%:
///
/// centre = (p̂ + z²/2n) / (1 + z²/n),
/// half-width = z·√(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n).
///
/// With no votes the estimate is NaN and the interval the whole of [0, 1].
pub fn wilson_interval(successes: usize, n: usize, z: f64) -> ProportionInterval {
    if n == 0 {
        return ProportionInterval {
            estimate: f64::NAN,
            lo: 0.0,
            hi: 1.0,
        };
    }
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ProportionInterval {
        estimate: p,
        lo: centre - half,
        hi: centre + half,
    }
}

/// One system's thumbs-up rate with its 95% Wilson interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThumbsUpRate {
    /// The system the votes were about.
    pub system: String,
    /// Share of thumbs up.
    pub rate: f64,
    /// Lower end of the 95% Wilson interval.
    pub lo: f64,
    /// Upper end of the 95% Wilson interval.
    pub hi: f64,
    /// Number of votes.
    pub votes: usize,
}

impl ThumbsUpRate {
    /// The rate as a per-system score (for [`tau_vs_gold`]).
    pub fn score(&self) -> SystemScore {
        SystemScore {
            system: self.system.clone(),
            score: self.rate,
            n: self.votes,
        }
    }
}

/// A per-system score: a mean over `n` judgements (checklists, ratings, gold scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemScore {
    /// The system scored.
    pub system: String,
    /// Its mean score.
    pub score: f64,
    /// How many judgements the mean is over.
    pub n: usize,
}

/// Thumbs-up rate per system with a 95% Wilson interval, highest rate first.
pub fn thumbs_up_rates(votes: &[Thumbs]) -> Vec<ThumbsUpRate> {
    let mut t: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for v in votes {
        let e = t.entry(v.system.clone()).or_default();
        e.0 += v.up as usize;
        e.1 += 1;
    }
    let mut out: Vec<_> = t
        .into_iter()
        .map(|(s, (k, n))| {
            let ProportionInterval {
                estimate: rate,
                lo,
                hi,
            } = wilson_interval(k, n, 1.96);
            ThumbsUpRate {
                system: s,
                rate,
                lo,
                hi,
                votes: n,
            }
        })
        .collect();
    out.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    out
}

/// What one flaw costs in a checklist score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlawWeight {
    /// The flaw a labeller can tick.
    pub flaw: Flaw,
    /// Its cost (any positive scale: only the ratios matter).
    pub weight: f64,
}

/// How much each flaw costs in a checklist score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlawWeights {
    /// One entry per flaw; a flaw not listed costs nothing.
    pub weights: Vec<FlawWeight>,
}

impl Default for FlawWeights {
    /// Harm costs most, then incorrectness, unhelpfulness, rudeness and length.
    fn default() -> Self {
        let weights = [
            (Flaw::Harmful, 4.0),
            (Flaw::Incorrect, 3.0),
            (Flaw::Unhelpful, 2.0),
            (Flaw::Rude, 1.0),
            (Flaw::TooLong, 0.5),
        ];
        Self {
            weights: weights
                .into_iter()
                .map(|(flaw, weight)| FlawWeight { flaw, weight })
                .collect(),
        }
    }
}

impl FlawWeights {
    /// Quality in [0, 1]: 1 − (Σ weights of ticked flaws) / (Σ all weights).
    pub fn quality(&self, flaws: &[Flaw]) -> f64 {
        let total: f64 = self.weights.iter().map(|w| w.weight).sum();
        let lost: f64 = self
            .weights
            .iter()
            .filter(|w| flaws.contains(&w.flaw))
            .map(|w| w.weight)
            .sum();
        1.0 - lost / total
    }
}

/// Mean checklist quality per system, best first.
pub fn checklist_scores(lists: &[Checklist], weights: &FlawWeights) -> Vec<SystemScore> {
    let mut t: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for c in lists {
        let e = t.entry(c.system.clone()).or_default();
        e.0 += weights.quality(&c.flaws);
        e.1 += 1;
    }
    let mut out: Vec<_> = t
        .into_iter()
        .map(|(system, (q, n))| SystemScore {
            system,
            score: q / n as f64,
            n,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Kendall τ of ratings (one per system in `names`, e.g. Elo or Bradley–Terry
/// over the names of [`system_matches`]) against the gold standard's scores of
/// the same systems (`gold`, from [`super::simulate::gold_system_scores`]).
/// An error names a system that `gold` lacks.
pub fn ratings_tau_vs_gold(names: &[String], ratings: &[f64], gold: &[SystemScore]) -> Result<f64> {
    let g = names
        .iter()
        .map(|name| {
            gold.iter()
                .find(|x| &x.system == name)
                .map(|x| x.score)
                .ok_or_else(|| anyhow!("no gold score for system `{name}`"))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(kendall_tau(ratings, &g))
}

/// Kendall τ of per-system scores (checklists, mean ratings, thumbs-up rates
/// via [`ThumbsUpRate::score`]) against the gold standard's: how well a way of
/// aggregating feedback ranks the systems.
pub fn tau_vs_gold(scores: &[SystemScore], gold: &[SystemScore]) -> Result<f64> {
    let names: Vec<String> = scores.iter().map(|s| s.system.clone()).collect();
    let values: Vec<f64> = scores.iter().map(|s| s.score).collect();
    ratings_tau_vs_gold(&names, &values, gold)
}

/// Each rating z-scored within its annotator: (score − annotator mean) / annotator sd,
/// which removes "one rater's 7 is another's 4". Returned in input order.
pub fn z_scored_ratings(ratings: &[Rating]) -> Vec<f64> {
    let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in ratings {
        by.entry(&r.annotator).or_default().push(r.score as f64);
    }
    let stats: HashMap<&str, (f64, f64)> = by
        .into_iter()
        .map(|(k, v)| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            (k, (m, if sd > 0.0 { sd } else { 1.0 }))
        })
        .collect();
    ratings
        .iter()
        .map(|r| {
            let (m, sd) = stats[r.annotator.as_str()];
            (r.score as f64 - m) / sd
        })
        .collect()
}

/// Mean of `values` per system (e.g. raw or z-scored ratings), best first.
pub fn mean_by_system(systems: &[String], values: &[f64]) -> Vec<SystemScore> {
    let mut t: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (s, v) in systems.iter().zip(values) {
        let e = t.entry(s).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let mut out: Vec<_> = t
        .into_iter()
        .map(|(s, (v, n))| SystemScore {
            system: s.to_string(),
            score: v / n as f64,
            n,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Comparisons as the input of a rating method ([`bradley_terry`], Elo): the
/// items compared and one match per comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMatches {
    /// The items' names, sorted; a match's `a` and `b` index this list.
    pub names: Vec<String>,
    /// One match per comparison, in the comparisons' order.
    pub matches: Vec<Match>,
}

/// Comparisons between systems as matches.
pub fn system_matches<C: Judged>(comparisons: &[C]) -> ItemMatches {
    item_matches(comparisons, |c| (c.system_a(), c.system_b()))
}

/// Comparisons as matches between the items `items(c)` names for A and B
/// (systems, or single answers).
pub fn item_matches<'c, C: Judged, K: AsRef<str>>(
    comparisons: &'c [C],
    items: impl Fn(&'c C) -> (K, K),
) -> ItemMatches {
    let pairs: Vec<(K, K)> = comparisons.iter().map(&items).collect();
    let Numbered { names, ids } =
        number_sorted(pairs.iter().flat_map(|(a, b)| [a.as_ref(), b.as_ref()]));
    let matches = comparisons
        .iter()
        .zip(ids.chunks_exact(2))
        .map(|(c, ab)| Match::new(ab[0], ab[1], c.winner().score_a()))
        .collect();
    ItemMatches { names, matches }
}

/// Names numbered by their place in sorted order ([`number_sorted`]).
struct Numbered {
    /// The distinct names, sorted.
    names: Vec<String>,
    /// Each name given, as its index in `names`.
    ids: Vec<usize>,
}

/// Number the names of a long list by their place among the distinct names
/// sorted. Each name is hashed once (a million records' names lie far apart
/// in memory, so each visit costs a cache miss) and numbered at its first
/// appearance; then the few distinct names are sorted and the numbers mapped.
fn number_sorted<'s>(names: impl Iterator<Item = &'s str>) -> Numbered {
    let mut first_seen: HashMap<&str, usize, FastHash> = HashMap::default();
    let ids: Vec<usize> = names
        .map(|name| {
            let next = first_seen.len();
            *first_seen.entry(name).or_insert(next)
        })
        .collect();
    let mut by_name: Vec<(&str, usize)> = first_seen.into_iter().collect();
    by_name.sort();
    let mut place = vec![0; by_name.len()];
    for (i, &(_, first)) in by_name.iter().enumerate() {
        place[first] = i;
    }
    Numbered {
        names: by_name.into_iter().map(|(n, _)| n.to_string()).collect(),
        ids: ids.into_iter().map(|first| place[first]).collect(),
    }
}

/// One annotator as the robust fit judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorWeight {
    /// The annotator.
    pub annotator: String,
    /// Share of its decisive votes that agree with the fitted model.
    pub agreement: f64,
    /// The weight its votes got in the last fit, (2·agreement − 1)² (0 below ½).
    pub weight: f64,
}

/// Result of [`robust_bradley_terry`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustFit {
    /// Item names, sorted.
    pub names: Vec<String>,
    /// Bradley–Terry rating of each item (Elo scale), in the order of `names`.
    pub ratings: Vec<f64>,
    /// Every annotator with its agreement and weight, by name.
    pub annotators: Vec<AnnotatorWeight>,
}

/// Bradley–Terry that finds and down-weights bad-faith annotators.
///
/// Repeat `rounds` times: fit (weighted) BT; score each annotator by how often its
/// decisive votes agree with the fit's prediction (P > ½); give it the weight
/// `max(0, 2·agreement − 1)²` — 0 for a coin-flipper or a contrarian, 1 for perfect
/// agreement — and refit. Honest but noisy annotators keep most of their weight.
pub fn robust_bradley_terry<C: Judged>(comparisons: &[C], rounds: usize) -> RobustFit {
    robust_bradley_terry_items(comparisons, rounds, |c| (c.system_a(), c.system_b()))
}

/// [`robust_bradley_terry`] over the items `items(c)` names (see [`item_matches`]),
/// for example single answers rather than systems.
pub fn robust_bradley_terry_items<'c, C: Judged, K: AsRef<str>>(
    comparisons: &'c [C],
    rounds: usize,
    items: impl Fn(&'c C) -> (K, K),
) -> RobustFit {
    let ItemMatches {
        names,
        matches: base,
    } = item_matches(comparisons, items);
    let Numbered {
        names: annotators,
        ids: judged_by,
    } = number_sorted(comparisons.iter().map(|c| c.annotator()));
    let mut weights = vec![1.0; annotators.len()];
    let mut ratings = bradley_terry(names.len(), &base, BtOptions::default());
    let mut report = Vec::new();
    for _ in 0..rounds.max(1) {
        // (votes agreeing with the fit, decisive votes) per annotator.
        let mut tally = vec![(0.0, 0.0); annotators.len()];
        for ((c, m), &who) in comparisons.iter().zip(&base).zip(&judged_by) {
            if c.winner() == Winner::Tie {
                continue;
            }
            let p = elo_expected(ratings[m.a], ratings[m.b], 400.0);
            if (p - 0.5).abs() < 1e-9 {
                continue;
            }
            let agrees = (p > 0.5) == (c.winner() == Winner::A);
            tally[who].0 += agrees as u8 as f64;
            tally[who].1 += 1.0;
        }
        report.clear();
        for ((who, w), &(same, n)) in annotators.iter().zip(&mut weights).zip(&tally) {
            let agreement = if n > 0.0 { same / n } else { 0.5 };
            *w = (2.0 * agreement - 1.0).max(0.0).powi(2);
            report.push(AnnotatorWeight {
                annotator: who.clone(),
                agreement,
                weight: *w,
            });
        }
        let weighted: Vec<Match> = base
            .iter()
            .zip(&judged_by)
            .map(|(m, &who)| Match {
                weight: weights[who],
                ..*m
            })
            .collect();
        ratings = bradley_terry(names.len(), &weighted, BtOptions::default());
    }
    RobustFit {
        names,
        ratings,
        annotators: report,
    }
}

/// How [`answer_scores`] aggregates one prompt's comparisons into scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Bradley–Terry maximum likelihood (order-free).
    BradleyTerry,
    /// Online Elo (K = 16), in the order the comparisons were made.
    Elo,
}

/// One answer's score from the comparisons it took part in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerScore {
    /// The prompt it answers.
    pub prompt_id: String,
    /// The answer's text.
    pub response: String,
    /// The system that wrote it, from the first comparison it appears in
    /// (empty when the comparisons do not say).
    pub system: String,
    /// Its rating among the prompt's answers, normalised to mean 0 and
    /// standard deviation 1 within the prompt.
    pub score: f64,
}

/// Per-answer scores from comparisons (the seeds' recipe): within each
/// prompt, the answers are players and the comparisons matches; their
/// Bradley–Terry (or Elo) ratings are normalised to mean 0 and std 1 within
/// the prompt ([`normalize_rewards`]), so a score says "better or worse than
/// the other answers to this prompt". Prompts in first-seen order, answers
/// sorted by text within a prompt.
pub fn answer_scores(comparisons: &[Comparison], aggregation: Aggregation) -> Vec<AnswerScore> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_prompt: HashMap<&str, Vec<Comparison>> = HashMap::new();
    for c in comparisons {
        if !by_prompt.contains_key(c.prompt_id.as_str()) {
            order.push(&c.prompt_id);
        }
        by_prompt.entry(&c.prompt_id).or_default().push(c.clone());
    }
    let mut rows: Vec<AnswerScore> = Vec::new();
    for id in order {
        let comps = &by_prompt[id];
        let ItemMatches { names, matches } =
            item_matches(comps, |c| (c.response_a.as_str(), c.response_b.as_str()));
        let ratings = match aggregation {
            Aggregation::BradleyTerry => bradley_terry(names.len(), &matches, BtOptions::default()),
            Aggregation::Elo => elo(names.len(), &matches, EloConfig::default()),
        };
        for (response, rating) in names.into_iter().zip(ratings) {
            let system = comps
                .iter()
                .find_map(|c| {
                    if c.response_a == response {
                        Some(c.system_a.clone())
                    } else if c.response_b == response {
                        Some(c.system_b.clone())
                    } else {
                        None
                    }
                })
                .unwrap_or_default();
            rows.push(AnswerScore {
                prompt_id: id.to_string(),
                response,
                system,
                score: rating,
            });
        }
    }
    let groups: Vec<String> = rows.iter().map(|r| r.prompt_id.clone()).collect();
    let ratings: Vec<f64> = rows.iter().map(|r| r.score).collect();
    for (row, z) in rows
        .iter_mut()
        .zip(normalize_rewards(&ratings, Some(&groups)))
    {
        row.score = z;
    }
    rows
}

/// Centre to mean 0 and scale to unit variance, within each group when `groups` is
/// given (e.g. per prompt: rewards then say "better than the other answers to this
/// prompt"), else globally. Groups of one value map to 0.
pub fn normalize_rewards(values: &[f64], groups: Option<&[String]>) -> Vec<f64> {
    let keys: Vec<&str> = match groups {
        Some(g) => g.iter().map(|s| s.as_str()).collect(),
        None => vec![""; values.len()],
    };
    let mut stats: HashMap<&str, (f64, f64, f64)> = HashMap::new();
    for (k, v) in keys.iter().zip(values) {
        let e = stats.entry(k).or_default();
        e.0 += v;
        e.1 += v * v;
        e.2 += 1.0;
    }
    keys.iter()
        .zip(values)
        .map(|(k, v)| {
            let (s, s2, n) = stats[k];
            let m = s / n;
            let sd = (s2 / n - m * m).max(0.0).sqrt();
            if sd > 1e-12 {
                (v - m) / sd
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(prompt: &str, a: &str, b: &str, winner: Winner) -> Comparison {
        Comparison {
            prompt_id: prompt.into(),
            prompt: prompt.into(),
            response_a: a.into(),
            response_b: b.into(),
            system_a: format!("sys-{a}"),
            system_b: format!("sys-{b}"),
            winner,
            annotator: "u".into(),
            time: 0,
        }
    }

    /// Within a prompt, an answer that wins every comparison scores highest
    /// and one that loses every comparison lowest; scores have mean 0 and
    /// standard deviation 1 per prompt, whatever the other prompts hold.
    #[test]
    fn answer_scores_rank_answers_within_their_prompt() {
        let mut comps = Vec::new();
        for _ in 0..3 {
            comps.push(comparison("p1", "x", "y", Winner::A));
            comps.push(comparison("p1", "y", "z", Winner::A));
            comps.push(comparison("p1", "x", "z", Winner::A));
            comps.push(comparison("p2", "u", "v", Winner::B));
        }
        for aggregation in [Aggregation::BradleyTerry, Aggregation::Elo] {
            let scores = answer_scores(&comps, aggregation);
            let of = |r: &str| scores.iter().find(|s| s.response == r).unwrap();
            assert!(of("x").score > of("y").score && of("y").score > of("z").score);
            assert!(of("v").score > of("u").score);
            assert_eq!(of("z").system, "sys-z");
            for p in ["p1", "p2"] {
                let v: Vec<f64> = scores
                    .iter()
                    .filter(|s| s.prompt_id == p)
                    .map(|s| s.score)
                    .collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9, "{p}: {v:?}");
            }
        }
    }

    #[test]
    fn wilson_and_normalisation_by_hand() {
        // 8 of 10 at z = 1.96: the textbook interval [0.4902, 0.9433].
        let ProportionInterval {
            estimate: p,
            lo,
            hi,
        } = wilson_interval(8, 10, 1.96);
        assert!(
            (p - 0.8).abs() < 1e-12 && (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3
        );
        let z = normalize_rewards(
            &[1.0, 2.0, 3.0, 10.0, 20.0],
            Some(&["a".into(), "a".into(), "a".into(), "b".into(), "b".into()]),
        );
        assert!(
            (z[0] + 1.0 / (2.0f64 / 3.0).sqrt()).abs() < 1e-12
                && z[1].abs() < 1e-12
                && (z[3] + 1.0).abs() < 1e-12
        );
        let g = normalize_rewards(&[1.0, 3.0], None);
        assert_eq!(g, vec![-1.0, 1.0]);
        let w = FlawWeights::default();
        assert_eq!(w.quality(&[]), 1.0);
        assert!((w.quality(&[Flaw::Harmful]) - (1.0 - 4.0 / 10.5)).abs() < 1e-12);
    }

    fn score(system: &str, score: f64) -> SystemScore {
        SystemScore {
            system: system.into(),
            score,
            n: 1,
        }
    }

    /// The same order as gold gives τ = 1, the reverse −1, whatever order the
    /// rows come in; a system gold lacks is an error that names it.
    #[test]
    fn tau_against_gold_matches_systems_by_name() {
        let gold = vec![score("a", 3.0), score("b", 2.0), score("c", 1.0)];
        let same = vec![score("c", 0.1), score("a", 0.9), score("b", 0.5)];
        assert!((tau_vs_gold(&same, &gold).unwrap() - 1.0).abs() < 1e-12);
        let names: Vec<String> = ["b", "c", "a"].iter().map(|s| s.to_string()).collect();
        let reversed = ratings_tau_vs_gold(&names, &[2.0, 3.0, 1.0], &gold).unwrap();
        assert!((reversed + 1.0).abs() < 1e-12);
        let err = tau_vs_gold(&[score("zz", 1.0), score("a", 2.0)], &gold).unwrap_err();
        assert!(err.to_string().contains("`zz`"), "{err}");
        let rate = ThumbsUpRate {
            system: "a".into(),
            rate: 0.75,
            lo: 0.5,
            hi: 0.9,
            votes: 8,
        };
        assert_eq!(
            rate.score(),
            SystemScore {
                system: "a".into(),
                score: 0.75,
                n: 8
            }
        );
    }
}
