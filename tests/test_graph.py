"""Graphs through the engine: residual adds, concatenation, grouped and linear convolutions."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf

from pipeline import UserError, conversion, engine, network

layers = tf.keras.layers


def residual_block(seed=0, branch_gain=1.0, bias=True):
    """conv1 (ReLU) -> conv2 (ReLU) -> conv3 (linear) + conv1 -> ReLU -> flatten -> dense readout (no bias)."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((4, 4, 2))
    a = layers.Conv2D(3, 3, padding="same", activation="relu", use_bias=bias, name="conv1")(inputs)
    b = layers.Conv2D(3, 3, padding="same", activation="relu", use_bias=bias, name="conv2")(a)
    b = layers.Conv2D(3, 3, padding="same", use_bias=bias, name="conv3")(b)
    x = layers.Activation("relu", name="relu")(layers.Add(name="add")([b, a]))
    out = layers.Dense(3, use_bias=False, name="out")(layers.Flatten(name="flatten")(x))
    model = tf.keras.Model(inputs, out, name="residual")
    conv2 = model.get_layer("conv2")
    conv2.set_weights([w * branch_gain for w in conv2.get_weights()])
    return model


def concat_block(seed=0):
    """Two convolutions of the input, concatenated, pooled, read out."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((4, 4, 2))
    a = layers.Conv2D(2, 3, padding="same", activation="relu", name="left")(inputs)
    b = layers.Conv2D(3, 1, activation="relu", name="right")(inputs)
    x = layers.Concatenate(name="cat")([a, b])
    x = layers.AveragePooling2D(2, name="pool")(x)
    out = layers.Dense(3, name="out")(layers.Flatten(name="flatten")(x))
    return tf.keras.Model(inputs, out, name="concat")


def separable_chain(seed=0):
    """A depthwise convolution (groups = channels, linear) into a pointwise one (ReLU): a separable block."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((4, 4, 2))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.Conv2D(8, 3, padding="same", groups=4, name="depthwise")(x)
    x = layers.Conv2D(4, 1, activation="relu", name="pointwise")(x)
    out = layers.Dense(3, name="out")(layers.Flatten(name="flatten")(x))
    return tf.keras.Model(inputs, out, name="separable")


def test_a_residual_block_is_described_as_nodes_and_edges():
    graph = network.describe(residual_block())
    assert [(type(n).__name__, n.name) for n in graph.nodes] == [
        ("Conv2d", "conv1"), ("Conv2d", "conv2"), ("Conv2d", "conv3"), ("Add", "add"), ("Flatten", "flatten"),
        ("Affine", "out")]
    assert graph.edges == (("input", "conv1"), ("conv1", "conv2"), ("conv2", "conv3"), ("conv3", "add"),
                           ("conv1", "add"), ("add", "flatten"), ("flatten", "out"), ("out", "output"))
    assert not graph.is_chain
    conv3, add = graph.nodes[2], graph.nodes[3]
    assert conv3.neuron is None and add.neuron is not None      # linear branch end; the ReLU after the add
    assert [n.name for n in graph.calibrated()] == ["conv1", "conv2", "add", "out"]
    assert [n.name for n in graph.compute_nodes] == ["conv1", "conv2", "conv3", "add", "out"]


def test_a_merge_rescales_each_input_to_the_unit_of_its_first():
    # units: input 1; conv1 fires at theta 2: its spikes stand for 2; conv2 (theta 4) for 2 * 4 = 8;
    # conv3 is linear: its current keeps conv2's unit 8. The add works in conv3's unit: conv1's spikes x 2/8.
    graph = network.describe(residual_block(), {"conv1": 2.0, "conv2": 4.0, "add": 3.0})
    units = graph.units(graph.thresholds())
    assert (units["conv1"], units["conv2"], units["conv3"], units["add"], units["flatten"]) == (2, 8, 8, 24, 24)
    assert graph.merge_scales(graph.nodes[3], units) == (1.0, 0.25)


def test_a_graph_node_that_reads_a_later_node_or_is_never_read_is_refused():
    conv = network.Conv2d(name="c", input_shape=(4, 4, 1), output_shape=(4, 4, 1), kernel_size=(1, 1),
                          neuron=network.IF(1.0))
    out = network.Affine(name="o", input_shape=(16,), output_shape=(2,), readout=True, neuron=network.IF(1.0),
                         inputs=("f",))
    flat = network.Flatten(name="f", input_shape=(4, 4, 1), output_shape=(16,), inputs=("c",))
    assert network.Network("n", (4, 4, 1), (conv, flat, out)).edges[-2:] == (("f", "o"), ("o", "output"))
    with pytest.raises(UserError, match="reads \\['f'\\], which come after it"):
        network.Network("n", (4, 4, 1), (conv, out, flat))
    other = network.Conv2d(name="d", input_shape=(4, 4, 1), output_shape=(4, 4, 1), kernel_size=(1, 1),
                           neuron=network.IF(1.0), inputs=("input",))
    with pytest.raises(UserError, match="nothing reads nodes \\['d'\\]"):
        network.Network("n", (4, 4, 1), (conv, other, flat, out))
    with pytest.raises(UserError, match="adds"):
        network.Network("n", (4, 4, 1), (conv, network.Add(name="a", input_shape=(4, 4, 1), output_shape=(4, 4, 2),
                                                           inputs=("input", "c")), flat, out))


def test_an_add_whose_sum_is_also_read_without_its_relu_is_refused_in_one_line():
    inputs = layers.Input((4,))
    a = layers.Dense(4, activation="relu", name="a")(inputs)
    s = layers.Add(name="add")([a, layers.Dense(4, name="b")(a)])
    x = layers.Concatenate(name="cat")([layers.ReLU(name="relu")(s), s])
    model = tf.keras.Model(inputs, layers.Dense(2, name="out")(x))
    with pytest.raises(UserError, match="'relu' \\(ReLU\\) must directly follow an Add, the only reader"):
        network.describe(model)


def test_the_membrane_readout_of_a_residual_block_approaches_its_ann_at_long_t():
    # The residual branch is made 5x stronger than the shortcut, so the two inputs of the add stand for
    # different units: adding their raw spikes would be far off; rescaled, the readout's current per step
    # times its input's unit is the ANN's logit (without biases: a unit-spike network adds its biases
    # unscaled, Rathi et al.'s convention, which the calibration absorbs only roughly).
    model = residual_block(branch_gain=5.0, bias=False)
    x = np.random.default_rng(1).uniform(0, 1, (16, 4, 4, 2)).astype(np.float32)
    settings = engine.SnnSettings(timesteps=400, coding="analog", batch_size=16)
    thresholds = engine.calibrate_thresholds(conversion.from_model(model, settings), x, scale=1.0)
    net = conversion.from_model(model, settings, thresholds)
    result = net.simulate(x)
    unit = net.graph.units(thresholds)["flatten"]
    ann = model.predict(x, verbose=0)
    np.testing.assert_allclose(result.logits / 400 * unit, ann, atol=0.05 * np.abs(ann).max())   # unscaled: 4.6 x that
    assert thresholds["conv2"] > 3 * thresholds["conv1"]   # the branch's unit really differs


@pytest.mark.parametrize("build", [residual_block, concat_block, separable_chain])
@pytest.mark.parametrize("coding", ["analog", "poisson"])
def test_graphs_spike_the_same_on_the_step_and_fast_paths(build, coding):
    model = build()
    x = np.random.default_rng(2).uniform(0, 1, (6, 4, 4, 2)).astype(np.float32)
    settings = engine.SnnSettings(timesteps=12, coding=coding, batch_size=6, readout="spike_count")
    net = conversion.from_model(model, settings, engine.calibrate_thresholds(conversion.from_model(model, settings), x))
    step = net.simulate(x, record=range(6))
    assert step.spikes_per_timestep[:, 1:].sum() > 0
    for sparse in (True, False):
        fast = net.simulate(x, record=range(6), fast=True, sparse=sparse)
        np.testing.assert_array_equal(fast.spikes_per_timestep, step.spikes_per_timestep)
        np.testing.assert_array_equal(fast.outputs, step.outputs)
        for name in step.layer_names[1:]:
            np.testing.assert_array_equal(fast.recorded[name], step.recorded[name], err_msg=name)


def test_a_qcfs_after_an_add_is_its_neurons_at_lambda_over_its_input_unit():
    # conv1 lambda 2, conv2 lambda 5 (conv3 is linear: it keeps conv2's unit 5), add lambda 3:
    # theta conv1 = 2, conv2 = 5 / 2, add = 3 / 5; the add rescales conv1's spikes by 2 / 5.
    from keras_models import qcfs
    twin = qcfs.twin(residual_block(), levels=4)
    for name, lam in (("conv1_qcfs", 2.0), ("conv2_qcfs", 5.0), ("relu_qcfs", 3.0)):
        twin.get_layer(name).threshold.assign(lam)
    graph = network.describe(twin)
    assert graph.thresholds() == {"conv1": 2.0, "conv2": 2.5, "add": 0.6, "out": 1.0}
    assert graph.nodes[3].qcfs_lambda == 3.0
    assert graph.merge_scales(graph.nodes[3], graph.units(graph.thresholds())) == (1.0, 0.4)
