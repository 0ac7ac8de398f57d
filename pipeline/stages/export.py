"""The export stage: the RUN's converted or STDB-fine-tuned SNN as a NIR graph (`make export NET=... T=...`).

Writes results/<RUN>/<NET>_T<T>.nir (`pipeline.nirgraph`, NIR 1.0.5) and a JSON beside it with
what the graph does not hold (input coding, readout, initial membrane) and every approximation (and, in a
RUN with QUANT, the weights' width and per-channel scales, also in each weighted node's NIR metadata).
Before it reports, the file is read back into the engine and both networks run on the same test
samples (`check_round_trip`): the export is kept only if every neuron of every layer spikes at the same
steps and the decisions are the same at every step.
"""
import numpy as np

from pipeline import UserError, conversion, engine, nirgraph, results, workspace

CHECK_SAMPLES = 10   # test samples the read-back network must spike identically on


def main(settings):
    if settings.timesteps is None:
        raise UserError("T is required: make export NET=converted T=100")
    ws = workspace.prepare(settings)
    n = min(CHECK_SAMPLES, len(ws.dataset.y_test))
    net, description = conversion.network_of(ws, settings.net, settings.timesteps, settings.input_coding(), n,
                                             settings.thresholds, settings.levels, settings.sparsity)
    path = ws.dir / f"{settings.net}_T{settings.timesteps}.nir"
    bits = workspace.quant_of(ws.record)
    side = nirgraph.write(path, net.describe(), weight_bits=bits)
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    checked = check_round_trip(net, path, x, y)
    record = {**side, "stage": "export", "net": settings.net, "network": description,
              "timesteps": settings.timesteps, "file": path.name, "round_trip": checked,
              **ws.provenance()}
    results.write_json(path.with_suffix(".json"), record)
    print(f"\nNIR {nirgraph.NIR_VERSION}: {description}, T={settings.timesteps} -> {path}")
    print(f"  read back into the engine: the same spike trains ({checked['spike_values_compared']:,} neuron-steps "
          f"in {len(checked['layers'])} layers) and decisions on {n} test samples "
          f"(accuracy {checked['snn_accuracy']:.4f}, N={n})")
    print(f"  not in the graph (see {path.with_suffix('.json').name}): input coding {side['input_coding']}, "
          f"readout {side['readout']}, v(0) = {side['initial_membrane_fraction_of_threshold']} x threshold")
    if bits:
        print(f"  weights quantised to {bits} bits: the file holds q x scale; each weighted node's metadata (and the "
              "side file's weight_quantisation) its per-channel scale")
    return record


def check_round_trip(net, path, x, y):
    """Read the NIR file at `path` back into the engine and run it and ``net`` on ``x``: every spiking
    layer's spike train (each neuron, each step) and the decision at every step must be the same.

    Step by step (the path that keeps spike trains), one sample at a time: a sample's trains of ESCAPE-NET
    at T = 100 take about 60 MB per network. Returns what was compared and the outcome; where anything
    differs the file and its side file are removed and one line raised.
    """
    T = net.settings.timesteps
    ours = net if net.settings.batch_size == 1 else net.with_settings(batch_size=1)
    back, _ = conversion.from_nir(path, T, net.settings.seed, 1)
    layers = ours.spiking_layer_names
    compared = len(x) * T * sum(net.neuron_counts()[name] for name in layers)

    def refuse(what):
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)   # the side file of the refused graph
        return UserError(f"{path}: the network read back from the file spikes differently from the engine's "
                         f"({what} on {len(x)} test samples); export refused (please report this)")

    differing, same_decisions, decisions = 0, True, []
    for i in range(len(x)):
        a, b = (sim.simulate(x[i:i + 1], record=[0], trains=True) for sim in (ours, back))
        if sorted(b.layer_names[1:]) != sorted(name.replace(".", "_") for name in layers):
            raise refuse("other layers")
        theirs = [b.trains[name.replace(".", "_")] for name in layers]   # by name: a graph's order may differ
        if [a.trains[name].shape for name in layers] != [t.shape for t in theirs]:
            raise refuse("other layers")
        differing += sum(int(np.count_nonzero(a.trains[name] != t)) for name, t in zip(layers, theirs))
        same_decisions &= bool(np.array_equal(a.predictions, b.predictions))
        decisions.append(a.predictions[0, -1])
    if differing or not same_decisions:
        raise refuse(f"{differing:,} of {compared:,} neuron-steps differ"
                     + ("" if same_decisions else ", decisions differ"))
    return {"num_samples": len(x), "timesteps": T, "layers": list(layers), "spike_values_compared": compared,
            "spike_values_differing": differing, "spikes_equal": differing == 0, "predictions_equal": same_decisions,
            "snn_accuracy": float(np.mean(np.array(decisions) == engine.as_labels(y)))}
