//! Feedback records, stored as JSON Lines, validated with file and line in every error.
//!
//! One record per line, tagged by `kind`: `comparison`, `thumbs`, `rating`, `checklist`.
//! Comparisons export to and import from TRL's preference format
//! (`{"prompt", "chosen", "rejected"}`).

use crate::io::jsonl::{self, JsonlOptions};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::Path;

/// Outcome of a head-to-head comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    A,
    B,
    Tie,
}

impl Winner {
    /// Score of response A: 1 win, ½ tie, 0 loss.
    pub fn score_a(self) -> f64 {
        match self {
            Winner::A => 1.0,
            Winner::Tie => 0.5,
            Winner::B => 0.0,
        }
    }
}

/// Flaws an annotator can tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flaw {
    Incorrect,
    Unhelpful,
    Harmful,
    Rude,
    TooLong,
}

impl Flaw {
    pub const ALL: [Flaw; 5] = [
        Flaw::Incorrect,
        Flaw::Unhelpful,
        Flaw::Harmful,
        Flaw::Rude,
        Flaw::TooLong,
    ];

    /// The flaw's name in the records (`too_long`): its serde spelling.
    pub fn name(self) -> &'static str {
        match self {
            Flaw::Incorrect => "incorrect",
            Flaw::Unhelpful => "unhelpful",
            Flaw::Harmful => "harmful",
            Flaw::Rude => "rude",
            Flaw::TooLong => "too_long",
        }
    }

    /// The flaw named `name` ([`Flaw::name`]), if any.
    pub fn from_name(name: &str) -> Option<Flaw> {
        Flaw::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub prompt_id: String,
    pub prompt: String,
    pub response_a: String,
    pub response_b: String,
    /// The systems (or models) that wrote each response, when known.
    #[serde(default)]
    pub system_a: String,
    #[serde(default)]
    pub system_b: String,
    pub winner: Winner,
    pub annotator: String,
    /// Seconds since the start of the labelling session.
    #[serde(default)]
    pub time: u64,
}

impl Comparison {
    /// A system compared with itself says nothing about which system is better,
    /// yet a ranking would count it as two matches: `system_a` and `system_b`
    /// must differ when both are given.
    pub fn check_distinct_systems(&self) -> std::result::Result<(), String> {
        check_distinct_systems(&self.system_a, &self.system_b)
    }

    /// The preferred and the other answer, or `None` for a tie.
    pub fn chosen_rejected(&self) -> Option<(&str, &str)> {
        match self.winner {
            Winner::A => Some((&self.response_a, &self.response_b)),
            Winner::B => Some((&self.response_b, &self.response_a)),
            Winner::Tie => None,
        }
    }
}

/// A text field must hold more than white space; the message names it.
fn nonempty(field: &str, text: &str) -> std::result::Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("field `{field}` is empty"));
    }
    Ok(())
}

/// See [`Comparison::check_distinct_systems`].
fn check_distinct_systems(system_a: &str, system_b: &str) -> std::result::Result<(), String> {
    if !system_a.is_empty() && system_a == system_b {
        return Err(format!(
            "fields `system_a` and `system_b` are both `{system_a}`: a comparison of a system \
             with itself says nothing about which is better"
        ));
    }
    Ok(())
}

/// A comparison as ranking reads it: the systems that wrote the answers, the
/// verdict and who gave it. [`Comparison`] is one; so is [`Vote`], the same
/// read without copying the text.
pub trait Judged {
    /// The system that wrote answer A (empty when unknown).
    fn system_a(&self) -> &str;
    /// The system that wrote answer B (empty when unknown).
    fn system_b(&self) -> &str;
    /// Which answer won.
    fn winner(&self) -> Winner;
    /// Who judged.
    fn annotator(&self) -> &str;
}

/// What ranking keeps of a comparison record ([`Judged`]), its text borrowed
/// from the text it was read from where it can be (a JSON string without
/// escapes): see [`parse_votes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Vote<'a> {
    pub system_a: Cow<'a, str>,
    pub system_b: Cow<'a, str>,
    pub winner: Winner,
    pub annotator: Cow<'a, str>,
}

/// [`Judged`] for a type with the fields `system_a`, `system_b`, `winner`,
/// `annotator`.
macro_rules! judged_by_its_fields {
    ($($record:ty),*) => {$(
        impl Judged for $record {
            fn system_a(&self) -> &str {
                &self.system_a
            }
            fn system_b(&self) -> &str {
                &self.system_b
            }
            fn winner(&self) -> Winner {
                self.winner
            }
            fn annotator(&self) -> &str {
                &self.annotator
            }
        }
    )*};
}

judged_by_its_fields!(Comparison, Vote<'_>);

/// A comparison record as its line holds it, `kind` included, its text fields
/// borrowing the line (`Cow::Borrowed` unless a string has escapes). It
/// accepts exactly what [`Feedback`]'s tagged enum accepts as a comparison:
/// one `kind`, `comparison`, anywhere among the fields of [`Comparison`], and
/// no other field. Read directly it is about twice as fast as the tagged enum,
/// which buffers every field before it chooses the variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComparisonLine<'a> {
    #[serde(rename = "kind")]
    _kind: ComparisonKind,
    #[serde(borrow)]
    prompt_id: Cow<'a, str>,
    #[serde(borrow)]
    prompt: Cow<'a, str>,
    #[serde(borrow)]
    response_a: Cow<'a, str>,
    #[serde(borrow)]
    response_b: Cow<'a, str>,
    #[serde(borrow, default)]
    system_a: Cow<'a, str>,
    #[serde(borrow, default)]
    system_b: Cow<'a, str>,
    winner: Winner,
    #[serde(borrow)]
    annotator: Cow<'a, str>,
    #[serde(default)]
    time: u64,
}

/// The one `kind` a [`ComparisonLine`] has.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ComparisonKind {
    Comparison,
}

impl<'a> ComparisonLine<'a> {
    /// The line read as a comparison record, if it is one (`None` for
    /// anything else, to be read as a [`Feedback`] of any kind).
    fn read(line: &'a str) -> Option<Self> {
        line.trim_start().starts_with('{').then_some(())?;
        serde_json::from_str(line).ok()
    }

    /// [`Feedback::validate`] of a comparison: the message names the field.
    fn validate(&self) -> std::result::Result<(), String> {
        nonempty("prompt", &self.prompt)?;
        nonempty("response_a", &self.response_a)?;
        nonempty("response_b", &self.response_b)?;
        nonempty("annotator", &self.annotator)?;
        check_distinct_systems(&self.system_a, &self.system_b)
    }

    /// A comparison's fields, borrowed.
    fn borrowing(c: &'a Comparison) -> Self {
        ComparisonLine {
            _kind: ComparisonKind::Comparison,
            prompt_id: Cow::Borrowed(&c.prompt_id),
            prompt: Cow::Borrowed(&c.prompt),
            response_a: Cow::Borrowed(&c.response_a),
            response_b: Cow::Borrowed(&c.response_b),
            system_a: Cow::Borrowed(&c.system_a),
            system_b: Cow::Borrowed(&c.system_b),
            winner: c.winner,
            annotator: Cow::Borrowed(&c.annotator),
            time: c.time,
        }
    }

    /// What ranking keeps of it.
    fn into_vote(self) -> Vote<'a> {
        Vote {
            system_a: self.system_a,
            system_b: self.system_b,
            winner: self.winner,
            annotator: self.annotator,
        }
    }

    fn into_comparison(self) -> Comparison {
        Comparison {
            prompt_id: self.prompt_id.into_owned(),
            prompt: self.prompt.into_owned(),
            response_a: self.response_a.into_owned(),
            response_b: self.response_b.into_owned(),
            system_a: self.system_a.into_owned(),
            system_b: self.system_b.into_owned(),
            winner: self.winner,
            annotator: self.annotator.into_owned(),
            time: self.time,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thumbs {
    pub prompt_id: String,
    pub prompt: String,
    pub response: String,
    #[serde(default)]
    pub system: String,
    pub up: bool,
    pub annotator: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    pub prompt_id: String,
    pub prompt: String,
    pub response: String,
    #[serde(default)]
    pub system: String,
    /// 1 to 10.
    pub score: u8,
    pub annotator: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    pub prompt_id: String,
    pub prompt: String,
    pub response: String,
    #[serde(default)]
    pub system: String,
    pub flaws: Vec<Flaw>,
    pub annotator: String,
}

/// Any feedback record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feedback {
    Comparison(Comparison),
    Thumbs(Thumbs),
    Rating(Rating),
    Checklist(Checklist),
}

impl Feedback {
    /// One record from its JSON text. A comparison is read straight into a
    /// [`Comparison`] (see `ComparisonLine`: the same records accepted, about
    /// twice as fast); anything else, and any line that fails that way, is
    /// read as the tagged enum, whose error is the one reported.
    pub fn from_json(line: &str) -> serde_json::Result<Feedback> {
        match ComparisonLine::read(line) {
            Some(c) => Ok(Feedback::Comparison(c.into_comparison())),
            None => serde_json::from_str(line),
        }
    }

    /// Semantic checks beyond the JSON shape; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Feedback::Comparison(c) => ComparisonLine::borrowing(c).validate(),
            Feedback::Thumbs(t) => {
                nonempty("prompt", &t.prompt)?;
                nonempty("response", &t.response)?;
                nonempty("annotator", &t.annotator)
            }
            Feedback::Rating(r) => {
                nonempty("prompt", &r.prompt)?;
                nonempty("response", &r.response)?;
                nonempty("annotator", &r.annotator)?;
                if !(1..=10).contains(&r.score) {
                    return Err(format!("field `score` is {}, must be 1 to 10", r.score));
                }
                Ok(())
            }
            Feedback::Checklist(c) => {
                nonempty("prompt", &c.prompt)?;
                nonempty("response", &c.response)?;
                nonempty("annotator", &c.annotator)
            }
        }
    }
}

/// Read a JSONL file of feedback. Every error names the file and the line.
pub fn read_feedback(path: impl AsRef<Path>) -> Result<Vec<Feedback>> {
    Ok(read_feedback_lines(path)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// How feedback files are read: a line that is not a record is
/// `FILE:LINE: bad feedback record: …`.
const FEEDBACK: JsonlOptions = JsonlOptions {
    record: Some("feedback record"),
    skip_invalid: false,
};

/// [`read_feedback`], each record with its line number (from 1) in the file,
/// so that later checks can name the line too.
pub fn read_feedback_lines(path: impl AsRef<Path>) -> Result<Vec<(usize, Feedback)>> {
    Ok(jsonl::read_jsonl_by(
        path.as_ref(),
        &FEEDBACK,
        Feedback::from_json,
        Feedback::validate,
    )?
    .records)
}

/// Parse JSONL text; `source` names it in errors.
pub fn parse_feedback(text: &str, source: &str) -> Result<Vec<Feedback>> {
    Ok(parse_feedback_lines(text, source)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// [`parse_feedback`], each record with its line number (from 1).
pub fn parse_feedback_lines(text: &str, source: &str) -> Result<Vec<(usize, Feedback)>> {
    Ok(jsonl::parse_jsonl_by(
        text,
        source,
        &FEEDBACK,
        Feedback::from_json,
        Feedback::validate,
    )?
    .records)
}

/// The comparisons of JSONL feedback text (`source` names it in errors) as
/// [`Vote`]s borrowing `text`, each with its line number (from 1): what
/// [`parse_feedback_lines`] then [`comparison_lines`] give, validated the same
/// way with the same errors, without copying prompts and answers, so that
/// ranking a million comparisons is not spent allocating their text. Records
/// of other kinds are checked and left out.
pub fn parse_votes<'a>(text: &'a str, source: &str) -> Result<Vec<(usize, Vote<'a>)>> {
    /// A line as first read: a comparison in place, or any record.
    enum Read<'a> {
        Comparison(ComparisonLine<'a>),
        Other(Feedback),
    }
    // As `Feedback::from_json` reads, without reading a comparison into an
    // owned `Comparison` (nor trying `ComparisonLine` twice on other lines).
    let read = |line: &'a str| match ComparisonLine::read(line) {
        Some(c) => Ok(Read::Comparison(c)),
        None => serde_json::from_str::<Feedback>(line).map(Read::Other),
    };
    let keep = |record: Read<'a>| match record {
        Read::Comparison(c) => c.validate().map(|_| Some(c.into_vote())),
        Read::Other(f) => f.validate().map(|_| match f {
            Feedback::Comparison(c) => Some(Vote {
                system_a: c.system_a.into(),
                system_b: c.system_b.into(),
                winner: c.winner,
                annotator: c.annotator.into(),
            }),
            _ => None,
        }),
    };
    let votes = jsonl::parse_jsonl_map(text, source, &FEEDBACK, read, keep)?.records;
    Ok(votes
        .into_iter()
        .filter_map(|(line, vote)| vote.map(|v| (line, v)))
        .collect())
}

/// Seconds of labelling per comparison: the span of the session clock (the
/// `time` field, seconds since the session started) over the number of labels.
/// `None` without times.
pub fn seconds_per_label(comparisons: &[Comparison]) -> Option<f64> {
    let last = comparisons.iter().map(|c| c.time).max()?;
    (last > 0).then(|| last as f64 / comparisons.len() as f64)
}

/// Write feedback as JSONL, atomically.
pub fn write_feedback(path: impl AsRef<Path>, records: &[Feedback]) -> Result<()> {
    jsonl::write_jsonl(path.as_ref(), records)
}

/// Just the comparisons of a list of records.
pub fn comparisons(records: &[Feedback]) -> Vec<Comparison> {
    records
        .iter()
        .filter_map(|r| match r {
            Feedback::Comparison(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The comparisons of a list of numbered records (see [`read_feedback_lines`]),
/// each with its line.
pub fn comparison_lines(records: Vec<(usize, Feedback)>) -> Vec<(usize, Comparison)> {
    records
        .into_iter()
        .filter_map(|(line, r)| match r {
            Feedback::Comparison(c) => Some((line, c)),
            _ => None,
        })
        .collect()
}

/// Check that every system a comparison names (`system_a`, `system_b`) is in
/// `catalogue`, the systems known to exist; `source` names the file. The
/// error names the file, the line, the field and the unknown id.
pub fn check_systems_known<C: Judged>(
    source: &str,
    comparisons: &[(usize, C)],
    catalogue: &[String],
) -> Result<()> {
    for (line, c) in comparisons {
        for (field, id) in [("system_a", c.system_a()), ("system_b", c.system_b())] {
            if !catalogue.iter().any(|known| known == id) {
                bail!(
                    "{source}:{line}: field `{field}` is `{id}`, not a known system (known: {})",
                    catalogue.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// One preference pair in TRL's format (ties have no chosen side and are skipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// Comparisons → TRL `prompt / chosen / rejected` pairs (ties dropped).
pub fn to_preference_pairs(comparisons: &[Comparison]) -> Vec<PreferencePair> {
    comparisons
        .iter()
        .filter_map(|c| {
            c.chosen_rejected()
                .map(|(chosen, rejected)| PreferencePair {
                    prompt: c.prompt.clone(),
                    chosen: chosen.to_string(),
                    rejected: rejected.to_string(),
                })
        })
        .collect()
}

/// TRL pairs → comparisons (chosen as A; annotator `trl-import`; prompt ids by line).
pub fn from_preference_pairs(pairs: &[PreferencePair]) -> Vec<Comparison> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| Comparison {
            prompt_id: format!("trl{i:06}"),
            prompt: p.prompt.clone(),
            response_a: p.chosen.clone(),
            response_b: p.rejected.clone(),
            system_a: String::new(),
            system_b: String::new(),
            winner: Winner::A,
            annotator: "trl-import".into(),
            time: 0,
        })
        .collect()
}

/// Read TRL preference pairs from JSONL; errors name the file and line.
pub fn read_preference_pairs(path: impl AsRef<Path>) -> Result<Vec<PreferencePair>> {
    let options = JsonlOptions {
        record: Some("preference pair"),
        skip_invalid: false,
    };
    let check = |p: &PreferencePair| {
        if p.chosen.trim().is_empty() || p.rejected.trim().is_empty() {
            return Err("`chosen` and `rejected` must not be empty".to_string());
        }
        Ok(())
    };
    Ok(jsonl::read_jsonl_with(path.as_ref(), &options, check)?.into_values())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct reading of a comparison written as this crate writes it
    /// gives what the tagged enum gives, and so do its errors: an unknown
    /// field, a second `kind`, a missing field.
    #[test]
    fn comparisons_read_directly_as_the_tagged_enum_reads_them() {
        let c = Feedback::Comparison(Comparison {
            prompt_id: "p1".into(),
            prompt: "Say \"hi\"".into(),
            response_a: "hi".into(),
            response_b: "hello".into(),
            system_a: "s1".into(),
            system_b: "s2".into(),
            winner: Winner::B,
            annotator: "ann".into(),
            time: 3,
        });
        let line = serde_json::to_string(&c).unwrap();
        assert!(line.starts_with(r#"{"kind":"comparison","#), "{line}");
        assert_eq!(Feedback::from_json(&line).unwrap(), c);
        let tagged = |l: &str| serde_json::from_str::<Feedback>(l).map_err(|e| e.to_string());
        let direct = |l: &str| Feedback::from_json(l).map_err(|e| e.to_string());
        for bad in [
            line.replace(r#""time":3"#, r#""time":3,"colour":"red""#),
            line.replace(r#""time":3"#, r#""time":3,"kind":"rating""#),
            line.replace(r#""annotator":"ann","#, ""),
            line.replace(r#""winner":"b""#, r#""winner":"c""#),
        ] {
            assert!(tagged(&bad).is_err(), "{bad}");
            assert_eq!(direct(&bad), tagged(&bad), "{bad}");
        }
        // Other kinds, and comparisons in another layout, read as before.
        let spaced = line.replacen(r#"{"kind":"comparison","#, r#"{ "kind": "comparison", "#, 1);
        assert_eq!(Feedback::from_json(&spaced).unwrap(), c);
    }

    #[test]
    fn flaw_names_are_their_serde_spelling() {
        for f in Flaw::ALL {
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.name())
            );
            assert_eq!(Flaw::from_name(f.name()), Some(f));
        }
        assert_eq!(Flaw::from_name("too long"), None);
    }

    #[test]
    fn errors_name_file_and_line_and_field() {
        let good = r#"{"kind":"comparison","prompt_id":"p","prompt":"q?","response_a":"x","response_b":"y","winner":"a","annotator":"ann"}"#;
        let bad_rating = r#"{"kind":"rating","prompt_id":"p","prompt":"q?","response":"x","score":11,"annotator":"ann"}"#;
        let text = format!("{good}\n\n{bad_rating}\n");
        let e = parse_feedback(&text, "f.jsonl").unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:3: field `score` is 11"), "{e}");
        let e = parse_feedback("{\"kind\":\"thumbs\"}\n", "g.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("g.jsonl:1: bad feedback record") && e.contains("missing field"),
            "{e}"
        );
        let e = parse_feedback("not json\n", "h.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.jsonl:1:"), "{e}");
        let empty = good.replace("\"x\"", "\" \"");
        let e = parse_feedback(&empty, "i.jsonl").unwrap_err().to_string();
        assert!(e.contains("`response_a` is empty"), "{e}");
        assert_eq!(parse_feedback(good, "ok").unwrap().len(), 1);
    }

    #[test]
    fn a_system_against_itself_is_an_error_and_catalogue_checks_name_the_id() {
        let same = r#"{"kind":"comparison","prompt_id":"p","prompt":"q?","response_a":"x","response_b":"y","system_a":"s1","system_b":"s1","winner":"a","annotator":"ann"}"#;
        let e = parse_feedback(&format!("\n{same}\n"), "f.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.jsonl:2: fields `system_a` and `system_b` are both `s1`"),
            "{e}"
        );
        let other = same.replace("\"system_b\":\"s1\"", "\"system_b\":\"s2\"");
        let recs = parse_feedback_lines(&format!("{other}\n\n{other}\n"), "g").unwrap();
        let comps = comparison_lines(recs);
        assert_eq!(comps.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        check_systems_known("g", &comps, &["s1".into(), "s2".into()]).unwrap();
        let e = check_systems_known("g", &comps, &["s1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("g:1: field `system_b` is `s2`, not a known system"),
            "{e}"
        );
    }

    /// TRL pairs read back from JSONL: the committed export of the test split
    /// (one pair per decided comparison), and errors naming file and line.
    #[test]
    fn read_preference_pairs_reads_trl_files_and_names_bad_lines() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/preferences");
        let pairs = read_preference_pairs(dir.join("trl/test.jsonl")).unwrap();
        let comparisons = comparisons(&read_feedback(dir.join("test.jsonl")).unwrap());
        let decided = comparisons
            .iter()
            .filter(|c| c.chosen_rejected().is_some())
            .count();
        assert_eq!(pairs.len(), decided);
        assert!(pairs[0].prompt.contains(&comparisons[0].prompt));
        let tmp = std::env::temp_dir().join(format!("rlhf-lab-trl-{}.jsonl", std::process::id()));
        std::fs::write(
            &tmp,
            "{\"prompt\":\"q\",\"chosen\":\"a\",\"rejected\":\"b\"}\n\n{\"prompt\":\"q\",\"chosen\":\" \",\"rejected\":\"b\"}\n",
        )
        .unwrap();
        let e = read_preference_pairs(&tmp).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("`chosen`"), "{e}");
        std::fs::write(&tmp, "{\"prompt\":\"q\",\"chosen\":\"a\"}\n").unwrap();
        let e = read_preference_pairs(&tmp).unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("rejected"), "{e}");
        std::fs::remove_file(&tmp).ok();
    }

    #[test]
    fn trl_round_trip_drops_ties() {
        let recs = parse_feedback(
            concat!(
                r#"{"kind":"comparison","prompt_id":"p","prompt":"q","response_a":"x","response_b":"y","winner":"b","annotator":"a"}"#,
                "\n",
                r#"{"kind":"comparison","prompt_id":"p","prompt":"q","response_a":"x","response_b":"y","winner":"tie","annotator":"a"}"#
            ),
            "t",
        )
        .unwrap();
        let pairs = to_preference_pairs(&comparisons(&recs));
        assert_eq!(
            pairs,
            vec![PreferencePair {
                prompt: "q".into(),
                chosen: "y".into(),
                rejected: "x".into()
            }]
        );
        let back = from_preference_pairs(&pairs);
        assert_eq!(
            (back[0].response_a.as_str(), back[0].winner),
            ("y", Winner::A)
        );
    }

    /// Votes read in place are what the full reading keeps of the same
    /// comparisons, with the same line numbers, for every layout (escaped
    /// names, `kind` last, other kinds in between); and a bad line is the
    /// same error.
    #[test]
    fn votes_are_the_comparisons_read_in_full_and_fail_alike() {
        let text = concat!(
            r#"{"kind":"comparison","prompt_id":"p","prompt":"q","response_a":"x","response_b":"y","system_a":"s1","system_b":"s2","winner":"a","annotator":"ann"}"#,
            "\n\n",
            r#"{"kind":"thumbs","prompt_id":"p","prompt":"q","response":"x","up":true,"annotator":"ann"}"#,
            "\n",
            r#"{"prompt_id":"p","prompt":"q","response_a":"x","response_b":"y","system_a":"s\u00e9","system_b":"s\"2","winner":"tie","annotator":"b\tc","kind":"comparison"}"#,
            "\n",
            r#"  {"kind": "comparison", "prompt_id":"p","prompt":"q","response_a":"x","response_b":"y","winner":"b","annotator":"ann","time":4}"#,
            "\n",
        );
        let full: Vec<(usize, Comparison)> =
            comparison_lines(parse_feedback_lines(text, "f").unwrap());
        let votes = parse_votes(text, "f").unwrap();
        assert_eq!(votes.len(), 3);
        for ((line, c), (vote_line, v)) in full.iter().zip(&votes) {
            assert_eq!(line, vote_line);
            assert_eq!(
                (v.system_a(), v.system_b(), v.winner(), v.annotator()),
                (c.system_a(), c.system_b(), c.winner(), c.annotator())
            );
        }
        assert_eq!(votes[1].1.system_b, "s\"2");
        assert!(matches!(votes[0].1.system_a, Cow::Borrowed(_)));
        let first = text.lines().next().unwrap();
        for bad in [
            first.replace(r#""winner":"a""#, r#""winner":"c""#),
            first.replace(r#""annotator":"ann""#, r#""annotator":" ""#),
            first.replace(r#""system_b":"s2""#, r#""system_b":"s1""#),
            first.replace(r#""winner":"a""#, r#""winner":"a","colour":"red""#),
            first.replace(r#""winner":"a""#, r#""winner":"a","kind":"thumbs""#),
            first.replace(r#""prompt":"q","#, ""),
            r#"{"kind":"rating","prompt_id":"p","prompt":"q","response":"x","score":11,"annotator":"a"}"#.to_string(),
            "not json".to_string(),
        ] {
            let with_bad = format!("{text}{bad}\n");
            let expected = parse_feedback_lines(&with_bad, "f").unwrap_err().to_string();
            let got = parse_votes(&with_bad, "f").unwrap_err().to_string();
            assert_eq!(got, expected);
            assert!(got.starts_with("f:6: "), "{got}");
        }
    }
}
