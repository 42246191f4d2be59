//! Named tensors as a safetensors file, written atomically: the one helper
//! of [`crate::io`] that needs candle.

use anyhow::{Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Save named tensors as safetensors, atomically (a temporary file beside
/// `path`, [`super::atomic::temp_beside`], then a rename).
pub fn save_safetensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = super::atomic::temp_beside(path)
        .with_context(|| format!("creating the folder of {}", path.display()))?;
    candle_core::safetensors::save(tensors, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
