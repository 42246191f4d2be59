//! The mathematics of Proximal Policy Optimization, written once.
//!
//! Pure functions on candle tensors, used by the gridworld agent ([`crate::rl`]) and,
//! in a later rung, by language-model PPO. Every function that takes a `mask` treats
//! entries where the mask is 0 as padding: they do not count in any mean.
//!
//! References:
//! - J. Schulman, F. Wolski, P. Dhariwal, A. Radford, O. Klimov. *Proximal Policy
//!   Optimization Algorithms*, 2017 (arXiv:1707.06347) — the clipped objective, eq. 7.
//! - J. Schulman, P. Moritz, S. Levine, M. Jordan, P. Abbeel. *High-Dimensional
//!   Continuous Control Using Generalized Advantage Estimation*, ICLR 2016
//!   (arXiv:1506.02438) — GAE, eq. 16.
//! - S. Huang et al. *The 37 Implementation Details of Proximal Policy Optimization*,
//!   ICLR blog track 2022 — value clipping, advantage normalisation, k3 KL.
//! - J. Schulman. *Approximating KL Divergence*, 2020 (blog) — the k1 and k3 estimators.

use candle_core::{DType, Result, Tensor, D};

/// Inputs of [`gae`], time-major: every tensor has shape `[T, N]`
/// (T steps of N parallel environments, or T tokens of N sequences).
#[derive(Debug, Clone)]
pub struct GaeInputs<'a> {
    /// r_t, the reward received after the action at step t.
    pub rewards: &'a Tensor,
    /// V(s_t), the critic's value of the state at step t.
    pub values: &'a Tensor,
    /// V(s'_t), the critic's value of the state the action at step t led to. After a
    /// truncation this is the value of the *final* state (before any reset): the
    /// episode would have gone on, so we bootstrap from it.
    pub next_values: &'a Tensor,
    /// 1 where the action at step t entered a terminal state (then V(s'_t) counts as 0).
    pub terminated: &'a Tensor,
    /// 1 where the episode ended at step t for any reason (terminated or truncated):
    /// the advantage recursion does not flow across this boundary.
    pub episode_end: &'a Tensor,
}

/// What [`gae`] computes, both `[T, N]` f32.
#[derive(Debug, Clone)]
pub struct Gae {
    /// Â_t, the advantage of the action taken at step t.
    pub advantages: Tensor,
    /// R_t = Â_t + V(s_t), the value network's target.
    pub returns: Tensor,
}

/// Generalized advantage estimation (Schulman et al. 2016, eq. 16):
///
/// ```text
/// δ_t = r_t + γ · V(s'_t) · (1 − terminated_t) − V(s_t)
/// Â_t = δ_t + γ λ · (1 − episode_end_t) · Â_{t+1}
/// R_t = Â_t + V(s_t)            (the value target, "returns")
/// ```
///
/// λ = 1 with V ≡ 0 gives the Monte-Carlo return (REINFORCE); λ = 0 the one-step TD error.
/// Both outputs are `[T, N]` f32.
pub fn gae(x: &GaeInputs, gamma: f64, lambda: f64) -> Result<Gae> {
    let device = x.rewards.device();
    let (t_len, n) = x.rewards.dims2()?;
    for (name, t) in [
        ("values", x.values),
        ("next_values", x.next_values),
        ("terminated", x.terminated),
        ("episode_end", x.episode_end),
    ] {
        if t.dims() != [t_len, n] {
            candle_core::bail!(
                "gae: `{name}` has shape {:?}, expected [{t_len}, {n}] like `rewards`",
                t.dims()
            );
        }
    }
    let get = |t: &Tensor| -> Result<Vec<Vec<f32>>> { t.to_dtype(DType::F32)?.to_vec2::<f32>() };
    let (r, v, nv, term, end) = (
        get(x.rewards)?,
        get(x.values)?,
        get(x.next_values)?,
        get(x.terminated)?,
        get(x.episode_end)?,
    );
    let (g, l) = (gamma as f32, lambda as f32);
    let mut adv = vec![vec![0f32; n]; t_len];
    let mut next_adv = vec![0f32; n];
    for t in (0..t_len).rev() {
        for i in 0..n {
            let delta = r[t][i] + g * nv[t][i] * (1.0 - term[t][i]) - v[t][i];
            let a = delta + g * l * (1.0 - end[t][i]) * next_adv[i];
            adv[t][i] = a;
            next_adv[i] = a;
        }
    }
    let flat: Vec<f32> = adv.into_iter().flatten().collect();
    let advantages = Tensor::from_vec(flat, (t_len, n), device)?;
    let returns = (&advantages + x.values.to_dtype(DType::F32)?)?;
    Ok(Gae {
        advantages,
        returns,
    })
}

/// Mean of `x` over the entries where `mask` is 1 (all entries when `mask` is `None`).
pub fn masked_mean(x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        None => x.mean_all(),
        Some(m) => {
            let m = m.to_dtype(x.dtype())?;
            let total = (x * &m)?.sum_all()?;
            let count = m.sum_all()?.maximum(1.0)?;
            total / count
        }
    }
}

/// Advantage normalisation ("whitening"): `(A − mean) / (std + 1e-8)` over the
/// unmasked entries; masked entries become 0. Unbiased std, as CleanRL uses.
pub fn whiten(x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let mean = masked_mean(x, mask)?;
    let centred = x.broadcast_sub(&mean)?;
    let sq = centred.sqr()?;
    let (sum_sq, count) = match mask {
        None => (sq.sum_all()?, x.elem_count() as f64),
        Some(m) => {
            let m = m.to_dtype(x.dtype())?;
            let count = m.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            ((sq * &m)?.sum_all()?, count)
        }
    };
    let var = (sum_sq / (count - 1.0).max(1.0))?;
    let out = centred.broadcast_div(&(var.sqrt()? + 1e-8)?)?;
    match mask {
        None => Ok(out),
        Some(m) => out * m.to_dtype(x.dtype())?,
    }
}

/// The clipped surrogate policy loss (Schulman et al. 2017, eq. 7), negated for descent:
///
/// ```text
/// ρ_t = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t))
/// L   = −mean_t min(ρ_t Â_t, clip(ρ_t, 1 − ε, 1 + ε) Â_t)
/// ```
pub fn clipped_surrogate_loss(
    new_logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    clip_eps: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let ratio = (new_logp - old_logp)?.exp()?;
    let unclipped = (&ratio * advantages)?;
    let clipped = (ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)? * advantages)?;
    masked_mean(&unclipped.minimum(&clipped)?, mask)?.neg()
}

/// The vanilla policy-gradient loss `−mean_t log π_θ(a_t|s_t) Â_t` (Williams 1992,
/// REINFORCE; with Â = G_t − b(s_t) when a baseline b is used).
pub fn policy_gradient_loss(
    new_logp: &Tensor,
    advantages: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    masked_mean(&(new_logp * advantages)?, mask)?.neg()
}

/// Value loss `½ · mean (V − R)²`, or with clipping (Huang et al. 2022, detail 9):
/// `½ · mean max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)`.
pub fn value_loss(
    new_values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    clip_eps: Option<f64>,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let unclipped = (new_values - returns)?.sqr()?;
    let per = match clip_eps {
        None => unclipped,
        Some(eps) => {
            let v_clipped = (old_values + (new_values - old_values)?.clamp(-eps, eps)?)?;
            let clipped = (v_clipped - returns)?.sqr()?;
            unclipped.maximum(&clipped)?
        }
    };
    masked_mean(&per, mask)? * 0.5
}

/// Entropy of the categorical distributions given by `logits` (last dimension),
/// `H = −Σ_a π(a) log π(a)`, averaged over the other positions.
pub fn entropy(logits: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let h = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
    masked_mean(&h, mask)
}

/// log π(a) of the chosen `actions` (u32 indices, shape = logits' shape without the
/// last dimension) under the categorical distribution of `logits`.
pub fn log_prob_of(logits: &Tensor, actions: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    logp.gather(&actions.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)
}

/// Which policy-gradient loss a minibatch uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyLoss {
    /// PPO's clipped surrogate with clip range ε ([`clipped_surrogate_loss`]).
    Clipped { clip_eps: f64 },
    /// The vanilla policy gradient −mean log π · Â ([`policy_gradient_loss`]), REINFORCE.
    Vanilla,
}

/// The critic's part of a minibatch: its current predictions V, the rollout's
/// predictions V_old, the targets R, and the clip range of the value loss.
#[derive(Debug, Clone)]
pub struct ValueTerms<'a> {
    pub new_values: &'a Tensor,
    pub old_values: &'a Tensor,
    pub returns: &'a Tensor,
    pub clip_eps: Option<f64>,
}

/// One minibatch of a policy-gradient update.
#[derive(Debug, Clone)]
pub struct MinibatchLoss<'a> {
    /// log π_θ(a|s) of the taken actions under the current policy (differentiable).
    pub new_logp: &'a Tensor,
    /// The same under the policy that collected the rollout.
    pub old_logp: &'a Tensor,
    pub advantages: &'a Tensor,
    /// Mean entropy of the current policy (a scalar), for the bonus.
    pub entropy: &'a Tensor,
    /// The critic's terms; `None` without a critic.
    pub value: Option<ValueTerms<'a>>,
    /// 1 for real entries, 0 for padding (language-model answers of different lengths).
    pub mask: Option<&'a Tensor>,
}

/// What [`minibatch_loss`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinibatchInfo {
    pub policy_loss: f64,
    /// 0 without a critic.
    pub value_loss: f64,
    pub entropy: f64,
}

/// The loss of one minibatch, the one copy both trainers call (CleanRL's
/// `ppo.py`; Spinning Up's `compute_loss` returning `(loss, info)`):
///
/// ```text
/// L = L_policy − c_ent · H + c_vf · L_value
/// ```
///
/// with L_policy the clipped surrogate (PPO) or the vanilla policy gradient,
/// and L_value the (optionally clipped) value loss.
pub fn minibatch_loss(
    m: &MinibatchLoss,
    policy: PolicyLoss,
    ent_coef: f64,
    vf_coef: f64,
) -> Result<(Tensor, MinibatchInfo)> {
    let pg = match policy {
        PolicyLoss::Clipped { clip_eps } => {
            clipped_surrogate_loss(m.new_logp, m.old_logp, m.advantages, clip_eps, m.mask)?
        }
        PolicyLoss::Vanilla => policy_gradient_loss(m.new_logp, m.advantages, m.mask)?,
    };
    let mut loss = (&pg - (m.entropy * ent_coef)?)?;
    let mut info = MinibatchInfo {
        policy_loss: scalar(&pg)?,
        value_loss: 0.0,
        entropy: scalar(m.entropy)?,
    };
    if let Some(v) = &m.value {
        let vl = value_loss(v.new_values, v.old_values, v.returns, v.clip_eps, m.mask)?;
        info.value_loss = scalar(&vl)?;
        loss = (loss + (vl * vf_coef)?)?;
    }
    Ok((loss, info))
}

/// Approximate KL(π_old ‖ π_new) from samples of π_old (Schulman 2020), with
/// log r = log π_new − log π_old:
/// - k1 = mean(−log r): unbiased, high variance, can be negative;
/// - k3 = mean((r − 1) − log r): unbiased, low variance, always ≥ 0.
///
/// Returns `(k1, k3)`.
pub fn approx_kl(
    new_logp: &Tensor,
    old_logp: &Tensor,
    mask: Option<&Tensor>,
) -> Result<(f64, f64)> {
    let log_ratio = (new_logp - old_logp)?;
    let k1 = masked_mean(&log_ratio.neg()?, mask)?;
    let k3 = masked_mean(&((log_ratio.exp()? - 1.0)? - &log_ratio)?, mask)?;
    Ok((scalar(&k1)?, scalar(&k3)?))
}

/// Fraction of samples whose probability ratio left `[1 − ε, 1 + ε]` (where the clip acts).
pub fn clip_fraction(
    new_logp: &Tensor,
    old_logp: &Tensor,
    clip_eps: f64,
    mask: Option<&Tensor>,
) -> Result<f64> {
    let ratio = (new_logp - old_logp)?.exp()?;
    let outside = (ratio - 1.0)?.abs()?.gt(clip_eps)?.to_dtype(DType::F32)?;
    scalar(&masked_mean(&outside, mask)?)
}

/// Explained variance `1 − Var(R − V) / Var(R)`: 1 is a perfect critic, 0 no better
/// than a constant, negative worse than one. NaN when the returns have no variance.
pub fn explained_variance(values: &Tensor, returns: &Tensor, mask: Option<&Tensor>) -> Result<f64> {
    let var = |x: &Tensor| -> Result<f64> {
        let m = masked_mean(x, mask)?;
        scalar(&masked_mean(&x.broadcast_sub(&m)?.sqr()?, mask)?)
    };
    let var_r = var(returns)?;
    if var_r == 0.0 {
        return Ok(f64::NAN);
    }
    Ok(1.0 - var(&(returns - values)?)? / var_r)
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t2(v: &[&[f32]]) -> Tensor {
        let rows = v.len();
        let cols = v[0].len();
        Tensor::from_vec(v.concat(), (rows, cols), &Device::Cpu).unwrap()
    }

    fn v1(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    /// Three steps of one environment, worked by hand with γ = 0.9, λ = 0.8.
    /// Step 0: r=1, V=0.5, V'=0.6; step 1: r=0, V=0.6, V'=2 (truncated: bootstrap);
    /// step 2: r=2, V=1, V'=7 but terminated (V' counts as 0).
    /// δ0 = 1 + 0.9·0.6 − 0.5 = 1.04; δ1 = 0 + 0.9·2 − 0.6 = 1.2; δ2 = 2 − 1 = 1.
    /// Â2 = 1; Â1 = 1.2 (episode ended at 1: no flow from step 2);
    /// Â0 = 1.04 + 0.72·1.2 = 1.904.
    #[test]
    fn gae_by_hand_with_truncation_and_termination() {
        let r = t2(&[&[1.0], &[0.0], &[2.0]]);
        let v = t2(&[&[0.5], &[0.6], &[1.0]]);
        let nv = t2(&[&[0.6], &[2.0], &[7.0]]);
        let term = t2(&[&[0.0], &[0.0], &[1.0]]);
        let end = t2(&[&[0.0], &[1.0], &[1.0]]);
        let x = GaeInputs {
            rewards: &r,
            values: &v,
            next_values: &nv,
            terminated: &term,
            episode_end: &end,
        };
        let Gae {
            advantages: adv,
            returns: ret,
        } = gae(&x, 0.9, 0.8).unwrap();
        close(&v1(&adv), &[1.904, 1.2, 1.0], 1e-5);
        close(&v1(&ret), &[2.404, 1.8, 2.0], 1e-5);
        // λ = 1, V ≡ 0 over one episode: discounted Monte-Carlo returns.
        let zeros = t2(&[&[0.0], &[0.0], &[0.0]]);
        let end = t2(&[&[0.0], &[0.0], &[1.0]]);
        let x = GaeInputs {
            rewards: &r,
            values: &zeros,
            next_values: &zeros,
            terminated: &end,
            episode_end: &end,
        };
        let adv = gae(&x, 0.9, 1.0).unwrap().advantages;
        close(&v1(&adv), &[1.0 + 0.81 * 2.0, 0.9 * 2.0, 2.0], 1e-5);
    }

    #[test]
    fn gae_rejects_mismatched_shapes() {
        let a = t2(&[&[1.0, 2.0]]);
        let b = t2(&[&[1.0]]);
        let x = GaeInputs {
            rewards: &a,
            values: &b,
            next_values: &a,
            terminated: &a,
            episode_end: &a,
        };
        let e = gae(&x, 0.9, 0.9).unwrap_err().to_string();
        assert!(e.contains("`values`"), "{e}");
    }

    /// ρ = e^{0.5} ≈ 1.6487 with A = 2 is clipped to 1.2·2 = 2.4; ρ = e^{−0.5} ≈ 0.6065
    /// with A = −1: min(−0.6065, −0.8) = −0.8 (the pessimistic bound); ρ = 1, A = 3: 3.
    /// Loss = −(2.4 − 0.8 + 3)/3.
    #[test]
    fn clipped_surrogate_by_hand() {
        let new = Tensor::new(&[0.5f32, -0.5, 0.0], &Device::Cpu).unwrap();
        let old = Tensor::new(&[0.0f32, 0.0, 0.0], &Device::Cpu).unwrap();
        let adv = Tensor::new(&[2.0f32, -1.0, 3.0], &Device::Cpu).unwrap();
        let loss = clipped_surrogate_loss(&new, &old, &adv, 0.2, None).unwrap();
        let want = -(2.4 - 0.8 + 3.0) / 3.0;
        assert!((loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-5);
        // With a mask dropping the last entry: −(2.4 − 0.8)/2.
        let mask = Tensor::new(&[1.0f32, 1.0, 0.0], &Device::Cpu).unwrap();
        let loss = clipped_surrogate_loss(&new, &old, &adv, 0.2, Some(&mask)).unwrap();
        assert!((loss.to_scalar::<f32>().unwrap() + 0.8).abs() < 1e-5);
        let cf = clip_fraction(&new, &old, 0.2, None).unwrap();
        assert!((cf - 2.0 / 3.0).abs() < 1e-6);
    }

    /// V = 1.5, V_old = 1, R = 2, ε = 0.2: unclipped (−0.5)² = 0.25, clipped V = 1.2,
    /// (−0.8)² = 0.64; max = 0.64, loss = 0.32. Without clipping: 0.125.
    #[test]
    fn value_loss_by_hand() {
        let d = &Device::Cpu;
        let (v, vo, r) = (
            Tensor::new(&[1.5f32], d).unwrap(),
            Tensor::new(&[1.0f32], d).unwrap(),
            Tensor::new(&[2.0f32], d).unwrap(),
        );
        let l = value_loss(&v, &vo, &r, Some(0.2), None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((l - 0.32).abs() < 1e-6);
        let l = value_loss(&v, &vo, &r, None, None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((l - 0.125).abs() < 1e-6);
    }

    #[test]
    fn entropy_kl_whiten_explained_variance_by_hand() {
        let d = &Device::Cpu;
        // Uniform over 4 actions: H = ln 4. A sure action: H = 0.
        let logits = Tensor::new(&[[0f32, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]], d).unwrap();
        let h = entropy(&logits, None).unwrap().to_scalar::<f32>().unwrap();
        assert!((h - 4f32.ln() / 2.0).abs() < 1e-5);
        let lp = log_prob_of(&logits, &Tensor::new(&[2u32, 0], d).unwrap()).unwrap();
        close(&v1(&lp), &[-(4f32.ln()), 0.0], 1e-5);

        // log r = [0.1, −0.2]: k1 = mean(−log r) = 0.05; k3 = mean(e^x − 1 − x).
        let new = Tensor::new(&[0.1f32, -0.2], d).unwrap();
        let old = Tensor::new(&[0.0f32, 0.0], d).unwrap();
        let (k1, k3) = approx_kl(&new, &old, None).unwrap();
        let k3_want = ((0.1f64.exp() - 1.0 - 0.1) + ((-0.2f64).exp() - 1.0 + 0.2)) / 2.0;
        assert!((k1 - 0.05).abs() < 1e-6 && (k3 - k3_want).abs() < 1e-6);

        // Whitening [1, 2, 3]: mean 2, unbiased std 1 → [−1, 0, 1].
        let w = whiten(&Tensor::new(&[1f32, 2.0, 3.0], d).unwrap(), None).unwrap();
        close(&v1(&w), &[-1.0, 0.0, 1.0], 1e-5);
        // Masked: [1, 3, (99 padded)] → mean 2, std √2 → [−0.7071, 0.7071, 0].
        let m = Tensor::new(&[1f32, 1.0, 0.0], d).unwrap();
        let w = whiten(&Tensor::new(&[1f32, 3.0, 99.0], d).unwrap(), Some(&m)).unwrap();
        close(&v1(&w), &[-0.70710677, 0.70710677, 0.0], 1e-5);

        // R = [1, 2, 3], V = [1, 2, 2]: Var(R − V) = Var([0, 0, 1]) = 2/9, Var(R) = 2/3.
        let r = Tensor::new(&[1f32, 2.0, 3.0], d).unwrap();
        let v = Tensor::new(&[1f32, 2.0, 2.0], d).unwrap();
        let ev = explained_variance(&v, &r, None).unwrap();
        assert!((ev - (1.0 - (2.0 / 9.0) / (2.0 / 3.0))).abs() < 1e-6);
    }
}
