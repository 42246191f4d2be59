//! Models from the Hugging Face hub, through `hf-hub` 0.4 (the version
//! `tokenizers` itself uses: light, blocking, `ureq`).
//!
//! The cache layout is the hub's own, shared with Python:
//! `<cache>/models--ORG--NAME/refs/main` holds a revision and
//! `<cache>/models--ORG--NAME/snapshots/<revision>/<file>` the files. Files
//! already there are used without any network access; missing ones are
//! downloaded when the crate's `download` feature is on and `HF_HUB_OFFLINE`
//! is not set to 1.

use anyhow::{bail, Result};
use hf_hub::{Cache, Repo};
use std::path::{Path, PathBuf};

/// Files a Llama checkpoint needs (the weights may be sharded instead).
pub const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json"];
/// Files used when present.
pub const OPTIONAL_FILES: &[&str] = &["tokenizer_config.json", "generation_config.json"];

/// The cache directory: `cache_dir` if given, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache(cache_dir: Option<&Path>) -> Cache {
    match cache_dir {
        Some(d) => Cache::new(d.to_path_buf()),
        None => Cache::from_env(),
    }
}

/// True when `HF_HUB_OFFLINE` is 1/true: use the cache only.
pub fn offline() -> bool {
    matches!(
        std::env::var("HF_HUB_OFFLINE").as_deref(),
        Ok("1") | Ok("true") | Ok("TRUE")
    )
}

/// The local snapshot folder of `repo_id` holding `config.json`,
/// `tokenizer.json` and the safetensors weights, downloading what is missing
/// when `allow_download` (and the `download` feature is on). Errors list the
/// missing files and the cache searched.
pub fn snapshot(repo_id: &str, cache_dir: Option<&Path>, allow_download: bool) -> Result<PathBuf> {
    let cache = cache(cache_dir);
    let repo = cache.repo(Repo::model(repo_id.to_string()));
    let mut missing = Vec::new();
    let mut found: Option<PathBuf> = None;
    let mut wanted: Vec<&str> = REQUIRED_FILES.to_vec();
    // Weights: one file, or an index naming the shards.
    let weights_file = if repo.get("model.safetensors.index.json").is_some() {
        "model.safetensors.index.json"
    } else {
        "model.safetensors"
    };
    wanted.push(weights_file);
    for f in &wanted {
        match repo.get(f) {
            Some(p) => found = p.parent().map(Path::to_path_buf),
            None => missing.push(f.to_string()),
        }
    }
    if let (Some(dir), "model.safetensors.index.json") = (&found, weights_file) {
        for shard in shard_names(&dir.join(weights_file))? {
            if repo.get(&shard).is_none() {
                missing.push(shard);
            }
        }
    }
    if missing.is_empty() {
        return Ok(found.expect("files were found"));
    }
    if !allow_download {
        bail!(
            "{repo_id}: not in the Hugging Face cache {} (missing {}) and downloading is off",
            cache.path().display(),
            missing.join(", ")
        );
    }
    download(repo_id, &cache, &missing, &wanted)
}

fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let mut names: Vec<String> = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(feature = "download")]
fn download(repo_id: &str, cache: &Cache, missing: &[String], wanted: &[&str]) -> Result<PathBuf> {
    use anyhow::Context;
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
        .with_progress(true)
        .build()?;
    let repo = api.model(repo_id.to_string());
    let mut dir = None;
    for f in wanted.iter().copied().chain(OPTIONAL_FILES.iter().copied()) {
        match repo.get(f) {
            Ok(p) => dir = p.parent().map(Path::to_path_buf),
            Err(e) if OPTIONAL_FILES.contains(&f) => {
                let _ = e; // optional files may not exist in the repo
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{repo_id}: downloading `{f}` failed (missing from the cache {}: {})",
                        cache.path().display(),
                        missing.join(", ")
                    )
                })
            }
        }
    }
    let dir = dir.expect("at least one file was downloaded");
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        for shard in shard_names(&index)? {
            repo.get(&shard)
                .with_context(|| format!("{repo_id}: downloading `{shard}` failed"))?;
        }
    }
    Ok(dir)
}

#[cfg(not(feature = "download"))]
fn download(repo_id: &str, cache: &Cache, missing: &[String], _wanted: &[&str]) -> Result<PathBuf> {
    bail!(
        "{repo_id}: not in the Hugging Face cache {} (missing {}) and this build has no `download` feature",
        cache.path().display(),
        missing.join(", ")
    )
}
