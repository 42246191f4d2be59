//! Simulated annotators: noisy, subjective, sometimes biased, sometimes in bad faith.
//!
//! An honest annotator sees a response's [`Features`](super::gold::Features) through
//! its own [`Taste`] (subjectivity), plus an optional liking for long answers (the bias
//! of a narrow group), and chooses between two responses with a Bradley–Terry choice
//! (Bradley & Terry 1952): P(A) = σ((u_A − u_B) / T), where T is its noise
//! temperature. A tie is declared with probability `tie_rate · exp(−|u_A − u_B| / T)`.

use super::candidates::Prompt;
use super::gold::{
    features, fluency, split_turn, word_count, Taste, TurnText, FLUENCY_WEIGHT, UNFINISHED_PENALTY,
};
use super::records::{Flaw, Winner};
use gridworld::Rng;
use serde::{Deserialize, Serialize};

/// How an annotator behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Votes by its own taste, through noise.
    Honest,
    /// Bad faith: votes for the response it likes *less*.
    Flip,
    /// Bad faith: a coin flip, whatever the responses.
    Random,
    /// Bad faith: always votes for the named system when it appears.
    Push(String),
}

/// One simulated annotator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotator {
    pub name: String,
    pub taste: Taste,
    /// Noise temperature T of the Bradley–Terry choice.
    pub temperature: f64,
    /// Added utility per unit of ln(1 + words): > 0 likes long answers.
    pub length_bias: f64,
    /// Chance of calling a tie between equal responses.
    pub tie_rate: f64,
    /// Rating-scale habits: 1–10 rating = 5.5 + offset + scale · utility / 3.
    pub rating_offset: f64,
    pub rating_scale: f64,
    /// Utility above which a response gets a thumbs up.
    pub thumbs_threshold: f64,
    pub behaviour: Behaviour,
}

impl Annotator {
    /// An honest annotator whose taste is the gold standard's, perturbed by `spread`
    /// (relative, per feature), with rating habits drawn at random.
    pub fn honest(name: &str, spread: f64, temperature: f64, rng: &mut Rng) -> Self {
        let mut w = Taste::GOLD.0;
        for x in &mut w {
            *x *= (1.0 + spread * rng.normal()).max(0.05);
        }
        Self {
            name: name.to_string(),
            taste: Taste(w),
            temperature,
            length_bias: 0.0,
            tie_rate: 0.1,
            rating_offset: 1.5 * rng.normal(),
            rating_scale: 0.5 + rng.uniform(),
            thumbs_threshold: 1.0 + rng.normal(),
            behaviour: Behaviour::Honest,
        }
    }

    /// This annotator's utility for `text` as an answer to `prompt`: its taste
    /// over the gold features, its liking for length, and the gold standard's
    /// dislike of gibberish and loops (everyone notices those).
    pub fn utility(&self, prompt: &Prompt, text: &str) -> f64 {
        self.taste.score(&features(prompt, text))
            + self.length_bias * (1.0 + word_count(text) as f64).ln()
            + FLUENCY_WEIGHT * fluency(text)
    }

    /// The utility of a chat turn written by a model (see
    /// [`super::gold::gold_score_turn`]): an answer that never ended is
    /// penalised as the gold standard penalises it.
    pub fn utility_turn(&self, prompt: &Prompt, turn: &str) -> f64 {
        let TurnText { text, ended } = split_turn(turn);
        self.utility(prompt, text) - if ended { 0.0 } else { UNFINISHED_PENALTY }
    }

    /// Judge two responses head to head.
    pub fn compare(
        &self,
        prompt: &Prompt,
        a: (&str, &str),
        b: (&str, &str),
        rng: &mut Rng,
    ) -> Winner {
        let utilities = |s: &Self| (s.utility(prompt, a.1), s.utility(prompt, b.1));
        self.choose((a.0, b.0), utilities, rng)
    }

    /// Judge two chat turns head to head (utilities from [`Self::utility_turn`]).
    pub fn compare_turns(
        &self,
        prompt: &Prompt,
        a: (&str, &str),
        b: (&str, &str),
        rng: &mut Rng,
    ) -> Winner {
        let utilities = |s: &Self| (s.utility_turn(prompt, a.1), s.utility_turn(prompt, b.1));
        self.choose((a.0, b.0), utilities, rng)
    }

    /// The choice between A and B, written by `systems`, given a way to
    /// compute this annotator's utilities of both (only called when the
    /// behaviour looks at the answers).
    fn choose(
        &self,
        systems: (&str, &str),
        utilities: impl Fn(&Self) -> (f64, f64),
        rng: &mut Rng,
    ) -> Winner {
        let (system_a, system_b) = systems;
        match &self.behaviour {
            Behaviour::Random => {
                return if rng.below(2) == 0 {
                    Winner::A
                } else {
                    Winner::B
                };
            }
            Behaviour::Push(target) if system_a == target && system_b != target => {
                return Winner::A
            }
            Behaviour::Push(target) if system_b == target && system_a != target => {
                return Winner::B
            }
            _ => {}
        }
        let (ua, ub) = utilities(self);
        let d = (ua - ub) / self.temperature.max(1e-9);
        if rng.uniform() < self.tie_rate * (-d.abs()).exp() {
            return Winner::Tie;
        }
        let a_wins = rng.uniform() < 1.0 / (1.0 + (-d).exp());
        let a_wins = if self.behaviour == Behaviour::Flip {
            !a_wins
        } else {
            a_wins
        };
        if a_wins {
            Winner::A
        } else {
            Winner::B
        }
    }

    /// Thumbs up (true) or down.
    pub fn thumbs(&self, prompt: &Prompt, text: &str, rng: &mut Rng) -> bool {
        let noise = self.temperature * logistic(rng);
        let up = self.utility(prompt, text) + noise > self.thumbs_threshold;
        match self.behaviour {
            Behaviour::Flip => !up,
            Behaviour::Random => rng.below(2) == 0,
            _ => up,
        }
    }

    /// A 1–10 rating with this annotator's scale habits.
    pub fn rate(&self, prompt: &Prompt, text: &str, rng: &mut Rng) -> u8 {
        let u = self.utility(prompt, text) + self.temperature * logistic(rng);
        let r = 5.5 + self.rating_offset + self.rating_scale * u / 3.0;
        r.round().clamp(1.0, 10.0) as u8
    }

    /// Which flaws the annotator ticks: each real flaw is seen with probability
    /// `1 / (1 + T/4)`, and each absent one ticked by mistake with `0.05 · T`.
    pub fn checklist(&self, prompt: &Prompt, text: &str, rng: &mut Rng) -> Vec<Flaw> {
        let f = features(prompt, text);
        let present = [
            (Flaw::Incorrect, f.correct < 0.0),
            (Flaw::Unhelpful, f.helpful < 0.0),
            (Flaw::Harmful, f.harmless < 0.0),
            (Flaw::Rude, f.polite < 0.0),
            (Flaw::TooLong, f.concise < -0.3),
        ];
        let recall = 1.0 / (1.0 + self.temperature / 4.0);
        let false_alarm = (0.05 * self.temperature).min(0.5);
        present
            .into_iter()
            .filter(|&(_, is)| {
                let ticked = rng.uniform() < if is { recall } else { false_alarm };
                if self.behaviour == Behaviour::Flip {
                    !ticked
                } else {
                    ticked
                }
            })
            .map(|(flaw, _)| flaw)
            .collect()
    }
}

/// A standard logistic sample.
fn logistic(rng: &mut Rng) -> f64 {
    let u = rng.uniform().clamp(1e-12, 1.0 - 1e-12);
    (u / (1.0 - u)).ln()
}

/// A crowd of `n` honest annotators (taste spread 0.3, temperature 1).
pub fn honest_crowd(n: usize, seed: u64) -> Vec<Annotator> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| Annotator::honest(&format!("annotator{i:02}"), 0.3, 1.0, &mut rng))
        .collect()
}

/// Replace the first `share` of the crowd by bad-faith annotators of the given behaviour.
pub fn with_trolls(mut crowd: Vec<Annotator>, share: f64, behaviour: Behaviour) -> Vec<Annotator> {
    let k = (crowd.len() as f64 * share).round() as usize;
    for a in crowd.iter_mut().take(k) {
        a.behaviour = behaviour.clone();
        a.name = format!("{}-troll", a.name);
    }
    crowd
}

/// A narrow group: every annotator likes long answers (`length_bias`) and cares
/// little about concision.
pub fn narrow_group(mut crowd: Vec<Annotator>, length_bias: f64) -> Vec<Annotator> {
    for a in &mut crowd {
        a.length_bias = length_bias;
        a.taste.0[4] *= 0.2;
    }
    crowd
}
