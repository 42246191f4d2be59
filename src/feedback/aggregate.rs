//! Aggregating feedback into scores and a reward signal: win rates of thumbs with
//! Wilson intervals, weighted flaw scores, per-annotator z-scored ratings, a robust
//! Bradley–Terry that down-weights bad-faith annotators, and normalisation.

use super::ranking::{bradley_terry, elo_expected, kendall_tau, BtOptions, Match};
use super::records::{Checklist, Comparison, Flaw, Rating, Thumbs, Winner};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
// Every map that is iterated is a BTreeMap, so that sums and ties run in the
// same order on every run (a HashMap's order changes between runs).
use std::collections::{BTreeMap, HashMap};

/// Wilson score interval (Wilson 1927) for a proportion: `successes` of `n` at
/// z = 1.96 (95%). Returns `(estimate, lo, hi)`.
pub fn wilson_interval(successes: usize, n: usize, z: f64) -> (f64, f64, f64) {
    if n == 0 {
        return (f64::NAN, 0.0, 1.0);
    }
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (p, centre - half, centre + half)
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
            let (rate, lo, hi) = wilson_interval(k, n, 1.96);
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

/// How much each flaw costs in a checklist score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlawWeights(pub Vec<(Flaw, f64)>);

impl Default for FlawWeights {
    /// Harm costs most, then incorrectness, unhelpfulness, rudeness and length.
    fn default() -> Self {
        Self(vec![
            (Flaw::Harmful, 4.0),
            (Flaw::Incorrect, 3.0),
            (Flaw::Unhelpful, 2.0),
            (Flaw::Rude, 1.0),
            (Flaw::TooLong, 0.5),
        ])
    }
}

impl FlawWeights {
    /// Quality in [0, 1]: 1 − (Σ weights of ticked flaws) / (Σ all weights).
    pub fn quality(&self, flaws: &[Flaw]) -> f64 {
        let total: f64 = self.0.iter().map(|(_, w)| w).sum();
        let lost: f64 = self
            .0
            .iter()
            .filter(|(f, _)| flaws.contains(f))
            .map(|(_, w)| w)
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

/// Comparisons between systems as matches: item names (sorted) and matches.
pub fn system_matches(comparisons: &[Comparison]) -> (Vec<String>, Vec<Match>) {
    item_matches(comparisons, |c| (c.system_a.clone(), c.system_b.clone()))
}

/// Comparisons as matches between the items `items(c)` names for A and B
/// (systems, or single answers): item names (sorted) and matches.
pub fn item_matches(
    comparisons: &[Comparison],
    items: impl Fn(&Comparison) -> (String, String),
) -> (Vec<String>, Vec<Match>) {
    let pairs: Vec<(String, String)> = comparisons.iter().map(&items).collect();
    let mut names: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    names.sort();
    names.dedup();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let matches = comparisons
        .iter()
        .zip(&pairs)
        .map(|(c, (a, b))| Match::new(index[a.as_str()], index[b.as_str()], c.winner.score_a()))
        .collect();
    (names, matches)
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
pub fn robust_bradley_terry(comparisons: &[Comparison], rounds: usize) -> RobustFit {
    robust_bradley_terry_items(comparisons, rounds, |c| {
        (c.system_a.clone(), c.system_b.clone())
    })
}

/// [`robust_bradley_terry`] over the items `items(c)` names (see [`item_matches`]),
/// for example single answers rather than systems.
pub fn robust_bradley_terry_items(
    comparisons: &[Comparison],
    rounds: usize,
    items: impl Fn(&Comparison) -> (String, String),
) -> RobustFit {
    let (names, base) = item_matches(comparisons, items);
    let mut weights: BTreeMap<&str, f64> = comparisons
        .iter()
        .map(|c| (c.annotator.as_str(), 1.0))
        .collect();
    let mut ratings = bradley_terry(names.len(), &base, BtOptions::default());
    let mut report = Vec::new();
    for _ in 0..rounds.max(1) {
        let mut tally: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (c, m) in comparisons.iter().zip(&base) {
            if c.winner == Winner::Tie {
                continue;
            }
            let p = elo_expected(ratings[m.a], ratings[m.b], 400.0);
            if (p - 0.5).abs() < 1e-9 {
                continue;
            }
            let agrees = (p > 0.5) == (c.winner == Winner::A);
            let e = tally.entry(c.annotator.as_str()).or_default();
            e.0 += agrees as u8 as f64;
            e.1 += 1.0;
        }
        report.clear();
        for (who, w) in weights.iter_mut() {
            let (same, n) = tally.get(who).copied().unwrap_or((0.0, 0.0));
            let agreement = if n > 0.0 { same / n } else { 0.5 };
            *w = (2.0 * agreement - 1.0).max(0.0).powi(2);
            report.push(AnnotatorWeight {
                annotator: who.to_string(),
                agreement,
                weight: *w,
            });
        }
        let weighted: Vec<Match> = comparisons
            .iter()
            .zip(&base)
            .map(|(c, m)| Match {
                weight: weights[c.annotator.as_str()],
                ..*m
            })
            .collect();
        ratings = bradley_terry(names.len(), &weighted, BtOptions::default());
    }
    report.sort_by(|a, b| a.annotator.cmp(&b.annotator));
    RobustFit {
        names,
        ratings,
        annotators: report,
    }
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

    #[test]
    fn wilson_and_normalisation_by_hand() {
        // 8 of 10 at z = 1.96: the textbook interval [0.4902, 0.9433].
        let (p, lo, hi) = wilson_interval(8, 10, 1.96);
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
