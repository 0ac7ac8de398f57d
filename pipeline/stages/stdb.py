"""The stdb and stdb-sweep stages: convert, fine-tune with STDB (`pipeline.training.stdb`), export,
check the export on SNN Toolbox; Table 3 over several T."""
import dataclasses
import multiprocessing
import os
import time

import numpy as np

from pipeline import UserError, conversion, engine, plots, records, results, stats, workspace
from pipeline.toolbox import configs, runner
from pipeline.training import ann, stdb

TABLE3_ACCURACIES = ("ann_accuracy", "snn_accuracy_before", "snn_accuracy")
TABLE3_COLUMNS = ("ann_accuracy", "timesteps", "leak", "snn_accuracy_before", "snn_accuracy", "best_epoch",
                  "num_samples") + tuple(f"{name}_{end}" for name in TABLE3_ACCURACIES for end in ("lo", "hi"))


def _key(ws, settings, n, ntrain):
    """What a finished stdb_T<T>.json must match to be reused by a sweep (`records.StdbKey`)."""
    return records.StdbKey.of(settings, ws.model_sha256, n, ntrain, stdb.SELECTION)


def _checkpoint(ws, settings, timesteps, n, ntrain, writer):
    """results/<RUN>/stdb_T<T>.ckpt.npz, resumed only by a run with the same signature (model, data,
    T, samples, every STDB setting); FORCE=1 starts again from epoch 1. ``writer``: this process
    writes it (not a cluster's other workers)."""
    checkpoint = stdb.Checkpoint(ws.dir / f"stdb_T{timesteps}.ckpt.npz",
                                 {**_key(ws, settings, n, ntrain).to_dict(), "timesteps": timesteps,
                                  "dataset_sha256": ws.dataset.sha256, "seed": int(ws.record["seed"])}, writer)
    if settings.force:
        checkpoint.remove()
    return checkpoint


def _toolbox_check(ws, export_path, timesteps, n, coding):
    """Run the exported (threshold-folded) network on SNN Toolbox INI with normalize = False: its
    final prediction per test sample, and the ini."""
    batch = workspace.batch_size_for(n)
    paths = workspace.toolbox_paths(ws, batch)
    link = paths["path_wd"] / export_path.name
    link.unlink(missing_ok=True)
    os.symlink(export_path.resolve(), link)
    sha = results.file_sha256(export_path)
    paths.update(filename_ann=link.stem, log_dir_of_current_run=paths["path_wd"] / f"log_stdb_m{sha[:12]}_b{batch}")
    config = configs.render(f"{ws.run}_stdb", timesteps, n, batch, paths, ws.folders.configs, seed=ws.record["seed"],
                            overrides={("tools", "normalize"): False,
                                       ("input", "poisson_input"): coding == "poisson"})
    run = runner.run(configs.validate(config), progress=True)
    return run.predictions_per_timestep[:, -1], str(config)


def run_stdb(settings, ws, timesteps):
    """Convert, fine-tune with STDB at `timesteps`, export, check on the toolbox; write stdb_T<T>.json.

    In a `TF_CONFIG` cluster every worker trains (its share of each batch) and only the chief
    measures, exports and writes; the others return None.
    """
    workspace.refuse_weight_training(ws, "STDB")
    start = time.perf_counter()
    strategy = stdb.distribution_strategy()
    chief = stdb.worker_index(strategy) == 0
    n = workspace.test_samples(settings, ws)
    seed = int(ws.record["seed"])
    train_idx, val_idx = workspace.training_split(ws, settings.ntrain or workspace.STDB_TRAINING_SAMPLES)
    ntrain = len(train_idx)
    x_train, y_train = ws.dataset.x_train[train_idx], ws.dataset.y_train[train_idx]
    x_val, y_val = ws.dataset.x_train[val_idx], ws.dataset.y_train[val_idx]
    x_test, y_test = ws.dataset.x_test[:n], ws.dataset.y_test[:n]
    stdb_settings = stdb.StdbSettings(**settings.stdb_choices(), seed=seed)

    ann_model = ann.load(ws.model.path)
    ann_predictions = ann.predict(ann_model, ws.dataset.x_test)
    engine_settings = engine.SnnSettings(timesteps=timesteps, leak=settings.leak, **settings.input_coding(),
                                      seed=seed, batch_size=stdb_settings.batch_size)
    with strategy.scope():   # the network's variables live on every replica
        network, source = conversion.converted(ws, engine_settings, settings.thresholds)
        if chief:
            print(f"STDB at T={timesteps}: {ntrain} training samples, the best epoch chosen on {len(val_idx)} "
                  f"validation samples, {n} test samples, {strategy.num_replicas_in_sync} replica(s); {source}")
        before = network.simulate(x_test, y_test) if chief else None   # predictions for the paired test
        checkpoint = _checkpoint(ws, settings, timesteps, n, ntrain, writer=chief)
        outcome = stdb.train(network, x_train, y_train, x_val, y_val, stdb_settings, progress=chief,
                             checkpoint=checkpoint)
        if not chief:
            return None
        # the test set measures the chosen epoch once; epoch 0 is the converted network, measured already
        final = before if outcome.best_epoch == 0 else network.simulate(x_test, y_test)

    export_path = ws.dir / f"stdb_T{timesteps}.h5"
    stdb.export_h5(network, export_path)
    folded = stdb.foldable(network)
    if folded:
        toolbox_predictions, toolbox_config = _toolbox_check(ws, export_path, timesteps, n, settings.coding)
        toolbox = {**stats.scored("toolbox_export_accuracy", toolbox_predictions, y_test),
                   "toolbox_export_note": "SNN Toolbox INI on the exported .h5 (thresholds folded, normalize = False): "
                                          "its pools spike, it counts output spikes and uses its own Poisson rule, "
                                          "so it differs from the engine's linear pools and membrane readout"}
    else:   # SNN Toolbox runs no merge or linear layer (`runner.refuse_unrunnable`)
        toolbox_predictions, toolbox_config = None, None
        toolbox = {"toolbox_export_accuracy": None, "toolbox_export_accuracy_interval": None,
                   "toolbox_export_note": "not run: SNN Toolbox cannot run this graph (a merge or a linear layer); "
                                          "the export keeps its weights, the thresholds are in this record"}
    compared = {"snn": final.predictions[:, -1], "ann": ann_predictions[:n], "snn_before": before.predictions[:, -1]}
    if toolbox_predictions is not None:
        compared["toolbox_export"] = toolbox_predictions
    per_epoch = [record.seconds for record in outcome.history]
    record = records.StdbRecord(
        stage="stdb", simulator="engine", timesteps=timesteps, num_samples=n,
        **stats.ann_scores(ann_predictions, ws.dataset.y_test, n),
        **stats.with_intervals({"snn_accuracy_before": before.accuracy, "snn_accuracy": final.accuracy},
                               ("snn_accuracy_before", "snn_accuracy"), n),
        improvement=final.accuracy - before.accuracy,
        validation_samples=len(val_idx),
        **stats.with_intervals({"validation_accuracy_before": outcome.validation_before,
                                "validation_accuracy": outcome.validation_after},
                               ("validation_accuracy_before", "validation_accuracy"), len(val_idx)),
        **stats.scored("ann_validation_accuracy", ann.predict(ann_model, x_val), y_val),
        accuracy_per_timestep=[float(a) for a in final.accuracy_per_timestep],
        **stats.comparison(y_test, compared, pairs=(("snn", "ann"), ("snn", "snn_before"))),
        best_epoch=outcome.best_epoch, leak=settings.leak, surrogate=settings.surrogate,
        learning_rate=settings.lr, stdb_epochs=settings.stdb_epochs, ntrain=ntrain,
        train_thresholds=settings.train_thresholds, train_leak=settings.train_leak,
        neuron_lr=settings.neuron_lr, sparsity=settings.sparsity,
        thresholds_mode=settings.thresholds, threshold_source=source,
        coding=settings.coding, poisson_rule=engine_settings.poisson_rule,
        pooling=engine_settings.pooling, readout=engine_settings.readout,
        initial_membrane=engine_settings.initial_membrane,
        history=outcome.history_dicts(), seconds_per_epoch=float(np.mean(per_epoch)),
        peak_memory_mb=outcome.peak_memory_mb, wall_seconds=time.perf_counter() - start,
        thresholds=outcome.thresholds, leaks=outcome.leaks,
        exported_model=str(export_path), exported_folded=folded, **toolbox, config=toolbox_config, signature=_key(ws, settings, n, ntrain),
        **ws.provenance(),
    )
    record.write(ws.dir / f"stdb_T{timesteps}.json")
    checkpoint.remove()   # the result is written: a rerun trains again (or a sweep reuses the result)
    plots.stdb_curves(ws.dir / f"stdb_T{timesteps}_curves.png", record)
    return record


def print_rows(records):
    """Per T: the accuracies (with interval and N), the best epoch, the cost."""
    print()
    for r in records:
        print(f"  T={r.timesteps}: ANN {stats.format_recorded(r, 'ann_accuracy')}, SNN before "
              f"{stats.format_recorded(r, 'snn_accuracy_before')}, STDB {stats.format_recorded(r, 'snn_accuracy')} "
              f"(best epoch {r.best_epoch}, chosen on validation "
              f"{stats.format_recorded(r, 'validation_accuracy', r.validation_samples)}), "
              f"toolbox (export) {stats.format_recorded(r, 'toolbox_export_accuracy')}; "
              f"{r.seconds_per_epoch:.0f} s/epoch, peak {r.peak_memory_mb:.0f} MB")


def _train_one(settings, timesteps, threads, log):
    """A sweep's child process: one T, its output in ``log``, in the parent's output folders (its
    settings' OUT) and RUN (which the parent holds), on ``threads`` threads."""
    with open(log, "w", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        results.held_by_parent(settings.run, results.Folders.under(settings.out))
        main(dataclasses.replace(settings, stage="stdb", timesteps=timesteps, force=False, jobs=1))


def _train_in_parallel(settings, ws, timesteps):
    """Train the sweep's T values as JOBS processes at a time (cores / JOBS threads each); each
    writes its stdb_T<T>.json and logs to stdb_T<T>.log. A failure stops the sweep in one line."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // settings.jobs)
    waiting, running = list(timesteps), {}
    print(f"STDB sweep: T = {' '.join(map(str, timesteps))}, {settings.jobs} at a time, {threads} thread(s) each; "
          f"logs in {ws.dir}/stdb_T<T>.log", flush=True)
    if settings.force:                        # FORCE retrains: the children must not resume or reuse
        for t in timesteps:
            (ws.dir / f"stdb_T{t}.ckpt.npz").unlink(missing_ok=True)
    try:
        while waiting or running:
            while waiting and len(running) < settings.jobs:
                t = waiting.pop(0)
                child = context.Process(target=_train_one, args=(settings, t, threads, ws.dir / f"stdb_T{t}.log"))
                child.start()
                running[t] = child
            time.sleep(1)
            for t, child in list(running.items()):
                if child.exitcode is None:
                    continue
                del running[t]
                if child.exitcode != 0:
                    lines = (ws.dir / f"stdb_T{t}.log").read_text(errors="replace").strip().splitlines()
                    raise UserError(f"STDB at T={t} failed (exit {child.exitcode}): {lines[-1] if lines else ''} "
                                    f"(log: {ws.dir / f'stdb_T{t}.log'})")
                print(f"  T={t} done", flush=True)
    finally:
        for child in running.values():
            child.terminate()
            child.join()


def main(settings):
    """`make stdb T=28`: one fine-tuning run."""
    if settings.timesteps is None:
        raise UserError("T is required: make stdb T=28")
    stdb.StdbSettings(**settings.stdb_choices())   # refuse bad settings before any work
    engine.SnnSettings(timesteps=settings.timesteps, leak=settings.leak, **settings.input_coding())
    strategy = stdb.distribution_strategy()   # first: a cluster's collective ops are set up as TF starts
    ws = workspace.prepare(settings, lock=stdb.worker_index(strategy) == 0)
    record = run_stdb(settings, ws, settings.timesteps)
    if record is None:                        # a cluster's other worker: the chief reports
        return None
    print_rows([record])
    print(f"  STDB changed accuracy by {record.improvement:+.4f} (before "
          f"{stats.format_recorded(record, 'snn_accuracy_before')}, after {stats.format_recorded(record, 'snn_accuracy')}"
          f"; paired: {stats.format_mcnemar(record.snn_vs_snn_before_mcnemar)}); "
          f"ANN {stats.format_recorded(record, 'ann_accuracy')}; -> {ws.dir / f'stdb_T{settings.timesteps}.json'}")
    return record


def sweep_main(settings):
    """`make stdb-sweep TS="..."`: Table 3, one STDB run per T; finished runs are reused."""
    import csv
    import io
    if not settings.timesteps_list:
        raise UserError("TS is required: make stdb-sweep TS=\"5 10 15 20 25 28 35 50 75 100\"")
    stdb.StdbSettings(**settings.stdb_choices())
    engine.SnnSettings(timesteps=max(settings.timesteps_list), leak=settings.leak, **settings.input_coding())
    strategy = stdb.distribution_strategy()
    chief = stdb.worker_index(strategy) == 0
    ws = workspace.prepare(settings, lock=chief)
    n = workspace.test_samples(settings, ws)
    ntrain = len(workspace.training_split(ws, settings.ntrain or workspace.STDB_TRAINING_SAMPLES)[0])

    def finished(t, fresh=False):
        """stdb_T<t>.json if it is this sweep's (FORCE: only when ``fresh``, written by it just now)."""
        path = ws.dir / f"stdb_T{t}.json"
        old = records.StdbRecord.read(path) if path.exists() and (fresh or not settings.force) else None
        return old if old is not None and old.signature == _key(ws, settings, n, ntrain) else None

    timesteps = sorted(set(settings.timesteps_list))
    todo = [t for t in timesteps if finished(t) is None]
    parallel = settings.jobs > 1 and len(todo) > 1 and strategy.num_replicas_in_sync == 1
    if parallel:
        _train_in_parallel(settings, ws, todo)
    runs = [finished(t, fresh=parallel and t in todo) or run_stdb(settings, ws, t) for t in timesteps]
    if not chief:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE3_COLUMNS)
    writer.writerows([[row[c] for c in TABLE3_COLUMNS] for row in
                      ({**r, **stats.bounds(r, TABLE3_ACCURACIES, r.num_samples)} for r in runs)])
    results.write_atomic(ws.dir / "table3.csv", buffer.getvalue())
    trained = ["weights"] + ["thresholds"] * settings.train_thresholds + ["leaks"] * settings.train_leak
    lines = [f"**Table 3. ANN to SNN + STDB** ({n} test samples, {ntrain} training samples, "
             f"{settings.stdb_epochs} epochs, {settings.surrogate} surrogate, {settings.coding} input, "
             f"{', '.join(trained)} trained, "
             "engine with linear pools and membrane readout)", "",
             "Accuracy [95 % Wilson interval] (N samples); STDB vs SNN only: the exact McNemar test on the same "
             "samples (samples only one of them gets right, p). Best Epoch 0: no trained epoch beat the "
             "converted network on validation, so it is kept (STDB = SNN only).", "",
             "| ANN Accuracy | Timesteps | Leak | SNN only Accuracy | SNN STDB Accuracy | Best Epoch "
             "| STDB vs SNN only |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {stats.format_recorded(r, 'ann_accuracy')} | {r.timesteps} | {r.leak} | "
              f"{stats.format_recorded(r, 'snn_accuracy_before')} | {stats.format_recorded(r, 'snn_accuracy')} | "
              f"{r.best_epoch} | {stats.format_mcnemar(r.snn_vs_snn_before_mcnemar)} |" for r in runs]
    results.write_atomic(ws.dir / "table3.md", "\n".join(lines) + "\n")
    print_rows(runs)
    print(f"  -> {ws.dir / 'table3.md'}")
    return runs
