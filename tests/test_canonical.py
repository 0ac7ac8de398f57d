"""A user's tutorial-style Keras chain becomes the chain the pipeline runs (`pipeline.canonical`), computing
the same function; what does not map is refused in one line naming the user's layer."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

from pipeline import UserError, canonical, network

RUNNABLE = ("InputLayer", "Conv2D", "Dense", "AveragePooling2D", "MaxPooling2D", "Flatten", "Reshape", "Dropout")


def layers():
    import tensorflow as tf
    return tf.keras.layers


def chain(input_shape, *stack):
    """A Sequential model of ``stack``, its batch norms given non-trivial statistics and affine
    parameters (set, not trained: gamma and var in [0.5, 2], beta and mean ~ N(0, 1))."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    return with_statistics(tf.keras.Sequential([layers().Input(input_shape), *stack]))


def with_statistics(model):
    """``model``, its batch norms given non-trivial statistics and affine parameters."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, layers().BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) if ("gamma" in v.name or "variance" in v.name)
                               else rng.normal(0.0, 1.0, w.shape) for v, w in zip(layer.weights, layer.get_weights())])
    return model


def same_function(model, other, seed=0):
    """Both models' outputs on random inputs, equal to float32 rounding."""
    x = np.random.default_rng(seed).normal(0.0, 1.0, (32, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def conv_bn(**bn):
    L = layers()
    return (L.Conv2D(4, 3, padding="same"), L.BatchNormalization(**bn), L.Activation("relu"))


MAPPED = {   # name: (input shape, layers, the user's layers rewritten)
    "batch norm after a biased conv, then a ReLU layer": (
        (8, 8, 1), lambda L: [*conv_bn(), L.Flatten(), L.Dense(3)], ["BatchNormalization", "Activation"]),
    "batch norm without center after an unbiased conv": (
        (8, 8, 1), lambda L: [L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(center=False), L.ReLU(),
                              L.Flatten(), L.Dense(3)], ["BatchNormalization", "ReLU"]),
    "batch norm without scale after a dense layer, two in a row": (
        (6,), lambda L: [L.Dense(5), L.BatchNormalization(scale=False), L.BatchNormalization(), L.ReLU(),
                         L.Dropout(0.5), L.Dense(3)], ["BatchNormalization", "BatchNormalization", "ReLU"]),
    "a linear activation dropped, a ReLU after a ReLU dropped, a softmax readout": (
        (6,), lambda L: [L.Activation("linear"), L.Dense(5, activation="relu"), L.ReLU(), L.Dense(3),
                         L.Activation("softmax")], ["Activation", "ReLU", "Activation"]),
    "global average pooling over the whole map, then a Softmax layer": (
        (6, 5, 2), lambda L: [*conv_bn(), L.GlobalAveragePooling2D(), L.Dense(3), L.Softmax()],
        ["BatchNormalization", "Activation", "GlobalAveragePooling2D", "Softmax"]),
    "global average pooling keeping its dims": (
        (6, 6, 1), lambda L: [*conv_bn(), L.GlobalAveragePooling2D(keepdims=True), L.Flatten(), L.Dense(3)],
        ["BatchNormalization", "Activation", "GlobalAveragePooling2D"]),
    "zero padding equal to an odd kernel's 'same'": (
        (7, 7, 1), lambda L: [L.ZeroPadding2D(1), L.Conv2D(3, 3, activation="relu"), L.Flatten(), L.Dense(3)],
        ["ZeroPadding2D"]),
    "zero padding equal to an even kernel's strided 'same' (smaller half first)": (
        (7, 7, 1), lambda L: [L.ZeroPadding2D(((0, 1), (1, 2))), L.Conv2D(3, (2, 4), strides=2, activation="relu"),
                              L.Flatten(), L.Dense(3)], ["ZeroPadding2D"]),
    "a Conv1D stack: zero padding, batch norm, ReLU, 1-D pooling, a strided 'same' conv, global pooling": (
        (16, 3), lambda L: [L.ZeroPadding1D(1), L.Conv1D(4, 3), L.BatchNormalization(), L.ReLU(),
                            L.AveragePooling1D(2), L.Conv1D(5, 2, strides=2, padding="same"), L.BatchNormalization(),
                            L.Activation("relu"), L.GlobalAveragePooling1D(), L.Dense(3), L.Softmax()],
        ["ZeroPadding1D", "ZeroPadding1D", "Conv1D", "BatchNormalization", "ReLU", "AveragePooling1D", "Conv1D",
         "BatchNormalization", "Activation", "GlobalAveragePooling1D", "Softmax"]),
    "max pooling kept, 1-D max pooling as its 2-D twin": (
        (12, 2), lambda L: [L.Conv1D(4, 3, activation="relu"), L.MaxPooling1D(2), L.Flatten(), L.Dense(3)],
        ["Conv1D", "Conv1D", "MaxPooling1D"]),
    "global max pooling, 2-D and 1-D": (
        (6, 6, 1), lambda L: [L.Conv2D(4, 3, activation="relu"), L.GlobalMaxPooling2D(keepdims=True),
                              L.Reshape((1, 4)), L.Conv1D(3, 1, activation="relu"), L.GlobalMaxPooling1D(), L.Dense(3)],
        ["GlobalMaxPooling2D", "Conv1D", "Conv1D", "GlobalMaxPooling1D"]),
    "a dilated Conv1D, then Flatten": (
        (12, 2), lambda L: [L.Dropout(0.2), L.Conv1D(3, 3, dilation_rate=2, activation="relu"), L.Flatten(),
                            L.Dense(3)], ["Conv1D", "Conv1D"]),
}


@pytest.mark.parametrize("case", MAPPED)
def test_each_mapping_computes_the_same_function_in_layers_the_engine_runs(case):
    input_shape, build, rewritten = MAPPED[case]
    model = chain(input_shape, *build(layers()))
    form = canonical.canonicalise(model)
    same_function(model, form.model)
    assert {type(layer).__name__ for layer in form.model.layers} <= set(RUNNABLE)
    assert [c["class"] for c in form.changes] == rewritten
    assert all(model.layers[c["layer"]].name == c["name"] and c["rule"] for c in form.changes)
    network.describe(form.model, indices=form.indices)


def test_a_model_with_nothing_to_rewrite_comes_back_as_it_is():
    L = layers()
    model = chain((8, 8, 1), L.Conv2D(4, 3, activation="relu"), L.AveragePooling2D(2), L.Flatten(), L.Dense(3))
    form = canonical.canonicalise(model)
    assert form.model is model and form.changes == ()


REFUSED = {   # name: (layers, index and name of the refused layer, words of the reason)
    "batch norm after a ReLU activation": (
        lambda L: [L.Conv2D(4, 3, activation="relu", name="c"), L.BatchNormalization(name="bn")],
        "layer 1 'bn'", "relu stands between"),
    "batch norm after a ReLU layer": (
        lambda L: [L.Conv2D(4, 3, name="c"), L.ReLU(name="r"), L.BatchNormalization(name="bn")],
        "layer 2 'bn'", "relu stands between"),
    "batch norm after a pool": (
        lambda L: [L.Conv2D(4, 3, name="c"), L.AveragePooling2D(name="p"), L.BatchNormalization(name="bn")],
        "layer 2 'bn'", "nothing weighted"),
    "a clipped ReLU": (
        lambda L: [L.Conv2D(4, 3, name="c"), L.ReLU(max_value=6, name="relu6")], "layer 1 'relu6'", "QCFS"),
    "a leaky ReLU": (lambda L: [L.Conv2D(4, 3, name="c"), L.LeakyReLU(name="leaky")], "layer 1 'leaky'", "negative"),
    "a tanh activation": (lambda L: [L.Conv2D(4, 3, name="c"), L.Activation("tanh", name="t")], "layer 1 't'",
                          "no spiking equivalent"),
    "a softmax after a hidden layer": (
        lambda L: [L.Flatten(name="f"), L.Dense(4, name="d"), L.Softmax(name="s"), L.Dense(3, name="out")],
        "layer 2 's'", "last Dense"),
    "zero padding other than 'same'": (
        lambda L: [L.ZeroPadding2D(2, name="zp"), L.Conv2D(4, 3, name="c")], "layer 0 'zp'", "'same' padding"),
    "zero padding before a pool": (
        lambda L: [L.ZeroPadding2D(1, name="zp"), L.AveragePooling2D(name="p")], "layer 0 'zp'",
        "before a convolution"),
    "a causal Conv1D": (lambda L: [L.Reshape((8, 8), name="r"), L.Conv1D(4, 3, padding="causal", name="c")],
                        "layer 1 'c'", "left only"),
    "an LSTM after a Conv1D": (lambda L: [L.Reshape((8, 8), name="r"), L.Conv1D(4, 3, name="c"), L.LSTM(3, name="l")],
                               "layer 2 'l'", "after 1-D layers"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_does_not_map_is_refused_in_one_line_naming_the_layer(case):
    build, where, reason = REFUSED[case]
    with pytest.raises(UserError) as refused:
        canonical.canonicalise(chain((8, 8, 1), *build(layers())))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(where) and reason in message, message


def test_a_functional_model_is_rewritten_too_and_its_layers_named_by_their_index_in_model_layers():
    import tensorflow as tf
    L = layers()
    inputs = L.Input((8, 8, 1))
    hidden = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3)(inputs))))
    model = tf.keras.Model(inputs, L.Softmax()(L.Dense(3)(hidden)))
    form = canonical.canonicalise(model)
    same_function(model, form.model)
    assert [c["layer"] for c in form.changes] == [2, 3, 4, 6]          # model.layers[0] is the InputLayer
    refused = tf.keras.Model(inputs, L.ReLU(max_value=6.0, name="relu6")(L.Conv2D(4, 3)(inputs)))
    with pytest.raises(UserError, match=r"^layer 2 'relu6' \(ReLU\): ReLU\(max_value=6\) clips"):
        canonical.canonicalise(refused)


def test_a_layer_the_engine_cannot_run_is_named_by_the_users_index_after_folding():
    L = layers()
    model = chain((8, 8, 1), *conv_bn(), L.UpSampling2D(name="up"), L.Flatten(), L.Dense(3))
    form = canonical.canonicalise(model)
    with pytest.raises(UserError, match=r"^layer 3 'up' \(UpSampling2D\) cannot be mapped"):
        network.describe(form.model, indices=form.indices)


def tutorial_cnn(path):
    """Written as the Keras tutorials write a CNN (max pooling aside): BN and ReLU layers, global pooling, Softmax."""
    L = layers()
    model = chain((8, 12, 1), L.Conv2D(4, 3, padding="same", name="conv1"), L.BatchNormalization(name="bn1"),
                  L.Activation("relu", name="relu1"), L.AveragePooling2D(2, name="pool1"),
                  L.Conv2D(6, 3, padding="same", use_bias=False, name="conv2"), L.BatchNormalization(name="bn2"),
                  L.ReLU(name="relu2"), L.GlobalAveragePooling2D(name="gap"), L.Dense(3, name="out"),
                  L.Softmax(name="softmax"))
    model.save(path, save_format="h5")
    return model


def test_a_tutorial_cnn_is_brought_described_and_run_spike_for_spike_on_both_engine_paths(sandbox, tiny_npz):
    from pipeline import conversion, data, engine
    from pipeline.training import ann
    model = tutorial_cnn(sandbox / "tutorial.h5")
    dataset = data.load_dataset(str(tiny_npz))
    brought = ann.bring(sandbox / "tutorial.h5", dataset, sandbox / "trained")
    assert [c["class"] for c in brought.info["canonical"]] == [
        "BatchNormalization", "Activation", "BatchNormalization", "ReLU", "GlobalAveragePooling2D", "Softmax"]
    copy = engine.load_keras(brought.path)
    same_function(model, copy)
    graph = network.describe(copy)
    assert [type(n).__name__ for n in graph.nodes] == ["Conv2d", "AvgPool2d", "Conv2d", "AvgPool2d", "Flatten",
                                                        "Affine"]
    assert graph.nodes[3].kernel_size == (4, 6)                       # the whole 4x6 map
    x = dataset.x_test[:12]
    settings = engine.SnnSettings.ini_compatible(20, batch_size=12)     # spiking pools: the map-sized pool scans too
    net = conversion.from_model(copy, settings, engine.calibrate_thresholds(conversion.from_model(copy, settings), x))
    step = net.simulate(x, dataset.y_test[:12], record=range(12))
    fast = net.simulate(x, dataset.y_test[:12], record=range(12), fast=True, sparse=False)
    assert step.spikes_per_timestep[:, 1:].sum() > 0
    np.testing.assert_array_equal(fast.spikes_per_timestep, step.spikes_per_timestep)
    np.testing.assert_array_equal(fast.outputs, step.outputs)
    for name in step.layer_names[1:]:
        np.testing.assert_array_equal(fast.recorded[name], step.recorded[name], err_msg=name)


def conv1d_classifier():
    """A time-series classifier on (length 8, channels 12) inputs, as people write one in Keras."""
    L = layers()
    return chain((8, 12), L.Conv1D(6, 3, padding="same", name="conv1"), L.BatchNormalization(name="bn1"),
                 L.ReLU(name="relu1"), L.AveragePooling1D(2, name="pool1"),
                 L.Conv1D(8, 3, padding="same", name="conv2"), L.BatchNormalization(name="bn2"),
                 L.Activation("relu", name="relu2"), L.GlobalAveragePooling1D(name="gap"),
                 L.Dense(3, name="out"), L.Softmax(name="softmax"))


@pytest.mark.parametrize("kind", ["tutorial CNN", "Conv1D classifier", "max-pool CNN"])
def test_snn_toolbox_runs_the_canonical_model_as_the_engines_ini_mode_does(tmp_path, kind):
    """SIM=INI on the canonical copy: SNN Toolbox parses the plain chain (a Conv1D model's Reshape too) and
    spikes as the engine in INI mode."""
    from conftest import tiny_arrays, toolbox_run
    from pipeline import engine
    x_train, _, x_test, y_test = tiny_arrays()
    x_train, x_test, y_test = x_train[:50], x_test[:20], y_test[:20]
    if kind != "Conv1D classifier":
        x_train, x_test = x_train[..., None], x_test[..., None]
    user = {"tutorial CNN": lambda: tutorial_cnn(tmp_path / "tutorial.h5"), "Conv1D classifier": conv1d_classifier,
            "max-pool CNN": maxpool_cnn}[kind]()
    model = canonical.canonicalise(user).model
    _, run = toolbox_run(tmp_path, model, x_test, y_test, x_train, timesteps=20, poisson=False, batch_size=10)
    exact = engine.SpikingNetwork(engine.toolbox_normalised_model(model, run.scale_factors),
                                  settings=engine.SnnSettings.ini_compatible(20, batch_size=10))
    result = exact.simulate(x_test, y_test, record=range(len(x_test)))
    assert result.spikes_per_timestep[:, 1:].sum() > 0
    np.testing.assert_array_equal(np.transpose(result.outputs, (0, 2, 1)), run.output_counts)
    layers_with_neurons = [name for name in run.spike_counts if "MaxPooling" not in name]   # INI's max pools relay
    ours = [name for name in result.layer_names[1:] if name in exact.neuron_counts()]   # ours are recorded too
    assert len(layers_with_neurons) == len(ours)
    for toolbox_name, name in zip(layers_with_neurons, ours):
        np.testing.assert_array_equal(result.recorded[name].reshape(len(x_test), -1), run.spike_counts[toolbox_name],
                                      err_msg=f"{toolbox_name} vs {name}")


def test_the_canonical_tutorial_cnn_goes_to_nir_and_back_spike_for_spike_and_its_global_pool_costs_its_adds(tmp_path):
    from conftest import tiny_arrays
    from pipeline import conversion, engine, nirgraph
    from pipeline.energy import operations
    model = canonical.canonicalise(tutorial_cnn(tmp_path / "tutorial.h5")).model
    settings = engine.SnnSettings.ini_compatible(15, batch_size=10)
    net = conversion.from_model(model, settings, {"conv1": 0.5, "conv2": 0.3, "out": 0.2})
    pool = net.describe().nodes[3]
    assert operations.ann_adds(pool) == 4 * 6 * 6          # every input of the 4x6x6 map added once
    nirgraph.write(tmp_path / "net.nir", net.describe())
    back, _ = conversion.from_nir(tmp_path / "net.nir", 15, 0, 10)
    x = tiny_arrays()[2][:10, ..., None]
    ours, theirs = net.simulate(x, record=range(10)), back.simulate(x, record=range(10))
    assert ours.spikes_per_timestep[:, 1:].sum() > 0
    np.testing.assert_array_equal(theirs.spikes_per_timestep, ours.spikes_per_timestep)
    np.testing.assert_array_equal(theirs.outputs, ours.outputs)


def test_a_conv1d_network_runs_spike_for_spike_on_both_engine_paths_and_costs_what_its_2d_twin_costs():
    """The Reshape before a Conv1D stack moves no spike and costs nothing: the canonical Conv1D network
    spikes, and counts operations, as the same network written in 2-D on (1, L, C) inputs."""
    import tensorflow as tf
    from conftest import tiny_arrays
    from pipeline import conversion, engine
    from pipeline.energy import operations
    model = canonical.canonicalise(conv1d_classifier()).model
    twin = tf.keras.Sequential([layers().Input((1, 8, 12))] + [type(layer).from_config(layer.get_config())
                                                               for layer in model.layers[2:]])
    twin.set_weights(model.get_weights())
    x = tiny_arrays()[2][:12]
    settings = engine.SnnSettings(timesteps=20, coding="poisson", pooling="spiking", batch_size=12)
    thresholds = engine.calibrate_thresholds(conversion.from_model(model, settings), x)
    net = conversion.from_model(model, settings, thresholds)
    twin_net = conversion.from_model(twin, settings, thresholds)
    step = net.simulate(x, record=range(12))
    fast = net.simulate(x, record=range(12), fast=True, sparse=False)
    flat = twin_net.simulate(x[:, None], record=range(12))
    assert step.spikes_per_timestep[:, 1:].sum() > 0
    for other in (fast, flat):
        np.testing.assert_array_equal(other.spikes_per_timestep, step.spikes_per_timestep)
        for name in step.layer_names[1:]:
            np.testing.assert_array_equal(other.recorded[name], step.recorded[name], err_msg=name)
    inputs = engine.replay_input(net, x, operations.fan_out(net.describe().compute_nodes[0]))[0]
    ours, theirs = (operations.count_operations(n.describe().compute_nodes, step.neuron_totals, inputs, 12, "spiking")
                    for n in (net, twin_net))
    assert ours == theirs and ours[0].snn_acs > 0


def test_a_conv1d_network_is_refused_by_nir_export_in_one_line():
    from pipeline import engine, nirgraph
    net = engine.SpikingNetwork(canonical.canonicalise(conv1d_classifier()).model)
    with pytest.raises(UserError, match=r"^layer 'conv1_as_2d': NIR 1.0.5 has no Reshape node[^\n]*$"):
        nirgraph.to_nir(net.describe())


def test_a_conv1d_classifier_is_brought_on_length_by_channel_data_the_loader_reads_as_images(sandbox, tiny_npz):
    """An .npz of (n, L, C) loads as (L, C, 1) images: the brought Conv1D model takes them, one Reshape at its input."""
    from pipeline import data, engine
    from pipeline.training import ann
    model = conv1d_classifier()
    model.save(sandbox / "conv1d.h5", save_format="h5")
    dataset = data.load_dataset(str(tiny_npz))
    assert dataset.input_shape == (8, 12, 1)
    brought = ann.bring(sandbox / "conv1d.h5", dataset, sandbox / "trained")
    assert brought.info["canonical"][0]["name"] == "input" and brought.info["test_accuracy"] >= 0
    copy = engine.load_keras(brought.path)
    x = np.asarray(dataset.x_test[:16])
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x[..., 0], verbose=0), rtol=1e-5, atol=1e-6)
    graph = network.describe(copy)
    assert graph.input_shape == (8, 12, 1) and [type(n).__name__ for n in graph.nodes][:2] == ["Reshape", "Conv2d"]
    assert graph.nodes[0].output_shape == (1, 8, 12)


def maxpool_cnn():
    L = layers()
    return chain((8, 12, 1), L.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
                 L.MaxPooling2D(2, name="mp1"),
                 L.Conv2D(6, 3, padding="same", activation="relu", name="conv2"), L.MaxPooling2D((2, 3), name="mp2"),
                 L.Flatten(name="flat"), L.Dense(3, name="out"), L.Softmax(name="softmax"))


@pytest.mark.parametrize("fast", [False, True])
def test_a_max_pool_passes_the_spikes_of_the_input_with_the_most_spikes_so_far(fast):
    """Two inputs through a 1x1 identity conv (threshold 1: its spikes are the input's) into a max pool:
    a spikes at t = 0, 1, 2, b at t = 3..9. a leads (and wins the tie at t = 5, first in row-major
    order), b leads from t = 6: the pool passes a's 3 spikes and b's last 4, 7 of the 10, recorded as its
    layer's spikes (after c's)."""
    import tensorflow as tf
    from pipeline import engine
    L = layers()
    model = tf.keras.Sequential([L.Input((1, 2, 1)), L.Conv2D(1, 1, use_bias=False, activation="relu", name="c"),
                                 L.MaxPooling2D((1, 2), name="mp"), L.Flatten(), L.Dense(2, use_bias=False, name="d")])
    model.get_layer("c").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("d").set_weights([np.array([[1.0, 0.0]], np.float32)])
    trains = np.zeros((10, 1, 1, 2, 1), np.float32)
    trains[0:3, 0, 0, 0, 0] = trains[3:10, 0, 0, 1, 0] = 1.0
    net = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=10, batch_size=1))
    result = net.simulate(np.zeros((1, 1, 2, 1), np.float32), input_frames=lambda x, T: trains, fast=fast,
                          sparse=False)
    assert result.logits[0, 0] == 7.0
    assert result.layer_names[:3] == ("input", "c", "mp") and result.spikes_per_layer["mp"] == 7
    np.testing.assert_array_equal(result.spikes_per_timestep[:, 2], [1, 1, 1, 0, 0, 0, 1, 1, 1, 1])
    assert result.neuron_totals["mp"].tolist() == [[[7]]] and result.neuron_totals["c"].tolist() == [[[3], [7]]]
    if not fast:   # STDB's firing rate counts neurons only: c's 10 spikes over 2 neurons x 10 steps, not mp's
        from pipeline.training import stdb
        out = net.run(tf.zeros((1, 1, 2, 1)), engine.batch_key(0, 0), frames=tf.constant(trains))
        assert float(stdb.firing_rate(net, out["counts"])) == 10 / (2 * 10)


@pytest.mark.parametrize("coding", ["analog", "poisson"])
def test_max_pools_spike_the_same_on_both_engine_paths(coding, monkeypatch):
    """The step loop, the chain fast path and the graph fast path (the same chain run node by node): the
    same spikes per step, per neuron and per max pool output (what a max pool passes on is recorded after
    the layer it reads, its trains the spikes it passed)."""
    from conftest import tiny_arrays
    from pipeline import conversion, engine
    model = canonical.canonicalise(maxpool_cnn()).model
    x = tiny_arrays()[2][:12, ..., None]
    settings = engine.SnnSettings.ini_compatible(20, coding=coding, batch_size=12)
    net = conversion.from_model(model, settings, engine.calibrate_thresholds(conversion.from_model(model, settings), x))
    step = net.simulate(x, record=range(12), trains=True)
    chain = net.simulate(x, record=range(12), fast=True, sparse=False)
    monkeypatch.setattr(net, "_chained", lambda: False)
    graph = net.simulate(x, record=range(12), fast=True, sparse=False)
    assert step.layer_names == ("input", "conv1", "mp1", "conv2", "mp2", "out")
    assert 0 < step.spikes_per_layer["mp1"] < step.spikes_per_layer["conv1"]
    assert step.trains["mp2"].shape == (12, 20, 2, 2, 6)   # (8, 12) pooled by 2, then by (2, 3)
    for name in step.layer_names[1:]:
        np.testing.assert_array_equal(step.trains[name].sum(axis=1), step.recorded[name], err_msg=name)
    for fast in (chain, graph):
        np.testing.assert_array_equal(fast.spikes_per_timestep, step.spikes_per_timestep)
        np.testing.assert_array_equal(fast.outputs, step.outputs)
        for name in step.layer_names[1:]:
            np.testing.assert_array_equal(fast.recorded[name], step.recorded[name], err_msg=name)
            np.testing.assert_array_equal(fast.neuron_totals[name], step.neuron_totals[name], err_msg=name)


@pytest.mark.parametrize("layer, reason", [
    ("first", "layer 0 'mp' (MaxPooling2D): a max pool gates spikes by their counts, so it must follow a spiking"),
    ("overlapping", "layer 1 'mp' (MaxPooling2D): overlapping max pools"),
])
def test_a_max_pool_that_does_not_gate_spikes_is_refused_in_one_line(layer, reason):
    L = layers()
    stack = ([L.MaxPooling2D(name="mp"), L.Conv2D(2, 3, activation="relu")] if layer == "first" else
             [L.Conv2D(2, 3, activation="relu"), L.MaxPooling2D(3, strides=2, name="mp")])
    with pytest.raises(UserError) as refused:
        network.describe(chain((8, 8, 1), *stack, L.Flatten(), L.Dense(3)))
    assert str(refused.value).startswith(reason) and "\n" not in str(refused.value)


def test_nir_refuses_a_max_pool_in_one_line():
    from pipeline import engine, nirgraph
    graph = engine.SpikingNetwork(canonical.canonicalise(maxpool_cnn()).model).describe()
    with pytest.raises(UserError, match=r"^layer 'mp1': NIR 1.0.5 has no max pool node[^\n]*$"):
        nirgraph.to_nir(graph)


GRAPH_LAYERS = RUNNABLE + ("Add", "Concatenate", "Activation")


def graph(input_shape, build):
    """A functional model ``build(L, inputs)`` of one output, batch norms as in `chain`."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    inputs = layers().Input(input_shape, name="x")
    return with_statistics(tf.keras.Model(inputs, build(layers(), inputs)))


def in_the_graph_contract(model):
    """Only the layers a graph description takes: Conv2D / Dense relu or linear (softmax at the readout),
    channels-last convolutions of any groups, Concatenate over axis -1, Activation("relu") only right after
    an Add; one input, one output."""
    L = layers()
    assert len(model.inputs) == 1 and len(model.outputs) == 1
    readout = model.outputs[0]._keras_history.layer
    for layer in model.layers:
        assert type(layer).__name__ in GRAPH_LAYERS, layer.name
        inbound = layer._inbound_nodes[0].inbound_layers
        if type(layer) in (L.Conv2D, L.Dense):
            allowed = ("relu", "linear", "softmax") if layer is readout else ("relu", "linear")
            assert layer.get_config()["activation"] in allowed, layer.name
        if type(layer) is L.Conv2D:
            assert layer.data_format == "channels_last"
        if type(layer) is L.Concatenate:
            assert layer.axis == -1
        if type(layer) is L.Activation:
            assert layer.get_config()["activation"] == "relu" and type(inbound) is L.Add, layer.name


def stem(L, x, filters=4):
    """Conv-BN-ReLU: the layer a block follows."""
    return L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(x)))


def readout(L, x):
    return L.Softmax()(L.Dense(3)(L.GlobalAveragePooling2D()(x)))


def basic_block(L, x):
    """ResNet's basic block on the identity: Conv-BN-ReLU-Conv-BN, Add, ReLU."""
    y = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(x))
    y = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(L.ReLU()(y)))
    return L.ReLU()(L.Add()([y, x]))


def projection_block(L, x):
    """ResNet's downsampling block: strided main path, a strided 1x1 conv + BN shortcut, Activation('relu')."""
    y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(6, 3, strides=2, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(y))
    shortcut = L.BatchNormalization()(L.Conv2D(6, 1, strides=2)(x))
    return L.Activation("relu")(L.Add()([y, shortcut]))


def concatenate_block(L, x):
    """Inception-style branches side by side, over axis 3 (rewritten -1) then -1."""
    a = L.ReLU()(L.BatchNormalization()(L.Conv2D(2, 1)(x)))
    b = L.Conv2D(3, 3, padding="same", activation="relu")(x)
    c = L.Conv2D(2, (1, 3), padding="same", activation="relu")(x)
    return L.Concatenate()([L.Concatenate(axis=3)([a, b]), c])


def mobilenet_block(L, x):
    """MobileNet v1's strided block (ZeroPadding2D as `correct_pad` pads, DepthwiseConv2D-BN-ReLU, 1x1-BN-ReLU),
    then v2's inverted residual (expand 1x1, depthwise x2, linear projection, Add)."""
    y = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    y = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, strides=2, use_bias=False)(y)))
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(6, 1, use_bias=False)(y)))
    z = L.ReLU()(L.BatchNormalization()(L.Conv2D(12, 1, use_bias=False)(y)))
    z = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(z)))
    z = L.BatchNormalization()(L.Conv2D(6, 1, use_bias=False)(z))
    return L.Add()([z, y])


def separable_block(L, x):
    """SeparableConv2D with a depth multiplier, BN and ReLU; a strided one with its own ReLU and bias."""
    y = L.ReLU()(L.BatchNormalization()(L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2,
                                                          use_bias=False)(x)))
    return L.SeparableConv2D(5, 3, strides=2, activation="relu")(y)


def conv1d_residual(L, x):
    """A Conv1D residual block on (length, channels), the identity the model's own input."""
    y = L.ReLU()(L.BatchNormalization()(L.Conv1D(4, 3, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv1D(4, 3, padding="same")(y))
    y = L.Activation("relu")(L.Add()([y, x]))
    return L.Softmax()(L.Dense(3)(L.GlobalAveragePooling1D()(y)))


GRAPHS = {   # name: (input shape, model, the classes of the user's layers rewritten)
    "a ResNet basic block": (
        (8, 8, 3), lambda L, x: readout(L, basic_block(L, stem(L, x))),
        ["BatchNormalization", "ReLU", "BatchNormalization", "ReLU", "BatchNormalization", "ReLU",
         "GlobalAveragePooling2D", "Softmax"]),
    "a projection shortcut": (
        (8, 8, 3), lambda L, x: readout(L, projection_block(L, stem(L, x))),
        ["BatchNormalization", "ReLU", "BatchNormalization", "Activation", "BatchNormalization",
         "BatchNormalization", "GlobalAveragePooling2D", "Softmax"]),
    "a Concatenate block": (
        (6, 6, 2), lambda L, x: readout(L, concatenate_block(L, stem(L, x))),
        ["BatchNormalization", "ReLU", "BatchNormalization", "ReLU", "Concatenate", "GlobalAveragePooling2D",
         "Softmax"]),
    "a MobileNet block": (
        (8, 8, 3), lambda L, x: readout(L, mobilenet_block(L, stem(L, x))),
        ["BatchNormalization", "ReLU", "ZeroPadding2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
         "BatchNormalization", "ReLU", "BatchNormalization", "ReLU", "DepthwiseConv2D", "BatchNormalization",
         "ReLU", "BatchNormalization", "GlobalAveragePooling2D", "Softmax"]),
    "SeparableConv2D layers": (
        (8, 8, 2), lambda L, x: readout(L, separable_block(L, x)),
        ["SeparableConv2D", "BatchNormalization", "ReLU", "SeparableConv2D", "GlobalAveragePooling2D", "Softmax"]),
    "a Conv1D residual block": (
        (12, 4), conv1d_residual,
        ["Conv1D", "Conv1D", "BatchNormalization", "ReLU", "Conv1D", "BatchNormalization",   # the Add reads the
         "GlobalAveragePooling1D", "Softmax"]),                                    # first conv's Reshape too
}


@pytest.mark.parametrize("case", GRAPHS)
def test_a_graph_becomes_a_graph_of_the_layers_a_description_takes_computing_the_same_function(case):
    input_shape, build, rewritten = GRAPHS[case]
    model = graph(input_shape, build)
    form = canonical.canonicalise(model)
    same_function(model, form.model)
    in_the_graph_contract(form.model)
    assert [c["class"] for c in form.changes] == rewritten
    assert all(model.layers[c["layer"]].name == c["name"] and c["rule"] for c in form.changes)
    assert {layer.name: form.indices[layer.name] for layer in form.model.layers[1:]} == form.indices
    network.describe(form.model, indices=form.indices)


def test_a_residual_block_keeps_its_add_and_the_relu_after_it_as_one_activation_layer():
    model = graph((8, 8, 3), lambda L, x: readout(L, basic_block(L, stem(L, x))))
    form = canonical.canonicalise(model)
    kinds = [type(layer).__name__ for layer in form.model.layers]
    assert kinds == ["InputLayer", "Conv2D", "Conv2D", "Conv2D", "Add", "Activation", "AveragePooling2D", "Flatten",
                     "Dense"]
    convs = form.model.layers[1:4]
    assert [c.get_config()["activation"] for c in convs] == ["relu", "relu", "linear"]   # the last one feeds the Add
    assert form.model.layers[4].input[1] is convs[0].output                             # the identity
    relu = next(c for c in form.changes if c["class"] == "ReLU" and "Add" in c["rule"])
    assert model.layers[relu["layer"]].name == form.model.layers[5].name                # named as the user's ReLU


def test_a_depthwise_conv_is_a_conv2d_of_one_group_per_channel_with_the_same_kernel():
    """Kernel (kh, kw, C, m) as (kh, kw, 1, C*m): output channel c*m + j is input channel c's j-th filter."""
    import tensorflow as tf
    L = layers()
    model = graph((5, 5, 3), lambda L, x: L.Flatten()(L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)))
    depthwise = model.get_layer("dw").get_weights()[0]
    form = canonical.canonicalise(model)
    conv = form.model.get_layer("dw")
    assert type(conv) is L.Conv2D and conv.groups == 3 and conv.filters == 6
    np.testing.assert_array_equal(conv.get_weights()[0][:, :, 0, 2 * 1 + 1], depthwise[:, :, 1, 1])
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype(np.float32)
    alone = tf.nn.conv2d(x[..., 1:2], depthwise[:, :, 1:2, 1:2], 1, "VALID").numpy().reshape(2, -1)
    np.testing.assert_allclose(form.model.predict(x, verbose=0).reshape(2, 3, 3, 6)[..., 3].reshape(2, -1), alone
                               + conv.get_weights()[1][3], rtol=1e-5, atol=1e-6)


def test_a_conv1d_residual_block_on_the_loaders_images_takes_one_reshape_at_its_input():
    """(n, L, C) data loads as (L, C, 1): the input's Reshape goes straight to (1, L, C), which the first
    Conv1D and the identity of the Add both read."""
    model = graph((12, 4), conv1d_residual)
    form = canonical.canonicalise(model, data_shape=(12, 4, 1))
    x = np.random.default_rng(0).normal(size=(8, 12, 4)).astype(np.float32)
    np.testing.assert_allclose(form.model.predict(x[..., None], verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    reshapes = [layer for layer in form.model.layers if type(layer) is layers().Reshape]
    assert [r.target_shape for r in reshapes] == [(1, 12, 4)]
    add = next(layer for layer in form.model.layers if type(layer) is layers().Add)
    assert add.input[1] is reshapes[0].output
    in_the_graph_contract(form.model)


def test_a_graph_already_in_the_layers_a_description_takes_comes_back_as_it_is():
    def build(L, x):
        y = L.Conv2D(3, 3, padding="same", activation="relu")(x)
        y = L.Activation("relu")(L.Add()([L.Conv2D(3, 3, padding="same")(y), x]))
        return L.Dense(3)(L.Flatten()(L.Concatenate()([y, L.Conv2D(2, 1, groups=1, activation="relu")(x)])))
    model = graph((6, 6, 3), build)
    form = canonical.canonicalise(model)
    assert form.model is model and form.changes == ()


GRAPH_REFUSED = {   # name: (input shape, model, index and name of the refused layer, words of the reason)
    "batch norm after an Add": (
        (6, 6, 2), lambda L, x: L.BatchNormalization(name="bn")(L.Add(name="add")([L.Conv2D(2, 1)(x), x])),
        "layer 3 'bn'", "nothing weighted does (it follows 'add'"),
    "a ReLU of a value the Add reads un-ReLU'd": (
        (6, 6, 2), lambda L, x: L.Add()([L.ReLU(name="r")(c := L.Conv2D(2, 1, name="c")(x)), c]),
        "layer 2 'r'", "a ReLU of 'c' whose output is also used elsewhere ('add"),
    "a batch norm of a conv whose output a shortcut reads too": (
        (6, 6, 2), lambda L, x: L.Add()([L.BatchNormalization(name="bn")(c := L.Conv2D(2, 1, name="c")(x)), c]),
        "layer 2 'bn'", "a batch norm of 'c' whose output is also used elsewhere"),
    "a ReLU of an Add that is also used un-ReLU'd": (
        (6, 6, 2), lambda L, x: L.Concatenate()([L.ReLU(name="r")(a := L.Add(name="a")([x, x])), a]),
        "layer 2 'r'", "a ReLU of 'a' whose output is also used elsewhere"),
    "a ReLU after a Concatenate": (
        (6, 6, 2), lambda L, x: L.ReLU(name="r")(L.Concatenate()([x, x])), "layer 2 'r'", "or after an Add"),
    "a concatenation over the height": (
        (6, 6, 2), lambda L, x: L.Concatenate(axis=1, name="cat")([x, x]), "layer 1 'cat'", "not the channels"),
    "a layer called twice": (
        (6, 6, 2), lambda L, x: L.Add()([(c := L.Conv2D(2, 1, padding="same", name="c"))(x), c(x)]),
        "layer 1 'c'", "called 2 times"),
    "zero padding before a depthwise conv other than its 'same'": (
        (6, 6, 2), lambda L, x: L.DepthwiseConv2D(3)(L.ZeroPadding2D(2, name="zp")(x)), "layer 1 'zp'",
        "'same' padding"),
}


@pytest.mark.parametrize("case", GRAPH_REFUSED)
def test_what_does_not_map_in_a_graph_is_refused_in_one_line_naming_the_layer(case):
    input_shape, build, where, reason = GRAPH_REFUSED[case]
    with pytest.raises(UserError) as refused:
        canonical.canonicalise(graph(input_shape, build))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(where) and reason in message, message


def test_a_model_of_two_inputs_is_refused_in_one_line():
    import tensorflow as tf
    L = layers()
    a, b = L.Input((4,)), L.Input((4,))
    with pytest.raises(UserError, match=r"^model 'two' has 2 inputs and 1 outputs; [^\n]*one input and one output$"):
        canonical.canonicalise(tf.keras.Model([a, b], L.Add()([a, b]), name="two"))


@pytest.mark.slow   # a model trained briefly, then `make energy`: ~15 s on the shared cores
def test_make_energy_counts_a_max_pool_cnn_its_gates_and_the_spikes_they_pass(sandbox, tiny_npz):
    """`make energy MODEL=…` on the max-pool CNN: each max pool is a row, its gate's ACs are 2 per input spike
    in a window (conv1's spikes: its windows tile the 8 x 12 map), conv2 pays mp1's spikes x its fan-out."""
    import json
    from conftest import tiny_arrays
    from pipeline.__main__ import main
    model = maxpool_cnn()
    x_train, y_train = tiny_arrays()[:2]
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train[..., None], y_train, epochs=2, verbose=0)
    model.save(sandbox / "mp.h5", save_format="h5")
    common = [f"OUT={sandbox}", f"MODEL={sandbox / 'mp.h5'}", f"DATA={tiny_npz}", "N=20", "RUN=mp", "T=20"]
    assert main(["energy", *common]) == 0
    record = json.loads((sandbox / "results" / "mp" / "energy.json").read_text())
    rows = {row["name"]: row for row in record["layers"]}
    assert list(rows) == ["conv1", "mp1", "conv2", "mp2", "out"]
    assert rows["mp1"]["ann_adds"] == 8 * 12 * 4 and rows["mp1"]["ann_macs"] == 0
    assert rows["mp1"]["snn_acs"] == pytest.approx(2 * rows["conv1"]["snn_spikes"])
    assert 0 < rows["mp1"]["snn_spikes"] <= rows["conv1"]["snn_spikes"]
    assert rows["conv2"]["snn_acs"] > 0 and record["total"]["snn_energy_j"] > 0
