//! A file's text read in place: the file mapped into memory rather than
//! copied into a `String`. For a file of a few hundred megabytes (a million
//! feedback records) the copy and the fresh pages it fills cost several times
//! what parsing the text in place does.

use anyhow::{Context, Result};
use memmap2::Mmap;
use std::path::Path;

/// The text of a file, mapped read-only ([`MappedText::as_str`]).
#[derive(Debug)]
pub struct MappedText {
    map: Mmap,
}

impl MappedText {
    /// Map the file at `path` and check that it is UTF-8. Errors name the
    /// file, and for text that is not UTF-8, the line.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        // SAFETY: the map is private and read-only. What memory-mapping cannot
        // rule out is another process shortening the file while it is mapped
        // (reading a page past the new end raises SIGBUS); this project
        // replaces files by renaming a new one over them
        // ([`super::atomic::write_atomic`]), which leaves a mapped file as it
        // was.
        let map =
            unsafe { Mmap::map(&file) }.with_context(|| format!("reading {}", path.display()))?;
        if let Err(e) = std::str::from_utf8(&map) {
            let line = 1 + map[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            anyhow::bail!("{}:{line}: not UTF-8 text ({e})", path.display());
        }
        Ok(Self { map })
    }

    /// The file's text.
    pub fn as_str(&self) -> &str {
        // SAFETY: `open` checked that the bytes are UTF-8, and the map is
        // read-only.
        unsafe { std::str::from_utf8_unchecked(&self.map) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_empty_files_and_names_the_line_that_is_not_utf8() {
        let dir = std::env::temp_dir().join(format!("rlhf-lab-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.jsonl");
        std::fs::write(&text, "{\"x\":1}\nhéllo\n").unwrap();
        assert_eq!(
            MappedText::open(&text).unwrap().as_str(),
            "{\"x\":1}\nhéllo\n"
        );
        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(MappedText::open(&empty).unwrap().as_str(), "");
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, b"ok\nok\nnot \xff utf-8\n").unwrap();
        let e = MappedText::open(&bad).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "bad.jsonl:3: not UTF-8 text (invalid utf-8 sequence of 1 bytes from index 10)"
            ),
            "{e}"
        );
        let e = MappedText::open(&dir.join("missing.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading ") && e.contains("missing.jsonl"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
