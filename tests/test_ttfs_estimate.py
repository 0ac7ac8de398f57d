"""tools/ttfs_estimate.py: the spikes an exact TTFS conversion would fire, counted by hand on a tiny net."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from pipeline import conversion, energy, engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import ttfs_estimate  # noqa: E402
from keras_models.qcfs import QCFS  # noqa: E402


def tiny():
    """1x1 ReLU conv (weight 1) on a 2x2 map, dense 4 -> 2 with every weight non-zero."""
    x = tf.keras.Input((2, 2, 1))
    h = tf.keras.layers.Conv2D(1, 1, use_bias=False, activation="relu", name="conv1")(x)
    out = tf.keras.layers.Dense(2, name="dense1")(tf.keras.layers.Flatten(name="flatten")(h))
    model = tf.keras.Model(x, out)
    model.get_layer("conv1").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("dense1").set_weights([np.full((4, 2), 0.5, np.float32), np.zeros(2, np.float32)])
    return model


def test_one_spike_per_positive_activation_and_per_non_zero_input():
    model = tiny()
    x = np.array([[[1, -1], [0, 2]], [[-1, -1], [3, 0]]], np.float32)[..., None]
    nodes = conversion.from_model(model, engine.SnnSettings(timesteps=8)).graph.compute_nodes
    assert {name: layer.name for name, layer in ttfs_estimate.activation_layers(model, nodes).items()} == {
        "conv1": "conv1"}
    totals, inputs = ttfs_estimate.ttfs_totals(model, nodes, x)
    # conv1 = x; positive at (0,0), (1,1) in the first sample, (1,0) in the second; the readout fires nothing
    assert set(totals) == {"conv1"}
    np.testing.assert_array_equal(totals["conv1"][..., 0], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(inputs[..., 0], [[2, 2], [1, 1]])    # non-zero values, both samples
    counts = energy.count_operations(nodes, totals, inputs, len(x), "linear")
    # per inference: 6 input spikes / 2 x fan-out 1 into conv1; 3 conv1 spikes / 2 x fan-out 2 into dense1
    assert [c.snn_acs for c in counts] == pytest.approx([3.0, 3.0])


def test_a_qcfs_network_spikes_where_its_quantised_activation_is_positive():
    x_in = tf.keras.Input((2, 2, 1))
    h = tf.keras.layers.Conv2D(1, 1, use_bias=False, name="conv1")(x_in)
    h = QCFS(levels=2, initial_threshold=4.0, name="qcfs1")(h)     # floor(z * 2 / 4 + 1/2): 0 below z = 1
    model = tf.keras.Model(x_in, tf.keras.layers.Dense(2, name="dense1")(tf.keras.layers.Flatten()(h)))
    model.get_layer("conv1").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    x = np.array([[[1, -1], [0.5, 2]], [[-1, -1], [3, 0]]], np.float32)[..., None]
    nodes = conversion.from_model(model, engine.SnnSettings(timesteps=2)).graph.compute_nodes
    assert ttfs_estimate.activation_layers(model, nodes)["conv1"].name == "qcfs1"
    totals, inputs = ttfs_estimate.ttfs_totals(model, nodes, x)
    # (1, 0): 0.5 rounds to silence in the first sample, 3 fires in the second
    np.testing.assert_array_equal(totals["conv1"][..., 0], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(inputs[..., 0], [[2, 2], [2, 1]])


def test_a_file_that_is_not_a_model_is_refused_in_one_line_before_anything_runs(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(f"import os; os.system('touch {tmp_path}/pwned')".encode())
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "tools/ttfs_estimate.py", "RUN=never", f"OUT={tmp_path}", str(bad)],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "results").exists()   # no RUN was prepared
