"""QCFS: the activation against its formula, its gradients, .h5 round trip, and its conversion."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import blobs

from keras_models import escape_net, qcfs
from pipeline import UserError, engine
from pipeline.training import ann

layers = tf.keras.layers
Z = np.array([-1.0, -0.2, 0.2, 0.3, 0.7, 1.0, 1.9, 2.5], np.float32)


def activation(levels, lam):
    layer = qcfs.QCFS(levels)
    layer.build(())
    layer.threshold.assign(lam)
    return layer


@pytest.fixture(scope="module")
def tiny():
    """A width-4 QCFS ESCAPE-NET (L=4) on 8x8 inputs, lambdas initialised from data, trained briefly."""
    tf.keras.utils.set_random_seed(0)
    x_train, y_train = blobs(600, 0)
    x_test, y_test = blobs(300, 1)
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=4, levels=4)
    qcfs.initialise_thresholds(model, x_train[:200])
    model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    return model, x_test, y_test


# ------------------------------------------------------------------ the activation
def test_forward_values_match_the_formula():
    # lambda=2, L=4: floor(2z + 0.5) = [-2, 0, 0, 1, 1, 2, 4, 5] -> clipped to [0, 4], times lambda/L
    out = activation(4, 2.0)(tf.constant(Z)).numpy()
    np.testing.assert_allclose(out, [0, 0, 0, 0.5, 0.5, 1.0, 2.0, 2.0], atol=1e-6)
    lam, levels = 0.7, 8
    want = lam * np.clip(np.floor(Z * levels / lam + 0.5) / levels, 0, 1)
    np.testing.assert_allclose(activation(levels, lam)(tf.constant(Z)).numpy(), want, atol=1e-6)


def test_straight_through_gradients_for_input_and_lambda():
    lam, levels = 2.0, 4
    layer = activation(levels, lam)
    z = tf.constant(Z)
    upstream = np.linspace(0.5, 2.0, len(Z)).astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        loss = tf.reduce_sum(layer(z) * upstream)
    steps = np.floor(Z * levels / lam + 0.5)
    inside = (steps >= 0) & (steps <= levels)   # the floor passes its gradient; the clip stops it outside
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), upstream * inside, atol=1e-6)
    # d/dlambda of lambda * s/L with ds/dlambda = -z L / lambda^2 (straight through): s/L - z/lambda inside,
    # 1 above the clip (the output is lambda), 0 below it
    d_lambda = np.where(inside, steps / levels - Z / lam, np.where(steps > levels, 1.0, 0.0))
    assert tape.gradient(loss, layer.threshold).numpy() == pytest.approx(np.sum(upstream * d_lambda), rel=1e-5)


def test_lambda_is_trainable():
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=2, levels=4)
    lambdas = qcfs.layers_of(model)
    assert [layer.name for layer in lambdas] == ["qcfs1", "qcfs2", "qcfs3", "qcfs_dense1"]
    trainable = {id(w) for w in model.trainable_weights}
    assert all(id(layer.threshold) in trainable for layer in lambdas)
    x, y = blobs(16, 0)
    qcfs.initialise_thresholds(model, x)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
    grads = tape.gradient(loss, [layer.threshold for layer in lambdas])
    assert all(g is not None and float(g) != 0.0 for g in grads)


def test_bad_levels_are_refused():
    with pytest.raises(ValueError, match="levels"):
        qcfs.QCFS(0)


def test_initial_lambda_is_a_high_percentile_of_each_layers_input():
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=2, levels=4)
    x, _ = blobs(50, 0)
    found = qcfs.initialise_thresholds(model, x, percentile=100.0)
    z1 = tf.keras.Model(model.inputs, model.get_layer("conv1").output).predict(x, verbose=0)
    assert found["qcfs1"] == pytest.approx(float(z1.max()), rel=1e-5)
    assert qcfs.threshold_values(model) == pytest.approx(found, rel=1e-6)


def test_warm_start_copies_the_relu_networks_weights():
    source = escape_net.build("modified", input_shape=(8, 8, 1), width=2)
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=2, levels=4)
    x, _ = blobs(50, 0)
    found = qcfs.warm_start(model, source, x)
    for name in ("conv1", "conv2", "conv3", "dense1", "dense2"):
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), source.get_layer(name).kernel.numpy())
    assert qcfs.threshold_values(model) == pytest.approx(found, rel=1e-6)
    assert all(v > 0 for v in found.values())


def test_h5_round_trip(tmp_path):
    model = escape_net.build("qcfs", input_shape=(8, 8, 1), width=2, levels=3)
    for k, layer in enumerate(qcfs.layers_of(model)):
        layer.threshold.assign(0.1 * (k + 2))
    path = tmp_path / "qcfs.h5"
    model.save(path, save_format="h5")
    x, _ = blobs(20, 0)
    for loaded in (ann.load(path), engine.load_keras(path)):
        assert qcfs.threshold_values(loaded) == qcfs.threshold_values(model)
        assert [layer.levels for layer in qcfs.layers_of(loaded)] == [3] * 4
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


# ------------------------------------------------------------------ conversion on the engine
def test_engine_thresholds_are_lambda_in_units_of_the_previous_lambda(tiny):
    model = tiny[0]
    net = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=4, initial_membrane=0.5))
    lam = qcfs.threshold_values(model)
    want = {"conv1": lam["qcfs1"], "conv2": lam["qcfs2"] / lam["qcfs1"], "conv3": lam["qcfs3"] / lam["qcfs2"],
            "dense1": lam["qcfs_dense1"] / lam["qcfs3"], "dense2": 1.0}
    assert net.threshold_values() == pytest.approx(want, rel=1e-6)


def test_first_layer_spike_rates_reproduce_the_activation_at_T_equal_L(tiny):
    """With v(0) = theta/2 and theta = lambda, a constant current z gives floor(T z / lambda + 1/2)
    spikes (at most T): at T = L exactly the QCFS activation; with v(0) = 0 it is the floor, not rounding."""
    model, x, _ = tiny
    levels = 4
    z = tf.keras.Model(model.inputs, model.get_layer("qcfs1").output).predict(x[:40], verbose=0)
    lam = qcfs.threshold_values(model)["qcfs1"]
    for membrane, matches in ((0.5, True), (0.0, False)):
        net = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=levels, coding="analog",
                                                              initial_membrane=membrane, batch_size=40))
        rates = net.simulate(x[:40], record=range(40)).recorded["conv1"] * lam / levels
        assert np.allclose(rates, z, atol=1e-5) is matches


def test_converted_tiny_model_matches_its_quantised_ann_at_T4(tiny):
    model, x, y = tiny
    ann = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    net = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=4, coding="analog", initial_membrane=0.5,
                                                          batch_size=100))
    result = net.simulate(x, y)
    assert ann > 0.8
    assert abs(result.accuracy - ann) <= 0.02


def test_engine_refuses_misplaced_qcfs():
    inputs = layers.Input((4,))
    h = layers.Dense(3, activation="relu", use_bias=False, name="hidden")(inputs)
    h = qcfs.QCFS(4, name="q")(h)
    out = layers.Dense(2, use_bias=False, name="out")(h)
    with pytest.raises(UserError, match="'hidden'.*'relu'"):
        engine.SpikingNetwork(tf.keras.Model(inputs, out))
    inputs = layers.Input((4, 4, 1))
    h = layers.Conv2D(2, 2, use_bias=False, name="conv")(inputs)
    h = qcfs.QCFS(4, name="q1")(h)
    h = layers.AveragePooling2D(name="pool")(h)
    h = qcfs.QCFS(4, name="q2")(h)
    out = layers.Dense(2, use_bias=False, name="out")(layers.Flatten()(h))
    with pytest.raises(UserError, match="'pool'.*followed by a QCFS"):
        engine.SpikingNetwork(tf.keras.Model(inputs, out))


def test_the_twin_of_a_graph_quantises_every_hidden_relu_and_keeps_the_readout_and_the_weights():
    # x -> a: Dense(relu, I) -> b: Dense(linear, -I/2) -> Add(a, b) -> ReLU layer -> out: Dense(relu, I)
    x = layers.Input((2,), name="x")
    a = layers.Dense(2, activation="relu", name="a")(x)
    b = layers.Dense(2, name="b")(a)
    s = layers.Activation("relu", name="s")(layers.Add(name="add")([a, b]))
    model = tf.keras.Model(x, layers.Dense(2, activation="relu", name="out")(s))
    for name, kernel in (("a", np.eye(2)), ("b", -0.5 * np.eye(2)), ("out", np.eye(2))):
        model.get_layer(name).set_weights([kernel, np.zeros(2)])
    twin = qcfs.twin(model, levels=2)
    assert [(layer.name, type(layer).__name__) for layer in twin.layers] == [
        ("x", "InputLayer"), ("a", "Dense"), ("a_qcfs", "QCFS"), ("b", "Dense"), ("add", "Add"),
        ("s_qcfs", "QCFS"), ("out", "Dense")]
    assert [twin.get_layer(n).activation.__name__ for n in ("a", "b", "out")] == ["linear", "linear", "relu"]
    assert [layer.name for layer in twin.get_layer("add").inbound_nodes[0].inbound_layers] == ["a_qcfs", "b"]
    for name in ("a", "b", "out"):
        np.testing.assert_array_equal(twin.get_layer(name).get_weights()[0], model.get_layer(name).get_weights()[0])
    for layer in qcfs.layers_of(twin):   # lambda 1, L 2: h = clip(floor(2z + 1/2) / 2, 0, 1)
        layer.threshold.assign(1.0)
    sample = np.array([[0.3, 0.8]], np.float32)
    # ReLU: a = (0.3, 0.8), a + b = a / 2 = (0.15, 0.4). QCFS: a -> (0.5, 1.0), a + b -> (0.25, 0.5) -> (0.5, 0.5)
    np.testing.assert_allclose(model(sample).numpy(), [[0.15, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(twin(sample).numpy(), [[0.5, 0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match="already has QCFS"):
        qcfs.twin(twin, levels=2)


def test_a_biased_layer_after_qcfs_fires_its_quantised_activation_at_T_equal_L():
    # x = 1 -> a: Dense(w 1, b 0), QCFS lambda 2 -> b: Dense(w 1, b 1), QCFS lambda 4 -> readout; L = T = 2.
    # ANN: a = 2 clip(floor(1 + 1/2) / 2) = 1; b gets 1 + 1 = 2 -> 4 clip(floor(2 * 2 / 4 + 1/2) / 2) = 2: 1 spike in 2.
    # SNN, theta_b = 4 / 2 = 2, v(0) = 1: a spikes at step 1 only; b's current is that spike plus b / lambda_a = 0.5
    # per step (v: 2.5 -> spike, 0.5 + 0.5 = 1 -> none); with the bias unscaled (1 per step) b spikes twice.
    x = layers.Input((1,))
    h = qcfs.QCFS(2, name="qa")(layers.Dense(1, name="a")(x))
    h = qcfs.QCFS(2, name="qb")(layers.Dense(1, name="b")(h))
    model = tf.keras.Model(x, layers.Dense(1, name="out")(h))
    for name, bias, lam in (("a", 0.0, 2.0), ("b", 1.0, 4.0)):
        model.get_layer(name).set_weights([np.ones((1, 1)), np.array([bias])])
        model.get_layer(f"q{name}").threshold.assign(lam)
    model.get_layer("out").set_weights([np.ones((1, 1)), np.zeros(1)])
    np.testing.assert_allclose(tf.keras.Model(x, h)(np.ones((1, 1))).numpy(), [[2.0]])
    net = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=2, coding="analog", initial_membrane=0.5,
                                                                batch_size=1))
    recorded = net.simulate(np.ones((1, 1), np.float32), record=[0]).recorded
    assert (float(np.sum(recorded["a"])), float(np.sum(recorded["b"]))) == (1.0, 1.0)
