"""The bench stage and SIM=fast: the engine's fast simulation in INI's place, on a tiny model."""
import csv
import json

import numpy as np
import pytest

from pipeline.stages import bench
from pipeline.toolbox import configs, simulate
from conftest import check_uncertainty
from pipeline.__main__ import main

BENCH_FIELDS = {"timesteps", "num_samples", "ini_seconds", "engine_seconds", "speedup", "ann_dense_seconds",
                "dense_bound_ratio", "spike_agreement", "accuracy_ini", "accuracy_engine", "peak_memory_mb"}
COMMON = ["--width", "4", "--epochs", "3", "--run", "fast"]


def test_spike_agreement_counts_equal_neurons_layer_by_layer():
    ini = {"00Conv2D_4x4x1": np.array([[1, 2, 3, 4], [0, 0, 0, 0]]), "01Dense_2": np.array([[5, 6], [7, 8]])}
    engine = {"conv1": np.array([[1, 2, 3, 9], [0, 0, 0, 0]]).reshape(2, 2, 2, 1), "out": np.array([[5, 6], [7, 8]])}
    overall, per_layer = bench.spike_agreement(ini, engine, 2)
    assert overall == pytest.approx(11 / 12)
    assert per_layer == {"conv1": pytest.approx(7 / 8), "out": 1.0}
    with pytest.raises(Exception, match="spiking layers"):
        bench.spike_agreement(ini, {"conv1": engine["conv1"]}, 2)


def test_ini_runs_at_the_batch_sizes_that_divide_n():
    assert bench.ini_batch_sizes(50) == [25, 50]
    assert bench.ini_batch_sizes(100) == [25, 50]
    assert bench.ini_batch_sizes(75) == [25]
    assert bench.ini_batch_sizes(12) == [12]   # none divides: the convert stage's choice


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_bench_writes_the_side_by_side_record(sandbox, tiny_npz, monkeypatch, capsys):
    monkeypatch.setattr(bench, "INI_BATCH_SIZES", (10,))   # one INI run keeps the test short
    monkeypatch.setattr(bench, "AGREEMENT_SAMPLES", 3)
    assert main(["bench", f"OUT={sandbox}", "--data", str(tiny_npz), *COMMON, "--num-samples", "10",
                 "--timesteps", "20", "--peers", "snntorch"]) == 0
    record = json.loads((sandbox / "results" / "fast" / "bench.json").read_text())
    assert BENCH_FIELDS <= set(record)
    assert record["timesteps"] == 20 and record["num_samples"] == 10 and record["ini_batch_size"] == 10
    assert record["ini_seconds"] == record["ini_runs"]["10"]["seconds"]["simulate"]
    assert record["speedup"] == pytest.approx(record["ini_seconds"] / record["engine_seconds"])
    assert record["dense_bound_ratio"] == pytest.approx(record["engine_seconds"] / record["ann_dense_seconds"])
    assert record["accuracy_per_timestep_equal"] and record["accuracy_engine"] == record["accuracy_ini"]
    assert record["spike_agreement"] >= 0.999 and record["spike_agreement_samples"] == 3
    check_uncertainty(record, (("ini", "accuracy_ini"), ("engine", "accuracy_engine")), (("engine", "ini"),))
    assert record["engine_vs_ini_mcnemar"] == {"engine_only": 0, "ini_only": 0, "p_value": 1.0}
    assert set(record["spike_agreement_per_layer"]) == {"conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"}
    # the default fast path (event-driven currents) against the exact one (sparse=False), per layer
    sparse = record["sparse_agreement_per_layer"]
    assert set(sparse) == set(record["spike_agreement_per_layer"]) and min(sparse.values()) >= 0.999
    assert record["peak_memory_mb"] > 0 and "conv2 current" in record["engine_stage_seconds"]
    peer = record["snntorch"]     # the same network and input in snnTorch, corrected to the file's IF
    assert peer["accuracy"] == record["accuracy_engine"] and peer["accuracy_per_timestep_equal_to_engine"]
    assert set(peer["spike_agreement_per_layer"].values()) == {1.0} and peer["threads"] > 0
    assert peer["engine_speedup"] == pytest.approx(peer["seconds"] / record["engine_seconds"])
    out = capsys.readouterr().out
    assert "speedup" in out and "engine (fast)" in out and "INI batch 10" in out and "snnTorch (corrected)" in out
    assert "engine's event-driven currents against its exact ones (sparse=False)" in out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_sim_fast_convert_and_sweep_read_as_ini(sandbox, tiny_npz, capsys):
    args = [*COMMON, "--data", str(tiny_npz), "--num-samples", "20"]
    assert main(["convert", f"OUT={sandbox}", *args, "--timesteps", "30"]) == 0
    assert main(["convert", f"OUT={sandbox}", *args, "--timesteps", "30", "--sim", "fast"]) == 0
    run = sandbox / "results" / "fast"
    ini = json.loads((run / "convert_T30.json").read_text())
    fast = json.loads((run / "convert_T30_fast.json").read_text())
    assert set(ini) == set(fast) and ini["simulator"] == "INI" and fast["simulator"] == "fast"
    assert fast["accuracy_per_timestep"] == ini["accuracy_per_timestep"]
    assert fast["config_sha256"] == ini["config_sha256"] and fast["model"] == ini["model"]
    assert set(fast["toolbox_seconds"]) == {"normalize", "simulate"}

    # The sweep reads every T from the one constant-input fast run, and reuses it.
    assert main(["sweep", f"OUT={sandbox}", *args, "--timesteps-list", "10 30", "--sim", "fast"]) == 0
    with open(run / "table2.csv") as f:
        rows = {int(r["timesteps"]): float(r["snn_accuracy"]) for r in csv.DictReader(f)}
    assert rows == {10: fast["accuracy_per_timestep"][9], 30: fast["accuracy_per_timestep"][29]}
    assert "fast" in (run / "table2.md").read_text()
    assert json.loads((run / "convert_T30.json").read_text()) == ini     # the INI result is left alone


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_sim_fast_refuses_settings_it_does_not_reproduce(sandbox, tiny_npz, monkeypatch, capsys):
    template = sandbox / "leaky.ini"
    template.write_text(configs.TEMPLATE.read_text().replace("reset = Reset by subtraction",
                                                             "reset = Reset by subtraction\nleak = True"))
    monkeypatch.setattr(configs, "TEMPLATE", template)
    assert main(["convert", f"OUT={sandbox}", *COMMON, "--data", str(tiny_npz), "--num-samples", "10",
                 "--timesteps", "5", "--sim", "fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[cell] leak" in err[0] and "SIM=fast" in err[0]
    assert not (sandbox / "results" / "fast" / simulate.result_name(5, "fast")).exists()
