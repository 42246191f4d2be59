//! Language-model speed on this machine: training tokens/s of the tiny model
//! (forward + backward + AdamW) in its three training shapes — pre-training,
//! SFT, the reward model — and generation tokens/s with and without the KV
//! cache ([`rlhf_lab::lm::speed`], the same measurement as `rlhf-lab lm speed
//! [--shape sft|rm]` and `scripts/bench_kernel.py`). With `--features cuda`
//! and a GPU, also SmolLM2-135M on the GPU.
//!
//! `cargo bench --bench lm_speed` (env: LM_BENCH_STEPS, LM_BENCH_SCALE).

use candle_core::Device;
use rlhf_lab::lm::speed::{measure_sft_training, measure_speed, SpeedConfig};
use rlhf_lab::rlhf::speed::measure_reward_training;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let config = SpeedConfig {
        steps: env("LM_BENCH_STEPS", 20),
        scale: env("LM_BENCH_SCALE", 1),
        ..SpeedConfig::default()
    };
    for line in measure_speed(&config, &Device::Cpu)?.to_string().lines() {
        println!("[cpu] {line}");
    }
    if config.scale == 1 {
        let steps = config.steps.div_ceil(2);
        println!(
            "[cpu] SFT training: {}",
            measure_sft_training(steps, &Device::Cpu)?
        );
        println!(
            "[cpu] reward-model training: {}",
            measure_reward_training(steps, &Device::Cpu)?
        );
    }
    #[cfg(feature = "cuda")]
    {
        use candle_core::DType;
        use rlhf_lab::lm::SamplingConfig;
        let gpu = Device::new_cuda(0)?;
        for line in measure_speed(&config, &gpu)?.to_string().lines() {
            println!("[cuda] {line}");
        }
        if let Some(path) = rlhf_lab::lm::pretrained::smollm2_gguf() {
            for dtype in [DType::F32, DType::BF16] {
                let lm = rlhf_lab::lm::LanguageModel::from_gguf(&path, &gpu, dtype)?;
                let cfg = SamplingConfig {
                    stop_tokens: vec![u32::MAX],
                    ..SamplingConfig::greedy(128)
                };
                let t = std::time::Instant::now();
                let g = lm.generate("Once upon a time", &cfg)?;
                println!(
                    "[cuda] SmolLM2-135M {dtype:?} generation: {:.0} tokens/s",
                    g.new_tokens as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}
