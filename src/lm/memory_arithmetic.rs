//! What a model costs in memory, by arithmetic: parameters × bytes per number.
//!
//! ```text
//! weights            = parameters × bytes(format)
//! training, f32      = parameters × (4 weights + 4 gradients + 8 AdamW m and v)  = 16 B
//! training, mixed    = parameters × (2 bf16 weights + 2 bf16 gradients
//!                                    + 4 f32 master weights + 8 AdamW m and v)  = 16 B
//! ```
//!
//! Both training counts leave out activations (which grow with batch × length)
//! and are the ones of the ZeRO paper (Rajbhandari et al. 2020, §3.1: "16Ψ
//! bytes" for mixed-precision Adam). [`super::memory`] measures the real
//! thing on this machine.

/// A number format for weights and how many bytes one weight takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightFormat {
    /// Its name in tables.
    pub name: &'static str,
    /// Bytes per weight (4-bit: half a byte; block scales left out).
    pub bytes_per_weight: f64,
}

/// The formats of the weight-memory table, widest first.
pub const WEIGHT_FORMATS: &[WeightFormat] = &[
    WeightFormat {
        name: "f32",
        bytes_per_weight: 4.0,
    },
    WeightFormat {
        name: "bf16 / f16",
        bytes_per_weight: 2.0,
    },
    WeightFormat {
        name: "int8",
        bytes_per_weight: 1.0,
    },
    WeightFormat {
        name: "4-bit",
        bytes_per_weight: 0.5,
    },
];

/// A model named for a table, with its parameter count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSize<'a> {
    /// The row's label.
    pub name: &'a str,
    /// Number of parameters.
    pub parameters: usize,
}

/// The weights of a model in one format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightBytes {
    /// The format's name ([`WeightFormat::name`]).
    pub format: &'static str,
    /// parameters × bytes per weight.
    pub bytes: f64,
}

/// Memory of `parameters` weights in each of [`WEIGHT_FORMATS`].
/// Weights only: training needs more, see [`training_memory`].
pub fn weight_memory(parameters: usize) -> Vec<WeightBytes> {
    WEIGHT_FORMATS
        .iter()
        .map(|f| WeightBytes {
            format: f.name,
            bytes: parameters as f64 * f.bytes_per_weight,
        })
        .collect()
}

/// What full fine-tuning with AdamW holds besides activations, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingBytes {
    /// The weights (f32: 4 bytes each).
    pub weights: f64,
    /// One gradient per trained weight (f32: 4 bytes each).
    pub gradients: f64,
    /// AdamW's first and second moments (f32: 8 bytes per weight).
    pub optimizer_state: f64,
}

impl TrainingBytes {
    /// Weights + gradients + optimiser state: 16 bytes per parameter.
    pub fn total(&self) -> f64 {
        self.weights + self.gradients + self.optimizer_state
    }
}

/// Memory of training every one of `parameters` weights in f32 with AdamW
/// (the setup of this project's trainers), activations left out.
pub fn training_memory(parameters: usize) -> TrainingBytes {
    let n = parameters as f64;
    TrainingBytes {
        weights: 4.0 * n,
        gradients: 4.0 * n,
        optimizer_state: 8.0 * n,
    }
}

/// Human-readable bytes, in powers of 1000 (1.5 GB = 1.5·10⁹ bytes).
pub fn format_bytes(bytes: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// A Markdown table of the weight memory of `models` in each format.
pub fn memory_table(models: &[ModelSize]) -> String {
    let mut s = String::from("| model | parameters |");
    for f in WEIGHT_FORMATS {
        s.push_str(&format!(" {} |", f.name));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(WEIGHT_FORMATS.len()));
    s.push('\n');
    for m in models {
        s.push_str(&format!("| {} | {} |", m.name, m.parameters));
        for w in weight_memory(m.parameters) {
            s.push_str(&format!(" {} |", format_bytes(w.bytes)));
        }
        s.push('\n');
    }
    s
}

/// A Markdown table of what full f32 training with AdamW holds for `models`:
/// weights, gradients, optimiser state and their total ([`training_memory`]).
pub fn training_memory_table(models: &[ModelSize]) -> String {
    let mut s = String::from(
        "| model | weights (f32) | gradients | AdamW m and v | total, before activations |\n\
         |---|---|---|---|---|\n",
    );
    for m in models {
        let t = training_memory(m.parameters);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            m.name,
            format_bytes(t.weights),
            format_bytes(t.gradients),
            format_bytes(t.optimizer_state),
            format_bytes(t.total())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_7b_model_needs_16_bytes_per_parameter_to_train() {
        // Llama-2-7B: 6,738,415,616 parameters. ZeRO's 16Ψ: about 108 GB.
        let t = training_memory(6_738_415_616);
        assert_eq!(t.total(), 16.0 * 6_738_415_616.0);
        assert_eq!(format_bytes(t.total()), "107.8 GB");
        assert_eq!(
            format_bytes(weight_memory(6_738_415_616)[1].bytes),
            "13.5 GB"
        );
    }

    #[test]
    fn memory_is_parameters_times_bytes() {
        let m = weight_memory(134_515_008);
        assert_eq!(m[0].bytes, 538_060_032.0);
        assert_eq!(m[3].bytes, 67_257_504.0);
        assert_eq!(format_bytes(538_060_032.0), "538.1 MB");
        let x = ModelSize {
            name: "x",
            parameters: 10,
        };
        assert!(memory_table(&[x]).contains("| x | 10 | 40.0 B | 20.0 B | 10.0 B | 5.0 B |"));
    }

    #[test]
    fn tables_have_a_row_per_model_and_a_column_per_format() {
        let models = [
            ModelSize {
                name: "a",
                parameters: 1000,
            },
            ModelSize {
                name: "b",
                parameters: 2_000_000,
            },
        ];
        let t = memory_table(&models);
        assert_eq!(t.lines().count(), 4);
        assert!(t.contains("| b | 2000000 | 8.0 MB | 4.0 MB | 2.0 MB | 1.0 MB |"));
        let t = training_memory_table(&models);
        assert!(t.contains("| b | 8.0 MB | 8.0 MB | 16.0 MB | 32.0 MB |"));
    }
}
