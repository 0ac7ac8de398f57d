"""The activation-sparsity penalty (SPARSITY): in the QCFS fine-tune and in STDB it lowers the hidden
neurons' activity on a tiny problem, equals its formula, and weight 0 changes nothing."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import blobs, trained_blobs_net

from keras_models import escape_net, qcfs
from pipeline import UserError, engine
from pipeline.training import ann, stdb


def mean_rate(model, x):
    """Mean of h / lambda over every QCFS neuron of ``model`` on ``x`` (each neuron counted once)."""
    layers = qcfs.layers_of(model)
    outputs = tf.keras.Model(model.inputs, [layer.output for layer in layers]).predict(x, verbose=0)
    total = sum(float(np.sum(h / layer.threshold.numpy())) for h, layer in zip(outputs, layers))
    return total / (len(x) * sum(h[0].size for h in outputs))


def fine_tune(weight, x, y):
    """A width-4 QCFS ESCAPE-NET (L=4) trained on blobs, with ``penalise_activity(weight)`` unless None."""
    ann.seed_everything(0)
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=4, levels=4)
    qcfs.initialise_thresholds(model, x[:200])
    if weight is not None:
        qcfs.penalise_activity(model, weight)
    model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model


@pytest.mark.slow  # QCFS fine-tunes
def test_qcfs_penalty_is_its_formula_lowers_activity_and_weight_0_changes_nothing():
    x, y = blobs(400, 0)
    x_test, _ = blobs(100, 1)
    plain, zero, penalised = fine_tune(None, x, y), fine_tune(0.0, x, y), fine_tune(2.0, x, y)
    for a, b in zip(plain.get_weights(), zero.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not zero.losses
    assert mean_rate(penalised, x_test) < 0.7 * mean_rate(plain, x_test)
    penalised(x_test)                               # the loss the penalty adds: weight x the mean rate
    assert float(tf.add_n(penalised.losses)) == pytest.approx(2.0 * mean_rate(penalised, x_test), rel=1e-4)


def test_penalty_weight_is_validated_and_names_the_model():
    with pytest.raises(UserError, match="SPARSITY"):
        ann.TrainSettings("qcfs", sparsity=-1.0)
    with pytest.raises(UserError, match="SPARSITY"):
        stdb.StdbSettings(sparsity=-0.1)
    with pytest.raises(ValueError, match="qcfs"):
        ann.TrainSettings("modified", sparsity=1.0)

    class Data:
        sha256 = "0" * 64
    assert (ann.model_name(Data, ann.TrainSettings("qcfs"))
            == ann.model_name(Data, ann.TrainSettings("qcfs", sparsity=0.0)))
    assert "_sp4_" in ann.model_name(Data, ann.TrainSettings("qcfs", sparsity=4.0))


@pytest.fixture(scope="module")
def problem():
    model, x_train, y_train, x_test, y_test = trained_blobs_net(480, 200)
    calibrate = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=16, batch_size=100))
    thresholds = engine.calibrate_thresholds(calibrate, x_train[:200])
    return model, thresholds, model.get_weights(), x_train, y_train, x_test, y_test


def hidden_rate(net, x):
    """Spikes per hidden neuron and step, counted by the engine's simulation."""
    result = net.simulate(x)
    neurons = sum(net.neuron_counts()[name] for name in net.spiking_layer_names)
    return result.spikes_per_timestep[:, 1:].sum() / (neurons * net.settings.timesteps * len(x))


def test_stdb_firing_rate_is_the_engines_count(problem):
    model, thresholds, weights, _, _, x_test, _ = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=6, batch_size=50))
    out = net.run(tf.constant(x_test[:50]), engine.batch_key(0, 0))
    assert float(stdb.firing_rate(net, out["counts"])) == pytest.approx(hidden_rate(net, x_test[:50]), rel=1e-5)


@pytest.mark.slow  # STDB training
def test_stdb_penalty_lowers_firing_and_weight_0_leaves_the_loss_alone(problem, monkeypatch):
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    settings = engine.SnnSettings(timesteps=6, batch_size=100)
    rates, accuracy = {}, {}
    for weight in (0.0, 2.0):
        model.set_weights(weights)
        net = engine.SpikingNetwork(model, thresholds, settings)
        if weight == 0:   # weight 0 never computes the penalty: the loss, and so every number, is as before
            monkeypatch.setattr(stdb, "firing_rate", lambda *a: pytest.fail("firing_rate used at weight 0"))
        result = stdb.train(net, x_train, y_train, x_test, y_test,
                            stdb.StdbSettings(epochs=2, learning_rate=1e-3, sparsity=weight), progress=False)
        monkeypatch.undo()
        rates[weight], accuracy[weight] = hidden_rate(net, x_test), (result.validation_before, result.validation_after)
    assert rates[2.0] < 0.7 * rates[0.0]
    assert accuracy[2.0][1] > accuracy[2.0][0] + 0.1   # fewer spikes, and still learning
