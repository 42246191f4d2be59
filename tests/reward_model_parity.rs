//! The committed reward model (`datasets/models/tiny-rm`) gives the same token
//! ids and raw scores in rlhf-lab as in Hugging Face transformers'
//! `AutoModelForSequenceClassification` (`tests/fixtures/tiny_rm_reference.json`,
//! written by `scripts/reference/reward_model_reference.py`). Tolerance 1e-4
//! (f32, different matrix-multiply kernels).

use candle_core::Device;
use rlhf_lab::rlhf::RewardModel;
use std::path::Path;

#[test]
fn scores_match_transformers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/tiny_rm_reference.json")).unwrap(),
    )
    .unwrap();
    let rm = RewardModel::load(&root.join("datasets/models/tiny-rm"), &Device::Cpu).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let (prompt, answer) = (
            case["prompt"].as_str().unwrap(),
            case["answer"].as_str().unwrap(),
        );
        let want_ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = rm.encode(prompt, answer).unwrap();
        assert_eq!(ids, want_ids, "token ids of {answer:?}");
        let raw = rm.raw_scores_of_ids(&[ids], 1).unwrap()[0];
        let want = case["raw_score"].as_f64().unwrap();
        assert!(
            (raw - want).abs() < 1e-4,
            "{answer:?}: rlhf-lab {raw} vs transformers {want}"
        );
    }
}
