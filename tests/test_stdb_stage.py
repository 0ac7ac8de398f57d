"""The stdb / stdb-sweep stages end to end on a tiny model, and their refusals."""
import csv
import json
import re

import pytest

from pipeline import engine
from pipeline.stages import stdb
from conftest import check_uncertainty
from pipeline.training import stdb as training_stdb
from pipeline.__main__ import main

COMMON = ["--width", "4", "--epochs", "3", "--run", "st", "--num-samples", "20", "--ntrain", "64",
          "--stdb-epochs", "2"]
FIELDS = {"stage", "simulator", "timesteps", "num_samples", "ann_accuracy", "ann_accuracy_test", "snn_accuracy",
          "accuracy_per_timestep", "wall_seconds", "config", "dataset", "model", "seed", "versions",
          "snn_accuracy_before", "best_epoch", "leak", "surrogate", "history", "peak_memory_mb",
          "exported_model", "thresholds", "toolbox_export_accuracy"}


@pytest.mark.slow
def test_stdb_stage_and_sweep(sandbox, tiny_npz, monkeypatch, capsys):
    assert main(["stdb", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps", "6", *COMMON]) == 0
    run = sandbox / "results" / "st"
    record = json.loads((run / "stdb_T6.json").read_text())
    assert FIELDS <= set(record)
    assert record["timesteps"] == 6 and len(record["accuracy_per_timestep"]) == 6
    candidates = [record["validation_accuracy_before"]] + [h["validation_accuracy"] for h in record["history"]]
    assert len(record["history"]) == 2 and record["best_epoch"] == candidates.index(max(candidates))   # first of equals
    assert record["validation_accuracy"] == max(candidates)
    assert record["validation_samples"] > 0
    assert record["validation_accuracy_interval"][0] <= record["validation_accuracy"]
    assert (run / "stdb_T6_curves.png").stat().st_size > 0 and (run / "stdb_T6.h5").exists()
    assert 0 <= record["toolbox_export_accuracy"] <= 1
    check_uncertainty(record, (("snn", "snn_accuracy"), ("ann", "ann_accuracy"), ("snn_before", "snn_accuracy_before"),
                               ("toolbox_export", "toolbox_export_accuracy")), (("snn", "ann"), ("snn", "snn_before")))

    assert not list(run.glob("*.ckpt.npz"))     # the checkpoint goes once the result is written

    ran = []
    real = stdb.run_stdb
    monkeypatch.setattr(stdb, "run_stdb", lambda s, ws, t: ran.append(t) or real(s, ws, t))
    save = training_stdb.Checkpoint.save

    def killed(self, settings, state):
        save(self, settings, state)
        raise KeyboardInterrupt
    monkeypatch.setattr(training_stdb.Checkpoint, "save", killed)   # killed after T=4's first epoch
    assert main(["stdb-sweep", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps-list", "4 6", *COMMON]) == 130
    assert [p.name for p in run.glob("*.ckpt.npz")] == ["stdb_T4.ckpt.npz"] and not (run / "stdb_T4.json").exists()
    monkeypatch.setattr(training_stdb.Checkpoint, "save", save)
    capsys.readouterr()
    assert main(["stdb-sweep", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps-list", "4 6", *COMMON]) == 0
    assert "STDB: resuming from" in capsys.readouterr().out
    assert ran == [4, 4]                  # T=6 reused from the stdb stage
    assert not list(run.glob("*.ckpt.npz")) and len(json.loads((run / "stdb_T4.json").read_text())["history"]) == 2
    with open(run / "table3.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(stdb.TABLE3_COLUMNS) and [r["timesteps"] for r in rows] == ["4", "6"]
    assert "| 6 |" in (run / "table3.md").read_text() and "(N=20)" in (run / "table3.md").read_text()
    assert float(rows[1]["snn_accuracy_lo"]) <= float(rows[1]["snn_accuracy"]) <= float(rows[1]["snn_accuracy_hi"])


@pytest.mark.slow
def test_stdb_sweep_trains_in_parallel_processes(sandbox, tiny_npz, monkeypatch, capsys):
    # JOBS=2: each T in its own process (one thread each), logs beside the results; the draws are keyed
    # by sample, so a child trains exactly as the stdb stage does alone. FORCE=1 retrains T=4, which the
    # stdb stage has just written, and each T is trained once, by its child: the parent reads the
    # children's fresh results (it used to train every T again itself).
    args = ["--data", str(tiny_npz), *COMMON, "--jobs", "2"]
    assert main(["stdb", f"OUT={sandbox}", "--timesteps", "4", *args]) == 0      # alone, in this process
    run = sandbox / "results" / "st"
    alone = json.loads((run / "stdb_T4.json").read_text())
    ran = []
    real = stdb.run_stdb
    monkeypatch.setattr(stdb, "run_stdb", lambda s, ws, t: ran.append(t) or real(s, ws, t))   # in this process
    assert main(["stdb-sweep", f"OUT={sandbox}", "--timesteps-list", "4 6", *args, "--force"]) == 0
    out = capsys.readouterr().out
    assert "2 at a time, 1 thread(s) each" in out and "T=4 done" in out and "T=6 done" in out
    assert ran == []
    for t in (4, 6):                          # each child's log: one training, two epochs
        log = (run / f"stdb_T{t}.log").read_text()
        assert re.findall(r"STDB at T=(\d+):", log) == [str(t)]
        assert re.findall(r"STDB epoch (\d+): loss", log) == ["1", "2"]
    parallel = {t: json.loads((run / f"stdb_T{t}.json").read_text()) for t in (4, 6)}
    assert parallel[4]["wall_seconds"] != alone["wall_seconds"]      # FORCE: T=4 trained again, not reused
    with open(run / "table3.csv") as f:       # the table is what the children wrote
        rows = list(csv.DictReader(f))
    assert [(int(r["timesteps"]), float(r["snn_accuracy"]), int(r["best_epoch"])) for r in rows] == [
        (t, parallel[t]["snn_accuracy"], parallel[t]["best_epoch"]) for t in (4, 6)]
    assert "| 4 |" in (run / "table3.md").read_text() and "| 6 |" in (run / "table3.md").read_text()
    assert [h["validation_accuracy"] for h in alone["history"]] == [h["validation_accuracy"] for h in
                                                                   parallel[4]["history"]]
    assert alone["snn_accuracy"] == parallel[4]["snn_accuracy"]


@pytest.mark.slow
def test_stdb_stage_keeps_the_converted_network_where_training_never_beats_it(sandbox, tiny_npz, monkeypatch):
    # LR 1e3 wrecks the network in its one epoch: its validation accuracy is not above the converted
    # network's, so epoch 0 is kept and the test set, simulated once before training, is not simulated
    # again: "after" is "before", sample for sample.
    simulated = []
    real = engine.SpikingNetwork.simulate
    monkeypatch.setattr(engine.SpikingNetwork, "simulate",
                        lambda net, x, *a, **k: simulated.append(len(x)) or real(net, x, *a, **k))
    assert main(["stdb", f"OUT={sandbox}", "--data", str(tiny_npz), "--timesteps", "4", *COMMON, "--stdb-epochs", "1",
                 "--lr", "1e3"]) == 0
    record = json.loads((sandbox / "results" / "st" / "stdb_T4.json").read_text())
    assert record["history"][0]["validation_accuracy"] <= record["validation_accuracy_before"]
    assert (record["best_epoch"], record["validation_accuracy"]) == (0, record["validation_accuracy_before"])
    assert record["snn_accuracy"] == record["snn_accuracy_before"] and record["improvement"] == 0
    assert record["predictions"]["snn"] == record["predictions"]["snn_before"]
    assert record["snn_vs_snn_before_mcnemar"] == {"snn_only": 0, "snn_before_only": 0, "p_value": 1.0}
    assert simulated.count(record["num_samples"]) == 1       # the test samples, once
    assert simulated.count(record["validation_samples"]) == 2  # before training and after its epoch


@pytest.mark.parametrize("args,message", [
    (["--timesteps", "0"], "T=0 must be a positive integer"),
    (["--timesteps", "28", "--leak", "1.5"], "LEAK=1.5"),
    (["--timesteps", "28", "--leak", "0"], "LEAK=0.0"),
    (["--timesteps", "28", "--surrogate", "sigmoid"], "SURROGATE='sigmoid': choose one of linear, stdb"),
    (["--timesteps", "28", "--lr", "-1"], "LR=-1.0"),
    (["--timesteps", "28", "--train-thresholds", "--neuron-lr", "0"], "NEURON_LR=0.0"),
])
def test_bad_stdb_settings(sandbox, args, message, capsys):
    assert main(["stdb", f"OUT={sandbox}", "--run", "bad", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (sandbox / "results" / "bad").exists()
