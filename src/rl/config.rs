use anyhow::{bail, Context, Result};
use gridworld::Encoding;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which learning rule updates the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// PPO: GAE advantages, clipped surrogate, several epochs of minibatches.
    #[default]
    Ppo,
    /// REINFORCE (Williams 1992): Monte-Carlo returns, no critic, one gradient step
    /// per rollout. No advantage normalisation (that would itself be a baseline).
    Reinforce,
    /// REINFORCE with a learned value baseline: Â = G_t − V(s_t).
    ReinforceBaseline,
    /// PPO with the critic removed: Monte-Carlo returns Â = G_t (whitened per
    /// minibatch, as PPO does), the same clipped surrogate, epochs and
    /// minibatches. The ablation that isolates what the value network adds.
    PpoNoCritic,
}

/// Every hyper-parameter of the gridworld trainer, with CleanRL-style defaults
/// (Huang et al., *The 37 Implementation Details of PPO*, 2022). Load from JSON with
/// [`PpoConfig::from_file`]; unknown or bad fields are errors that name the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// The learning rule: PPO, or REINFORCE with or without a baseline.
    pub algorithm: Algorithm,
    /// Seeds network initialisation, environments, action sampling and minibatches.
    pub seed: u64,
    /// Parallel environments N.
    pub num_envs: usize,
    /// Steps per environment per rollout T; a rollout holds N·T transitions.
    pub num_steps: usize,
    /// Training budget in environment steps.
    pub total_timesteps: usize,
    /// Adam learning rate (Adam's ε is 1e-5, as in CleanRL).
    pub learning_rate: f64,
    /// Decay the learning rate linearly to 0 over the budget.
    pub anneal_lr: bool,
    /// Discount; `None` uses the map's γ.
    pub gamma: Option<f64>,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Minibatches per epoch.
    pub num_minibatches: usize,
    /// Passes over each rollout.
    pub update_epochs: usize,
    /// Normalise advantages per minibatch ("whitening"). Off by default for the
    /// gridworld: with it, the policy commits early to actions that only look good
    /// under the early, poor policy (see the notebook), and small action gaps are lost.
    pub norm_adv: bool,
    /// PPO's ε: the ratio is clipped to [1 − ε, 1 + ε].
    pub clip_coef: f64,
    /// Clip the value loss as well.
    pub clip_vloss: bool,
    /// Entropy bonus coefficient at the start of training. With
    /// `entropy_in_reward_units` it is multiplied by the map's reward scale.
    pub ent_coef: f64,
    /// Measure the entropy bonus in units of the map's reward scale (its largest
    /// |reward|), so that one setting suits maps whose rewards differ tenfold.
    pub entropy_in_reward_units: bool,
    /// If set, the entropy coefficient moves linearly from `ent_coef` to this value
    /// over the budget: a wide policy early (so no action is abandoned before the
    /// critic knows its worth), a sharp one at the end.
    pub ent_coef_final: Option<f64>,
    /// Value-loss coefficient.
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Stop an update's epochs early when the k3 KL exceeds this.
    pub target_kl: Option<f64>,
    /// Hidden layer widths of both networks.
    pub hidden_sizes: Vec<usize>,
    /// How a state is shown to the networks.
    pub encoding: Encoding,
    /// Episode truncation; `None` uses the map's `max_steps`.
    pub max_episode_steps: Option<usize>,
    /// Probability that a training episode starts in a random non-terminal state
    /// ("exploring starts", Sutton & Barto §5.3). Without it, states off the current
    /// route are rarely visited and the agent can settle on a nearby small reward.
    /// Reported returns count only episodes that began at the start cell.
    pub exploring_starts: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Ppo,
            seed: 1,
            num_envs: 16,
            num_steps: 32,
            total_timesteps: 102_400,
            learning_rate: 3e-3,
            anneal_lr: true,
            gamma: None,
            gae_lambda: 0.95,
            num_minibatches: 4,
            update_epochs: 4,
            norm_adv: false,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.02,
            entropy_in_reward_units: true,
            ent_coef_final: Some(0.0),
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: None,
            hidden_sizes: vec![32, 32],
            encoding: Encoding::OneHot,
            max_episode_steps: None,
            exploring_starts: 0.8,
        }
    }
}

/// The most transitions one rollout may hold (`num_envs × num_steps`). Each
/// transition takes about 40 bytes in the rollout and as much again in the
/// update's tensors and minibatch copies, so 2^22 = 4,194,304 transitions is
/// about 350 MB: a bound that a laptop holds, far above the shipped configs
/// (512), and low enough that a typo like `num_envs: 100000000` is an error
/// rather than an allocation that aborts the process.
pub const MAX_ROLLOUT_TRANSITIONS: usize = 1 << 22;

/// Bytes per transition used in the limit's message (rollout + update copies).
const BYTES_PER_TRANSITION: usize = 80;

/// The widest hidden layer: a 4096×4096 layer holds 16.7 M weights (64 MB
/// with its Adam moments ×3), far more than any gridworld needs.
pub const MAX_HIDDEN_SIZE: usize = 4096;

impl PpoConfig {
    /// Transitions per rollout (N·T), saturating at `usize::MAX`
    /// ([`Self::validate`] refuses anything above [`MAX_ROLLOUT_TRANSITIONS`]).
    pub fn batch_size(&self) -> usize {
        self.num_envs.saturating_mul(self.num_steps)
    }

    /// `num_envs × num_steps` within [`MAX_ROLLOUT_TRANSITIONS`], else an
    /// error naming both fields, the maximum and why.
    fn check_rollout_size(&self) -> Result<()> {
        let size = self.num_envs.checked_mul(self.num_steps);
        if size.is_some_and(|n| n <= MAX_ROLLOUT_TRANSITIONS) {
            return Ok(());
        }
        let got = match size {
            Some(n) => format!("{n}"),
            None => "more than usize::MAX".to_string(),
        };
        bail!(
            "config fields `num_envs` ({}) × `num_steps` ({}) = {got} transitions per rollout; \
             the maximum is {MAX_ROLLOUT_TRANSITIONS} (about {} MB of rollout buffers at ~{BYTES_PER_TRANSITION} \
             bytes a transition, so that a typo fails here instead of aborting on allocation)",
            self.num_envs,
            self.num_steps,
            MAX_ROLLOUT_TRANSITIONS * BYTES_PER_TRANSITION / 1_000_000
        )
    }

    /// Transitions per minibatch.
    pub fn minibatch_size(&self) -> usize {
        self.batch_size() / self.num_minibatches.max(1)
    }

    /// Rollouts in the budget.
    pub fn num_iterations(&self) -> usize {
        self.total_timesteps / self.batch_size().max(1)
    }

    /// The entropy coefficient at `iteration` (1-based) of the budget.
    pub fn ent_coef_at(&self, iteration: usize) -> f64 {
        match self.ent_coef_final {
            None => self.ent_coef,
            Some(last) => {
                let frac = ((iteration.saturating_sub(1)) as f64
                    / self.num_iterations().max(1) as f64)
                    .min(1.0);
                self.ent_coef + (last - self.ent_coef) * frac
            }
        }
    }

    /// Check every field; the error names the field and the rule.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("config field `{name}` must be a positive number, got {v}");
            }
            Ok(())
        };
        let non_negative = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v >= 0.0) {
                bail!("config field `{name}` must be zero or positive, got {v}");
            }
            Ok(())
        };
        let count = |name: &str, v: usize| -> Result<()> {
            if v == 0 {
                bail!("config field `{name}` must be at least 1, got 0");
            }
            Ok(())
        };
        positive("learning_rate", self.learning_rate)?;
        positive("clip_coef", self.clip_coef)?;
        positive("max_grad_norm", self.max_grad_norm)?;
        non_negative("ent_coef", self.ent_coef)?;
        non_negative("vf_coef", self.vf_coef)?;
        if let Some(e) = self.ent_coef_final {
            non_negative("ent_coef_final", e)?;
        }
        count("num_envs", self.num_envs)?;
        count("num_steps", self.num_steps)?;
        count("num_minibatches", self.num_minibatches)?;
        count("update_epochs", self.update_epochs)?;
        self.check_rollout_size()?;
        if let Some(g) = self.gamma {
            if !(g > 0.0 && g <= 1.0) {
                bail!("config field `gamma` must be in (0, 1], got {g}");
            }
        }
        if !(0.0..=1.0).contains(&self.gae_lambda) {
            bail!(
                "config field `gae_lambda` must be in [0, 1], got {}",
                self.gae_lambda
            );
        }
        if self.num_minibatches > self.batch_size() {
            bail!(
                "config field `num_minibatches` ({}) exceeds the rollout size num_envs × num_steps = {}",
                self.num_minibatches,
                self.batch_size()
            );
        }
        if self.total_timesteps < self.batch_size() {
            bail!(
                "config field `total_timesteps` ({}) is smaller than one rollout (num_envs × num_steps = {})",
                self.total_timesteps,
                self.batch_size()
            );
        }
        if let Some(k) = self.target_kl {
            positive("target_kl", k)?;
        }
        if let Some(0) = self.max_episode_steps {
            bail!("config field `max_episode_steps` must be at least 1, got 0");
        }
        if !(0.0..=1.0).contains(&self.exploring_starts) {
            bail!(
                "config field `exploring_starts` must be a probability in [0, 1], got {}",
                self.exploring_starts
            );
        }
        if self.hidden_sizes.contains(&0) {
            bail!(
                "config field `hidden_sizes` must not contain 0, got {:?}",
                self.hidden_sizes
            );
        }
        if let Some(&w) = self.hidden_sizes.iter().find(|&&w| w > MAX_HIDDEN_SIZE) {
            bail!(
                "config field `hidden_sizes` has a layer of {w}; the maximum is {MAX_HIDDEN_SIZE} \
                 (a {MAX_HIDDEN_SIZE}×{MAX_HIDDEN_SIZE} layer is 16.7 M weights, ~200 MB with Adam's moments)"
            );
        }
        Ok(())
    }

    /// The config as pretty-printed JSON (the format [`Self::from_file`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Read a JSON config (a JSON object whose missing fields take their
    /// defaults, [`crate::io::read_config`]) and validate it; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cfg: PpoConfig = crate::io::read_config(path)?;
        cfg.validate()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        assert!(PpoConfig::default().validate().is_ok());
        let bad = PpoConfig {
            learning_rate: -0.1,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`learning_rate`"));
        let bad = PpoConfig {
            num_minibatches: 0,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`num_minibatches`"));
        let bad = PpoConfig {
            gamma: Some(1.5),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("`gamma`"));
    }

    /// A rollout of num_envs × num_steps transitions above the cap (or one
    /// whose product overflows usize) is an error naming the fields and the
    /// maximum; so is a hidden layer wider than the cap.
    #[test]
    fn rollout_and_layer_sizes_are_capped() {
        for (num_envs, num_steps) in [(usize::MAX, 32), (100_000_000, 32), (1 << 20, 5)] {
            let bad = PpoConfig {
                num_envs,
                num_steps,
                total_timesteps: usize::MAX,
                ..Default::default()
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(
                e.contains("`num_envs`") && e.contains(&MAX_ROLLOUT_TRANSITIONS.to_string()),
                "{e}"
            );
        }
        let at_cap = PpoConfig {
            num_envs: 1 << 20,
            num_steps: 4,
            total_timesteps: 1 << 22,
            ..Default::default()
        };
        assert!(at_cap.validate().is_ok());
        let wide = PpoConfig {
            hidden_sizes: vec![32, 1 << 20],
            ..Default::default()
        };
        let e = wide.validate().unwrap_err().to_string();
        assert!(e.contains("`hidden_sizes`") && e.contains("4096"), "{e}");
    }

    #[test]
    fn json_errors_name_file_and_field() {
        let dir = std::env::temp_dir().join(format!("rlhf-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.json");
        std::fs::write(&p, r#"{"learning_rat": 0.1}"#).unwrap();
        let e = format!("{:#}", PpoConfig::from_file(&p).unwrap_err());
        assert!(e.contains("c.json") && e.contains("learning_rat"), "{e}");
        std::fs::write(&p, r#"{"num_envs": 0}"#).unwrap();
        let e = format!("{:#}", PpoConfig::from_file(&p).unwrap_err());
        assert!(e.contains("c.json") && e.contains("`num_envs`"), "{e}");
        for not_an_object in ["[]", "null", "7"] {
            std::fs::write(&p, not_an_object).unwrap();
            let e = format!("{:#}", PpoConfig::from_file(&p).unwrap_err());
            assert!(e.contains("c.json") && e.contains("JSON object"), "{e}");
        }
        std::fs::write(&p, r#"{"seed": 7, "ent_coef": 0.0}"#).unwrap();
        let c = PpoConfig::from_file(&p).unwrap();
        assert_eq!(
            (c.seed, c.ent_coef, c.num_envs),
            (7, 0.0, PpoConfig::default().num_envs)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
