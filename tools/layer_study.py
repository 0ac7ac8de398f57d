#!/usr/bin/env python3
"""Issue 23's measurement: models written the way people write Keras, each trained on one `.npz`,
converted, run at low latency through QCFS and exported to NIR, by the pipeline's own commands.

    python3 tools/layer_study.py DATA.npz OUT_DIR [--models plain tutorial ...] [--T 200] [--ts "1 2 4 8"] [--n N]

For each model: `tools/tutorial_model.py` trains it (seeded) and writes OUT_DIR/<name>.h5; then, each as
RUN=<name> under OUT=OUT_DIR: `make energy NET=converted CODING=analog T=<T>` (the converted SNN on the
engine, thresholds calibrated on the data, against its ANN with McNemar's test on the same test samples,
and its energy), `make convert SIM=fast T=<T>` (SNN Toolbox's normalisation run with INI's semantics:
chains only, graphs are refused there), `make latency TS=<ts> CODING=analog` (plain conversion vs QCFS at low T) and
`make export NET=converted` (NIR, read back, spike for spike). Every command and its log are kept in
OUT_DIR/logs/; a step that fails is reported with its log's last line and the study goes on. Ends
with one markdown table (N, intervals and p values as the stages wrote them).

Stdlib only: it shells out to `make` and `tools/tutorial_model.py` in the checkout it lives in.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"plain": ["--model", "plain"], "tutorial": [], "max-pool": ["--max-pool"], "conv1d": ["--conv1d"],
          "residual": ["--model", "residual"], "mobilenet": ["--model", "mobilenet"],
          "separable": ["--model", "separable"]}
MAKE = ["make", "-s", "-o", ".venv/.installed", "-o", ".venv/.installed-sims", "-o", ".venv-interop/.installed"]


def run(command, log):
    """Run ``command`` in the checkout, its output to ``log``; (ok, seconds, last line)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return code == 0, time.time() - start, lines[-1] if lines else ""


def newest(folder, pattern):
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else None


def interval(values):
    return f"[{values[0]:.3f}, {values[1]:.3f}]" if values else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an .npz the pipeline reads (e.g. tools/digits_npz.py's)")
    parser.add_argument("out", help="folder for the models, results (OUT=) and logs")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--T", type=int, default=200, help="timesteps of the converted SNN")
    parser.add_argument("--ts", default="1 2 4 8", help="timesteps of the latency stage")
    parser.add_argument("--n", type=int, default=100, help="test samples simulated (N=)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    data, out = str(Path(args.data).resolve()), Path(args.out).resolve()
    python = str(ROOT / ".venv" / "bin" / "python")
    rows = []
    for name in args.models:
        model = out / f"{name}.h5"
        common = [f"MODEL={model}", f"DATA={data}", f"RUN={name}", f"OUT={out}"]
        steps = {
            "train": [python, "tools/tutorial_model.py", data, str(model), *MODELS[name],
                      "--width", str(args.width), "--epochs", str(args.epochs)],
            "energy": MAKE + ["energy", "NET=converted", "CODING=analog", f"T={args.T}", f"N={args.n}"] + common,
            "convert": MAKE + ["convert", "SIM=fast", f"T={args.T}", f"N={args.n}"] + common,
            "latency": MAKE + ["latency", f"TS={args.ts}", "CODING=analog", f"N={args.n}"] + common,
            "export": MAKE + ["export", "NET=converted", f"T={args.T}"] + common,
        }
        status = {}
        for step, command in steps.items():
            if step != "train" and not model.is_file():
                status[step] = "no model"
                continue
            ok, seconds, last = run(command, out / "logs" / f"{name}_{step}.log")
            status[step] = f"ok {seconds:.0f} s" if ok else f"failed: {last[:100]}"
            print(f"{name} {step}: {status[step]}", flush=True)
        results = out / "results" / name
        rows.append((name, status, {"engine": newest(results, "energy*.json"),
                                    "toolbox": newest(results, "convert_T*_fast.json")}))
    print("\n| model | ANN | SNN, engine (T) | SNN-only / ANN-only right, p | energy SNN/ANN | SNN, toolbox norm. "
          "| steps |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, status, found in rows:
        cells = ["", "", "", "", ""]
        engine, toolbox = found["engine"], found["toolbox"]
        if engine:
            test = engine["snn_vs_ann_mcnemar"]
            cells[:4] = [f"{engine['ann_accuracy']:.3f} {interval(engine['ann_accuracy_interval'])} "
                         f"(N={engine['num_samples']})",
                         f"{engine['snn_accuracy']:.3f} {interval(engine['snn_accuracy_interval'])} "
                         f"(T={engine['timesteps']})",
                         f"{test.get('snn_only')} / {test.get('ann_only')}, p = {test.get('p_value', 0):.3g}",
                         f"{engine['total']['normalized_energy']:.3f}"]
        if toolbox:
            cells[4] = f"{toolbox['snn_accuracy']:.3f} {interval(toolbox['snn_accuracy_interval'])}"
        cells.append("; ".join(f"{k} {v}" for k, v in status.items()))
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0 if all("failed" not in v for _, s, *_ in rows for v in s.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
