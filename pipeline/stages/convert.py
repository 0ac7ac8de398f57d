"""The convert stage: trained .h5 -> rendered ini -> SNN Toolbox simulation -> convert_T<T>.json.

`make convert T=300` reads top to bottom here: prepare the RUN (data, model), render the ini for
this T, run it (`toolbox.simulate.run_config`: the toolbox's INI, or with ``SIM=fast`` the
engine's fast path on the same ini), compare with the ANN on the same samples, write the result
atomically and print a summary.
"""
from pathlib import Path

from pipeline import UserError, results, stats, workspace
from pipeline.settings import Settings
from pipeline.toolbox import configs, simulate


def print_summary(record):
    """ANN and final SNN accuracy with N and 95 % interval, the SNN at a few earlier steps (bare),
    and the paired test of SNN vs ANN on the same samples."""
    acc, n = record.accuracy_per_timestep, record.num_samples
    steps = sorted({max(1, len(acc) * k // 10) for k in (1, 2, 5)})
    print(f"\n{record.simulator} simulation of {n} test samples ({record.wall_seconds:.0f} s)")
    print(f"  {'':14}accuracy [95 % interval]")
    print(f"  {'ANN':14}{stats.format_recorded(record, 'ann_accuracy')}   "
          f"(whole test set: {stats.format_recorded(record, 'ann_accuracy_test', record.num_test_samples)})")
    for t in steps:
        if t < len(acc):
            print(f"  {'SNN T=' + str(t):14}{acc[t - 1]:.3f}")
    print(f"  {'SNN T=' + str(len(acc)):14}{stats.format_recorded(record, 'snn_accuracy')}")
    print(f"  SNN vs ANN on the same samples (exact McNemar): {stats.format_mcnemar(record.snn_vs_ann_mcnemar)}")


def main(settings: Settings):
    if settings.config:
        config = configs.validate(settings.config)
        folders = results.Folders.under(settings.out)
        results.hold_run(settings.run, folders)   # the RUN's lock, as workspace.prepare takes it
        out = folders.run_dir(settings.run) / simulate.result_name(config.duration, settings.sim)
        record = simulate.run_config(Path(settings.config).resolve(), out, simulator=settings.sim)
    else:
        if settings.timesteps is None:
            raise UserError("T is required: make convert T=300")
        ws = workspace.prepare(settings)
        n = workspace.test_samples(settings, ws)
        config_path = workspace.render_config(ws, settings.timesteps, n)
        out = ws.dir / simulate.result_name(settings.timesteps, settings.sim)
        record = simulate.run_config(config_path, out, ws.dataset.name, ws.dataset.sha256, simulator=settings.sim)
    print_summary(record)
    print(f"  -> {out}")
    return record
