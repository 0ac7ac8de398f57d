"""The sweep stage: SNN accuracy vs timesteps (seed Table 2), plus the original ANN for Table 1.

With constant input the INI dynamics are causal, so the accuracy at step t of a
run of length max(TS) equals the final accuracy of a run of length t: one run
answers every T. With Poisson input each T is its own run. Finished runs are
convert_T<T>.json files of the RUN and are reused while model, samples and
config match; an interrupted per-T sweep resumes at the first missing T.
SIM=fast simulates with the engine instead of the toolbox (convert_T<T>_fast.json).
"""
import csv
import io

from pipeline import UserError, records, results, stats, workspace
from pipeline.settings import Settings
from pipeline.toolbox import configs, simulate
from pipeline.training import ann


def reusable(path, model_sha, num_samples, config_path, simulator="INI"):
    """A finished run at `path` made by the same simulator from the same model, samples and (rendered) config."""
    if not path.exists():
        return None
    record = records.ConvertRecord.read(path)
    return record if record.reusable(model_sha, num_samples, results.file_sha256(config_path), simulator) else None


def run_or_reuse(ws, timesteps, num_samples, force=False, simulator="INI"):
    """convert_T<T>[_fast].json for this RUN, reused when it matches, run otherwise."""
    config_path = workspace.render_config(ws, timesteps, num_samples)
    out = ws.dir / simulate.result_name(timesteps, simulator)
    record = None if force else reusable(out, ws.model_sha256, num_samples, config_path, simulator)
    if record is None:
        record = simulate.run_config(config_path, out, ws.dataset.name, ws.dataset.sha256, simulator=simulator)
    return record


def table_rows(settings, ws, num_samples):
    """Table 2's (T, ANN, SNN) rows, the per-step curve of the longest run, where the rows come
    from, and the record of the longest T (its paired SNN-vs-ANN test)."""
    timesteps = sorted(set(settings.timesteps_list))
    probe = configs.validate(workspace.render_config(ws, max(timesteps), num_samples))
    if not probe.poisson_input:
        record = run_or_reuse(ws, max(timesteps), num_samples, settings.force, settings.sim)
        curve = record.accuracy_per_timestep
        source = f"one constant-input run at T={max(timesteps)} ({simulate.result_name(max(timesteps), settings.sim)})"
        return [(t, record.ann_accuracy, curve[t - 1]) for t in timesteps], curve, source, record
    rows = []
    for t in timesteps:
        record = run_or_reuse(ws, t, num_samples, settings.force, settings.sim)
        rows.append((t, record.ann_accuracy, record.snn_accuracy))
    return rows, record.accuracy_per_timestep, "one Poisson-input run per T", record


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
    if not settings.timesteps_list:
        raise UserError("TS is required: make sweep TS=\"50 75 100 200 300\"")
    ws = workspace.prepare(settings)
    n = workspace.test_samples(settings, ws)
    rows, curve, source, longest = table_rows(settings, ws, n)
    write_table(ws, rows, curve, source, n, settings.sim, longest)
    print(f"\nTable 2 ({source}):")
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
