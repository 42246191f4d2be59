//! The CLI reproduces Russell & Norvig's 4×3-world utilities (AIMA 3rd ed., Fig. 17.3).

use std::process::Command;

fn rlhf_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rlhf-lab"))
        .args(args)
        .output()
        .expect("run rlhf-lab")
}

#[test]
fn solve_aima_json_matches_textbook() {
    let out = rlhf_lab(&["gridworld", "solve", "--map", "aima", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let textbook = [
        (0, 0, 0.812),
        (0, 1, 0.868),
        (0, 2, 0.918),
        (0, 3, 1.0),
        (1, 0, 0.762),
        (1, 2, 0.660),
        (1, 3, -1.0),
        (2, 0, 0.705),
        (2, 1, 0.655),
        (2, 2, 0.611),
        (2, 3, 0.388),
    ];
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 11);
    for (r, c, u) in textbook {
        let cell = cells
            .iter()
            .find(|x| x["row"] == r && x["col"] == c)
            .unwrap_or_else(|| panic!("cell ({r},{c}) missing"));
        let got = cell["utility_reward_in_state"].as_f64().unwrap();
        // The book prints three decimals.
        assert!((got - u).abs() <= 5e-4 + 1e-9, "({r},{c}): {got} vs {u}");
    }
    let start = cells
        .iter()
        .find(|x| x["row"] == 2 && x["col"] == 0)
        .unwrap();
    assert_eq!(start["action"], "up");
    assert!(json["bellman_residual"].as_f64().unwrap() < 1e-9);
}

#[test]
fn policy_iteration_agrees_and_bad_map_names_file_line_column() {
    let a = rlhf_lab(&["gridworld", "solve", "--map", "dragon", "--json"]);
    let b = rlhf_lab(&[
        "gridworld",
        "solve",
        "--map",
        "dragon",
        "--json",
        "--method",
        "policy",
    ]);
    let va: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let vb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    let d = (va["start_value"].as_f64().unwrap() - vb["start_value"].as_f64().unwrap()).abs();
    assert!(d < 1e-8);

    let dir = std::env::temp_dir().join(format!("rlhf-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.map");
    std::fs::write(&path, "gamma = 0.9\nS . x\n. . +1\n").unwrap();
    let out = rlhf_lab(&["gridworld", "solve", "--map", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:5: unknown symbol `x`", path.display())),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
