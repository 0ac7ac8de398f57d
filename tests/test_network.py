"""The one network description: nodes, shapes, neurons and padding of a converted ESCAPE-NET."""
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf

from keras_models import escape_net
from pipeline import UserError, network


def test_escape_net_is_described_node_by_node():
    graph = network.describe(escape_net.build(width=4), {"conv1": 0.5}, network.Neurons(pooling="spiking"))
    kinds = [(type(n).__name__, n.name) for n in graph.nodes]
    assert kinds == [("Conv2d", "conv1"), ("AvgPool2d", "pool1"), ("Dropout", "drop1"), ("Conv2d", "conv2"),
                     ("AvgPool2d", "pool2"), ("Dropout", "drop2"), ("Conv2d", "conv3"), ("Flatten", "flatten"),
                     ("Affine", "dense1"), ("Dropout", "drop_dense"), ("Affine", "dense2")]
    conv1 = graph.nodes[0]
    assert conv1.input_shape == (56, 100, 1) and conv1.output_shape == (56, 100, 4)
    assert conv1.kernel_size == (8, 8) and conv1.pads() == (3, 3)     # 'same', even kernel: 3 before, 4 after
    assert graph.thresholds() == {"conv1": 0.5, "conv2": 1.0, "conv3": 1.0, "dense1": 1.0, "dense2": 1.0}
    assert graph.readout.name == "dense2" and graph.num_classes == 3
    assert graph.edges[0] == ("input", "conv1") and graph.edges[-1] == ("dense2", "output")
    assert [n.name for n in graph.stateful()] == ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"]
    linear = network.describe(escape_net.build(width=4))
    assert [n.name for n in linear.stateful()] == ["conv1", "conv2", "conv3", "dense1", "dense2"]
    assert [n.name for n in linear.compute_nodes] == ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"]


def test_qcfs_layers_become_threshold_ratios():
    model = escape_net.build("qcfs", width=4, levels=4)
    for value, layer in zip((2.0, 4.0, 1.0, 3.0), (layer for layer in model.layers if layer.name.startswith("qcfs"))):
        layer.threshold.assign(value)
    graph = network.describe(model)
    assert graph.thresholds() == {"conv1": 2.0, "conv2": 2.0, "conv3": 0.25, "dense1": 3.0, "dense2": 1.0}
    assert [n.qcfs_lambda for n in graph.weighted] == [2.0, 4.0, 1.0, 3.0, None]


def test_with_neurons_changes_only_what_is_given():
    graph = network.describe(escape_net.build(width=4), {"conv2": 2.0}, network.Neurons(leak=0.9))
    changed = graph.with_neurons({"conv1": 3.0}, {"dense1": 0.5})
    assert changed.thresholds()["conv1"] == 3.0 and changed.thresholds()["conv2"] == 2.0
    assert changed.leaks() == {"conv1": 0.9, "conv2": 0.9, "conv3": 0.9, "dense1": 0.5}
    assert graph.thresholds()["conv1"] == 1.0   # frozen: the original is unchanged


@pytest.mark.parametrize("size, window, stride, expected", [(100, 8, 1, (100, 3, 4)), (56, 4, 1, (56, 1, 2)),
                                                             (7, 2, 2, (4, 0, 1)), (9, 3, 2, (5, 1, 1))])
def test_same_padding_puts_the_smaller_half_first(size, window, stride, expected):
    assert network.same_padding(size, window, stride) == expected
    x = tf.zeros((1, size, 1, 1))
    assert tf.nn.conv2d(x, tf.zeros((window, 1, 1, 1)), (stride, 1), "SAME").shape[1] == expected[0]


def test_shapes_must_chain_and_bad_neurons_are_refused():
    conv = network.Conv2d(name="c", input_shape=(4, 4, 1), output_shape=(4, 4, 2), kernel_size=(3, 3),
                          padding="same", readout=True, neuron=network.IF(1.0))
    with pytest.raises(UserError, match="node 'c' takes"):
        network.Network("n", (5, 4, 1), (conv,))
    assert network.Network("n", (4, 4, 1), (conv,)).readout is conv
    with pytest.raises(UserError, match="threshold"):
        network.IF(0.0)
    with pytest.raises(UserError, match="pooling"):
        network.Neurons(pooling="max")
