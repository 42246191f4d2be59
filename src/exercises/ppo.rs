//! Notebook 02's exercises: GAE on a short trajectory, PPO's clipped surrogate,
//! the k3 estimate of KL(old ‖ new).
//!
//! Ground truth: [`crate::ppo::gae`], [`crate::ppo::clipped_surrogate_loss`] and
//! [`crate::ppo::approx_kl`], on one-column tensors.

use super::{close, first_mismatch, Check};
use crate::ppo::{approx_kl, clipped_surrogate_loss, gae, GaeInputs};
use candle_core::{Device, Tensor};

/// Exercise id: generalized advantage estimation.
pub const GAE: &str = "02-gae";
/// Exercise id: the clipped surrogate objective of one sample.
pub const CLIPPED_SURROGATE: &str = "02-clipped-surrogate";
/// Exercise id: the k3 estimator of KL(π_old ‖ π_new).
pub const KL_K3: &str = "02-kl-k3";

/// One environment's rollout, step by step (all fields have one entry per step t).
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// r_t, the reward received after the action at step t.
    pub rewards: Vec<f64>,
    /// V(s_t), the critic's value of the state at step t.
    pub values: Vec<f64>,
    /// V(s'_t), the critic's value of the state the action at step t led to (after a
    /// truncation: of the state where the episode was cut off, not the next start).
    pub next_values: Vec<f64>,
    /// The action at step t entered a terminal state: nothing follows, V(s'_t) counts as 0.
    pub terminated: Vec<bool>,
    /// The episode ended at step t (terminated or truncated): Â does not flow back across it.
    pub episode_end: Vec<bool>,
}

/// The rollout [`check_gae`] uses: 8 steps holding three episodes — one that
/// terminates at t = 2 (the critic's value of that terminal state is not 0, and
/// must be ignored), one truncated at t = 5 (bootstrapped from the state where it
/// stopped), and one still running when the rollout ends at t = 7.
pub fn gae_example() -> Trajectory {
    Trajectory {
        rewards: vec![-0.1, -0.1, 1.0, -0.1, -0.1, -0.1, -0.1, 10.0],
        values: vec![0.3, 0.5, 0.8, -0.2, 0.1, 0.4, 2.0, 3.0],
        next_values: vec![0.5, 0.8, 0.7, 0.1, 0.4, 0.6, 3.0, 3.5],
        terminated: vec![false, false, true, false, false, false, false, false],
        episode_end: vec![false, false, true, false, false, true, false, false],
    }
}

/// (γ, λ) pairs [`check_gae`] tries.
pub const GAE_SETTINGS: [(f64, f64); 2] = [(0.9, 0.8), (0.99, 1.0)];

fn column(x: &[f64]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        x.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
        (x.len(), 1),
        &Device::Cpu,
    )
}

fn flags(x: &[bool]) -> Vec<f64> {
    x.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect()
}

/// The advantages of [`crate::ppo::gae`] for one trajectory.
pub fn reference_gae(x: &Trajectory, gamma: f64, lambda: f64) -> candle_core::Result<Vec<f64>> {
    let (r, v, nv) = (
        column(&x.rewards)?,
        column(&x.values)?,
        column(&x.next_values)?,
    );
    let (term, end) = (
        column(&flags(&x.terminated))?,
        column(&flags(&x.episode_end))?,
    );
    let adv = gae(
        &GaeInputs {
            rewards: &r,
            values: &v,
            next_values: &nv,
            terminated: &term,
            episode_end: &end,
        },
        gamma,
        lambda,
    )?
    .advantages;
    Ok(adv
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// GAE with one of its rules broken, to name a mistake.
fn variant_gae(x: &Trajectory, gamma: f64, lambda: f64, mistake: GaeMistake) -> Vec<f64> {
    let n = x.rewards.len();
    let mut adv = vec![0.0; n];
    let mut next = 0.0;
    for t in (0..n).rev() {
        let next_value = match mistake {
            GaeMistake::ValuesShifted if t + 1 < n => x.values[t + 1],
            _ => x.next_values[t],
        };
        let alive = if x.terminated[t] && mistake != GaeMistake::NoTerminal {
            0.0
        } else {
            1.0
        };
        let flows = if x.episode_end[t] && mistake != GaeMistake::AcrossEnds {
            0.0
        } else {
            1.0
        };
        let delta = x.rewards[t] + gamma * next_value * alive - x.values[t];
        next = delta + gamma * lambda * flows * next;
        adv[t] = next;
    }
    if mistake == GaeMistake::Returns {
        adv.iter().zip(&x.values).map(|(a, v)| a + v).collect()
    } else {
        adv
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum GaeMistake {
    AcrossEnds,
    NoTerminal,
    ValuesShifted,
    Returns,
}

/// Checks `gae_advantages(trajectory, gamma, lambda)`, which should return Â_t for
/// every step:
///
/// ```text
/// δ_t = r_t + γ·V(s'_t)·(1 − terminated_t) − V(s_t)
/// Â_t = δ_t + γλ·(1 − episode_end_t)·Â_{t+1}        (Â after the last step = 0)
/// ```
///
/// on [`gae_example`] with each of [`GAE_SETTINGS`], against [`crate::ppo::gae`].
pub fn check_gae(gae_advantages: impl Fn(&Trajectory, f64, f64) -> Vec<f64>) -> Check {
    let id = GAE;
    let x = gae_example();
    for (gamma, lambda) in GAE_SETTINGS {
        let expected = match reference_gae(&x, gamma, lambda) {
            Ok(v) => v,
            Err(e) => return Check::fail(id, format!("the reference GAE failed: {e}")),
        };
        let got = gae_advantages(&x, gamma, lambda);
        if got.len() != expected.len() {
            return Check::fail(
                id,
                format!(
                    "you returned {} advantages for a {}-step trajectory: return one Â_t per step",
                    got.len(),
                    expected.len()
                ),
            );
        }
        // GAE runs in f32 in the library: agree to 1e-4.
        if let Some(t) = first_mismatch(&expected, &got, 1e-4) {
            let like = |m| {
                let v = variant_gae(&x, gamma, lambda, m);
                first_mismatch(&v, &got, 1e-4).is_none()
            };
            let why = if like(GaeMistake::AcrossEnds) {
                " — your advantages flow back across the end of an episode (t = 2 and t = 5): multiply Â_{t+1} by (1 − episode_end_t)"
            } else if like(GaeMistake::NoTerminal) {
                " — after the terminal step t = 2 nothing follows: V(s'_t) counts as 0 there (terminated_t)"
            } else if like(GaeMistake::ValuesShifted) {
                " — use next_values[t], not values[t + 1]: after the truncation at t = 5 the next step belongs to a new episode"
            } else if like(GaeMistake::Returns) {
                " — those are the returns R_t = Â_t + V(s_t): return the advantages"
            } else {
                ""
            };
            return Check::fail(
                id,
                format!(
                    "your GAE is off at t = {t} (γ = {gamma}, λ = {lambda}): expected {:.4}, got {:.4}{why}",
                    expected[t], got[t]
                ),
            );
        }
    }
    Check::pass(
        id,
        format!(
            "your advantages match rlhf_lab::ppo::gae at every step, for (γ, λ) = {}",
            GAE_SETTINGS
                .iter()
                .map(|(g, l)| format!("({g}, {l})"))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    )
}

/// Probability ratios ρ [`check_clipped_surrogate`] tries (with ε = [`CLIP_EPS`]).
pub const RATIOS: [f64; 7] = [0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 2.0];
/// Advantages [`check_clipped_surrogate`] tries: one good action, one bad.
pub const ADVANTAGES: [f64; 2] = [1.5, -0.7];
/// The clip range of [`check_clipped_surrogate`].
pub const CLIP_EPS: f64 = 0.2;

/// min(ρÂ, clip(ρ, 1 − ε, 1 + ε)Â) for one sample, from
/// [`crate::ppo::clipped_surrogate_loss`] (the loss is its negated mean).
pub fn reference_clipped_objective(
    ratio: f64,
    advantage: f64,
    eps: f64,
) -> candle_core::Result<f64> {
    let new_logp = Tensor::new(&[ratio.ln()], &Device::Cpu)?;
    let old_logp = Tensor::new(&[0.0f64], &Device::Cpu)?;
    let adv = Tensor::new(&[advantage], &Device::Cpu)?;
    let loss = clipped_surrogate_loss(&new_logp, &old_logp, &adv, eps, None)?;
    Ok(-loss.to_scalar::<f64>()?)
}

/// Checks `clipped_objective(ratio, advantage, eps)`, which should be PPO's
/// per-sample objective `min(ρ·Â, clip(ρ, 1 − ε, 1 + ε)·Â)` (to maximise), for every
/// ρ in [`RATIOS`] and Â in [`ADVANTAGES`], against [`crate::ppo::clipped_surrogate_loss`].
pub fn check_clipped_surrogate(clipped_objective: impl Fn(f64, f64, f64) -> f64) -> Check {
    let id = CLIPPED_SURROGATE;
    let eps = CLIP_EPS;
    for advantage in ADVANTAGES {
        for ratio in RATIOS {
            let expected = match reference_clipped_objective(ratio, advantage, eps) {
                Ok(v) => v,
                Err(e) => return Check::fail(id, format!("the reference failed: {e}")),
            };
            let got = clipped_objective(ratio, advantage, eps);
            if close(expected, got, 1e-9) {
                continue;
            }
            let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * advantage;
            let unclipped = ratio * advantage;
            let why = if close(unclipped, got, 1e-9) {
                " — that is ρ·Â without the clip: outside [1 − ε, 1 + ε] PPO stops rewarding a further move"
            } else if close(clipped, got, 1e-9) {
                " — that is the clipped term alone: PPO takes the min of ρ·Â and clip(ρ)·Â, so the clip never makes a move look better than it is"
            } else if close(unclipped.max(clipped), got, 1e-9) {
                " — you took the max of the two terms: PPO takes the pessimistic min"
            } else if close(-expected, got, 1e-9) {
                " — wrong sign: the objective is maximised (the library's loss is its negative)"
            } else {
                ""
            };
            return Check::fail(
                id,
                format!(
                    "your objective at ρ = {ratio:.2}, Â = {advantage:+.2} (ε = {eps}) is off: expected {expected:.4}, got {got:.4}{why}"
                ),
            );
        }
    }
    Check::pass(
        id,
        format!(
            "your objective matches rlhf_lab::ppo::clipped_surrogate_loss for {} ratios × {} advantages",
            RATIOS.len(),
            ADVANTAGES.len()
        ),
    )
}

/// The samples [`check_kl_k3`] tries: (log π_new, log π_old) of the actions taken.
pub fn kl_examples() -> Vec<(Vec<f64>, Vec<f64>)> {
    vec![
        (
            vec![-1.2, -0.4, -2.0, -0.9, -1.6],
            vec![-1.0, -0.5, -1.5, -1.1, -1.6],
        ),
        (vec![-0.1, -3.0, -0.7], vec![-0.3, -2.0, -0.7]),
    ]
}

/// (k1, k3) of [`crate::ppo::approx_kl`] for one sample.
pub fn reference_kl(new_logp: &[f64], old_logp: &[f64]) -> candle_core::Result<(f64, f64)> {
    let new_t = Tensor::new(new_logp, &Device::Cpu)?;
    let old_t = Tensor::new(old_logp, &Device::Cpu)?;
    approx_kl(&new_t, &old_t, None)
}

/// Checks `kl_k3(new_logp, old_logp)`, which should be Schulman's k3 estimate of
/// KL(π_old ‖ π_new) from actions sampled under π_old: `mean((ρ − 1) − log ρ)` with
/// `log ρ = log π_new − log π_old`, on [`kl_examples`], against [`crate::ppo::approx_kl`].
pub fn check_kl_k3(kl_k3: impl Fn(&[f64], &[f64]) -> f64) -> Check {
    let id = KL_K3;
    let examples = kl_examples();
    for (new_logp, old_logp) in &examples {
        let (k1, k3) = match reference_kl(new_logp, old_logp) {
            Ok(v) => v,
            Err(e) => return Check::fail(id, format!("the reference failed: {e}")),
        };
        let got = kl_k3(new_logp, old_logp);
        if close(k3, got, 1e-9) {
            continue;
        }
        let reversed: f64 = new_logp
            .iter()
            .zip(old_logp)
            .map(|(n, o)| {
                let lr = o - n;
                lr.exp() - 1.0 - lr
            })
            .sum::<f64>()
            / new_logp.len() as f64;
        let summed = k3 * new_logp.len() as f64;
        let why = if close(k1, got, 1e-9) {
            " — that is k1 = mean(−log ρ): unbiased but noisy, and it can go negative"
        } else if close(reversed, got, 1e-9) {
            " — log ρ = log π_new − log π_old, not the other way round"
        } else if close(summed, got, 1e-9) {
            " — that is the sum: take the mean over the samples"
        } else {
            ""
        };
        return Check::fail(
            id,
            format!(
                "your k3 for the {} samples log π_new = {new_logp:?}, log π_old = {old_logp:?} is off: expected {k3:.5}, got {got:.5}{why}",
                new_logp.len()
            ),
        );
    }
    Check::pass(
        id,
        format!(
            "your k3 matches rlhf_lab::ppo::approx_kl on {} samples",
            examples.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The notebook's stubs, unchanged.
    fn stub_gae(traj: &Trajectory, _gamma: f64, _lambda: f64) -> Vec<f64> {
        vec![0.0; traj.rewards.len()]
    }
    fn stub_clipped(_ratio: f64, _advantage: f64, _eps: f64) -> f64 {
        0.0
    }
    fn stub_k3(_new_logp: &[f64], _old_logp: &[f64]) -> f64 {
        0.0
    }

    fn by_hand_gae(x: &Trajectory, gamma: f64, lambda: f64) -> Vec<f64> {
        let mut adv = vec![0.0; x.rewards.len()];
        let mut next = 0.0;
        for t in (0..x.rewards.len()).rev() {
            let alive = if x.terminated[t] { 0.0 } else { 1.0 };
            let flows = if x.episode_end[t] { 0.0 } else { 1.0 };
            let delta = x.rewards[t] + gamma * x.next_values[t] * alive - x.values[t];
            next = delta + gamma * lambda * flows * next;
            adv[t] = next;
        }
        adv
    }

    #[test]
    fn gae_reference_passes_and_stub_gets_the_step() {
        let ok = check_gae(by_hand_gae);
        assert!(ok.passed, "{ok}");
        let stub = check_gae(stub_gae);
        assert!(!stub.passed);
        let expected = reference_gae(&gae_example(), 0.9, 0.8).unwrap();
        assert_eq!(
            stub.to_string(),
            format!(
                "✗ 02-gae: your GAE is off at t = 0 (γ = 0.9, λ = 0.8): expected {:.4}, got 0.0000",
                expected[0]
            )
        );
    }

    #[test]
    fn gae_mistakes_are_named() {
        let across = check_gae(|x, g, l| {
            let mut y = x.clone();
            y.episode_end = vec![false; y.rewards.len()];
            by_hand_gae(&y, g, l)
        });
        assert!(across.message.contains("flow back across"), "{across}");
        let no_terminal = check_gae(|x, g, l| {
            let mut y = x.clone();
            y.terminated = vec![false; y.rewards.len()];
            by_hand_gae(&y, g, l)
        });
        assert!(
            no_terminal.message.contains("V(s'_t) counts as 0"),
            "{no_terminal}"
        );
        let returns = check_gae(|x, g, l| {
            by_hand_gae(x, g, l)
                .iter()
                .zip(&x.values)
                .map(|(a, v)| a + v)
                .collect()
        });
        assert!(returns.message.contains("returns R_t"), "{returns}");
    }

    #[test]
    fn clipped_surrogate_reference_passes_and_stub_gets_the_ratio() {
        let ok = check_clipped_surrogate(|r, a, e| (r * a).min(r.clamp(1.0 - e, 1.0 + e) * a));
        assert!(ok.passed, "{ok}");
        let stub = check_clipped_surrogate(stub_clipped);
        assert_eq!(
            stub.to_string(),
            "✗ 02-clipped-surrogate: your objective at ρ = 0.50, Â = +1.50 (ε = 0.2) is off: expected 0.7500, got 0.0000"
        );
        let unclipped = check_clipped_surrogate(|r, a, _| r * a);
        assert!(
            unclipped.message.contains("at ρ = 1.30, Â = +1.50"),
            "{unclipped}"
        );
        assert!(
            unclipped.message.contains("without the clip"),
            "{unclipped}"
        );
        let clipped_only = check_clipped_surrogate(|r, a, e| r.clamp(1.0 - e, 1.0 + e) * a);
        assert!(
            clipped_only.message.contains("at ρ = 0.50, Â = +1.50"),
            "{clipped_only}"
        );
        assert!(
            clipped_only.message.contains("clipped term alone"),
            "{clipped_only}"
        );
    }

    #[test]
    fn kl_k3_reference_passes_and_stub_and_k1_fail() {
        let k3 = |n: &[f64], o: &[f64]| {
            n.iter()
                .zip(o)
                .map(|(a, b)| (a - b).exp() - 1.0 - (a - b))
                .sum::<f64>()
                / n.len() as f64
        };
        let ok = check_kl_k3(k3);
        assert!(ok.passed, "{ok}");
        let stub = check_kl_k3(stub_k3);
        assert!(!stub.passed);
        assert!(
            stub.message.starts_with("your k3 for the 5 samples"),
            "{stub}"
        );
        assert!(stub.message.contains("got 0.00000"), "{stub}");
        let k1 =
            check_kl_k3(|n, o| n.iter().zip(o).map(|(a, b)| b - a).sum::<f64>() / n.len() as f64);
        assert!(k1.message.contains("that is k1"), "{k1}");
    }
}
