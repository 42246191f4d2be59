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
"$ROOT/scripts/install.sh" "${ARGS[@]}"
if [ "$OPEN" = 1 ]; then
  cd "$ROOT"
  export JUPYTER_PATH="$ROOT/.jupyter"
  EXTRA=()
  # JupyterLab refuses to start as root (containers, CI boxes) unless told to.
  [ "$(id -u)" = 0 ] && EXTRA+=(--allow-root)
  exec .venv/bin/jupyter lab "${EXTRA[@]}" notebooks/
fi
