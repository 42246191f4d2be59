//! Rung 7: PPO of the tiny SFT model. An update moves each answer's token
//! probabilities in the direction of their advantages; a resumed run is the
//! uninterrupted run, record for record; bad configs name their field.

use candle_core::{DType, Device};
use rlhf_lab::lm::LanguageModel;
use rlhf_lab::rlhf::ppo::{
    training_prompts, PpoRecord, PpoTrainer, RewardSource, RlhfModels, RlhfPpoConfig,
};
use rlhf_lab::rlhf::preferences::{self, tiny_sft_dir};
use rlhf_lab::rlhf::RewardModel;

fn models() -> RlhfModels {
    let sft = LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap();
    let rm = RewardModel::load(&preferences::tiny_rm_dir(), &Device::Cpu).unwrap();
    RlhfModels::new(&sft, &rm).unwrap()
}

fn small_config() -> RlhfPpoConfig {
    RlhfPpoConfig {
        prompts_per_iteration: 8,
        samples_per_prompt: 2,
        minibatch_size: 4,
        ppo_epochs: 1,
        max_new_tokens: 24,
        sample_every: 1,
        ..RlhfPpoConfig::default()
    }
}

/// The clipped surrogate pushes log π up where Â > 0 and down where Â < 0:
/// after one iteration (four passes over 16 answers, the gold reward so the
/// scores are exact), Σ_t Â_t · log(π_new/π_old) over the first answer is
/// positive. A sign error anywhere between the rewards and the optimiser
/// makes it negative. The per-token rewards are the KL penalties plus the
/// score on the last token, and sum to score − β·KL.
#[test]
fn an_update_moves_token_probabilities_with_their_advantages() {
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let config = RlhfPpoConfig {
        prompts_per_iteration: 16,
        samples_per_prompt: 4,
        minibatch_size: 16,
        ppo_epochs: 4,
        learning_rate: 1e-4,
        max_new_tokens: 32,
        reward: RewardSource::Gold,
        ..RlhfPpoConfig::default()
    };
    let mut trainer = PpoTrainer::new(models(), training_prompts(&data), config).unwrap();
    let (record, a) = trainer.step_with_anatomy().unwrap();
    assert_eq!(record.iteration, 1);
    let n = a.tokens.len();
    assert!(
        n > 1
            && [&a.rewards, &a.advantages, &a.ratio, &a.values, &a.returns]
                .iter()
                .all(|v| v.len() == n)
    );
    // Rewards: −β·KL_t everywhere, the score added on the last token.
    for t in 0..n {
        let want = a.kl_penalty[t] + if t + 1 == n { a.score } else { 0.0 };
        assert!((a.rewards[t] - want).abs() < 1e-5, "token {t}");
    }
    let moved: f64 = a
        .advantages
        .iter()
        .zip(&a.ratio)
        .map(|(adv, r)| adv * r.ln())
        .sum();
    eprintln!("Σ Â·log r = {moved:.4} over {n} tokens; record {record:?}");
    assert!(moved > 0.0, "Σ Â·log r = {moved}");
    assert!(record.approx_kl > 0.0 && record.approx_kl.is_finite());
}

fn without_timings(r: &PpoRecord) -> PpoRecord {
    PpoRecord {
        generation_tokens_per_sec: 0.0,
        seconds_generation: 0.0,
        seconds_scoring: 0.0,
        seconds_update: 0.0,
        ..r.clone()
    }
}

/// Two iterations straight through, or one, a checkpoint, a resume and one
/// more: the same records (timings aside), held-out measurements and policy
/// weights, on CPU.
#[test]
fn resumed_training_matches_uninterrupted_training() {
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let prompts = training_prompts(&data);
    let held_out = data.prompts.test[..4].to_vec();
    let config = RlhfPpoConfig {
        eval_every: 1,
        eval_samples_per_prompt: 1,
        ..small_config()
    };
    let mut straight = PpoTrainer::new(models(), prompts.clone(), config.clone())
        .unwrap()
        .evaluate_on(held_out.clone());
    straight.step().unwrap();
    straight.step().unwrap();

    let dir = std::env::temp_dir().join(format!("rlhf-ppo-resume-{}", std::process::id()));
    let mut first = PpoTrainer::new(models(), prompts.clone(), config)
        .unwrap()
        .evaluate_on(held_out.clone());
    first.step().unwrap();
    first.save_checkpoint(&dir).unwrap();
    let reference = first.models.reference.clone();
    let reward = first.models.reward.clone();
    drop(first);
    let mut resumed = PpoTrainer::resume(&dir, &reference, &reward, prompts)
        .unwrap()
        .evaluate_on(held_out);
    assert_eq!(resumed.iteration, 1);
    resumed.step().unwrap();
    std::fs::remove_dir_all(&dir).ok();

    let a: Vec<PpoRecord> = straight.history.iter().map(without_timings).collect();
    let b: Vec<PpoRecord> = resumed.history.iter().map(without_timings).collect();
    assert_eq!(a, b);
    assert_eq!(straight.samples, resumed.samples);
    // Held-out measurements before training and after each iteration.
    let measured = |t: &PpoTrainer| -> Vec<_> {
        t.held_out
            .iter()
            .map(|m| (m.iteration, m.evaluation))
            .collect()
    };
    assert_eq!(measured(&straight).len(), 3);
    assert_eq!(measured(&straight), measured(&resumed));
    assert_eq!(
        straight.held_out[0].evaluation.kl, 0.0,
        "the SFT policy is the reference"
    );
    for ((name, x), (_, y)) in straight
        .models
        .policy
        .vars()
        .iter()
        .zip(resumed.models.policy.vars().iter())
    {
        let d: f32 = (x.as_tensor() - y.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "{name} differs after resuming");
    }
}

/// Bad configurations are refused with the field's name.
#[test]
fn bad_configs_name_their_field() {
    let err = |c: RlhfPpoConfig| c.validate().unwrap_err().to_string();
    assert!(err(RlhfPpoConfig {
        samples_per_prompt: 3,
        ..RlhfPpoConfig::default()
    })
    .contains("samples_per_prompt"));
    assert!(err(RlhfPpoConfig {
        value_learning_rate: f64::NAN,
        ..RlhfPpoConfig::default()
    })
    .contains("value_learning_rate"));
    assert!(err(RlhfPpoConfig {
        kl_coef: -0.1,
        ..RlhfPpoConfig::default()
    })
    .contains("kl_coef"));
    // PPO runs without dropout: a LoRA config asking for it is refused.
    assert!(err(RlhfPpoConfig {
        lora: Some(rlhf_lab::lm::lora::LoraConfig {
            lora_dropout: 0.05,
            ..Default::default()
        }),
        ..RlhfPpoConfig::default()
    })
    .contains("lora_dropout"));
    let e = serde_json::from_str::<RlhfPpoConfig>(r#"{"kl_coeff": 0.1}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("kl_coeff"), "{e}");
}

/// The guardrail at work: the same short run (same prompts, seed and step
/// size) with β = 0 and with β = 0.5 — without the KL penalty the policy
/// drifts further from the reference. Measured with these settings: KL per
/// answer over the last two iterations 6.15 (β = 0) against 2.40 (β = 0.5);
/// single iterations are noisy (β = 0.5 reached 3.8 once), hence the pair.
#[test]
fn without_the_kl_penalty_the_policy_drifts_further() {
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let run = |kl_coef: f64| -> f64 {
        let config = RlhfPpoConfig {
            iterations: 6,
            prompts_per_iteration: 32,
            samples_per_prompt: 4,
            minibatch_size: 8,
            ppo_epochs: 2,
            learning_rate: 1e-4,
            max_new_tokens: 32,
            kl_coef,
            sample_every: 0,
            ..RlhfPpoConfig::default()
        };
        let mut t = PpoTrainer::new(models(), training_prompts(&data), config).unwrap();
        t.train().unwrap();
        let last = &t.history[t.history.len() - 2..];
        let kl = last.iter().map(|r| r.kl).sum::<f64>() / 2.0;
        eprintln!(
            "β = {kl_coef}: KL per answer by iteration {:?}",
            t.history
                .iter()
                .map(|r| (r.kl * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
        kl
    };
    let (free, guarded) = (run(0.0), run(0.5));
    assert!(
        free > guarded + 1.5,
        "β = 0: KL {free:.2}; β = 0.5: KL {guarded:.2}"
    );
}

/// PPO improves what it optimises, on prompts it never trained on: 20
/// iterations against the gold standard (the oracle reward: whether the
/// reward model is worth optimising is notebook 07's question, not this
/// test's) on the fact questions, measured on the 41 held-out fact questions,
/// four answers each, the same dice before and after. Measured: 4.40 → 4.76
/// (at KL 0.2 per answer); a mean over 164 answers has a standard error of
/// about 0.1, and the same dice make the two measurements differ by the policy.
#[test]
fn a_short_run_raises_the_gold_score_on_held_out_prompts() {
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let facts = |ps: &[rlhf_lab::feedback::candidates::Prompt]| -> Vec<_> {
        ps.iter()
            .filter(|p| p.kind.name() == "fact")
            .cloned()
            .collect()
    };
    let held_out: Vec<_> = facts(&data.prompts.test)
        .into_iter()
        .chain(facts(&data.prompts.validation))
        .collect();
    let config = RlhfPpoConfig {
        iterations: 20,
        learning_rate: 5e-5,
        reward: RewardSource::Gold,
        eval_every: 20,
        eval_samples_per_prompt: 4,
        sample_every: 0,
        ..RlhfPpoConfig::default()
    };
    let mut t = PpoTrainer::new(models(), facts(&data.prompts.train), config)
        .unwrap()
        .evaluate_on(held_out);
    t.train().unwrap();
    let (before, after) = (t.held_out[0].evaluation, t.held_out[1].evaluation);
    assert_eq!((before.answers, t.held_out[1].iteration), (164, 20));
    assert!(
        after.gold_score > before.gold_score + 0.2,
        "held-out gold {:.3} → {:.3}",
        before.gold_score,
        after.gold_score
    );
}

/// PPO under LoRA: the reference is the policy's base with its adapters off,
/// so the first measurement's KL is exactly 0; updates move only the adapters;
/// a checkpoint holds the adapters (PEFT format) and resumes to the
/// uninterrupted run, record for record. A config that asks for LoRA with a
/// policy that has none is refused.
#[test]
fn lora_ppo_trains_adapters_against_its_own_base_and_resumes() {
    use rlhf_lab::lm::lora::LoraConfig;
    let data = preferences::read(&preferences::preferences_dir()).unwrap();
    let prompts = training_prompts(&data);
    let held_out = data.prompts.test[..4].to_vec();
    let sft = LanguageModel::load(&tiny_sft_dir(), &Device::Cpu, DType::F32).unwrap();
    let rm = RewardModel::load(&preferences::tiny_rm_dir(), &Device::Cpu).unwrap();
    let config = RlhfPpoConfig {
        eval_every: 1,
        eval_samples_per_prompt: 1,
        learning_rate: 1e-3,
        lora: Some(LoraConfig::new(4, 8.0, &["q_proj", "v_proj", "down_proj"])),
        ..small_config()
    };
    let err = PpoTrainer::new(
        RlhfModels::new(&sft, &rm).unwrap(),
        prompts.clone(),
        config.clone(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("lora"), "{err}");
    let base_before: Vec<Vec<f32>> = sft
        .vars()
        .iter()
        .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let start = || {
        PpoTrainer::new(
            RlhfModels::for_config(&sft, &rm, &config).unwrap(),
            prompts.clone(),
            config.clone(),
        )
        .unwrap()
        .evaluate_on(held_out.clone())
    };
    let mut straight = start();
    assert!(straight.models.reference.lora().is_none());
    let adapters_before: Vec<Vec<f32>> = straight
        .models
        .policy
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    straight.step().unwrap();
    straight.step().unwrap();
    assert_eq!(straight.held_out[0].evaluation.kl, 0.0, "B = 0: π = π_ref");
    assert!(
        straight.held_out[2].evaluation.kl != 0.0,
        "the adapters moved the policy"
    );
    let base_after: Vec<Vec<f32>> = sft
        .vars()
        .iter()
        .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_eq!(base_before, base_after, "a base weight changed");
    let moved = straight
        .models
        .policy
        .trainable_vars()
        .iter()
        .zip(&adapters_before)
        .filter(|((_, v), b)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap() != **b)
        .count();
    assert!(moved > 0);

    let dir = std::env::temp_dir().join(format!("rlhf-ppo-lora-{}", std::process::id()));
    let mut first = start();
    first.step().unwrap();
    first.save_checkpoint(&dir).unwrap();
    assert!(dir.join("policy/adapter_config.json").is_file());
    assert!(!dir.join("policy/model.safetensors").exists());
    drop(first);
    let mut resumed = PpoTrainer::resume(&dir, &sft, &rm, prompts)
        .unwrap()
        .evaluate_on(held_out);
    assert!(resumed.models.policy.lora().is_some() && resumed.models.reference.lora().is_none());
    resumed.step().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let a: Vec<PpoRecord> = straight.history.iter().map(without_timings).collect();
    let b: Vec<PpoRecord> = resumed.history.iter().map(without_timings).collect();
    assert_eq!(a, b);
}
