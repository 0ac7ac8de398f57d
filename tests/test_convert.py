"""End to end on a tiny model: data -> train -> h5 -> ini -> SNN Toolbox INI -> convert_T<T>.json."""
import json
from pathlib import Path

import pytest

from conftest import check_uncertainty
from pipeline import results
from pipeline.__main__ import main

FIELDS = {"stage", "simulator", "timesteps", "num_samples", "ann_accuracy", "ann_accuracy_test",
          "snn_accuracy", "accuracy_per_timestep", "wall_seconds", "config", "dataset", "model",
          "seed", "versions"}


def convert(out, npz, *extra):
    return main(["convert", f"OUT={out}", "--data", str(npz), "--width", "4", "--epochs", "3", "--run", "tiny",
                 "--num-samples", "20", *extra])


@pytest.mark.slow
def test_convert_end_to_end(sandbox, tiny_npz, capsys):
    assert convert(sandbox, tiny_npz, "--timesteps", "60") == 0
    out = sandbox / "results" / "tiny" / "convert_T60.json"
    record = json.loads(out.read_text())
    assert FIELDS <= set(record)
    assert record["simulator"] == "INI" and record["timesteps"] == 60 and record["num_samples"] == 20
    assert len(record["accuracy_per_timestep"]) == 60
    assert record["accuracy_per_timestep"][-1] == record["snn_accuracy"]
    assert record["accuracy_per_timestep"][0] == 0.0          # no output spike at step 1: undecided = wrong
    assert abs(record["snn_accuracy"] - record["ann_accuracy"]) <= 0.1
    check_uncertainty(record)                     # per-sample predictions, intervals, SNN-vs-ANN McNemar
    assert record["num_test_samples"] == 60 and len(record["ann_accuracy_test_interval"]) == 2
    assert set(record["versions"]) == {"python", "tensorflow", "numpy", "snntoolbox"}
    assert "ANN" in capsys.readouterr().out

    # Cached data and model: a second T reuses them and gives the same curve prefix (constant input is causal).
    run_record = json.loads((sandbox / "results" / "tiny" / "run.json").read_text())
    assert convert(sandbox, tiny_npz, "--timesteps", "30") == 0
    short = json.loads((sandbox / "results" / "tiny" / "convert_T30.json").read_text())
    assert short["model"]["sha256"] == record["model"]["sha256"] == run_record["model"]["sha256"]
    assert short["accuracy_per_timestep"] == record["accuracy_per_timestep"][:30]

    # Same seed, same numbers.
    assert convert(sandbox, tiny_npz, "--timesteps", "60") == 0
    again = json.loads(out.read_text())
    assert again["accuracy_per_timestep"] == record["accuracy_per_timestep"]

    # Bad input: exit 2, one line, earlier results untouched.
    before = out.read_bytes()
    assert convert(sandbox, tiny_npz, "--timesteps", "60", "--num-samples", "500") == 2
    assert convert(sandbox, tiny_npz, "--timesteps", "60", "--width", "8") == 2   # RUN made with WIDTH=4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "N=500 is larger than the test set" in err[0] and "WIDTH=8" in err[1]
    assert out.read_bytes() == before


@pytest.mark.parametrize("args,message", [
    (["--timesteps", "0"], "T=0 must be a positive integer"),
    (["--timesteps", "2.5"], "T='2.5' is not an integer"),
    (["--timesteps", "10", "--data", "/nonexistent/Rat4Training_Fold1.mat"], "Rat4Training_Fold1.mat"),
    (["--timesteps", "10", "--config", "/nonexistent.ini"], "nonexistent.ini: config file not found"),
])
def test_bad_input_exits_2_with_one_line(sandbox, args, message, capsys):
    assert main(["convert", f"OUT={sandbox}", "--run", "bad", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (sandbox / "results" / "bad").exists()


def files_in(folders):
    """Every path under the four output folders, with its modification time."""
    return {str(path): path.stat().st_mtime_ns for folder in (folders.results, folders.trained, folders.data,
                                                              folders.configs) if folder.exists()
            for path in folder.rglob("*")}


@pytest.mark.slow
def test_out_sends_every_output_under_the_given_folder_and_leaves_the_checkout_alone(tmp_path, tiny_npz, capsys):
    checkout = files_in(results.Folders.under())
    out = tmp_path / "scratch"
    assert main(["convert", f"OUT={out}", "RUN=o", f"DATA={tiny_npz}", "WIDTH=4", "EPOCHS=1", "T=5", "N=10",
                 "SIM=fast"]) == 0
    folders = results.Folders.under(out)
    record = json.loads((folders.run_dir("o") / "convert_T5_fast.json").read_text())
    assert Path(record["config"]).parent == folders.configs and Path(record["model"]["path"]).parent == folders.trained
    assert list((folders.data / "toolbox").iterdir()) and (folders.run_dir("o") / "run.json").is_file()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p != tiny_npz and out not in p.parents] == []
    assert files_in(results.Folders.under()) == checkout
