//! A labeller ranking several answers to one prompt at once, and the pairs a
//! ranking implies.
//!
//! InstructGPT's labellers ranked K = 4 to 9 answers per prompt in one task,
//! and each ranking became all K(K−1)/2 comparisons for the reward model
//! (Ouyang et al. 2022, §3.5). One ranking of K answers costs the
//! labeller about one reading of each answer, yet gives K(K−1)/2 pairs: 6 for
//! K = 4, 36 for K = 9.
//!
//! The simulated labeller ranks by Plackett–Luce (Luce 1959; Plackett 1975),
//! the many-answer form of the Bradley–Terry choice [`Annotator::compare`]
//! makes: the first place goes to answer i with probability
//! exp(u_i/T) / Σ_j exp(u_j/T), the second among the rest likewise, and so on.
//! It is sampled exactly by sorting u_i/T + g_i with g_i standard Gumbel noise
//! (the Gumbel-max trick). For K = 2 it is the pairwise choice (ties aside):
//! P(A first) = σ((u_A − u_B)/T).

use super::annotators::{Annotator, Behaviour};
use super::candidates::{Candidate, Prompt};
use super::records::{Comparison, Winner};
use gridworld::Rng;
use serde::{Deserialize, Serialize};

/// One answer in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedAnswer {
    /// The system that wrote it.
    pub system: String,
    /// The answer's text.
    pub response: String,
}

/// One labeller's ranking of several answers to one prompt, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRanking {
    /// The prompt's id.
    pub prompt_id: String,
    /// The prompt's text.
    pub prompt: String,
    /// The answers, best first.
    pub best_first: Vec<RankedAnswer>,
    /// Who ranked them.
    pub annotator: String,
    /// Seconds since the start of the labelling session.
    pub time: u64,
}

impl AnswerRanking {
    /// Every pair of the ranking as a comparison: K(K−1)/2 of them, each with
    /// the better-ranked answer as A and `Winner::A`. Their order: (1st, 2nd),
    /// (1st, 3rd), …, (2nd, 3rd), …
    pub fn to_comparisons(&self) -> Vec<Comparison> {
        let k = self.best_first.len();
        let mut out = Vec::with_capacity(k * k.saturating_sub(1) / 2);
        for (i, better) in self.best_first.iter().enumerate() {
            for worse in &self.best_first[i + 1..] {
                out.push(Comparison {
                    prompt_id: self.prompt_id.clone(),
                    prompt: self.prompt.clone(),
                    response_a: better.response.clone(),
                    response_b: worse.response.clone(),
                    system_a: better.system.clone(),
                    system_b: worse.system.clone(),
                    winner: Winner::A,
                    annotator: self.annotator.clone(),
                    time: self.time,
                });
            }
        }
        out
    }
}

/// A standard Gumbel draw: −ln(−ln U), U uniform in (0, 1).
fn gumbel(rng: &mut Rng) -> f64 {
    let u = rng.uniform().clamp(1e-300, 1.0 - 1e-16);
    -(-u.ln()).ln()
}

/// `annotator` ranks `answers` to `prompt`: Plackett–Luce over its
/// utilities at its temperature (see the module's doc). Bad faith as in the
/// pairwise choice: `Flip` ranks by the reversed utilities, `Random`
/// shuffles, `Push(system)` puts that system's answers first.
pub fn rank_answers(
    annotator: &Annotator,
    prompt: &Prompt,
    answers: &[&Candidate],
    time: u64,
    rng: &mut Rng,
) -> AnswerRanking {
    let t = annotator.temperature.max(1e-9);
    let mut keyed: Vec<(f64, &Candidate)> = answers
        .iter()
        .map(|c| {
            let u = match &annotator.behaviour {
                Behaviour::Honest | Behaviour::Push(_) => annotator.utility(prompt, &c.text),
                Behaviour::Flip => -annotator.utility(prompt, &c.text),
                Behaviour::Random => 0.0,
            };
            let pushed = matches!(&annotator.behaviour, Behaviour::Push(s) if *s == c.system);
            let key = u / t + gumbel(rng) + if pushed { 1e12 } else { 0.0 };
            (key, *c)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    AnswerRanking {
        prompt_id: prompt.id.clone(),
        prompt: prompt.text.clone(),
        best_first: keyed
            .into_iter()
            .map(|(_, c)| RankedAnswer {
                system: c.system.clone(),
                response: c.text.clone(),
            })
            .collect(),
        annotator: annotator.name.clone(),
        time,
    }
}

/// For every prompt, `rankings_per_prompt` tasks: a random annotator of
/// `crowd` ranks `answers_per_ranking` of the prompt's candidates, drawn at
/// random without repetition. Prompts with fewer candidates than that are
/// skipped.
pub fn simulate_rankings(
    prompts: &[Prompt],
    candidates: &[Candidate],
    crowd: &[Annotator],
    rankings_per_prompt: usize,
    answers_per_ranking: usize,
    seed: u64,
) -> Vec<AnswerRanking> {
    let mut rng = Rng::new(seed);
    let by_prompt = super::simulate::by_prompt(candidates);
    let mut out = Vec::new();
    let mut time = 0;
    for p in prompts {
        let Some(cands) = by_prompt.get(p.id.as_str()) else {
            continue;
        };
        if cands.len() < answers_per_ranking.max(2) || crowd.is_empty() {
            continue;
        }
        for _ in 0..rankings_per_prompt {
            let mut pick = cands.clone();
            rng.shuffle(&mut pick);
            pick.truncate(answers_per_ranking);
            let ann = &crowd[rng.below(crowd.len())];
            time += 1 + rng.below(30 * answers_per_ranking) as u64;
            out.push(rank_answers(ann, p, &pick, time, &mut rng));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::annotators::honest_crowd;
    use crate::feedback::candidates::{candidates, prompts};
    use crate::world::World;

    fn setting() -> (Vec<Prompt>, Vec<Candidate>) {
        let ps = prompts(&World::generate(0), 20, 1);
        let cands = candidates(&ps, 2);
        (ps, cands)
    }

    /// A ranking of K answers gives K(K−1)/2 comparisons, each won by the
    /// better-ranked answer, covering every pair once.
    #[test]
    fn a_ranking_of_k_answers_is_k_choose_2_pairs() {
        let (ps, cands) = setting();
        let rankings = simulate_rankings(&ps, &cands, &honest_crowd(5, 1), 1, 4, 3);
        assert!(!rankings.is_empty());
        for r in &rankings {
            assert_eq!(r.best_first.len(), 4);
            let pairs = r.to_comparisons();
            assert_eq!(pairs.len(), 6);
            for c in &pairs {
                assert_eq!(c.winner, Winner::A);
                let pos = |s: &str| r.best_first.iter().position(|a| a.response == s).unwrap();
                assert!(pos(&c.response_a) < pos(&c.response_b));
            }
            let mut seen: Vec<(String, String)> = pairs
                .iter()
                .map(|c| (c.response_a.clone(), c.response_b.clone()))
                .collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 6);
        }
    }

    /// For two answers, Plackett–Luce is the pairwise Bradley–Terry choice:
    /// P(A ranked first) = σ((u_A − u_B)/T), here checked on 20,000 draws to
    /// within 4 standard errors (≈ 0.014).
    #[test]
    fn two_answer_rankings_follow_the_pairwise_choice() {
        let (ps, cands) = setting();
        let ann = &honest_crowd(1, 7)[0];
        let p = &ps[0];
        let two: Vec<&Candidate> = cands
            .iter()
            .filter(|c| c.prompt_id == p.id)
            .take(2)
            .collect();
        let d = (ann.utility(p, &two[0].text) - ann.utility(p, &two[1].text)) / ann.temperature;
        let expected = 1.0 / (1.0 + (-d).exp());
        let mut rng = Rng::new(11);
        let n = 20_000;
        let first = (0..n)
            .filter(|_| {
                rank_answers(ann, p, &two, 0, &mut rng).best_first[0].response == two[0].text
            })
            .count();
        let share = first as f64 / n as f64;
        let se = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (share - expected).abs() <= 4.0 * se + 1e-9,
            "share {share}, σ(d) {expected}"
        );
    }

    /// A contrarian troll's rankings are mostly upside down: a near-noiseless
    /// honest annotator and a near-noiseless troll disagree on every pair.
    #[test]
    fn a_flipping_troll_ranks_upside_down() {
        let (ps, cands) = setting();
        let mut honest = honest_crowd(1, 2)[0].clone();
        honest.temperature = 1e-6;
        let mut troll = honest.clone();
        troll.behaviour = Behaviour::Flip;
        let p = &ps[0];
        // Answers whose utilities differ (so a noiseless order is defined).
        let mut answers: Vec<&Candidate> = Vec::new();
        for c in cands.iter().filter(|c| c.prompt_id == p.id) {
            let u = honest.utility(p, &c.text);
            if answers
                .iter()
                .all(|a| (honest.utility(p, &a.text) - u).abs() > 1e-3)
            {
                answers.push(c);
            }
        }
        assert!(
            answers.len() >= 3,
            "only {} distinct answers",
            answers.len()
        );
        let mut rng = Rng::new(1);
        let h = rank_answers(&honest, p, &answers, 0, &mut rng);
        let t = rank_answers(&troll, p, &answers, 0, &mut rng);
        let utilities: Vec<f64> = h
            .best_first
            .iter()
            .map(|a| honest.utility(p, &a.response))
            .collect();
        assert!(utilities.windows(2).all(|w| w[0] > w[1]), "{utilities:?}");
        let reversed: Vec<RankedAnswer> = t.best_first.iter().rev().cloned().collect();
        assert_eq!(h.best_first, reversed);
    }
}
