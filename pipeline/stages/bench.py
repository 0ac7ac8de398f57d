"""The bench stage: SNN Toolbox INI against the engine's fast simulation (`make bench T=100 N=50`).

One run, side by side, on the RUN's trained model, the same N test samples, the same T and
constant input (the rendered ini's settings):

- INI at each batch size in `INI_BATCH_SIZES` that divides N (else the convert stage's own
  choice), spike logging off; the fastest counts. Its simulation time is the toolbox's own
  ``simulate`` stage; parse, normalise and build are reported apart.
- The engine (`pipeline.toolbox.simulate.fast_network`: INI semantics on the toolbox's normalised weights),
  after one warm-up batch that compiles its loops (reported apart).
- T dense ANN forward passes over the same samples: the dense bound.
- With ``PEERS=snntorch``: the engine's network exported to NIR (`pipeline.nirgraph`,
  results/<RUN>/bench_T<T>.nir) and run by snnTorch's import of it, corrected to the file's IF
  (`pipeline.peers`, in `.venv-interop`), on the same samples in batches of INI's best size, with
  as many threads as the machine has cores; its spike counts against the engine's.
- Spike agreement: a separate, small INI run with spike logging (its per-neuron counts need
  gigabytes at width 64) on the first `AGREEMENT_SAMPLES` samples, against the engine's counts
  for the same samples: the fraction of (sample, neuron) counts that are equal.
- The engine's own exactness: the timed run is the default fast path, whose deeper layers' currents are
  summed event by event, in another float order than the step engine's dense ops; on the same samples
  the dense-current fast path (``sparse=False``, bit for bit the step engine) gives
  ``sparse_agreement_per_layer``, the fraction of per-neuron counts the default gets exactly.

Every part runs in a child process of its own (spawn), so its wall time and peak memory are
its own; `os.getloadavg` before and after says how busy the machine was.
"""
import os
import time
from pathlib import Path

import numpy as np

from pipeline import UserError, engine, nirgraph, peers, processes, records, stats, workspace
from pipeline.toolbox import configs, runner, simulate
from pipeline.settings import Settings

DEFAULT_T, DEFAULT_N = 100, 50   # docs/engine.md's bench: T=100 on 50 samples
INI_BATCH_SIZES = (25, 50)
AGREEMENT_SAMPLES = 5
DENSE_REPEATS = 5   # the dense pass is timed this often; the fastest counts


# --------------------------------------------------------------------- child processes
def _ini(config_path, log_spikes):
    run = runner.run(configs.validate(config_path), progress=True, log_spikes=log_spikes)
    return {"seconds": run.seconds, "accuracy_per_timestep": run.accuracy_per_timestep,
            "predictions": run.predictions_per_timestep[:, -1], "labels": run.labels,
            "scale_factors": run.scale_factors, "spike_counts": run.spike_counts,
            "peak_memory_mb": processes.peak_memory_mb()}


def _engine(config_path, agreement):
    """The timed fast run after a compiling warm-up batch, then (untimed) the per-neuron counts
    of the first ``agreement`` samples, by the default (event-driven) and the exact fast path."""
    config = configs.validate(config_path)
    network, x, labels, _ = simulate.fast_network(config)
    start = time.perf_counter()
    network.simulate(x[:config.batch_size], labels[:config.batch_size], fast=True)
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    result = network.simulate(x, labels, fast=True)
    seconds = time.perf_counter() - start
    counts, exact = (network.simulate(x[:agreement], labels[:agreement], record=range(agreement), fast=True,
                                      sparse=sparse).recorded for sparse in (True, False))
    return {"seconds": seconds, "warmup_seconds": warmup, "stage_seconds": result.stage_seconds,
            "accuracy_per_timestep": result.accuracy_per_timestep, "predictions": result.predictions[:, -1],
            "spike_counts": counts, "exact_spike_counts": exact,
            "peak_memory_mb": processes.peak_memory_mb()}


def _export(config_path, nir_path):
    """The engine's network for ``config_path`` as a NIR file (what the peers run)."""
    network, *_ = simulate.fast_network(configs.validate(config_path))
    nirgraph.write(Path(nir_path), network.describe())
    return {}


def _peer(ws, config_path, timesteps, n, batch_size, engine_counts, agreement):
    """snnTorch (corrected) on the engine's network, the same samples and constant input: its time,
    decisions and per-layer agreement with the engine's counts on the first ``agreement`` samples."""
    nir_path = ws.dir / f"bench_T{timesteps}.nir"
    processes.in_child(_export, str(config_path), str(nir_path), what="NIR export")
    config = configs.validate(config_path)
    x = np.load(config.dataset_path / "x_test.npz")["arr_0"][:n]
    print(f"\nsnnTorch (corrected): {n} samples, T={timesteps}, {os.cpu_count()} threads")
    run = peers.snntorch(nir_path, x, timesteps, batch_size, os.cpu_count(), variants=("corrected",))
    rows = peers.layer_agreement(engine_counts, {k: v[:agreement] for k, v in run.totals["corrected"].items()})
    return {"seconds": run.seconds["corrected"], "threads": run.threads, "versions": run.versions,
            "file": nir_path.name, "predictions_per_timestep": peers.predictions(run.output["corrected"]),
            "spike_agreement_per_layer": {k: row["equal_per_neuron"] for k, row in rows.items()}}


def _dense(config_path):
    """One dense ANN forward pass over the samples (the INI batch size), fastest of a few, times T."""
    import tensorflow as tf
    config = configs.validate(config_path)
    model = engine.load_keras(config.path_wd / f"{config.filename_ann}.h5")
    x = np.load(config.dataset_path / "x_test.npz")["arr_0"][:config.num_to_test]
    forward = tf.function(lambda xb: model(xb, training=False))
    batches = [tf.constant(x[i:i + config.batch_size]) for i in range(0, len(x), config.batch_size)]
    forward(batches[0])
    times = []
    for _ in range(DENSE_REPEATS):
        start = time.perf_counter()
        for xb in batches:
            forward(xb).numpy()
        times.append(time.perf_counter() - start)
    return {"pass_seconds": min(times), "seconds": min(times) * config.duration,
            "peak_memory_mb": processes.peak_memory_mb()}


# --------------------------------------------------------------------- the comparison
def ini_batch_sizes(num_samples):
    sizes = [b for b in INI_BATCH_SIZES if num_samples % b == 0]
    return sizes or [workspace.batch_size_for(num_samples)]


def spike_agreement(ini_counts, engine_counts, samples):
    """Fraction of equal per-neuron spike counts, overall and per layer (matched by position)."""
    if len(ini_counts) != len(engine_counts):
        raise UserError(f"INI logged {len(ini_counts)} spiking layers, the engine {len(engine_counts)}")
    per_layer, equal, total = {}, 0, 0
    for ini_name, name in zip(ini_counts, engine_counts):
        ours = np.asarray(engine_counts[name]).reshape(samples, -1)
        same = ours == np.asarray(ini_counts[ini_name]).reshape(samples, -1)
        per_layer[name] = float(same.mean())
        equal, total = equal + int(same.sum()), total + same.size
    return equal / total, per_layer


def render(ws, timesteps, num_samples, batch_size):
    """The RUN's ini for this T, N and batch size (the toolbox's log dir follows the batch size)."""
    config_path = workspace.render_config(ws, timesteps, num_samples, batch_size=batch_size)
    config = configs.validate(config_path)
    if config.poisson_input:
        raise UserError(f"{config_path}: the bench compares constant input; set [input] poisson_input = False "
                        "in snn_configs/base.ini")
    return config_path


def main(settings: Settings):
    load_before = os.getloadavg()
    timesteps, ws = settings.timesteps or DEFAULT_T, workspace.prepare(settings)
    n = workspace.test_samples(settings, ws, DEFAULT_N)
    agreement = min(AGREEMENT_SAMPLES, n)
    ini_runs = {}
    for batch_size in ini_batch_sizes(n):
        print(f"\nINI: {n} samples, T={timesteps}, batch size {batch_size}")
        ini_runs[batch_size] = processes.in_child(_ini, str(render(ws, timesteps, n, batch_size)), False)
    best = min(ini_runs, key=lambda b: ini_runs[b]["seconds"]["simulate"])
    config_path = render(ws, timesteps, n, best)
    print(f"\nengine (fast): {n} samples, T={timesteps}")
    engine = processes.in_child(_engine, str(config_path), agreement)
    print(f"\ndense ANN: {DENSE_REPEATS} passes over {n} samples")
    dense = processes.in_child(_dense, str(config_path))
    print(f"\nINI with spike logging: {agreement} samples, T={timesteps}")
    logged = processes.in_child(_ini, str(render(ws, timesteps, agreement, agreement)), True)
    overall, per_layer = spike_agreement(logged["spike_counts"], engine["spike_counts"], agreement)
    _, sparse_per_layer = spike_agreement(engine["exact_spike_counts"], engine["spike_counts"], agreement)
    peer = (_peer(ws, config_path, timesteps, n, best, engine["spike_counts"], agreement)
            if "snntorch" in settings.peers else None)

    ini = ini_runs[best]
    curve_ini, curve_engine = np.asarray(ini["accuracy_per_timestep"]), np.asarray(engine["accuracy_per_timestep"])
    snntorch = None
    if peer:
        per_step = peer.pop("predictions_per_timestep")
        snntorch = {**peer, "ms_per_sample_step": peer["seconds"] / (n * timesteps) * 1e3,
                    "engine_speedup": peer["seconds"] / engine["seconds"],
                    **stats.scored("accuracy", per_step[:, -1], ini["labels"]),
                    "accuracy_per_timestep_equal_to_engine": bool(np.array_equal(
                        (per_step == ini["labels"][:, None]).mean(axis=0), curve_engine))}
    record = records.BenchRecord(
        timesteps=timesteps, num_samples=n,
        ini_seconds=ini["seconds"]["simulate"], engine_seconds=engine["seconds"],
        speedup=ini["seconds"]["simulate"] / engine["seconds"],
        ann_dense_seconds=dense["seconds"], dense_bound_ratio=engine["seconds"] / dense["seconds"],
        spike_agreement=overall,
        **stats.scored("accuracy_ini", ini["predictions"], ini["labels"]),
        **stats.scored("accuracy_engine", engine["predictions"], ini["labels"]),
        **stats.comparison(ini["labels"], {"engine": engine["predictions"], "ini": ini["predictions"]},
                           pairs=(("engine", "ini"),)),
        peak_memory_mb=engine["peak_memory_mb"],
        ini_batch_size=best,
        ini_runs={str(b): {"seconds": r["seconds"], **stats.scored("accuracy", r["predictions"], r["labels"]),
                           "peak_memory_mb": r["peak_memory_mb"]} for b, r in ini_runs.items()},
        ini_peak_memory_mb=ini["peak_memory_mb"],
        engine_warmup_seconds=engine["warmup_seconds"],
        engine_stage_seconds=engine["stage_seconds"],
        ann_dense_pass_seconds=dense["pass_seconds"],
        accuracy_per_timestep_equal=bool(np.array_equal(curve_ini, curve_engine)),
        accuracy_max_abs_difference=float(np.abs(curve_ini - curve_engine).max()),
        spike_agreement_samples=agreement, spike_agreement_per_layer=per_layer,
        sparse_agreement_per_layer=sparse_per_layer,
        load_average={"before": list(load_before), "after": list(os.getloadavg())},
        cpu_count=os.cpu_count(),
        **ws.provenance(),
        snntorch=snntorch,
    )
    out = ws.dir / "bench.json"
    record.write(out)
    print("\n" + table(record))
    print(f"-> {out}")
    return record


def table(record):
    """The bench as a printed table."""
    steps = record.num_samples * record.timesteps
    lines = [f"Bench: {record.num_samples} samples, T={record.timesteps}, constant input, "
             f"load average {record.load_average['before'][0]:.1f} -> {record.load_average['after'][0]:.1f} "
             f"on {record.cpu_count} CPUs",
             f"  {'':24}{'seconds':>10}{'ms/sample-step':>16}{'accuracy':>10}{'peak MB':>10}"]
    for batch, run in record.ini_runs.items():
        s = run["seconds"]
        mark = " *" if int(batch) == record.ini_batch_size else ""
        lines.append(f"  {'INI batch ' + batch + mark:24}{s['simulate']:>10.1f}{s['simulate'] / steps * 1e3:>16.2f}"
                     f"{run['accuracy']:>10.4f}{run['peak_memory_mb']:>10.0f}"
                     f"   (parse {s['parse']:.1f} s, normalise {s['normalize']:.1f} s, build {s['build']:.1f} s)")
    engine = record.engine_seconds
    lines.append(f"  {'engine (fast)':24}{engine:>10.1f}{engine / steps * 1e3:>16.2f}"
                 f"{record.accuracy_engine:>10.4f}{record.peak_memory_mb:>10.0f}"
                 f"   (warm-up and compile {record.engine_warmup_seconds:.1f} s)")
    peer = record.snntorch
    if peer:
        lines.append(f"  {'snnTorch (corrected)':24}{peer['seconds']:>10.1f}{peer['ms_per_sample_step']:>16.2f}"
                     f"{peer['accuracy']:>10.4f}{'':>10}   ({peer['threads']} threads; engine "
                     f"{peer['engine_speedup']:.1f}x faster; spike agreement "
                     + ", ".join(f"{k} {v:.5f}" for k, v in peer["spike_agreement_per_layer"].items()) + ")")
    lines.append(f"  {'T dense ANN passes':24}{record.ann_dense_seconds:>10.1f}"
                 f"{record.ann_dense_seconds / steps * 1e3:>16.2f}")
    lines += [f"  accuracy: INI {stats.format_recorded(record, 'accuracy_ini')}, engine "
              f"{stats.format_recorded(record, 'accuracy_engine')}; engine vs INI on the same samples "
              f"(exact McNemar): {stats.format_mcnemar(record.engine_vs_ini_mcnemar)}",
              f"  speedup {record.speedup:.1f}x, engine / dense bound {record.dense_bound_ratio:.2f}, "
              f"accuracy equal at every step: {record.accuracy_per_timestep_equal} "
              f"(max difference {record.accuracy_max_abs_difference:.4f})",
              f"  spike agreement {record.spike_agreement:.5f} on {record.spike_agreement_samples} samples: "
              + ", ".join(f"{k} {v:.5f}" for k, v in record.spike_agreement_per_layer.items()),
              "  engine's event-driven currents against its exact ones (sparse=False), same samples: "
              + ", ".join(f"{k} {v:.5f}" for k, v in record.sparse_agreement_per_layer.items()),
              "  engine time by part (s, summed over its threads): "
              + ", ".join(f"{k} {v:.1f}" for k, v in record.engine_stage_seconds.items())]
    return "\n".join(lines)
