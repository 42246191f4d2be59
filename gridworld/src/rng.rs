//! A tiny, seedable pseudo-random number generator.
//!
//! The gridworld (and the rest of rlhf-lab) needs randomness that is identical on
//! every machine for a given seed, so that "the same seed gives the same result".
//! We use SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014): a 64-bit state advanced by a Weyl sequence and
//! scrambled by two multiply-xorshift rounds. It passes BigCrush and is more than
//! enough for sampling actions and slips.

use serde::{Deserialize, Serialize};

/// The seed of stream `index` (an update, an epoch, a round, a chunk…) of a
/// run seeded with `seed`: `seed ⊕ (index + 1)·salt` (wrapping), `salt` an odd
/// 64-bit constant chosen per purpose, so that the batch order, the sampling
/// dice and the held-out dice of one run never share a stream. Every derived
/// seed in the project is made here.
pub fn stream_seed(seed: u64, index: u64, salt: u64) -> u64 {
    seed ^ index.wrapping_add(1).wrapping_mul(salt)
}

/// SplitMix64's Weyl increment, ⌊2⁶⁴/φ⌋ made odd.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 generator. `Clone` it to fork a reproducible stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole future is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Jump over the next `n` outputs of [`Rng::next_u64`] at once: the state
    /// is a Weyl sequence (`state += γ` per output), so `n` steps are
    /// `state += n·γ`. Lets a loop's iterations run in parallel on the very
    /// draws the sequential loop would make (iteration `r` skips `r` times
    /// its draw count).
    #[inline]
    pub fn skip(&mut self, n: u64) {
        self.state = self.state.wrapping_add(n.wrapping_mul(GAMMA));
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; bias < 2^-32 for small n).
    ///
    /// # Panics
    /// If `n == 0`.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0): empty range");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Two different indices drawn uniformly from `0..n` (an ordered pair).
    ///
    /// # Panics
    /// If `n < 2`.
    pub fn distinct_pair(&mut self, n: usize) -> (usize, usize) {
        assert!(
            n >= 2,
            "Rng::distinct_pair needs at least two items, got {n}"
        );
        let a = self.below(n);
        let mut b = self.below(n - 1);
        if b >= a {
            b += 1;
        }
        (a, b)
    }

    /// Standard normal sample (Box–Muller transform).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1], so ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Index drawn from the (unnormalised, non-negative) weights.
    /// Returns the last index with positive weight if rounding leaves a remainder.
    pub fn categorical(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        let mut last = 0;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                last = i;
                if x < w {
                    return i;
                }
                x -= w;
            }
        }
        last
    }

    /// A new generator for a sub-stream (e.g. one per environment of a batch).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// seed ⊕ (index + 1)·salt by hand, wrapping at 2⁶⁴.
    #[test]
    fn stream_seed_by_hand() {
        assert_eq!(stream_seed(0b1010, 0, 0b0110), 0b1100);
        assert_eq!(stream_seed(0, 2, 5), 15);
        assert_eq!(stream_seed(7, u64::MAX, 3), 7);
        assert_eq!(stream_seed(0, 1, 1 << 63), 0);
    }

    #[test]
    fn skipping_n_draws_lands_where_drawing_them_does() {
        let mut drawn = Rng::new(42);
        for _ in 0..1000 {
            drawn.next_u64();
        }
        let mut skipped = Rng::new(42);
        skipped.skip(1000);
        assert_eq!(skipped, drawn);
        assert_eq!(skipped.next_u64(), drawn.next_u64());
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn uniform_mean_and_categorical_frequencies() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let mean: f64 = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[r.categorical(&[1.0, 2.0, 1.0])] += 1;
        }
        let p1 = counts[1] as f64 / n as f64;
        assert!((p1 - 0.5).abs() < 0.01, "p1 {p1}");
        assert_eq!(r.categorical(&[0.0, 0.0, 3.0]), 2);
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
