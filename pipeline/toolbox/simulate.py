"""One validated ini run on its simulator: SNN Toolbox's, or the engine's fast path in INI's place.

`run_config` is what `make convert` and `make sweep` do per T: run the ini (`runner.run`, or
`fast_run` for ``SIM=fast``), score the ANN on the same samples and write the result record.

The fast path runs the toolbox's own parsed, normalised model (`engine.toolbox_normalised_model`,
thresholds 1) with INI's semantics (`engine.SnnSettings.ini_compatible`), so both agree spike for
spike up to float rounding; an ini whose settings it does not reproduce is refused by key.
"""
import time

import numpy as np

from pipeline import UserError, conversion, engine, records, results, stats
from pipeline.toolbox import configs, runner
from pipeline.training import ann

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


def result_name(timesteps, simulator="INI"):
    """convert_T<T>.json for the toolbox's INI, convert_T<T>_fast.json for SIM=fast."""
    return f"convert_T{timesteps}_{FAST}.json" if simulator == FAST else f"convert_T{timesteps}.json"


def provenance(config_path, dataset_name, dataset_sha, model_path, seed):
    """`results.provenance` of an ini run, with the ini itself (path and content sha256)."""
    return {"config": str(config_path), "config_sha256": results.file_sha256(config_path),
            **results.provenance(dataset_name, dataset_sha, model_path, results.file_sha256(model_path), seed)}


def result_record(stage, run: runner.ToolboxRun, ann_predictions, y_test, wall_seconds, provenance_fields):
    """convert_T<T>.json: the SNN and the ANN (``ann_predictions``: its class for every test sample,
    ``y_test`` their labels) on the same simulated samples, each accuracy with its interval, their
    final per-sample predictions and the paired test."""
    snn = run.predictions_per_timestep[:, -1]
    return records.ConvertRecord(
        stage=stage,
        simulator=run.simulator,
        timesteps=run.timesteps,
        num_samples=run.num_samples,
        **stats.ann_scores(ann_predictions, y_test, run.num_samples),
        **stats.scored("snn_accuracy", snn, run.labels),
        accuracy_per_timestep=[float(a) for a in run.accuracy_per_timestep],
        **stats.comparison(run.labels, {"snn": snn, "ann": ann_predictions[:run.num_samples]}),
        wall_seconds=wall_seconds,
        toolbox_seconds=run.seconds,
        **provenance_fields,
    )


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
    """The engine INI-compatible for ``config``, with its samples and labels, and the scale factors
    (a model SNN Toolbox would parse into another network is refused where the ini normalises).

    Same model and samples as the toolbox (the first ``num_to_test`` of its x_test.npz), the
    toolbox's normalised weights (`engine.toolbox_normalised_model`, thresholds 1) and INI's
    semantics (`engine.SnnSettings.ini_compatible`, the ini's batch size and seed).
    """
    check_fast(config)
    path = config.path_wd / f"{config.filename_ann}.h5"
    model = engine.load_keras(path)
    found = runner.unrunnable(model, "INI") if config.normalize else None
    if found:   # the toolbox's scale factors would come from another network
        raise UserError(f"{path}: {found}; SIM=fast takes INI's normalisation from SNN Toolbox's scale factors, "
                        f"so run it with [tools] normalize = False (thresholds 1) in {config.path}")
    factors = runner.scale_factors(config) if config.normalize else {}
    if factors:
        model = engine.toolbox_normalised_model(model, factors)
    x = np.load(config.dataset_path / "x_test.npz")["arr_0"][:config.num_to_test]
    labels = np.argmax(np.load(config.dataset_path / "y_test.npz")["arr_0"][:config.num_to_test], axis=1)
    settings = engine.SnnSettings.ini_compatible(config.duration, coding="poisson" if config.poisson_input else "analog",
                                              batch_size=config.batch_size, seed=config.seed)
    return conversion.from_model(model, settings), x, labels, factors


def fast_run(config, progress=True):
    """The engine's fast simulation (`fast_network`) in INI's place, returned as INI's run would be.

    Poisson input replays the toolbox's NumPy draws (`engine.toolbox_poisson_replay`), so both
    agree spike for spike up to float rounding.
    """
    start = time.perf_counter()
    network, x, labels, factors = fast_network(config)
    seconds = {"normalize": time.perf_counter() - start}
    replay = engine.toolbox_poisson_replay(config.seed) if config.poisson_input else None
    start = time.perf_counter()
    result = network.simulate(x, labels, progress=progress, input_frames=replay, fast=True)
    seconds["simulate"] = time.perf_counter() - start
    return runner.ToolboxRun(simulator=FAST, timesteps=config.duration, num_samples=len(labels), labels=labels,
                              output_counts=np.transpose(result.outputs, (0, 2, 1)), seconds=seconds,
                              scale_factors=factors)


def run_config(config_path, out_path, dataset_name=None, dataset_sha=None, stage="convert", progress=True,
               simulator="INI"):
    """Run one validated ini through the toolbox (or, ``simulator="fast"``, the engine); write its result JSON."""
    record = config_record(config_path, dataset_name, dataset_sha, stage, progress, simulator)
    record.write(out_path)
    return record


def config_record(config_path, dataset_name=None, dataset_sha=None, stage="convert", progress=True,
                  simulator="INI"):
    """`run_config`'s result record, not written: what a cluster worker returns for the stage to write
    (`make sweep EXECUTOR=...`)."""
    start = time.perf_counter()
    config = configs.validate(config_path)
    sim = fast_run(config, progress=progress) if simulator == FAST else runner.run(config, progress=progress)
    x_test = np.load(config.dataset_path / "x_test.npz")["arr_0"]
    y_test = np.argmax(np.load(config.dataset_path / "y_test.npz")["arr_0"], axis=1)
    model_path = config.path_wd / f"{config.filename_ann}.h5"
    return result_record(stage, sim, ann.test_predictions(model_path, x_test), y_test, time.perf_counter() - start,
                         provenance(config.path, dataset_name or config.dataset_path.name,
                                    dataset_sha or results.file_sha256(config.dataset_path / "x_test.npz"),
                                    model_path.resolve(), config.seed))
