"""Energy model: exact fan-out, hand-counted ACs/MACs and energies, presets, ESCAPE-NET's 126 M MACs, the stage."""
import dataclasses
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras first)
import tensorflow as tf

from keras_models import escape_net
from pipeline import UserError, energy, engine, network, results
from pipeline.training import stdb
from conftest import check_uncertainty
from pipeline.__main__ import main

layers = tf.keras.layers


def conv_dense():
    """Input 4x4x1 -> Conv 3x3 'same', 2 filters -> Flatten -> Dense 3: the hand-counted network."""
    inputs = layers.Input((4, 4, 1))
    x = layers.Conv2D(2, 3, padding="same", activation="relu", use_bias=False, name="conv")(inputs)
    x = layers.Flatten(name="flatten")(x)
    out = layers.Dense(3, activation="softmax", use_bias=False, name="dense")(x)
    return tf.keras.Model(inputs, out)


def conv_pool_conv():
    """Input 6x6x1 -> Conv 3x3 same (2) -> AvgPool 2 -> Conv 3x3 same (4): pools spiking or linear."""
    inputs = layers.Input((6, 6, 1))
    x = layers.Conv2D(2, 3, padding="same", activation="relu", use_bias=False, name="c1")(inputs)
    x = layers.AveragePooling2D(2, name="pool")(x)
    out = layers.Conv2D(4, 3, padding="same", activation="relu", use_bias=False, name="c2")(x)
    return tf.keras.Model(inputs, out)


# --------------------------------------------------------------------- fan-out
@pytest.mark.parametrize("shape,window,strides,padding", [
    ((4, 4), (3, 3), (1, 1), "same"),
    ((7, 9), (8, 8), (1, 1), "same"),        # ESCAPE-NET's even kernels pad 3 before, 4 after
    ((7, 9), (4, 4), (2, 2), "same"),
    ((7, 9), (2, 5), (1, 2), "valid"),
    ((5, 6), (2, 2), (2, 2), "valid"),       # a pool that drops the last row
])
def test_fan_out_equals_a_transposed_convolution_of_ones(shape, window, strides, padding):
    g = network.Conv2d(name="c", input_shape=(*shape, 1), output_shape=(0, 0, 1), kernel_size=window, stride=strides,
                       padding=padding)
    out_shape = tf.nn.conv2d(tf.zeros((1, *shape, 1)), tf.zeros((*window, 1, 1)), strides, padding.upper()).shape
    brute = tf.nn.conv2d_transpose(tf.ones(out_shape), tf.ones((*window, 1, 1)), (1, *shape, 1), strides,
                                   padding.upper())
    np.testing.assert_array_equal(energy.spatial_fan_out(g), brute.numpy()[0, :, :, 0])


def test_conv_fan_out_is_smaller_at_the_border():
    conv = network.describe(conv_dense()).compute_nodes[0]
    fan = energy.fan_out(conv)[:, :, 0]
    assert fan[0, 0] == 2 * 2 * 2 and fan[0, 1] == 2 * 3 * 2 and fan[1, 1] == 3 * 3 * 2   # corner, edge, interior
    assert fan.sum() == 10 * 10 * 2   # 10 input rows reached per axis: 2+3+3+2


def _brute_merged(pool_size, conv_kernel, shape, c_out):
    """Outputs of avgpool -> conv(ones) reached from each input position, by pushing a delta through."""
    out = np.zeros(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            delta = np.zeros((1, *shape, 1), np.float32)
            delta[0, i, j, 0] = 1
            pooled = tf.nn.avg_pool2d(delta, pool_size, pool_size, "VALID")
            reached = tf.nn.conv2d(pooled, tf.ones((*conv_kernel, 1, 1)), 1, "SAME")
            out[i, j] = np.count_nonzero(reached.numpy()) * c_out
    return out


@pytest.mark.parametrize("shape", [(6, 6), (7, 10)])
def test_merged_fan_out_of_a_linear_pool_and_a_conv(shape):
    pool = network.AvgPool2d(name="p", input_shape=(*shape, 2), output_shape=(shape[0] // 2, shape[1] // 2, 2),
                             kernel_size=(2, 2), stride=(2, 2))
    conv = network.Conv2d(name="c", input_shape=pool.output_shape, output_shape=(*pool.output_shape[:2], 4),
                          kernel_size=(3, 3), padding="same")
    merged = energy.merged_fan_out(pool, conv)[:, :, 0]
    np.testing.assert_array_equal(merged, _brute_merged((2, 2), (3, 3), shape, 4))


# --------------------------------------------------------------------- hand-counted operations and energy
def test_hand_counted_acs_macs_and_energy():
    geometry = network.describe(conv_dense()).compute_nodes
    assert [(g.name, g.neurons, energy.ann_macs(g)) for g in geometry] == [("conv", 32, 4 * 4 * 2 * 9),
                                                                            ("dense", 3, 96)]
    input_totals = np.zeros((4, 4, 1))
    input_totals[0, 0], input_totals[1, 1], input_totals[3, 2] = 3, 2, 1   # corner, interior, edge
    conv_totals = np.zeros((4, 4, 2))
    conv_totals[0, 0, 0], conv_totals[2, 3, 1] = 6, 4
    counts = energy.count_operations(geometry, {"conv": conv_totals}, input_totals, num_samples=2,
                                     pooling="spiking")
    conv, dense = counts
    assert conv.snn_acs == (3 * 8 + 2 * 18 + 1 * 12) / 2 == 36      # border fan-out 8 and 12, interior 18
    assert dense.snn_acs == 10 * 3 / 2 == 15                        # every spike reaches the 3 units
    assert conv.snn_spikes == 5 and dense.snn_spikes == 0 and conv.snn_macs == dense.snn_macs == 0
    rows, total = energy.energy_table(counts, energy.costs())
    assert rows[0]["ann_energy_j"] == pytest.approx(288 * 4.6e-12)
    assert rows[0]["snn_energy_j"] == pytest.approx(36 * 0.9e-12)
    assert total["ann_energy_j"] == pytest.approx((288 + 96) * 4.6e-12)
    assert total["snn_energy_j"] == pytest.approx((36 + 15) * 0.9e-12)
    assert total["normalized_energy"] == pytest.approx(51 * 0.9 / (384 * 4.6))
    assert total["saving"] == pytest.approx(384 * 4.6 / (51 * 0.9))

    # Analog input: the conv pays its MACs once per inference and no ACs.
    analog = energy.count_operations(geometry, {"conv": conv_totals}, None, num_samples=2, pooling="spiking")
    assert (analog[0].snn_macs, analog[0].snn_acs, analog[1].snn_acs) == (288, 0, 15)
    assert "once per inference" in analog[0].ac_source
    _, total = energy.energy_table(analog, energy.costs())
    assert total["snn_energy_j"] == pytest.approx((288 * 4.6 + 15 * 0.9) * 1e-12)


def test_spiking_and_linear_pools_count_differently():
    geometry = network.describe(conv_pool_conv()).compute_nodes
    assert [energy.ann_adds(g) for g in geometry] == [0, 6 * 6 * 2, 0]        # one add per pooled element
    c1 = np.zeros((6, 6, 2))
    c1[0, 0, 0] = 4            # pool cell (0,0): a corner of the 3x3 pool map
    c1[3, 2, 1] = 2            # pool cell (1,1): the centre
    pool = np.zeros((3, 3, 2))
    pool[1, 1, 1] = 1
    spiking = energy.count_operations(geometry, {"c1": c1, "pool": pool}, None, 1, "spiking")
    assert spiking[1].snn_acs == 6                                   # every c1 spike reaches one pool neuron
    assert spiking[2].snn_acs == 1 * 3 * 3 * 4 and spiking[2].source == "pool"
    linear = energy.count_operations(geometry, {"c1": c1}, None, 1, "linear")
    assert linear[1].snn_acs == 0 and "folded into c2" in linear[1].ac_source
    assert linear[2].snn_acs == 4 * (2 * 2 * 4) + 2 * (3 * 3 * 4)     # merged fan-out via the pool cell
    assert linear[2].source == "c1" and "merged" in linear[2].ac_source


def test_cumulative_energy_ends_at_the_total():
    geometry = network.describe(conv_dense()).compute_nodes
    input_totals = np.ones((4, 4, 1)) * 2
    conv_totals = np.ones((4, 4, 2))
    counts = energy.count_operations(geometry, {"conv": conv_totals}, input_totals, 1, "spiking")
    _, total = energy.energy_table(counts, energy.costs())
    per_step = np.array([[16, 20], [16, 12]])                         # input and conv spikes per step
    input_acs = [counts[0].snn_acs / 2] * 2
    curve = energy.cumulative_energy(counts, energy.costs(), per_step, ("input", "conv"), input_acs)
    assert curve[-1] == pytest.approx(total["snn_energy_j"])
    assert curve[0] == pytest.approx((counts[0].snn_acs / 2 + 20 / 32 * counts[1].snn_acs) * 0.9e-12)


# --------------------------------------------------------------------- presets
def test_presets_and_user_pair():
    assert energy.costs() == energy.Costs("45nm-fp32", 4.6, 0.9)
    assert energy.costs("fp16") == energy.Costs("fp16", 1.5, 0.4)
    assert energy.costs("int8") == energy.Costs("int8", 0.23, 0.03)
    assert energy.costs("int8", 2.0, 0.5) == energy.Costs("user", 2.0, 0.5)


@pytest.mark.parametrize("kwargs,message", [
    ({"preset": "7nm"}, "PRESET='7nm'"),
    ({"mac_pj": -1.0, "ac_pj": 0.5}, "MAC_PJ=-1.0"),
    ({"mac_pj": 1.0}, "MAC_PJ and AC_PJ go together"),
    ({"mac_pj": 1.0, "ac_pj": float("nan")}, "finite"),
])
def test_bad_presets_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        energy.costs(**kwargs)


@pytest.mark.parametrize("args,message", [
    (["--timesteps", "5", "--preset", "7nm"], "PRESET='7nm'"),
    (["--timesteps", "5", "--mac-pj", "-1", "--ac-pj", "0.5"], "must be finite and >= 0"),
    (["--preset", "int8"], "T is required"),
    (["--timesteps", "5", "--net", "qcfs+stdb"], "NET='qcfs+stdb'"),
])
def test_bad_energy_input_exits_2_before_any_work(sandbox, args, message, capsys):
    assert main(["energy", f"OUT={sandbox}", "--run", "bad", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (sandbox / "results" / "bad").exists() and not results.Folders.under(sandbox).trained.exists()


# --------------------------------------------------------------------- ESCAPE-NET
def test_escape_net_width_64_costs_126_million_macs():
    # the dense geometry (no weights): a random initialisation may hold an exact zero, which is not counted
    geometry = {g.name: dataclasses.replace(g, layer=None) if isinstance(g, network.Weighted) else g
                for g in network.describe(escape_net.build(width=64)).compute_nodes}
    assert energy.ann_macs(geometry["conv1"]) == 56 * 100 * 64 * 8 * 8 * 1 == 22_937_600
    assert energy.ann_macs(geometry["conv2"]) == 28 * 50 * 64 * 4 * 4 * 64 == 91_750_400
    assert sum(energy.ann_macs(g) for g in geometry.values()) == 126_157_568
    assert energy.ann_adds(geometry["pool1"]) == 56 * 100 * 64
    assert [g.neurons for g in geometry.values()] == [358400, 89600, 89600, 22400, 22400, 256, 3]


# --------------------------------------------------------------------- the stage, end to end
LAYER_FIELDS = {"name", "neurons", "ann_macs", "ann_adds", "snn_spikes", "snn_acs", "snn_macs",
                "ann_energy_j", "snn_energy_j"}
COMMON = ["--width", "4", "--epochs", "3", "--run", "en", "--num-samples", "20", "--timesteps", "12"]


@pytest.mark.slow
def test_energy_stage_end_to_end(sandbox, tiny_npz, capsys):
    assert main(["energy", f"OUT={sandbox}", "--data", str(tiny_npz), *COMMON]) == 0
    run = sandbox / "results" / "en"
    record = json.loads((run / "energy.json").read_text())
    assert {"preset", "e_mac_pj", "e_ac_pj", "timesteps", "input_coding", "layers", "total"} <= set(record)
    assert set(record["total"]) == {"ann_energy_j", "snn_energy_j", "normalized_energy", "saving"}
    assert record["input_coding"] == "poisson" and record["timesteps"] == 12 and record["pooling"] == "spiking"
    assert [row["name"] for row in record["layers"]] == ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1",
                                                         "dense2"]
    for row in record["layers"]:
        assert LAYER_FIELDS <= set(row)
        assert row["ann_energy_j"] == pytest.approx((row["ann_macs"] * 4.6 + row["ann_adds"] * 0.9) * 1e-12)
        assert row["snn_energy_j"] == pytest.approx((row["snn_macs"] * 4.6 + row["snn_acs"] * 0.9) * 1e-12)
    conv1 = record["layers"][0]
    assert conv1["snn_acs"] > 0 and conv1["snn_macs"] == 0
    total = record["total"]
    assert total["normalized_energy"] == pytest.approx(total["snn_energy_j"] / total["ann_energy_j"])
    memory = record["memory"]            # beside it, with memory accesses (counted by hand in test_energy_memory.py)
    assert [row["name"] for row in memory["layers"]] == [row["name"] for row in record["layers"]]
    assert memory["total"]["snn_total_j"] == pytest.approx(total["snn_energy_j"] + memory["total"]["snn_memory_j"])
    assert memory["total"]["ann_total_j"] == pytest.approx(total["ann_energy_j"] + memory["total"]["ann_memory_j"])
    footprint = memory["footprint"]
    assert footprint["snn"]["total"]["weight_bytes"] == footprint["ann"]["total"]["weight_bytes"] > 0
    curve = record["per_timestep"]["snn_cumulative_energy_j"]
    assert len(curve) == 12 and curve[-1] == pytest.approx(total["snn_energy_j"])
    assert all(b >= a for a, b in zip(curve, curve[1:]))
    assert 0 <= record["input"]["floor_normalized_energy"] and record["input"]["mean_abs_x"] > 0
    check_uncertainty(record)
    for name in record["figures"].values():
        assert (run / name).stat().st_size > 0
    assert main(["energy", f"OUT={sandbox}", "--data", str(tiny_npz), *COMMON, "--net", "qcfs",
                 "--coding", "analog"]) == 0
    qcfs = json.loads((run / "energy_analog.json").read_text())
    assert qcfs["net"] == "qcfs" and qcfs["pooling"] == "linear" and qcfs["readout"] == "membrane"
    assert "v(0) = theta/2" in qcfs["network"] and 0 <= qcfs["own_ann_accuracy"] <= 1
    assert qcfs["layers"][0]["snn_macs"] == qcfs["layers"][0]["ann_macs"]      # analog input: conv1's MACs once
    out = capsys.readouterr().out
    assert "normalised" in out and "with memory (32-bit words" in out

    # Constant input: its own file; the first conv pays its MACs once.
    assert main(["energy", f"OUT={sandbox}", "--coding", "analog", *COMMON]) == 0
    analog = json.loads((run / "energy_analog.json").read_text())
    assert analog["layers"][0]["snn_macs"] == analog["layers"][0]["ann_macs"]
    assert analog["layers"][0]["snn_acs"] == 0 and analog["input"]["events_per_inference"] == 0

    # The rate and delta encoders: their own files; conv1's ACs are exactly the input's floor.
    for coding, option in (("rate", ["--gain", "2"]), ("delta", ["--delta", "0.1"])):
        assert main(["energy", f"OUT={sandbox}", "--coding", coding, *option, *COMMON]) == 0
        coded = json.loads((run / f"energy_{coding}.json").read_text())
        assert coded["input"]["coding"] == coding and coded["input"]["events_per_inference"] > 0
        assert coded["input"]["floor_normalized_energy"] == pytest.approx(
            coded["layers"][0]["snn_energy_j"] / coded["total"]["ann_energy_j"])
        assert coded["input"]["encoder_energy"] == "not counted (for any coding)"

    # NET=stdb needs the STDB stage's exported network ...
    assert main(["energy", f"OUT={sandbox}", "--net", "stdb", *COMMON]) == 2
    assert "stdb_T12.json not found" in capsys.readouterr().err
    (run / "stdb_T12.json").write_text(json.dumps({"timesteps": 12}))
    assert main(["energy", f"OUT={sandbox}", "--net", "stdb", *COMMON]) == 2
    assert "names no exported_model" in capsys.readouterr().err

    # ... and counts it with linear pools folded into the next conv and a membrane readout.
    model_path = json.loads((run / "run.json").read_text())["model"]["path"]
    network = engine.SpikingNetwork(engine.load_keras(model_path), None, engine.SnnSettings(timesteps=12))
    x = np.load(tiny_npz)["x_train"][:50, :, :, None]
    network = engine.SpikingNetwork(network.model, engine.calibrate_thresholds(network, x), network.settings)
    exported = stdb.export_h5(network, sandbox / "stdb_T12.h5")
    (run / "stdb_T12.json").write_text(json.dumps({"timesteps": 12, "exported_model": str(exported),
                                                   "thresholds": network.threshold_values(), "leak": 1.0}))
    assert main(["energy", f"OUT={sandbox}", "--net", "stdb", *COMMON]) == 0
    tuned = json.loads((run / "energy.json").read_text())
    assert tuned["net"] == "stdb" and tuned["pooling"] == "linear" and tuned["readout"] == "membrane"
    rows = {row["name"]: row for row in tuned["layers"]}
    assert rows["pool1"]["snn_acs"] == rows["pool1"]["snn_spikes"] == 0
    assert rows["conv2"]["ac_source"] == "conv1 spikes x merged fan-out of pool1+conv2"
    assert rows["conv2"]["snn_acs"] > 0 and rows["dense2"]["snn_spikes"] == 0
