#!/usr/bin/env bash
# The rlhf-lab Jupyter kernel: evcxr_jupyter building exactly the dependency
# versions of the project's Cargo.lock, the versions `cargo test` tested.
#
# evcxr writes its own Cargo.toml in a crate folder and resolves versions anew at
# every start (it even rewrites a Cargo.lock left there), so newer releases slip
# in and its compile cache misses. Instead, the kernel's crate folder lives under
# a folder whose .cargo/config.toml replaces crates.io with a `cargo vendor
# --locked` copy of exactly the locked versions (made here once per Cargo.lock),
# so no other version can be chosen. The folder is outside the project (its
# workspace would claim it).
#
# Crate folders are reused: kernel-1, kernel-2, … each held by one running
# kernel at a time (a lock on kernel-N/lock, or its pid file where `flock` is
# missing). evcxr caches compiled dependencies itself, but not the rlhf-lab
# crate (a path dependency, compiled incrementally), so a new folder recompiles
# it at every kernel start; a reused folder's target/ lets cargo see that it is
# up to date and the kernel answers in seconds. RLHF_LAB_KERNEL_DIR names the
# crate folder instead (scripts/run_notebooks.py sets it, then checks the
# versions built).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNELS="${RLHF_LAB_KERNELS:-${TMPDIR:-/tmp}/rlhf-lab-kernels-$(id -u)-$(printf %s "$ROOT" | sha256sum | cut -c1-8)}"
# A named crate folder's parent gets the source replacement below (evcxr writes
# a .cargo/config.toml of its own inside the crate folder).
[ -n "${RLHF_LAB_KERNEL_DIR:-}" ] && KERNELS="$(dirname "$RLHF_LAB_KERNEL_DIR")"
# One vendored copy per Cargo.lock, shared by every checkout with that lock (so
# their kernels share evcxr's compile cache too); made in a temporary folder and
# renamed into place, so kernels starting at once never see half a copy.
LOCK_HASH="$(sha256sum "$ROOT/Cargo.lock" | cut -c1-16)"
VENDOR="${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-lab/vendor-$LOCK_HASH"
if [ ! -d "$VENDOR" ]; then
  mkdir -p "$(dirname "$VENDOR")"
  tmp="$(mktemp -d "$VENDOR.tmp-XXXXXX")"
  (cd "$ROOT" && cargo vendor --locked --versioned-dirs --quiet "$tmp" >/dev/null)
  mv -T "$tmp" "$VENDOR" 2>/dev/null || rm -rf "$tmp"
fi
mkdir -p "$KERNELS/.cargo"
cat > "$KERNELS/.cargo/config.toml" <<CONFIG
# Written by $ROOT/scripts/kernel.sh: kernels build the versions of Cargo.lock.
[source.crates-io]
replace-with = "rlhf-lab-locked"

[source.rlhf-lab-locked]
directory = "$VENDOR"
CONFIG
# Take the crate folder: RLHF_LAB_KERNEL_DIR, or the first kernel-N no running
# kernel holds. The lock (file descriptor 9) passes to evcxr_jupyter by exec
# and is released when the kernel exits.
claim() { # claim DIR: 0 if this kernel now holds DIR
  mkdir -p "$1"
  if command -v flock >/dev/null; then
    exec 9>"$1/lock"
    flock -n 9 && return 0
    exec 9>&-
    return 1
  fi
  local pid
  pid="$(cat "$1/pid" 2>/dev/null || true)"
  [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null
}
# Folders of the earlier one-folder-per-start scheme (kernel-XXXXXX) whose kernel
# has exited are removed.
for d in "$KERNELS"/kernel-*/; do
  case "$(basename "$d")" in kernel-*[!0-9]*) ;; *) continue ;; esac
  pid="$(cat "$d/pid" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -rf "$d"; fi
done
if [ -n "${RLHF_LAB_KERNEL_DIR:-}" ]; then
  dir="$RLHF_LAB_KERNEL_DIR"
  claim "$dir" || { echo "kernel.sh: $dir is in use by another kernel" >&2; exit 1; }
else
  n=1
  until claim "$KERNELS/kernel-$n"; do n=$((n + 1)); done
  dir="$KERNELS/kernel-$n"
fi
cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
echo $$ > "$dir/pid"
export EVCXR_TMPDIR="$dir"
exec "${EVCXR_JUPYTER:-evcxr_jupyter}" "$@"
