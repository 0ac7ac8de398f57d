"""The frontier's quantised and pruned rows (QUANTS, PRUNES) on a tiny network: their labels, their weights,
the memory model's weight width, the validation choice over them, and the rows unchanged without them."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, engine, results, settings as settings_module
from pipeline.stages import frontier as stage
from pipeline.training import quantisation


def run(out, tiny_npz, *extra):
    argv = ["frontier", f"OUT={out}", "--run", "tiny", "--data", str(tiny_npz), "--width", "4", "--epochs", "2",
            "--timesteps-list", "2", "--num-samples", "20", "--codings", "analog", "--sparsities", "1", *extra]
    return stage.main(settings_module.parse(argv))


def test_method_suffixes_name_the_variant_and_its_network():
    assert stage.split_method("qcfs+sparsity+q8") == ("qcfs+sparsity", "+q8")
    assert stage.split_method("conversion+p0.9") == ("conversion", "+p0.9")
    assert stage.split_method("qcfs+stdb") == ("qcfs+stdb", "")
    assert stage.network_name("qcfs+sparsity+q4", 16.0) == "qcfs+sparsity=16+q4"
    assert stage.network_name("qcfs+p0.5", 0.0) == "qcfs+p0.5"
    assert stage.weights(settings_module.parse(["frontier", "SPARSITIES=2 8"]), "qcfs+sparsity+p0.5") == (2.0, 8.0)


@pytest.mark.slow  # trains the tiny network's float, quantised and pruned variants
def test_quants_and_prunes_add_labelled_rows_and_leave_the_others_as_they_were(tiny_npz, sandbox, monkeypatch):
    plain = run(sandbox, tiny_npz)
    extended = run(sandbox, tiny_npz, "QUANTS=4", "PRUNES=0.5", "STDB=1", "STDB_EPOCHS=1", "NTRAIN=30")
    base = ("conversion", "qcfs", "qcfs+sparsity")
    # STDB=1: the RUN's QCFS network and its pruned variant fine-tuned, not the quantised one (off its grid)
    assert [r["method"] for r in extended["rows"]] == [m + v for v in ("", "+q4", "+p0.5", "+p0.5+q4")
                                                       for m in base] + ["qcfs+stdb", "qcfs+stdb+p0.5"]
    # unset, the rows are those of a frontier without the settings, from the very same cached cells
    assert [r for r in extended["rows"] if r["method"] in base] == plain["rows"]
    assert extended["cells"]["reused"] == plain["cells"]["simulated"]
    rows = {r["method"]: r for r in extended["rows"]}
    for v in ("", "+p0.5"):    # each started from its own QCFS network, with the coding parameter that row chose
        assert rows["qcfs+stdb" + v]["own_ann_accuracy"] == rows["qcfs" + v]["own_ann_accuracy"]
        assert rows["qcfs+stdb" + v]["stdb"]["best_epoch"] in (0, 1)
    # a 4-bit network's weights are on their grid, and the memory model counts them at 4 bits, not 32
    quantised = sorted(results.Folders.under(sandbox).trained.glob("*_q4_*.h5"))
    assert len(quantised) == 6     # the modified ANN, the QCFS ANN and its sparsity-penalised fine-tune; pruned too
    for path in quantised:
        for layer in engine.load_keras(path).layers:
            if getattr(layer, "kernel", None) is not None:
                quantisation.integer_weights(layer.get_weights()[0], 4)   # raises off the grid
    for m in base:
        assert rows[m + "+q4"]["footprint_bytes"]["snn"] < rows[m]["footprint_bytes"]["snn"]
        # pruned, then quantised: fewer weights than the 4-bit network, narrower ones than the pruned one
        assert rows[m + "+p0.5+q4"]["footprint_bytes"]["snn"] < min(rows[m + v]["footprint_bytes"]["snn"]
                                                                    for v in ("+q4", "+p0.5"))
        # analog input's floor, like for like: conv1's MACs over the ANN's, both priced in the row's arithmetic
        # (int8 over int8, fp32 over fp32), so 4-bit rounding can only lower it (it zeros weights, removing MACs)
        assert rows[m + "+q4"]["input_floor"] <= rows[m]["input_floor"] * (1 + 1e-9)
        assert rows[m + "+p0.5"]["own_ann_accuracy"] is not None
        # over its own ANN: the energy column for the RUN's own rows; a +q4 row's own ANN skips the weights that
        # rounded to zero; a +p row's pruned ANN does half the MACs (half of every kernel zero; the pooling
        # adds are not pruned, so a little more than half)
        assert rows[m]["energy_vs_own_ann"] == pytest.approx(rows[m]["normalized_energy"], rel=1e-12)
        assert rows[m + "+q4"]["energy_vs_own_ann"] >= rows[m + "+q4"]["normalized_energy"]
        assert 1.5 < rows[m + "+p0.5"]["energy_vs_own_ann"] / rows[m + "+p0.5"]["normalized_energy"] <= 2.0
    # the point chosen on validation: the cheapest non-inferior network of every row, variants included
    good = [c["normalized_energy"] for r in extended["rows"] for c in r["validation_candidates"]
            if c["vs_ann"]["non_inferior"]]
    assert (extended["chosen"] is None) == (not good)
    if good:
        assert extended["chosen"]["validation_energy"] == min(good)

    # a pruned network whose calibration finds a silent layer loses its conversion rows only, the reason recorded
    calibrate = stage.conversion.conversion_thresholds

    def silent_when_pruned(ws, settings, mode, model=None):
        if np.mean(model.get_layer("conv1").get_weights()[0] == 0) >= 0.5:
            raise UserError("layer 'dense2' received no positive input current on the calibration data")
        return calibrate(ws, settings, mode, model)
    monkeypatch.setattr(stage.conversion, "conversion_thresholds", silent_when_pruned)
    silent = run(sandbox, tiny_npz, "QUANTS=4", "PRUNES=0.5", "STDB=1", "STDB_EPOCHS=1", "NTRAIN=30")
    assert set(silent["left_out"]) == {"conversion+p0.5", "conversion+p0.5+q4"}
    assert all("dense2" in why for why in silent["left_out"].values())
    assert silent["rows"] == [r for r in extended["rows"] if r["method"] not in silent["left_out"]]
