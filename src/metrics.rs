//! Metrics logs: one writer for every trainer in the crate.
//!
//! A record is any value that serialises to a JSON object of numbers. Nested
//! objects are flattened with `/`, so a record `{"step": 3, "eval": {"loss": 1.2}}`
//! has the columns `step` and `eval/loss` — the fixed-name style of CleanRL's
//! logs (`losses/value_loss`, `charts/SPS`). The same rows are written as CSV
//! (one column per name, in the order names first appear, empty where a record
//! lacks one) and as JSON Lines (one flat object per record), so the two files
//! always agree.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// Named numbers of one record, sorted by name (a deterministic order).
pub type Metrics = std::collections::BTreeMap<String, f64>;

/// One record as `(column, value)` pairs in the record's own field order,
/// nested objects flattened with `/`. Non-finite floats (which JSON cannot
/// hold) come out as `null`.
pub fn flatten(record: &impl Serialize) -> Result<Row> {
    // Serialised text keeps the struct's field order; reading it back into an
    // ordered list (rather than serde_json's sorted map) keeps it too.
    let text = serde_json::to_string(record).context("serialising a metrics record")?;
    let Ordered::Object(entries) = serde_json::from_str::<Ordered>(&text)? else {
        bail!("a metrics record must serialise to a JSON object, not {text}");
    };
    let mut out = Vec::new();
    flatten_into("", entries, &mut out);
    Ok(out)
}

fn flatten_into(prefix: &str, entries: Vec<(String, Ordered)>, out: &mut Row) {
    for (key, value) in entries {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}/{key}")
        };
        match value {
            Ordered::Object(inner) => flatten_into(&name, inner, out),
            Ordered::Leaf(v) => out.push((name, v)),
        }
    }
}

/// A JSON value whose objects keep their key order.
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Leaf(Value),
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    entries.push((k, v));
                }
                Ok(Ordered::Object(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    items.push(v);
                }
                Ok(Ordered::Leaf(Value::Array(items)))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(v.into()))
            }
            fn visit_unit<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Leaf(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// One flattened record.
type Row = Vec<(String, Value)>;

/// Records as flat rows plus the union of their column names (first-seen order).
fn rows<T: Serialize>(records: &[T]) -> Result<(Vec<String>, Vec<Row>)> {
    let mut columns: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let row = flatten(r)?;
        for (name, _) in &row {
            if seen.insert(name.clone()) {
                columns.push(name.clone());
            }
        }
        out.push(row);
    }
    Ok((columns, out))
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.contains([',', '"', '\n']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Records as CSV with a header row.
pub fn to_csv<T: Serialize>(records: &[T]) -> Result<String> {
    let (columns, rows) = rows(records)?;
    let mut out = columns.join(",");
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                row.iter()
                    .find(|(name, _)| name == c)
                    .map(|(_, v)| csv_cell(v))
                    .unwrap_or_default()
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// Records as JSON Lines, one flat object per line (the CSV's columns as keys).
pub fn to_jsonl<T: Serialize>(records: &[T]) -> Result<String> {
    let (_, rows) = rows(records)?;
    let mut out = String::new();
    for row in rows {
        // Written by hand to keep the columns' order (serde_json's map sorts keys).
        let fields: Vec<String> = row
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        out.push('{');
        out.push_str(&fields.join(","));
        out.push_str("}\n");
    }
    Ok(out)
}

/// Write `metrics.csv` and `metrics.jsonl` into `dir`, each atomically.
pub fn write_metrics<T: Serialize>(dir: &Path, records: &[T]) -> Result<()> {
    for (name, text) in [
        ("metrics.csv", to_csv(records)?),
        ("metrics.jsonl", to_jsonl(records)?),
    ] {
        let path = dir.join(name);
        crate::io::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Rec {
        step: usize,
        loss: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        eval: Option<Metrics>,
    }

    #[test]
    fn nested_records_become_slash_columns_in_both_formats() {
        let recs = [
            Rec {
                step: 0,
                loss: f64::NAN,
                eval: Some(Metrics::from([
                    ("loss".into(), 2.5),
                    ("accuracy".into(), 0.5),
                ])),
            },
            Rec {
                step: 1,
                loss: 1.25,
                eval: None,
            },
        ];
        let csv = to_csv(&recs).unwrap();
        assert_eq!(
            csv, "step,loss,eval/accuracy,eval/loss\n0,,0.5,2.5\n1,1.25,,\n",
            "columns in first-seen order; NaN and missing values are empty"
        );
        let jsonl = to_jsonl(&recs).unwrap();
        let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first["eval/loss"], 2.5);
        assert!(first["loss"].is_null());
        assert!(flatten(&3.0).is_err(), "a bare number is not a record");
    }
}
