"""The energy stage: ANN operations vs SNN accumulates per inference (seed Table 1, Figures 4-8).

An ANN pays a multiply-accumulate (MAC) for every weight of every output; an SNN pays an
accumulate (AC) only when a spike arrives, once for every neuron the spike reaches. So:

- ANN, per layer: conv ``H_out*W_out*C_out*k_h*k_w*C_in`` MACs (padding included, the usual
  convention), dense ``in*out`` MACs, pooling one add per pooled input element.
- SNN, per layer: sum over its input positions of (spikes there, summed over samples and
  timesteps) x the position's fan-out (how many neurons of the layer it reaches; exact at the
  borders of a 'same' convolution, where a position reaches fewer outputs), divided by the number
  of samples. A constant (analog) input current instead costs the first layer its MACs once per
  inference, not once per timestep: the current does not change, so it is computed once.
- Pooling: where pools spike (INI semantics) the pool neurons' spikes x the next layer's fan-out
  count like any layer's; where pooling is linear (STDB, QCFS) the pool folds into the next conv,
  so the previous layer's spikes count with the merged fan-out of pool + conv. Every layer's
  ``ac_source`` says which rule its number uses.

Energy = MACs*E_MAC + ACs*E_AC. Spike counts are measured by the TF engine (`pipeline.snn`), as
totals per neuron and per timestep: no spike train of the whole set is ever held in memory.
"""
import math
import time
from dataclasses import dataclass

import numpy as np

from pipeline import UserError, network, results

# pJ per operation, Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
# 45 nm table: fp32 mult 3.7 + add 0.9; fp16 mult 1.1 + add 0.4; int8 mult 0.2 + add 0.03.
# A MAC is one multiply plus one add; an AC is one add.
PRESETS = {
    "45nm-fp32": (4.6, 0.9),
    "fp16": (1.5, 0.4),
    "int8": (0.23, 0.03),
}
PJ = 1e-12
DEFAULT_N = 100
CALIBRATION_SAMPLES = 100   # training samples for THRESHOLDS=max (Rathi et al. calibrate on a few batches)
RASTER_SAMPLE = 0           # test sample shown in Figure 4 and in Figure 5's single-sample histogram


# --------------------------------------------------------------------- energy per operation
@dataclass(frozen=True)
class Costs:
    preset: str
    e_mac_pj: float
    e_ac_pj: float


def costs(preset="45nm-fp32", mac_pj=None, ac_pj=None):
    """A named preset, or the user's MAC_PJ/AC_PJ pair (both needed; it overrides the preset)."""
    if (mac_pj is None) != (ac_pj is None):
        raise UserError("MAC_PJ and AC_PJ go together: give both energies per operation (pJ)")
    if mac_pj is not None:
        if not (math.isfinite(mac_pj) and math.isfinite(ac_pj)) or mac_pj < 0 or ac_pj < 0:
            raise UserError(f"MAC_PJ={mac_pj}, AC_PJ={ac_pj}: energies per operation must be finite and >= 0")
        return Costs("user", float(mac_pj), float(ac_pj))
    if preset not in PRESETS:
        raise UserError(f"PRESET={preset!r}: choose one of {', '.join(PRESETS)} or give MAC_PJ and AC_PJ")
    return Costs(preset, *PRESETS[preset])


# --------------------------------------------------------------------- layer geometry (no TF needed)
def _window_reach(n_in, size, stride, dilation, padding):
    """For each input index along one axis, the set of output indices whose window covers it."""
    n_out, before = network.padding_of(n_in, size, stride, dilation, padding)
    reach = [set() for _ in range(n_in)]
    for o in range(n_out):
        for m in range(size):
            i = o * stride - before + m * dilation
            if 0 <= i < n_in:
                reach[i].add(o)
    return reach


def ann_macs(node):
    """Multiply-accumulates of the ANN layer: conv H_out*W_out*C_out*k_h*k_w*C_in, dense in*out."""
    if isinstance(node, network.Conv2d):
        return node.neurons * int(np.prod(node.kernel_size)) * int(node.input_shape[-1])
    if isinstance(node, network.Affine):
        return int(np.prod(node.input_shape)) * int(node.output_shape[-1])
    return 0


def ann_adds(node):
    """Pooling: one add per pooled input element (a border input may be pooled 0 or several times)."""
    if not isinstance(node, network.AvgPool2d):
        return 0
    return int(spatial_fan_out(node).sum()) * int(node.input_shape[-1])


def reach(node):
    """Per spatial axis: for each input index, the output indices it reaches."""
    return [_window_reach(int(node.input_shape[a]), int(node.kernel_size[a]), int(node.stride[a]),
                          int(node.dilation[a]), node.padding) for a in (0, 1)]


def spatial_fan_out(node):
    rows, cols = reach(node)
    return np.outer([len(r) for r in rows], [len(c) for c in cols])


def fan_out(node):
    """Neurons of this layer reached by one spike at each input position, broadcastable to the input.

    Conv: output positions the kernel reaches from the position, times C_out (every output
    channel); pool: pool windows covering the position (its own channel only); dense: all units.
    """
    if isinstance(node, network.Affine):
        return np.asarray(node.output_shape[-1], np.float64)
    channels = node.output_shape[-1] if isinstance(node, network.Conv2d) else 1
    return (spatial_fan_out(node) * channels)[:, :, None].astype(np.float64)


def merged_fan_out(pool, layer):
    """Fan-out of the pool's input into `layer` when the pool is linear (folded into `layer`).

    An input position reaches the union of the layer's outputs reached from every pool window
    that covers it (windows and kernels are rectangles, so the union factorises per axis).
    """
    if not isinstance(pool, network.AvgPool2d) or not isinstance(layer, network.Weighted):
        raise UserError(f"cannot merge {pool.name!r} ({pool.kind}) into {layer.name!r} ({layer.kind})")
    pool_reach = reach(pool)
    if isinstance(layer, network.Affine):
        covered = np.outer([bool(r) for r in pool_reach[0]], [bool(c) for c in pool_reach[1]])
        return (covered * layer.output_shape[-1])[:, :, None].astype(np.float64)
    sizes = []
    for axis, layer_reach in enumerate(reach(layer)):
        sizes.append([len(set().union(*(layer_reach[q] for q in qs))) for qs in pool_reach[axis]])
    return (np.outer(*sizes) * layer.output_shape[-1])[:, :, None].astype(np.float64)


# --------------------------------------------------------------------- SNN operation counts
@dataclass(frozen=True)
class LayerCount:
    """Operations of one layer per inference; ``source`` is the layer whose spikes feed it."""
    name: str
    neurons: int
    ann_macs: int
    ann_adds: int
    snn_spikes: float
    snn_acs: float
    snn_macs: float
    source: str | None
    ac_source: str


def count_operations(layers, neuron_totals, input_totals, num_samples, pooling):
    """ANN and SNN operations per inference for every layer of `layers` (a network's
    ``compute_nodes``: conv, dense and pool; flatten and dropout cost nothing).

    ``neuron_totals``: per spiking layer, spikes per neuron summed over samples and timesteps
    (the engine's ``neuron_totals``); ``input_totals``: input spike events per input position,
    summed the same way, or None for an analog input (then the first layer costs its MACs once).
    ``pooling``: "spiking" (INI) or "linear" (folded into the next layer).
    """
    if pooling not in ("spiking", "linear"):
        raise UserError(f"pooling={pooling!r}: choose spiking or linear")
    counts, source, source_name, pending = [], input_totals, "input", None
    for index, g in enumerate(layers):
        emitted = neuron_totals.get(g.name)
        spikes = float(np.sum(emitted)) / num_samples if emitted is not None else 0.0
        if isinstance(g, network.AvgPool2d) and pooling == "linear":
            if index + 1 == len(layers):
                raise UserError(f"linear pool {g.name!r} ends the network: nothing to fold it into")
            pending = g
            counts.append(LayerCount(g.name, g.neurons, 0, ann_adds(g), 0.0, 0.0, 0.0, None,
                                     f"linear pool: folded into {layers[index + 1].name} (no operations of its own)"))
            continue
        macs = acs = 0.0
        if source is None and index == 0:
            macs, how = float(ann_macs(g)), "analog input current: the layer's MACs once per inference"
        elif source is None:
            raise UserError(f"no spike counts for {source_name!r}, which feeds {g.name!r}")
        elif pending is not None:
            acs = float(np.sum(source * merged_fan_out(pending, g))) / num_samples
            how = f"{source_name} spikes x merged fan-out of {pending.name}+{g.name}"
        else:
            acs = float(np.sum(source * fan_out(g))) / num_samples
            how = f"{source_name} spikes x fan-out into {g.name}"
        counts.append(LayerCount(g.name, g.neurons, ann_macs(g), ann_adds(g), spikes, acs, macs,
                                 source_name if source is not None else None, how))
        source, source_name, pending = emitted, g.name, None
    return counts


def energy_table(counts, cost):
    """Per-layer and total energies (joules per inference) and the SNN/ANN ratio."""
    layers = []
    for c in counts:
        layers.append({
            "name": c.name, "neurons": c.neurons, "ann_macs": c.ann_macs, "ann_adds": c.ann_adds,
            "snn_spikes": c.snn_spikes, "snn_acs": c.snn_acs, "snn_macs": c.snn_macs,
            "ann_energy_j": (c.ann_macs * cost.e_mac_pj + c.ann_adds * cost.e_ac_pj) * PJ,
            "snn_energy_j": (c.snn_macs * cost.e_mac_pj + c.snn_acs * cost.e_ac_pj) * PJ,
            "ac_source": c.ac_source,
        })
    ann = sum(layer["ann_energy_j"] for layer in layers)
    snn = sum(layer["snn_energy_j"] for layer in layers)
    total = {"ann_energy_j": ann, "snn_energy_j": snn,
             "normalized_energy": snn / ann if ann > 0 else float("nan"),
             "saving": ann / snn if snn > 0 else float("inf")}
    return layers, total


def cumulative_energy(counts, cost, spikes_per_timestep, column_names, input_acs_per_step=None):
    """SNN energy per inference spent up to each timestep (joules), shape (T,).

    A layer's ACs at step t are its source's spikes at t times the source's spike-weighted mean
    fan-out (the engine counts spikes per step per layer, not per position), so the curve is
    exact for dense layers, for the input when ``input_acs_per_step`` replays it exactly, and at
    t = T for every layer; inside a conv it assumes border positions keep their share of spikes.
    Analog first-layer MACs are spent at step 1.
    """
    per_step = np.zeros(len(spikes_per_timestep))
    for c in counts:
        per_step[0] += c.snn_macs * cost.e_mac_pj
        if c.snn_acs == 0:
            continue
        if c.source == "input" and input_acs_per_step is not None:
            acs = np.asarray(input_acs_per_step, np.float64)
        else:
            column = np.asarray(spikes_per_timestep, np.float64)[:, list(column_names).index(c.source)]
            acs = c.snn_acs * column / column.sum()
        per_step += acs * cost.e_ac_pj
    return np.cumsum(per_step) * PJ


def coding_floor(coding, first, mean_abs_x, timesteps, cost, ann_energy_j):
    """Normalised energy the input coding alone costs (issue 5): Poisson input makes the first
    layer do about T*mean|x| x its MACs as ACs; an analog input costs its MACs once."""
    if coding == "analog":
        return ann_macs(first) * cost.e_mac_pj * PJ / ann_energy_j, "first-layer MACs x E_MAC / ANN energy"
    value = timesteps * mean_abs_x * ann_macs(first) * cost.e_ac_pj * PJ / ann_energy_j
    return value, "T x mean|x| x first-layer MACs x E_AC / ANN energy (interior fan-out, P(spike)=|x|)"


def silent_fractions(totals):
    """Fraction of each layer's neurons that never spiked in `totals` (per-neuron spike counts)."""
    return {name: float(np.mean(np.asarray(t) == 0)) for name, t in totals.items()}


def summary_lines(layers, total):
    """The per-layer table the stage prints."""
    head = f"  {'layer':<8}{'neurons':>10}{'ANN MACs':>14}{'ANN adds':>11}{'SNN spikes':>13}{'SNN ACs':>14}" \
           f"{'SNN MACs':>12}{'E_SNN/E_ANN':>13}"
    lines = [head]
    for row in layers:
        ratio = row["snn_energy_j"] / row["ann_energy_j"] if row["ann_energy_j"] else float("nan")
        lines.append(f"  {row['name']:<8}{row['neurons']:>10,}{row['ann_macs']:>14,}{row['ann_adds']:>11,}"
                     f"{row['snn_spikes']:>13,.0f}{row['snn_acs']:>14,.0f}{row['snn_macs']:>12,.0f}{ratio:>13.4f}")
    lines.append(f"  total: ANN {total['ann_energy_j'] * 1e6:.3f} uJ, SNN {total['snn_energy_j'] * 1e6:.3f} uJ "
                 f"per inference; normalised {total['normalized_energy']:.4f} ({total['saving']:.1f}x saving)")
    return lines


# --------------------------------------------------------------------- the stage (TF from here on)
def result_name(coding):
    """One coding per file: energy.json is Poisson (the study's), energy_analog.json constant current."""
    return "energy.json" if coding == "poisson" else "energy_analog.json"


def stdb_network(ws, timesteps, coding, seed, batch_size):
    """The STDB-fine-tuned network of this RUN and T, from the model stdb_T<T>.json exported.

    `stdb.export_h5` folds the thresholds into the weights (threshold 1); a record that says
    ``"exported_folded": false`` has its ``thresholds`` applied to the exported weights instead.
    The engine settings the network was trained with are read from the record where it has them.
    """
    from pipeline import snn
    path = ws.dir / f"stdb_T{timesteps}.json"
    if not path.exists():
        raise UserError(f"NET=stdb: {path} not found; run make stdb T={timesteps} first")
    record = results.read_json(path)
    if not record.get("exported_model") or "thresholds" not in record:
        raise UserError(f"NET=stdb: {path} names no exported_model and thresholds (re-run make stdb T={timesteps})")
    folded = record.get("exported_folded", True)
    model = snn.load_keras(record["exported_model"])
    settings = snn.SnnSettings(timesteps=timesteps, coding=coding, seed=seed, batch_size=batch_size,
                               leak=float(record.get("leak", 1.0)),
                               pooling=record.get("pooling", "linear"), readout=record.get("readout", "membrane"),
                               poisson_rule=record.get("poisson_rule", "signed"),
                               initial_membrane=float(record.get("initial_membrane", 0.0)))
    thresholds = None if folded else record["thresholds"]
    net = snn.SpikingNetwork(model, thresholds, settings, leaks=record.get("leaks"))
    return net, f"STDB fine-tuned ({path.name}: {record['exported_model']}, thresholds " \
                    f"{'folded into the weights' if folded else 'from the record'})"


def converted_network(ws, timesteps, coding, thresholds, seed, batch_size, num_calibration):
    """The RUN's converted network with INI semantics (spiking pools, spike-count readout)."""
    from pipeline import snn, workspace
    settings = snn.SnnSettings.ini_compatible(timesteps, coding=coding, seed=seed, batch_size=batch_size)
    net, source = workspace.converted_network(ws, settings, thresholds, ws.dataset.x_train[:num_calibration])
    return net, f"converted, {source}"


def replay_input(net, x, first_fan_out):
    """Input spike events per position (summed over samples and steps) and first-layer ACs per step.

    The engine counts input events per step only; its Poisson draws are stateless (a key per
    batch, folded with the step), so replaying `snn.poisson_spikes` with its keys on its padded
    batches gives the very same events, position by position.
    """
    import tensorflow as tf
    from pipeline import snn
    s = net.settings
    totals = np.zeros(x.shape[1:], np.float64)
    events = np.zeros(s.timesteps, np.int64)
    acs = np.zeros(s.timesteps, np.float64)
    for batch, start in enumerate(range(0, len(x), s.batch_size)):
        xb = x[start:start + s.batch_size]
        n = len(xb)
        padded = tf.constant(np.concatenate([xb, np.zeros((s.batch_size - n,) + xb.shape[1:], xb.dtype)]))
        key = snn.batch_key(s.seed, batch)
        for t in range(s.timesteps):
            fired = snn.poisson_spikes(padded, key, tf.constant(t), s.poisson_rule).numpy()[:n] != 0
            per_position = fired.sum(axis=0)
            totals += per_position
            events[t] += per_position.sum()
            acs[t] += float(np.sum(per_position * first_fan_out))
    return totals, events, acs


@dataclass
class Measurement:
    """What one engine run gave the energy model."""
    result: object              # snn.SimulationResult (with the raster sample's trains)
    input_totals: np.ndarray | None
    input_acs_per_step: np.ndarray | None


def measure(net, x, y, first_layer, sample=RASTER_SAMPLE):
    """One engine run: per-neuron and per-step spike counts, `sample`'s spike trains (Figure 4),
    and for Poisson input the replayed input events, checked against the engine's own count."""
    result = net.simulate(x, y, record=[sample], trains=True, progress=True)
    if net.settings.coding == "analog":
        return Measurement(result, None, None)
    totals, events, acs = replay_input(net, x, fan_out(first_layer))
    engine_events = result.spikes_per_timestep[:, result.layer_names.index("input")]
    if not np.array_equal(events, engine_events):
        raise RuntimeError("replayed Poisson input differs from the engine's input counts "
                           f"({events.sum()} vs {engine_events.sum()} events): snn.py changed its input keys")
    return Measurement(result, totals, acs / len(x))


def ann_seconds_per_sample(model_path, x):
    """Wall time per sample of the Keras ANN on these samples (after a warm-up batch)."""
    from pipeline import train
    model = train.load(model_path)
    model.predict(x[:8], verbose=0)
    start = time.perf_counter()
    predictions = train.predict(model, x)
    return (time.perf_counter() - start) / len(x), predictions


def figures(ws, stem, result, sample, layers, total, cumulative_j, num_samples, names):
    """Figures 4-8 of the seed, one PNG each, named after the result file (energy_fig4_raster.png, ...)."""
    from pipeline import plots
    paths = {k: ws.dir / f"{stem}_{k}.png" for k in ("fig4_raster", "fig5_spike_histogram", "fig6_operations",
                                                     "fig7_normalized_energy", "fig8_cumulative_energy")}
    trains = {n: result.trains[n][0] for n in names if n in result.trains}
    plots.spike_raster(paths["fig4_raster"], trains, sample)
    per_inference = {n: np.asarray(result.neuron_totals[n]) / num_samples for n in names}
    sample_totals = {n: result.recorded[n][0] for n in names}
    plots.spike_histograms(paths["fig5_spike_histogram"], sample_totals, per_inference, sample, num_samples)
    plots.operations_per_layer(paths["fig6_operations"], layers)
    plots.normalized_energy(paths["fig7_normalized_energy"], layers, total)
    plots.cumulative_energy(paths["fig8_cumulative_energy"], cumulative_j, total["ann_energy_j"])
    return {k: p.name for k, p in paths.items()}


def main(settings):
    from pipeline import workspace
    if settings.timesteps is None:
        raise UserError("T is required: make energy T=28")
    if settings.net not in ("converted", "stdb"):
        raise UserError(f"NET={settings.net}: the energy stage measures NET=converted or NET=stdb")
    cost = costs(settings.preset, settings.mac_pj, settings.ac_pj)
    ws = workspace.prepare(settings)
    n = workspace.check_num_samples(settings.num_samples or min(DEFAULT_N, len(ws.dataset.y_test)), ws.dataset)
    T, seed, batch_size = settings.timesteps, int(ws.record["seed"]), min(n, 32)
    if settings.net == "stdb":
        net, description = stdb_network(ws, T, settings.coding, seed, batch_size)
    else:
        net, description = converted_network(ws, T, settings.coding, settings.thresholds, seed, batch_size,
                                                 min(settings.ntrain or CALIBRATION_SAMPLES, len(ws.dataset.y_train)))
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    layers_geometry = net.graph.compute_nodes
    measured = measure(net, x, y, layers_geometry[0])
    result = measured.result
    counts = count_operations(layers_geometry, result.neuron_totals, measured.input_totals, n,
                              net.settings.pooling)
    layers, total = energy_table(counts, cost)
    cumulative = cumulative_energy(counts, cost, result.spikes_per_timestep, result.layer_names,
                                   measured.input_acs_per_step)
    mean_abs_x = float(np.mean(np.abs(x)))
    floor, formula = coding_floor(settings.coding, layers_geometry[0], mean_abs_x, T, cost, total["ann_energy_j"])
    ann_seconds, ann_predictions = ann_seconds_per_sample(ws.model.path, x)
    names = result.layer_names[1:]
    stem = result_name(settings.coding).removesuffix(".json")
    record = {
        "stage": "energy", "preset": cost.preset, "e_mac_pj": cost.e_mac_pj, "e_ac_pj": cost.e_ac_pj,
        "timesteps": T, "input_coding": settings.coding, "net": settings.net, "network": description,
        "pooling": net.settings.pooling, "readout": net.settings.readout, "num_samples": n,
        "layers": layers, "total": total,
        "per_timestep": {
            "snn_cumulative_energy_j": cumulative,
            "snn_cumulative_normalized": cumulative / total["ann_energy_j"],
            "method": "ACs at step t = source spikes at t x its spike-weighted mean fan-out "
                      "(input: replayed exactly); exact at t = T",
        },
        "input": {
            "coding": settings.coding, "poisson_rule": net.settings.poisson_rule, "mean_abs_x": mean_abs_x,
            "events_per_inference": (float(measured.input_totals.sum()) / n
                                     if measured.input_totals is not None else 0.0),
            "floor_normalized_energy": floor, "floor_formula": formula,
            "first_layer_normalized_energy": layers[0]["snn_energy_j"] / total["ann_energy_j"],
        },
        "silent_fraction": {"sample": silent_fractions({k: result.recorded[k][0] for k in names}),
                            "all_samples": silent_fractions({k: result.neuron_totals[k] for k in names})},
        "raster_sample": RASTER_SAMPLE,
        "snn_accuracy": result.accuracy,
        "ann_accuracy": float(np.mean(ann_predictions == y)),
        "snn_seconds_per_sample": result.seconds / n,
        "ann_seconds_per_sample": ann_seconds,
        "dataset": {"name": ws.dataset.name, "sha256": ws.dataset.sha256},
        "model": {"path": str(ws.model.path), "sha256": ws.model_sha256},
        "seed": seed, "versions": results.versions(),
    }
    record["figures"] = figures(ws, stem, result, RASTER_SAMPLE, layers, total, cumulative, n, names)
    out = ws.dir / result_name(settings.coding)
    results.write_json(out, record)
    print(f"\nEnergy per inference, {description}; T={T}, {settings.coding} input, {n} test samples, "
          f"{cost.preset} (MAC {cost.e_mac_pj} pJ, AC {cost.e_ac_pj} pJ):")
    print("\n".join(summary_lines(layers, total)))
    print(f"  input-coding floor: {floor:.4f} ({formula}); SNN accuracy {result.accuracy:.4f}, "
          f"ANN {record['ann_accuracy']:.4f} on the same samples")
    print(f"  -> {out}")
    return record
