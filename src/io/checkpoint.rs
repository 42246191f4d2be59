//! The one checkpoint layout of every trainer: gridworld PPO
//! ([`crate::rl::GridworldTrainer`]), the language-model trainer
//! ([`crate::lm::Trainer`]: pre-training, SFT, reward model, DPO) and PPO of
//! the language model ([`crate::rlhf::PpoTrainer`]).
//!
//! A checkpoint is a folder, by convention `OUT/checkpoint/`, written as a whole
//! by [`write_dir_atomic`](super::write_dir_atomic) and holding
//!
//! | file | what |
//! |---|---|
//! | [`TRAINER_STATE`] `trainer_state.json` | config, counters, RNG, history: the marker of a complete checkpoint |
//! | [`OPTIMIZER`] `optimizer.safetensors` | AdamW's moments ([`crate::optim::AdamW::save_state`]); a trainer with two optimisers prefixes the name (`policy_optimizer.safetensors`) |
//! | [`MODEL`] `model.safetensors` | the weights, beside whatever else the model's own `save` writes (`config.json`, the tokenizer); a trainer with two models gives each a folder (`policy/`, `value/`) |
//!
//! After a crash between the two renames of the folder swap, `DIR.old` holds
//! the complete checkpoint and [`checkpoint_to_resume`] finds it. No candle
//! here.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The trainer's state as JSON; its presence marks a complete checkpoint.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// The optimiser's moments as safetensors.
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// The model's weights as safetensors.
pub const MODEL: &str = "model.safetensors";

/// Write `state` as `dir/trainer_state.json`, atomically.
pub fn write_trainer_state(dir: &Path, state: &impl serde::Serialize) -> anyhow::Result<()> {
    let path = dir.join(TRAINER_STATE);
    super::write_json_atomic(&path, state).with_context(|| format!("writing {}", path.display()))
}

/// Read `dir/trainer_state.json`; errors name the file and say it is not
/// `what` ("a PPO trainer state").
pub fn read_trainer_state<T: serde::de::DeserializeOwned>(
    dir: &Path,
    what: &str,
) -> anyhow::Result<T> {
    let path = dir.join(TRAINER_STATE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))
}

/// The checkpoint folder to resume from: `dir` if it holds
/// `trainer_state.json`, else `DIR.old` (left by a crash between the two
/// renames of [`replace_dir`](super::replace_dir)); an error when neither does.
pub fn checkpoint_to_resume(dir: &Path) -> anyhow::Result<PathBuf> {
    for candidate in [dir.to_path_buf(), super::sibling(dir, "old")] {
        if candidate.join(TRAINER_STATE).exists() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "{}: not a training checkpoint (no {TRAINER_STATE})",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_finds_the_complete_folder_and_names_the_missing_marker() {
        let root = std::env::temp_dir().join(format!("rlhf-lab-ckpt-{}", std::process::id()));
        let dir = root.join("checkpoint");
        let err = format!("{:#}", checkpoint_to_resume(&dir).unwrap_err());
        assert!(
            err.contains("checkpoint") && err.contains(TRAINER_STATE),
            "{err}"
        );
        // A crash between the renames leaves only `checkpoint.old`.
        let old = super::super::sibling(&dir, "old");
        write_trainer_state(&old, &serde_json::json!({"step": 3})).unwrap();
        assert_eq!(checkpoint_to_resume(&dir).unwrap(), old);
        super::super::write_dir_atomic(&dir, |tmp| {
            write_trainer_state(tmp, &serde_json::json!({"step": 4}))
        })
        .unwrap();
        assert_eq!(checkpoint_to_resume(&dir).unwrap(), dir);
        let state: serde_json::Value = read_trainer_state(&dir, "a test state").unwrap();
        assert_eq!(state["step"], 4);
        std::fs::write(dir.join(TRAINER_STATE), "[1,").unwrap();
        let err = format!(
            "{:#}",
            read_trainer_state::<std::collections::HashMap<String, u32>>(&dir, "a test state")
                .unwrap_err()
        );
        assert!(
            err.contains("trainer_state.json: not a test state"),
            "{err}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
