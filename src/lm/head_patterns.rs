//! Do attention heads specialise? A measurement instead of two pictures.
//!
//! For every head we average, over the query positions i ≥ 2 of some texts, the
//! attention weight it gives to three fixed keys:
//!
//! ```text
//! previous_token = mean_i a[i, i−1]     (a "previous-token head", Olsson et al. 2022)
//! first_token    = mean_i a[i, 0]       (an "attention sink", Xiao et al. 2023;
//!                                        Clark et al. 2019 saw the same on [CLS]/[SEP])
//! current_token  = mean_i a[i, i]
//! ```
//!
//! Positions 0 and 1 are left out so that the three keys are always different
//! tokens. A head that spread its attention uniformly over the i + 1 visible
//! keys would give each of them 1/(i + 1); [`HeadPatterns::uniform_share`] is that
//! number averaged over the same queries, the bar a specialised head must clear.

use super::pretrained::LanguageModel;
use anyhow::{ensure, Result};
use candle_core::{IndexOp, Tensor};

/// Query positions below this are not averaged (see the module docs).
const FIRST_QUERY: usize = 2;

/// The three keys whose attention share is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionTarget {
    /// Key i − 1, the token just before the query.
    PreviousToken,
    /// Key 0, the first token of the text.
    FirstToken,
    /// Key i, the query's own token.
    CurrentToken,
}

impl AttentionTarget {
    pub const ALL: [AttentionTarget; 3] = [
        AttentionTarget::PreviousToken,
        AttentionTarget::FirstToken,
        AttentionTarget::CurrentToken,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttentionTarget::PreviousToken => "previous token",
            AttentionTarget::FirstToken => "first token",
            AttentionTarget::CurrentToken => "current token",
        }
    }
}

/// One head's mean attention share on each target.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadPattern {
    pub layer: usize,
    pub head: usize,
    pub previous_token: f64,
    pub first_token: f64,
    pub current_token: f64,
}

impl HeadPattern {
    /// The share of `target`.
    pub fn share(&self, target: AttentionTarget) -> f64 {
        match target {
            AttentionTarget::PreviousToken => self.previous_token,
            AttentionTarget::FirstToken => self.first_token,
            AttentionTarget::CurrentToken => self.current_token,
        }
    }

    /// The target this head attends to most, and its share.
    pub fn strongest(&self) -> TargetShare {
        AttentionTarget::ALL
            .into_iter()
            .map(|target| TargetShare {
                target,
                share: self.share(target),
            })
            .fold(None, |best: Option<TargetShare>, t| match best {
                Some(b) if b.share >= t.share => Some(b),
                _ => Some(t),
            })
            .expect("three targets")
    }
}

/// Heads per pattern, from [`HeadPatterns::counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternCounts {
    pub previous_token: usize,
    pub first_token: usize,
    pub current_token: usize,
    /// Heads with no target at the threshold.
    pub mixed: usize,
}

impl std::fmt::Display for PatternCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} previous-token, {} first-token, {} current-token, {} mixed",
            self.previous_token, self.first_token, self.current_token, self.mixed
        )
    }
}

/// A target and the mean attention share a head gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetShare {
    pub target: AttentionTarget,
    pub share: f64,
}

/// Every head of a model, measured on the same texts.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadPatterns {
    /// Layer-major: layer 0's heads first.
    pub heads: Vec<HeadPattern>,
    /// What a uniformly attending head would give any one visible key, averaged
    /// over the same queries: mean_i 1/(i + 1).
    pub uniform_share: f64,
    /// Query positions averaged over (all texts together).
    pub queries: usize,
}

impl HeadPatterns {
    /// Heads whose strongest target gets at least `min_share` of their attention.
    pub fn specialised(&self, min_share: f64) -> Vec<&HeadPattern> {
        self.heads
            .iter()
            .filter(|h| h.strongest().share >= min_share)
            .collect()
    }

    /// How many heads are specialised (strongest share ≥ `min_share`) on each target.
    pub fn counts(&self, min_share: f64) -> PatternCounts {
        let specialised = self.specialised(min_share);
        let on = |t: AttentionTarget| {
            specialised
                .iter()
                .filter(|h| h.strongest().target == t)
                .count()
        };
        PatternCounts {
            previous_token: on(AttentionTarget::PreviousToken),
            first_token: on(AttentionTarget::FirstToken),
            current_token: on(AttentionTarget::CurrentToken),
            mixed: self.heads.len() - specialised.len(),
        }
    }

    /// The shares of `target` as a layers × heads grid, for a heatmap.
    pub fn grid(&self, target: AttentionTarget) -> Vec<Vec<f64>> {
        let layers = self.heads.iter().map(|h| h.layer + 1).max().unwrap_or(0);
        let mut grid = vec![Vec::new(); layers];
        for h in &self.heads {
            grid[h.layer].push(h.share(target));
        }
        grid
    }

    /// A plain-text table: one row per head with its three shares and its label
    /// (the strongest target when it gets at least `min_share`, else "mixed").
    pub fn table(&self, min_share: f64) -> String {
        let mut out = format!(
            "{:<6} {:<5} {:>9} {:>9} {:>9}  pattern (≥ {min_share:.2})\n",
            "layer", "head", "previous", "first", "current"
        );
        for h in &self.heads {
            let best = h.strongest();
            let label = if best.share >= min_share {
                best.target.name()
            } else {
                "mixed"
            };
            out.push_str(&format!(
                "{:<6} {:<5} {:>9.3} {:>9.3} {:>9.3}  {label}\n",
                h.layer, h.head, h.previous_token, h.first_token, h.current_token
            ));
        }
        out.push_str(&format!(
            "(a uniform head would give each key {:.3}, over {} queries)\n",
            self.uniform_share, self.queries
        ));
        out
    }
}

/// Measure every head of `lm` on `texts`, each cut to its first `max_tokens`
/// tokens. Texts shorter than three tokens are refused (they have no query with
/// three distinct keys).
pub fn head_patterns<S: AsRef<str>>(
    lm: &LanguageModel,
    texts: impl IntoIterator<Item = S>,
    max_tokens: usize,
) -> Result<HeadPatterns> {
    let (layers, heads) = (lm.config.num_hidden_layers, lm.config.num_attention_heads);
    // Sums over queries of a[i, i−1], a[i, 0], a[i, i], per (layer, head).
    let mut sums = vec![[0.0f64; 3]; layers * heads];
    let (mut queries, mut uniform) = (0usize, 0.0f64);
    for (n, text) in texts.into_iter().enumerate() {
        let mut ids = lm.tokenizer.encode(text.as_ref())?;
        ids.truncate(max_tokens);
        let t = ids.len();
        ensure!(
            t > FIRST_QUERY,
            "head_patterns: text {n} has {t} tokens; at least {} are needed",
            FIRST_QUERY + 1
        );
        let x = Tensor::new(ids.as_slice(), lm.device())?.unsqueeze(0)?;
        for (layer, probs) in lm.model.attention_maps(&x)?.iter().enumerate() {
            for head in 0..heads {
                let a: Vec<Vec<f32>> = probs.i((0, head))?.to_vec2()?;
                let sum = &mut sums[layer * heads + head];
                for (i, row) in a.iter().enumerate().skip(FIRST_QUERY) {
                    sum[0] += f64::from(row[i - 1]);
                    sum[1] += f64::from(row[0]);
                    sum[2] += f64::from(row[i]);
                }
            }
        }
        queries += t - FIRST_QUERY;
        uniform += (FIRST_QUERY..t).map(|i| 1.0 / (i + 1) as f64).sum::<f64>();
    }
    ensure!(queries > 0, "head_patterns: no texts given");
    let q = queries as f64;
    let heads = sums
        .iter()
        .enumerate()
        .map(|(k, s)| HeadPattern {
            layer: k / heads,
            head: k % heads,
            previous_token: s[0] / q,
            first_token: s[1] / q,
            current_token: s[2] / q,
        })
        .collect();
    Ok(HeadPatterns {
        heads,
        uniform_share: uniform / q,
        queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{LlamaConfig, TextTokenizer};
    use candle_core::{DType, Device};

    fn tiny_model(seed: u64) -> LanguageModel {
        let tokenizer = TextTokenizer::tiny();
        let config = LlamaConfig::tiny(tokenizer.vocab_size());
        LanguageModel::new_random(config, tokenizer, seed, &Device::Cpu, DType::F32).unwrap()
    }

    /// The shares are read from the attention maps themselves: recompute one
    /// head's previous-token share by hand from `attention_maps`.
    #[test]
    fn shares_match_the_attention_maps_they_summarise() {
        let lm = tiny_model(3);
        let text = "the cat sat on the mat and the dog sat too";
        let p = head_patterns(&lm, [text], 64).unwrap();
        assert_eq!(
            p.heads.len(),
            lm.config.num_hidden_layers * lm.config.num_attention_heads
        );
        let ids = lm.tokenizer.encode(text).unwrap();
        let x = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let maps = lm.model.attention_maps(&x).unwrap();
        let (layer, head) = (lm.config.num_hidden_layers - 1, 1);
        let a: Vec<Vec<f32>> = maps[layer].i((0, head)).unwrap().to_vec2().unwrap();
        let t = ids.len();
        let prev: f64 = (2..t).map(|i| f64::from(a[i][i - 1])).sum::<f64>() / (t - 2) as f64;
        let h = &p.heads[layer * lm.config.num_attention_heads + head];
        assert_eq!((h.layer, h.head), (layer, head));
        assert!(
            (h.previous_token - prev).abs() < 1e-9,
            "{} vs {prev}",
            h.previous_token
        );
        let uniform: f64 = (2..t).map(|i| 1.0 / (i + 1) as f64).sum::<f64>() / (t - 2) as f64;
        assert!((p.uniform_share - uniform).abs() < 1e-12);
        assert_eq!(p.queries, t - 2);
    }

    /// An untrained model's heads attend almost uniformly: no head clears half
    /// of its attention on one target, and every share is near the uniform one.
    #[test]
    fn an_untrained_model_has_no_specialised_heads() {
        let lm = tiny_model(0);
        let texts = ["one two three four five six seven eight nine ten eleven twelve"];
        let p = head_patterns(&lm, texts, 64).unwrap();
        assert!(p.specialised(0.5).is_empty(), "{}", p.table(0.5));
        for h in &p.heads {
            for target in AttentionTarget::ALL {
                assert!(
                    (h.share(target) - p.uniform_share).abs() < 0.05,
                    "{}",
                    p.table(0.5)
                );
            }
        }
    }

    #[test]
    fn strongest_picks_the_largest_share_and_the_grid_is_layers_by_heads() {
        let h = HeadPattern {
            layer: 1,
            head: 0,
            previous_token: 0.2,
            first_token: 0.7,
            current_token: 0.1,
        };
        assert_eq!(h.strongest().target, AttentionTarget::FirstToken);
        let p = HeadPatterns {
            heads: vec![
                HeadPattern {
                    layer: 0,
                    head: 0,
                    ..h.clone()
                },
                HeadPattern {
                    layer: 0,
                    head: 1,
                    ..h.clone()
                },
                h.clone(),
                HeadPattern {
                    layer: 1,
                    head: 1,
                    first_token: 0.3,
                    ..h.clone()
                },
            ],
            uniform_share: 0.1,
            queries: 10,
        };
        assert_eq!(
            p.grid(AttentionTarget::FirstToken),
            vec![vec![0.7, 0.7], vec![0.7, 0.3]]
        );
        assert_eq!(p.specialised(0.5).len(), 3);
        assert_eq!(
            p.counts(0.5),
            PatternCounts {
                previous_token: 0,
                first_token: 3,
                current_token: 0,
                mixed: 1
            }
        );
        assert_eq!(p.counts(0.75).mixed, 4);
        assert!(p.table(0.5).contains("mixed"));
    }

    #[test]
    fn too_short_a_text_is_refused_with_its_index() {
        let lm = tiny_model(0);
        let err = head_patterns(&lm, ["the cat sat on the mat", "a"], 64).unwrap_err();
        assert!(err.to_string().contains("text 1"), "{err}");
    }
}
