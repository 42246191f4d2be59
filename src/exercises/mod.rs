//! Exercises that check themselves, one module per notebook (Spinning Up style).
//!
//! Each notebook ends with a few exercises: a cell the learner edits (a stub
//! function with a `// TODO`), then a check cell that hands the learner's function
//! to a checker here. A checker runs it on small inputs, compares the answer with
//! the library's own implementation (never a number copied from a run) and returns
//! a [`Check`]: `✓ …` when it matches, or `✗ …` with a hint naming where the answer
//! is off and by how much ("your GAE is off at t = 3: expected 0.812, got 0.700").
//!
//! | notebook | module | exercises |
//! |---|---|---|
//! | `01_rl_basics` | [`gridworld`] | returns-to-go, one Bellman backup, value iteration |
//! | `02_ppo_gridworld` | [`ppo`] | GAE, the clipped surrogate, the k3 KL estimate |
//! | `03_transformers` | [`transformer`] | causal attention weights, the next-token loss |
//! | `04_sft` | [`sft`] | the assistant-only loss mask, the masked loss |
//! | `05_human_feedback` | [`feedback`] | an Elo update, a Wilson interval, Cohen's κ |
//!
//! The reference solutions live in `notebooks/solutions/NN.rs`, one section per
//! exercise id (`// exercise: 01-value-iteration`); the exercise cell carries the
//! same id as a cell tag (`exercise:01-value-iteration`), its check cell the tag
//! `check`. `scripts/run_notebooks.py --solutions notebooks/solutions` (what
//! `scripts/test.sh` runs) swaps the references in and fails unless every check
//! prints `✓`; `tests/exercises.rs` runs every checker on its reference, and each
//! module's unit tests run it on the notebook's unchanged stub, which must fail
//! with its hint.

pub mod feedback;
pub mod gridworld;
pub mod ppo;
pub mod sft;
pub mod transformer;

use std::fmt;

/// The verdict of one checker: passed, or a hint saying where the answer is off.
///
/// `Display` (and the notebook's rendering of a check cell's value) prints
/// `✓ <exercise>: <message>` or `✗ <exercise>: <hint>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The exercise id, as in the cell tag `exercise:<id>` (e.g. `01-value-iteration`).
    pub exercise: String,
    /// Whether the learner's answer matched the library's.
    pub passed: bool,
    /// What was checked (when passed) or the hint (when not).
    pub message: String,
}

impl Check {
    /// A passed check.
    pub fn pass(exercise: &str, message: impl Into<String>) -> Self {
        Self {
            exercise: exercise.to_string(),
            passed: true,
            message: message.into(),
        }
    }

    /// A failed check with its hint.
    pub fn fail(exercise: &str, hint: impl Into<String>) -> Self {
        Self {
            exercise: exercise.to_string(),
            passed: false,
            message: hint.into(),
        }
    }

    /// Shown by the evcxr kernel when a check is a cell's value.
    pub fn evcxr_display(&self) {
        println!("{self}");
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { '✓' } else { '✗' };
        write!(f, "{mark} {}: {}", self.exercise, self.message)
    }
}

/// Two numbers agree when they differ by at most `tol`, relative to the larger
/// magnitude once it exceeds 1.
pub(crate) fn close(expected: f64, got: f64, tol: f64) -> bool {
    (expected - got).abs() <= tol * expected.abs().max(got.abs()).max(1.0)
}

/// The first index where `got` differs from `expected` (beyond `tol`), if any;
/// NaN never agrees.
pub(crate) fn first_mismatch(expected: &[f64], got: &[f64], tol: f64) -> Option<usize> {
    expected
        .iter()
        .zip(got)
        .position(|(&e, &g)| !close(e, g, tol))
}

/// Whether `got` agrees with `expected` everywhere (same length, within `tol`).
pub(crate) fn all_close(expected: &[f64], got: &[f64], tol: f64) -> bool {
    expected.len() == got.len() && first_mismatch(expected, got, tol).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_prints_a_mark_the_id_and_the_message() {
        assert_eq!(
            Check::pass("01-x", "all 12 values match").to_string(),
            "✓ 01-x: all 12 values match"
        );
        let fail = Check::fail("01-x", "off at t = 3");
        assert!(!fail.passed);
        assert_eq!(fail.to_string(), "✗ 01-x: off at t = 3");
    }

    #[test]
    fn closeness_is_relative_above_one_and_nan_never_agrees() {
        assert!(close(1000.0, 1000.0005, 1e-6));
        assert!(!close(1.0, 1.001, 1e-6));
        assert!(!close(1.0, f64::NAN, 1e-6));
        assert_eq!(
            first_mismatch(&[1.0, 2.0, 3.0], &[1.0, 2.5, 3.0], 1e-9),
            Some(1)
        );
        assert!(!all_close(&[1.0, 2.0], &[1.0], 1e-9));
    }
}
