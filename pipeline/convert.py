"""The convert stage: trained .h5 -> rendered ini -> SNN Toolbox simulation -> convert_T<T>.json.

`make convert T=300` reads top to bottom here: prepare the RUN (data, model),
render the ini for this T, run the toolbox, compare with the ANN on the same
samples, write the result atomically and print a summary.
"""
import os
import time
from pathlib import Path

import numpy as np

from pipeline import UserError, configs, results, toolbox, train, workspace
from pipeline.settings import Settings

DEFAULT_N = 100


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


def run_config(config_path, out_path, dataset_name=None, dataset_sha=None, stage="convert", progress=True):
    """Run one validated ini through the toolbox and write its result JSON."""
    start = time.perf_counter()
    config = configs.validate(config_path)
    sim = toolbox.run(config, progress=progress)
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
        out = results.run_dir(settings.run) / f"convert_T{config.duration}.json"
        record = run_config(Path(settings.config).resolve(), out)
    else:
        if settings.timesteps is None:
            raise UserError("T is required: make convert T=300")
        ws = workspace.prepare(settings)
        n = workspace.check_num_samples(settings.num_samples or min(DEFAULT_N, len(ws.dataset.y_test)),
                                        ws.dataset)
        config_path = render_config(ws, settings.timesteps, n)
        out = ws.dir / f"convert_T{settings.timesteps}.json"
        record = run_config(config_path, out, ws.dataset.name, ws.dataset.sha256)
    print_summary(record)
    print(f"  -> {out}")
    return record
