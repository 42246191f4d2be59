//! Everything a notebook needs in scope: `use rlhf_lab::prelude::*;`.

pub use crate::feedback::aggregate::{
    answer_scores, checklist_scores, mean_by_system, normalize_rewards, ratings_tau_vs_gold,
    robust_bradley_terry, system_matches, tau_vs_gold, thumbs_up_rates, wilson_interval,
    z_scored_ratings, Aggregation, AnnotatorWeight, AnswerScore, FlawWeight, FlawWeights,
    ItemMatches, ProportionInterval, SystemScore, ThumbsUpRate,
};
pub use crate::feedback::agreement::{
    agreement_with_consensus, cohen_kappa, fleiss_kappa, pairwise_agreement, ConsensusAgreement,
    PairAgreement,
};
pub use crate::feedback::annotators::{
    honest_crowd, narrow_group, with_trolls, Annotator, Behaviour,
};
pub use crate::feedback::candidates::{
    candidates, prompts, Candidate, Prompt, PromptKind, SYSTEMS,
};
pub use crate::feedback::gold::{features, gold_score, gold_score_turn, Taste};
pub use crate::feedback::listwise::{rank_answers, simulate_rankings, AnswerRanking, RankedAnswer};
pub use crate::feedback::ranking::{
    bootstrap, bradley_terry, elo, elo_history, kendall_tau, simulate_matches, spearman_rho,
    tau_vs_matches, BtOptions, EloConfig, EloSnapshot, Interval, Match, TauAtSize,
};
pub use crate::feedback::records::{to_preference_pairs, Comparison, Feedback, Winner};
pub use crate::feedback::simulate::{
    arena_truth, gold_system_scores, simulate_absolute, simulate_arena, simulate_comparisons,
    AbsoluteFeedback,
};
pub use crate::gridworld_plots::{
    outcome_chart, policy_view, solution_view, sweep, terminal_outcomes, value_grid, with_param,
    SweepPoint, TerminalOutcome, ValueTable,
};
pub use crate::lm::behaviour::{behaviour_table, evaluate_behaviour, KindReport};
pub use crate::lm::few_shot::FewShotPrompt;
pub use crate::lm::head_patterns::{head_patterns, AttentionTarget, HeadPatterns, PatternCounts};
pub use crate::lm::memory_arithmetic::{
    format_bytes, memory_table, training_memory, training_memory_table, weight_memory, ModelSize,
};
pub use crate::lm::plots::{
    attention_map, behaviour_figure, head_patterns_figure, loss_curve, loss_mask_view,
    next_token_bars, token_view,
};
pub use crate::lm::pretrained::smollm2_gguf;
pub use crate::lm::sft::SftDataset;
pub use crate::lm::sft_data::Conversation;
pub use crate::lm::{
    pretrain, sft, sft_data, BatchSource, ChatMessage, LanguageModel, LlamaConfig, LmTrainer,
    NextTokenLoss, Objective, RunOptions, SamplingConfig, TextTokenizer, TrainConfig, TrainRecord,
    Trainer,
};
pub use crate::plot::diagrams::{rlhf_phases, value_vs_reward};
pub use crate::plot::{BarChart, Figure, Heatmap, Histogram, LineChart};
pub use crate::rl::plots::{
    agent_vs_truth, compare_curves, gradient_variance_chart, learning_curve, metric_curve,
    MetricCurve,
};
pub use crate::rl::{
    compare_algorithms, gradient_variance, metrics_to_csv, AdvantageEstimator, Algorithm,
    GridworldTrainer, GroundTruthReport, IterationMetrics, LearningCurve, PpoConfig,
};
pub use crate::splits::Splits;
pub use crate::world::World;
pub use anyhow;
pub use candle_core::{DType, Device};
pub use gridworld::render::{ascii, ascii_values};
pub use gridworld::solve::{
    bellman_residual, expected_return, optimal_actions, policy_agreement, policy_evaluation,
    policy_iteration, policy_table, terminal_distribution, uniform_policy, value_iteration,
    SolveOptions,
};
pub use gridworld::{Action, Cell, Encoding, Env, GridView, GridWorld, Map, Rng, Step, VecEnv};
