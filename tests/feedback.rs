//! Human feedback end to end: simulated crowds, rankings against the gold standard.

use rlhf_lab::feedback::aggregate::{
    ratings_tau_vs_gold, robust_bradley_terry, system_matches, ItemMatches,
};
use rlhf_lab::feedback::annotators::{honest_crowd, Behaviour};
use rlhf_lab::feedback::candidates::{candidates, prompts};
use rlhf_lab::feedback::ranking::{bradley_terry, elo, kendall_tau, BtOptions, EloConfig};
use rlhf_lab::feedback::records::{read_feedback, write_feedback, Feedback};
use rlhf_lab::feedback::simulate::{
    arena_truth, gold_system_scores, simulate_arena, simulate_comparisons,
};
use rlhf_lab::world::World;

/// With 20% bad-faith annotators, the robust Bradley–Terry's τ against the true
/// ranking stays closer to the no-troll τ than plain Elo's does. 30 items of known
/// strength, 3,000 votes from 20 annotators (Chatbot Arena's setting, simulated).
#[test]
fn robust_variant_resists_trolls() {
    let truth: Vec<f64> = (0..30).map(|i| 700.0 + 20.0 * i as f64).collect();
    let truth_by_name = |ns: &[String]| -> Vec<f64> { arena_truth(ns, &truth).unwrap() };
    for behaviour in [
        Behaviour::Flip,
        Behaviour::Push("item00".into()),
        Behaviour::Random,
    ] {
        let (mut d_elo, mut d_robust) = (0.0, 0.0);
        for seed in 0..3 {
            let clean = simulate_arena(&truth, 3000, 20, 0, &Behaviour::Honest, seed);
            let trolled = simulate_arena(&truth, 3000, 20, 4, &behaviour, seed);
            let ItemMatches {
                names: n_c,
                matches: m_c,
            } = system_matches(&clean);
            let tau_clean = kendall_tau(
                &elo(n_c.len(), &m_c, EloConfig::default()),
                &truth_by_name(&n_c),
            );
            let ItemMatches {
                names: n_t,
                matches: m_t,
            } = system_matches(&trolled);
            let tau_elo = kendall_tau(
                &elo(n_t.len(), &m_t, EloConfig::default()),
                &truth_by_name(&n_t),
            );
            let robust = robust_bradley_terry(&trolled, 3);
            let tau_robust = kendall_tau(&robust.ratings, &truth_by_name(&robust.names));
            eprintln!("{behaviour:?} seed {seed}: clean {tau_clean:.3}, Elo with trolls {tau_elo:.3}, robust {tau_robust:.3}");
            d_elo += (tau_elo - tau_clean).abs();
            d_robust += (tau_robust - tau_clean).abs();
            if behaviour != Behaviour::Random {
                for a in &robust.annotators {
                    let (who, w) = (&a.annotator, &a.weight);
                    if who.ends_with("-troll") {
                        assert!(*w < 0.5, "{behaviour:?}: {who} kept weight {w}");
                    }
                }
            }
        }
        assert!(
            d_robust < d_elo,
            "{behaviour:?}: robust off by {d_robust:.3} in total, Elo by {d_elo:.3}"
        );
    }
}

/// On the project's own prompts and response styles, an honest crowd's Elo ranking of
/// the styles matches the gold standard's.
#[test]
fn honest_crowd_ranks_styles_like_the_gold_standard() {
    let world = World::generate(0);
    let ps = prompts(&world, 150, 1);
    let cands = candidates(&ps, 2);
    let gold = gold_system_scores(&ps, &cands);
    let comps = simulate_comparisons(&ps, &cands, &honest_crowd(20, 3), 3, 3, 4);
    let ItemMatches { names, matches: m } = system_matches(&comps);
    let tau = ratings_tau_vs_gold(
        &names,
        &bradley_terry(names.len(), &m, BtOptions::default()),
        &gold,
    )
    .unwrap();
    assert!(tau >= 0.9, "tau {tau}");
}

#[test]
fn feedback_files_round_trip() {
    let world = World::generate(0);
    let ps = prompts(&world, 5, 1);
    let cands = candidates(&ps, 2);
    let comps = simulate_comparisons(&ps, &cands, &honest_crowd(4, 1), 2, 2, 1);
    let recs: Vec<Feedback> = comps.into_iter().map(Feedback::Comparison).collect();
    let dir = std::env::temp_dir().join(format!("rlhf-fb-{}", std::process::id()));
    let p = dir.join("c.jsonl");
    write_feedback(&p, &recs).unwrap();
    assert_eq!(read_feedback(&p).unwrap(), recs);
    std::fs::remove_dir_all(dir).unwrap();
}
