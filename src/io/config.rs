//! JSON config files: fields given in the file override a type's defaults.

use std::path::Path;

/// Read a JSON config file whose fields override `T::default()`, nested
/// objects field by field: `{"train": {"learning_rate": 1e-4}}` changes the
/// learning rate and keeps the rest of *this* config's `train` defaults (not
/// `TrainConfig`'s own). Unknown or ill-typed fields are errors naming the file
/// and the field, as `T`'s serde attributes say. Old names of renamed fields
/// ([`RENAMED_FIELDS`]) still read.
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
    let mut given = given;
    rename_old_fields(&mut given).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut merged = serde_json::to_value(T::default())?;
    merge_json(&mut merged, given);
    serde_json::from_value(merged)
        .with_context(|| format!("{}: not a valid config", path.display()))
}

/// Fields renamed since earlier versions, `(old, new)`: a config file written
/// with the old name still reads. (The fields carry `#[serde(alias = old)]` for
/// files read directly, such as checkpoints; a config file needs this table
/// too, because it is merged over the serialized defaults, which hold the new
/// name, and a struct given both names is a serde error.)
pub const RENAMED_FIELDS: &[(&str, &str)] = &[("lr", "learning_rate")];

/// Rename [`RENAMED_FIELDS`] in every object of `v`; an object holding both
/// names of one field is an error naming them.
fn rename_old_fields(v: &mut serde_json::Value) -> Result<(), String> {
    match v {
        serde_json::Value::Object(fields) => {
            for (old, new) in RENAMED_FIELDS {
                if let Some(value) = fields.remove(*old) {
                    if fields.contains_key(*new) {
                        return Err(format!(
                            "`{old}` is the old name of `{new}`; give only one of them"
                        ));
                    }
                    fields.insert(new.to_string(), value);
                }
            }
            fields.values_mut().try_for_each(rename_old_fields)
        }
        serde_json::Value::Array(items) => items.iter_mut().try_for_each(rename_old_fields),
        _ => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_must_be_an_object() {
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        struct C {
            learning_rate: f64,
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
        std::fs::write(&p, r#"{"learning_rate": 0.5}"#).unwrap();
        assert_eq!(read_config::<C>(&p).unwrap().learning_rate, 0.5);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn old_field_names_read_nested_and_both_names_are_an_error() {
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Train {
            #[serde(alias = "lr")]
            learning_rate: f64,
            steps: usize,
        }
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct C {
            train: Train,
        }
        let dir = std::env::temp_dir().join(format!("rlhf-lab-io-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.json");
        std::fs::write(&p, r#"{"train": {"lr": 0.25, "steps": 3}}"#).unwrap();
        let c = read_config::<C>(&p).unwrap();
        assert_eq!((c.train.learning_rate, c.train.steps), (0.25, 3));
        std::fs::write(&p, r#"{"train": {"lr": 0.25, "learning_rate": 0.5}}"#).unwrap();
        let e = format!("{:#}", read_config::<C>(&p).err().unwrap());
        assert!(
            e.contains("c.json") && e.contains("`lr` is the old name of `learning_rate`"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
