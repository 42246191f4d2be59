//! The notebooks' exercises (`rlhf_lab::exercises`): every exercise cell has a
//! reference solution and a check cell right after it, every reference solution
//! has an exercise cell, and every checker passes on its reference solution,
//! compiled here from `notebooks/solutions/NN.rs`. (Each checker's unit tests show
//! that the notebook's unchanged stub fails with its hint; `scripts/test.sh` runs
//! the notebooks with the solutions swapped in and requires every check to pass.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rlhf_lab::exercises::{feedback, gridworld, ppo, sft, transformer, Check};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Exercise id → solution text, read as `scripts/run_notebooks.py` reads it: a line
/// `// exercise: <id>` starts a section, which runs to the next such line.
fn solution_sections(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).unwrap();
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("// exercise:") {
            if let Some((id, lines)) = current.take() {
                let previous = sections.insert(id.clone(), lines.join("\n").trim().to_string());
                assert!(
                    previous.is_none(),
                    "{}: {id} has two sections",
                    path.display()
                );
            }
            current = Some((id.trim().to_string(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((id, lines)) = current {
        let previous = sections.insert(id.clone(), lines.join("\n").trim().to_string());
        assert!(
            previous.is_none(),
            "{}: {id} has two sections",
            path.display()
        );
    }
    sections
}

fn cell_tags(cell: &serde_json::Value) -> Vec<String> {
    cell["metadata"]["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn cell_source(cell: &serde_json::Value) -> String {
    match &cell["source"] {
        serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect(),
        serde_json::Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// Exercise id → (notebook file name, check cell source), checking the layout:
/// each exercise cell is a code cell followed by a code cell tagged `check`, and
/// each check cell follows an exercise cell.
fn notebook_exercises() -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(root().join("notebooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let nb: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let cells = nb["cells"].as_array().unwrap();
        for (i, cell) in cells.iter().enumerate() {
            let tags = cell_tags(cell);
            let exercise = tags.iter().find_map(|t| t.strip_prefix("exercise:"));
            if tags.iter().any(|t| t == "check") {
                let before = i
                    .checked_sub(1)
                    .map(|j| cell_tags(&cells[j]))
                    .unwrap_or_default();
                assert!(
                    before.iter().any(|t| t.starts_with("exercise:")),
                    "{name}: check cell {i} does not follow an exercise cell"
                );
            }
            let Some(id) = exercise else { continue };
            assert_eq!(
                cell["cell_type"], "code",
                "{name}: exercise cell {i} ({id}) is not code"
            );
            assert!(
                id.starts_with(&format!("{}-", &name[..2])),
                "{name}: exercise id {id} does not start with the notebook's number"
            );
            let next = cells
                .get(i + 1)
                .unwrap_or_else(|| panic!("{name}: {id} has no check cell"));
            assert!(
                cell_tags(next).iter().any(|t| t == "check"),
                "{name}: the cell after exercise {id} is not tagged `check`"
            );
            assert!(
                cell_source(cell).contains("// TODO"),
                "{name}: the exercise cell of {id} has no `// TODO` (is a solution committed?)"
            );
            let previous = out.insert(id.to_string(), (name.clone(), cell_source(next)));
            assert!(previous.is_none(), "exercise id {id} is used twice");
        }
    }
    out
}

#[test]
fn every_exercise_has_a_solution_and_every_solution_an_exercise() {
    let exercises = notebook_exercises();
    let mut solutions = BTreeMap::new();
    for entry in fs::read_dir(root().join("notebooks/solutions")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        for (id, text) in solution_sections(&path) {
            assert!(
                id.starts_with(&format!("{stem}-")),
                "{}: section {id} belongs to another notebook",
                path.display()
            );
            assert!(
                !text.contains("// TODO"),
                "{id}: the reference solution still has a TODO"
            );
            solutions.insert(id, text);
        }
    }
    let ids: Vec<&String> = exercises.keys().collect();
    let solved: Vec<&String> = solutions.keys().collect();
    assert_eq!(
        ids, solved,
        "exercise cells vs sections of notebooks/solutions/*.rs"
    );
    let mut per_notebook: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ids {
        *per_notebook.entry(&id[..2]).or_default() += 1;
    }
    for (n, count) in per_notebook {
        assert!(
            (2..=4).contains(&count),
            "notebook {n} has {count} exercises, not 2–4"
        );
    }
}

/// Each check cell calls the checker whose exercise id matches its exercise.
#[test]
fn each_check_cell_calls_its_own_checker() {
    let checkers = [
        (gridworld::RETURNS_TO_GO, "check_returns_to_go"),
        (gridworld::BELLMAN_BACKUP, "check_bellman_backup"),
        (gridworld::VALUE_ITERATION, "check_value_iteration"),
        (ppo::GAE, "check_gae"),
        (ppo::CLIPPED_SURROGATE, "check_clipped_surrogate"),
        (ppo::KL_K3, "check_kl_k3"),
        (transformer::ATTENTION_WEIGHTS, "check_attention_weights"),
        (transformer::NEXT_TOKEN_LOSS, "check_next_token_loss"),
        (sft::LOSS_MASK, "check_loss_mask"),
        (sft::MASKED_LOSS, "check_masked_loss"),
        (feedback::ELO_UPDATE, "check_elo_update"),
        (feedback::WILSON, "check_wilson"),
        (feedback::COHEN_KAPPA, "check_cohen_kappa"),
    ];
    let exercises = notebook_exercises();
    for (id, checker) in checkers {
        let (name, check) = exercises
            .get(id)
            .unwrap_or_else(|| panic!("no exercise cell tagged exercise:{id}"));
        assert!(
            check.contains(checker),
            "{name}: the check cell of {id} does not call {checker}"
        );
    }
}

fn assert_passes(check: Check, id: &str) {
    assert_eq!(check.exercise, id);
    assert!(
        check.passed,
        "the reference solution fails its check: {check}"
    );
    assert!(
        check.to_string().starts_with(&format!("✓ {id}: ")),
        "{check}"
    );
}

// The reference solutions, compiled as the notebook kernel runs them (with the
// prelude in scope), each module with the test that runs its checkers on them.

#[allow(clippy::needless_range_loop)]
mod nb01 {
    use super::{assert_passes, gridworld};
    #[allow(unused_imports)] // the kernel's prelude; not every notebook's solutions need it
    use rlhf_lab::prelude::*;
    include!("../notebooks/solutions/01.rs");

    #[test]
    fn notebook_01_references_pass() {
        assert_passes(
            gridworld::check_returns_to_go(my_returns_to_go),
            gridworld::RETURNS_TO_GO,
        );
        assert_passes(
            gridworld::check_bellman_backup(my_q_value),
            gridworld::BELLMAN_BACKUP,
        );
        assert_passes(
            gridworld::check_value_iteration(my_value_iteration),
            gridworld::VALUE_ITERATION,
        );
    }
}

#[allow(clippy::needless_range_loop)]
mod nb02 {
    use super::{assert_passes, ppo};
    #[allow(unused_imports)] // the kernel's prelude; not every notebook's solutions need it
    use rlhf_lab::prelude::*;
    include!("../notebooks/solutions/02.rs");

    #[test]
    fn notebook_02_references_pass() {
        assert_passes(ppo::check_gae(my_gae), ppo::GAE);
        assert_passes(
            ppo::check_clipped_surrogate(my_clipped_objective),
            ppo::CLIPPED_SURROGATE,
        );
        assert_passes(ppo::check_kl_k3(my_kl_k3), ppo::KL_K3);
    }
}

#[allow(clippy::needless_range_loop)]
mod nb03 {
    use super::{assert_passes, transformer};
    #[allow(unused_imports)] // the kernel's prelude; not every notebook's solutions need it
    use rlhf_lab::prelude::*;
    include!("../notebooks/solutions/03.rs");

    #[test]
    fn notebook_03_references_pass() {
        assert_passes(
            transformer::check_attention_weights(my_attention_weights),
            transformer::ATTENTION_WEIGHTS,
        );
        assert_passes(
            transformer::check_next_token_loss(my_next_token_loss),
            transformer::NEXT_TOKEN_LOSS,
        );
    }
}

#[allow(clippy::needless_range_loop)]
mod nb04 {
    use super::{assert_passes, sft};
    #[allow(unused_imports)] // the kernel's prelude; not every notebook's solutions need it
    use rlhf_lab::prelude::*;
    include!("../notebooks/solutions/04.rs");

    #[test]
    fn notebook_04_references_pass() {
        // The tokenizer of notebook 04's model.
        let dir = rlhf_lab::lm::pretrain::tiny_pretrained_dir();
        let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        assert_passes(sft::check_loss_mask(&tok, my_loss_mask), sft::LOSS_MASK);
        assert_passes(sft::check_masked_loss(my_masked_loss), sft::MASKED_LOSS);
    }
}

#[allow(clippy::needless_range_loop)]
mod nb05 {
    use super::{assert_passes, feedback};
    #[allow(unused_imports)] // the kernel's prelude; not every notebook's solutions need it
    use rlhf_lab::prelude::*;
    include!("../notebooks/solutions/05.rs");

    #[test]
    fn notebook_05_references_pass() {
        assert_passes(
            feedback::check_elo_update(my_elo_update),
            feedback::ELO_UPDATE,
        );
        assert_passes(feedback::check_wilson(my_wilson_interval), feedback::WILSON);
        assert_passes(
            feedback::check_cohen_kappa(my_cohen_kappa),
            feedback::COHEN_KAPPA,
        );
    }
}
