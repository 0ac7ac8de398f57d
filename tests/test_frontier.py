"""The frontier stage on a tiny network and tiny data: rows and fields, choices on validation, the
cell cache, the files (the choice rule and the Pareto front by hand: test_frontier_choice.py)."""
import json

import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, frontier, settings as settings_module
from pipeline.stages import frontier as stage
from pipeline.training import stdb
from conftest import check_uncertainty

ROW_FIELDS = {"coding", "method", "timesteps", "num_samples", "ann_accuracy", "own_ann_accuracy", "snn_accuracy",
              "snn_accuracy_interval", "normalized_energy", "input_floor", "layer_energy", "validation_accuracy"}


def run(out, tiny_npz, *extra):
    argv = ["frontier", f"OUT={out}", "--run", "tiny", "--data", str(tiny_npz), "--width", "4", "--epochs", "2",
            "--timesteps-list", "2 4", "--num-samples", "20", "--gains", "1 4", "--deltas", "0.1 0.3",
            "--sparsities", "1 8", *extra]
    return stage.main(settings_module.parse(argv))


@pytest.mark.slow  # the whole stage, trainings included
def test_frontier_stage_rows_choices_and_cache(tiny_npz, sandbox):
    record = run(sandbox, tiny_npz)
    rows = record["rows"]
    assert [(r["coding"], r["method"], r["timesteps"]) for r in rows] == \
        [(c, m, t) for c in ("analog", "poisson", "rate", "delta") for m in ("conversion", "qcfs", "qcfs+sparsity")
         for t in (2, 4)]
    for r in rows:
        assert ROW_FIELDS <= set(r)
        assert r["num_samples"] == 20 and r["normalized_energy"] > 0 and r["input_floor"] > 0
        assert r["normalized_energy_memory"] > 0 and r["footprint_bytes"]["snn"] > 0   # beside it, with memory
        assert r["input_floor"] <= r["normalized_energy"] + 1e-12     # the input is part of what the network spent
        assert r["normalized_energy"] == pytest.approx(sum(r["layer_energy"].values()))
        check_uncertainty(r)
        tried = r["validation_candidates"]
        assert len(tried) == {"rate": 2, "delta": 2}.get(r["coding"], 1) * (2 if r["method"] == "qcfs+sparsity" else 1)
        for c in tried:     # the paired difference to the ANN on the same validation samples
            assert c["vs_ann"]["difference"] == pytest.approx(c["accuracy"] - record["ann"]["validation_accuracy"])
        good = [c for c in tried if c["vs_ann"]["non_inferior"]]     # choose_parameter's rule, read back
        pick = (min(good, key=lambda c: (c["normalized_energy"], -c["vs_ann"]["difference"])) if good else
                min(tried, key=lambda c: (-c["vs_ann"]["difference"], c["normalized_energy"])))
        assert (r["value"], r["sparsity"]) == (pick["value"], pick["sparsity"])
        assert (r["sparsity"] in (1, 8)) == (r["method"] == "qcfs+sparsity")
    # one denominator: the same ANN accuracy on every row; QCFS rows carry their own ANN's
    assert len({r["ann_accuracy"] for r in rows}) == 1
    assert {r["own_ann_accuracy"] for r in rows if r["method"] == "qcfs"} == {record["ann"]["qcfs_test_accuracy"]}
    penalised = {a["sparsity"]: a["test_accuracy"] for a in record["ann"]["qcfs_sparsity"]}
    assert sorted(penalised) == [1, 8]
    assert all(r["own_ann_accuracy"] == penalised[r["sparsity"]] for r in rows if r["method"] == "qcfs+sparsity")
    analog = [r for r in rows if r["coding"] == "analog" and r["method"] == "conversion"]
    assert analog[0]["input_floor"] == pytest.approx(analog[1]["input_floor"])   # conv1's MACs once, whatever T
    delta = [r for r in rows if r["coding"] == "delta"]
    assert all(r["encoder_updates_per_inference"] == 8 * 12 for r in delta)
    # the reported point: the cheapest of every network tried on validation non-inferior to the ANN there
    good = [c["normalized_energy"] for r in rows for c in r["validation_candidates"] if c["vs_ann"]["non_inferior"]]
    assert (record["chosen"] is None) == (not good)
    if good:
        assert record["chosen"]["validation_energy"] == min(good)
    assert record["pareto_front"] == frontier.pareto_front(rows)
    folder = sandbox / "results" / "tiny"
    assert json.loads((folder / "frontier.json").read_text())["rows"] == rows
    assert "Pareto front" in (folder / "frontier.md").read_text()
    assert (folder / "frontier.png").stat().st_size > 0
    simulated = record["cells"]["simulated"]
    assert simulated == len(list((folder / stage.CELLS).glob("*.json"))) and record["cells"]["reused"] == 0

    again = run(sandbox, tiny_npz)                       # every cell reused, the same numbers
    assert again["cells"] == {"simulated": 0, "reused": simulated, "folder": stage.CELLS}
    assert [r["snn_accuracy"] for r in again["rows"]] == [r["snn_accuracy"] for r in rows]
    assert [r["normalized_energy"] for r in again["rows"]] == [r["normalized_energy"] for r in rows]
    wider = run(sandbox, tiny_npz, "--codings", "rate", "--gains", "1 4 8")   # a larger grid simulates only what is new
    extra = wider["chosen"] is not None and wider["chosen"] not in wider["rows"]   # the reported point's test cell
    new_tests = sum(r["value"] == 8 for r in wider["rows"]) + (extra and wider["chosen"]["value"] == 8)
    assert wider["cells"]["simulated"] == 2 * 2 + 2 * 2 + new_tests  # (conversion, qcfs; two penalty weights) x T
    assert wider["cells"]["simulated"] + wider["cells"]["reused"] == 2 * 2 * 4 + 2 * (3 * 2 + 1) + extra

    tuned = run(sandbox, tiny_npz, "--codings", "analog", "--stdb", "--stdb-epochs", "1", "--ntrain", "30")   # STDB=1
    stdb_rows = [r for r in tuned["rows"] if r["method"] == "qcfs+stdb"]
    assert [r["timesteps"] for r in stdb_rows] == [2, 4] and tuned["stdb"]["train_samples"] == 30
    assert all(r["own_ann_accuracy"] == record["ann"]["qcfs_test_accuracy"] and len(r["validation_candidates"]) == 1
               for r in stdb_rows)
    for tuning in (r["stdb"] for r in stdb_rows):   # the epoch kept (0: the untrained network) by the paired rule
        ranks = [stdb.rank(a, {"validation_cost": e, "vs_reference": {"non_inferior": held}}) for a, e, held in
                 zip(tuning["validation_accuracy_per_epoch"], tuning["validation_energy_per_epoch"],
                     tuning["non_inferior_per_epoch"])]
        assert len(ranks) == 2 and tuning["best_epoch"] == ranks.index(min(ranks))
    rerun = run(sandbox, tiny_npz, "--codings", "analog", "--stdb", "--stdb-epochs", "1", "--ntrain", "30")
    assert rerun["cells"]["simulated"] == 0

    from pipeline.__main__ import main          # make report shows the frontier and its figure
    assert main(["report", f"OUT={sandbox}", "--run", "tiny"]) == 0
    report = (folder / "REPORT.md").read_text()
    assert "## Accuracy-energy frontier across input codings" in report and "](frontier.png)" in report


def test_frontier_needs_timesteps_and_refuses_bad_grids(tiny_npz, sandbox, capsys):
    from pipeline.__main__ import main
    with pytest.raises(UserError, match="TS is required"):
        stage.main(settings_module.parse(["frontier", f"OUT={sandbox}", "--data", str(tiny_npz)]))
    for bad in ("CODINGS=analog morse", "GAINS=1 0", "DELTAS=-0.1", "SPARSITIES=1 -2", "SPARSITY=-0.5"):
        assert main(["frontier", f"OUT={sandbox}", "TS=2", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and bad.split("=")[0] in err
