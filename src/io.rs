//! File helpers: atomic writes, so a crash never leaves a half-written file;
//! JSON Lines reading with errors that name the line.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: write a temporary file in the same folder,
/// flush it to disk, then rename it over `path` (rename is atomic on POSIX).
/// Creates missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Read a JSON config file whose fields override `T::default()`, nested
/// objects field by field: `{"train": {"lr": 1e-4}}` changes the learning
/// rate and keeps the rest of *this* config's `train` defaults (not
/// `TrainConfig`'s own). Unknown or ill-typed fields are errors naming the file
/// and the field, as `T`'s serde attributes say.
pub fn read_config<T>(path: &Path) -> anyhow::Result<T>
where
    T: Default + serde::Serialize + serde::de::DeserializeOwned,
{
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let given: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    if !given.is_object() {
        // An array would otherwise deserialize field by field in order (and
        // `[]` into all the defaults), silently.
        anyhow::bail!(
            "{}: a config must be a JSON object of fields ({{\"field\": value, ...}}), not {}",
            path.display(),
            json_kind(&given)
        );
    }
    let mut merged = serde_json::to_value(T::default())?;
    merge_json(&mut merged, given);
    serde_json::from_value(merged)
        .with_context(|| format!("{}: not a valid config", path.display()))
}

/// "an array", "a number", …: the kind of a JSON value, for error messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Overlay `over` onto `base`: objects merge key by key (recursively), any
/// other value replaces what was there.
pub fn merge_json(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Write `value` as pretty-printed JSON to `path`, atomically ([`write_atomic`]).
pub fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())?;
    Ok(())
}

/// Save named tensors as safetensors, atomically (temporary file, then rename).
pub fn save_safetensors_atomic(
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    path: &Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    candle_core::safetensors::save(tensors, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// `DIR.suffix` beside the folder `dir` (`runs/checkpoint` → `runs/checkpoint.tmp`).
pub fn sibling(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Replace the folder `dir` by the complete folder `tmp` with two renames
/// (`dir` → `DIR.old`, `tmp` → `dir`), then delete `DIR.old`. At every moment
/// one of `dir` and `DIR.old` holds a complete folder: a crash between the
/// renames leaves `DIR.old`, which resuming looks for.
pub fn replace_dir(tmp: &Path, dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let old = sibling(dir, "old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
    }
    std::fs::rename(tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Write a whole folder atomically: `write` fills `DIR.tmp`, which then
/// replaces `dir` by [`replace_dir`] (checkpoints of every trainer).
pub fn write_dir_atomic(
    dir: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    write(&tmp)?;
    replace_dir(&tmp, dir)
}

/// Make sure `dir` can hold a run's outputs before the run starts: create it
/// (and its parents) if needed, then write and remove a probe file. The error
/// names the folder, so an output path under a regular file or in a read-only
/// folder fails in a second, not after hours of training.
pub fn check_output_dir_writable(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "output folder {}: cannot be created (is a parent a regular file, or read-only?)",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe")
        .with_context(|| format!("output folder {}: cannot be written", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| {
        format!(
            "output folder {}: cannot remove the probe file {}",
            dir.display(),
            probe.display()
        )
    })?;
    Ok(())
}

/// The checkpoint folder to resume from: `dir` if it holds `marker` (the
/// file every complete checkpoint has), else `DIR.old` (left by a crash
/// between the two renames of [`replace_dir`]); an error when neither does.
pub fn checkpoint_to_resume(dir: &Path, marker: &str) -> anyhow::Result<std::path::PathBuf> {
    for candidate in [dir.to_path_buf(), sibling(dir, "old")] {
        if candidate.join(marker).exists() {
            return Ok(candidate);
        }
    }
    anyhow::bail!("{}: not a training checkpoint (no {marker})", dir.display())
}

/// Read a JSON Lines file (one JSON value per line, blank lines skipped) into
/// records; an error names the file and the line (`path:line`).
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_must_be_an_object() {
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        struct C {
            lr: f64,
        }
        let dir = std::env::temp_dir().join(format!("rlhf-lab-io-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.json");
        for (text, kind) in [("[]", "an array"), ("[0.5]", "an array"), ("2", "a number")] {
            std::fs::write(&p, text).unwrap();
            let e = format!("{:#}", read_config::<C>(&p).err().unwrap());
            assert!(
                e.contains("c.json: a config must be a JSON object") && e.contains(kind),
                "{e}"
            );
        }
        std::fs::write(&p, r#"{"lr": 0.5}"#).unwrap();
        assert_eq!(read_config::<C>(&p).unwrap().lr, 0.5);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writes_and_replaces() {
        let dir = std::env::temp_dir().join(format!("rlhf-lab-io-{}", std::process::id()));
        let p = dir.join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
