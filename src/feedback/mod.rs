//! Rung 5: human feedback, turned into a numerical reward signal.
//!
//! - [`records`]: comparisons, thumbs, 1–10 ratings and flaw checklists as validated
//!   JSON Lines; export to / import from TRL's `prompt / chosen / rejected`.
//! - [`candidates`] and [`gold`]: prompts about the project's [`crate::world`],
//!   responses in several styles, and the gold standard of taste that plays "what
//!   people really want".
//! - [`annotators`] and [`simulate`]: a crowd with noise, subjectivity, a narrow
//!   group's bias, rating habits and bad faith.
//! - [`listwise`]: a labeller ranking several answers at once, and the pairs it implies.
//! - [`agreement`]: pairwise agreement, Cohen's and Fleiss' κ, agreement with consensus.
//! - [`ranking`]: online Elo, Bradley–Terry, bootstrap intervals, Kendall τ, Spearman ρ.
//! - [`aggregate`]: Wilson intervals, checklist scores, z-scored ratings, robust BT,
//!   reward normalisation.

pub mod aggregate;
pub mod agreement;
pub mod annotators;
pub mod candidates;
pub mod gold;
pub mod listwise;
pub mod ranking;
pub mod records;
pub mod simulate;

/// The hasher of the maps that index a million records by a short key
/// (system names, distinct matches): foldhash, several times faster than
/// the standard library's SipHash there, with a fixed seed so that nothing
/// depends on the run. None of these maps is iterated to make a result.
pub(crate) type FastHash = foldhash::fast::FixedState;
