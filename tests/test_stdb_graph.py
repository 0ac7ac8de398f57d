"""STDB on a graph: a residual block's kernels (its linear branch end's too) and its add's threshold learn."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from test_graph import residual_block

from pipeline import conversion, engine
from pipeline.training import stdb

T = 6


def residual_problem():
    """The residual block (conv3 linear, a ReLU after the add) at thresholds 0.5 on 16 samples, 3 labels."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (16, 4, 4, 2)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = residual_block()
    thresholds = {name: 0.5 for name in ("conv1", "conv2", "add", "out")}
    settings = engine.SnnSettings(timesteps=T, coding="analog", batch_size=16)
    return conversion.from_model(model, settings, thresholds), x, y


def test_one_stdb_step_on_a_residual_graph_reaches_every_kernel_and_the_adds_threshold():
    net, x, y = residual_problem()
    assert [n.name for n in net.graph.weighted if n.neuron is None] == ["conv3"]
    hidden = net.hidden_thresholds()                       # conv1, conv2 and the add
    with tf.GradientTape() as tape:
        out = net.run(tf.constant(x), engine.sample_keys(0, 1, np.arange(len(x))), training=True,
                      spike_fn=stdb.StdbSettings().spike_function(), learn=("thresholds",))
        loss = stdb.cross_entropy(out["logits"], tf.constant(y), T)
    kernels = {stage.name: stage.layer.kernel for stage in net.graph.weighted}
    grads = tape.gradient(loss, list(kernels.values()) + hidden)
    for name, grad in zip(kernels, grads):
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, name
    by_threshold = {name: grad for var, grad in zip(hidden, grads[len(kernels):])
                    for name, other in net.thresholds.items() if other is var}
    assert sorted(by_threshold) == ["add", "conv1", "conv2"] and float(by_threshold["add"]) != 0


@pytest.mark.slow   # four STDB epochs with validation: ~10 s
def test_stdb_lowers_a_residual_graphs_loss_in_a_few_steps():
    net, x, y = residual_problem()
    result = stdb.train(net, x, y, x, y, stdb.StdbSettings(epochs=4, batch_size=16, learning_rate=1e-2,
                                                           train_thresholds=True), progress=False)
    losses = [record.loss for record in result.history]   # one batch an epoch: the loss before each update
    assert losses[-1] < losses[0], losses


def test_a_residual_graph_is_exported_with_its_weights_as_they_are_and_its_thresholds_beside(tmp_path):
    from pipeline import UserError
    net, _, _ = residual_problem()
    assert not stdb.foldable(net)     # the add's threshold has no weights to go into; conv3 has none
    with pytest.raises(UserError, match="do not fold into its weights"):
        stdb.fold_thresholds(net)
    exported = engine.load_keras(stdb.export_h5(net, tmp_path / "stdb.h5"))
    for a, b in zip(exported.get_weights(), net.model.get_weights()):
        np.testing.assert_array_equal(a, b)
