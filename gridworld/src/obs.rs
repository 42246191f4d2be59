//! Observation encodings: how a network sees a state.

use crate::mdp::GridWorld;
use serde::{Deserialize, Serialize};

/// How a state becomes a vector of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Encoding {
    /// A vector of length `n_states` with a single 1 (a lookup table for the network).
    #[default]
    OneHot,
    /// `(row, col)` scaled to [0, 1]: the network must generalise across cells.
    Coordinates,
}

impl Encoding {
    /// Length of the encoded vector.
    pub fn dim(self, world: &GridWorld) -> usize {
        match self {
            Encoding::OneHot => world.n_states(),
            Encoding::Coordinates => 2,
        }
    }

    /// Append the encoding of state `s` to `out`.
    pub fn encode_into(self, world: &GridWorld, s: usize, out: &mut Vec<f32>) {
        match self {
            Encoding::OneHot => {
                let start = out.len();
                out.resize(start + world.n_states(), 0.0);
                out[start + s] = 1.0;
            }
            Encoding::Coordinates => {
                let (r, c) = world.cell_of(s);
                let scale = |x: usize, n: usize| {
                    if n > 1 {
                        x as f32 / (n - 1) as f32
                    } else {
                        0.0
                    }
                };
                out.push(scale(r, world.map.rows));
                out.push(scale(c, world.map.cols));
            }
        }
    }

    /// Row-major `[states.len(), dim]` matrix of encodings.
    pub fn encode_batch(self, world: &GridWorld, states: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(states.len() * self.dim(world));
        for &s in states {
            self.encode_into(world, s, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let w = GridWorld::load("aima").unwrap();
        let one = Encoding::OneHot.encode_batch(&w, &[3]);
        assert_eq!(one.len(), 11);
        assert_eq!(one.iter().sum::<f32>(), 1.0);
        assert_eq!(one[3], 1.0);
        let s = w.state_of(2, 3).unwrap();
        assert_eq!(Encoding::Coordinates.encode_batch(&w, &[s]), vec![1.0, 1.0]);
    }
}
