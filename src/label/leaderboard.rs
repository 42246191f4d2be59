//! The leaderboard: systems rated by Elo and by Bradley–Terry with 95%
//! bootstrap intervals ([`crate::feedback::ranking`]), drawn with the plot
//! module, and how much the annotators agree ([`crate::feedback::agreement`]).
//! Comparisons whose answers name no system are left out of the ratings.

use super::db::PairJudgement;
use super::export::to_records;
use crate::feedback::aggregate::{system_matches, ItemMatches};
use crate::feedback::agreement::{agreement_with_consensus, fleiss_kappa, ConsensusAgreement};
use crate::feedback::ranking::{
    bootstrap, bootstrap_bradley_terry, bradley_terry, elo, BtOptions, EloConfig, Interval,
};
use crate::feedback::records::{comparisons, Comparison};
use crate::plot::{BarChart, Figure};
use anyhow::Result;

/// Bootstrap resamples behind the intervals.
pub const BOOTSTRAP_ROUNDS: usize = 100;

/// One system's row.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemRow {
    pub system: String,
    pub elo: f64,
    pub elo_interval: Interval,
    pub bradley_terry: f64,
    pub bt_interval: Interval,
    /// Comparisons it took part in.
    pub matches: usize,
}

/// The leaderboard at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaderboard {
    /// Systems, best Bradley–Terry rating first.
    pub rows: Vec<SystemRow>,
    /// Pair judgements in all (with or without systems).
    pub judgements: usize,
    pub annotators: usize,
    /// Fleiss' κ over pairs judged by several annotators (`None` when no pair was).
    pub fleiss_kappa: Option<f64>,
    /// Each annotator's agreement with the others' majority.
    pub consensus: Vec<ConsensusAgreement>,
}

/// The leaderboard of `pairs`.
pub fn leaderboard(pairs: &[PairJudgement]) -> Leaderboard {
    let all = comparisons(&to_records(pairs, &[]));
    let ranked: Vec<Comparison> = all
        .iter()
        .filter(|c| !c.system_a.is_empty() && !c.system_b.is_empty())
        .cloned()
        .collect();
    let ItemMatches { names, matches } = system_matches(&ranked);
    let n = names.len();
    let mut rows = Vec::new();
    if n > 0 {
        let elo_r = elo(n, &matches, EloConfig::default());
        let elo_ci = bootstrap(n, &matches, BOOTSTRAP_ROUNDS, 1, |m| {
            elo(n, m, EloConfig::default())
        });
        let bt = bradley_terry(n, &matches, BtOptions::default());
        let bt_ci = bootstrap_bradley_terry(n, &matches, BOOTSTRAP_ROUNDS, 2, BtOptions::default());
        let mut games = vec![0usize; n];
        for m in &matches {
            games[m.a] += 1;
            games[m.b] += 1;
        }
        rows = (0..n)
            .map(|i| SystemRow {
                system: names[i].clone(),
                elo: elo_r[i],
                elo_interval: elo_ci[i],
                bradley_terry: bt[i],
                bt_interval: bt_ci[i],
                matches: games[i],
            })
            .collect();
        rows.sort_by(|a, b| b.bradley_terry.total_cmp(&a.bradley_terry));
    }
    let mut names: Vec<&str> = all.iter().map(|c| c.annotator.as_str()).collect();
    names.sort();
    names.dedup();
    let kappa = fleiss_kappa(&all);
    Leaderboard {
        rows,
        judgements: all.len(),
        annotators: names.len(),
        fleiss_kappa: kappa.is_finite().then_some(kappa),
        consensus: agreement_with_consensus(&all),
    }
}

/// The ratings as a figure: Bradley–Terry and Elo, each with
/// its 95% bootstrap interval. `None` before any system was compared.
pub fn figure(board: &Leaderboard) -> Result<Option<Figure>> {
    if board.rows.is_empty() {
        return Ok(None);
    }
    let labels: Vec<&str> = board.rows.iter().map(|r| r.system.as_str()).collect();
    // Side by side while the labels fit; one above the other, wider, beyond 5 systems.
    let (width, columns) = if labels.len() <= 5 {
        (520, 2)
    } else {
        ((110 * labels.len() as u32).clamp(520, 1100), 1)
    };
    let chart = |title: &str, v: Vec<f64>, lo: Vec<f64>, hi: Vec<f64>| {
        BarChart::new(title)
            .y_label("rating (Elo scale)")
            .bars(&labels, &v)
            .intervals(&lo, &hi)
            // Ratings sit around 1000: an axis from 0 would flatten them.
            .fit_y(true)
            .size(width, 360)
            .draw()
    };
    let elo = chart(
        "Elo, 95% bootstrap interval",
        board.rows.iter().map(|r| r.elo).collect(),
        board.rows.iter().map(|r| r.elo_interval.lo).collect(),
        board.rows.iter().map(|r| r.elo_interval.hi).collect(),
    )?;
    let bt = chart(
        "Bradley-Terry, 95% bootstrap interval",
        board.rows.iter().map(|r| r.bradley_terry).collect(),
        board.rows.iter().map(|r| r.bt_interval.lo).collect(),
        board.rows.iter().map(|r| r.bt_interval.hi).collect(),
    )?;
    Ok(Some(Figure::grid(&[bt, elo], columns)))
}
