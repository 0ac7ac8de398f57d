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
        out = net.run(tf.constant([[0.5]]), engine.batch_key(0, 0), spike_fn=stdb.SpikeFunction(SinceProbe()))
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
@pytest.mark.slow  # STDB training
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


def test_the_paired_rule_keeps_the_cheapest_epoch_that_holds_where_accuracy_alone_keeps_another():
    def judged(cost, holds):
        return {"validation_cost": cost, "vs_reference": {"non_inferior": holds}}
    # epochs 0..3: (validation accuracy, the rule's judgement); epoch 3 is the most accurate but not non-inferior
    # (its interval is wide), epoch 2 the most accurate of those that hold, epoch 1 the cheapest that holds
    epochs = [(0.80, judged(1.0, True)), (0.82, judged(0.5, True)), (0.85, judged(0.9, True)),
              (0.90, judged(0.1, False))]
    assert min(range(4), key=lambda e: stdb.rank(*epochs[e])) == 1
    assert min(range(4), key=lambda e: stdb.rank(epochs[e][0], None)) == 3     # without a rule: the most accurate
    none_holds = [(0.70, judged(0.1, False)), (0.75, judged(0.9, False))]
    assert min(range(2), key=lambda e: stdb.rank(*none_holds[e])) == 1         # then too


@pytest.mark.slow  # STDB training
def test_a_paired_rule_keeps_the_cheapest_epoch_and_restores_it(problem):
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100))
    # an ANN wrong on every sample: every epoch is non-inferior, so the fewest validation spikes decide
    choice = stdb.CheapestNonInferior(np.zeros(len(y_test), bool),
                                      lambda network, result: result.spikes_per_timestep.sum())
    result = stdb.train(net, x_train, y_train, x_test, y_test, stdb.StdbSettings(epochs=3, learning_rate=1e-3),
                        progress=False, choice=choice)
    costs = [result.judged_before["validation_cost"]] + [h.judged["validation_cost"] for h in result.history]
    assert result.best_epoch == int(np.argmin(costs))
    assert stdb.evaluate(net, x_test, y_test, choice)[2]["validation_cost"] == min(costs)   # that epoch restored


@pytest.mark.slow  # STDB training
def test_the_converted_network_is_kept_where_no_trained_epoch_beats_it(problem):
    # Validation: the samples the converted network decides, labelled with its own decisions (analog
    # input: no draws, a sample's decision does not depend on its batch). It scores 1.0, no trained
    # epoch can score strictly more, so epoch 0 is chosen and the untrained weights, thresholds and
    # leaks come back bit for bit.
    model, thresholds, weights, x_train, y_train, x_test, _ = problem
    model.set_weights(weights)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=100, leak=0.95,
                                                                      coding="analog"))
    own = net.simulate(x_test).predictions[:, -1]
    x_val, y_val = x_test[own >= 0], own[own >= 0]
    start = [w.numpy() for w in net.weight_variables()], net.threshold_values(), net.leak_values()
    result = stdb.train(net, x_train[:96], y_train[:96], x_val, y_val,
                        stdb.StdbSettings(epochs=2, learning_rate=1e-2, train_thresholds=True, train_leak=True),
                        progress=False)
    assert len(y_val) >= 10 and (result.best_epoch, result.validation_before, result.validation_after) == (0, 1, 1)
    assert [h.epoch for h in result.history] == [1, 2]       # both epochs trained, neither kept
    assert (result.thresholds, result.leaks) == start[1:] == (net.threshold_values(), net.leak_values())
    for now, before in zip(net.weight_variables(), start[0]):
        np.testing.assert_array_equal(now.numpy(), before)


@pytest.mark.slow  # STDB training
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


@pytest.mark.slow  # STDB training
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


def test_more_than_one_gpu_gives_a_mirrored_strategy_and_one_the_default(monkeypatch):
    # No GPU here: the device list is faked, and MirroredStrategy (which would look for the devices
    # itself) stands in as a name; what is tested is the choice `distribution_strategy` makes.
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: "mirrored")
    real = tf.config.list_logical_devices
    for gpus, chosen in ((2, "mirrored"), (1, tf.distribute.get_strategy())):
        fake = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(gpus)]
        monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: fake if kind == "GPU" else real(kind))
        monkeypatch.setattr(stdb, "_STRATEGY", [])
        assert stdb.distribution_strategy() is chosen and stdb.distribution_strategy() is chosen   # made once


DISTRIBUTED = """
import json, sys
sys.path[:0] = [{root!r}]
import pipeline
from pipeline.training import stdb
{strategy}
import numpy as np
from keras_models import escape_net
from pipeline import engine
problem = np.load({problem!r})
with strategy.scope():
    model = escape_net.build(input_shape=(8, 8, 1), width=4)
    model.set_weights([problem[f"w{{i}}"] for i in range(len(model.get_weights()))])
    net = engine.SpikingNetwork(model, json.loads(str(problem["thresholds"])),
                                engine.SnnSettings(timesteps=5, batch_size=100))
    result = stdb.train(net, problem["x_train"], problem["y_train"], problem["x_val"], problem["y_val"],
                        stdb.StdbSettings(epochs=3, learning_rate=1e-3, train_thresholds=True, batch_size=96),
                        progress=False)
np.savez({out!r}, *[w.numpy() for w in net.weight_variables()])
print("RESULT", json.dumps({{"replicas": strategy.num_replicas_in_sync, "worker": stdb.worker_index(strategy),
                            "before": result.validation_before, "history": result.history_dicts(),
                            "thresholds": result.thresholds}}))
"""
TWO_LOGICAL_CPUS = """import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])"""
ONE_PROCESS = "strategy = stdb.distribution_strategy()   # first: TF_CONFIG (set by the test) starts the collectives"


def _free_ports(count):
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two worker processes train
def test_one_device_two_replicas_and_two_workers_train_alike(problem, tmp_path):
    # The same global batches on one device, on two replicas of one process (two logical CPUs stand in
    # for two GPUs: MirroredStrategy) and on two worker processes on localhost (TF_CONFIG:
    # MultiWorkerMirroredStrategy, gradients all-reduced over gRPC): every sample draws its own Poisson
    # input and dropout masks, so the runs differ only in the order of float sums.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    model, thresholds, weights, x_train, y_train, x_test, y_test = problem
    path = tmp_path / "problem.npz"
    np.savez(path, thresholds=json.dumps(thresholds), x_train=x_train, y_train=y_train,
             x_val=x_test[:100], y_val=y_test[:100], **{f"w{i}": w for i, w in enumerate(weights)})
    root = str(Path(__file__).parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}

    def start(name, strategy=ONE_PROCESS, tf_config=None):
        script = DISTRIBUTED.format(root=root, strategy=strategy, problem=str(path), out=str(tmp_path / f"{name}.npz"))
        extra = {"TF_CONFIG": json.dumps(tf_config)} if tf_config else {}
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**env, **extra})

    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    runs = {"one": start("one"), "mirrored": start("mirrored", TWO_LOGICAL_CPUS)}
    runs.update({f"worker{i}": start(f"worker{i}",
                                     tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
                 for i in range(2)})
    outcome = {}
    for name, process in runs.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        outcome[name] = json.loads(out.split("RESULT", 1)[1])
    assert [outcome[n]["replicas"] for n in runs] == [1, 2, 2, 2]
    assert [outcome[n]["worker"] for n in runs] == [0, 0, 0, 1]
    one = outcome["one"]
    assert max(h["validation_accuracy"] for h in one["history"]) >= one["before"] + 0.2     # it learns
    want = np.load(tmp_path / "one.npz")
    for name in ("mirrored", "worker0", "worker1"):
        got = np.load(tmp_path / f"{name}.npz")
        for key in want.files:   # float32 sums in another order: ~1e-7 of a layer's largest weight measured
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6 * np.abs(want[key]).max())
        assert outcome[name]["thresholds"] == pytest.approx(one["thresholds"], rel=1e-5)
        for a, b in zip(outcome[name]["history"], one["history"]):
            assert a["validation_accuracy"] == b["validation_accuracy"]
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


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
