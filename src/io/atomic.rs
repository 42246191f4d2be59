//! Atomic writes, so a crash never leaves a half-written file or folder: a
//! file is written beside its destination and renamed over it; a folder (a
//! checkpoint of any trainer) is filled beside its destination and swapped in
//! by two renames, and [`super::checkpoint_to_resume`] finds the complete one
//! after a crash. No candle here (rung 5 uses it).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary file `.NAME.tmp-PID` beside `path` (in the same folder, so
/// renaming it over `path` is atomic), its folder created if missing. Every
/// atomic file write goes through here: fill the temporary file, then rename.
pub fn temp_beside(path: &Path) -> std::io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Write `bytes` to `path` atomically: write a temporary file in the same folder,
/// flush it to disk, then rename it over `path` (rename is atomic on POSIX).
/// Creates missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Write `value` as pretty-printed JSON to `path`, atomically ([`write_atomic`]).
pub fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())?;
    Ok(())
}

/// `DIR.suffix` beside the folder `dir` (`runs/checkpoint` → `runs/checkpoint.tmp`).
pub fn sibling(dir: &Path, suffix: &str) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

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
