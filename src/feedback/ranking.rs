//! Turning head-to-head matches into ratings: online Elo and Bradley–Terry maximum
//! likelihood, both on the 400-point Elo scale, with bootstrap intervals; and the
//! rank correlations that measure a ranking against the truth.

use super::FastHash;
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One match between items `a` and `b`: `score_a` is 1 (a won), ½ (tie) or 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub score_a: f64,
    /// Weight of the vote (1 for everyone unless a robust method down-weights it).
    pub weight: f64,
}

impl Match {
    pub fn new(a: usize, b: usize, score_a: f64) -> Self {
        Self {
            a,
            b,
            score_a,
            weight: 1.0,
        }
    }
}

/// Elo parameters (Elo 1978; Chatbot Arena uses K = 4 over very many matches).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EloConfig {
    /// K: the largest change of a rating after one match.
    pub k: f64,
    /// Every player's rating before their first match.
    pub initial: f64,
    /// 400: a 400-point gap means 10:1 odds.
    pub scale: f64,
}

impl Default for EloConfig {
    fn default() -> Self {
        Self {
            k: 16.0,
            initial: 1000.0,
            scale: 400.0,
        }
    }
}

/// Expected score of a player rated `ra` against one rated `rb`:
/// E_a = 1 / (1 + 10^((R_b − R_a)/400)).
pub fn elo_expected(ra: f64, rb: f64, scale: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf((rb - ra) / scale))
}

/// One Elo update: R_a ← R_a + K·w·(S_a − E_a), R_b ← R_b − K·w·(S_a − E_a).
fn elo_update(r: &mut [f64], m: &Match, cfg: EloConfig) {
    let delta = cfg.k * m.weight * (m.score_a - elo_expected(r[m.a], r[m.b], cfg.scale));
    r[m.a] += delta;
    r[m.b] -= delta;
}

/// Online Elo over `matches` in the given order:
/// R_a ← R_a + K·w·(S_a − E_a), R_b ← R_b − K·w·(S_a − E_a). The result depends on the order.
pub fn elo(n_items: usize, matches: &[Match], cfg: EloConfig) -> Vec<f64> {
    let mut r = vec![cfg.initial; n_items];
    for m in matches {
        elo_update(&mut r, m, cfg);
    }
    r
}

/// Elo ratings part-way through a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EloSnapshot {
    /// Matches played so far.
    pub matches: usize,
    /// Every item's rating after them.
    pub ratings: Vec<f64>,
}

/// Elo ratings after every `every` matches (for plotting how ratings evolve):
/// snapshots from the start (0 matches) to the last, after all matches.
pub fn elo_history(
    n_items: usize,
    matches: &[Match],
    cfg: EloConfig,
    every: usize,
) -> Vec<EloSnapshot> {
    let mut r = vec![cfg.initial; n_items];
    let mut out = vec![EloSnapshot {
        matches: 0,
        ratings: r.clone(),
    }];
    for (t, m) in matches.iter().enumerate() {
        elo_update(&mut r, m, cfg);
        if (t + 1) % every.max(1) == 0 || t + 1 == matches.len() {
            out.push(EloSnapshot {
                matches: t + 1,
                ratings: r.clone(),
            });
        }
    }
    out
}

/// Ranking quality at one amount of data: mean Kendall τ against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TauAtSize {
    /// Number of matches simulated.
    pub matches: usize,
    /// Mean τ of online Elo.
    pub elo: f64,
    /// Mean τ of Bradley–Terry.
    pub bradley_terry: f64,
}

/// How ranking quality grows with data: for each number of matches, the mean Kendall
/// τ against the truth of Elo and of Bradley–Terry over `seeds` simulated arenas.
pub fn tau_vs_matches(
    true_ratings: &[f64],
    sizes: &[usize],
    seeds: u64,
    cfg: EloConfig,
) -> Vec<TauAtSize> {
    sizes
        .iter()
        .map(|&n| {
            let (mut te, mut tb) = (0.0, 0.0);
            for seed in 0..seeds {
                let m = simulate_matches(true_ratings, n, seed);
                te += kendall_tau(&elo(true_ratings.len(), &m, cfg), true_ratings);
                tb += kendall_tau(
                    &bradley_terry(true_ratings.len(), &m, BtOptions::default()),
                    true_ratings,
                );
            }
            TauAtSize {
                matches: n,
                elo: te / seeds as f64,
                bradley_terry: tb / seeds as f64,
            }
        })
        .collect()
}

/// Options of the Bradley–Terry fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BtOptions {
    /// Virtual ties of each item against an average item: a weak prior that keeps
    /// ratings finite for items that never won (or never lost).
    pub prior_ties: f64,
    pub max_iterations: usize,
    /// Stop when the largest change in log-strength is below this.
    pub tolerance: f64,
}

impl Default for BtOptions {
    fn default() -> Self {
        Self {
            prior_ties: 1.0,
            max_iterations: 10_000,
            tolerance: 1e-9,
        }
    }
}

/// The matches of each pair of items, (i, j, Σ weights) with i < j, sorted by
/// (i, j) so that the sums that use them run in the same order every time;
/// adds each item's (weighted) score to `wins`. Few items (at most
/// [`DENSE_PAIRS_UP_TO`]) count into a dense table, more into a hash map:
/// the same sums in the same order either way.
fn pair_counts(n_items: usize, matches: &[Match], wins: &mut [f64]) -> Vec<(usize, usize, f64)> {
    pair_counts_in(n_items, matches, wins, n_items <= DENSE_PAIRS_UP_TO)
}

/// [`pair_counts`] in a dense table (`dense`) or a hash map.
fn pair_counts_in(
    n_items: usize,
    matches: &[Match],
    wins: &mut [f64],
    dense: bool,
) -> Vec<(usize, usize, f64)> {
    let ordered = matches.iter().filter(|m| m.a != m.b).map(|m| {
        if m.a < m.b {
            (m.a, m.b, m.score_a, m.weight)
        } else {
            (m.b, m.a, 1.0 - m.score_a, m.weight)
        }
    });
    if dense {
        // (Σ weights, seen) per pair: a pair with matches of weight 0 still counts.
        let mut table = vec![(0.0, false); n_items * n_items];
        for (i, j, s, w) in ordered {
            let e = &mut table[i * n_items + j];
            e.0 += w;
            e.1 = true;
            wins[i] += w * s;
            wins[j] += w * (1.0 - s);
        }
        return (0..n_items)
            .flat_map(|i| (i + 1..n_items).map(move |j| (i, j)))
            .filter_map(|(i, j)| {
                let (n, seen) = table[i * n_items + j];
                seen.then_some((i, j, n))
            })
            .collect();
    }
    let mut pairs: HashMap<(usize, usize), f64> = HashMap::new();
    for (i, j, s, w) in ordered {
        *pairs.entry((i, j)).or_insert(0.0) += w;
        wins[i] += w * s;
        wins[j] += w * (1.0 - s);
    }
    let mut pairs: Vec<(usize, usize, f64)> =
        pairs.into_iter().map(|((i, j), n)| (i, j, n)).collect();
    pairs.sort_by_key(|&(i, j, _)| (i, j));
    pairs
}

/// Up to how many items [`pair_counts`] uses a dense n × n table (512: 4 MiB).
const DENSE_PAIRS_UP_TO: usize = 512;

/// Bradley–Terry (1952) maximum likelihood by the MM algorithm (Hunter 2004,
/// *MM algorithms for generalized Bradley–Terry models*, eq. 3):
///
/// ```text
/// P(i beats j) = p_i / (p_i + p_j),    p_i ← W_i / Σ_j n_ij / (p_i + p_j)
/// ```
/// W_i is i's total score (a tie counts ½ for each side) and n_ij the (weighted)
/// number of matches between i and j. Ratings are returned on the Elo scale:
/// R_i = 1000 + 400 · log10(p_i / geometric mean of p), so that a difference of 400
/// means 10:1 odds, as in Elo.
pub fn bradley_terry(n_items: usize, matches: &[Match], opts: BtOptions) -> Vec<f64> {
    // Aggregate into pairs: (i, j) with i < j → n_ij, and each item's score.
    let mut wins = vec![0.0; n_items];
    let pairs = pair_counts(n_items, matches, &mut wins);
    bradley_terry_mm(&pairs, &wins, opts)
}

/// The MM iterations of [`bradley_terry`] from its sufficient statistics:
/// `pairs` (i, j, n_ij) with i < j sorted, and `wins` W_i.
fn bradley_terry_mm(pairs: &[(usize, usize, f64)], wins: &[f64], opts: BtOptions) -> Vec<f64> {
    let n_items = wins.len();
    let mut p = vec![1.0; n_items];
    let mut denom = vec![0.0; n_items];
    for _ in 0..opts.max_iterations {
        denom.iter_mut().for_each(|d| *d = 0.0);
        for &(i, j, n) in pairs {
            let t = n / (p[i] + p[j]);
            denom[i] += t;
            denom[j] += t;
        }
        let mut max_change: f64 = 0.0;
        let mut next: Vec<f64> = (0..n_items)
            .map(|i| {
                // The prior: `prior_ties` ties against a virtual item of strength 1.
                let w = wins[i] + 0.5 * opts.prior_ties;
                let d = denom[i] + opts.prior_ties / (p[i] + 1.0);
                if d > 0.0 {
                    w / d
                } else {
                    1.0
                }
            })
            .collect();
        // Normalise to geometric mean 1 (the likelihood is scale-free).
        let log_mean = next.iter().map(|x| x.ln()).sum::<f64>() / n_items.max(1) as f64;
        for (x, old) in next.iter_mut().zip(&p) {
            *x /= log_mean.exp();
            max_change = max_change.max((x.ln() - old.ln()).abs());
        }
        p = next;
        if max_change < opts.tolerance {
            break;
        }
    }
    p.iter().map(|x| 1000.0 + 400.0 * x.log10()).collect()
}

/// Median and 95% interval of a rating over bootstrap resamples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Bootstrap (Efron 1979) as Chatbot Arena does: resample the matches with
/// replacement `rounds` times, re-rate each resample with `rate`, and report per
/// item the median and the 2.5 / 97.5 percentiles.
///
/// Round `r` is made of draws `r·n .. (r+1)·n` of `Rng::new(seed)` (`n`
/// matches), the draws of a loop over the rounds in turn, so the rounds run
/// in parallel ([`Rng::skip`]) and give the same intervals on any number of
/// threads.
pub fn bootstrap(
    n_items: usize,
    matches: &[Match],
    rounds: usize,
    seed: u64,
    rate: impl Fn(&[Match]) -> Vec<f64> + Sync,
) -> Vec<Interval> {
    resampled_intervals(n_items, &MatchTable::new(matches), rounds, seed, rate)
}

/// [`bootstrap`] over matches already in a [`MatchTable`].
fn resampled_intervals(
    n_items: usize,
    table: &MatchTable,
    rounds: usize,
    seed: u64,
    rate: impl Fn(&[Match]) -> Vec<f64> + Sync,
) -> Vec<Interval> {
    let n = table.len();
    let per_round = parallel_rounds(
        rounds,
        n,
        seed,
        || Vec::with_capacity(n),
        |resample: &mut Vec<Match>, rng| {
            resample.clear();
            resample.extend((0..n).map(|_| table.get(rng.below(n))));
            rate(resample)
        },
    );
    intervals(n_items, per_round)
}

/// [`bootstrap`] of [`bradley_terry`]: the same intervals, bit for bit, from
/// the same draws, without writing out the resamples. Bradley–Terry reads a
/// resample only through its pair counts n_ij and scores W_i; when every
/// match has weight 1 and a score of 0, ½ or 1, those are sums of halves,
/// exact in any order, so counting how often each distinct match was drawn
/// gives them exactly. Other matches take [`bootstrap`].
pub fn bootstrap_bradley_terry(
    n_items: usize,
    matches: &[Match],
    rounds: usize,
    seed: u64,
    opts: BtOptions,
) -> Vec<Interval> {
    let resampled = |m: &[Match]| bradley_terry(n_items, m, opts);
    let exact_in_any_order = matches
        .iter()
        .all(|m| m.weight == 1.0 && [0.0, 0.5, 1.0].contains(&m.score_a));
    if !exact_in_any_order {
        return bootstrap(n_items, matches, rounds, seed, resampled);
    }
    let table = MatchTable::new(matches);
    let MatchTable::Distinct { distinct, ids } = &table else {
        return resampled_intervals(n_items, &table, rounds, seed, resampled);
    };
    let n = matches.len();
    let per_round = parallel_rounds(
        rounds,
        n,
        seed,
        || vec![0u32; distinct.len()],
        |drawn: &mut Vec<u32>, rng| {
            drawn.iter_mut().for_each(|c| *c = 0);
            for _ in 0..n {
                drawn[ids[rng.below(n)] as usize] += 1;
            }
            // Each distinct match drawn c times, as one match of weight c.
            let counted: Vec<Match> = distinct
                .iter()
                .zip(drawn.iter())
                .filter(|&(_, &c)| c > 0)
                .map(|(m, &c)| Match {
                    weight: c as f64,
                    ..*m
                })
                .collect();
            let mut wins = vec![0.0; n_items];
            let pairs = pair_counts(n_items, &counted, &mut wins);
            bradley_terry_mm(&pairs, &wins, opts)
        },
    );
    intervals(n_items, per_round)
}

/// `round(state, rng)` for each of `rounds` rounds, in parallel, `rng` at
/// draw `r·draws_per_round` of `Rng::new(seed)` in round `r`: the draws of
/// a loop over the rounds in turn ([`Rng::skip`]), so the results are the
/// same on any number of threads. Each worker makes one `state` (a buffer)
/// for its share of rounds.
fn parallel_rounds<S>(
    rounds: usize,
    draws_per_round: usize,
    seed: u64,
    state: impl Fn() -> S + Sync,
    round: impl Fn(&mut S, &mut Rng) -> Vec<f64> + Sync,
) -> Vec<Vec<f64>> {
    use rayon::prelude::*;
    let workers = rayon::current_num_threads().clamp(1, rounds.max(1));
    (0..workers)
        .into_par_iter()
        .flat_map_iter(|w| {
            let mut s = state();
            let round = &round;
            (w * rounds / workers..(w + 1) * rounds / workers).map(move |r| {
                let mut rng = Rng::new(seed);
                rng.skip(r as u64 * draws_per_round as u64);
                round(&mut s, &mut rng)
            })
        })
        .collect()
}

/// Each item's median and 95% interval over the rounds' ratings.
fn intervals(n_items: usize, per_round: Vec<Vec<f64>>) -> Vec<Interval> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(per_round.len()); n_items];
    for round in per_round {
        for (i, r) in round.into_iter().enumerate() {
            samples[i].push(r);
        }
    }
    samples
        .into_iter()
        .map(|mut xs| {
            xs.sort_by(|a, b| a.total_cmp(b));
            Interval {
                median: percentile(&xs, 0.5),
                lo: percentile(&xs, 0.025),
                hi: percentile(&xs, 0.975),
            }
        })
        .collect()
}

/// Matches as a resample reads them, at random: when they are few distinct
/// matches (systems: a few hundred among a million) a table of those and a
/// 2-byte id per match, which stay in cache where a million 32-byte matches
/// do not; otherwise the matches themselves.
enum MatchTable<'m> {
    Distinct { distinct: Vec<Match>, ids: Vec<u16> },
    Direct(&'m [Match]),
}

impl<'m> MatchTable<'m> {
    /// Up to how many distinct matches are kept as a table (64 Ki: 2 MiB).
    const MAX_DISTINCT: usize = 1 << 16;

    fn new(matches: &'m [Match]) -> Self {
        let key = |m: &Match| (m.a, m.b, m.score_a.to_bits(), m.weight.to_bits());
        let mut index: HashMap<(usize, usize, u64, u64), u16, FastHash> = HashMap::default();
        let mut distinct = Vec::new();
        let mut ids = Vec::with_capacity(matches.len());
        for m in matches {
            let id = *index.entry(key(m)).or_insert_with(|| {
                distinct.push(*m);
                (distinct.len() - 1) as u16
            });
            if distinct.len() > Self::MAX_DISTINCT {
                return MatchTable::Direct(matches);
            }
            ids.push(id);
        }
        MatchTable::Distinct { distinct, ids }
    }

    /// How many matches.
    fn len(&self) -> usize {
        match self {
            MatchTable::Distinct { ids, .. } => ids.len(),
            MatchTable::Direct(matches) => matches.len(),
        }
    }

    /// Match `i`, bit for bit.
    fn get(&self, i: usize) -> Match {
        match self {
            MatchTable::Distinct { distinct, ids } => distinct[ids[i] as usize],
            MatchTable::Direct(matches) => matches[i],
        }
    }
}

/// Linear-interpolated percentile of sorted data.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// Kendall's τ-b (Kendall 1945): concordant minus discordant pairs, corrected for ties.
pub fn kendall_tau(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (mut c, mut d, mut tx, mut ty) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..n {
        for j in i + 1..n {
            let a = (x[i] - x[j]).signum() * ((x[i] - x[j]).abs() > 0.0) as i32 as f64;
            let b = (y[i] - y[j]).signum() * ((y[i] - y[j]).abs() > 0.0) as i32 as f64;
            if a == 0.0 && b == 0.0 {
                continue;
            } else if a == 0.0 {
                tx += 1.0;
            } else if b == 0.0 {
                ty += 1.0;
            } else if a == b {
                c += 1.0;
            } else {
                d += 1.0;
            }
        }
    }
    let denom = ((c + d + tx) * (c + d + ty)).sqrt();
    if denom == 0.0 {
        f64::NAN
    } else {
        (c - d) / denom
    }
}

/// Ranks from 1, ties sharing their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's ρ (1904): the Pearson correlation of the ranks.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// Matches among items of known Bradley–Terry strengths (on the Elo scale):
/// each match draws a random pair and a winner with P(a) = E(R_a, R_b). For tests,
/// benchmarks and teaching.
pub fn simulate_matches(true_ratings: &[f64], n_matches: usize, seed: u64) -> Vec<Match> {
    let mut rng = Rng::new(seed);
    let n = true_ratings.len();
    (0..n_matches)
        .map(|_| {
            let (a, b) = rng.distinct_pair(n);
            let p = elo_expected(true_ratings[a], true_ratings[b], 400.0);
            Match::new(a, b, if rng.uniform() < p { 1.0 } else { 0.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense table and the hash map give the same pairs, counts and wins,
    /// bit for bit, including a pair whose only match has weight 0 and a
    /// self-match (skipped).
    #[test]
    fn pair_counts_agree_dense_and_hashed() {
        let mut rng = gridworld::Rng::new(5);
        let mut matches: Vec<Match> = (0..2000)
            .map(|_| {
                let score = [0.0, 0.5, 1.0][rng.below(3)];
                Match::new(rng.below(9), rng.below(9), score)
            })
            .collect();
        matches.push(Match {
            weight: 0.0,
            ..Match::new(9, 3, 1.0)
        });
        let (mut wins_dense, mut wins_hashed) = (vec![0.0; 10], vec![0.0; 10]);
        let dense = pair_counts_in(10, &matches, &mut wins_dense, true);
        let hashed = pair_counts_in(10, &matches, &mut wins_hashed, false);
        assert_eq!(dense, hashed);
        assert_eq!(wins_dense, wins_hashed);
        assert!(dense.contains(&(3, 9, 0.0)));
        assert!(dense.iter().all(|&(i, j, _)| i < j));
    }

    /// Two players at 1000, K = 32: a win moves the winner to 1016, the loser to 984.
    /// Then 1016 vs 984 with a tie: E = 1/(1+10^(−32/400)) = 0.54592…, so the
    /// favourite loses 32·0.04592 = 1.4695 points.
    #[test]
    fn elo_matches_hand_computation() {
        let cfg = EloConfig {
            k: 32.0,
            ..Default::default()
        };
        let r = elo(2, &[Match::new(0, 1, 1.0)], cfg);
        assert_eq!(r, vec![1016.0, 984.0]);
        let r = elo(2, &[Match::new(0, 1, 1.0), Match::new(0, 1, 0.5)], cfg);
        let e = 1.0 / (1.0 + 10f64.powf(-32.0 / 400.0));
        assert!((r[0] - (1016.0 + 32.0 * (0.5 - e))).abs() < 1e-9);
        assert!((r[0] + r[1] - 2000.0).abs() < 1e-9, "Elo is zero-sum");
        assert!((elo_expected(1400.0, 1000.0, 400.0) - 10.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn bradley_terry_recovers_known_strengths() {
        let truth: Vec<f64> = (0..20).map(|i| 800.0 + 25.0 * i as f64).collect();
        let matches = simulate_matches(&truth, 20_000, 3);
        let est = bradley_terry(truth.len(), &matches, BtOptions::default());
        let tau = kendall_tau(&truth, &est);
        assert!(tau >= 0.9, "tau {tau}");
        // The scale is right too: the spread of estimates matches the truth's.
        let spread = est.iter().cloned().fold(f64::MIN, f64::max)
            - est.iter().cloned().fold(f64::MAX, f64::min);
        assert!((spread - 475.0).abs() < 60.0, "spread {spread}");
    }

    #[test]
    fn two_item_bt_is_the_win_rate() {
        // 30 wins and 10 losses, no prior: p0/p1 = 3, so R0 − R1 = 400·log10(3).
        let mut m = vec![Match::new(0, 1, 1.0); 30];
        m.extend(vec![Match::new(0, 1, 0.0); 10]);
        let r = bradley_terry(
            2,
            &m,
            BtOptions {
                prior_ties: 0.0,
                ..Default::default()
            },
        );
        assert!((r[0] - r[1] - 400.0 * 3f64.log10()).abs() < 1e-6);
    }

    #[test]
    fn rank_correlations_by_hand() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // One discordant pair of three: (2 − 1)/3.
        assert!((kendall_tau(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // d² = 0 + 1 + 1 → ρ = 1 − 6·2/(3·8) = 0.5.
        assert!((spearman_rho(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_interval_contains_the_estimate() {
        let truth = [900.0, 1000.0, 1100.0];
        let m = simulate_matches(&truth, 3000, 1);
        let ci = bootstrap(3, &m, 50, 2, |mm| {
            bradley_terry(3, mm, BtOptions::default())
        });
        let est = bradley_terry(3, &m, BtOptions::default());
        for i in 0..3 {
            assert!(ci[i].lo < est[i] && est[i] < ci[i].hi && ci[i].lo < ci[i].hi);
        }
    }

    /// The rounds run in parallel from a table of distinct matches, yet each
    /// is the resample the one-loop bootstrap draws: the same ratings, bit
    /// for bit, with few distinct matches (a table) and with many (direct).
    #[test]
    fn parallel_bootstrap_draws_the_sequential_resamples() {
        fn sequential(
            n_items: usize,
            matches: &[Match],
            rounds: usize,
            seed: u64,
            rate: impl Fn(&[Match]) -> Vec<f64>,
        ) -> Vec<Vec<f64>> {
            let mut rng = Rng::new(seed);
            let mut samples = vec![Vec::new(); n_items];
            for _ in 0..rounds {
                let resample: Vec<Match> = (0..matches.len())
                    .map(|_| matches[rng.below(matches.len())])
                    .collect();
                for (i, r) in rate(&resample).into_iter().enumerate() {
                    samples[i].push(r);
                }
            }
            samples
        }
        let truth = [900.0, 1000.0, 1100.0, 1150.0];
        let few = simulate_matches(&truth, 3000, 4);
        let many: Vec<Match> = simulate_matches(&truth, MatchTable::MAX_DISTINCT + 1000, 5)
            .iter()
            .enumerate()
            .map(|(i, m)| Match {
                weight: 1.0 + i as f64 * 1e-3,
                ..*m
            })
            .collect();
        for (matches, distinct) in [(&few, true), (&many, false)] {
            assert_eq!(
                matches!(MatchTable::new(matches), MatchTable::Distinct { .. }),
                distinct
            );
            let rate = |m: &[Match]| elo(4, m, EloConfig::default());
            let ci = bootstrap(4, matches, 12, 9, rate);
            for (i, mut xs) in sequential(4, matches, 12, 9, rate).into_iter().enumerate() {
                xs.sort_by(|a, b| a.total_cmp(b));
                let expected = Interval {
                    median: percentile(&xs, 0.5),
                    lo: percentile(&xs, 0.025),
                    hi: percentile(&xs, 0.975),
                };
                assert_eq!(ci[i], expected, "item {i}");
            }
        }
        assert!(
            bootstrap(4, &few, 0, 9, |m| elo(4, m, EloConfig::default()))
                .iter()
                .all(|ci| ci.median.is_nan())
        );
    }

    /// Counting draws gives Bradley–Terry the pair counts and scores of the
    /// written-out resamples exactly: the same intervals bit for bit, with
    /// ties, both orders of a pair, a self-match and an item never met; and
    /// weighted matches (not exact in any order) take the general path.
    #[test]
    fn counted_bradley_terry_bootstrap_is_the_resampled_one() {
        let mut rng = Rng::new(11);
        let mut matches: Vec<Match> = (0..5000)
            .map(|_| {
                let (a, b) = rng.distinct_pair(5);
                Match::new(a, b, [0.0, 0.5, 1.0][rng.below(3)])
            })
            .collect();
        matches.push(Match::new(2, 2, 1.0));
        let opts = BtOptions::default();
        let resampled = |m: &[Match]| bradley_terry(6, m, opts);
        assert_eq!(
            bootstrap_bradley_terry(6, &matches, 40, 3, opts),
            bootstrap(6, &matches, 40, 3, resampled)
        );
        matches[7].weight = 0.3;
        assert_eq!(
            bootstrap_bradley_terry(6, &matches, 5, 3, opts),
            bootstrap(6, &matches, 5, 3, resampled)
        );
    }
}
