//! `rlhf-lab rm …`: rung 6, the reward model — its preference data, training
//! and scoring.

use super::lm_cmd::device;
use super::lora_args::LoraArgs;
use super::progress::Progress;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Args, Subcommand};
use rlhf_lab::io::checkpoint_to_resume;
use rlhf_lab::lm::pretrained::resolve_model_path;
use rlhf_lab::lm::{LanguageModel, RunOptions, Trainer};
use rlhf_lab::rlhf::losses::PairwiseOptions;
use rlhf_lab::rlhf::preferences::{self, PreferenceConfig};
use rlhf_lab::rlhf::reward_training::{
    evaluate_reward_model, length_baseline, normalize_on_answers, train_reward_model_with,
    RewardData, RewardObjective, RewardObjectiveKind, RewardTrainConfig,
};
use rlhf_lab::rlhf::RewardModel;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum RmCommand {
    /// Write the preference dataset: the SFT model's answers judged by a simulated crowd.
    Data(DataArgs),
    /// Train a reward model on preference data.
    Train(TrainArgs),
    /// Score answers with a reward model.
    Score(ScoreArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The SFT model whose answers are judged.
    #[arg(long, default_value = "datasets/models/tiny-sft")]
    model: String,
    #[arg(long, default_value = "datasets/preferences")]
    out: PathBuf,
    /// A JSON file with `PreferenceConfig` fields (unknown fields are errors).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The model the reward model starts from (the SFT model).
    #[arg(long, default_value = "datasets/models/tiny-sft")]
    base: String,
    /// Preference data folder (as `rm data` writes it).
    #[arg(long, default_value = "datasets/preferences")]
    data: PathBuf,
    /// Learn from other labels of the same pairs: `train.jsonl` (and `validation.jsonl`, if
    /// there) of this folder (an AI annotator's, from `rlhf-lab feedback judge`) replace the data's.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// bt (pairwise Bradley–Terry), elo (regression onto aggregated scores) or
    /// robust (pairwise, annotators weighted by reliability).
    #[arg(long, default_value = "bt")]
    objective: RewardObjectiveKind,
    /// Output folder: `model/`, `checkpoint/`, metrics, `summary.json`.
    #[arg(long, default_value = "runs/rm")]
    out: PathBuf,
    /// Updates (0: one pass over the training comparisons).
    #[arg(long)]
    steps: Option<usize>,
    /// Comparisons per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate. With --resume: the checkpoint's unless given; a
    /// different value replaces it from the next update on, and a note on
    /// stderr says so.
    #[arg(long = "lr", visible_alias = "learning-rate")]
    learning_rate: Option<f64>,
    #[arg(long)]
    eval_every: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// A JSON file with `RewardTrainConfig` fields; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from the checkpoint in --out (or `checkpoint.old` beside it,
    /// left by an interrupted checkpoint write); --steps raises the total.
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    cuda: bool,
    /// With --lora the trained reward model is saved merged (a full model).
    #[command(flatten)]
    lora: LoraArgs,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A reward-model folder (as `rm train` writes in `model/`).
    #[arg(long)]
    model: PathBuf,
    /// The user's message.
    #[arg(long, required_unless_present = "data")]
    prompt: Option<String>,
    /// The answer to score (end it with <|im_end|> if the model ended its turn).
    #[arg(long, requires = "prompt")]
    response: Option<String>,
    /// A JSONL file of comparisons (records format, e.g. datasets/preferences/test.jsonl):
    /// print accuracy against its labels and against the gold standard.
    #[arg(long, conflicts_with = "prompt")]
    data: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: RmCommand) -> Result<()> {
    match cmd {
        RmCommand::Data(a) => data_cmd(a),
        RmCommand::Train(a) => train_cmd(a),
        RmCommand::Score(a) => score_cmd(a),
    }
}

/// A JSON config over the type's defaults (nested objects field by field).
pub(super) fn read_json_config<T>(path: &Path) -> Result<T>
where
    T: Default + serde::Serialize + serde::de::DeserializeOwned,
{
    rlhf_lab::io::read_config(path)
}

fn data_cmd(a: DataArgs) -> Result<()> {
    let config: PreferenceConfig = match &a.config {
        Some(p) => read_json_config(p)?,
        None => PreferenceConfig::default(),
    };
    let lm = LanguageModel::load(
        &resolve_model_path(&a.model)?,
        &candle_core::Device::Cpu,
        DType::F32,
    )?;
    let started = std::time::Instant::now();
    let data = preferences::generate(&lm, &config)?;
    preferences::write(&a.out, &data, &config)?;
    println!(
        "wrote {} prompts, {} answers, {} / {} / {} comparisons to {} in {:.0} s",
        data.all_prompts().count(),
        data.responses.len(),
        data.comparisons.train.len(),
        data.comparisons.validation.len(),
        data.comparisons.test.len(),
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    let device = device(a.cuda)?;
    let mut config: RewardTrainConfig = match &a.config {
        Some(p) => read_json_config(p)?,
        None => RewardTrainConfig::default(),
    };
    config.data.objective = a.objective;
    if let Some(s) = a.steps {
        config.train.steps = s;
    }
    if let Some(b) = a.batch_size {
        config.data.batch_size = b;
    }
    if let Some(lr) = a.learning_rate {
        config.train.learning_rate = lr;
    }
    if let Some(e) = a.eval_every {
        config.train.eval_every = e;
    }
    if let Some(s) = a.seed {
        config.data.seed = s;
        config.head_seed = s;
    }
    if let Some(lora) = a.lora.config()? {
        config.lora = Some(lora);
    }
    config.data.validate()?;
    config.train.validate()?;
    if a.resume && config.lora.is_some() {
        bail!("--resume with --lora: a LoRA reward model's checkpoints are saved merged, so its adapters cannot be resumed; start the run again");
    }
    let mut data = preferences::read(&a.data)?;
    if let Some(dir) = &a.labels {
        data = data.with_labels_from(dir)?;
    }
    let labels = data.comparisons.clone();
    rlhf_lab::io::check_output_dir_writable(&a.out)?;
    let ckpt = a.out.join("checkpoint");
    let options = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        ..Default::default()
    };
    let (rm, trainer, seconds) = if a.resume {
        let dir = checkpoint_to_resume(&ckpt)?;
        let rm = RewardModel::load(&dir, &device)?;
        let source = RewardData::new(
            &rm,
            &data,
            &labels.train,
            &labels.validation,
            config.data.clone(),
        )?;
        let objective = RewardObjective::new(
            &rm,
            PairwiseOptions {
                centering: config.data.centering,
            },
        );
        let mut trainer = Trainer::resume(objective, &dir)?;
        if let Some(steps) = a.steps.filter(|&s| s > 0) {
            trainer.set_total_steps(steps)?;
        }
        if let Some(note) = a
            .learning_rate
            .map(|lr| trainer.change_learning_rate(lr))
            .transpose()?
            .flatten()
        {
            eprintln!("{note}");
        }
        println!("{}", trainer.resume_note(&ckpt));
        let bar = Progress::new("rm", trainer.config.steps);
        let started = std::time::Instant::now();
        trainer.train_with(&source, &options, |r, _| progress(&bar, r))?;
        bar.finish();
        let mut rm = trainer.objective.rm.clone();
        normalize_on_answers(&mut rm, &data, &config.normalize_on)?;
        trainer.objective.rm = rm.clone();
        (rm, trainer, started.elapsed().as_secs_f64())
    } else {
        let base = LanguageModel::load(&resolve_model_path(&a.base)?, &device, DType::F32)?;
        println!(
            "{base:?}; objective {:?}; {} / {} / {} comparisons",
            a.objective,
            labels.train.len(),
            labels.validation.len(),
            labels.test.len()
        );
        let steps = if config.train.steps == 0 {
            1
        } else {
            config.train.steps
        };
        let bar = Progress::new("rm", steps);
        let run = train_reward_model_with(&base, &data, &labels, &config, &options, |r, _| {
            progress(&bar, r)
        })?;
        bar.finish();
        let rm = run.model().clone();
        (rm, run.trainer, run.seconds)
    };
    let test = evaluate_reward_model(&rm, &data, &labels.test)?;
    let baseline = length_baseline(&data, &labels.test)?;
    rm.save(&a.out.join("model"))?;
    trainer.write_metrics(&a.out)?;
    let updates: Vec<_> = trainer.history.iter().filter(|r| r.step > 0).collect();
    let tokens_per_sec =
        updates.iter().map(|r| r.tokens_per_sec).sum::<f64>() / updates.len().max(1) as f64;
    config.train = trainer.config.clone();
    let summary = serde_json::json!({
        "objective": a.objective,
        "updates": trainer.step,
        "seconds": seconds,
        "tokens_per_sec": tokens_per_sec,
        "test": test,
        "length_baseline": baseline,
        "normalization": rm.normalization,
        "config": config,
    });
    rlhf_lab::io::write_json_atomic(&a.out.join("summary.json"), &summary)?;
    println!(
        "test: accuracy {:.3} against the annotators, {:.3} against gold (length baseline {:.3} / {:.3}); Spearman vs gold {:.3}",
        test.accuracy, test.accuracy_vs_gold, baseline.accuracy, baseline.accuracy_vs_gold, test.spearman_vs_gold
    );
    println!(
        "{} updates in {seconds:.0} s ({tokens_per_sec:.0} tokens/s); reward model: {}",
        trainer.step,
        a.out.join("model").display()
    );
    Ok(())
}

fn progress(bar: &Progress, r: &rlhf_lab::lm::TrainRecord) {
    let eval = match (r.eval_metric("accuracy"), r.eval_metric("accuracy_vs_gold")) {
        (Some(acc), Some(gold)) => format!(" held-out acc {acc:.3} vs gold {gold:.3}"),
        _ => String::new(),
    };
    bar.update(
        r.step,
        &format!("loss {:.3}{eval} {:.0} tok/s", r.loss, r.tokens_per_sec),
    );
}

fn score_cmd(a: ScoreArgs) -> Result<()> {
    let rm = RewardModel::load(&a.model, &candle_core::Device::Cpu)?;
    if let Some(path) = &a.data {
        // The gold standard needs the prompts' facts: they come from the
        // preference dataset beside the file.
        let dir = path.parent().unwrap_or(Path::new("."));
        let data = preferences::read(dir).with_context(|| {
            format!(
                "{} has no prompts.jsonl / responses.jsonl beside it (scoring needs the prompts)",
                path.display()
            )
        })?;
        // Checked against the dataset's prompts and answers, with file and line.
        let comps = data.own_comparisons(path)?;
        let m = evaluate_reward_model(&rm, &data, &comps)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&m)?);
        } else {
            println!(
                "{} comparisons: accuracy {:.3} against the labels, {:.3} against gold; Spearman vs gold {:.3}; BT loss {:.3}",
                m.comparisons, m.accuracy, m.accuracy_vs_gold, m.spearman_vs_gold, m.loss
            );
        }
        return Ok(());
    }
    let (Some(prompt), Some(response)) = (&a.prompt, &a.response) else {
        bail!("give --prompt and --response, or --data");
    };
    let reward = rm.reward(prompt, response)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"prompt": prompt, "response": response, "reward": reward})
        );
    } else {
        println!("{reward:.4}");
    }
    Ok(())
}
