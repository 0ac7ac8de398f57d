"""Simulators someone else wrote, run on our NIR files, and their spikes against the engine's.

Each peer's side is a standalone script in this folder (`snntorch_side.py`: it imports nothing from
`pipeline`) that runs in the interop environment, `.venv-interop`, made by `make .venv-interop` from
`constraints-interop.txt` (PyTorch, snnTorch, NeuroBench and the `nir>=1.0.6` they need stay out of `.venv`).
This module runs the script in a child process on the same samples, held constant over T steps (analog
input) or as the engine's own input frames (`engine.coded_frames`: its Poisson draws), compares its spike
totals with the engine's neuron by neuron, and NeuroBench's operation counts (`neurobench_side.py`) with
the energy model's (`compare_operations`).
"""
import json
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import ROOT, UserError, engine, network
from pipeline.energy import fan_out

ENV = ROOT / ".venv-interop"
SNNTORCH_SIDE = Path(__file__).with_name("snntorch_side.py")
NEUROBENCH_SIDE = Path(__file__).with_name("neurobench_side.py")
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


def check_importable(graph):
    """Refuse in one line a network that snnTorch 1.0.0's NIR importer cannot build: a grouped convolution
    whose input channels per group (C_in / groups) do not divide by the groups, e.g. every depthwise one.
    The importer makes ``torch.nn.Conv2d(in_channels=weight.shape[1], groups=groups)``: the channels of
    one group as all input channels, which PyTorch checks against the groups; where they pass, the file's
    weight replaces the module's and the convolution is the file's (PyTorch's conv reads only the weight
    and the groups)."""
    for node in graph.nodes:
        groups = getattr(node, "groups", 1)
        if (node.input_shape[-1] // groups) % groups:
            raise UserError(f"layer {node.name!r}: snnTorch 1.0.0's NIR importer builds this grouped Conv2d with "
                            f"in_channels = {node.input_shape[-1]} / {groups} (the channels of one group), which "
                            f"PyTorch refuses for {groups} groups: it cannot be cross-checked in snnTorch (the "
                            "engine's round trip checks it)")


def _channels_first(array):
    """(N, H, W, C) -> (N, C, H, W); flat arrays unchanged."""
    return np.moveaxis(array, -1, 1) if array.ndim == 4 else array


def _channels_last(array):
    return np.moveaxis(array, 1, -1) if array.ndim == 4 else array


def _inputs(path, x, frames):
    """INPUTS.npz of a side script: ``x`` (N, H, W, C) held constant, or ``frames`` (N, T, H, W, C), the
    input of every step, both channels-first as NIR's; spike frames (integers) travel as int8."""
    if frames is None:
        np.savez(path, x=_channels_first(np.asarray(x, np.float32)))
        return
    frames = np.asarray(frames, np.float32)
    if frames.ndim == 5:
        frames = np.moveaxis(frames, -1, 2)
    small = np.all(frames == np.round(frames)) and np.all(np.abs(frames) <= 127)
    np.savez(path, frames=frames.astype(np.int8) if small else frames.astype(np.float32))


@contextmanager
def _side(peer, script, nir_path, x, frames, timesteps, threads, out_name, *options, env=ENV):
    """Run a side script on ``nir_path`` and these inputs in a child process; gives its output file's
    path (in a temporary folder). A failure of the peer is one line (its last line of stderr)."""
    exe = python(env)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "x.npz", Path(tmp) / out_name
        _inputs(inputs, x, frames)
        done = subprocess.run([str(exe), str(script), str(nir_path), str(inputs), str(out),
                               "--timesteps", str(timesteps), "--threads", str(threads), *options],
                              capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{nir_path}: {peer} failed on it ({last})")
        yield out


def snntorch(nir_path, x, timesteps, batch_size, threads, variants=tuple(SNNTORCH_VARIANTS), env=ENV, frames=None):
    """snnTorch's import of ``nir_path`` on the samples ``x`` (N, H, W, C), constant over ``timesteps``,
    or on ``frames`` (N, T, H, W, C), the input of every step: a `PeerRun`. A failure of the peer is one
    line (its last line of stderr)."""
    with _side("snnTorch", SNNTORCH_SIDE, nir_path, x, frames, timesteps, threads, "out.npz", "--batch-size",
               str(batch_size), "--variants", ",".join(variants), env=env) as out:
        with np.load(out) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in data.files if key != "meta"}
    totals = {v: {key.split("/", 1)[1]: _channels_last(a) for key, a in arrays.items()
                  if key.startswith(v + "/") and not key.endswith("/output")} for v in variants}
    return PeerRun(totals=totals, output={v: arrays[f"{v}/output"] for v in variants}, seconds=meta["seconds"],
                   versions=meta["versions"], threads=meta["threads"], batch_size=meta["batch_size"])


def neurobench(nir_path, x, timesteps, threads, env=ENV, frames=None):
    """NeuroBench's workload metrics (SynapticOperations, per layer too, and ActivationSparsity) on
    snnTorch's corrected import of ``nir_path``, with the inputs of `snntorch`: the record
    `neurobench_side.py` writes."""
    with _side("NeuroBench", NEUROBENCH_SIDE, nir_path, x, frames, timesteps, threads, "out.json", env=env) as out:
        return json.loads(out.read_text())


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


# ----------------------------------------------------------------- NeuroBench's counts against the energy model
def _neurobench_expected(node, count, x, frames, timesteps, num_samples, first):
    """What NeuroBench's rule (`neurobench_side.py`) gives layer ``node`` on the engine's own spikes, totals
    over the samples: ({"acs", "macs"} or None for a layer it does not count, the cause of any difference
    from the energy model's ``count``)."""
    # zero weights need no case: NeuroBench skips them, and so does the energy model (only non-zero synapses)
    model_acs, model_macs = round(count.snn_acs * num_samples), round(count.snn_macs * num_samples)
    if isinstance(node, network.AvgPool2d):
        return None, ("pooling is no connection layer in NeuroBench (no operations); the energy model counts a spiking "
                      f"pool's ACs ({count.ac_source})")
    if isinstance(node, network.Add):
        return None, ("a residual add is where NIR edges meet (a sum, its inputs rescaled by Scale nodes): no "
                      "connection layer in NeuroBench; the energy model counts its additions")
    if not first:
        return ({"acs": model_acs, "macs": 0},
                f"none: {count.source} spikes (0/1) x fan-out as ACs in both (biases: in neither)")
    if frames is None:
        macs = timesteps * int(np.sum((np.asarray(x) != 0) * fan_out(node)))
        return ({"acs": 0, "macs": macs},
                f"analog input: not in {{-1, 0, 1}}, so NeuroBench counts MACs at each of the T = {timesteps} calls, one "
                f"per nonzero input value x reached neuron (T x sum over x != 0 of the fan-out: padding and zero inputs "
                f"cost nothing); the energy model computes the constant current once: the ANN layer's MACs (padding "
                f"included) once per inference, {model_macs / max(num_samples, 1):,.0f}")
    values = np.unique(np.asarray(frames)[np.asarray(frames) != 0])
    if np.all(np.isin(values, (-1.0, 1.0))):
        return {"acs": model_acs, "macs": 0}, "none: input events in {-1, 1} x fan-out as ACs in both"
    if not np.any(np.isin(values, (-1.0, 1.0))):
        return ({"acs": 0, "macs": model_acs},
                "input events of amplitude other than 1 (e.g. the toolbox's Poisson rule, max(x) x sign(x)): NeuroBench "
                "counts them as MACs; the energy model counts every input event x fan-out as ACs, whatever its amplitude")
    return ({"acs + macs": model_acs},
            "input events of amplitude 1 and others: NeuroBench decides AC or MAC per call (step and batch), so only "
            "the sum is expected")


def compare_operations(nodes, counts, bench, x, frames, timesteps, num_samples):
    """NeuroBench's SynapticOperations and ActivationSparsity (``bench``, `neurobench`) against the energy
    model's per-layer counts (``counts``, `energy.count_operations` on the engine's spikes of the same
    samples) and the engine's spikes: per layer, both numbers per inference, what NeuroBench's rule gives
    on the engine's spikes (exact integers; ``equal``) and the cause of every difference. ``nodes``: the
    network's ``compute_nodes``; ``x`` / ``frames``: the input both were given (held, or per step)."""
    measured = bench["layers"]
    rows = {}
    for index, (node, count) in enumerate(zip(nodes, counts)):
        expected, cause = _neurobench_expected(node, count, x, frames, timesteps, num_samples, index == 0)
        got = measured.get(node.name)
        if expected is None:
            equal = got is None and isinstance(node, (network.AvgPool2d, network.Add))
        elif "acs + macs" in expected:
            equal = got is not None and got["acs"] + got["macs"] == expected["acs + macs"]
        else:
            equal = got is not None and (got["acs"], got["macs"]) == (expected["acs"], expected["macs"])
        rows[node.name] = {
            "energy_model_acs": count.snn_acs, "energy_model_macs": count.snn_macs,
            "neurobench_acs": got["acs"] / num_samples if got else 0.0,
            "neurobench_macs": got["macs"] / num_samples if got else 0.0,
            "neurobench_dense": got["dense"] / num_samples if got else 0.0,
            "neurobench_calls_as_ac": got["calls_as_ac"] if got else 0,
            "neurobench_calls_as_mac": got["calls_as_mac"] if got else 0,
            "neurobench_totals": got, "expected_neurobench_totals": expected, "equal_to_expected": bool(equal),
            "cause": cause}
    unknown = sorted(set(measured) - set(rows))
    if unknown:
        raise UserError(f"NeuroBench counted layers the network does not have: {', '.join(unknown)}")
    official = bench["synaptic_operations"]
    summed = {kind: sum(row[f"neurobench_{kind}"] for row in rows.values()) for kind in ("acs", "macs")}
    return {
        "layers": rows,
        "total": {"energy_model_acs": sum(c.snn_acs for c in counts), "energy_model_macs": sum(c.snn_macs for c in counts),
                  "neurobench_effective_acs": official["Effective_ACs"],
                  "neurobench_effective_macs": official["Effective_MACs"], "neurobench_dense": official["Dense"],
                  "by_layer_sums_to_synaptic_operations": bool(
                      np.isclose(summed["acs"], official["Effective_ACs"], rtol=1e-12, atol=0)
                      and np.isclose(summed["macs"], official["Effective_MACs"], rtol=1e-12, atol=0))},
        "all_equal_to_expected": all(row["equal_to_expected"] for row in rows.values()),
    }


def activation_sparsity(neuron_totals, timesteps, num_samples, bench):
    """The engine's activation sparsity (1 - spikes / (neurons x T x samples), overall and per neuron layer,
    from its spike totals ``neuron_totals``: a neuron spikes at most once a step) beside NeuroBench's."""
    layers = {}
    for name, totals in neuron_totals.items():
        totals = np.asarray(totals)
        layers[name.replace(".", "_")] = {
            "engine": 1.0 - float(totals.sum()) / (totals.size * timesteps * num_samples),
            "neurobench": bench["activation_sparsity_by_layer"].get(name.replace(".", "_"))}
    spikes = sum(float(np.sum(t)) for t in neuron_totals.values())
    slots = sum(np.asarray(t).size for t in neuron_totals.values()) * timesteps * num_samples
    overall = {"engine": 1.0 - spikes / slots, "neurobench": bench["activation_sparsity"]}
    equal = all(row["neurobench"] is not None and np.isclose(row["engine"], row["neurobench"], rtol=0, atol=1e-12)
                for row in [*layers.values(), overall])
    return {"layers": layers, "overall": overall, "equal": bool(equal),
            "rule": "zero outputs / all outputs of every neuron layer (pools' neurons included), over steps and samples"}
