"""Sweep: one constant-input run answers every T; Poisson sweeps run per T and resume."""
import csv
import json

import pytest

from pipeline.toolbox import configs, simulate
from conftest import check_uncertainty
from pipeline.__main__ import main

COMMON = ["--width", "4", "--epochs", "3", "--run", "sw", "--num-samples", "20"]


@pytest.mark.slow
def test_sweep_rows_equal_separate_runs(sandbox, tiny_npz):
    assert main(["sweep", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps-list", "10 25 40", *COMMON]) == 0
    run = sandbox / "results" / "sw"
    with open(run / "table2.csv") as f:
        rows = {int(r["timesteps"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == [10, 25, 40]
    assert (run / "table2.png").stat().st_size > 0 and "| 25 |" in (run / "table2.md").read_text()
    original = json.loads((run / "ann_original.json").read_text())
    assert original["variant"] == "original" and original["num_test_samples"] == 60
    check_uncertainty(original, (("original", "ann_accuracy_test"), ("modified", "modified_ann_accuracy_test")),
                      (("original", "modified"),))
    table = (run / "table2.md").read_text()
    assert "(N=20) |" in table and "SNN vs ANN at T=40 on the same samples (exact McNemar test): snn_only" in table
    assert float(rows[25]["snn_accuracy_lo"]) <= float(rows[25]["snn_accuracy"]) <= float(rows[25]["snn_accuracy_hi"])
    # A separate short run gives exactly the long run's accuracy at that T.
    assert main(["convert", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps", "25", *COMMON]) == 0
    separate = json.loads((run / "convert_T25.json").read_text())
    assert float(rows[25]["snn_accuracy"]) == separate["snn_accuracy"]
    assert float(rows[25]["ann_accuracy"]) == separate["ann_accuracy"]


@pytest.mark.slow
def test_poisson_sweep_resumes_after_interruption(sandbox, tiny_npz, monkeypatch):
    template = sandbox / "poisson.ini"
    template.write_text(configs.TEMPLATE.read_text().replace("poisson_input = False", "poisson_input = True"))
    monkeypatch.setattr(configs, "TEMPLATE", template)
    real_run = simulate.run_config
    calls = []

    def interrupted_after_first(config_path, out, *args, **kwargs):
        calls.append(out.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(config_path, out, *args, **kwargs)

    monkeypatch.setattr(simulate, "run_config", interrupted_after_first)
    args = ["sweep", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps-list", "10 20", *COMMON]
    assert main(args) == 130
    run = sandbox / "results" / "sw"
    assert (run / "convert_T10.json").exists() and not (run / "convert_T20.json").exists()
    assert not (run / "table2.csv").exists()

    calls.clear()
    monkeypatch.setattr(simulate, "run_config", real_run)
    counted = []
    monkeypatch.setattr(simulate, "run_config",
                        lambda p, out, *a, **k: counted.append(out.name) or real_run(p, out, *a, **k))
    assert main(args) == 0
    assert counted == ["convert_T20.json"]          # T=10 reused, only T=20 simulated
    assert "Poisson-input run per T" in (run / "table2.md").read_text()


def test_empty_or_bad_ts_is_refused(sandbox, capsys):
    assert main(["sweep", f"OUT={sandbox}", "--timesteps-list", "", "--run", "x"]) == 2
    assert main(["sweep", f"OUT={sandbox}", "--timesteps-list", "10 -5", "--run", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "TS is empty" in err[0] and "TS=-5 must be a positive integer" in err[1]
    assert not (sandbox / "results" / "x").exists()
