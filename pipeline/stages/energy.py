"""The energy stage: ANN operations vs SNN accumulates per inference (seed Table 1, Figures 4-8).

`make energy T=28 NET=stdb` runs the RUN's converted (INI semantics) or STDB-fine-tuned network on
the engine, counts its operations per layer with `pipeline.energy`, and writes energy.json (Poisson
input) or energy_<CODING>.json (analog, rate, delta) with Figures 4-8.
"""
import time
from dataclasses import dataclass

import numpy as np

from pipeline import UserError, conversion, engine, plots, records, stats, workspace
from pipeline.energy import (coding_floor, costs, count_operations, cumulative_energy, encoder_updates,
                             energy_table, input_fan_out, memory_lines, memory_record, silent_fractions, summary_lines)
from pipeline.training import ann

RASTER_SAMPLE = 0           # test sample shown in Figure 4 and in Figure 5's single-sample histogram


def result_name(coding):
    """One coding per file: energy.json is Poisson (the study's), energy_<coding>.json the others
    (energy_analog.json: constant current)."""
    return "energy.json" if coding == "poisson" else f"energy_{coding}.json"


@dataclass
class Measurement:
    """What one engine run gave the energy model."""
    result: object              # engine.SimulationResult (with the raster sample's trains)
    input_totals: np.ndarray | None
    input_acs_per_step: np.ndarray | None


def measure(net, x, y, sample=RASTER_SAMPLE):
    """One engine run: per-neuron and per-step spike counts, `sample`'s spike trains (Figure 4),
    and for a spiking input (Poisson, rate, delta) the replayed input events (and the ACs they cost
    every node that reads the input), checked against the engine's own count."""
    result = net.simulate(x, y, record=[sample], trains=True, progress=True)
    if net.settings.coding == "analog":
        return Measurement(result, None, None)
    totals, events, acs = engine.replay_input(net, x, input_fan_out(net.graph, net.settings.pooling))
    engine_events = result.spikes_per_timestep[:, result.layer_names.index("input")]
    if not np.array_equal(events, engine_events):
        raise RuntimeError("replayed input differs from the engine's input counts "
                           f"({events.sum()} vs {engine_events.sum()} events): engine.py changed its input keys")
    return Measurement(result, totals, acs / len(x))


def ann_seconds_per_sample(model_path, x):
    """Wall time per sample of the Keras ANN on these samples (after a warm-up batch)."""
    model = ann.load(model_path)
    model.predict(x[:8], verbose=0)
    start = time.perf_counter()
    predictions = ann.predict(model, x)
    return (time.perf_counter() - start) / len(x), predictions


def figures(ws, stem, result, sample, layers, total, cumulative_j, num_samples, names):
    """Figures 4-8 of the seed, one PNG each, named after the result file (energy_fig4_raster.png, ...)."""
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
    if settings.timesteps is None:
        raise UserError("T is required: make energy T=28")
    costs(settings.preset, settings.mac_pj, settings.ac_pj)   # refuse a bad pair before training
    ws = workspace.prepare(settings)
    bits = workspace.quant_of(ws.record)
    cost = costs(settings.preset, settings.mac_pj, settings.ac_pj, bits)
    n = workspace.test_samples(settings, ws)
    T, batch_size = settings.timesteps, min(n, 32)
    net, description = conversion.network_of(ws, settings.net, T, settings.input_coding(), batch_size,
                                             settings.thresholds, settings.levels, settings.sparsity)
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    graph, pooling = net.graph, net.settings.pooling
    measured = measure(net, x, y)
    result = measured.result
    counts = count_operations(graph, result.neuron_totals, measured.input_totals, n, pooling, T)
    layers, total = energy_table(counts, cost)
    events = float(measured.input_totals.sum()) / n if measured.input_totals is not None else 0.0
    memory = memory_record(graph, counts, cost, T, events, pooling, settings.coding, bits)
    cumulative = cumulative_energy(counts, cost, result.spikes_per_timestep, result.layer_names,
                                   measured.input_acs_per_step)
    mean_abs_x = float(np.mean(np.abs(x)))
    floor, formula = coding_floor(settings.coding, graph, measured.input_totals, n, cost, total["ann_energy_j"],
                                  pooling)
    ann_seconds, ann_predictions = ann_seconds_per_sample(ws.model.path, x)
    own_ann = net.model if settings.net == "qcfs" else None   # the QCFS ANN is the network's own ANN
    own_predictions = ann.predict(own_ann, x) if own_ann is not None else ann_predictions
    names = result.layer_names[1:]
    stem = result_name(settings.coding).removesuffix(".json")
    record = records.EnergyRecord(
        stage="energy", preset=cost.preset, e_mac_pj=cost.e_mac_pj, e_ac_pj=cost.e_ac_pj,
        timesteps=T, input_coding=settings.coding, net=settings.net, network=description,
        pooling=net.settings.pooling, readout=net.settings.readout, num_samples=n,
        layers=layers, total=total, memory=memory,
        per_timestep={
            "snn_cumulative_energy_j": cumulative,
            "snn_cumulative_normalized": cumulative / total["ann_energy_j"],
            "method": "ACs at step t = source spikes at t x its spike-weighted mean fan-out "
                      "(input: replayed exactly); exact at t = T",
        },
        input={
            "coding": settings.coding, "poisson_rule": net.settings.poisson_rule, "mean_abs_x": mean_abs_x,
            "gain": net.settings.gain if settings.coding == "rate" else None,
            "delta": net.settings.delta if settings.coding == "delta" else None,
            "encoder_updates_per_inference": encoder_updates(settings.coding, x[0].size, T),
            "encoder_energy": "not counted (for any coding)",
            "events_per_inference": events,
            "floor_normalized_energy": floor, "floor_formula": formula,
            "first_layer_normalized_energy": layers[0]["snn_energy_j"] / total["ann_energy_j"],
        },
        silent_fraction={"sample": silent_fractions({k: result.recorded[k][0] for k in names}),
                         "all_samples": silent_fractions({k: result.neuron_totals[k] for k in names})},
        raster_sample=RASTER_SAMPLE,
        **stats.scored("snn_accuracy", result.predictions[:, -1], y),
        **stats.scored("ann_accuracy", ann_predictions, y),
        **stats.scored("own_ann_accuracy", own_predictions, y),
        **stats.comparison(y, {"snn": result.predictions[:, -1], "ann": ann_predictions,
                               **({"own_ann": own_predictions} if own_ann is not None else {})}),
        snn_seconds_per_sample=result.seconds / n,
        ann_seconds_per_sample=ann_seconds,
        **ws.provenance(),
        figures=figures(ws, stem, result, RASTER_SAMPLE, layers, total, cumulative, n, names),
    )
    out = ws.dir / result_name(settings.coding)
    record.write(out)
    print(f"\nEnergy per inference, {description}; T={T}, {settings.coding} input, {n} test samples, "
          f"{cost.preset} (MAC {cost.e_mac_pj} pJ, AC {cost.e_ac_pj} pJ):")
    print("\n".join(summary_lines(layers, total)))
    print("  with memory (weight, membrane and event accesses; the operation-only numbers above stay the comparison):")
    print("\n".join(memory_lines(memory)))
    print(f"  input-coding floor: {floor:.4f} ({formula}) of the network's {total['normalized_energy']:.4f}; SNN accuracy {stats.format_recorded(record, 'snn_accuracy')}, "
          f"ANN {stats.format_recorded(record, 'ann_accuracy')} on the same samples "
          f"(paired: {stats.format_mcnemar(record.snn_vs_ann_mcnemar)})")
    print(f"  -> {out}")
    return record
