//! How fast the reward model trains: the third shape of
//! [`crate::lm::speed`] (pre-training, SFT, reward model), measured the same
//! way ([`time_training`]) so that the three compare, and so that
//! `scripts/reference/torch_training_speed.py --shape rm` can time PyTorch
//! on the same batches.

use super::preferences::{preferences_dir, read, tiny_sft_dir};
use super::reward_training::{reward_setup, RewardBatch, RewardSetup, RewardTrainConfig};
use crate::lm::speed::{time_training, TrainingSpeed};
use crate::lm::LanguageModel;
use anyhow::Result;
use candle_core::{DType, Device};

/// The reward model's training speed: a scalar head on the committed tiny
/// SFT model, Bradley–Terry pairs of `datasets/preferences`' training
/// comparisons with the `rlhf-lab rm train` defaults (16 pairs per batch:
/// 32 sequences, prompt ⊕ answer, right-padded to the batch's longest).
pub fn measure_reward_training(steps: usize, device: &Device) -> Result<TrainingSpeed> {
    let lm = LanguageModel::load(&tiny_sft_dir(), device, DType::F32)?;
    let data = read(&preferences_dir())?;
    let RewardSetup {
        mut trainer,
        source,
    } = reward_setup(&lm, &data, &data.comparisons, &RewardTrainConfig::default())?;
    time_training(&mut trainer, &source, steps, device, |batch| {
        let sequences = match batch {
            RewardBatch::Pairs(p) => &p.sequences,
            RewardBatch::Targets(t) => &t.sequences,
        };
        Ok(sequences.input_ids.dims2()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reward model's batches are 16 pairs, 32 padded rows, and the
    /// phases are parts of each update.
    #[test]
    fn reward_training_is_timed_on_its_pairs() -> Result<()> {
        let t = measure_reward_training(1, &Device::Cpu)?;
        assert_eq!((t.steps, t.sequences), (1, 32.0));
        assert!(t.padded_len > 1.0 && t.tokens_per_second > 0.0, "{t:?}");
        assert!(
            t.forward_ms + t.backward_ms + t.optimizer_ms <= t.ms_per_step,
            "{t:?}"
        );
        Ok(())
    }
}
