"""The TF spiking engine: neuron pieces on hand traces, coding, layer mapping, a tiny converted net."""
import dataclasses

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import toolbox_run, trained_blobs_net

from keras_models import escape_net
from pipeline import UserError, engine, network
from pipeline.engine import simulator

layers = tf.keras.layers


def chain(hidden_kernel, out_kernel, dropout=0.0, hidden_bias=None):
    """Input -> [Dropout] -> Dense(relu) -> Dense(softmax) with hand-set weights."""
    n_in, n_hidden = hidden_kernel.shape
    inputs = layers.Input((n_in,))
    x = layers.Dropout(dropout, name="drop")(inputs) if dropout else inputs
    x = layers.Dense(n_hidden, activation="relu", use_bias=hidden_bias is not None, name="hidden")(x)
    out = layers.Dense(out_kernel.shape[1], activation="softmax", use_bias=False, name="out")(x)
    model = tf.keras.Model(inputs, out)
    model.get_layer("hidden").set_weights([hidden_kernel] + ([hidden_bias] if hidden_bias is not None else []))
    model.get_layer("out").set_weights([out_kernel])
    return model


def identity_net(n, thresholds=None, **settings):
    model = chain(np.eye(n, dtype=np.float32), np.ones((n, 2), np.float32))
    return engine.SpikingNetwork(model, thresholds, engine.SnnSettings(**settings))


@pytest.fixture(scope="module")
def tiny():
    """A width-4 ESCAPE-NET on 8x8 inputs, trained for a few seconds."""
    model, x_train, y_train, x_test, y_test = trained_blobs_net(600, 300)
    ann = model.evaluate(x_test, y_test, verbose=0)[1]
    return model, x_train, y_train, x_test, y_test, ann


# ------------------------------------------------------------------ neuron pieces
def test_reset_by_subtraction_on_a_hand_trace():
    v, trace, spikes = tf.constant(0.0), [], []
    for current in (0.6, 0.6, 0.6, 1.5, 0.0):
        v = v + current
        s = engine.heaviside(v, 1.0)
        v = engine.RESET(v, s, 1.0)
        trace.append(float(v))
        spikes.append(float(s))
    assert spikes == [0, 1, 0, 1, 1]
    np.testing.assert_allclose(trace, [0.6, 0.2, 0.8, 1.3, 0.3], atol=1e-6)


def test_heaviside_fires_at_threshold():
    v = tf.constant([0.999, 1.0, 1.5])
    np.testing.assert_array_equal(engine.heaviside(v, 1.0).numpy(), [0, 1, 1])


def test_if_spike_counts_on_constant_input_are_floor_counts():
    x = np.array([[0.0, 0.125, 0.25, 0.375, 0.5, 0.875, 1.0]], np.float32)
    T, theta = 40, 0.5
    net = identity_net(7, {"hidden": theta}, timesteps=T, coding="analog", batch_size=1)
    totals = net.simulate(x).neuron_totals["hidden"]
    np.testing.assert_array_equal(totals, np.minimum(T, np.floor(T * x[0] / theta)))  # one spike a step at most


def test_lif_leak_matches_a_reference_loop():
    x = np.array([[0.3, 0.6, 0.9]], np.float32)
    T, leak = 30, 0.8
    net = identity_net(3, timesteps=T, coding="analog", leak=leak, batch_size=1)
    got = net.simulate(x).neuron_totals["hidden"]
    v, want = np.zeros(3), np.zeros(3)
    for _ in range(T):
        v = leak * v + x[0]
        fired = v >= 1.0
        v = v - fired
        want += fired
    np.testing.assert_array_equal(got, want)
    no_leak = identity_net(3, timesteps=T, coding="analog", batch_size=1).simulate(x).neuron_totals["hidden"]
    assert np.all(got <= no_leak) and got.sum() < no_leak.sum()


def test_initial_membrane_fraction_starts_at_half_threshold():
    x = np.array([[0.5]], np.float32)
    net = identity_net(1, {"hidden": 1.0}, timesteps=1, coding="analog", initial_membrane=0.5, batch_size=1)
    assert net.simulate(x).neuron_totals["hidden"][0] == 1  # 0.5 + 0.5 reaches 1 at the first step
    zero = identity_net(1, {"hidden": 1.0}, timesteps=1, coding="analog", batch_size=1)
    assert zero.simulate(x).neuron_totals["hidden"][0] == 0


def test_dropout_mask_is_drawn_once_per_sample_and_kept_over_time():
    n, T = 64, 16
    model = chain(np.eye(n, dtype=np.float32), np.ones((n, 2), np.float32), dropout=0.5)
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=T, coding="analog"))
    x = tf.fill([4, n], 0.25)  # kept: 0.25 / 0.5 = 0.5 per step -> T/2 spikes; dropped: none
    out = net.run(x, engine.batch_key(0, 0), training=True, record=engine.Recording(totals=True))
    totals = out["totals"][0].numpy()
    assert set(np.unique(totals)) == {0.0, T / 2}
    assert not np.array_equal(totals[0], totals[1])  # one mask per sample
    again = net.run(x, engine.batch_key(0, 0), training=True, record=engine.Recording(totals=True))
    np.testing.assert_array_equal(again["totals"][0].numpy(), totals)
    plain = net.run(x, engine.batch_key(0, 0), record=engine.Recording(totals=True))
    assert np.all(plain["totals"][0].numpy() == T / 4)  # no dropout at inference


# ------------------------------------------------------------------ input coding
@tf.function
def poisson_frames(x, key, steps, rule):
    return tf.map_fn(lambda t: engine.poisson_spikes(x, key, t, rule), tf.range(steps), fn_output_signature=tf.float32)


def test_signed_poisson_rate_and_sign():
    x = tf.constant([[-0.8, -0.2, 0.0, 0.3, 0.9]])
    key = engine.batch_key(7, 0)
    frames = poisson_frames(x, key, 4000, "signed").numpy()[:, 0]
    assert set(np.unique(frames)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(np.sign(frames.sum(axis=0)), [-1, -1, 0, 1, 1])
    rate = np.abs(frames).mean(axis=0)
    np.testing.assert_allclose(rate, np.abs(x.numpy()[0]), atol=4 * np.sqrt(0.25 / 4000))


def test_toolbox_poisson_rule_scales_by_the_batch_maximum():
    x = tf.constant([[0.1, -0.2, 0.4], [0.05, 0.0, -0.3]])  # batch max 0.4
    key = engine.batch_key(3, 0)
    frames = poisson_frames(x, key, 4000, "toolbox").numpy()
    assert np.isin(frames, np.float32([-0.4, 0.0, 0.4])).all()
    rate = (frames != 0).mean(axis=0)
    np.testing.assert_allclose(rate, np.abs(x.numpy()) / 0.4, atol=4 * np.sqrt(0.25 / 4000))


def test_poisson_runs_are_determined_by_the_seed(tiny):
    model, *_, x_test, y_test, _ = tiny
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=8, seed=5, batch_size=50))
    first, second = net.simulate(x_test[:100]), net.simulate(x_test[:100])
    np.testing.assert_array_equal(first.spikes_per_timestep, second.spikes_per_timestep)
    np.testing.assert_array_equal(first.logits, second.logits)
    other = net.with_settings(seed=6).simulate(x_test[:100])
    assert not np.array_equal(first.spikes_per_timestep, other.spikes_per_timestep)


# ------------------------------------------------------------------ mapping
@pytest.mark.parametrize("bad, name", [
    (lambda x: layers.MaxPooling2D(3, strides=1, name="maxpool")(x), "maxpool"),   # overlapping windows
    (lambda x: layers.BatchNormalization(name="bn")(x), "bn"),
    (lambda x: layers.Conv2D(2, 3, activation="tanh", name="tanhconv")(x), "tanhconv"),
])
def test_unmappable_layers_are_refused_by_name(bad, name):
    inputs = layers.Input((8, 8, 1))
    x = layers.Conv2D(2, 3, activation="relu", use_bias=False, name="conv")(inputs)
    x = bad(x)
    x = layers.Flatten()(x)
    model = tf.keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    with pytest.raises(UserError, match=name):
        engine.SpikingNetwork(model)


def test_escape_net_maps_onto_shared_weights():
    model = escape_net.build(input_shape=(8, 8, 1), width=4)
    net = engine.SpikingNetwork(model)
    assert [s.name for s in net.stages] == ["conv1", "pool1", "drop1", "conv2", "pool2", "drop2", "conv3",
                                            "flatten", "dense1", "drop_dense", "dense2"]
    assert net.weight_variables()[0] is model.get_layer("conv1").kernel
    assert net.spiking_layer_names == ("conv1", "conv2", "conv3", "dense1")
    spiking = net.with_settings(pooling="spiking", readout="spike_count")
    assert spiking.spiking_layer_names == ("conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2")
    with pytest.raises(UserError, match="conv9"):
        engine.SpikingNetwork(model, {"conv9": 1.0})


def test_biases_are_added_every_step():
    model = chain(np.eye(2, dtype=np.float32), np.ones((2, 2), np.float32), hidden_bias=np.array([0.25, 0.0]))
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=8, coding="analog", batch_size=1))
    totals = net.simulate(np.array([[0.25, 0.25]], np.float32)).neuron_totals["hidden"]
    np.testing.assert_array_equal(totals, [4, 2])


@pytest.mark.parametrize("field, value", [("timesteps", 0), ("leak", 0.0), ("leak", 1.5), ("coding", "morse"),
                                          ("gain", 0.0), ("delta", -0.1), ("readout", "votes"), ("pooling", "max")])
def test_bad_settings_are_user_errors(field, value):
    with pytest.raises(UserError):
        engine.SnnSettings(**{field: value})


# ------------------------------------------------------------------ readout, records, thresholds
def test_decisions_follow_the_toolbox_rule():
    counts = np.array([[[0, 0, 0], [2, 2, 0], [1, 3, 0]]], np.float32)  # one sample, T=3
    np.testing.assert_array_equal(engine.decide(counts, "spike_count"), [[-1, 0, 1]])
    membrane = np.array([[[0, 0, 0], [-1.0, 0.5, 0.2]]], np.float32)
    np.testing.assert_array_equal(engine.decide(membrane, "membrane"), [[-1, 1]])


def test_counts_totals_and_trains_agree_and_padding_is_invisible(tiny):
    model, *_, x_test, y_test, _ = tiny
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=10, coding="analog", batch_size=4,
                                                             pooling="spiking", readout="spike_count"))
    result = net.simulate(x_test[:10], y_test[:10], record=[1, 9], trains=True)
    assert result.spikes_per_timestep.shape == (10, len(result.layer_names))
    for k, name in enumerate(result.layer_names[1:], start=1):
        assert result.spikes_per_timestep[:, k].sum() == result.neuron_totals[name].sum()
        np.testing.assert_array_equal(result.trains[name].sum(axis=1), result.recorded[name])
        assert result.trains[name].shape[:2] == (2, 10)
    whole = net.with_settings(batch_size=10).simulate(x_test[:10], y_test[:10])
    np.testing.assert_allclose(whole.logits, result.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(whole.spikes_per_timestep, result.spikes_per_timestep)
    assert result.accuracy_per_timestep.shape == (10,)


def test_calibration_takes_the_running_maximum_current_times_scale():
    x = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    model = chain(np.eye(2, dtype=np.float32), np.array([[1.0, 0.0], [1.0, 0.5]], np.float32))
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=4, coding="analog", batch_size=2))
    thresholds = engine.calibrate_thresholds(net, x, scale=0.7)
    # hidden: the largest input current is 0.8. With that (unscaled) threshold, both hidden neurons
    # of sample 2 (inputs 0.6 and 0.4) fire at step 2, driving readout unit 0 with 1 + 1.
    assert thresholds["hidden"] == pytest.approx(0.7 * 0.8)
    assert thresholds["out"] == pytest.approx(0.7 * 2.0)
    assert net.threshold_values() == {"hidden": 1.0, "out": 1.0}  # the network is not changed
    median = engine.calibrate_thresholds(net, x, percentile=50, scale=1.0)  # of per-sample, per-step maxima
    assert median["hidden"] == pytest.approx(0.7)  # maxima are 0.8 (sample 1) and 0.6 (sample 2)


def test_toolbox_scale_factors_become_layer_ratios():
    model = escape_net.build(input_shape=(8, 8, 1), width=4)
    facs = {"input": 1.0, "00Conv2D": 4.0, "02Conv2D": 2.0, "04Conv2D": 3.0, "06Dense": 6.0, "07Dense": 5.0}
    got = engine.thresholds_from_scale_factors(model, facs)
    assert got == pytest.approx({"conv1": 4.0, "conv2": 0.5, "conv3": 1.5, "dense1": 2.0, "dense2": 5 / 6})
    assert engine.thresholds_from_scale_factors(model, facs, softmax_to_relu=False)["dense2"] == pytest.approx(1 / 6)
    with pytest.raises(UserError, match="expected"):
        engine.thresholds_from_scale_factors(model, {"input": 1.0})


def test_membrane_accuracy_rises_toward_the_ann_with_T(tiny):
    model, x_train, _, x_test, y_test, ann = tiny
    base = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=16, coding="analog", batch_size=100))
    thresholds = engine.calibrate_thresholds(base, x_train[:200], scale=1.0)
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=64, coding="analog", batch_size=100))
    per_step = net.simulate(x_test, y_test).accuracy_per_timestep
    assert ann > 0.9
    assert per_step[1] < 0.5 * ann               # T=2: spikes have barely reached the readout
    assert per_step[63] >= ann - 0.03            # T=64: close to the ANN
    assert per_step[7] < per_step[31] <= per_step[63] + 0.02


# ------------------------------------------------------------------ against SNN Toolbox INI
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("poisson", [False, True])
def test_ini_mode_matches_the_toolbox_spike_for_spike(tiny, tmp_path, poisson):
    model, x_train, _, x_test, y_test, _ = tiny
    x_test, y_test = x_test[:50], y_test[:50]
    config, run = toolbox_run(tmp_path, model, x_test, y_test, x_train[:100], timesteps=30, poisson=poisson)
    settings = engine.SnnSettings.ini_compatible(30, coding="poisson" if poisson else "analog", batch_size=25)
    replay = engine.toolbox_poisson_replay(config.seed) if poisson else None
    exact = engine.SpikingNetwork(engine.toolbox_normalised_model(model, run.scale_factors), settings=settings)
    result = exact.simulate(x_test, y_test, record=range(len(x_test)), input_frames=replay)
    np.testing.assert_array_equal(np.transpose(result.outputs, (0, 2, 1)), run.output_counts)
    np.testing.assert_array_equal(result.accuracy_per_timestep, run.accuracy_per_timestep)
    assert len(run.spike_counts) == len(result.layer_names) - 1
    for toolbox_name, name in zip(run.spike_counts, result.layer_names[1:]):
        ours = result.recorded[name].reshape(len(x_test), -1)
        np.testing.assert_array_equal(ours, run.spike_counts[toolbox_name], err_msg=f"{toolbox_name} vs {name}")
    if not poisson:  # the engine's own form: original weights, thresholds lambda_k / lambda_{k-1}
        ratio = engine.SpikingNetwork(model, engine.thresholds_from_scale_factors(model, run.scale_factors), settings)
        assert np.abs(ratio.simulate(x_test, y_test).accuracy_per_timestep - run.accuracy_per_timestep).max() <= 0.02
    # The fast simulation, event-driven currents included: INI's decisions at every step, and its
    # per-neuron counts up to float rounding (the sums run in another order).
    replay = engine.toolbox_poisson_replay(config.seed) if poisson else None
    fast = exact.simulate(x_test, y_test, record=range(len(x_test)), input_frames=replay, fast=True)
    np.testing.assert_array_equal(np.transpose(fast.outputs, (0, 2, 1)), run.output_counts)
    np.testing.assert_array_equal(fast.accuracy_per_timestep, run.accuracy_per_timestep)
    for toolbox_name, name in zip(run.spike_counts, fast.layer_names[1:]):
        same = fast.recorded[name].reshape(len(x_test), -1) == run.spike_counts[toolbox_name]
        assert same.mean() >= 0.999, f"{toolbox_name} vs {name}: {same.mean():.5f}"


# ------------------------------------------------------------------ fast simulation (layer by layer)
def same_run(fast, step, exact=True):
    """The fast result against the step engine's: decisions, readout, per-step and per-neuron counts."""
    np.testing.assert_array_equal(fast.outputs, step.outputs)
    np.testing.assert_array_equal(fast.predictions, step.predictions)
    np.testing.assert_array_equal(fast.spikes_per_timestep, step.spikes_per_timestep)
    assert fast.layer_names == step.layer_names
    for name in step.layer_names[1:]:
        if exact:
            np.testing.assert_array_equal(fast.recorded[name], step.recorded[name], err_msg=name)
            np.testing.assert_array_equal(fast.neuron_totals[name], step.neuron_totals[name], err_msg=name)
        else:
            assert (fast.recorded[name] == step.recorded[name]).mean() >= 0.999, name
    np.testing.assert_allclose(fast.logits, step.logits, rtol=1e-5, atol=1e-5)


TINY_FACTORS = {"input": 1.0, "c1": 2.0, "c2": 1.5, "c3": 1.5, "d1": 3.0, "d2": 4.0}   # by position


@pytest.mark.parametrize("sparse", [False, True])
def test_fast_simulation_is_the_step_engine_in_ini_mode(tiny, sparse):
    model, *_, x_test, y_test, _ = tiny
    settings = engine.SnnSettings.ini_compatible(25, batch_size=20)
    net = engine.SpikingNetwork(engine.toolbox_normalised_model(model, TINY_FACTORS), settings=settings)
    record = range(40)
    step = net.simulate(x_test[:40], y_test[:40], record=record)
    fast = net.simulate(x_test[:40], y_test[:40], record=record, fast=True, sparse=sparse)
    assert step.spikes_per_timestep[:, 1:].sum() > 0 and fast.stage_seconds
    same_run(fast, step, exact=not sparse)   # dense currents: the very ops, bit for bit
    np.testing.assert_array_equal(fast.accuracy_per_timestep, step.accuracy_per_timestep)



def test_the_fast_path_is_bit_exact_only_with_dense_currents_and_batches_of_two_or_more():
    # 1024 neurons spiking at every step feed a readout: the event-driven sum (the default, sparse=True)
    # adds their weights in spike order, TF's matmul (the step engine, and sparse=False) in its own blocks,
    # and the two differ in the last bits. A readout threshold set to one neuron's event-driven current
    # makes it spike at step 1 on the default path but not on the step engine's.
    from pipeline.engine import kernels
    k, weights = 1024, np.random.default_rng(0).normal(size=(1024, 64)).astype(np.float32)
    inputs = layers.Input((k,))
    hidden = layers.Dense(k, use_bias=False, activation="relu", name="d1")(inputs)
    model = tf.keras.Model(inputs, layers.Dense(64, use_bias=False, activation="softmax", name="d2")(hidden))
    model.set_weights([np.eye(k, dtype=np.float32), weights])
    event = kernels.dense_current(np.ones((1, k), bool), weights)[0]
    dense = tf.matmul(tf.ones((2, k)), weights).numpy()[0]
    j = np.flatnonzero((event > dense) & (dense > 0))[0]
    settings = engine.SnnSettings.ini_compatible(2, batch_size=2)
    net = engine.SpikingNetwork(model, {"d1": 1.0, "d2": float(event[j])}, settings)
    x = np.ones((2, k), np.float32)
    step = net.simulate(x, record=range(2))
    same_run(net.simulate(x, record=range(2), fast=True, sparse=False), step)          # bit for bit
    default = net.simulate(x, record=range(2), fast=True)
    assert default.recorded["d2"][:, j].tolist() == [2, 2] and step.recorded["d2"][:, j].tolist() == [1, 1]
    # sparse=False is bit for bit the step engine at batch sizes >= 2 only: TF's matmul of a single row
    # (the step engine at batch size 1) sums in yet another order.
    single = tf.matmul(tf.ones((1, k)), weights).numpy()[0]
    j = np.flatnonzero((dense > single) & (single > 0))[0]
    one = engine.SpikingNetwork(model, {"d1": 1.0, "d2": float(dense[j])}, dataclasses.replace(settings, batch_size=1))
    step, exact = one.simulate(x[:1], record=[0]), one.simulate(x[:1], record=[0], fast=True, sparse=False)
    assert exact.recorded["d2"][0, j] == 2 and step.recorded["d2"][0, j] == 1


@pytest.mark.parametrize("replayed", [False, True])
def test_fast_simulation_draws_the_same_poisson_input(tiny, replayed):
    model, *_, x_test, y_test, _ = tiny
    settings = engine.SnnSettings.ini_compatible(12, coding="poisson", batch_size=10, seed=3)
    net = engine.SpikingNetwork(model, settings=settings)
    frames = (lambda: engine.toolbox_poisson_replay(7)) if replayed else (lambda: None)
    step = net.simulate(x_test[:20], y_test[:20], record=range(20), input_frames=frames())
    fast = net.simulate(x_test[:20], y_test[:20], record=range(20), input_frames=frames(), fast=True, sparse=False)
    assert step.spikes_per_timestep[:, 0].sum() > 0
    same_run(fast, step)


@pytest.mark.parametrize("leak", [0.9, 1.0])   # without leak the totals come from the final membranes
def test_fast_simulation_keeps_leak_initial_membrane_and_membrane_readout(tiny, leak):
    model, *_, x_test, y_test, _ = tiny
    settings = engine.SnnSettings(timesteps=15, coding="analog", leak=leak, initial_membrane=0.5, batch_size=16)
    net = engine.SpikingNetwork(model, {"conv1": 0.6, "conv2": 0.8}, settings)
    step = net.simulate(x_test[:16], y_test[:16], record=range(16))
    fast = net.simulate(x_test[:16], y_test[:16], record=range(16), fast=True, sparse=False)
    assert "pool1" not in fast.layer_names and step.spikes_per_timestep[:, 1:].sum() > 0  # linear pools
    np.testing.assert_allclose(fast.outputs, step.outputs, rtol=1e-5, atol=1e-5)   # membrane readout
    np.testing.assert_array_equal(fast.spikes_per_timestep, step.spikes_per_timestep)
    for name in step.layer_names[1:]:
        np.testing.assert_array_equal(fast.recorded[name], step.recorded[name], err_msg=name)


def test_fast_simulation_keeps_no_spike_trains(tiny):
    model, *_, x_test, _, _ = tiny
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings.ini_compatible(5, batch_size=4))
    with pytest.raises(UserError, match="spike trains"):
        net.simulate(x_test[:4], record=[0], trains=True, fast=True)


def node_of(layer, input_shape):
    """The network node of one Keras layer (the readout of a one-layer model)."""
    return network.describe(tf.keras.Sequential([layers.Input(input_shape), layer])).nodes[0]


@pytest.mark.parametrize("kernel, padding, bias", [((4, 4), "same", False), ((3, 3), "same", True),
                                                   ((2, 3), "valid", False), ((1, 1), "same", False)])
def test_event_driven_convolution_is_the_dense_convolution(kernel, padding, bias):
    rng = np.random.default_rng(0)
    frames = rng.random((5, 9, 11, 6)) < 0.1          # (frames, H, W, C) binary spikes
    frames[2] = False                                  # a frame without spikes
    layer = layers.Conv2D(7, kernel, padding=padding, use_bias=bias)
    layer.build((None, 9, 11, 6))
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    dense = layer(frames.astype(np.float32)).numpy()
    events = simulator.event_current(node_of(layer, (9, 11, 6)), frames)
    assert events.shape == dense.shape
    np.testing.assert_allclose(events, dense, rtol=1e-5, atol=1e-5)
    assert not events[2].any() or bias


def test_event_driven_dense_layer_is_the_matrix_product():
    rng = np.random.default_rng(1)
    frames = rng.random((6, 40)) < 0.05
    layer = layers.Dense(5)
    layer.build((None, 40))
    dense = layer(frames.astype(np.float32)).numpy()
    np.testing.assert_allclose(simulator.event_current(node_of(layer, (40,)), frames), dense, rtol=1e-5, atol=1e-5)
