#!/usr/bin/env python3
"""How fast the notebooks' kernel is, against the release command line.

Prints, and writes as JSON with --json FILE:
  - first-output time of a kernel start (start → output of a one-line cell):
      fresh      an empty evcxr cache and vendor copy (a new machine, after install),
      new folder evcxr's cache warm, but a crate folder never used (every start
                 before kernel folders were reused),
      restart    evcxr's cache warm and the crate folder of an earlier kernel
                 (a second notebook, a kernel restart);
  - cell compile latency in a started kernel (a trivial cell, a cell that calls
    the library);
  - training and generation tokens/s inside the kernel and in the release CLI
    (`rlhf-lab lm speed`, the same measurement: rlhf_lab::lm::speed), alternating
    kernel and CLI `--rounds` times.

Usage: scripts/bench_kernel.py [--fresh] [--rounds N] [--json FILE]
Needs scripts/install.sh run first and `cargo build --release`.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "target" / "release" / "rlhf-lab"
SPEED_CELL = (
    'println!("{}", rlhf_lab::lm::speed::measure_speed('
    "&rlhf_lab::lm::speed::SpeedConfig::default(), &Device::Cpu).unwrap().to_json());"
)
TIMEOUT = 3600
# The project's kernel is registered under .jupyter/ (scripts/install.sh).
os.environ["JUPYTER_PATH"] = str(ROOT / ".jupyter")


def run_cell(client, code):
    """Execute `code`; return (seconds until the reply, text it printed)."""
    t0 = time.time()
    msg_id = client.execute(code)
    text, error = [], None
    while True:
        msg = client.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            text.append(content.get("data", {}).get("text/plain", "") + "\n")
        elif kind == "error":
            error = "\n".join(content.get("traceback", [])) or content.get("evalue")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    if error:
        raise RuntimeError(f"cell failed: {code}\n{error}")
    return time.time() - t0, "".join(text)


def start_kernel(env_extra):
    """Start the project's kernel; return (manager, client, seconds to first output)."""
    env = dict(os.environ, **env_extra)
    t0 = time.time()
    km, kc = start_new_kernel(kernel_name="rlhf-lab", env=env, cwd=str(ROOT), startup_timeout=TIMEOUT)
    _, out = run_cell(kc, 'println!("ready");')
    assert "ready" in out, out
    return km, kc, time.time() - t0


def stop_kernel(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def cli_speed():
    out = subprocess.run([str(CLI), "lm", "speed", "--json"], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fresh", action="store_true", help="also time a start with an empty evcxr cache (minutes)")
    ap.add_argument("--rounds", type=int, default=2, help="kernel/CLI speed measurements, alternating")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    if not CLI.exists():
        sys.exit(f"{CLI} is missing: run `cargo build --release` first")
    scratch = Path(tempfile.mkdtemp(prefix="rlhf-lab-bench-kernel-"))
    results = {"date": time.strftime("%Y-%m-%d"), "threads": os.cpu_count()}
    try:
        if args.fresh:
            cache = scratch / "cache"
            km, kc, t = start_kernel({"XDG_CACHE_HOME": str(cache), "RLHF_LAB_KERNEL_DIR": str(scratch / "fresh")})
            stop_kernel(km, kc)
            results["fresh_first_output_s"] = t
            print(f"fresh kernel (empty evcxr cache): first output after {t:.1f} s", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        folder = {"RLHF_LAB_KERNEL_DIR": str(scratch / "kernel")}
        km, kc, t = start_kernel(folder)
        stop_kernel(km, kc)
        results["new_folder_first_output_s"] = t
        print(f"new crate folder, warm evcxr cache: first output after {t:.1f} s", flush=True)
        km, kc, t = start_kernel(folder)
        results["restart_first_output_s"] = t
        print(f"restart in the same folder: first output after {t:.1f} s", flush=True)
        trivial = [run_cell(kc, f"let x{i} = {i} + 1; x{i}")[0] for i in range(3)]
        library = [
            run_cell(kc, f"let c{i} = rlhf_lab::lm::speed::SpeedConfig::default(); c{i}.steps")[0] for i in range(3)
        ]
        results["cell_latency_trivial_s"] = statistics.median(trivial)
        results["cell_latency_library_s"] = statistics.median(library)
        print(
            f"cell compile latency (median of 3): trivial {results['cell_latency_trivial_s']:.2f} s, "
            f"library call {results['cell_latency_library_s']:.2f} s",
            flush=True,
        )
        kernel_runs, cli_runs = [], []
        for r in range(args.rounds):
            _, out = run_cell(kc, SPEED_CELL)
            kernel_runs.append(json.loads(out.strip().splitlines()[-1]))
            cli_runs.append(cli_speed())
            print(
                f"round {r + 1}: training tokens/s kernel {kernel_runs[-1]['training']['tokens_per_second']:.0f} "
                f"/ CLI {cli_runs[-1]['training']['tokens_per_second']:.0f}; generation (KV cache) "
                f"kernel {kernel_runs[-1]['generation_cached']['tokens_per_second']:.0f} "
                f"/ CLI {cli_runs[-1]['generation_cached']['tokens_per_second']:.0f}",
                flush=True,
            )
        stop_kernel(km, kc)
        for key, label in [("training", "training"), ("generation_cached", "generation, KV cache on"),
                           ("generation_uncached", "generation, KV cache off")]:
            k = statistics.median(run[key]["tokens_per_second"] for run in kernel_runs)
            c = statistics.median(run[key]["tokens_per_second"] for run in cli_runs)
            results[f"{key}_tokens_per_s"] = {"kernel": k, "cli": c, "ratio": k / c}
            print(f"{label}: kernel {k:.0f} tokens/s, CLI {c:.0f} tokens/s → {k / c:.2f}× the CLI")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
