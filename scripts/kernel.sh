#!/usr/bin/env bash
# The rlhf-lab Jupyter kernel: evcxr_jupyter building exactly the dependency
# versions of the project's Cargo.lock, the versions `cargo test` tested.
#
# evcxr writes its own Cargo.toml in a crate folder and resolves versions anew at
# every start (it even rewrites a Cargo.lock left there), so newer releases slip
# in and its compile cache misses. Instead, the kernel's crate folder lives under
# a folder whose .cargo/config.toml replaces crates.io with a `cargo vendor
# --locked` copy of exactly the locked versions (made here once per Cargo.lock),
# so no other version can be chosen. The folder is outside
# the project (its workspace would claim it); folders of kernels that have
# exited are removed at the next start. RLHF_LAB_KERNEL_DIR names the crate
# folder (scripts/run_notebooks.py sets it, then checks the versions built).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNELS="${RLHF_LAB_KERNELS:-${TMPDIR:-/tmp}/rlhf-lab-kernels-$(id -u)-$(printf %s "$ROOT" | sha256sum | cut -c1-8)}"
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
for d in "$KERNELS"/*/; do
  [ -d "$d" ] || continue
  pid="$(cat "$d/pid" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -rf "$d"
  fi
done
if [ -n "${RLHF_LAB_KERNEL_DIR:-}" ]; then
  dir="$RLHF_LAB_KERNEL_DIR"
  rm -rf "$dir"
  mkdir -p "$dir"
else
  dir="$(mktemp -d "$KERNELS/kernel-XXXXXX")"
fi
cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
echo $$ > "$dir/pid"
export EVCXR_TMPDIR="$dir"
exec "${EVCXR_JUPYTER:-evcxr_jupyter}" "$@"
