//! PPO of the language model (rung 7) on this machine: seconds per iteration
//! and their split between generation, scoring and the update, with rollout
//! tokens/s; and what batching and the KV cache buy the rollout (the same 64
//! answers generated in one batch with the cache, in one batch without it,
//! and one prompt at a time).
//!
//! `cargo bench --bench ppo_lm` (env: PPO_LM_BENCH_ITERS, default 5; PPO_CONFIG,
//! a JSON object of `RlhfPpoConfig` fields to override).

use candle_core::{DType, Device};
use rlhf_lab::feedback::gold::END_OF_TURN;
use rlhf_lab::lm::sample::generate_ids;
use rlhf_lab::lm::{LanguageModel, SamplingConfig};
use rlhf_lab::rlhf::ppo::{query_ids, PpoTrainer, RlhfModels, RlhfPpoConfig};
use rlhf_lab::rlhf::ppo_run::TimeSplit;
use rlhf_lab::rlhf::{preferences, RewardModel};
use std::time::Instant;

fn config() -> anyhow::Result<RlhfPpoConfig> {
    let mut json = serde_json::to_value(RlhfPpoConfig::default())?;
    if let Ok(text) = std::env::var("PPO_CONFIG") {
        let overrides: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
        for (k, v) in overrides {
            json[k] = v;
        }
    }
    let iterations = std::env::var("PPO_LM_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    json["iterations"] = iterations.into();
    Ok(serde_json::from_value(json)?)
}

fn bench_ppo(sft: &LanguageModel, rm: &RewardModel, config: RlhfPpoConfig) -> anyhow::Result<()> {
    let data = preferences::read(&preferences::preferences_dir())?;
    let mut trainer = PpoTrainer::new(
        RlhfModels::new(sft, rm)?,
        data.prompts.train.clone(),
        config,
    )?;
    let started = Instant::now();
    trainer.train_with(|r| {
        println!(
            "iteration {:>2}: {:.2} s generating ({:.0} tokens/s), {:.2} s scoring, {:.2} s updating",
            r.iteration,
            r.seconds_generation,
            r.generation_tokens_per_sec,
            r.seconds_scoring,
            r.seconds_update
        )
    })?;
    let wall = started.elapsed().as_secs_f64() / trainer.iteration as f64;
    // The first iteration warms caches and allocators; report the rest.
    let steady = &trainer.history[1.min(trainer.history.len() - 1)..];
    let split = TimeSplit::mean_of(steady);
    let answers = trainer.config.prompts_per_iteration;
    println!(
        "PPO: {wall:.2} s per iteration ({answers} answers), after the first: generation {:.2} s ({:.0}%), scoring {:.2} s ({:.0}%), update {:.2} s ({:.0}%)",
        split.generation,
        100.0 * split.generation / split.total(),
        split.scoring,
        100.0 * split.scoring / split.total(),
        split.update,
        100.0 * split.update / split.total()
    );
    let tps = steady
        .iter()
        .map(|r| r.generation_tokens_per_sec)
        .sum::<f64>()
        / steady.len() as f64;
    println!("PPO rollout generation: {tps:.0} answer tokens/s");
    Ok(())
}

fn bench_rollout(sft: &LanguageModel, config: &RlhfPpoConfig) -> anyhow::Result<()> {
    let data = preferences::read(&preferences::preferences_dir())?;
    let prompts = &data.prompts.train[..config.prompts_per_iteration];
    let queries = prompts
        .iter()
        .map(|p| query_ids(sft, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let end = sft.tokenizer.token_id(END_OF_TURN).expect("chat tokenizer");
    let pad = sft.tokenizer.pad_id();
    let cfg = |use_kv_cache: bool| SamplingConfig {
        max_new_tokens: config.max_new_tokens,
        temperature: config.temperature,
        top_k: None,
        top_p: None,
        seed: 7,
        stop_tokens: vec![end],
        use_kv_cache,
    };
    let run = |label: &str, batches: Vec<&[Vec<u32>]>, cache: bool| -> anyhow::Result<()> {
        let t = Instant::now();
        let mut tokens = 0;
        for b in batches {
            tokens += generate_ids(&sft.model, b, pad, &[end], &cfg(cache))?
                .iter()
                .map(|g| g.new_ids.len())
                .sum::<usize>();
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "rollout of {} answers, {label}: {dt:.2} s, {:.0} tokens/s",
            queries.len(),
            tokens as f64 / dt
        );
        Ok(())
    };
    run("one batch, KV cache", vec![&queries[..]], true)?;
    run("one batch, no cache", vec![&queries[..]], false)?;
    run(
        "one prompt at a time, KV cache",
        queries.chunks(1).collect(),
        true,
    )?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    println!("threads: {}", rayon::current_num_threads());
    let device = Device::Cpu;
    let sft = LanguageModel::load(&preferences::tiny_sft_dir(), &device, DType::F32)?;
    let rm = RewardModel::load(&preferences::tiny_rm_dir(), &device)?;
    let config = config()?;
    println!(
        "tiny models: policy {} parameters, reward/value {} parameters",
        sft.num_parameters(),
        rm.num_parameters()
    );
    bench_rollout(&sft, &config)?;
    bench_ppo(&sft, &rm, config)?;
    Ok(())
}
