"""Simulators someone else wrote, run on our NIR files, and their spikes against the engine's.

Each peer's side is a standalone script in this folder (`snntorch_side.py`: it imports nothing from
`pipeline`) that runs in the interop environment, `.venv-interop`, made by `make .venv-interop` from
`constraints-interop.txt` (PyTorch, snnTorch and the `nir>=1.0.6` it needs stay out of `.venv`).
This module runs the script in a child process on the same samples, held constant over T steps
(analog input), and compares its spike totals with the engine's neuron by neuron.
"""
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import ROOT, UserError, engine

ENV = ROOT / ".venv-interop"
SNNTORCH_SIDE = Path(__file__).with_name("snntorch_side.py")
# snnTorch 1.0.0 imports every IF as snn.Leaky(beta=0.9): run as imported and with beta 1 (the file's IF).
SNNTORCH_VARIANTS = {"imported": "as imported (beta = 0.9, reset_delay off)", "beta1": "beta = 1, reset_delay off",
                     "corrected": "beta = 1, reset_delay on (the file's IF)"}


@dataclass
class PeerRun:
    """One peer's run: per variant, each IF layer's spike totals per neuron (N, ...) channels-last as the
    engine's, the readout layer's spikes per step (N, T, classes) and the simulation's wall time."""
    totals: dict
    output: dict
    seconds: dict
    versions: dict
    threads: int
    batch_size: int


def python(env=ENV):
    """The interop environment's python; missing: one line saying how to make it."""
    exe = Path(env) / "bin" / "python"
    if not exe.is_file():
        raise UserError(f"{exe}: the interop environment is missing; `make .venv-interop` builds it "
                        "(make interop and make test do so themselves)")
    return exe


def _channels_first(array):
    """(N, H, W, C) -> (N, C, H, W); flat arrays unchanged."""
    return np.moveaxis(array, -1, 1) if array.ndim == 4 else array


def _channels_last(array):
    return np.moveaxis(array, 1, -1) if array.ndim == 4 else array


def snntorch(nir_path, x, timesteps, batch_size, threads, variants=tuple(SNNTORCH_VARIANTS), env=ENV):
    """snnTorch's import of ``nir_path`` on the samples ``x`` (N, H, W, C), constant over ``timesteps``:
    a `PeerRun`. A failure of the peer is one line (its last line of stderr)."""
    exe = python(env)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "x.npz", Path(tmp) / "out.npz"
        np.savez(inputs, x=_channels_first(np.asarray(x, np.float32)))
        done = subprocess.run([str(exe), str(SNNTORCH_SIDE), str(nir_path), str(inputs), str(out),
                               "--timesteps", str(timesteps), "--batch-size", str(batch_size),
                               "--threads", str(threads), "--variants", ",".join(variants)],
                              capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{nir_path}: snnTorch failed on it ({last})")
        with np.load(out) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in data.files if key != "meta"}
    totals = {v: {key.split("/", 1)[1]: _channels_last(a) for key, a in arrays.items()
                  if key.startswith(v + "/") and not key.endswith("/output")} for v in variants}
    return PeerRun(totals=totals, output={v: arrays[f"{v}/output"] for v in variants}, seconds=meta["seconds"],
                   versions=meta["versions"], threads=meta["threads"], batch_size=meta["batch_size"])


def predictions(output):
    """Class per sample and step from the readout's spikes per step (N, T, classes), by the engine's rule
    (cumulative counts, argmax, -1 before the first output spike)."""
    return engine.decide(np.cumsum(output, axis=1), "spike_count")


def layer_agreement(ours, theirs):
    """Per layer (the engine's names, ``.`` as ``_``): spike totals and the fraction of (sample, neuron)
    counts that are equal. ``ours`` / ``theirs``: {layer: (N, ...) totals}; a layer missing is refused."""
    rows = {}
    for name, counts in ours.items():
        key = name.replace(".", "_")
        if key not in theirs:
            raise UserError(f"layer {name!r}: the peer has no such IF layer (it has {', '.join(theirs)})")
        other = np.asarray(theirs[key]).reshape(counts.shape)
        rows[name] = {"engine_spikes": int(counts.sum()), "peer_spikes": int(other.sum()),
                      "equal_per_neuron": float(np.mean(other == counts))}
    return rows


def first_difference(rows):
    """The first layer whose counts are not all equal (None when every layer agrees)."""
    return next((name for name, row in rows.items() if row["equal_per_neuron"] < 1.0), None)
