"""The interop stage: the RUN's exported NIR file in snnTorch against our engine (`make interop NET=... T=...`).

Reads results/<RUN>/<NET>_T<T>.nir (`make export` writes it) back into the engine, and has snnTorch import
the same file in its own environment (`pipeline.peers`, `.venv-interop`). Both run the same N test samples
with the same input at every step, at the same thread count: `CODING=analog` holds each sample constant
over the T steps; `CODING=poisson` (the file's Poisson rule) or `rate` sends snnTorch the engine's own input
frames (`engine.coded_frames`: its draws for these samples and batches, checked against the engine's own
input count), so a spike-coded network is cross-checked spike for spike too. Reported per layer: spike totals and the fraction of (sample, neuron) counts that are equal;
accuracy per timestep of each; seconds per sample-step of each. snnTorch runs three ways (its importer
turns the file's IF into a leaky neuron with a deferred-reset rule of its own, `pipeline.peers.snntorch_side`):
as imported, with beta 1, and corrected (beta 1, reset_delay on: the file's IF); each difference from the
engine comes with its cause. A graph (residual adds, linear and grouped layers) is cross-checked the same way,
layer by layer, the adds included; one with a depthwise convolution snnTorch's importer cannot build is refused
in one line (`peers.check_importable`). Writes results/<RUN>/interop.json and interop.md.
"""
import os
import time

import numpy as np

from pipeline import UserError, conversion, energy, engine, network, peers, results, stats, workspace

DEFAULT_N = 50
BATCH_SIZE = 25   # samples per batch, in both simulators

CAUSES = {
    "imported": "snnTorch 1.0.0's importer makes every IF an snn.Leaky(beta=0.9): the membrane loses 10 % a "
                "step, a leak the file does not describe (and reset_delay off, below)",
    "beta1": "reset_delay off (the importer's choice): a neuron whose membrane is still above threshold after its "
             "reset is tested against twice the threshold at the next step, so it falls a spike behind",
}


def _cause(variant, first, rows):
    """Why ``variant``'s spikes differ from the engine's, from where they first differ."""
    if first is None:
        return "none: every layer spikes as the engine, neuron for neuron"
    names = list(rows)
    before = names[:names.index(first)]
    if variant in CAUSES:
        return f"{CAUSES[variant]}; first differs at {first}"
    same_input = (f"the layers before it ({', '.join(before)}) spike identically, so {first} receives the same "
                  "input spikes: " if before else f"{first} receives the same input: ")
    return (f"{same_input}its difference is arithmetic (float32 sums in PyTorch's order, the reset subtracting the "
            f"file's threshold nextafter(theta, -inf) instead of theta); the layers after {first} follow from it")


def main(settings):
    if settings.timesteps is None:
        raise UserError(f"T is required: make interop NET={settings.net} T=100")
    ws = workspace.prepare(settings)
    path = ws.dir / f"{settings.net}_T{settings.timesteps}.nir"
    if not path.is_file():
        raise UserError(f"{path}: not found; make export NET={settings.net} T={settings.timesteps} "
                        f"RUN={settings.run} writes it")
    peers.python()
    n = workspace.test_samples(settings, ws, DEFAULT_N)
    batch = min(BATCH_SIZE, n)
    net, neurons = conversion.from_nir(path, settings.timesteps, int(ws.record["seed"]), batch,
                                       coding=settings.coding, gain=settings.gain)
    pools = any(isinstance(node, network.AvgPool2d) for node in net.graph.nodes)
    if neurons.readout != "spike_count" or pools and neurons.pooling != "spiking":
        raise UserError(f"{path}: snnTorch imports IF nodes only (no NIR integrator I, the membrane readout): "
                        "cross-check NET=converted or NET=stdb")
    peers.check_importable(net.graph)
    if settings.coding == "delta":
        raise UserError("CODING=delta: its events are held as conv1's current, not sent as frames; cross-check "
                        "CODING=analog, poisson or rate")
    T, threads = settings.timesteps, os.cpu_count()
    x, labels = np.asarray(ws.dataset.x_test[:n], np.float32), np.asarray(ws.dataset.y_test[:n])

    frames = engine.coded_frames(net, x) if settings.coding != "analog" else None
    print(f"\nengine (fast): {n} samples, T={T}, {_input(net.settings)}")
    net.simulate(x[:batch], fast=True)   # compiles the kernels (untimed)
    start = time.perf_counter()
    ours = net.simulate(x, labels, record=range(n), fast=True)
    engine_seconds = time.perf_counter() - start
    if frames is not None:
        sent = (frames != 0).sum(axis=tuple(i for i in range(frames.ndim) if i != 1))
        if not np.array_equal(sent, ours.spikes_per_timestep[:, ours.layer_names.index("input")]):
            raise RuntimeError("the input frames sent to the peers differ from the engine's own input "
                               f"({sent.sum()} vs {ours.spikes_per_timestep[:, 0].sum()} events): the engine changed its keys")
    print(f"snnTorch ({', '.join(peers.SNNTORCH_VARIANTS)}): {n} samples, T={T}, {threads} threads")
    theirs = peers.snntorch(path, x, T, batch, threads, frames=frames)
    print(f"NeuroBench on snnTorch corrected: {n} samples, T={T}, {threads} threads")
    bench = peers.neurobench(path, x, T, threads, frames=frames)
    nodes = net.graph.compute_nodes
    input_totals = None if frames is None else (frames != 0).sum(axis=(0, 1))
    counts = energy.count_operations(net.graph, ours.neuron_totals, input_totals, n, neurons.pooling, T)

    steps = n * T
    variants, predictions = {}, {"engine": ours.predictions[:, -1]}
    for variant, meaning in peers.SNNTORCH_VARIANTS.items():
        rows = peers.layer_agreement(ours.recorded, theirs.totals[variant])
        first = peers.first_difference(rows)
        per_step = peers.predictions(theirs.output[variant])
        predictions[f"snntorch_{variant}"] = per_step[:, -1]
        variants[variant] = {
            "neuron": meaning, "layers": rows, "first_difference": first, "cause": _cause(variant, first, rows),
            **stats.scored("accuracy", per_step[:, -1], labels),
            "accuracy_per_timestep": (per_step == labels[:, None]).mean(axis=0).tolist(),
            "predictions_equal_per_timestep": float(np.mean(per_step == ours.predictions)),
            "seconds": theirs.seconds[variant], "ms_per_sample_step": theirs.seconds[variant] / steps * 1e3}
    record = {
        "stage": "interop", "net": settings.net, "file": path.name, "timesteps": T, "num_samples": n,
        "input": _input(net.settings), "coding": settings.coding,
        "threads": threads, "batch_size": batch, "snntorch_threads": theirs.threads,
        "peer_versions": theirs.versions,
        "engine": {**stats.scored("accuracy", ours.predictions[:, -1], labels),
                   "accuracy_per_timestep": ours.accuracy_per_timestep.tolist(),
                   "seconds": engine_seconds, "ms_per_sample_step": engine_seconds / steps * 1e3},
        "snntorch": variants,
        "speed_ratio_snntorch_corrected_to_engine": theirs.seconds["corrected"] / engine_seconds,
        "neurobench": {
            "versions": bench["versions"], "seconds": bench["seconds"], "batch_size": bench["batch_size"],
            "network": "snnTorch's import, corrected (beta 1, reset_delay on)",
            "readout_spikes_equal_engine": bool(np.array_equal(np.asarray(bench["output_spikes"]), ours.outputs[:, -1])),
            "operations": peers.compare_operations(nodes, counts, bench, x, frames, T, n),
            "activation_sparsity": peers.activation_sparsity(ours.neuron_totals, T, n, bench)},
        **stats.comparison(labels, predictions, pairs=(("snntorch_corrected", "engine"),)),
        **ws.provenance(),
    }
    results.write_json(ws.dir / "interop.json", record)
    text = markdown(record)
    results.write_atomic(ws.dir / "interop.md", text)
    print("\n" + text)
    print(f"-> {ws.dir / 'interop.json'}, {ws.dir / 'interop.md'}")
    return record


def _input(s):
    """The input both simulators get, in words."""
    if s.coding == "analog":
        return "constant (analog) input: each test sample held over the T steps, in both simulators"
    rule = f"Poisson ({s.poisson_rule} rule)" if s.coding == "poisson" else f"rate (gain {s.gain})"
    return f"{rule} input: the engine's own input frames for these samples, sent to the peers"


def markdown(record):
    """interop.md: the per-layer table, accuracies, speeds and the cause of each difference."""
    variants, v, n = record["snntorch"], record["peer_versions"], record["num_samples"]
    lines = [f"# {record['file']} in snnTorch {v['snntorch']} (torch {v['torch']}, nir {v['nir']}) and the engine",
             "", f"{record['num_samples']} test samples, T={record['timesteps']}, {record['input']}; "
             f"{record['threads']} threads each, batches of {record['batch_size']}.", "",
             "| layer | engine spikes | " + " | ".join(f"snnTorch {k}: spikes | equal per neuron" for k in variants)
             + " |", "|---|---|" + "---|---|" * len(variants)]
    for layer, row in next(iter(variants.values()))["layers"].items():
        lines.append(f"| {layer} | {row['engine_spikes']:,} | " + " | ".join(
            f"{variant['layers'][layer]['peer_spikes']:,} | {variant['layers'][layer]['equal_per_neuron']:.4f}"
            for variant in variants.values()) + " |")
    engine_row = record["engine"]
    lines += ["", "| simulator | accuracy | final predictions equal to the engine's, all steps | ms / sample-step |",
              "|---|---|---|---|",
              f"| engine (fast) | {stats.format_recorded(engine_row, 'accuracy', n)} | | "
              f"{engine_row['ms_per_sample_step']:.3f} |"]
    lines += [f"| snnTorch {name}: {variant['neuron']} | {stats.format_recorded(variant, 'accuracy', n)} | "
              f"{variant['predictions_equal_per_timestep']:.4f} | {variant['ms_per_sample_step']:.3f} |"
              for name, variant in variants.items()]
    lines += ["", f"snnTorch (corrected) vs engine on the same samples (exact McNemar): "
              f"{stats.format_mcnemar(record['snntorch_corrected_vs_engine_mcnemar'])}; snnTorch corrected takes "
              f"{record['speed_ratio_snntorch_corrected_to_engine']:.1f}x the engine's time.", "", "Causes:"]
    lines += [f"- {name}: {variant['cause']}" for name, variant in variants.items()]
    return "\n".join(lines) + "\n" + neurobench_markdown(record)


def neurobench_markdown(record):
    """interop.md's NeuroBench part: operations per inference per layer, the energy model's beside
    NeuroBench's, whether NeuroBench's rule on the engine's spikes gives its count exactly, and why."""
    nb, n, T = record["neurobench"], record["num_samples"], record["timesteps"]
    ops, sparsity = nb["operations"], nb["activation_sparsity"]
    lines = ["", f"## NeuroBench {nb['versions']['neurobench']}: operations per inference on {nb['network']}", "",
             f"{n} samples, T={T}, the same input. Energy model: `make energy`'s counts on the engine's spikes. "
             "Expected: NeuroBench's rule applied to the engine's spikes (exact integers).", "",
             "| layer | energy model ACs | energy model MACs | NeuroBench ACs | NeuroBench MACs | NeuroBench dense | "
             "as expected | why they differ |", "|---|---|---|---|---|---|---|---|"]
    for name, row in ops["layers"].items():
        lines.append(f"| {name} | {row['energy_model_acs']:,.0f} | {row['energy_model_macs']:,.0f} | "
                     f"{row['neurobench_acs']:,.0f} | {row['neurobench_macs']:,.0f} | {row['neurobench_dense']:,.0f} | "
                     f"{'yes' if row['equal_to_expected'] else 'NO'} | {row['cause']} |")
    total = ops["total"]
    lines += [f"| total | {total['energy_model_acs']:,.0f} | {total['energy_model_macs']:,.0f} | "
              f"{total['neurobench_effective_acs']:,.0f} | {total['neurobench_effective_macs']:,.0f} | "
              f"{total['neurobench_dense']:,.0f} | {'yes' if ops['all_equal_to_expected'] else 'NO'} | "
              f"NeuroBench's SynapticOperations; the layers sum to it: "
              f"{'yes' if total['by_layer_sums_to_synaptic_operations'] else 'NO'} |", "",
              "| activation sparsity | engine | NeuroBench |", "|---|---|---|"]
    lines += [f"| {name} | {row['engine']:.6f} | {row['neurobench']:.6f} |" for name, row in sparsity["layers"].items()]
    lines += [f"| all layers | {sparsity['overall']['engine']:.6f} | {sparsity['overall']['neurobench']:.6f} |", "",
              f"Sparsity equal (to 1e-12): {'yes' if sparsity['equal'] else 'NO'}; NeuroBench's readout spikes equal "
              f"the engine's: {'yes' if nb['readout_spikes_equal_engine'] else 'NO'}; NeuroBench took "
              f"{nb['seconds']:.1f} s (batches of {nb['batch_size']})."]
    return "\n".join(lines) + "\n"
