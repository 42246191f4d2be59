//! `--lora` and its options, shared by the fine-tuning commands (sft, ppo, dpo).

use clap::Args;
use rlhf_lab::lm::lora::LoraConfig;

#[derive(Debug, Clone, Args)]
pub struct LoraArgs {
    /// Train low-rank adapters (LoRA, PEFT's format) instead of every weight; the
    /// base stays frozen and is the reference with the adapters off.
    #[arg(long)]
    pub lora: bool,
    /// Rank r of each adapter's update B·A.
    #[arg(long, default_value_t = 8, requires = "lora")]
    pub lora_r: usize,
    /// α: the update is scaled by α/r (α/√r with --rslora).
    #[arg(long, default_value_t = 8.0, requires = "lora")]
    pub lora_alpha: f64,
    /// Projections that get adapters, comma-separated (q_proj, k_proj, v_proj,
    /// o_proj, gate_proj, up_proj, down_proj), or all-linear.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,v_proj",
        requires = "lora"
    )]
    pub lora_targets: Vec<String>,
    /// rsLoRA: scale by α/√r instead of α/r.
    #[arg(long, requires = "lora")]
    pub rslora: bool,
    /// Dropout on the adapters' input while training (sft, rm train; PPO and
    /// DPO run without dropout, as TRL does).
    #[arg(long, default_value_t = 0.0, requires = "lora")]
    pub lora_dropout: f64,
}

impl LoraArgs {
    /// The adapters' config, or `None` without `--lora`.
    pub fn config(&self) -> anyhow::Result<Option<LoraConfig>> {
        if !self.lora {
            return Ok(None);
        }
        let config = LoraConfig {
            r: self.lora_r,
            lora_alpha: self.lora_alpha,
            target_modules: self.lora_targets.clone(),
            use_rslora: self.rslora,
            lora_dropout: self.lora_dropout,
            ..LoraConfig::default()
        };
        config.validate()?;
        Ok(Some(config))
    }
}
