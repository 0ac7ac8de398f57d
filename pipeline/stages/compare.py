"""The compare stage: one converted model, the same samples, several SNN Toolbox simulators.

The model is the RUN's trained one (its WIDTH and EPOCHS), so the simulators
are compared on decisions a network has learned, not at chance. Each simulator
runs in a child process of its own, so wall time and peak memory are its own.
Neuron settings come from one template (reset by subtraction, v_thresh,
dt = 1, the same input coding and scale factors); what still differs between
the simulators is measured, not hidden:

- brian2's input layer is integrate-and-fire on a constant current, so
  negative inputs never spike: on SCALE=signed data (the default) every
  simulator gets the input as ON/OFF channels and the trained model with
  its first kernel split into [W, -W] (`toolbox.onoff`: the same function,
  no retraining); SCALE=unsigned (min-max to [0, 1]) runs its data as is.
- every brian2 synapse hop adds one timestep of delay (brian2 checks
  thresholds before it delivers the step's spikes), and brian2's input is a
  spiking layer of its own while INI feeds the input current straight into
  conv1: its output lags INI's by one step per projection, input -> conv1
  included (7 for ESCAPE-NET: the lag that best aligns the two output spike
  counts). The first output spike comes about one step later still
  (`first_output_spike_delay_steps`): input neurons integrate to threshold
  before their first spike. `reference_accuracy_matched_latency` reads
  INI's curve at T minus the 7.
- pyNN + NEST is refused: SNN Toolbox 0.6.0's pyNN backend cannot run INI's
  neuron (see UNSUPPORTED).

Every accuracy and agreement goes out with its sample count and a 95 % Wilson
interval; the per-layer rate correlations with a Fisher-z interval over samples
(`pipeline.stats`). The ANN's decisions on the same samples are the
yardstick: its accuracy, and each simulator's agreement with it.
"""
import importlib.util
import io
import time

import numpy as np

from pipeline import UserError, processes, results, stats, workspace
from pipeline.engine import decide
from pipeline.toolbox import configs, runner
from pipeline.training import ann
from pipeline.settings import Settings

PACKAGES = {"INI": None, "brian2": "brian2"}
DEFAULT_T, DEFAULT_N = 100, 20
# INI logs every layer's spike trains as (batch, neurons, T) arrays: a small batch keeps the width-64
# network's log in memory (samples are simulated independently; with constant input, the template's,
# the batch size changes no spike).
INI_LOGGED_BATCH = 5
UNSUPPORTED = {
    "nest": "SNN Toolbox 0.6.0's pyNN backend cannot match INI's neurons on NEST 3 "
            "(IF_curr_exp resets to v_reset, not by subtraction; NEST refuses tau_refrac < dt; "
            "0.01 ms current synapses deliver 1/100 of each weight): no output spike",
}


def check_simulators(names):
    if not names:
        raise UserError("SIMS is empty: e.g. SIMS=\"INI brian2\"")
    for name in names:
        if name in UNSUPPORTED:
            raise UserError(f"SIMS: {name} is not supported: {UNSUPPORTED[name]}")
        if name not in PACKAGES:
            raise UserError(f"SIMS: unknown simulator {name!r}; choose from {', '.join(PACKAGES)} "
                            f"(brian2 comes with the sims extra: pip install -e '.[sims]')")
        package = PACKAGES[name]
        if package and importlib.util.find_spec(package) is None:
            raise UserError(f"SIMS: {name} needs the '{package}' package: install the sims extra "
                            f"(make compare installs it; by hand: pip install -e '.[sims]')")


def _simulate(config_path):
    """Child process: run one simulator; counts, timing and peak memory."""
    config = configs.validate(config_path)
    start = time.perf_counter()
    run = runner.run(config, progress=True, log_spikes=True)
    return {"labels": run.labels, "output_counts": run.output_counts, "spike_counts": run.spike_counts,
            "synapses": run.synapses,
            "wall_seconds": time.perf_counter() - start, "toolbox_seconds": run.seconds,
            "peak_memory_mb": processes.peak_memory_mb()}


def simulate(config_path, simulator):
    return processes.in_child(_simulate, str(config_path), what=f"{simulator} simulation")


def accuracy_curve(outcome):
    """Decisions (N, T) by the toolbox's spike-count rule, and the accuracy after each step."""
    guesses = decide(np.transpose(outcome["output_counts"], (0, 2, 1)), "spike_count")
    return guesses, (guesses == outcome["labels"][:, None]).mean(axis=0)


def rate_statistics(a, b, timesteps):
    """Per layer: Pearson r of per-neuron spike rates (all samples pooled), its Fisher-z interval over
    the samples' own r (`stats.correlation_interval`), and the mean |rate difference|."""
    correlation, interval, mean_abs_diff = {}, {}, {}
    for layer in sorted(set(a) & set(b)):
        x, y = a[layer] / timesteps, b[layer] / timesteps
        correlation[layer] = _pearson(x.ravel(), y.ravel())
        interval[layer] = stats.correlation_interval([_pearson(xi, yi) for xi, yi in zip(x, y)])
        mean_abs_diff[layer] = float(np.abs(x - y).mean())
    return correlation, interval, mean_abs_diff


def _pearson(x, y):
    """Pearson r. Where a vector is constant r is undefined: None when both are the same (a layer silent in
    both simulators), 0.0 when they differ (silent, or constant, in one simulator only: no rate agrees)."""
    if x.std() == 0 or y.std() == 0:
        return None if np.array_equal(x, y) else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def synapse_hops(outcome):
    """Projections from the input to the output: one per spiking layer (input -> conv1 is the first)."""
    return len(outcome["spike_counts"])


def first_output_spike_steps(outcome):
    """(N,) first step (0-based) at which any output neuron has spiked; -1 where none did."""
    any_spike = outcome["output_counts"].sum(axis=1) > 0
    return np.where(any_spike.any(axis=1), any_spike.argmax(axis=1), -1)


def first_spike_summary(first, ref_first):
    """Median first output spike step, and median delay behind the reference (samples where both spiked)."""
    both = (first >= 0) & (ref_first >= 0)
    median = float(np.median(first[first >= 0])) if (first >= 0).any() else None
    return median, float(np.median(first[both] - ref_first[both])) if both.any() else None


def accuracy_at_latency(curve, timesteps, lag):
    """Accuracy after `timesteps - lag` steps: what the lagging simulator had time to compute."""
    return float(curve[timesteps - lag - 1]) if timesteps > lag else 0.0


def ann_decisions(ws, n):
    """The trained ANN's classes on the first `n` test samples (the simulators' samples) and its
    accuracy on the whole test set."""
    predictions = ann.predict(ann.load(ws.model.path), ws.dataset.x_test)
    return predictions[:n], float((predictions == ws.dataset.y_test).mean())


def main(settings: Settings):
    check_simulators(settings.sims)
    ws = workspace.prepare(settings)
    n = workspace.check_num_samples(settings.num_samples or DEFAULT_N, ws.dataset)
    timesteps = settings.timesteps or DEFAULT_T
    onoff = ws.record["scale"] == "signed"
    outcomes = {}
    for simulator in settings.sims:
        overrides = {("simulation", "batch_size"): 1} if simulator != "INI" else None
        config_path = workspace.render_config(ws, timesteps, n, simulator=simulator, overrides=overrides,
                                              batch_size=workspace.batch_size_for(n, INI_LOGGED_BATCH),
                                              onoff=onoff)
        print(f"\n{simulator}: {n} samples, T={timesteps}, {'ON/OFF' if onoff else 'unsigned'} input")
        outcomes[simulator] = simulate(config_path, simulator)

    names = list(outcomes)
    curves = {name: accuracy_curve(outcomes[name]) for name in names}
    labels = ws.dataset.y_test[:n]
    ann_guesses, ann_test = ann_decisions(ws, n)
    reference = names[0]
    report = {
        "timesteps": timesteps, "num_samples": n, "scale": ws.record["scale"],
        "input": "onoff" if onoff else "as is",
        "negative_input_fraction": float((ws.dataset.x_test[:n] < 0).mean()),
        "width": ws.record["width"], "epochs": ws.record["epochs"],
        "ann": {**stats.scored("accuracy", ann_guesses, labels), "accuracy_test": ann_test,
                "num_test": int(len(ws.dataset.y_test))},
        "simulators": {}, "pairs": {},
        **ws.provenance(),
    }
    ref_first = first_output_spike_steps(outcomes[reference])
    for name in names:
        outcome, (guesses, curve) = outcomes[name], curves[name]
        if not np.array_equal(outcome["labels"], labels):
            raise RuntimeError(f"{name} simulated other samples than the first {n} of the test set")
        lag = synapse_hops(outcome) if name == "brian2" else 0
        matched = None if name == reference or not lag else \
            accuracy_at_latency(curves[reference][1], timesteps, lag)
        first, delay = first_spike_summary(first_output_spike_steps(outcome), ref_first)
        report["simulators"][name] = {
            **stats.scored("accuracy", guesses[:, -1], labels),
            **stats.scored("ann_agreement", guesses[:, -1], ann_guesses),
            "accuracy_per_timestep": [float(a) for a in curve],
            "wall_seconds": outcome["wall_seconds"],
            "build_seconds": outcome["toolbox_seconds"].get("build"),
            "simulate_seconds": outcome["toolbox_seconds"].get("simulate"),
            "peak_memory_mb": outcome["peak_memory_mb"],
            "synapses": sum(outcome["synapses"].values()) or None,
            "synapses_per_layer": outcome["synapses"],
            "simulate_ms_per_sample_step": 1000 * outcome["toolbox_seconds"]["simulate"] / (n * timesteps),
            "first_output_spike_step": first,
            "first_output_spike_delay_steps": delay,
            "output_delay_steps": lag,
            "reference_accuracy_matched_latency": matched,
        }
    for other in names[1:]:
        corr, interval, diff = rate_statistics(outcomes[reference]["spike_counts"],
                                               outcomes[other]["spike_counts"], timesteps)
        report["pairs"][f"{reference}-{other}"] = {
            **stats.scored("class_agreement", curves[reference][0][:, -1], curves[other][0][:, -1]),
            "rate_correlation": corr, "rate_correlation_interval": interval, "rate_mean_abs_diff": diff}
    if len(names) == 2:   # the documented flat form for the usual two-simulator comparison
        report.update(report.pop("pairs").popitem()[1])
    results.write_json(ws.dir / "simulators.json", report)
    results.write_atomic(ws.dir / "simulators.md", markdown(report))
    print("\n" + markdown(report))
    print(f"-> {ws.dir / 'simulators.json'}")
    return report


def _with_interval(record, name):
    """0.850 [0.640, 0.948]: a fraction with its 95 % interval."""
    lo, hi = record[f"{name}_interval"]
    return f"{record[name]:.3f} [{lo:.3f}, {hi:.3f}]"


def _correlation(c):
    if c["mean"] is None:
        return "n/a (the same constant rates in every sample)"
    return f"{c['mean']:.3f}" + ("" if c["interval"] is None else " [{:.3f}, {:.3f}]".format(*c["interval"]))


def markdown(report):
    out = io.StringIO()
    source = "ON/OFF channels of SCALE=signed data" if report["input"] == "onoff" else \
        f"SCALE={report['scale']} data as is, negative inputs: {report['negative_input_fraction']:.1%}"
    a = report["ann"]
    out.write(f"**Simulators compared** (T={report['timesteps']}, N={report['num_samples']} test samples, "
              f"{source}; width {report['width']}, {report['epochs']} epochs). 95 % intervals in brackets.\n\n"
              f"ANN on the same samples: {_with_interval(a, 'accuracy')} "
              f"(whole test set: {a['accuracy_test']:.3f} on {a['num_test']})\n\n")
    out.write("| simulator | accuracy | agreement with the ANN | reference at matched latency | "
              "output delay (steps) | first output spike (step) | wall s | build s | simulate s | "
              "ms / sample-step | peak MB | synapses |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for name, s in report["simulators"].items():
        matched = "—" if s["reference_accuracy_matched_latency"] is None else \
            f"{s['reference_accuracy_matched_latency']:.3f}"
        first = "none" if s["first_output_spike_step"] is None else f"{s['first_output_spike_step']:g}"
        out.write(f"| {name} | {_with_interval(s, 'accuracy')} | {_with_interval(s, 'ann_agreement')} | "
                  f"{matched} | {s['output_delay_steps']} | {first} | "
                  f"{s['wall_seconds']:.1f} | {s['build_seconds']:.1f} | {s['simulate_seconds']:.1f} | "
                  f"{s['simulate_ms_per_sample_step']:.1f} | {s['peak_memory_mb']:.0f} | "
                  f"{'—' if s['synapses'] is None else format(s['synapses'], ',')} |\n")
    if "class_agreement" in report:
        out.write(f"\nClass agreement: {_with_interval(report, 'class_agreement')}\n\n"
                  "| layer | rate correlation r (pooled) | per-sample r, Fisher-z mean [95 %] | "
                  "mean abs rate diff |\n|---|---|---|---|\n")
        for layer, r in report["rate_correlation"].items():
            r_text = "n/a (the same constant rates: silent in both)" if r is None else f"{r:.3f}"
            out.write(f"| {layer} | {r_text} | {_correlation(report['rate_correlation_interval'][layer])} | "
                      f"{report['rate_mean_abs_diff'][layer]:.4f} |\n")
    return out.getvalue()
