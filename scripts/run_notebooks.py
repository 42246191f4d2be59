#!/usr/bin/env python3
"""Execute notebooks headless with the project's kernel and check their outputs.

A notebook fails when any cell errors, or when a cell tagged `figure` produced no
`image/svg+xml` output, or a cell tagged `table` produced no output at all, or when
the kernel built a dependency version other than the one in Cargo.lock (the kernel,
scripts/kernel.sh, seeds its crate folder with Cargo.lock; this checks it held).
Executed copies go to target/notebooks/<name>.ipynb and every SVG figure to
target/notebooks/<name>/cell<N>_<k>.svg, so a person can look at them.

Exercises: a cell tagged `exercise:<id>` is a stub the learner edits, the cell after
it (tagged `check`) calls a checker of rlhf_lab::exercises, which prints a line
starting with ✓ (passed) or ✗ (a hint). With `--solutions DIR`, each exercise cell's
source is replaced by its reference solution before the run: the section of
DIR/*.rs that starts with the line `// exercise: <id>` and runs to the next such
line. The notebook then fails unless every check cell printed a ✓ line (and when an
exercise has no solution). The notebook files themselves are not changed; the
executed copy in target/notebooks/ holds the solutions.

Usage: run_notebooks.py [--solutions DIR] NOTEBOOK...   |   run_notebooks.py --warmup
"""
import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "notebooks"
KERNEL = "rlhf-lab"
TIMEOUT = int(os.environ.get("NOTEBOOK_CELL_TIMEOUT", "1800"))
# Where scripts/kernel.sh puts each notebook kernel's crate folder (outside the project).
KERNELS = (
    Path(os.environ.get("TMPDIR", "/tmp"))
    / f"rlhf-lab-kernels-{os.getuid()}-notebooks-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
)


def execute(nb, cwd, kernel_log=None):
    """Run every cell. The kernel's own stderr (cargo's compile progress) goes to
    `kernel_log` when given, so the console shows only results."""
    if kernel_log is not None:
        kernel_log.parent.mkdir(parents=True, exist_ok=True)
        saved = os.dup(2)
        log = open(kernel_log, "w")
        os.dup2(log.fileno(), 2)  # the kernel process inherits this stderr
    try:
        return _execute(nb, cwd)
    finally:
        if kernel_log is not None:
            os.dup2(saved, 2)
            os.close(saved)
            log.close()


def _execute(nb, cwd):
    started = time.time()
    marks = {}  # "ready": the kernel answered and the first cell starts; "first": its reply

    def on_cell_start(cell, cell_index):
        marks.setdefault("ready", time.time() - started)

    def on_cell_executed(cell, cell_index, execute_reply):
        marks.setdefault("first", time.time() - started)

    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        # evcxr compiles the crate while starting (init.evcxr), before it answers.
        startup_timeout=TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    try:
        client.execute()
    finally:
        # What a learner waits for after opening a notebook: the kernel's start-up
        # (evcxr compiling what changed) and the first cell's reply.
        nb.metadata["rlhf_lab_timing_s"] = {k: round(v, 1) for k, v in marks.items()}
    return nb


def registry_versions(lock_path):
    """(name, version) of every registry package in a Cargo.lock (its
    `[[package]]` blocks with a `source`; read by hand, Python 3.9 has no tomllib)."""
    out = set()
    for block in Path(lock_path).read_text().split("[[package]]")[1:]:
        fields = {}
        for line in block.splitlines():
            if " = " in line and not line.startswith(" "):
                key, value = line.split(" = ", 1)
                fields[key.strip()] = value.strip().strip('"')
        if "source" in fields:
            out.add((fields["name"], fields["version"]))
    return out


def lock_drift(kernel_dir):
    """Registry packages the kernel resolved that Cargo.lock does not pin."""
    kernel_lock = Path(kernel_dir) / "Cargo.lock"
    if not kernel_lock.exists():
        return [f"the kernel left no Cargo.lock in {kernel_dir}"]
    pinned = registry_versions(ROOT / "Cargo.lock")
    by_name = {}
    for name, version in pinned:
        by_name.setdefault(name, []).append(version)
    return [
        f"{name} {version} (Cargo.lock: {', '.join(sorted(by_name.get(name, []))) or 'absent'})"
        for name, version in sorted(registry_versions(kernel_lock) - pinned)
    ]


def check_outputs(nb):
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        outputs = cell.get("outputs", [])
        has_svg = any("image/svg+xml" in o.get("data", {}) for o in outputs)
        if "figure" in tags and not has_svg:
            problems.append(f"cell {i} is tagged 'figure' but produced no image/svg+xml output")
        if "table" in tags and not outputs:
            problems.append(f"cell {i} is tagged 'table' but produced no output")
    return problems


EXERCISE_TAG = "exercise:"
CHECK_TAG = "check"
SOLUTION_MARK = "// exercise:"


def read_solutions(folder):
    """Exercise id -> reference solution, from every DIR/*.rs: a line
    `// exercise: <id>` starts a section, which runs to the next such line
    (tests/exercises.rs reads the files the same way)."""
    solutions = {}
    for path in sorted(Path(folder).glob("*.rs")):
        current, lines = None, []
        for line in path.read_text().splitlines() + [SOLUTION_MARK + " <end>"]:
            if line.startswith(SOLUTION_MARK):
                if current is not None:
                    if current in solutions:
                        raise SystemExit(f"{path}: exercise {current} has two solutions")
                    solutions[current] = "\n".join(lines).strip()
                current, lines = line[len(SOLUTION_MARK):].strip(), []
            elif current is not None:
                lines.append(line)
    return solutions


def exercise_id(cell):
    for tag in cell.get("metadata", {}).get("tags", []):
        if tag.startswith(EXERCISE_TAG):
            return tag[len(EXERCISE_TAG):]
    return None


def fill_in_solutions(nb, solutions):
    """Replace each exercise cell's source by its reference solution; the ids
    that have none."""
    missing = []
    for cell in nb.cells:
        ex = exercise_id(cell)
        if ex is None:
            continue
        if ex in solutions:
            cell.source = solutions[ex]
        else:
            missing.append(ex)
    return missing


def output_text(cell):
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "text/plain" in o.get("data", {}):
            parts.append(o["data"]["text/plain"])
        elif o.get("output_type") == "error":
            parts.append("\n".join(o.get("traceback", [])) or o.get("evalue", ""))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def check_results(nb):
    """(exercise id, passed, output) of each check cell, the exercise being the
    nearest exercise cell above it."""
    results, current = [], None
    for cell in nb.cells:
        current = exercise_id(cell) or current
        if cell.cell_type == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", []):
            text = output_text(cell)
            passed = any(line.lstrip().startswith("✓") for line in text.splitlines())
            results.append((current, passed, text.strip()))
    return results


def export_figures(nb, name):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.svg"):
        old.unlink()
    count = 0
    for i, cell in enumerate(nb.cells):
        for k, o in enumerate(cell.get("outputs", [])):
            svg = o.get("data", {}).get("image/svg+xml")
            if svg:
                (folder / f"cell{i:02d}_{k}.svg").write_text(svg if isinstance(svg, str) else "".join(svg))
                count += 1
    return count


def warmup():
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell('println!("rlhf-lab kernel ready");'))
    execute(nb, ROOT, kernel_log=OUT / "warmup.kernel.log")
    print(nb.cells[0].outputs[0].get("text", "").strip() if nb.cells[0].outputs else "kernel started")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--warmup", action="store_true", help="start the kernel once to fill evcxr's cache")
    ap.add_argument(
        "--solutions",
        metavar="DIR",
        help="run each exercise cell's reference solution from DIR/*.rs and require every check to pass",
    )
    args = ap.parse_args()
    if args.warmup:
        warmup()
        return 0
    if not args.notebooks:
        ap.error("give notebooks to run")
    OUT.mkdir(parents=True, exist_ok=True)
    solutions = read_solutions(args.solutions) if args.solutions else None
    if args.solutions and not solutions:
        ap.error(f"no `{SOLUTION_MARK} <id>` sections in {args.solutions}/*.rs")
    passed, failed = 0, 0
    times = []
    for path in map(Path, args.notebooks):
        name = path.stem
        t0 = time.time()
        nb = nbformat.read(path, as_version=4)
        missing = fill_in_solutions(nb, solutions) if solutions is not None else []
        # One crate folder for every notebook: the kernels run one after another,
        # and each reuses the rlhf-lab build the one before left (scripts/kernel.sh).
        kernel_dir = KERNELS / "notebooks"
        os.environ["RLHF_LAB_KERNELS"] = str(KERNELS)
        os.environ["RLHF_LAB_KERNEL_DIR"] = str(kernel_dir)
        try:
            execute(nb, path.parent.resolve(), kernel_log=OUT / f"{name}.kernel.log")
            problems = check_outputs(nb)
            problems += [f"exercise {ex} has no reference solution in {args.solutions}" for ex in missing]
            checks = check_results(nb)
            if solutions is not None:
                problems += [
                    f"the check of exercise {ex} did not print ✓ with the reference solution:\n        "
                    + (text or "(no output)").replace("\n", "\n        ")
                    for ex, ok, text in checks
                    if not ok
                ]
            drift = lock_drift(kernel_dir)
            if drift:
                problems.append("the kernel built versions Cargo.lock does not pin: " + "; ".join(drift))
        except CellExecutionError as e:
            checks = []
            problems = [f"a cell failed:\n{e}"]
        except Exception as e:  # kernel died, timeout, ...
            checks = []
            problems = [f"{type(e).__name__}: {e} (kernel log: {OUT / (name + '.kernel.log')})"]
        nbformat.write(nb, OUT / f"{name}.ipynb")
        figures = export_figures(nb, name)
        dt = time.time() - t0
        times.append((path.name, dt, nb.metadata.get("rlhf_lab_timing_s", {}), "FAIL" if problems else "ok"))
        if problems:
            failed += 1
            print(f"FAIL {path} ({dt:.0f} s)")
            for p in problems:
                print("   ", p)
        else:
            passed += 1
            exercises = ""
            if checks:
                mode = "reference solutions" if solutions is not None else "as committed"
                exercises = f", exercises {sum(ok for _, ok, _ in checks)}/{len(checks)} checks pass ({mode})"
            print(f"ok   {path} ({dt:.0f} s, {figures} figures{exercises} -> {OUT / name})")
        sys.stdout.flush()
    print("\n  total   kernel ready   first reply   notebook")
    for name, dt, marks, verdict in times:
        cols = "".join(f"{marks[k]:10.1f} s  " if k in marks else "          -   " for k in ("ready", "first"))
        print(f"{dt:5.0f} s  {cols} {verdict:4} {name}")
    print("(kernel ready: from the kernel's start until it runs the first cell, evcxr's compile of what")
    print(" changed included; first reply: until that cell's reply)")
    print(f"notebooks: {passed} passed, {failed} failed in {sum(t[1] for t in times):.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
