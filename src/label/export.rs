//! The database as the project's files: feedback records (rung 5's format,
//! read unchanged by `rlhf-lab feedback rank`, the reward model's `--labels`
//! and notebooks 05/06) and TRL's `prompt / chosen / rejected` pairs.
//!
//! A pair judged "both bad" is a tie (neither is preferred); a single-answer
//! judgement gives a thumbs record, a rating record when rated, and a
//! checklist record (the flaws ticked, possibly none). Free-text reasons stay
//! in the database: the records format has no field for them.

use super::db::{Choice, LabelDb, PairJudgement, SingleJudgement};
use crate::feedback::records::{
    comparisons, to_preference_pairs, write_feedback, Checklist, Comparison, Feedback, Rating,
    Thumbs, Winner,
};
use crate::io::jsonl::{to_jsonl_text, write_jsonl};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The records of the judgements, pairs first then single answers, each in
/// the order stored. `time` is seconds since the first judgement.
pub fn to_records(pairs: &[PairJudgement], singles: &[SingleJudgement]) -> Vec<Feedback> {
    let start = pairs
        .iter()
        .map(|p| p.created_at)
        .chain(singles.iter().map(|s| s.created_at))
        .fold(f64::INFINITY, f64::min);
    let mut out: Vec<Feedback> = pairs
        .iter()
        .map(|p| {
            Feedback::Comparison(Comparison {
                prompt_id: p.prompt_id.clone(),
                prompt: p.prompt.clone(),
                response_a: p.response_a.clone(),
                response_b: p.response_b.clone(),
                system_a: p.system_a.clone(),
                system_b: p.system_b.clone(),
                winner: match p.choice {
                    Choice::A => Winner::A,
                    Choice::B => Winner::B,
                    Choice::Tie | Choice::BothBad => Winner::Tie,
                },
                annotator: p.annotator.clone(),
                time: (p.created_at - start).max(0.0) as u64,
            })
        })
        .collect();
    for s in singles {
        out.push(Feedback::Thumbs(Thumbs {
            prompt_id: s.prompt_id.clone(),
            prompt: s.prompt.clone(),
            response: s.response.clone(),
            system: s.system.clone(),
            up: s.up,
            annotator: s.annotator.clone(),
        }));
        if let Some(score) = s.rating {
            out.push(Feedback::Rating(Rating {
                prompt_id: s.prompt_id.clone(),
                prompt: s.prompt.clone(),
                response: s.response.clone(),
                system: s.system.clone(),
                score,
                annotator: s.annotator.clone(),
            }));
        }
        out.push(Feedback::Checklist(Checklist {
            prompt_id: s.prompt_id.clone(),
            prompt: s.prompt.clone(),
            response: s.response.clone(),
            system: s.system.clone(),
            flaws: s.flaws.clone(),
            annotator: s.annotator.clone(),
        }));
    }
    out
}

/// Every record of the database as JSONL text.
pub fn records_jsonl(db: &LabelDb) -> Result<String> {
    to_jsonl_text(&to_records(&db.pairs()?, &db.singles()?))
}

/// The decided comparisons of the database as TRL JSONL text (ties dropped).
pub fn trl_jsonl(db: &LabelDb) -> Result<String> {
    let records = to_records(&db.pairs()?, &[]);
    to_jsonl_text(&to_preference_pairs(&comparisons(&records)))
}

/// The files [`export_dir`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Every record (comparisons, thumbs, ratings, checklists).
    pub records: PathBuf,
    /// The comparisons only (what `rm train --labels DIR` reads as `train.jsonl`).
    pub comparisons: PathBuf,
    /// TRL's prompt / chosen / rejected pairs.
    pub trl: PathBuf,
    pub n_records: usize,
    pub n_comparisons: usize,
    pub n_trl_pairs: usize,
}

/// Write `records.jsonl`, `train.jsonl` (comparisons) and `trl/train.jsonl`
/// into `out`, each atomically.
pub fn export_dir(db: &LabelDb, out: &Path) -> Result<ExportSummary> {
    let records = to_records(&db.pairs()?, &db.singles()?);
    let comps = comparisons(&records);
    let pairs = to_preference_pairs(&comps);
    std::fs::create_dir_all(out.join("trl"))
        .with_context(|| format!("creating {}", out.join("trl").display()))?;
    let summary = ExportSummary {
        records: out.join("records.jsonl"),
        comparisons: out.join("train.jsonl"),
        trl: out.join("trl").join("train.jsonl"),
        n_records: records.len(),
        n_comparisons: comps.len(),
        n_trl_pairs: pairs.len(),
    };
    write_feedback(&summary.records, &records)?;
    let comparison_records: Vec<Feedback> = comps.into_iter().map(Feedback::Comparison).collect();
    write_feedback(&summary.comparisons, &comparison_records)?;
    write_jsonl(&summary.trl, &pairs)?;
    Ok(summary)
}
