//! Language-model speed on this machine: training tokens/s of the tiny model
//! (forward + backward + AdamW), and generation tokens/s with and without the
//! KV cache. With `--features cuda` and a GPU, also SmolLM2-135M on the GPU.
//!
//! `cargo bench --bench lm_speed` (env: LM_BENCH_STEPS, LM_BENCH_SCALE).

use candle_core::{DType, Device};
use rlhf_lab::lm::pretrain;
use rlhf_lab::lm::{BatchSource, NextTokenLoss, SamplingConfig, TrainConfig, Trainer};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_device(device: &Device, label: &str) -> anyhow::Result<()> {
    let steps = env("LM_BENCH_STEPS", 20);
    let scale = env("LM_BENCH_SCALE", 1);
    let (batch, seq) = (16, 64);
    let setup = pretrain::setup(&pretrain::corpus_dir(), scale, batch, seq, 0, device)?;
    let lm = setup.model;
    println!(
        "[{label}] model: {} parameters ({} layers, width {}), batch {batch} × {seq} tokens",
        lm.num_parameters(),
        lm.config.num_hidden_layers,
        lm.config.hidden_size
    );
    let mut trainer = Trainer::new(NextTokenLoss::new(&lm), TrainConfig::default())?;
    // Warm-up step, then timed steps.
    trainer.train_step(&setup.data.train_batch(0, device)?)?;
    let t = Instant::now();
    let mut tokens = 0.0;
    for s in 1..=steps {
        let b = setup.data.train_batch(s, device)?;
        tokens += b.counted_tokens()?;
        trainer.train_step(&b)?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "[{label}] training: {:.0} tokens/s ({:.1} ms/step over {steps} steps)",
        tokens / dt,
        1e3 * dt / steps as f64
    );
    let new = 128;
    for cache in [true, false] {
        let cfg = SamplingConfig {
            use_kv_cache: cache,
            stop_tokens: vec![u32::MAX],
            ..SamplingConfig::greedy(new)
        };
        let t = Instant::now();
        let g = lm.generate("Mia has a", &cfg)?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "[{label}] generation, KV cache {}: {:.0} tokens/s ({} tokens, batch 1)",
            if cache { "on " } else { "off" },
            g.new_tokens as f64 / dt,
            g.new_tokens
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    println!("threads: {}", rayon::current_num_threads());
    bench_device(&Device::Cpu, "cpu")?;
    #[cfg(feature = "cuda")]
    {
        let gpu = Device::new_cuda(0)?;
        bench_device(&gpu, "cuda")?;
        if let Some(path) = rlhf_lab::lm::pretrained::smollm2_gguf() {
            for dtype in [DType::F32, DType::BF16] {
                let lm = rlhf_lab::lm::LanguageModel::from_gguf(&path, &gpu, dtype)?;
                let cfg = SamplingConfig {
                    stop_tokens: vec![u32::MAX],
                    ..SamplingConfig::greedy(128)
                };
                let t = Instant::now();
                let g = lm.generate("Once upon a time", &cfg)?;
                println!(
                    "[cuda] SmolLM2-135M {dtype:?} generation: {:.0} tokens/s",
                    g.new_tokens as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
    }
    let _ = DType::F32;
    Ok(())
}
