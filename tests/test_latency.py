"""The latency stage on a tiny dataset: rows, fields, the ± STDB methods, the table's readout note."""
import json

import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, results, settings as settings_module
from pipeline.stages import latency
from pipeline.training import stdb
from conftest import check_uncertainty

FIELDS = {"method", "timesteps", "ann_accuracy", "snn_accuracy", "normalized_energy", "ann_accuracy_interval",
          "snn_accuracy_interval", "predictions", "snn_vs_ann_mcnemar"}


def run(out, tiny_npz, *extra):
    argv = ["latency", f"OUT={out}", "--run", "tiny", "--data", str(tiny_npz), "--width", "4", "--epochs", "2",
            "--timesteps-list", "1 4", "--num-samples", "20", *extra]
    return latency.main(settings_module.parse(argv))


@pytest.mark.slow  # the whole stage, trainings included
def test_latency_stage_rows_fields_and_stdb_rows(tiny_npz, sandbox):
    run(sandbox, tiny_npz, "--coding", "analog")
    folder = sandbox / "results" / "tiny"
    record = json.loads((folder / "latency_analog.json").read_text())
    rows = record["rows"]
    assert [(r["method"], r["timesteps"]) for r in rows] == [("conversion", 1), ("conversion", 4),
                                                             ("qcfs", 1), ("qcfs", 4)]
    for row in rows:
        assert set(row) == FIELDS
        assert 0.0 <= row["snn_accuracy"] <= 1.0 and 0.0 <= row["ann_accuracy"] <= 1.0
        assert row["normalized_energy"] > 0
        check_uncertainty(row)
    assert rows[0]["ann_accuracy"] == record["ann"]["modified"]["accuracy_on_samples"]
    assert rows[2]["ann_accuracy"] == record["ann"]["qcfs"]["accuracy_on_samples"]
    assert record["readout"] == "membrane" and record["levels"] == 8
    assert record["stdb"] is None and record["poisson_input_ceiling"] is None
    assert [p["timesteps"] for p in record["qcfs_toolbox_semantics"]] == [1, 4]
    assert "membrane readout" in (folder / "latency_analog.md").read_text()
    assert (folder / "latency_analog.png").stat().st_size > 0
    assert not (folder / "latency.json").exists()
    assert len(list(results.Folders.under(sandbox).trained.glob("escape_net_qcfs_L8_w4_e2_s0_*.h5"))) == 1

    # the same RUN (cached modified model) with STDB rows, Poisson input and another L
    record = run(sandbox, tiny_npz, "--stdb", "--stdb-epochs", "1", "--ntrain", "24", "--levels", "4")
    methods = [(r["method"], r["timesteps"]) for r in record["rows"]]
    assert methods == [(m, t) for m in latency.METHODS for t in (1, 4)]
    assert record["input_coding"] == "poisson" and record["levels"] == 4
    assert json.loads((folder / "latency.json").read_text())["levels"] == 4
    assert [(r["method"], r["timesteps"]) for r in record["stdb"]["runs"]] == \
        [("conversion+stdb", 1), ("conversion+stdb", 4), ("qcfs+stdb", 1), ("qcfs+stdb", 4)]
    assert record["stdb"]["train_samples"] == 24 and record["stdb"]["selection"] == stdb.SELECTION
    for tuning in record["stdb"]["runs"]:   # epoch 1 only where it beats the untrained network (epoch 0)
        before, after = tuning["validation_accuracy_before"], tuning["validation_accuracy"]
        assert after >= before and (tuning["best_epoch"] == 1) == (after > before)
    assert "epoch 0: the converted network" in (folder / "latency.md").read_text()
    assert len(list(results.Folders.under(sandbox).trained.glob("escape_net_qcfs_L4_w4_e2_s0_*.h5"))) == 1
    ceiling = record["poisson_input_ceiling"]
    assert [p["timesteps"] for p in ceiling] == [1, 4]
    assert all(0.0 <= p["qcfs_ann_accuracy"] <= 1.0 for p in ceiling)


@pytest.mark.slow  # a model trained, its QCFS twin fine-tuned, both simulated
def test_latency_runs_on_a_model_the_user_brings_as_its_qcfs_twin_fine_tuned_once(tiny_npz, sandbox):
    from test_user_model import small_cnn
    path = small_cnn(sandbox / "mine.h5")     # Conv2D(relu) -> AveragePooling2D -> Flatten -> Dense(softmax)
    argv = ["latency", f"OUT={sandbox}", "--run", "u", "--data", str(tiny_npz), f"MODEL={path}", "--coding", "analog"]
    record = latency.main(settings_module.parse([*argv, "--timesteps-list", "1 4", "--num-samples", "20"]))
    assert [(r.method, r.timesteps) for r in record.rows] == [("conversion", 1), ("conversion", 4),
                                                              ("qcfs", 1), ("qcfs", 4)]
    brought = results.file_sha256(path)[:12]
    trained = results.Folders.under(sandbox).trained
    twins = list(trained.glob(f"user_{brought}_d*_qcfs_L8_s0.h5"))
    assert len(twins) == 1 and str(twins[0]) == record.ann["qcfs"]["path"]
    assert not list(trained.glob("escape_net_*"))                          # no ESCAPE-NET trained
    info = json.loads(twins[0].with_suffix(".json").read_text())
    assert info["source"]["path"] == str(path) and info["started_from"]["path"] == record.ann["modified"]["path"]
    assert info["fine_tune_epochs"] == 2 and list(record.ann["qcfs"]["lambda"]) == ["conv2d_qcfs"]
    assert record.ann["modified"]["name"] == "MODEL=mine.h5"
    assert "ANNs on the whole test set: MODEL=mine.h5" in (sandbox / "results" / "u" / "latency_analog.md").read_text()
    stamp = twins[0].stat().st_mtime_ns                                    # a second run reuses the twin
    latency.main(settings_module.parse([*argv, "--timesteps-list", "1", "--num-samples", "5"]))
    assert twins[0].stat().st_mtime_ns == stamp


def test_timesteps_are_required(tiny_npz, sandbox):
    with pytest.raises(UserError, match="TS is required"):
        latency.main(settings_module.parse(["latency", f"OUT={sandbox}", "--data", str(tiny_npz)]))


@pytest.mark.slow
def test_latency_runs_a_residual_model_with_qcfs_after_its_add(tiny_npz, sandbox):
    import tensorflow as tf
    keras = tf.keras.layers
    x = keras.Input((8, 12, 1))
    a = keras.Conv2D(2, 3, padding="same", activation="relu")(x)
    s = keras.ReLU()(keras.Add(name="add")([a, keras.Conv2D(2, 3, padding="same")(a)]))
    path = sandbox / "res.h5"
    tf.keras.Model(x, keras.Dense(3, activation="softmax")(keras.Flatten()(s))).save(path, save_format="h5")
    record = latency.main(settings_module.parse(["latency", f"OUT={sandbox}", "--data", str(tiny_npz),
                                                 f"MODEL={path}", "--timesteps-list", "2", "--num-samples", "10"]))
    assert [(r.method, r.timesteps) for r in record.rows] == [("conversion", 2), ("qcfs", 2)]
    assert "re_lu_qcfs" in record.ann["qcfs"]["lambda"]     # the add's QCFS, calibrated like every other
