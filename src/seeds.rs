//! Seeds derived from a run's one seed: one stream per purpose.
//!
//! A run has one seed. Each random choice that must not depend on another —
//! the batch of update t, the dropout masks of update t, row r of a batch of
//! sampled answers — draws from its own stream, seeded by
//! [`seed_for`]`(seed, stream, index) = seed ⊕ (index + 1)·salt` (wrapping;
//! [`gridworld::stream_seed`]) with an odd 64-bit `salt` per [`Stream`].
//! The seed of update t is a function of `(seed, t)` alone, so a resumed run
//! draws exactly what an uninterrupted one would.

use gridworld::stream_seed;

/// A purpose a seed is derived for; each has its own salt ([`Stream::salt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The token windows of pre-training update t
    /// ([`crate::lm::TokenStream`]).
    CorpusBatch,
    /// The dropout masks of update t of [`crate::lm::Trainer`] (the step's
    /// seed; each mask then takes a [`Stream::DropoutMask`] of it). Shares
    /// its salt with [`Stream::CorpusBatch`]: the runs on disk were trained so,
    /// and a new salt would change their numbers.
    TrainStep,
    /// The conversations of SFT update t ([`crate::lm::sft::SftDataset`]).
    SftBatch,
    /// Mask k (from 0) drawn within one update, from the step's seed
    /// (LoRA's dropout).
    DropoutMask,
    /// Row r + 1 of a batch of sampled answers, from the sampling seed (row
    /// 0 uses the seed itself; [`crate::lm::SamplingConfig::seed_for_row`]).
    SampleRow,
    /// The epoch-e shuffle of DPO's training pairs ([`crate::lm::train::epoch_batch`]).
    DpoEpoch,
    /// The epoch-e shuffle of the reward model's training examples.
    RewardModelEpoch,
    /// Batch t of the reward probe's training examples.
    RewardProbeBatch,
    /// Sample k of chunk c of best-of-n sampling (index k·1009 + c).
    BestOfNSample,
    /// Round r of online DPO (its answers' sampling seed).
    OnlineDpoRound,
    /// Answer a of chunk c within one round of online DPO (index a·7919 + c).
    OnlineDpoAnswer,
    /// Sampling temperature k of the preference-pair generator (a 32-bit salt:
    /// the committed preference data were drawn so).
    PreferenceSample,
    /// The rollout of PPO iteration t.
    PpoRollout,
    /// The prompt order of PPO's pass p over its prompts.
    PpoPromptPass,
    /// Round r, chunk c of a policy evaluation's samples (index r·7919 + c).
    PolicyEvaluation,
}

impl Stream {
    /// The stream's odd 64-bit constant.
    pub const fn salt(self) -> u64 {
        match self {
            Stream::CorpusBatch | Stream::TrainStep => 0xD1B5_4A32_D192_ED03,
            Stream::SftBatch => 0xA24B_AED4_963E_E407,
            // 2⁶⁴/φ, the golden-ratio increment of SplitMix64.
            Stream::DropoutMask
            | Stream::SampleRow
            | Stream::PpoRollout
            | Stream::OnlineDpoAnswer => 0x9E37_79B9_7F4A_7C15,
            Stream::DpoEpoch | Stream::BestOfNSample => 0xD6E8_FEB8_6659_FD93,
            Stream::RewardModelEpoch => 0xC2B2_AE3D_27D4_EB4F,
            Stream::RewardProbeBatch => 0x94D0_49BB_1331_11EB,
            Stream::OnlineDpoRound => 0xA24B_AED4_963E_E407,
            Stream::PreferenceSample => 0x9E37_79B9,
            Stream::PpoPromptPass => 0xBF58_476D_1CE4_E5B9,
            Stream::PolicyEvaluation => 0x2545_F491_4F6C_DD1D,
        }
    }
}

/// The seed of element `index` (an update, a mask, a row) of `stream` in a
/// run seeded with `seed`: `seed ⊕ (index + 1)·salt` (wrapping).
pub fn seed_for(seed: u64, stream: Stream, index: u64) -> u64 {
    stream_seed(seed, index, stream.salt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streams of rungs 6–8 keep the salts their modules used inline
    /// before they were named here, so committed runs keep their numbers.
    #[test]
    fn rlhf_streams_keep_the_salts_they_replaced() {
        for (stream, salt) in [
            (Stream::DpoEpoch, 0xD6E8_FEB8_6659_FD93u64),
            (Stream::BestOfNSample, 0xD6E8_FEB8_6659_FD93),
            (Stream::RewardModelEpoch, 0xC2B2_AE3D_27D4_EB4F),
            (Stream::RewardProbeBatch, 0x94D0_49BB_1331_11EB),
            (Stream::OnlineDpoRound, 0xA24B_AED4_963E_E407),
            (Stream::OnlineDpoAnswer, 0x9E37_79B9_7F4A_7C15),
            (Stream::PreferenceSample, 0x9E37_79B9),
            (Stream::PpoRollout, 0x9E37_79B9_7F4A_7C15),
            (Stream::PpoPromptPass, 0xBF58_476D_1CE4_E5B9),
            (Stream::PolicyEvaluation, 0x2545_F491_4F6C_DD1D),
        ] {
            assert_eq!(stream.salt(), salt, "{stream:?}");
        }
    }

    /// The derived seeds are the ones the code used before this module
    /// existed (written out by hand), so trained numbers did not change.
    #[test]
    fn seeds_match_the_formulas_they_replace() {
        let (seed, t) = (1234u64, 17u64);
        assert_eq!(
            seed_for(seed, Stream::CorpusBatch, t),
            seed ^ 18u64.wrapping_mul(0xD1B5_4A32_D192_ED03)
        );
        assert_eq!(
            seed_for(seed, Stream::TrainStep, t),
            seed_for(seed, Stream::CorpusBatch, t)
        );
        assert_eq!(
            seed_for(seed, Stream::SftBatch, t),
            seed ^ 18u64.wrapping_mul(0xA24B_AED4_963E_E407)
        );
        // LoRA's mask k + 1 and sampled row r: seed ⊕ r·φ.
        for r in 1..4u64 {
            assert_eq!(
                seed_for(seed, Stream::SampleRow, r - 1),
                seed ^ r.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            );
        }
        assert_ne!(
            seed_for(seed, Stream::CorpusBatch, t),
            seed_for(seed, Stream::SftBatch, t)
        );
    }
}
