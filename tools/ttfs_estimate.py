#!/usr/bin/env python3
"""What a time-to-first-spike (TTFS) network would cost (issue 24, item 6): an estimate, not a simulation.

    .venv/bin/python tools/ttfs_estimate.py RUN=<run> [OUT=...] [N=1000] [L=8] MODEL.h5 [MODEL.h5 ...]

Stanojevic et al. 2023 ("High-performance deep spiking neural networks with 0.3 spikes per neuron") convert
a ReLU network into a TTFS network exactly: each neuron fires at most once, at a time that encodes its
activation, and a neuron whose activation is 0 does not fire. If that holds here (not built: the engine has
no TTFS neuron), the network classifies as its ANN, and what it costs by the operation-only model can be
counted from the ANN's own activations: each positive activation is one spike that reaches its fan-out
(`energy.count_operations`, the frontier's own count: pruned synapses are skipped, linear pools folded),
and each non-zero input value one input spike. Each model's energy is printed over its own ANN's
(the same weights, every MAC) and over the RUN's modified ANN's (the frontier's denominator), per layer.
Not in the count: finding each neuron's firing time, which a clocked window of L steps per layer does with
one compare-and-add per neuron per step (printed beside it as N x L adds); latency, L steps per layer.
"""
import sys

import numpy as np

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from keras_models import qcfs  # noqa: F401  (registers the QCFS layer, so .h5 models with it load)
from pipeline import UserError, conversion, energy, engine, modelfile, settings as settings_module, workspace

ACTIVATIONS = ("QCFS", "ReLU", "Activation")


def activation_layers(model, nodes):
    """``{node name: the Keras layer whose output is that node's activation}``: the layer itself where it
    applies its own non-linear activation, else the activation layer that reads it."""
    import tensorflow as tf
    found = {}
    for node in nodes:
        if node.neuron is None:
            continue
        layer = model.get_layer(node.name)
        if getattr(layer, "activation", tf.keras.activations.linear) is not tf.keras.activations.linear:
            found[node.name] = layer
            continue
        readers = [r for r in model.layers if type(r).__name__ in ACTIVATIONS and r.input is layer.output]
        if len(readers) == 1:
            found[node.name] = readers[0]
    return found


def ttfs_totals(model, nodes, x):
    """Spikes of an exact TTFS conversion, summed over the samples ``x``: per node with neurons (but the
    readout), per neuron, how many samples' activation is positive (one spike each); and per input
    position how many samples' value is non-zero (one input spike each)."""
    import tensorflow as tf
    readout = nodes[-1].name
    layers = {name: layer for name, layer in activation_layers(model, nodes).items() if name != readout}
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers.values()])
    outputs = probe.predict(x, batch_size=workspace.SIM_BATCH, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    totals = {name: np.sum(out > 0, axis=0).astype(np.float64) for name, out in zip(layers, outputs)}
    return totals, np.sum(np.asarray(x) != 0, axis=0).astype(np.float64)


def estimate(path, x, cost, reference_j, levels):
    """One model's line and per-layer split (`ttfs_totals` counted by the energy model)."""
    model = engine.load_keras(path)
    nodes = conversion.from_model(model, engine.SnnSettings(timesteps=levels)).graph.compute_nodes
    totals, inputs = ttfs_totals(model, nodes, x)
    layers, total = energy.energy_table(energy.count_operations(nodes, totals, inputs, len(x), "linear"), cost)
    neurons = sum(n.neurons for n in nodes if n.name in totals)
    spikes = sum(float(t.sum()) for t in totals.values()) / len(x)
    sweep_j = neurons * levels * cost.e_ac_pj * energy.PJ
    split = ", ".join(f"{row['name']} {row['snn_energy_j'] / reference_j:.4f}" for row in layers if row["ann_macs"])
    return (f"{path.name}: {spikes / neurons:.3f} spikes per neuron ({spikes:,.0f} of {neurons:,}); "
            f"ACs {total['snn_energy_j'] * 1e6:.2f} uJ = {total['normalized_energy']:.4f} of its own ANN, "
            f"{total['snn_energy_j'] / reference_j:.4f} of the RUN's ANN ({reference_j / total['snn_energy_j']:.1f}x); "
            f"a clocked window adds {sweep_j / reference_j:.4f} (N x L = {neurons:,} x {levels}); per layer: {split}")


def main(argv):
    from pathlib import Path
    paths = [Path(a) for a in argv if not a.partition("=")[1]]
    settings = settings_module.parse(["energy", *[a for a in argv if a.partition("=")[1]]])
    if not paths:
        raise UserError("name at least one trained model (.h5) to estimate")
    for path in paths:     # read as data before anything trains or loads
        modelfile.check(path)
    ws = workspace.prepare(settings)
    n = workspace.test_samples(settings, ws)
    x = np.asarray(ws.dataset.x_test[:n], np.float32)
    cost = energy.costs(settings.preset, settings.mac_pj, settings.ac_pj)
    reference = conversion.from_model(engine.load_keras(ws.model.path), engine.SnnSettings()).graph.compute_nodes
    reference_j = energy.ann_energy_j(reference, cost)
    print(f"RUN={settings.run}: {n} test samples, {cost.preset}, the RUN's modified ANN {reference_j * 1e6:.1f} uJ")
    for path in paths:
        print(estimate(path, x, cost, reference_j, settings.levels))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
