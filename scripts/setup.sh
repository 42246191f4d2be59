#!/usr/bin/env bash
# One command for a newcomer: install everything, then open the notebooks in JupyterLab.
# Re-running it is fast. Pass --no-open to install only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPEN=1
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --no-open) OPEN=0 ;;
    *) ARGS+=("$arg") ;;
  esac
done
t0=$(date +%s)
"$ROOT/scripts/install.sh" "${ARGS[@]}"
printf '\n\033[1mrlhf-lab is set up (%d s).\033[0m The notebooks are in notebooks/, 01_rl_basics first;\n' $(($(date +%s) - t0))
printf 'their kernel is "Rust (rlhf-lab)". To open the lab later:\n'
printf '  cd %s && JUPYTER_PATH=$PWD/.jupyter .venv/bin/jupyter lab notebooks/\n' "$ROOT"
if [ "$OPEN" = 1 ]; then
  printf 'Opening JupyterLab now: open the http://localhost:8888/lab?token=... link it prints below.\n\n'
  cd "$ROOT"
  export JUPYTER_PATH="$ROOT/.jupyter"
  EXTRA=()
  # JupyterLab refuses to start as root (containers, CI boxes) unless told to.
  [ "$(id -u)" = 0 ] && EXTRA+=(--allow-root)
  exec .venv/bin/jupyter lab "${EXTRA[@]}" notebooks/
fi
