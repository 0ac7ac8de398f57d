"""The rate and delta input codings: spike counts against their formulas on hand-made inputs, the
engine's step and fast paths on them, and the energy model's exact count of their events."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import trained_blobs_net

from pipeline import UserError, energy, engine
from pipeline.__main__ import main

layers = tf.keras.layers
X = np.array([[-1.0, -0.75, -0.25, 0.0, 0.125, 0.5, 0.75, 1.0]], np.float32)   # exact binary fractions


def rate_frames(x, steps, gain):
    return np.stack([engine.rate_spikes(tf.constant(x), t, gain).numpy() for t in range(steps)])


@pytest.mark.parametrize("gain", [1.0, 2.0, 4.0])
def test_rate_encoder_counts_are_the_rounded_rate(gain):
    T = 16
    frames = rate_frames(X, T, gain)
    rate = np.minimum(gain * np.abs(X), 1.0)
    # after k steps the IF encoder (v(0) = 1/2, threshold 1) has fired floor(k * r + 1/2) times
    for k in range(1, T + 1):
        np.testing.assert_array_equal(np.count_nonzero(frames[:k], axis=0), np.floor(k * rate + 0.5))
    assert np.isin(frames, np.float32([-1 / gain, 0.0, 1 / gain])).all()        # events of amplitude 1 / gain
    np.testing.assert_array_equal(np.sign(frames.sum(axis=0)), np.sign(X))      # with the sign of x
    assert np.count_nonzero(frames, axis=0).max() <= T                          # at most one event a step


def test_rate_encoder_is_deterministic_and_stateless():
    key_a, key_b = engine.batch_key(0, 0), engine.batch_key(9, 3)
    s = engine.SnnSettings(coding="rate", gain=2.0)
    a = engine.input_spikes(tf.constant(X), key_a, 5, s).numpy()
    np.testing.assert_array_equal(a, engine.input_spikes(tf.constant(X), key_b, 5, s).numpy())


@pytest.mark.parametrize("delta, levels", [(0.25, [4, 3, 1, 0, 0, 2, 3, 4]), (0.125, [8, 6, 2, 0, 1, 4, 6, 8]),
                                           (0.5, [2, 1, 0, 0, 0, 1, 1, 2])])
def test_delta_levels_are_the_level_crossings(delta, levels):
    np.testing.assert_array_equal(engine.delta_levels(X, delta).numpy()[0], levels)
    np.testing.assert_array_equal(engine.delta_input(X, delta).numpy()[0], np.sign(X[0]) * delta * np.array(levels))


def dense_chain(n_in=8, n_hidden=8, seed=0):
    rng = np.random.default_rng(seed)
    inputs = layers.Input((n_in,))
    x = layers.Dense(n_hidden, activation="relu", use_bias=False, name="hidden")(inputs)
    out = layers.Dense(3, activation="softmax", use_bias=False, name="out")(x)
    model = tf.keras.Model(inputs, out)
    model.get_layer("hidden").set_weights([rng.normal(0, 0.5, (n_in, n_hidden)).astype(np.float32)])
    model.get_layer("out").set_weights([rng.normal(0, 0.5, (n_hidden, 3)).astype(np.float32)])
    return model


def test_delta_input_runs_as_the_analog_network_on_its_quantised_input():
    model = dense_chain()
    x = np.random.default_rng(1).uniform(-1, 1, (6, 8)).astype(np.float32)
    delta = engine.SpikingNetwork(model, {"hidden": 0.7}, engine.SnnSettings(timesteps=10, coding="delta", delta=0.25,
                                                                            batch_size=3))
    analog = delta.with_settings(coding="analog")
    quantised = engine.delta_input(x, 0.25).numpy()
    for fast in (False, True):
        got, want = delta.simulate(x, fast=fast), analog.simulate(quantised, fast=fast)
        np.testing.assert_array_equal(got.neuron_totals["hidden"], want.neuron_totals["hidden"])
        np.testing.assert_array_equal(got.logits, want.logits)
        events = got.spikes_per_timestep[:, 0]
        assert events[0] == engine.delta_levels(x, 0.25).numpy().sum() and not events[1:].any()


@pytest.fixture(scope="module")
def tiny():
    model, x_train, y_train, x_test, y_test = trained_blobs_net(300, 40)
    return model, x_test, y_test


@pytest.mark.parametrize("coding, changes", [("rate", {"gain": 3.0}), ("delta", {"delta": 0.05}),
                                             ("poisson", {})])
def test_coded_input_events_are_counted_exactly(tiny, coding, changes):
    """The replayed input events equal the engine's own count, step by step, and conv1's ACs are those
    events times each position's fan-out; the fast path spikes as the step engine does."""
    model, x, y = tiny
    settings = engine.SnnSettings(timesteps=6, coding=coding, batch_size=16, seed=2, **changes)
    net = engine.SpikingNetwork(model, None, settings)
    result = net.simulate(x, y)
    fast = net.simulate(x, y, fast=True)
    for name in net.spiking_layer_names:
        np.testing.assert_array_equal(result.neuron_totals[name], fast.neuron_totals[name])
    first = net.graph.compute_nodes[0]
    totals, events, acs = engine.replay_input(net, x, energy.fan_out(first))
    np.testing.assert_array_equal(events, result.spikes_per_timestep[:, 0])
    counts = energy.count_operations(net.graph.compute_nodes, result.neuron_totals, totals, len(x), "linear")
    assert counts[0].snn_acs == pytest.approx(acs.sum() / len(x))
    if coding == "delta":
        levels = engine.delta_levels(x, 0.05).numpy()
        assert totals.sum() == levels.sum() and events[1:].sum() == 0
        assert counts[0].snn_acs == pytest.approx(np.sum(levels * energy.fan_out(first)) / len(x))
    if coding == "rate":
        by_hand = sum(np.count_nonzero(engine.rate_spikes(x, t, 3.0).numpy(), axis=0) for t in range(6))
        np.testing.assert_array_equal(totals, by_hand)


def test_analog_and_poisson_replays_are_unchanged(tiny):
    model, x, y = tiny
    analog = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=4, coding="analog", batch_size=20))
    totals, events, _ = engine.replay_input(analog, x, 1.0)
    assert totals is None and not events.any()
    assert not analog.simulate(x).spikes_per_timestep[:, 0].any()


@pytest.mark.parametrize("argv, word", [(["CODING=morse"], "CODING='morse'"), (["GAIN=0"], "GAIN=0"),
                                        (["GAIN=-2"], "GAIN=-2"), (["DELTA=0"], "DELTA=0"),
                                        (["DELTA=x"], "DELTA='x'")])
def test_bad_coding_settings_are_one_line_and_exit_2(argv, word, capsys):
    assert main(["energy", "T=4", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and word in err


def test_bad_neuron_values_are_user_errors():
    for bad in ({"gain": 0.0}, {"gain": float("inf")}, {"delta": -0.5}, {"coding": "delta2"}):
        with pytest.raises(UserError):
            engine.SnnSettings(**bad)
