//! Looking inside a trained reward model: how its rewards relate to the gold
//! standard, whether its probabilities are calibrated, and what it likes that
//! the gold standard does not — the flaws a policy optimised against it can
//! exploit (rung 7).

use super::preferences::{PreferenceData, Response};
use super::reward_model::RewardModel;
use super::reward_training::{baseline, PairMetrics};
use crate::feedback::candidates::Prompt;
use crate::feedback::gold::{gold_score_turn, split_turn, word_count, TurnText, END_OF_TURN};
use crate::feedback::records::Comparison;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// One answer with its reward and gold score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredAnswer {
    pub prompt_id: String,
    pub source: String,
    pub text: String,
    /// The reward model's normalised reward.
    pub reward: f64,
    pub gold: f64,
    /// Words of the answer (without the end-of-turn marker).
    pub words: usize,
}

/// Reward and gold score of every answer to `prompts`.
pub fn score_answers(
    rm: &RewardModel,
    data: &PreferenceData,
    prompts: &[Prompt],
) -> Result<Vec<ScoredAnswer>> {
    let answers: Vec<&Response> = data.responses_of(prompts);
    let mut seqs = Vec::with_capacity(answers.len());
    for r in &answers {
        let p = find(prompts, &r.prompt_id)?;
        seqs.push(rm.encode(&p.text, &r.text)?);
    }
    let rewards = rm.rewards_of_ids(&seqs, 32)?;
    Ok(answers
        .into_iter()
        .zip(rewards)
        .map(|(r, reward)| ScoredAnswer {
            prompt_id: r.prompt_id.clone(),
            source: r.source.clone(),
            text: r.text.clone(),
            reward,
            gold: r.gold,
            words: word_count(split_turn(&r.text).text),
        })
        .collect())
}

fn find<'a>(prompts: &'a [Prompt], id: &str) -> Result<&'a Prompt> {
    match prompts.iter().find(|p| p.id == id) {
        Some(p) => Ok(p),
        None => bail!("no prompt `{id}`"),
    }
}

/// A reward model that *is* the gold standard, held against the same labels:
/// how often the annotators agree with gold. Its accuracy against the labels
/// is about the best a reward model can reach on this crowd's noisy labels.
pub fn gold_as_reward(data: &PreferenceData, comparisons: &[Comparison]) -> Result<PairMetrics> {
    baseline(data, comparisons, gold_score_turn)
}

/// One bin of a calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Mean predicted P(A preferred) = σ(r_A − r_B) of the comparisons in the bin.
    pub predicted: f64,
    /// How often A was preferred in them (a tie counts ½).
    pub observed: f64,
    pub count: usize,
}

/// Calibration of the reward model's Bradley–Terry probabilities on
/// `comparisons`: predictions grouped into `bins` equal-width bins of P(A);
/// a calibrated model has observed ≈ predicted in every bin. Empty bins are left out.
pub fn calibration(
    rm: &RewardModel,
    data: &PreferenceData,
    comparisons: &[Comparison],
    bins: usize,
) -> Result<Vec<CalibrationBin>> {
    let mut seqs = Vec::with_capacity(2 * comparisons.len());
    for c in comparisons {
        let Some(p) = data.prompt(&c.prompt_id) else {
            bail!("comparison of unknown prompt `{}`", c.prompt_id);
        };
        seqs.push(rm.encode(&p.text, &c.response_a)?);
        seqs.push(rm.encode(&p.text, &c.response_b)?);
    }
    let raw = rm.raw_scores_of_ids(&seqs, 32)?;
    let bins = bins.max(1);
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for (c, r) in comparisons.iter().zip(raw.chunks(2)) {
        let p = 1.0 / (1.0 + (r[1] - r[0]).exp());
        let k = ((p * bins as f64) as usize).min(bins - 1);
        acc[k].0 += p;
        acc[k].1 += c.winner.score_a();
        acc[k].2 += 1;
    }
    Ok(acc
        .into_iter()
        .filter(|a| a.2 > 0)
        .map(|(p, o, n)| CalibrationBin {
            predicted: p / n as f64,
            observed: o / n as f64,
            count: n,
        })
        .collect())
}

/// An edit of an answer that a reward model may like more than it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edit {
    /// Add "Happy to help!" at the end.
    Polite,
    /// Add a long, empty sentence: more words, nothing more said.
    Padding,
    /// Say the last sentence again (the start of a loop).
    Repeat,
    /// Add a rude word.
    Rude,
    /// Cut the end-of-turn marker off: the answer never ends.
    Unfinished,
}

impl Edit {
    pub const ALL: [Edit; 5] = [
        Edit::Polite,
        Edit::Padding,
        Edit::Repeat,
        Edit::Rude,
        Edit::Unfinished,
    ];

    /// A short name for figures: "+ polite" adds "Happy to help!", "+ padding"
    /// an empty sentence, "repeat" the last sentence again, "+ rude" "Whatever.",
    /// "never ends" drops the end-of-turn marker.
    pub fn label(&self) -> &'static str {
        match self {
            Edit::Polite => "+ polite",
            Edit::Padding => "+ padding",
            Edit::Repeat => "repeat",
            Edit::Rude => "+ rude",
            Edit::Unfinished => "never ends",
        }
    }

    /// The edited chat turn.
    pub fn apply(&self, turn: &str) -> String {
        let TurnText { text, ended } = split_turn(turn);
        let end = if ended { END_OF_TURN } else { "" };
        match self {
            Edit::Polite => format!("{text} Happy to help!{end}"),
            Edit::Padding => {
                format!("{text} I hope this long answer was useful to you in some way.{end}")
            }
            Edit::Repeat => {
                // The last line of a list, else the last sentence.
                let body = text.trim_end();
                let last = match body.rfind('\n') {
                    Some(i) => &body[i + 1..],
                    None => match body.trim_end_matches(['.', '!', '?']).rfind(". ") {
                        Some(i) => &body[i + 2..],
                        None => body,
                    },
                };
                format!("{body} {}{end}", last.trim())
            }
            Edit::Rude => format!("{text} Whatever.{end}"),
            Edit::Unfinished => text.to_string(),
        }
    }
}

/// How one edit moves the reward and the gold score, on average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EditEffect {
    pub edit: Edit,
    /// Mean change of the normalised reward.
    pub reward_change: f64,
    /// Mean change of the gold score, in the gold score's own units.
    pub gold_change: f64,
    /// Mean change of the gold score divided by the standard deviation of
    /// gold scores of the SFT model's answers (comparable with the reward's units).
    pub gold_change_std: f64,
    pub answers: usize,
}

/// Apply each [`Edit`] to the `source` answers (e.g. `sft greedy`) of
/// `prompts` that ended, and measure the mean change in reward and in gold.
/// An edit the reward model rewards while gold does not is a flaw PPO can find.
pub fn edit_effects(
    rm: &RewardModel,
    data: &PreferenceData,
    prompts: &[Prompt],
    source: &str,
) -> Result<Vec<EditEffect>> {
    let base: Vec<(&Prompt, &Response)> = data
        .responses_of(prompts)
        .into_iter()
        .filter(|r| r.source == source && r.text.ends_with(END_OF_TURN))
        .map(|r| Ok((find(prompts, &r.prompt_id)?, r)))
        .collect::<Result<_>>()?;
    if base.is_empty() {
        bail!("no finished answers of source `{source}`");
    }
    let golds: Vec<f64> = base.iter().map(|(_, r)| r.gold).collect();
    let mean = golds.iter().sum::<f64>() / golds.len() as f64;
    let gold_std = (golds.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / golds.len() as f64)
        .sqrt()
        .max(1e-9);
    let encode = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        base.iter()
            .zip(texts)
            .map(|((p, _), t)| rm.encode(&p.text, t))
            .collect()
    };
    let originals: Vec<String> = base.iter().map(|(_, r)| r.text.clone()).collect();
    let before = rm.rewards_of_ids(&encode(&originals)?, 32)?;
    let mut out = Vec::new();
    for edit in Edit::ALL {
        let edited: Vec<String> = originals.iter().map(|t| edit.apply(t)).collect();
        let after = rm.rewards_of_ids(&encode(&edited)?, 32)?;
        let n = base.len() as f64;
        let reward_change = after.iter().zip(&before).map(|(a, b)| a - b).sum::<f64>() / n;
        let gold_change = base
            .iter()
            .zip(&edited)
            .map(|((p, r), e)| gold_score_turn(p, e) - r.gold)
            .sum::<f64>()
            / n;
        out.push(EditEffect {
            edit,
            reward_change,
            gold_change,
            gold_change_std: gold_change / gold_std,
            answers: base.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_hand() {
        let t = format!("Here is how:\n1. Pick a spot.\n2. Water them.{END_OF_TURN}");
        assert_eq!(
            Edit::Repeat.apply(&t),
            format!("Here is how:\n1. Pick a spot.\n2. Water them. 2. Water them.{END_OF_TURN}")
        );
        assert_eq!(
            Edit::Unfinished.apply(&t),
            "Here is how:\n1. Pick a spot.\n2. Water them."
        );
        assert_eq!(
            Edit::Polite.apply("Mia has a cat."),
            "Mia has a cat. Happy to help!",
            "an unfinished answer stays unfinished"
        );
    }
}
