//! JSON Lines: one JSON value per line, blank lines skipped. The one reader
//! and the one writer of every JSONL file in the project (feedback records,
//! TRL pairs, SFT conversations, runs' logs). A reader's error names the file
//! and the line: `FILE:LINE: what is wrong`. No candle here (rung 5 uses it).

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

/// How [`parse_jsonl_with`] and [`read_jsonl_with`] treat the lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonlOptions<'a> {
    /// Names a record in errors about a line that is not one:
    /// `Some("feedback record")` gives `FILE:LINE: bad feedback record: …`,
    /// `None` gives `FILE:LINE: …` (serde's message).
    pub record: Option<&'a str>,
    /// Skip a line that does not parse or fails its check, and list it in
    /// [`JsonlRecords::skipped`], instead of failing at the first.
    pub skip_invalid: bool,
}

/// What a lenient read skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipReport {
    /// (line number, reason) of each skipped line.
    pub skipped: Vec<(usize, String)>,
}

/// The records of a JSONL file or text.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlRecords<T> {
    /// Each valid record with its line number (from 1), so later checks can
    /// name the line too.
    pub records: Vec<(usize, T)>,
    /// The invalid lines skipped (empty unless [`JsonlOptions::skip_invalid`]).
    pub skipped: SkipReport,
}

impl<T> JsonlRecords<T> {
    /// The records without their line numbers.
    pub fn into_values(self) -> Vec<T> {
        self.records.into_iter().map(|(_, r)| r).collect()
    }
}

/// Parse JSONL text (`source` names it in errors): every non-blank line must
/// deserialize as a `T` and pass `check`, whose message (naming the field) is
/// prefixed with `source:line: `. An invalid line is an error, or with
/// [`JsonlOptions::skip_invalid`] is skipped and reported.
pub fn parse_jsonl_with<T: DeserializeOwned + Send>(
    text: &str,
    source: &str,
    options: &JsonlOptions,
    check: impl Fn(&T) -> std::result::Result<(), String> + Sync,
) -> Result<JsonlRecords<T>> {
    parse_jsonl_by(
        text,
        source,
        options,
        |line| serde_json::from_str::<T>(line),
        check,
    )
}

/// [`parse_jsonl_with`] with the line parser `parse` (for a record type with
/// a faster reading of its common form). Lines are parsed in parallel; the
/// records, and the first error, come in file order.
pub fn parse_jsonl_by<'a, T: Send>(
    text: &'a str,
    source: &str,
    options: &JsonlOptions,
    parse: impl Fn(&'a str) -> serde_json::Result<T> + Sync,
    check: impl Fn(&T) -> std::result::Result<(), String> + Sync,
) -> Result<JsonlRecords<T>> {
    parse_jsonl_map(text, source, options, parse, |record| {
        check(&record).map(|_| record)
    })
}

/// [`parse_jsonl_by`] whose check also maps the record it accepts to what is
/// kept of it (`keep`), so that a reader can drop most of a record while the
/// line is still hot in cache: `parse` may borrow from `text`.
pub fn parse_jsonl_map<'a, T, U: Send>(
    text: &'a str,
    source: &str,
    options: &JsonlOptions,
    parse: impl Fn(&'a str) -> serde_json::Result<T> + Sync,
    keep: impl Fn(T) -> std::result::Result<U, String> + Sync,
) -> Result<JsonlRecords<U>> {
    use rayon::prelude::*;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, line))
        .collect();
    let parsed: Vec<(usize, std::result::Result<U, String>)> = lines
        .into_par_iter()
        .map(|(n, line)| {
            let record = match parse(line) {
                Ok(record) => keep(record),
                Err(e) => Err(match options.record {
                    Some(name) => format!("bad {name}: {e}"),
                    None => e.to_string(),
                }),
            };
            (n, record)
        })
        .collect();
    let mut out = JsonlRecords {
        records: Vec::with_capacity(parsed.len()),
        skipped: SkipReport::default(),
    };
    for (n, parsed) in parsed {
        match parsed {
            Ok(record) => out.records.push((n, record)),
            Err(reason) if options.skip_invalid => out.skipped.skipped.push((n, reason)),
            Err(reason) => bail!("{source}:{n}: {reason}"),
        }
    }
    Ok(out)
}

/// [`parse_jsonl_with`] on the file at `path` (named in every error).
pub fn read_jsonl_with<T: DeserializeOwned + Send>(
    path: &Path,
    options: &JsonlOptions,
    check: impl Fn(&T) -> std::result::Result<(), String> + Sync,
) -> Result<JsonlRecords<T>> {
    read_jsonl_by(path, options, |line| serde_json::from_str::<T>(line), check)
}

/// [`parse_jsonl_by`] on the file at `path` (named in every error).
pub fn read_jsonl_by<T: Send>(
    path: &Path,
    options: &JsonlOptions,
    parse: impl Fn(&str) -> serde_json::Result<T> + Sync,
    check: impl Fn(&T) -> std::result::Result<(), String> + Sync,
) -> Result<JsonlRecords<T>> {
    let text = super::mapped::MappedText::open(path)?;
    parse_jsonl_by(
        text.as_str(),
        &path.display().to_string(),
        options,
        parse,
        check,
    )
}

/// Read a JSON Lines file into records; the first line that is not a `T` is
/// an error naming the file and the line (`path:line: …`).
pub fn read_jsonl<T: DeserializeOwned + Send>(path: &Path) -> Result<Vec<T>> {
    Ok(read_jsonl_with(path, &JsonlOptions::default(), |_: &T| Ok(()))?.into_values())
}

/// Records as JSON Lines text: one compact JSON object per line.
pub fn to_jsonl_text<T: Serialize>(records: &[T]) -> Result<String> {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r)?);
        s.push('\n');
    }
    Ok(s)
}

/// Write records as JSON Lines to `path`, atomically
/// ([`super::atomic::write_atomic`]); the error names the file.
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<()> {
    super::atomic::write_atomic(path, to_jsonl_text(records)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct R {
        x: i32,
    }

    fn positive(r: &R) -> std::result::Result<(), String> {
        if r.x > 0 {
            Ok(())
        } else {
            Err(format!("field `x` is {}, must be positive", r.x))
        }
    }

    /// Parsed in parallel, the records still come in file order with their
    /// line numbers, and the error is the first bad line's.
    #[test]
    fn many_lines_keep_their_order_and_the_first_error() {
        let text: String = (1..=5000).map(|x| format!("{{\"x\":{x}}}\n")).collect();
        let read = parse_jsonl_with(&text, "f", &JsonlOptions::default(), positive).unwrap();
        assert!(read.records.iter().all(|(n, r)| r.x == *n as i32));
        assert_eq!(read.records.len(), 5000);
        let bad = text
            .replace("{\"x\":4000}", "{\"x\":-1}")
            .replace("{\"x\":4500}", "{");
        let e = parse_jsonl_with(&bad, "f", &JsonlOptions::default(), positive).unwrap_err();
        assert!(e.to_string().starts_with("f:4000: field `x` is -1"), "{e}");
    }

    #[test]
    fn errors_name_source_and_line_and_lenient_reads_skip() {
        let text = "{\"x\":1}\n\n{\"x\":-2}\n{\"y\":3}\n{\"x\":4}\n";
        let strict = JsonlOptions::default();
        let e = parse_jsonl_with(text, "f.jsonl", &strict, positive)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "f.jsonl:3: field `x` is -2, must be positive");
        let named = JsonlOptions {
            record: Some("r record"),
            ..strict
        };
        let e = parse_jsonl_with("{\"y\":3}\n", "g", &named, positive)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("g:1: bad r record: missing field `x`"), "{e}");
        let lenient = JsonlOptions {
            skip_invalid: true,
            ..strict
        };
        let read = parse_jsonl_with(text, "f", &lenient, positive).unwrap();
        assert_eq!(read.records, vec![(1, R { x: 1 }), (5, R { x: 4 })]);
        let lines: Vec<usize> = read.skipped.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, vec![3, 4]);
        assert!(read.skipped.skipped[1].1.contains("missing field `x`"));
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("rlhf-lab-jsonl-{}", std::process::id()));
        let p = dir.join("r.jsonl");
        let records = vec![R { x: 1 }, R { x: 2 }];
        write_jsonl(&p, &records).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"x\":1}\n{\"x\":2}\n"
        );
        assert_eq!(read_jsonl::<R>(&p).unwrap(), records);
        std::fs::write(&p, "{\"x\":1}\nnot json\n").unwrap();
        let e = read_jsonl::<R>(&p).unwrap_err().to_string();
        assert!(e.contains("r.jsonl:2: "), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
