"""The latency stage: accuracy and energy at low T, plain conversion vs QCFS (± STDB).

`make latency TS="1 2 4 8 16 32"` answers "which network is the cheapest within 1 pp of its
ANN?" with one row per method and T, each against its own ANN on the same test samples:

- ``conversion``: the RUN's modified ESCAPE-NET (or its ``MODEL=``) on the TF engine, thresholds 0.7 x the
  maximum input current (`conversion.conversion_thresholds`, calibrated once at max(TS)).
- ``qcfs``: that model fine-tuned with QCFS activations (`keras_models.qcfs`, L = ``L`` levels;
  `pipeline.training.ann`; a user's model as its `keras_models.qcfs.twin`), converted as Bu et al. (ICLR
  2022) do: theta = lambda per layer, v(0) = theta/2.
- ``conversion+stdb`` / ``qcfs+stdb`` (``STDB=1`` only): the same networks fine-tuned with STDB
  at that T (`pipeline.training.stdb`, a fresh copy per T), the epoch kept by validation accuracy
  (0: no trained epoch beat the converted network, which is kept).

Every row uses the engine with reset by subtraction, linear average pooling and the membrane
readout (the accumulated output current), and the RUN's input coding (``CODING``). Energy is
`pipeline.energy`'s model on the spikes the engine counted in that very run, normalised by the
ANN's energy. SNN Toolbox cannot express v(0) = theta/2 or linear pooling: what a toolbox run of
the QCFS network gives is measured with the engine's INI-compatible mode (v(0) = 0, spiking
pools, spike-count readout), which reproduces the toolbox's INI simulator spike for spike.
"""
import time

from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_models import qcfs  # also registers the QCFS layer, so .h5 models with it load
from pipeline import conversion, energy, engine, records, results, seeds, stats, workspace
from pipeline.frontier import WITHIN_PP
from pipeline.settings import Settings
from pipeline.training import ann as train, stdb

METHODS = ("conversion", "conversion+stdb", "qcfs", "qcfs+stdb")


def result_stem(coding):
    """One coding per file, as the energy stage: latency.* is Poisson input, latency_<coding>.* the others."""
    return "latency" if coding == "poisson" else f"latency_{coding}"


def measure(network, x, y, cost):
    """Final per-sample predictions and normalised energy of one engine run (the energy model on its own spikes)."""
    result = network.simulate(x, y)
    graph, pooling = network.graph, network.settings.pooling
    input_totals, _, _ = engine.replay_input(network, x, energy.input_fan_out(graph, pooling))
    counts = energy.count_operations(graph, result.neuron_totals, input_totals, len(x), pooling,
                                     network.settings.timesteps)
    _, total = energy.energy_table(counts, cost)
    return result.predictions[:, -1], total["normalized_energy"]


def poisson_ceiling(models, x, y, timesteps, seed):
    """Each ANN's accuracy on the mean of the engine's first T Poisson input frames (the same
    draws: same keys and padded batches), per T. The input coding alone caps an SNN near this: a
    rate read from T frames is that noisy, however well the network converts."""
    averages = {t: np.empty_like(x) for t in timesteps}
    for batch, start in enumerate(range(0, len(x), workspace.SIM_BATCH)):
        xb, n = engine.padded_batch(x[start:start + workspace.SIM_BATCH], workspace.SIM_BATCH)
        padded, key, total = tf.constant(xb), engine.batch_key(seed, batch), 0.0
        for step in range(max(timesteps)):
            total = total + engine.poisson_spikes(padded, key, step).numpy()[:n]
            if step + 1 in averages:
                averages[step + 1][start:start + n] = total / (step + 1)
    rows = []
    for t in timesteps:
        row = {"timesteps": t}
        for m, model in models.items():
            row.update(stats.scored(f"{m}_ann_accuracy", train.predict(model, averages[t]), y))
        rows.append(row)
    return rows


def fine_tune(network, x_train, y_train, x_val, y_val, settings):
    """STDB at the network's T, in place, its epoch chosen on the validation samples; returns what
    the record keeps of it."""
    stdb_settings = stdb.StdbSettings(**settings.stdb_choices(), seed=network.settings.seed,
                                      batch_size=stdb.default_batch_size(network))
    tuned = stdb.train(network, x_train, y_train, x_val, y_val, stdb_settings, progress=False)
    return {"validation_accuracy_before": tuned.validation_before, "validation_accuracy": tuned.validation_after,
            "validation_samples": len(y_val), "best_epoch": tuned.best_epoch,
            "seconds": tuned.seconds, "peak_memory_mb": tuned.peak_memory_mb}


class Methods:
    """The networks of the four methods, built fresh for every T (STDB changes weights in place)."""

    def __init__(self, settings, ws, qcfs_path, timesteps):
        self.ws, self.qcfs_path, self.settings = ws, qcfs_path, settings
        self.seed = int(ws.record["seed"])
        self.thresholds = conversion.conversion_thresholds(ws, self.engine_settings(max(timesteps)), "max")[0]

    def engine_settings(self, timesteps, **changes):
        return engine.SnnSettings(timesteps=timesteps, leak=self.settings.leak, **self.settings.input_coding(),
                               readout="membrane", pooling="linear", seed=self.seed, batch_size=workspace.SIM_BATCH,
                               **changes)

    def network(self, method, timesteps):
        if method.startswith("qcfs"):
            return conversion.qcfs(self.qcfs_path, self.engine_settings(timesteps, initial_membrane=0.5))
        return conversion.from_model(engine.load_keras(self.ws.model.path), self.engine_settings(timesteps),
                                     self.thresholds)

    def toolbox_semantics(self, timesteps):
        """The QCFS network as SNN Toolbox's INI simulator runs it (v(0) = 0, spiking pools, spike counts)."""
        return conversion.qcfs_ini(self.ws, self.qcfs_path, timesteps, self.settings.input_coding(), self.seed,
                                   workspace.SIM_BATCH)


def ann_name(ws):
    """What the RUN's ANN is, as the table names it: ESCAPE-NET, or the file the user brought."""
    user = workspace.user_model(ws)
    return f"MODEL={Path(user).name}" if user else "modified ESCAPE-NET"


def cheapest_within(rows, pp=WITHIN_PP):
    """Per method and overall: the lowest-energy row whose SNN is within ``pp`` points of its ANN."""
    good = [r for r in rows if r.snn_accuracy >= r.ann_accuracy - pp / 100.0]
    pick = {m: min((r for r in good if r.method == m), key=lambda r: r.normalized_energy, default=None)
            for m in METHODS if any(r.method == m for r in rows)}
    pick["overall"] = min(good, key=lambda r: r.normalized_energy, default=None)
    return pick


def write_markdown(path, record):
    rows, ann, n = record.rows, record.ann, record.num_samples
    test_n = record.num_test_samples
    lines = [f"**Low-latency conversion: accuracy and energy vs timesteps** ({record.num_samples} test samples, "
             f"{record.input_coding} input, QCFS L={record.levels})", "",
             "All rows use the TF engine's **membrane readout** (the accumulated input current of the output "
             "layer; no output spikes), reset by subtraction and linear average pooling. Each SNN is compared "
             "with its own ANN on the same samples; energy is normalised by that ANN's energy "
             f"({record.preset}). Accuracy [95 % Wilson interval] (N samples); SNN vs ANN: the exact McNemar "
             "test on the same samples (samples only one of them gets right, p).", "",
             "| Method | T | ANN accuracy | SNN accuracy | SNN - ANN (pp) | SNN vs ANN | Normalised energy |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.timesteps} | {stats.format_recorded(r, 'ann_accuracy', n)} | "
                     f"{stats.format_recorded(r, 'snn_accuracy', n)} | "
                     f"{100 * (r.snn_accuracy - r.ann_accuracy):+.1f} | "
                     f"{stats.format_mcnemar(r.snn_vs_ann_mcnemar)} | {r.normalized_energy:.4f} |")
    lines += ["", f"Cheapest network within {WITHIN_PP:g} pp of its ANN (on these {n} samples; a difference "
                  "the paired test cannot tell from 0 is not a measured loss either):"]
    for method, r in record.cheapest_within_1pp.items():
        lines.append(f"- {method}: " + ("none" if r is None else
                                         f"{r.method} at T={r.timesteps} (SNN "
                                         f"{stats.format_recorded(r, 'snn_accuracy', n)}, ANN "
                                         f"{stats.format_recorded(r, 'ann_accuracy', n)}, normalised energy "
                                         f"{r.normalized_energy:.4f})"))
    name = ann["modified"]["name"]
    lines += ["", f"ANNs on the whole test set: {name} "
                  f"{stats.format_recorded(ann['modified'], 'test_accuracy', test_n)}, "
                  f"its QCFS fine-tune (L={record.levels}) {stats.format_recorded(ann['qcfs'], 'test_accuracy', test_n)} "
                  f"({100 * (ann['qcfs']['test_accuracy'] - ann['modified']['test_accuracy']):+.1f} pp; paired: "
                  f"{stats.format_mcnemar(ann.get('qcfs_vs_modified_mcnemar'))}).",
              "", f"Conversion thresholds: {record.conversion_thresholds['how']}. QCFS thresholds: "
                  "theta = lambda of each layer, v(0) = theta/2.",
              "", "SNN Toolbox cannot express v(0) = theta/2 or linear pooling (its membranes start at 0 and its "
                  "pools spike); the engine's INI-compatible mode, which matches the toolbox spike for spike, "
                  "gives for the QCFS network (spike-count readout): "
                  + ", ".join(f"T={p['timesteps']}: {stats.format_recorded(p, 'snn_accuracy', n)}"
                              for p in record.qcfs_toolbox_semantics)
                  + "."]
    if record.poisson_input_ceiling:
        lines += ["", "Ceiling set by the Poisson input: each ANN on the mean of the same first T input frames "
                      "(a rate read from T frames is this noisy): "
                  + ", ".join(f"T={p['timesteps']}: {name} {stats.format_recorded(p, 'conversion_ann_accuracy', n)}, "
                              f"QCFS {stats.format_recorded(p, 'qcfs_ann_accuracy', n)}"
                              for p in record.poisson_input_ceiling) + "."]
    if record.stdb:
        lines += ["", f"STDB: {record.stdb['epochs']} epochs on {record.stdb['train_samples']} training "
                      "samples per T, the epoch chosen on the validation samples (epoch 0: the converted "
                      "network, kept where no trained epoch beat it)."]
    results.write_atomic(path, "\n".join(lines) + "\n")


def plot(path, record):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True, constrained_layout=True)
    for k, method in enumerate(m for m in METHODS if any(r.method == m for r in record.rows)):
        rows = [r for r in record.rows if r.method == method]
        ts = [r.timesteps for r in rows]
        top.plot(ts, [r.snn_accuracy for r in rows], "o-", color=f"C{k}", label=f"{method} SNN")
        top.axhline(rows[0].ann_accuracy, color=f"C{k}", ls="--", lw=1, label=f"{method} ANN")
        bottom.plot(ts, [r.normalized_energy for r in rows], "o-", color=f"C{k}", label=method)
    top.set_ylabel("test accuracy")
    top.set_ylim(0, 1.02)
    top.set_title("Accuracy vs timesteps (membrane readout)")
    top.legend(fontsize=8, ncol=2, loc="lower right")
    bottom.set_ylabel("SNN energy / ANN energy")
    bottom.set_xlabel("simulation timesteps T")
    bottom.set_xscale("log", base=2)
    bottom.set_yscale("log")
    for ax in (top, bottom):
        ax.grid(alpha=0.3, which="both")
    results.write_atomic_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(settings: Settings):
    """SEEDS unset: the RUN's latency table (its record). SEEDS: the stage once per training seed, each in its
    own RUN (`pipeline.seeds`), then the table across seeds in results/<RUN>/ (its record)."""
    if settings.seeds is None:
        return one_seed(settings)
    results.hold_run(settings.run, results.Folders.under(settings.out))   # the across-seed files' folder
    return across_seeds(settings, [one_seed(s) for _, s in seeds.per_seed(settings)])


def across_seeds(settings, records_per_seed):
    """latency_<coding>_seeds.{json,md} in results/<RUN>/: every seed's rows (accuracies with their Wilson
    intervals, energy, the paired test against the seed's own ANN) and each row's mean across seeds with
    its t interval."""
    first = records_per_seed[0]
    record = seeds.summary("latency", settings.seeds, [seeds.run_name(settings.run, s) for s in settings.seeds],
                           [r.rows for r in records_per_seed], ("method", "timesteps"),
                           ("ann_accuracy", "snn_accuracy", "normalized_energy"), first.num_samples,
                           carried=("method", "timesteps", "snn_vs_ann_mcnemar"))
    stem = results.Folders.under(settings.out).run_dir(settings.run) / f"{result_stem(settings.coding)}_seeds"
    lines = seeds.header(record, f"Low latency: conversion vs QCFS ({settings.coding} input, {first.preset})") + [
        "Energy: SNN / the seed's ANN. Each method against its own ANN (conversion: the modified ANN; qcfs: the "
        "QCFS ANN) on the same samples.", ""]
    lines += seeds.table_lines(record, (("method", "method"), ("timesteps", "T")),
                               (("ann_accuracy", "ANN", "accuracy"), ("snn_accuracy", "SNN", "accuracy"),
                                ("normalized_energy", "energy", ".4f")),
                               extra=(("SNN vs ANN", lambda e: stats.format_mcnemar(e.get("snn_vs_ann_mcnemar"))),))
    seeds.write(record, stem, lines)
    print(f"\nlatency across {len(settings.seeds)} seeds -> {stem.with_suffix('.md')}")
    return record


def one_seed(settings: Settings):
    """The stage on the RUN of ``settings`` (one training seed): its record."""
    timesteps, cost, ws, n = workspace.engine_stage(settings, 'make latency TS="1 2 4 8 16 32"')
    if settings.stdb:
        workspace.refuse_weight_training(ws, "STDB=1")
    qcfs_trained = conversion.qcfs_model(ws, settings.levels, settings.sparsity, force=settings.force)
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    models = {"conversion": train.load(ws.model.path), "qcfs": train.load(qcfs_trained.path)}
    whole = {m: train.predict(model, ws.dataset.x_test) for m, model in models.items()}   # the whole test set
    anns = {m: predictions[:n] for m, predictions in whole.items()}                        # the simulated samples
    methods = Methods(settings, ws, qcfs_trained.path, timesteps)
    chosen_methods = [m for m in METHODS if settings.stdb or not m.endswith("+stdb")]
    train_idx, val_idx = workspace.training_split(ws, settings.ntrain or workspace.STDB_TRAINING_SAMPLES)
    x_train, y_train = ws.dataset.x_train[train_idx], ws.dataset.y_train[train_idx]
    x_val, y_val = np.asarray(ws.dataset.x_train[val_idx], np.float32), ws.dataset.y_train[val_idx]

    rows, stdb_runs, toolbox_rows = [], [], []
    for method in chosen_methods:
        for t in timesteps:
            start = time.perf_counter()
            network = methods.network(method, t)
            extra = fine_tune(network, x_train, y_train, x_val, y_val, settings) if method.endswith("+stdb") else None
            predictions, normalized = measure(network, x, y, cost)
            ann = anns[method.removesuffix("+stdb")]
            row = records.LatencyRow(method=method, timesteps=t, **stats.scored("ann_accuracy", ann, y),
                                     **stats.scored("snn_accuracy", predictions, y), normalized_energy=normalized,
                                     **stats.comparison(y, {"snn": predictions, "ann": ann}))
            rows.append(row)
            if extra is not None:
                stdb_runs.append({"method": method, "timesteps": t, **extra})
            print(f"  {method:<16} T={t:<4} ANN {stats.format_recorded(row, 'ann_accuracy', n)}  "
                  f"SNN {stats.format_recorded(row, 'snn_accuracy', n)}  energy {normalized:.4f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    for t in timesteps:
        toolbox_rows.append({"timesteps": t, **stats.scored(
            "snn_accuracy", methods.toolbox_semantics(t).simulate(x, y).predictions[:, -1], y)})

    record = records.LatencyRecord(
        stage="latency", rows=rows, readout="membrane", pooling="linear", reset="subtraction",
        input_coding=settings.coding, leak=settings.leak, levels=settings.levels,
        sparsity=settings.sparsity, num_samples=n,
        num_test_samples=len(ws.dataset.y_test),
        preset=cost.preset, e_mac_pj=cost.e_mac_pj, e_ac_pj=cost.e_ac_pj,
        cheapest_within_1pp=cheapest_within(rows),
        ann={"modified": {"name": ann_name(ws), **stats.scored("accuracy_on_samples", anns["conversion"], y),
                          **stats.scored("test_accuracy", whole["conversion"], ws.dataset.y_test),
                          "path": str(ws.model.path), "sha256": ws.model_sha256},
             "qcfs": {**stats.scored("accuracy_on_samples", anns["qcfs"], y),
                      **stats.scored("test_accuracy", whole["qcfs"], ws.dataset.y_test),
                      "path": str(qcfs_trained.path), "sha256": results.file_sha256(qcfs_trained.path),
                      "lambda": qcfs.threshold_values(models["qcfs"])},
             "qcfs_vs_modified_mcnemar": stats.paired("qcfs", whole["qcfs"], "modified", whole["conversion"],
                                                      ws.dataset.y_test)},
        conversion_thresholds={"values": methods.thresholds,
                               "how": f"0.7 x max input current, calibrated at T={max(timesteps)} on "
                                      f"{conversion.CALIBRATION_SAMPLES} class-balanced training samples "
                                      "outside the validation split"},
        qcfs_toolbox_semantics=toolbox_rows,
        poisson_input_ceiling=(poisson_ceiling(models, x, y, timesteps, methods.seed)
                               if settings.coding == "poisson" else None),
        stdb=({"epochs": settings.stdb_epochs, "train_samples": len(train_idx), "lr": settings.lr,
               "surrogate": settings.surrogate, "selection": stdb.SELECTION, "runs": stdb_runs}
              if settings.stdb else None),
        **ws.provenance(),
    )
    stem = ws.dir / result_stem(settings.coding)
    record.write(stem.with_suffix(".json"))
    write_markdown(stem.with_suffix(".md"), record)
    plot(stem.with_suffix(".png"), record)
    best = record.cheapest_within_1pp["overall"]
    test_n = record.num_test_samples
    print(f"\nQCFS ANN {stats.format_recorded(record.ann['qcfs'], 'test_accuracy', test_n)} vs {record.ann['modified']['name']} ANN "
          f"{stats.format_recorded(record.ann['modified'], 'test_accuracy', test_n)} on the test set; "
          f"cheapest within {WITHIN_PP:g} pp: "
          + ("none" if best is None else f"{best.method} at T={best.timesteps} "
                                         f"(normalised energy {best.normalized_energy:.4f})"))
    print(f"  -> {stem.with_suffix('.md')}")
    return record
