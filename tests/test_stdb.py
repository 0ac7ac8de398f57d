"""STDB: surrogate gradients against their formulas, the custom-gradient spike, training, export."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import trained_blobs_net

from pipeline import UserError, engine
from pipeline.engine.neurons import NEVER_FIRED
from pipeline.training import stdb


def make_problem():
    """A width-4 ESCAPE-NET trained on blobs, its conversion thresholds, weights and data."""
    model, x_train, y_train, x_test, y_test = trained_blobs_net(480, 200)
    calibrate = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=16, batch_size=100))
    thresholds = engine.calibrate_thresholds(calibrate, x_train[:200])
    return model, thresholds, model.get_weights(), x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def problem():
    return make_problem()


MEMBRANES = np.array([-0.5, 0.0, 0.3, 1.0, 1.6, 2.0, 2.4], np.float32)


# ------------------------------------------------------------------ surrogates
def test_linear_surrogate_matches_its_formula():
    theta, gamma = 2.0, 0.3
    got = stdb.LinearSurrogate(gamma)(tf.constant(MEMBRANES), theta).numpy()
    want = gamma * np.maximum(0.0, 1.0 - np.abs(MEMBRANES / theta - 1.0))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[MEMBRANES == 2.0][0] == pytest.approx(gamma)  # peak at threshold


def test_stdb_surrogate_matches_its_formula_and_vanishes_for_silent_neurons():
    since = np.array([1.0, 5.0, 40.0], np.float32)
    got = stdb.StdbSurrogate(0.3, 0.01)(None, 1.0, tf.constant(since)).numpy()
    np.testing.assert_allclose(got, 0.3 * np.exp(-0.01 * since), rtol=1e-6)
    never = stdb.StdbSurrogate()(None, 1.0, tf.constant(7.0 - NEVER_FIRED)).numpy()
    assert never < 1e-4 * 0.3


@pytest.mark.parametrize("compiled", [False, True])
def test_spike_function_gradients_for_membrane_and_trainable_threshold(compiled):
    spike = stdb.SpikeFunction(stdb.LinearSurrogate(0.3))
    v = tf.constant(MEMBRANES)
    theta = tf.Variable(2.0)
    upstream = np.linspace(0.5, 2.0, len(MEMBRANES)).astype(np.float32)

    def grads():
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(spike(v, theta) * upstream)
        return tape.gradient(loss, [v, theta])

    dv, dtheta = (tf.function(grads) if compiled else grads)()
    sur = 0.3 * np.maximum(0.0, 1.0 - np.abs(MEMBRANES / 2.0 - 1.0))
    np.testing.assert_array_equal(spike(v, theta).numpy(), (MEMBRANES >= 2.0).astype(np.float32))
    np.testing.assert_allclose(dv.numpy(), upstream * sur / 2.0, rtol=1e-6)
    assert float(dtheta) == pytest.approx(float(np.sum(-upstream * sur * MEMBRANES / 4.0)), rel=1e-5)


def test_stdb_spike_function_uses_time_since_last_spike():
    spike = stdb.SpikeFunction(stdb.StdbSurrogate(0.3, 0.01))
    v, since = tf.constant([0.5, 1.5]), tf.constant([3.0, 1003.0])
    with tf.GradientTape() as tape:
        tape.watch(v)
        loss = tf.reduce_sum(spike(v, 1.0, since))
    np.testing.assert_allclose(tape.gradient(loss, v).numpy(), 0.3 * np.exp(-0.01 * since.numpy()), rtol=1e-6)


class SinceProbe:
    """A test surrogate whose value is the time since the neuron's last spike."""
    uses_history = True

    def __call__(self, v, threshold, since):
        return since


def test_engine_backpropagates_through_time_with_the_time_since_last_spike():
    layers = tf.keras.layers
    inputs = layers.Input((1,))
    hidden = layers.Dense(1, activation="relu", use_bias=False, name="hidden")(inputs)
    model = tf.keras.Model(inputs, layers.Dense(2, activation="softmax", use_bias=False, name="out")(hidden))
    model.get_layer("hidden").set_weights([np.ones((1, 1), np.float32)])
    model.get_layer("out").set_weights([np.array([[1.0, 0.0]], np.float32)])
    net = engine.SpikingNetwork(model, {"hidden": 1.0}, engine.SnnSettings(timesteps=4, coding="analog", batch_size=1))
    kernel = model.get_layer("hidden").kernel
    with tf.GradientTape() as tape:
        out = net._batch_fn(tf.constant([[0.5]]), engine.batch_key(0, 0), training=False,
                            spike_fn=stdb.SpikeFunction(SinceProbe()))
        loss = out["logits"][0, 0]
    # v = 0.5, 1.0 (spike), 0.5, 1.0 (spike): since = 1000, 1001 (never fired before), 1, 2.
    # dL/dv_t = since_t + dL/dv_{t+1} (leak 1) = 2004, 1004, 3, 2; every v_t holds one 0.5 * kernel.
    assert float(loss) == 2.0
    assert float(tape.gradient(loss, kernel)[0, 0]) == pytest.approx(0.5 * (2004 + 1004 + 3 + 2))


def test_settings_are_validated():
    with pytest.raises(UserError, match="SURROGATE"):
        stdb.StdbSettings(surrogate="sigmoid")
    with pytest.raises(UserError, match="LR"):
        stdb.StdbSettings(learning_rate=0.0)
    assert stdb.StdbSettings(surrogate="stdb").spike_function().uses_history


# ------------------------------------------------------------------ training
def test_stdb_raises_the_accuracy_of_a_short_simulation(problem):
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100))
    result = stdb.train(net, x_train, y_train, x_test, y_test,
                        stdb.StdbSettings(epochs=3, learning_rate=1e-3), progress=False)
    assert result.validation_after >= result.validation_before + 0.2
    assert len(result.history) == 3 and result.history[-1].seconds > 0
    assert result.validation_after == max(h.validation_accuracy for h in result.history)
    assert stdb.evaluate(net, x_test, y_test)[0] == pytest.approx(result.validation_after)  # best epoch restored
    assert result.thresholds == pytest.approx(thresholds)  # not trained unless asked
    assert result.peak_memory_mb > 0


def test_trainable_thresholds_and_leak_receive_updates(problem):
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100, leak=0.95))
    result = stdb.train(net, x_train[:96], y_train[:96], x_test[:100], y_test[:100],
                        stdb.StdbSettings(epochs=1, learning_rate=1e-2, train_thresholds=True, train_leak=True),
                        progress=False)
    hidden = [name for name in thresholds if name != "dense2"]
    assert all(result.thresholds[n] != pytest.approx(thresholds[n], abs=1e-6) for n in hidden)
    assert result.thresholds["dense2"] == pytest.approx(thresholds["dense2"])  # readout: no gradient
    assert any(value != pytest.approx(0.95, abs=1e-6) for value in result.leaks.values())
    assert all(0 < value <= 1 for value in result.leaks.values())


def test_thresholds_take_relative_steps_of_the_neuron_learning_rate(problem):
    # One Adam step moves each log threshold by neuron_lr: every layer changes by the same
    # fraction, whatever its threshold's scale.
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100))
    result = stdb.train(net, x_train[:32], y_train[:32], x_test[:100], y_test[:100],
                        stdb.StdbSettings(epochs=1, train_thresholds=True, neuron_lr=0.05), progress=False)
    for name in thresholds:
        if name != "dense2":
            assert abs(np.log(result.thresholds[name] / thresholds[name])) == pytest.approx(0.05, rel=1e-3)


def test_neuron_learning_rate_is_validated():
    with pytest.raises(UserError, match="NEURON_LR"):
        stdb.StdbSettings(neuron_lr=0.0)


MIRRORED = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
import pipeline
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_models import escape_net
from pipeline import engine
from pipeline.training import stdb
from test_stdb import make_problem
trained, thresholds, weights, x_train, y_train, x_test, y_test = make_problem()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = escape_net.build(input_shape=(8, 8, 1), width=4)
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100))
    result = stdb.train(net, x_train, y_train, x_test, y_test,
                        stdb.StdbSettings(epochs=3, learning_rate=1e-3, train_thresholds=True), progress=False)
print("REPLICAS", strategy.num_replicas_in_sync, "BEFORE", result.validation_before, "AFTER", result.validation_after)
"""


def test_stdb_trains_under_a_mirrored_strategy():
    # Two replicas (two logical CPUs stand in for two GPUs): the batch is split, the gradients
    # summed, and training still works. Its own process: devices are fixed when TF starts.
    import subprocess
    import sys
    from pathlib import Path
    tests = Path(__file__).parent
    script = MIRRORED.format(tests=str(tests), root=str(tests.parent))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split("REPLICAS")[-1].split()
    replicas, before, after = int(words[0]), float(words[2]), float(words[4])
    assert replicas == 2 and after >= before + 0.2


# ------------------------------------------------------------------ export
def test_folded_export_spikes_like_the_thresholded_network(problem, tmp_path):
    model, thresholds, weights, *_, x_test, y_test = problem
    model.set_weights(weights)
    settings = engine.SnnSettings.ini_compatible(timesteps=20, batch_size=100)
    net = engine.SpikingNetwork(model, thresholds, settings)
    path = stdb.export_h5(net, tmp_path / "stdb.h5")
    folded = engine.SpikingNetwork(engine.load_keras(path), settings=settings)  # every threshold 1
    assert folded.threshold_values() == {name: 1.0 for name in thresholds}
    a, b = net.simulate(x_test[:100], y_test[:100]), folded.simulate(x_test[:100], y_test[:100])
    total = a.spikes_per_timestep.sum()
    assert np.abs(a.spikes_per_timestep - b.spikes_per_timestep).sum() <= 1e-3 * total  # float rounding only
    assert np.mean(a.predictions[:, -1] == b.predictions[:, -1]) >= 0.99
