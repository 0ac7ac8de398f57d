#!/usr/bin/env python3
"""Smoke equality check for refactors (issue 12): a refactor must change no numbers.

    python3 tools/smoke.py run OUT.json
    python3 tools/smoke.py compare A.json B.json [--only-stable BASE1.json BASE2.json]

`run` deletes results/smoke* (never keras_models/trained/ or data/: the cached trained models are
reused, so their sha256s match across runs), then runs a pinned, small set of `make` targets of
this checkout (RUN=smoke: convert INI and fast, sweep, stdb, energy x3, latency, bench; each with
its log in results/smoke_logs/), copies what each step wrote to results/smoke_steps/<step>/ (the
energy steps share energy.json) and writes OUT.json, one flat dict "<step>/<file>:<json.path>" ->
value of everything comparable: accuracies, spike and operation counts, energies, thresholds, leaks,
histories, one-word settings, and the sha256 of every trained model and exported .h5. Left out:
what legitimately varies between two runs of the same code (timings and what is derived from
them, load, memory, CPU count, versions, paths, free text).

`compare` prints every key whose values differ (floats compared exactly; the max abs difference
is reported too) and every key found in only one file; exit code 1 if there is any. With
`--only-stable BASE1 BASE2` (two `run`s of the unchanged code) the keys that differ between the
baselines are not reproducible: they are listed apart and ignored in the A/B comparison.

A refactor's check: two `run`s of the unchanged code (base1, base2), one `run` of the refactored
checkout with the same keras_models/trained/ and data/, then
`compare base1.json after.json --only-stable base1.json base2.json`. Training is reproducible on
one machine (docs/results.md says what was compared), so emptying the model cache checks the training
code too.

Stdlib only, no TensorFlow: it only shells out to `make` in the checkout it lives in.
"""
import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline.results import file_sha256 as sha256  # noqa: E402  (stdlib-only at import: no TensorFlow)
RESULTS = ROOT / "results"
RUN_DIR, STEPS_DIR, LOGS_DIR = RESULTS / "smoke", RESULTS / "smoke_steps", RESULTS / "smoke_logs"
TRAINED = ROOT / "keras_models" / "trained"
MODEL = "EPOCHS=2 WIDTH=16 SEED=0"
TRAINED_PATTERN = "*_w16_e2_s0_*"   # the cached models of MODEL (the cache may hold others)

# (step name, make arguments); every setting pinned, RUN=smoke added to all.
STEPS = [
    ("convert", f"convert T=50 N=40 {MODEL}"),
    ("convert_fast", f"convert T=50 N=40 SIM=fast {MODEL}"),
    ("sweep", f'sweep TS="20 50" N=40 {MODEL}'),
    ("stdb", f"stdb T=10 STDB_EPOCHS=1 NTRAIN=64 N=40 CODING=poisson {MODEL}"),
    ("energy", f"energy T=20 N=40 NET=converted CODING=poisson {MODEL}"),
    ("energy_analog", f"energy T=20 N=40 NET=converted CODING=analog {MODEL}"),
    ("energy_stdb", f"energy T=10 N=40 NET=stdb CODING=poisson {MODEL}"),
    ("latency", f'latency TS="2 4" N=40 CODING=analog {MODEL}'),
    ("bench", f"bench T=20 N=10 {MODEL}"),
]
# Make variables of the Makefile (the settings' one declaration): not inherited from the caller's environment.
MAKE_VARS = subprocess.run([sys.executable, "-m", "pipeline.settings", "names"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()

# A key is left out when one of its path components contains one of these (lower case) ...
EXCLUDE_PARTS = ("seconds", "wall", "load_average", "peak_memory", "warmup", "versions", "speedup",
                 "dense_bound_ratio", "cpu_count", "ini_batch_size", "figures")
# ... or is one of these.
EXCLUDE_NAMES = {"config", "path", "exported_model", "config_sha256"}


# --------------------------------------------------------------------- run
def run_steps():
    for old in RESULTS.glob("smoke*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    LOGS_DIR.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS and k not in ("MAKEFLAGS", "MFLAGS")}
    seen = {}   # file name -> sha256 of its last snapshot
    for i, (name, args) in enumerate(STEPS, 1):
        command = ["make", *shlex.split(args), "RUN=smoke"]
        log = LOGS_DIR / f"{i:02d}_{name}.log"
        start = time.perf_counter()
        with open(log, "w") as out:
            rc = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
        print(f"[{i}/{len(STEPS)}] {shlex.join(command)}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} "
              f"{seconds:.0f} s", flush=True)
        if rc != 0:
            print("".join(log.read_text(errors="replace").splitlines(True)[-40:]), end="")
            print(f"(log: {log})")
            sys.exit(1)
        for path in sorted(RUN_DIR.glob("*")):   # snapshot what this step (re)wrote
            if path.suffix in (".json", ".csv", ".h5") and seen.get(path.name) != (digest := sha256(path)):
                (STEPS_DIR / name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, STEPS_DIR / name / path.name)
                seen[path.name] = digest


# --------------------------------------------------------------------- collect
def excluded(parts):
    return any(p in EXCLUDE_NAMES or any(x in p for x in EXCLUDE_PARTS) for p in (s.lower() for s in parts))


def flatten(value, prefix, parts, out):
    """Comparable leaves of a JSON value: numbers, booleans, null, sha256s and one-word strings
    ("linear", "poisson"); not paths or sentences. A list item that is a dict with a "name" or
    "method" is labelled with it: layers[0:conv1].snn_spikes, rows[2:qcfs].snn_accuracy."""
    if excluded(parts):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{prefix}.{k}" if prefix else k, parts + [k], out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            label = (v.get("name") or v.get("method")) if isinstance(v, dict) else None
            flatten(v, f"{prefix}[{i}:{label}]" if isinstance(label, str) else f"{prefix}[{i}]", parts, out)
    elif isinstance(value, str):
        if (parts and parts[-1].endswith("sha256")) or not any(c.isspace() or c in "/\\" for c in value):
            out[prefix] = value
    else:
        out[prefix] = value


def number(text):
    try:
        return float(text)
    except ValueError:
        return text


def collect():
    values = {}
    for path in sorted(STEPS_DIR.glob("*/*")):
        key = f"{path.parent.name}/{path.name}"
        if path.suffix == ".json":
            flat = {}
            flatten(json.loads(path.read_text()), "", [], flat)
            values.update({f"{key}:{k}": v for k, v in flat.items()})
        elif path.suffix == ".csv":
            for i, row in enumerate(csv.DictReader(path.open())):
                values.update({f"{key}:[{i}].{k}": number(v) for k, v in row.items() if not excluded([k])})
        elif path.suffix == ".h5":
            values[f"{key}:sha256"] = sha256(path)
    for path in sorted(TRAINED.glob(TRAINED_PATTERN)):
        if path.suffix == ".h5":
            values[f"trained/{path.name}:sha256"] = sha256(path)
        elif path.suffix == ".json":   # history and accuracies of the trained model
            flat = {}
            flatten(json.loads(path.read_text()), "", [], flat)
            values.update({f"trained/{path.name}:{k}": v for k, v in flat.items()})
    return values


def write_atomic(path, data):
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------- compare
def same(a, b):
    """Exactly equal; NaN equals NaN, and True is not 1."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def differing(a, b):
    """Keys whose values differ, and keys found in only one of the two dicts."""
    return sorted(k for k in a.keys() & b.keys() if not same(a[k], b[k])), sorted(a.keys() ^ b.keys())


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare(path_a, path_b, stable=None):
    a, b = (json.loads(Path(p).read_text()) for p in (path_a, path_b))
    ignored = set()
    if stable:
        base1, base2 = (json.loads(Path(p).read_text()) for p in stable)
        diff, only = differing(base1, base2)
        ignored = set(diff) | set(only)
        if ignored:
            print(f"not reproducible between {stable[0]} and {stable[1]}, ignored ({len(ignored)}):")
            for k in sorted(ignored):
                print(f"  {k}: {base1.get(k, '<missing>')!r} | {base2.get(k, '<missing>')!r}")
    diff, only = differing(a, b)
    diff, only = [k for k in diff if k not in ignored], [k for k in only if k not in ignored]
    compared = len((a.keys() | b.keys()) - ignored)
    if diff:
        print(f"differ ({len(diff)}): {path_a} | {path_b}")
        for k in diff:
            delta = ""
            if is_number(a[k]) and is_number(b[k]):
                d = abs(a[k] - b[k])
                delta = f"  (abs diff {d:.3g}" + (f", rel {d / abs(a[k]):.3g})" if a[k] else ")")
            print(f"  {k}: {a[k]!r} | {b[k]!r}{delta}")
        deltas = [abs(a[k] - b[k]) for k in diff if is_number(a[k]) and is_number(b[k])]
        if deltas:
            print(f"max abs diff: {max(deltas):.6g}")
    for k in only:
        print(f"only in {path_a if k in a else path_b}: {k}")
    print(f"{compared} keys compared: {len(diff)} differ, {len(only)} in one file only"
          + (f", {len(ignored)} not reproducible ignored" if stable else ""))
    return 1 if diff or only else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pinned smoke set, write the flat values to OUT.json")
    run.add_argument("out")
    cmp = sub.add_parser("compare", help="print the keys that differ; exit 1 if any")
    cmp.add_argument("a")
    cmp.add_argument("b")
    cmp.add_argument("--only-stable", nargs=2, metavar=("BASE1", "BASE2"),
                     help="ignore the keys that differ between these two baseline runs")
    args = parser.parse_args(argv)
    if args.command == "run":
        start = time.perf_counter()
        run_steps()
        values = collect()
        write_atomic(args.out, values)
        print(f"{len(values)} values -> {args.out} ({time.perf_counter() - start:.0f} s)")
        return 0
    return compare(args.a, args.b, args.only_stable)


if __name__ == "__main__":
    sys.exit(main())
