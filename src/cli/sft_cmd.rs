//! `rlhf-lab sft …`: supervised fine-tuning on demonstrations (rung 4).

use super::lm_cmd::{device, resume_lm};
use super::lora_args::LoraArgs;
use super::progress::Progress;
use anyhow::Result;
use candle_core::DType;
use clap::Args;
use rlhf_lab::lm::behaviour::{behaviour_table, evaluate_behaviour};
use rlhf_lab::lm::pretrained::resolve_model_path;
use rlhf_lab::lm::sft::SftDataset;
use rlhf_lab::lm::sft_data;
use rlhf_lab::lm::{LanguageModel, NextTokenLoss, RunOptions, TrainConfig, Trainer};
use rlhf_lab::splits::Splits;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SftArgs {
    /// Checkpoint folder, Hugging Face folder, .gguf file, or hub id.
    #[arg(long)]
    model: String,
    /// Folder with train.jsonl, validation.jsonl, test.jsonl.
    #[arg(long, default_value = "datasets/sft")]
    data: PathBuf,
    /// Output folder: the fine-tuned model in `model/` (with --lora: the adapters,
    /// in PEFT's format, naming --model as their base), `checkpoint/` (every
    /// --eval-every updates, atomically), metrics, the before/after table.
    #[arg(long, default_value = "runs/sft")]
    out: PathBuf,
    /// Total number of updates (with --resume: including the checkpoint's).
    #[arg(long, default_value_t = 300, value_parser = super::value_parsers::at_least_one)]
    steps: usize,
    #[arg(long, default_value_t = 16, value_parser = super::value_parsers::at_least_one)]
    batch_size: usize,
    /// Longer conversations are truncated (and counted).
    #[arg(long, default_value_t = 256, value_parser = super::value_parsers::at_least_one)]
    max_len: usize,
    /// Peak learning rate [default: 1e-3]. With --resume: the checkpoint's
    /// unless given; a different value replaces it from the next update on,
    /// and a note on stderr says so.
    #[arg(long = "lr", visible_alias = "learning-rate")]
    learning_rate: Option<f64>,
    /// Evaluate on the validation split and checkpoint every this many updates.
    #[arg(long, default_value_t = 50, value_parser = super::value_parsers::at_least_one)]
    eval_every: usize,
    /// Seed of the batches (and of LoRA's initialisation); with --resume: must be the checkpoint's.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from the checkpoint in --out (or `checkpoint.old` beside it,
    /// left by an interrupted checkpoint write), up to --steps updates in
    /// total; give the same --model, --data, --batch-size and --max-len. The
    /// result is the uninterrupted run's, to the bit.
    #[arg(long)]
    resume: bool,
    /// Test conversations per kind used for the behaviour table (0 = all).
    #[arg(long, default_value_t = 0)]
    eval_examples: usize,
    /// Weights in bf16 (for a GPU); default f32.
    #[arg(long)]
    bf16: bool,
    #[arg(long)]
    cuda: bool,
    #[command(flatten)]
    lora: LoraArgs,
}

#[derive(Debug, Args)]
pub struct SftDataArgs {
    #[arg(long, default_value = "datasets/sft")]
    out: PathBuf,
    #[arg(long, default_value_t = sft_data::DATASET_SEED)]
    seed: u64,
    #[arg(long, default_value_t = sft_data::DATASET_PER_KIND)]
    per_kind: usize,
}

pub fn data(a: SftDataArgs) -> Result<()> {
    let c = sft_data::write_dataset(&a.out, a.seed, a.per_kind)?;
    println!(
        "wrote {} / {} / {} conversations and README.md to {}",
        c.train,
        c.validation,
        c.test,
        a.out.display()
    );
    Ok(())
}

pub fn run(a: SftArgs) -> Result<()> {
    let device = device(a.cuda)?;
    let dtype = if a.bf16 { DType::BF16 } else { DType::F32 };
    let lora = a.lora.config()?;
    rlhf_lab::io::check_output_dir_writable(&a.out)?;
    let ckpt = a.out.join("checkpoint");
    let base = LanguageModel::load(&resolve_model_path(&a.model)?, &device, dtype)?;
    let start = match &lora {
        Some(lora) => base.with_lora(lora, a.seed)?,
        None => base,
    };
    let Splits {
        train,
        validation: valid,
        test,
    } = sft_data::read_splits(&a.data)?;
    let test = sft_data::take_per_kind(&test, a.eval_examples);
    // The behaviour before fine-tuning is the starting model's, on resuming too.
    let before = evaluate_behaviour(&start, &test, 64)?;
    let (lm, mut trainer) = if a.resume {
        let run = resume_lm(&ckpt, &device, dtype, a.steps, a.seed, a.learning_rate)?;
        (run.model, run.trainer)
    } else {
        let config = TrainConfig {
            steps: a.steps,
            learning_rate: a.learning_rate.unwrap_or(1e-3),
            warmup_steps: 20.min(a.steps / 5),
            eval_every: a.eval_every,
            seed: a.seed,
            ..TrainConfig::default()
        };
        let t = Trainer::new(NextTokenLoss::new(&start), config)?;
        (start, t)
    };
    let data = SftDataset::new(
        &lm.tokenizer,
        &train,
        &valid,
        a.batch_size,
        a.max_len,
        a.seed,
    )?;
    println!(
        "{lm:?}, {} trained; {} train / {} validation conversations; truncated to {} tokens: {} / {}",
        lm.num_trainable_parameters(),
        train.len(),
        valid.len(),
        a.max_len,
        data.truncated.0,
        data.truncated.1
    );
    let options = RunOptions {
        checkpoint_dir: Some(ckpt),
        ..Default::default()
    };
    let bar = Progress::new("sft", a.steps);
    trainer.train_with(&data, &options, |r, _| {
        let eval = r
            .eval_loss()
            .map(|l| format!(" eval {l:.3}"))
            .unwrap_or_default();
        bar.update(
            r.step,
            &format!("loss {:.3}{eval} {:.0} tok/s", r.loss, r.tokens_per_sec),
        );
    })?;
    bar.finish();
    let after = evaluate_behaviour(&lm, &test, 64)?;
    let table = behaviour_table(&before, &after);
    println!("{table}");
    lm.save(&a.out.join("model"))?;
    trainer.write_metrics(&a.out)?;
    rlhf_lab::io::write_atomic(&a.out.join("behaviour.md"), table.as_bytes())?;
    rlhf_lab::io::write_atomic(
        &a.out.join("behaviour.json"),
        serde_json::to_string_pretty(&serde_json::json!({"before": before, "after": after}))?
            .as_bytes(),
    )?;
    println!("fine-tuned model: {}", a.out.join("model").display());
    Ok(())
}
