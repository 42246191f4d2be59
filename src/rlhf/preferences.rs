//! Preference data about the model's own answers (rung 6): prompts the SFT
//! model was taught to answer, its answers sampled at several temperatures
//! beside rung 5's written styles (so that quality really spreads), and a
//! simulated crowd — honest but noisy, a length-loving group, a few trolls —
//! judging pairs of them. `datasets/preferences/` is what [`generate`] writes
//! with the default [`PreferenceConfig`] from `datasets/models/tiny-sft`.
//!
//! An answer is stored as the chat turn the model wrote: its text followed by
//! `<|im_end|>` exactly when the model ended the turn itself, so an answer cut
//! off by the length limit looks unfinished to the reward model, the crowd and
//! the gold standard alike.

use crate::feedback::annotators::{honest_crowd, narrow_group, with_trolls, Annotator, Behaviour};
use crate::feedback::candidates::{candidates, chat_prompts, Candidate, Prompt};
use crate::feedback::gold::{gold_score_turn, END_OF_TURN};
use crate::feedback::records::{read_feedback_lines, write_feedback, Comparison, Feedback, Winner};
use crate::feedback::simulate::simulate_turn_comparisons;
use crate::io::jsonl::to_jsonl_text;
use crate::lm::tokenizer::ChatMessage;
use crate::lm::{LanguageModel, SamplingConfig};
use crate::seeds::{seed_for, Stream};
use crate::world::World;
use anyhow::{bail, Context, Result};
use gridworld::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::splits::Splits;

/// Who judges: [`honest_crowd`] of `size`, of whom the last `long_share` form a
/// narrow group that likes long answers ([`narrow_group`], names ending in
/// `-long`) and the first `troll_share` vote in bad faith (names ending in `-troll`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrowdConfig {
    /// Number of annotators.
    pub size: usize,
    /// Share of the crowd in the length-loving group.
    pub long_share: f64,
    /// That group's extra utility per unit of ln(1 + words).
    pub length_bias: f64,
    /// Share of the crowd voting in bad faith.
    pub troll_share: f64,
    /// How the trolls vote.
    pub troll: Behaviour,
    /// Seed of the crowd's tastes and habits.
    pub seed: u64,
}

impl Default for CrowdConfig {
    fn default() -> Self {
        Self {
            size: 20,
            long_share: 0.3,
            length_bias: 1.5,
            troll_share: 0.1,
            troll: Behaviour::Flip,
            seed: 3,
        }
    }
}

impl CrowdConfig {
    /// An honest crowd of the same size and seed: no length lovers, no trolls.
    pub fn honest(&self) -> Self {
        Self {
            long_share: 0.0,
            troll_share: 0.0,
            ..self.clone()
        }
    }

    /// The annotators.
    pub fn annotators(&self) -> Vec<Annotator> {
        let crowd = honest_crowd(self.size, self.seed);
        let long = (self.size as f64 * self.long_share).round() as usize;
        let split = self.size.saturating_sub(long);
        let (honest, lovers) = crowd.split_at(split);
        let mut lovers = narrow_group(lovers.to_vec(), self.length_bias);
        for a in &mut lovers {
            a.name = format!("{}-long", a.name);
        }
        let all = [honest.to_vec(), lovers].concat();
        with_trolls(all, self.troll_share, self.troll.clone())
    }
}

/// How to make the dataset. Every field is documented; the defaults wrote
/// `datasets/preferences/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreferenceConfig {
    /// Prompts in each split (disjoint sets of prompts).
    pub prompts: Splits<usize>,
    /// Sampling temperatures of the SFT model's answers, one answer each (0 = greedy).
    pub temperatures: Vec<f64>,
    /// Rung 5's written answer styles added per prompt, drawn at random.
    pub styles_per_prompt: usize,
    /// Longest answer the model may write, in tokens; longer ones are cut and unfinished.
    pub max_new_tokens: usize,
    /// Distinct pairs of answers judged per prompt, one annotator each.
    pub pairs_per_prompt: usize,
    /// The annotators.
    pub crowd: CrowdConfig,
    /// Seed of the prompts, the sampling and the judging.
    pub seed: u64,
}

impl Default for PreferenceConfig {
    fn default() -> Self {
        Self {
            prompts: Splits {
                train: 400,
                validation: 60,
                test: 60,
            },
            temperatures: vec![0.0, 0.7, 1.0, 1.3],
            styles_per_prompt: 2,
            max_new_tokens: 64,
            pairs_per_prompt: 6,
            crowd: CrowdConfig::default(),
            seed: 11,
        }
    }
}

/// One answer to one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub prompt_id: String,
    /// Who wrote it: `sft T=0.7`, `sft greedy`, or a rung-5 style (`style expert`).
    pub source: String,
    /// The chat turn: the answer, then `<|im_end|>` if the writer ended it.
    pub text: String,
    /// Its gold-standard score ([`gold_score_turn`]).
    pub gold: f64,
}

/// Prompts, answers and judgements, split by prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceData {
    pub prompts: Splits<Vec<Prompt>>,
    /// Every answer to every prompt (all splits).
    pub responses: Vec<Response>,
    pub comparisons: Splits<Vec<Comparison>>,
}

/// `datasets/preferences` of this repository.
pub fn preferences_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences")
}

/// `datasets/models/tiny-sft`: the SFT model the preference data was sampled
/// from (`rlhf-lab sft --steps 300`, from `datasets/models/tiny-pretrained`).
pub fn tiny_sft_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/models/tiny-sft")
}

/// `datasets/models/tiny-rm`: the reward model trained on this data
/// (`rlhf-lab rm train --objective robust`), PPO's reward model.
pub fn tiny_rm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/models/tiny-rm")
}

/// The chat turns `lm` writes for `prompts` with `sampling`: the decoded
/// answer, followed by `<|im_end|>` when the model ended its turn with it.
/// Prompts are answered in batches of 32 with the KV cache.
pub fn write_answers(
    lm: &LanguageModel,
    prompts: &[Prompt],
    sampling: &SamplingConfig,
) -> Result<Vec<String>> {
    let end = lm.tokenizer.token_id(END_OF_TURN);
    let texts: Vec<String> = prompts
        .iter()
        .map(|p| {
            lm.tokenizer
                .apply_chat_template(&[ChatMessage::user(&p.text)], true)
        })
        .collect();
    let mut out = Vec::with_capacity(prompts.len());
    for (k, chunk) in texts.chunks(32).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let cfg = SamplingConfig {
            seed: sampling.seed.wrapping_add(k as u64 * 1_000_003),
            ..sampling.clone()
        };
        for g in lm.generate_batch(&refs, &cfg)? {
            let ended = end.is_some() && g.stop_token == end;
            let mut turn = g.completion.trim().to_string();
            if ended {
                turn.push_str(END_OF_TURN);
            }
            out.push(turn);
        }
    }
    Ok(out)
}

/// The answers of the dataset: the SFT model's at each temperature, and
/// `styles_per_prompt` of rung 5's written styles (complete turns).
pub fn sample_responses(
    lm: &LanguageModel,
    prompts: &[Prompt],
    config: &PreferenceConfig,
) -> Result<Vec<Response>> {
    let mut by_prompt: Vec<Vec<Response>> = vec![Vec::new(); prompts.len()];
    for (k, &t) in config.temperatures.iter().enumerate() {
        let sampling = SamplingConfig {
            max_new_tokens: config.max_new_tokens,
            temperature: t,
            top_k: None,
            top_p: None,
            seed: seed_for(config.seed, Stream::PreferenceSample, k as u64),
            ..SamplingConfig::default()
        };
        let source = if t == 0.0 {
            "sft greedy".to_string()
        } else {
            format!("sft T={t}")
        };
        for (i, text) in write_answers(lm, prompts, &sampling)?
            .into_iter()
            .enumerate()
        {
            by_prompt[i].push(Response {
                prompt_id: prompts[i].id.clone(),
                source: source.clone(),
                gold: gold_score_turn(&prompts[i], &text),
                text,
            });
        }
    }
    let written = candidates(prompts, config.seed);
    let mut rng = Rng::new(config.seed ^ 0x57_11E5);
    for (i, p) in prompts.iter().enumerate() {
        let mut styles: Vec<&Candidate> = written.iter().filter(|c| c.prompt_id == p.id).collect();
        rng.shuffle(&mut styles);
        for c in styles.into_iter().take(config.styles_per_prompt) {
            let text = format!("{}{END_OF_TURN}", c.text);
            by_prompt[i].push(Response {
                prompt_id: p.id.clone(),
                source: format!("style {}", c.system),
                gold: gold_score_turn(p, &text),
                text,
            });
        }
    }
    Ok(by_prompt.into_iter().flatten().collect())
}

/// The responses as rung 5's candidates (source as the system), for the
/// simulated crowd.
pub fn as_candidates(responses: &[Response]) -> Vec<Candidate> {
    responses
        .iter()
        .map(|r| Candidate {
            prompt_id: r.prompt_id.clone(),
            system: r.source.clone(),
            text: r.text.clone(),
        })
        .collect()
}

impl PreferenceData {
    /// Every prompt of every split.
    pub fn all_prompts(&self) -> impl Iterator<Item = &Prompt> {
        self.prompts
            .train
            .iter()
            .chain(&self.prompts.validation)
            .chain(&self.prompts.test)
    }

    /// The prompt with this id.
    pub fn prompt(&self, id: &str) -> Option<&Prompt> {
        self.all_prompts().find(|p| p.id == id)
    }

    /// The responses to the prompts of one split.
    pub fn responses_of<'a>(&'a self, prompts: &'a [Prompt]) -> Vec<&'a Response> {
        let ids: std::collections::HashSet<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
        self.responses
            .iter()
            .filter(|r| ids.contains(r.prompt_id.as_str()))
            .collect()
    }

    /// The same answers judged by another crowd (for example without trolls),
    /// `pairs_per_prompt` pairs per prompt: the labels of [`generate`] with
    /// other annotators.
    pub fn judged_by(
        &self,
        crowd: &[Annotator],
        pairs_per_prompt: usize,
        seed: u64,
    ) -> Splits<Vec<Comparison>> {
        let cands = as_candidates(&self.responses);
        let judge = |prompts: &[Prompt], salt: u64| {
            simulate_turn_comparisons(prompts, &cands, crowd, pairs_per_prompt, seed ^ salt)
        };
        Splits {
            train: judge(&self.prompts.train, 1),
            validation: judge(&self.prompts.validation, 2),
            test: judge(&self.prompts.test, 3),
        }
    }
}

/// Make the dataset: prompts ([`chat_prompts`]), answers from `lm`
/// ([`sample_responses`]), judgements by `config.crowd`.
pub fn generate(lm: &LanguageModel, config: &PreferenceConfig) -> Result<PreferenceData> {
    let n = config.prompts.train + config.prompts.validation + config.prompts.test;
    if n == 0 {
        bail!("preference config field `prompts` asks for no prompts");
    }
    let all = chat_prompts(&World::generate(0), n, config.seed);
    let (train, rest) = all.split_at(config.prompts.train);
    let (validation, test) = rest.split_at(config.prompts.validation);
    let prompts = Splits {
        train: train.to_vec(),
        validation: validation.to_vec(),
        test: test.to_vec(),
    };
    let responses = sample_responses(lm, &all, config)?;
    let mut data = PreferenceData {
        prompts,
        responses,
        comparisons: Splits::default(),
    };
    data.comparisons = data.judged_by(
        &config.crowd.annotators(),
        config.pairs_per_prompt,
        config.seed,
    );
    Ok(data)
}

/// A prompt with the split it belongs to (one line of `prompts.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PromptLine {
    split: String,
    #[serde(flatten)]
    prompt: Prompt,
}

/// One pair in TRL's preference format, with the chat template applied to
/// the prompt and the answers as the turns the model wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrlPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// Comparisons → TRL pairs (ties dropped; the chosen answer first), prompts
/// rendered with ChatML as the model saw them.
pub fn to_trl_pairs(comparisons: &[Comparison]) -> Vec<TrlPair> {
    comparisons
        .iter()
        .filter_map(|c| {
            let (chosen, rejected) = c.chosen_rejected()?;
            Some(TrlPair {
                prompt: format!(
                    "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
                    c.prompt
                ),
                chosen: chosen.to_string(),
                rejected: rejected.to_string(),
            })
        })
        .collect()
}

/// Write the dataset into `dir`: `prompts.jsonl`, `responses.jsonl`,
/// `{train,validation,test}.jsonl` (comparison records, rung 5's format),
/// `trl/{train,validation,test}.jsonl` (TRL's prompt / chosen / rejected) and
/// the data card `README.md`; every file atomically.
pub fn write(dir: &Path, data: &PreferenceData, config: &PreferenceConfig) -> Result<()> {
    let w = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        crate::io::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    };
    let mut lines = Vec::new();
    for (split, prompts) in data.prompts.named() {
        lines.extend(prompts.iter().map(|p| PromptLine {
            split: split.into(),
            prompt: p.clone(),
        }));
    }
    w("prompts.jsonl", to_jsonl_text(&lines)?)?;
    w("responses.jsonl", to_jsonl_text(&data.responses)?)?;
    for (split, comps) in data.comparisons.named() {
        let records: Vec<Feedback> = comps.iter().cloned().map(Feedback::Comparison).collect();
        write_feedback(dir.join(format!("{split}.jsonl")), &records)?;
        w(
            &format!("trl/{split}.jsonl"),
            to_jsonl_text(&to_trl_pairs(comps))?,
        )?;
    }
    w("README.md", data_card(data, config))
}

/// Read a dataset written by [`write`]; errors name the file and line.
pub fn read(dir: &Path) -> Result<PreferenceData> {
    let lines: Vec<PromptLine> = crate::io::read_jsonl(&dir.join("prompts.jsonl"))?;
    let mut prompts = Splits::<Vec<Prompt>>::default();
    for (i, l) in lines.into_iter().enumerate() {
        match l.split.as_str() {
            "train" => prompts.train.push(l.prompt),
            "validation" => prompts.validation.push(l.prompt),
            "test" => prompts.test.push(l.prompt),
            other => bail!(
                "{}:{}: field `split` is `{other}` (train, validation or test)",
                dir.join("prompts.jsonl").display(),
                i + 1
            ),
        }
    }
    let responses: Vec<Response> = crate::io::read_jsonl(&dir.join("responses.jsonl"))?;
    let mut data = PreferenceData {
        prompts,
        responses,
        comparisons: Splits::default(),
    };
    data.comparisons = Splits {
        train: data.own_comparisons(&dir.join("train.jsonl"))?,
        validation: data.own_comparisons(&dir.join("validation.jsonl"))?,
        test: data.own_comparisons(&dir.join("test.jsonl"))?,
    };
    Ok(data)
}

/// The comparison records of one JSONL file; errors name the file and line.
pub fn read_comparisons(path: &Path) -> Result<Vec<Comparison>> {
    Ok(read_comparison_lines(path)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// [`read_comparisons`], each with its line in the file (for later checks).
pub fn read_comparison_lines(path: &Path) -> Result<Vec<(usize, Comparison)>> {
    read_feedback_lines(path)?
        .into_iter()
        .map(|(line, r)| match r {
            Feedback::Comparison(c) => Ok((line, c)),
            _ => bail!("{}:{line}: not a comparison", path.display()),
        })
        .collect()
}

impl PreferenceData {
    /// The same prompts and answers, learning from other labels: `train.jsonl`
    /// of `dir` (an AI annotator's, for RLAIF) replaces the training
    /// comparisons, and `validation.jsonl` the validation ones when `dir` has
    /// it. The test comparisons stay, so "accuracy against the annotators"
    /// still means the held-out crowd.
    pub fn with_labels_from(mut self, dir: &Path) -> Result<Self> {
        self.comparisons.train = self.own_comparisons(&dir.join("train.jsonl"))?;
        let validation = dir.join("validation.jsonl");
        if validation.exists() {
            self.comparisons.validation = self.own_comparisons(&validation)?;
        }
        Ok(self)
    }

    /// The comparisons of `path`, checked by [`Self::check_comparisons`].
    pub fn own_comparisons(&self, path: &Path) -> Result<Vec<Comparison>> {
        let comps = read_comparison_lines(path)?;
        self.check_comparisons(&path.display().to_string(), &comps)?;
        Ok(comps.into_iter().map(|(_, c)| c).collect())
    }

    /// Check comparisons (each with its line in `source`) against this
    /// dataset, the catalogue of what exists: each is about one of its
    /// prompts, both answers are answers to that prompt in `responses.jsonl`,
    /// and a system named (`system_a`, `system_b`) is one that wrote that
    /// answer. A made-up id would otherwise be trained on or ranked without a
    /// word. The error names the file, the line, the field and the unknown id.
    pub fn check_comparisons(&self, source: &str, comps: &[(usize, Comparison)]) -> Result<()> {
        use std::collections::{BTreeSet, HashMap};
        let mut sources: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
        for r in &self.responses {
            sources
                .entry((r.prompt_id.as_str(), r.text.as_str()))
                .or_default()
                .insert(r.source.as_str());
        }
        for (line, c) in comps {
            if self.prompt(&c.prompt_id).is_none() {
                bail!(
                    "{source}:{line}: field `prompt_id` is `{}`, not a prompt of this dataset",
                    c.prompt_id
                );
            }
            for (side, text, system) in [
                ("a", &c.response_a, &c.system_a),
                ("b", &c.response_b, &c.system_b),
            ] {
                let Some(writers) = sources.get(&(c.prompt_id.as_str(), text.as_str())) else {
                    bail!(
                        "{source}:{line}: field `response_{side}` is not an answer to prompt `{}` \
                         in this dataset's responses.jsonl",
                        c.prompt_id
                    );
                };
                if !system.is_empty() && !writers.contains(system.as_str()) {
                    bail!(
                        "{source}:{line}: field `system_{side}` is `{system}`, not a system that \
                         wrote this answer to prompt `{}` (written by: {})",
                        c.prompt_id,
                        writers.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                }
            }
        }
        Ok(())
    }
}

/// The data card.
fn data_card(data: &PreferenceData, config: &PreferenceConfig) -> String {
    let count = |xs: &[Comparison], w: Winner| xs.iter().filter(|c| c.winner == w).count();
    let mut table = String::from("| split | prompts | answers | comparisons | A wins | B wins | ties |\n|---|---|---|---|---|---|---|\n");
    for ((name, prompts), (_, comps)) in data
        .prompts
        .named()
        .into_iter()
        .zip(data.comparisons.named())
    {
        table.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            prompts.len(),
            data.responses_of(prompts).len(),
            comps.len(),
            count(comps, Winner::A),
            count(comps, Winner::B),
            count(comps, Winner::Tie),
        ));
    }
    let mut sources: Vec<(String, f64, usize)> = Vec::new();
    for r in &data.responses {
        match sources.iter_mut().find(|s| s.0 == r.source) {
            Some(s) => {
                s.1 += r.gold;
                s.2 += 1;
            }
            None => sources.push((r.source.clone(), r.gold, 1)),
        }
    }
    let mut by_source = String::from(
        "| source | answers | mean gold score | share unfinished |\n|---|---|---|---|\n",
    );
    for (s, total, n) in &sources {
        let unfinished = data
            .responses
            .iter()
            .filter(|r| &r.source == s && !r.text.ends_with(END_OF_TURN))
            .count();
        by_source.push_str(&format!(
            "| {s} | {n} | {:.2} | {:.0}% |\n",
            total / *n as f64,
            100.0 * unfinished as f64 / *n as f64
        ));
    }
    format!(
        "# Preferences about the SFT model's own answers (rung 6)\n\n\
Written by `rlhf-lab rm data` (`rlhf_lab::rlhf::preferences::generate`) from the SFT model in\n\
`../models/tiny-sft` with the default `PreferenceConfig` (seed {seed}). A test regenerates it and\n\
checks the files byte for byte.\n\n\
**Prompts** (`prompts.jsonl`): the kinds the SFT model was taught — questions about the world's facts,\n\
advice, harmful requests and short stories to summarise — in the demonstrations' wording, with the\n\
demonstrator's answer as `reference` and the facts the gold standard checks. Splits are by prompt.\n\n\
**Answers** (`responses.jsonl`): per prompt, the SFT model's answer at temperatures {temps:?}\n\
(0 = greedy; at most {max} new tokens) and {styles} of rung 5's written styles (expert, terse, verbose,\n\
rude, refuser, wrong, harmful), each with its gold score. An answer is the chat turn the model wrote:\n\
its text, then `<|im_end|>` exactly when the model ended the turn; an answer without it was cut off.\n\n\
{by_source}\n\
**Judgements** (`train.jsonl`, `validation.jsonl`, `test.jsonl`): rung 5's comparison records. Per prompt,\n\
{pairs} random pairs of different answers, each judged by one annotator of a crowd of {size}: honest but\n\
noisy annotators with their own taste, {long:.0}% of them a narrow group that likes long answers\n\
(names ending in `-long`, length bias {bias}), and {trolls:.0}% trolls who vote for the answer they like\n\
less (names ending in `-troll`). Annotators dislike gibberish, loops and unfinished answers as the\n\
gold standard does (`rlhf_lab::feedback::gold`).\n\n\
{table}\n\
**TRL format** (`trl/*.jsonl`): the same comparisons as `{{\"prompt\", \"chosen\", \"rejected\"}}` with the\n\
ChatML prompt the model saw; ties are dropped.\n\n\
Limits: a small templated world; one annotator per pair; the crowd's biases are simulated and known\n\
(that is the point: the reward model trained on it is an imperfect proxy on purpose).\n",
        seed = config.seed,
        temps = config.temperatures,
        max = config.max_new_tokens,
        styles = config.styles_per_prompt,
        pairs = config.pairs_per_prompt,
        size = config.crowd.size,
        long = 100.0 * config.crowd.long_share,
        bias = config.crowd.length_bias,
        trolls = 100.0 * config.crowd.troll_share,
    )
}
