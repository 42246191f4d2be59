//! `rlhf-lab lm …`: the corpus, pre-training and sampling of rung 3.

use super::progress::Progress;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::{Args, Subcommand};
use rlhf_lab::lm::pretrain;
use rlhf_lab::lm::pretrained::resolve_model_path;
use rlhf_lab::lm::{
    resume_language_model_as, LanguageModel, NextTokenLoss, ResumedRun, RunOptions, SamplingConfig,
    TrainConfig, Trainer,
};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Write the pre-training corpus (train.txt, valid.txt) from its generator.
    Corpus {
        #[arg(long, default_value = "datasets/corpus")]
        out: PathBuf,
        #[arg(long, default_value_t = pretrain::CORPUS_SEED)]
        seed: u64,
        #[arg(long, default_value_t = pretrain::CORPUS_DOCUMENTS)]
        documents: usize,
        /// Also (re)train tokenizer.json on the new train.txt.
        #[arg(long)]
        tokenizer: bool,
    },
    /// Pre-train a model from scratch on the corpus.
    Pretrain(PretrainArgs),
    /// Continue a prompt with a checkpoint folder, a Hugging Face folder, a GGUF
    /// file or a hub id (org/name).
    Sample(SampleArgs),
    /// Training and generation tokens/s of a fresh tiny model on this machine
    /// (the measurement `cargo bench --bench lm_speed` and the notebook kernel
    /// benchmark use).
    Speed(SpeedArgs),
}

/// Which training step `lm speed` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpeedShape {
    /// Pre-training windows of the corpus (and generation with / without the KV cache).
    Pretrain,
    /// Supervised fine-tuning on `datasets/sft` (the `sft` defaults).
    Sft,
    /// The reward model on `datasets/preferences` (the `rm train` defaults).
    Rm,
}

#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// The training step to time; `sft` and `rm` time training only.
    #[arg(long, value_enum, default_value = "pretrain")]
    shape: SpeedShape,
    /// Timed training updates (after one untimed warm-up update).
    #[arg(long, default_value_t = 20, value_parser = super::value_parsers::at_least_one)]
    steps: usize,
    /// Model size: width 128·scale, 4·scale layers.
    #[arg(long, default_value_t = 1, value_parser = super::value_parsers::at_least_one)]
    scale: usize,
    /// New tokens per generation measurement.
    #[arg(long, default_value_t = 128, value_parser = super::value_parsers::at_least_one)]
    new_tokens: usize,
    /// Print the report as one line of JSON.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    cuda: bool,
}

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Corpus folder (train.txt, valid.txt, tokenizer.json).
    #[arg(long, default_value = "datasets/corpus")]
    corpus: PathBuf,
    /// Where the checkpoint, metrics and samples go.
    #[arg(long, default_value = "runs/pretrain")]
    out: PathBuf,
    /// Model size: width 128·scale, 4·scale layers (1 = the CPU-sized tiny model).
    #[arg(long, default_value_t = 1, value_parser = super::value_parsers::at_least_one)]
    scale: usize,
    /// Total number of updates (with --resume: including the checkpoint's).
    #[arg(long, default_value_t = 600, value_parser = super::value_parsers::at_least_one)]
    steps: usize,
    #[arg(long, default_value_t = 16, value_parser = super::value_parsers::at_least_one)]
    batch_size: usize,
    #[arg(long, default_value_t = 64, value_parser = super::value_parsers::at_least_one)]
    seq_len: usize,
    /// Peak learning rate [default: 3e-3]. With --resume: the checkpoint's
    /// unless given; a different value replaces it from the next update on,
    /// and a note on stderr says so.
    #[arg(long = "lr", visible_alias = "learning-rate")]
    learning_rate: Option<f64>,
    #[arg(long, default_value_t = 100, value_parser = super::value_parsers::at_least_one)]
    eval_every: usize,
    /// Seed of the initialisation and the batches (with --resume: must be the checkpoint's).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from the checkpoint in --out (or `checkpoint.old` beside it,
    /// left by an interrupted checkpoint write), up to --steps updates in total.
    #[arg(long)]
    resume: bool,
    /// Run on the first CUDA GPU (needs a build with --features cuda).
    #[arg(long)]
    cuda: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Checkpoint folder, Hugging Face folder, .gguf file, or hub id.
    #[arg(long)]
    model: String,
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long, default_value_t = 0.95)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of samples.
    #[arg(long, default_value_t = 1)]
    n: usize,
    #[arg(long)]
    cuda: bool,
}

pub fn device(cuda: bool) -> Result<Device> {
    if cuda {
        Device::new_cuda(0)
            .context("opening CUDA device 0 (was the binary built with --features cuda?)")
    } else {
        Ok(Device::Cpu)
    }
}

pub fn run(cmd: LmCommand) -> Result<()> {
    match cmd {
        LmCommand::Corpus {
            out,
            seed,
            documents,
            tokenizer,
        } => {
            let docs = pretrain::write_corpus(&out, seed, documents)?;
            println!(
                "wrote {} training and {} held-out documents to {}",
                docs.train.len(),
                docs.valid.len(),
                out.display()
            );
            if tokenizer {
                let _ = std::fs::remove_file(out.join("tokenizer.json"));
                let tok = pretrain::corpus_tokenizer(&out)?;
                println!("trained tokenizer.json: {} tokens", tok.vocab_size());
            }
            Ok(())
        }
        LmCommand::Pretrain(a) => pretrain_cmd(a),
        LmCommand::Sample(a) => sample_cmd(a),
        LmCommand::Speed(a) => speed_cmd(a),
    }
}

/// Resume a pre-training or SFT run from `ckpt` (see
/// [`rlhf_lab::lm::Trainer::resume_note`]) with a command's `--steps`,
/// `--seed` and `--lr`: the steps become the new total, the seed must be the
/// checkpoint's, a different learning rate replaces the checkpoint's with a
/// note on stderr.
pub fn resume_lm(
    ckpt: &std::path::Path,
    device: &Device,
    dtype: DType,
    steps: usize,
    seed: u64,
    learning_rate: Option<f64>,
) -> Result<ResumedRun> {
    let mut run = resume_language_model_as(ckpt, device, dtype)?;
    let t = &mut run.trainer;
    t.check_resume_seed(seed)?;
    t.set_total_steps(steps)?;
    if let Some(note) = learning_rate
        .map(|lr| t.change_learning_rate(lr))
        .transpose()?
        .flatten()
    {
        eprintln!("{note}");
    }
    println!("{}", t.resume_note(ckpt));
    Ok(run)
}

fn speed_cmd(a: SpeedArgs) -> Result<()> {
    let device = device(a.cuda)?;
    let training = match a.shape {
        SpeedShape::Pretrain => None,
        SpeedShape::Sft => Some(rlhf_lab::lm::speed::measure_sft_training(a.steps, &device)?),
        SpeedShape::Rm => Some(rlhf_lab::rlhf::speed::measure_reward_training(
            a.steps, &device,
        )?),
    };
    if let Some(t) = training {
        if a.json {
            println!("{}", serde_json::to_string(&t)?);
        } else {
            let name = match a.shape {
                SpeedShape::Sft => "SFT",
                _ => "reward-model",
            };
            println!(
                "{name} training, {} threads: {t}",
                candle_core::utils::get_num_threads()
            );
        }
        return Ok(());
    }
    let config = rlhf_lab::lm::speed::SpeedConfig {
        steps: a.steps,
        scale: a.scale,
        new_tokens: a.new_tokens,
        ..Default::default()
    };
    let report = rlhf_lab::lm::speed::measure_speed(&config, &device)?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}

fn pretrain_cmd(a: PretrainArgs) -> Result<()> {
    let device = device(a.cuda)?;
    rlhf_lab::io::check_output_dir_writable(&a.out)?;
    let ckpt = a.out.join("checkpoint");
    let setup = pretrain::setup(&a.corpus, a.scale, a.batch_size, a.seq_len, a.seed, &device)?;
    let (lm, mut trainer) = if a.resume {
        let run = resume_lm(&ckpt, &device, DType::F32, a.steps, a.seed, a.learning_rate)?;
        (run.model, run.trainer)
    } else {
        let config = TrainConfig {
            steps: a.steps,
            learning_rate: a.learning_rate.unwrap_or(3e-3),
            eval_every: a.eval_every,
            seed: a.seed,
            ..TrainConfig::default()
        };
        let t = Trainer::new(NextTokenLoss::new(&setup.model), config)?;
        (setup.model, t)
    };
    println!(
        "{lm:?}; {} training tokens, {} held-out",
        setup.data.train.len(),
        setup.data.valid.len()
    );
    let options = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        sample_prompts: vec!["Mia has a".into(), "One day, it was sunny. Leo".into()],
        sampling: Some(SamplingConfig {
            max_new_tokens: 40,
            temperature: 0.8,
            seed: a.seed,
            ..Default::default()
        }),
    };
    let bar = Progress::new("pretrain", a.steps);
    trainer.train_with(&setup.data, &options, |r, samples| {
        let eval = r
            .eval_loss()
            .map(|l| format!(" eval {l:.3} ppl {:.1}", l.exp()))
            .unwrap_or_default();
        bar.update(
            r.step,
            &format!("loss {:.3}{eval} {:.0} tok/s", r.loss, r.tokens_per_sec),
        );
        for s in samples {
            bar.println(&format!("  [{}] {}{}", s.step, s.prompt, s.completion));
        }
    })?;
    bar.finish();
    trainer.write_metrics(&a.out)?;
    rlhf_lab::io::write_json_atomic(&a.out.join("samples.json"), &trainer.samples)?;
    let written = trainer.last_checkpoint.as_deref().unwrap_or(&ckpt);
    println!(
        "checkpoint: {} (load with `rlhf-lab lm sample --model {}`); metrics: {}",
        written.display(),
        written.display(),
        a.out.join("metrics.csv").display()
    );
    Ok(())
}

fn sample_cmd(a: SampleArgs) -> Result<()> {
    let device = device(a.cuda)?;
    let path = resolve_model_path(&a.model)?;
    let lm = LanguageModel::load(&path, &device, DType::F32)?;
    let prompt = if a.chat {
        lm.tokenizer
            .apply_chat_template(&[rlhf_lab::lm::ChatMessage::user(&a.prompt)], true)
    } else {
        a.prompt.clone()
    };
    for i in 0..a.n {
        let cfg = SamplingConfig {
            max_new_tokens: a.max_new_tokens,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: Some(a.top_p),
            seed: a.seed + i as u64,
            ..Default::default()
        };
        let g = lm.generate(&prompt, &cfg)?;
        if a.chat {
            println!("{}", g.completion.trim());
        } else {
            println!("{}{}", a.prompt, g.completion);
        }
    }
    Ok(())
}
