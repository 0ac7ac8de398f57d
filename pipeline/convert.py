"""The convert stage: trained .h5 -> rendered ini -> SNN Toolbox simulation -> convert_T<T>.json.

`make convert T=300` reads top to bottom here: prepare the RUN (data, model),
render the ini for this T, run the toolbox, compare with the ANN on the same
samples, write the result atomically and print a summary.

`SIM=fast` runs the engine's fast simulation (`pipeline.snn`, INI semantics) on the same
rendered ini, model, samples and the toolbox's own scale factors instead of the toolbox's
simulator, and writes convert_T<T>_fast.json with the same fields ("simulator": "fast").
"""
import os
import time
from pathlib import Path

import numpy as np

from pipeline import UserError, configs, results, snn, toolbox, train, workspace
from pipeline.settings import Settings

DEFAULT_N = 100
FAST = "fast"
# What the fast simulation reproduces: INI's neuron, input and decision with these settings.
FAST_REQUIRES = {
    ("simulation", "reset_between_nth_sample"): 1, ("simulation", "top_k"): 1,
    ("simulation", "early_stopping"): False, ("simulation", "sample_idxs_to_test"): "[]",
    ("input", "input_rate"): 1000, ("input", "num_poisson_events_per_sample"): -1,
    ("conversion", "spike_code"): "temporal_mean_rate", ("conversion", "softmax_to_relu"): True,
    ("normalization", "online_normalization"): False, ("normalization", "normalization_schedule"): False,
    ("cell", "v_thresh"): 1, ("cell", "reset"): "Reset by subtraction", ("cell", "leak"): False,
    ("cell", "tau_refrac"): 0, ("cell", "payloads"): False, ("cell", "binarize_weights"): False,
    ("cell", "quantize_weights"): False, ("cell", "bias_relaxation"): False,
}


def toolbox_paths(ws, batch_size):
    """[paths] for a run: a work dir per RUN, a log dir per model/data/percentile/batch size.

    The toolbox caches scale factors in its log dir and reuses them for the next
    model run there, so the log dir's name carries everything they depend on.
    """
    percentile = configs.read_ini(configs.TEMPLATE).get("normalization", "percentile", fallback="99.9")
    work = ws.dir / "toolbox"
    work.mkdir(parents=True, exist_ok=True)
    link = work / ws.model.path.name
    if not (link.is_symlink() and link.resolve() == ws.model.path.resolve()):
        link.unlink(missing_ok=True)
        os.symlink(ws.model.path.resolve(), link)
    log = work / (f"log_m{ws.model_sha256[:12]}_d{ws.dataset.sha256[:12]}"
                  f"_p{percentile}_b{batch_size}")
    return {"path_wd": work, "dataset_path": ws.toolbox_data(), "filename_ann": link.stem,
            "log_dir_of_current_run": log}


def result_name(timesteps, simulator="INI"):
    """convert_T<T>.json for the toolbox's INI, convert_T<T>_fast.json for SIM=fast."""
    return f"convert_T{timesteps}_{FAST}.json" if simulator == FAST else f"convert_T{timesteps}.json"


def render_config(ws, timesteps, num_samples, simulator="INI", overrides=None):
    batch_size = workspace.batch_size_for(num_samples)
    return configs.render(ws.run, timesteps, num_samples, batch_size,
                          toolbox_paths(ws, batch_size), simulator=simulator,
                          seed=ws.record["seed"], overrides=overrides)


def ann_accuracies(model_path, x_test, y_test, num_samples):
    """ANN accuracy on the simulated samples and on the whole test set."""
    model = train.load(model_path)
    predictions = train.predict(model, x_test)
    correct = predictions == y_test
    return float(correct[:num_samples].mean()), float(correct.mean())


def provenance(config_path, dataset_name, dataset_sha, model_path, seed):
    return {
        "config": str(config_path),
        "config_sha256": results.file_sha256(config_path),
        "dataset": {"name": dataset_name, "sha256": dataset_sha},
        "model": {"path": str(model_path), "sha256": results.file_sha256(model_path)},
        "seed": seed,
        "versions": results.versions(),
    }


def result_record(stage, run: toolbox.ToolboxRun, ann_same, ann_test, wall_seconds, provenance_fields):
    return {
        "stage": stage,
        "simulator": run.simulator,
        "timesteps": run.timesteps,
        "num_samples": run.num_samples,
        "ann_accuracy": ann_same,
        "ann_accuracy_test": ann_test,
        "snn_accuracy": run.accuracy,
        "accuracy_per_timestep": [float(a) for a in run.accuracy_per_timestep],
        "wall_seconds": wall_seconds,
        "toolbox_seconds": run.seconds,
        **provenance_fields,
    }


def print_summary(record):
    acc = record["accuracy_per_timestep"]
    steps = sorted({max(1, len(acc) * k // 10) for k in (1, 2, 5)} | {len(acc)})
    print(f"\n{record['simulator']} simulation of {record['num_samples']} test samples "
          f"({record['wall_seconds']:.0f} s)")
    print(f"  {'':14}{'accuracy':>10}")
    print(f"  {'ANN':14}{record['ann_accuracy']:>10.4f}   (whole test set: {record['ann_accuracy_test']:.4f})")
    for t in steps:
        print(f"  {'SNN T=' + str(t):14}{acc[t - 1]:>10.4f}")


def check_fast(config):
    """Refuse an ini whose settings the fast simulation does not reproduce, naming the key."""
    merged = configs.merged(config.path)
    for (section, key), wanted in FAST_REQUIRES.items():
        raw = merged.get(section, key)
        if isinstance(wanted, bool):
            same = merged.getboolean(section, key) == wanted
        elif isinstance(wanted, int):
            same = float(raw) == wanted
        else:
            same = raw.strip() == wanted
        if not same:
            raise UserError(f"{config.path}: [{section}] {key} = {raw!r}: SIM=fast reproduces INI only with "
                            f"{key} = {wanted} (run it with SIM=INI)")


def fast_network(config):
    """The engine INI-compatible for ``config``, with its samples and labels, and the scale factors.

    Same model and samples as the toolbox (the first ``num_to_test`` of its x_test.npz), the
    toolbox's normalised weights (`snn.toolbox_normalised_model`, thresholds 1) and INI's
    semantics (`snn.SnnSettings.ini_compatible`, the ini's batch size and seed).
    """
    check_fast(config)
    model = snn.load_keras(config.path_wd / f"{config.filename_ann}.h5")
    factors = toolbox.scale_factors(config) if config.normalize else {}
    if factors:
        model = snn.toolbox_normalised_model(model, factors)
    x = np.load(config.dataset_path / "x_test.npz")["arr_0"][:config.num_to_test]
    labels = np.argmax(np.load(config.dataset_path / "y_test.npz")["arr_0"][:config.num_to_test], axis=1)
    settings = snn.SnnSettings.ini_compatible(config.duration, coding="poisson" if config.poisson_input else "analog",
                                              batch_size=config.batch_size, seed=config.seed)
    return snn.SpikingNetwork(model, settings=settings), x, labels, factors


def fast_run(config, progress=True):
    """The engine's fast simulation (`fast_network`) in INI's place, returned as INI's run would be.

    Poisson input replays the toolbox's NumPy draws (`snn.toolbox_poisson_replay`), so both
    agree spike for spike up to float rounding.
    """
    start = time.perf_counter()
    network, x, labels, factors = fast_network(config)
    seconds = {"normalize": time.perf_counter() - start}
    replay = snn.toolbox_poisson_replay(config.seed) if config.poisson_input else None
    start = time.perf_counter()
    result = network.simulate(x, labels, progress=progress, input_frames=replay, fast=True)
    seconds["simulate"] = time.perf_counter() - start
    return toolbox.ToolboxRun(simulator=FAST, timesteps=config.duration, num_samples=len(labels), labels=labels,
                              output_counts=np.transpose(result.outputs, (0, 2, 1)), seconds=seconds,
                              scale_factors=factors)


def run_config(config_path, out_path, dataset_name=None, dataset_sha=None, stage="convert", progress=True,
               simulator="INI"):
    """Run one validated ini through the toolbox (or, ``simulator="fast"``, the engine); write its result JSON."""
    start = time.perf_counter()
    config = configs.validate(config_path)
    sim = fast_run(config, progress=progress) if simulator == FAST else toolbox.run(config, progress=progress)
    x_test = np.load(config.dataset_path / "x_test.npz")["arr_0"]
    y_test = np.argmax(np.load(config.dataset_path / "y_test.npz")["arr_0"], axis=1)
    model_path = config.path_wd / f"{config.filename_ann}.h5"
    ann_same, ann_test = ann_accuracies(model_path, x_test, y_test, sim.num_samples)
    record = result_record(stage, sim, ann_same, ann_test, time.perf_counter() - start,
                           provenance(config.path, dataset_name or config.dataset_path.name,
                                      dataset_sha or results.file_sha256(config.dataset_path / "x_test.npz"),
                                      model_path.resolve(), config.seed))
    results.write_json(out_path, record)
    return record


def main(settings: Settings):
    if settings.config:
        config = configs.validate(settings.config)
        out = results.run_dir(settings.run) / result_name(config.duration, settings.sim)
        record = run_config(Path(settings.config).resolve(), out, simulator=settings.sim)
    else:
        if settings.timesteps is None:
            raise UserError("T is required: make convert T=300")
        ws = workspace.prepare(settings)
        n = workspace.check_num_samples(settings.num_samples or min(DEFAULT_N, len(ws.dataset.y_test)),
                                        ws.dataset)
        config_path = render_config(ws, settings.timesteps, n)
        out = ws.dir / result_name(settings.timesteps, settings.sim)
        record = run_config(config_path, out, ws.dataset.name, ws.dataset.sha256, simulator=settings.sim)
    print_summary(record)
    print(f"  -> {out}")
    return record
