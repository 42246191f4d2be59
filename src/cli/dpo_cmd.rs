//! `rlhf-lab dpo`: rung 8, the policy trained directly on the comparisons.

use super::lm_cmd::device;
use super::lora_args::LoraArgs;
use super::progress::Progress;
use super::rm_cmd::read_json_config;
use anyhow::Result;
use candle_core::DType;
use clap::Args;
use rlhf_lab::lm::pretrained::resolve_model_path;
use rlhf_lab::lm::{LanguageModel, RunOptions, TrainRecord};
use rlhf_lab::rlhf::dpo::{train_dpo_with, DpoConfig, DpoData, DpoRecord, PairWeighting};
use rlhf_lab::rlhf::losses::DpoLossKind;
use rlhf_lab::rlhf::online_dpo::{OnlineDpoConfig, OnlineJudge};
use rlhf_lab::rlhf::plots::{dpo_curves, DpoCurve};
use rlhf_lab::rlhf::ppo::{answer_and_score, AnswerSettings, ScoringModels};
use rlhf_lab::rlhf::{preferences, RewardModel};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DpoArgs {
    /// The policy to start from (the SFT model); also the frozen reference.
    #[arg(long, default_value = "datasets/models/tiny-sft")]
    policy: String,
    /// Preference data: DPO trains on its training comparisons, evaluates on the
    /// validation comparisons and answers its test prompts.
    #[arg(long, default_value = "datasets/preferences")]
    data: PathBuf,
    /// Learn from other labels of the same pairs: `train.jsonl` (and `validation.jsonl`, if
    /// there) of this folder (an AI annotator's, from `rlhf-lab feedback judge`) replace the data's.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A reward model, only to report the proxy score of held-out answers
    /// beside PPO's (DPO itself never reads it).
    #[arg(long, default_value = "datasets/models/tiny-rm")]
    reward_model: PathBuf,
    /// β, the strength of the implicit KL constraint.
    #[arg(long)]
    beta: Option<f64>,
    /// `sigmoid` (DPO) or `ipo`.
    #[arg(long)]
    loss: Option<DpoLossKind>,
    /// Weight each comparison by its annotator's reliability (rung 5's robust fit).
    #[arg(long)]
    robust: bool,
    /// Train only on comparisons between two of the SFT model's own answers.
    #[arg(long)]
    on_policy_only: bool,
    /// Online DPO: this many rounds of sampling the policy's own answers to the
    /// training prompts, labelling the best against the worst, and one pass of
    /// DPO over those pairs (instead of the data's comparisons).
    #[arg(long)]
    online_rounds: Option<usize>,
    /// Online DPO: answers per prompt each round (default 4).
    #[arg(long)]
    online_answers: Option<usize>,
    /// Online DPO: who labels the answers, `reward-model` (the --reward-model; default) or `gold`.
    #[arg(long)]
    online_judge: Option<OnlineJudge>,
    /// Updates (default: one pass over the training comparisons; online: one pass per round).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long = "lr", visible_alias = "learning-rate")]
    learning_rate: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// A JSON file with `DpoConfig` fields (unknown or invalid fields are errors naming the field).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder: checkpoint/, summary.json, history.json, metrics.csv/.jsonl,
    /// samples.json, curves.svg/.png, the final policy in policy/.
    #[arg(long, default_value = "runs/dpo")]
    out: PathBuf,
    /// Pre-training corpus whose held-out text measures the alignment tax.
    #[arg(long, default_value = "datasets/corpus")]
    corpus: PathBuf,
    #[arg(long)]
    cuda: bool,
    #[command(flatten)]
    lora: LoraArgs,
}

pub fn run(a: DpoArgs) -> Result<()> {
    let device = device(a.cuda)?;
    let mut config: DpoConfig = match &a.config {
        Some(p) => read_json_config(p)?,
        None => DpoConfig::default(),
    };
    if let Some(b) = a.beta {
        config.beta = b;
    }
    if let Some(l) = a.loss {
        config.loss = l;
    }
    if a.robust {
        config.weighting = PairWeighting::Robust;
    }
    if a.on_policy_only {
        config.on_policy_only = true;
    }
    if a.online_rounds.is_some() || a.online_answers.is_some() || a.online_judge.is_some() {
        let online = config.online.get_or_insert_with(OnlineDpoConfig::default);
        if let Some(r) = a.online_rounds {
            online.rounds = r;
        }
        if let Some(k) = a.online_answers {
            online.answers_per_prompt = k;
        }
        if let Some(j) = a.online_judge {
            online.judge = j;
        }
    }
    if let Some(s) = a.steps {
        config.train.steps = s;
    }
    if let Some(lr) = a.learning_rate {
        config.train.learning_rate = lr;
    }
    if let Some(s) = a.seed {
        config.seed = s;
        config.train.seed = s;
    }
    if let Some(lora) = a.lora.config()? {
        config.lora = Some(lora);
    }
    config.validate()?;
    rlhf_lab::io::check_output_dir_writable(&a.out)?;
    let mut data = preferences::read(&a.data)?;
    if let Some(dir) = &a.labels {
        data = data.with_labels_from(dir)?;
    }
    let sft = LanguageModel::load(&resolve_model_path(&a.policy)?, &device, DType::F32)?;
    let rm = RewardModel::load(&a.reward_model, &device)?;
    let options = RunOptions {
        checkpoint_dir: Some(a.out.join("checkpoint")),
        ..Default::default()
    };
    let (source, steps) = match &config.online {
        None => {
            let source = DpoData::new(
                &sft,
                &data,
                &data.comparisons.train,
                &data.comparisons.validation,
                &config,
            )?;
            println!(
                "{} training pairs; reference log-probs of {} answers in {:.1} s (once)",
                source.train.len(),
                source.reference_answers,
                source.reference_seconds
            );
            let steps = match config.train.steps {
                0 => source.steps_per_epoch(),
                n => n,
            };
            (source, steps)
        }
        Some(online) => {
            let source = DpoData::held_out(&sft, &data, &data.comparisons.validation, &config)?;
            let per_round = match config.train.steps {
                0 => data.prompts.train.len().div_ceil(config.batch_size),
                n => n.div_ceil(online.rounds),
            };
            println!(
                "online DPO: {} rounds of {} answers to each of {} training prompts, labelled by the {}; {} updates per round",
                online.rounds,
                online.answers_per_prompt,
                data.prompts.train.len(),
                match online.judge {
                    OnlineJudge::RewardModel => "reward model",
                    OnlineJudge::Gold => "gold standard",
                },
                per_round
            );
            (source, per_round * online.rounds)
        }
    };
    let bar = Progress::new("dpo", steps);
    let run = train_dpo_with(
        &sft,
        &rm,
        &data,
        &source,
        &config,
        &a.corpus,
        &options,
        |r, _| progress(&bar, r),
    )?;
    bar.finish();
    let s = &run.summary;
    run.policy().save(&a.out.join("policy"))?;
    let record = DpoRecord::of_run(&run);
    record.write(&a.out)?;
    // Answers of the trained policy to the first held-out prompts, to read.
    let models = ScoringModels {
        policy: run.policy(),
        reference: &sft,
        reward: &rm,
    };
    let shown = &data.prompts.test[..data.prompts.test.len().min(12)];
    let settings = AnswerSettings {
        temperature: config.temperature,
        max_new_tokens: config.max_new_tokens,
        missing_eos_penalty: config.missing_eos_penalty,
        seed: config.seed ^ 0x5A,
    };
    let samples = answer_and_score(models, shown, &settings)?;
    rlhf_lab::io::write_json_atomic(&a.out.join("samples.json"), &samples)?;
    let figure = dpo_curves(&[DpoCurve {
        name: format!("β = {}", config.beta),
        history: record.history.clone(),
    }])?;
    figure.save_svg(a.out.join("curves.svg"))?;
    figure.save_png(a.out.join("curves.png"))?;
    println!(
        "held-out prompts: gold {:.3} → {:.3}, proxy {:.3} → {:.3}, KL {:.3} → {:.3} ({} answers)",
        s.before.gold_score,
        s.after.gold_score,
        s.before.proxy_score,
        s.after.proxy_score,
        s.before.kl,
        s.after.kl,
        s.after.answers
    );
    for r in &s.online_rounds {
        println!(
            "round {}: {} pairs of {} answers; judge chosen {:.2} vs rejected {:.2} (mean {:.2}); gold chosen {:.2} vs rejected {:.2} (mean {:.2}); {:.0} s sampling + {:.0} s reference",
            r.round, r.pairs, r.answers, r.judge_chosen, r.judge_rejected, r.judge_mean,
            r.gold_chosen, r.gold_rejected, r.gold_mean, r.sample_seconds, r.reference_seconds
        );
    }
    println!(
        "held-out corpus loss (alignment tax): {:.3} before, {:.3} after",
        s.held_out_corpus_loss.before, s.held_out_corpus_loss.after
    );
    println!(
        "{} updates in {:.0} s ({:.0} tokens/s); policy: {}",
        s.steps,
        s.seconds,
        s.tokens_per_sec,
        a.out.join("policy").display()
    );
    Ok(())
}

fn progress(bar: &Progress, r: &TrainRecord) {
    let eval = match (r.eval_metric("held_out/gold"), r.eval_metric("held_out/kl")) {
        (Some(g), Some(kl)) => format!(" | held-out gold {g:.2} KL {kl:.2}"),
        _ => String::new(),
    };
    let train = match (
        r.train.get("rewards/margins"),
        r.train.get("rewards/accuracies"),
    ) {
        (Some(m), Some(a)) => format!(" margin {m:.2} acc {a:.2}"),
        _ => String::new(),
    };
    bar.update(r.step, &format!("loss {:.3}{train}{eval}", r.loss));
}
