"""The sweep stage: SNN accuracy vs timesteps (seed Table 2), plus the original ANN for Table 1.

With constant input the INI dynamics are causal, so the accuracy at step t of a
run of length max(TS) equals the final accuracy of a run of length t: one run
answers every T. With Poisson input each T is its own run. Finished runs are
convert_T<T>.json files of the RUN and are reused while model, samples and
config match; an interrupted per-T sweep resumes at the first missing T.
SIM=fast simulates with the engine instead of the toolbox (convert_T<T>_fast.json).

SEEDS="0 1 2" runs the sweep once per training seed, each in its own RUN `<RUN>-seed<s>` exactly as a
one-seed sweep (`pipeline.seeds`), and writes table2_seeds.{json,md,png} in results/<RUN>/: each seed's
rows and the mean across seeds with its t interval. EXECUTOR=tcp://host:port sends the runs to simulate
(every seed's, at once) to the workers of that Dask scheduler (`pipeline.cluster`): each runs its ini
and returns the record, which this process writes; the numbers are those of a local run.
"""
import csv
import io

from pipeline import UserError, cluster, frontier, records, results, seeds, stats, workspace
from pipeline.settings import Settings
from pipeline.toolbox import configs, runner, simulate
from pipeline.training import ann


def reusable(path, model_sha, num_samples, config_path, simulator="INI"):
    """A finished run at `path` made by the same simulator from the same model, samples and (rendered) config."""
    if not path.exists():
        return None
    record = records.ConvertRecord.read(path)
    return record if record.reusable(model_sha, num_samples, results.file_sha256(config_path), simulator) else None


def run_or_reuse(ws, timesteps, num_samples, force=False, simulator="INI", fresh=()):
    """convert_T<T>[_fast].json for this RUN, reused when it matches (with FORCE, only when it is in ``fresh``:
    written by this run's cluster), run otherwise."""
    config_path = workspace.render_config(ws, timesteps, num_samples)
    out = ws.dir / simulate.result_name(timesteps, simulator)
    record = None if force and out not in fresh else reusable(out, ws.model_sha256, num_samples, config_path,
                                                               simulator)
    if record is None:
        record = simulate.run_config(config_path, out, ws.dataset.name, ws.dataset.sha256, simulator=simulator)
    return record


def simulated_timesteps(settings, ws, num_samples):
    """The T values the sweep simulates and whether its input is constant: with constant input the INI
    dynamics are causal, so one run at max(TS) answers every T; with Poisson input each T is its own run."""
    timesteps = sorted(set(settings.timesteps_list))
    probe = configs.validate(workspace.render_config(ws, max(timesteps), num_samples))
    return ([max(timesteps)], True) if not probe.poisson_input else (timesteps, False)


def table_rows(settings, ws, num_samples, fresh=()):
    """Table 2's (T, ANN, SNN) rows, the per-step curve of the longest run, where the rows come
    from, and the record of the longest T (its paired SNN-vs-ANN test)."""
    timesteps = sorted(set(settings.timesteps_list))
    simulated, constant = simulated_timesteps(settings, ws, num_samples)
    if constant:
        record = run_or_reuse(ws, max(timesteps), num_samples, settings.force, settings.sim, fresh)
        curve = record.accuracy_per_timestep
        source = f"one constant-input run at T={max(timesteps)} ({simulate.result_name(max(timesteps), settings.sim)})"
        return [(t, record.ann_accuracy, curve[t - 1]) for t in timesteps], curve, source, record
    rows = []
    for t in simulated:
        record = run_or_reuse(ws, t, num_samples, settings.force, settings.sim, fresh)
        rows.append((t, record.ann_accuracy, record.snn_accuracy))
    return rows, record.accuracy_per_timestep, "one Poisson-input run per T", record


def prefetch(executor, prepared):
    """EXECUTOR=tcp://...: every run ``prepared`` (``(settings, workspace, N)`` per seed) needs and has not
    finished, simulated on the cluster's workers at once (one task per ini, named by its content, model and
    simulator) and written here as each returns; the paths written, which `table_rows` then reads."""
    jobs, paths = {}, {}
    for settings, ws, n in prepared:
        for t in simulated_timesteps(settings, ws, n)[0]:
            config_path = workspace.render_config(ws, t, n)
            out = ws.dir / simulate.result_name(t, settings.sim)
            if not settings.force and reusable(out, ws.model_sha256, n, config_path, settings.sim):
                continue
            config = configs.validate(config_path)
            if config.normalize:    # the toolbox's scale factors, computed once here: the workers only read them
                runner.scale_factors(config)
            key = "sweep-" + frontier.cell_key(config=results.file_sha256(config_path), model=ws.model_sha256,
                                               simulator=settings.sim)
            jobs[key] = (str(config_path), ws.dataset.name, ws.dataset.sha256, "convert", False, settings.sim)
            paths[key] = out
    if not jobs:
        return set()
    print(f"  {len(jobs)} runs to {executor.workers()} Dask workers at {executor.address}", flush=True)
    for key, record in executor.run(simulate.config_record, jobs):
        record.write(paths[key])
    return set(paths.values())


def original_ann(settings, ws):
    """Train the published ESCAPE-NET (max pooling, biases, batch norm) on the RUN's data."""
    trained = workspace.prepare(settings, variant="original").model
    y_test = ws.dataset.y_test
    original = ann.test_predictions(trained.path, ws.dataset.x_test)
    modified = ann.test_predictions(ws.model.path, ws.dataset.x_test)
    record = records.AnnOriginalRecord(
        variant="original", **stats.scored("ann_accuracy_test", original, y_test),
        **stats.scored("modified_ann_accuracy_test", modified, y_test), num_test_samples=len(y_test),
        **stats.comparison(y_test, {"original": original, "modified": modified}, pairs=(("original", "modified"),)),
        model={"path": str(trained.path), "sha256": results.file_sha256(trained.path)},
        dataset={"name": ws.dataset.name, "sha256": ws.dataset.sha256},
        train_seconds=trained.info["train_seconds"], epochs=trained.info["epochs"])
    record.write(ws.dir / "ann_original.json")
    return record


def write_table(ws, rows, curve, source, num_samples, simulator, longest):
    """table2.csv (accuracies, N and interval bounds), table2.md (accuracies with N and interval,
    the paired test at the longest T) and table2.png."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = ("ann_accuracy", "snn_accuracy")
    writer.writerow(["timesteps", *names, "num_samples", *(f"{name}_{end}" for name in names for end in ("lo", "hi"))])
    for t, ann_acc, snn_acc in rows:
        writer.writerow([t, ann_acc, snn_acc, num_samples,
                         *stats.bounds(dict(zip(names, (ann_acc, snn_acc))), names, num_samples).values()])
    results.write_atomic(ws.dir / "table2.csv", buffer.getvalue())
    lines = [f"**Table 2. ANN to SNN only ({simulator}, {num_samples} test samples; {source})**", "",
             "Accuracy [95 % Wilson interval] (N samples).", "",
             "| Timesteps | ANN Accuracy | ANN to SNN only |", "|---|---|---|"]
    lines += [f"| {t} | {stats.format_accuracy(ann_acc, num_samples)} | {stats.format_accuracy(snn_acc, num_samples)} |"
              for t, ann_acc, snn_acc in rows]
    lines += ["", f"SNN vs ANN at T={longest.timesteps} on the same samples (exact McNemar test): "
                  f"{stats.format_mcnemar(longest.snn_vs_ann_mcnemar)}."]
    results.write_atomic(ws.dir / "table2.md", "\n".join(lines) + "\n")
    from pipeline import plots
    plots.accuracy_vs_timesteps(ws.dir / "table2.png", rows, curve, simulator, num_samples)


def main(settings: Settings):
    """`make sweep`: its runs here (EXECUTOR=local) or on the workers of a Dask scheduler, reached first so a
    wrong address fails before any training."""
    if not settings.timesteps_list:
        raise UserError("TS is required: make sweep TS=\"50 75 100 200 300\"")
    if settings.executor == "local":
        return sweep_stage(settings)
    with cluster.Cluster(settings.executor) as executor:
        return sweep_stage(settings, executor)


def sweep_stage(settings, executor=None):
    """The sweep of every seed (SEEDS unset: the RUN's one) on ``executor`` (`cluster.Cluster`; None: this
    process), then, with SEEDS, the table across seeds: that record, else None."""
    runs = seeds.per_seed(settings)
    if settings.seeds is not None:      # results/<RUN>/ holds the across-seed table: one stage at a time
        results.hold_run(settings.run, results.Folders.under(settings.out))
    prepared = []
    for _, s in runs:
        ws = workspace.prepare(s)
        prepared.append((s, ws, workspace.test_samples(s, ws)))
    fresh = prefetch(executor, prepared) if executor is not None else set()
    tables = [one_seed(s, ws, n, fresh, named=settings.seeds is not None) for s, ws, n in prepared]
    if settings.seeds is None:
        return None
    return across_seeds(settings, [ws for _, ws, _ in prepared], tables)


def one_seed(settings, ws, n, fresh=(), named=False):
    """Table 2 (and Table 1's original ESCAPE-NET) of one RUN, written and printed as ever (``named``: the
    RUN named in the title, one of several seeds'): its rows, N and the record of the longest T."""
    rows, curve, source, longest = table_rows(settings, ws, n, fresh)
    write_table(ws, rows, curve, source, n, settings.sim, longest)
    print(f"\nTable 2{f' of RUN={ws.run}' if named else ''} ({source}):")
    print(f"  {'T':>6}  {'ANN':<28}  SNN")
    for t, ann_acc, snn_acc in rows:
        print(f"  {t:>6}  {stats.format_accuracy(ann_acc, n):<28}  {stats.format_accuracy(snn_acc, n)}")
    print(f"  SNN vs ANN at T={longest.timesteps} (exact McNemar): {stats.format_mcnemar(longest.snn_vs_ann_mcnemar)}")
    if workspace.user_model(ws):   # Table 1's row compares ESCAPE-NET's two variants: not this model's
        print(f"  original ESCAPE-NET (Table 1): skipped, RUN={ws.run} runs on MODEL={workspace.user_model(ws)}")
    elif workspace.arch_of(ws.record) != workspace.DEFAULTS["arch"]:   # the published network is 2-D only
        print(f"  original ESCAPE-NET (Table 1): skipped, RUN={ws.run} runs on ARCH={workspace.arch_of(ws.record)}")
    else:
        original = original_ann(settings, ws)
        test_n = original.num_test_samples
        print(f"  original ESCAPE-NET (max pool, bias, BN): {stats.format_recorded(original, 'ann_accuracy_test', test_n)}"
              f" on the test set; modified: {stats.format_recorded(original, 'modified_ann_accuracy_test', test_n)}; "
              f"paired: {stats.format_mcnemar(original.original_vs_modified_mcnemar)}")
    print(f"  -> {ws.dir / 'table2.md'}")
    return rows, n, longest


def across_seeds(settings, workspaces, tables):
    """table2_seeds.{json,md,png} in results/<RUN>/: every seed's Table 2 rows (accuracies with their Wilson
    intervals; the paired test at the longest T) and the mean across seeds with its t interval."""
    per_seed = []
    for rows, n, longest in tables:
        per_seed.append([{"timesteps": t, **stats.with_intervals({"ann_accuracy": a, "snn_accuracy": p},
                                                                ("ann_accuracy", "snn_accuracy"), n),
                          **({"snn_vs_ann_mcnemar": longest.snn_vs_ann_mcnemar} if t == longest.timesteps else {})}
                         for t, a, p in rows])
    record = seeds.summary("sweep", settings.seeds, [ws.run for ws in workspaces], per_seed, ("timesteps",),
                           ("ann_accuracy", "snn_accuracy"), tables[0][1], carried=("snn_vs_ann_mcnemar",))
    folder = results.Folders.under(settings.out).run_dir(settings.run)
    lines = seeds.header(record, f"Table 2. ANN to SNN only ({settings.sim})") + seeds.table_lines(
        record, (("timesteps", "Timesteps"),), (("ann_accuracy", "ANN Accuracy", "accuracy"),
                                                ("snn_accuracy", "ANN to SNN only", "accuracy")),
        extra=(("SNN vs ANN (exact McNemar)", lambda e: stats.format_mcnemar(e.get("snn_vs_ann_mcnemar"))),))
    seeds.write(record, folder / "table2_seeds", lines)
    from pipeline import plots
    plots.across_seeds_vs_timesteps(folder / "table2_seeds.png", record, settings.sim)
    print(f"\nTable 2 across {len(settings.seeds)} seeds (mean ± {100 * record.confidence:g} % t interval over seeds):")
    for row in record.rows:
        print(f"  T={row.key['timesteps']:<6} ANN {stats.format_across(row.across['ann_accuracy'])}  "
              f"SNN {stats.format_across(row.across['snn_accuracy'])}")
    print(f"  -> {folder / 'table2_seeds.md'}")
    return record
