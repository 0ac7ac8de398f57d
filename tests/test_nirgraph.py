"""NIR export: the round trip gives the same spikes, and a NumPy reading of the NIR graph in NIR's own
channels-first terms (written from NIR's definitions, not from our engine) spikes as the engine does."""
import dataclasses
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf

from pipeline import UserError, engine, network, nirgraph
from pipeline.stages import export
from test_graph import concat_block, residual_block, separable_chain

layers = tf.keras.layers
T = 12
THRESHOLDS = {"c1": 0.55, "c2": 0.8, "d1": 1.3, "d2": 0.9}


def asymmetric_net():
    """Catches symmetric bugs: even kernels ('same' pads unevenly), H != W, two pools, two channels
    before Flatten (channel order matters), a distinct threshold per layer."""
    tf.keras.utils.set_random_seed(3)
    inputs = layers.Input((6, 10, 1))
    x = layers.Conv2D(3, (4, 2), padding="same", activation="relu", use_bias=False, name="c1")(inputs)
    x = layers.AveragePooling2D(2, name="p1")(x)
    x = layers.Conv2D(2, (2, 4), padding="same", activation="relu", use_bias=True, name="c2")(x)
    x = layers.AveragePooling2D((1, 2), name="p2")(x)
    x = layers.Flatten(name="f")(x)
    x = layers.Dense(7, activation="relu", use_bias=False, name="d1")(x)
    out = layers.Dense(3, activation="softmax", use_bias=False, name="d2")(x)
    model = tf.keras.Model(inputs, out)
    model.set_weights([np.abs(w) + 0.05 if w.ndim > 1 else w + 0.1 for w in model.get_weights()])
    return model


def settings(pooling, readout):
    return engine.SnnSettings(timesteps=T, coding="analog", pooling=pooling, readout=readout, batch_size=4)


def corner_inputs():
    x = np.zeros((4, 6, 10, 1), np.float32)
    x[0, 0, 0, 0] = 1.0                                                # one-hot corner: 'same' padding side
    x[1, -1, -1, 0] = 1.0                                              # the other corner
    x[2:] = np.random.default_rng(0).uniform(0, 1, (2, 6, 10, 1))
    return x


def numpy_reference(graph, x):
    """Spike counts per IF node and the output of a NIR graph on constant input ``x`` (C, H, W), T steps.

    NIR's semantics only: a node's input is the sum of every edge entering it; Conv2d is PyTorch's
    cross-correlation ('same' padding total k-1 with the smaller half first, integers on both sides; a
    stride keeps every s-th output of the unit-stride one; with groups, output block g reads input
    block g); AvgPool2d averages each window; Flatten orders (C, H, W); Scale multiplies;
    IF integrates, fires where v > v_threshold and subtracts it; I integrates.
    """
    import nir
    sources = {}
    for source, target in graph.edges:
        sources.setdefault(target, []).append(source)
    order, placed = [], {"input"}
    while len(placed) < len(graph.nodes):   # each node once every node feeding it is placed, whatever the file order
        for name in graph.nodes:
            if name not in placed and set(sources[name]) <= placed:
                order.append(name)
                placed.add(name)
    state, counts = {}, {}
    values = {}
    for _ in range(T):
        values = {"input": x}
        for name in order:
            node, h = graph.nodes[name], sum(values[s] for s in sources[name])
            if isinstance(node, nir.Conv2d):
                w = node.weight
                kh, kw = w.shape[2:]
                assert np.all(np.asarray(node.dilation) == 1)
                if isinstance(node.padding, str):
                    pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) if node.padding == "same" else (0, 0)
                            for k in (kh, kw)]
                else:
                    pads = [(int(p), int(p)) for p in np.broadcast_to(node.padding, 2)]
                padded = np.pad(h, [(0, 0)] + pads)
                rows, cols = padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
                block, per_group = w.shape[1], w.shape[0] // node.groups
                group = [padded[o // per_group * block:(o // per_group + 1) * block] for o in range(w.shape[0])]
                h = np.stack([[[np.sum(group[o][:, i:i + kh, j:j + kw] * w[o]) for j in range(cols)]
                               for i in range(rows)] for o in range(w.shape[0])]) + node.bias[:, None, None]
                h = h[:, ::np.broadcast_to(node.stride, 2)[0], ::np.broadcast_to(node.stride, 2)[1]]
            elif isinstance(node, nir.AvgPool2d):
                (kh, kw), (sh, sw) = node.kernel_size, node.stride
                rows, cols = (h.shape[1] - kh) // sh + 1, (h.shape[2] - kw) // sw + 1
                h = np.stack([[[h[c, i * sh:i * sh + kh, j * sw:j * sw + kw].mean() for j in range(cols)]
                               for i in range(rows)] for c in range(h.shape[0])])
            elif isinstance(node, nir.Flatten):
                h = h.reshape(-1)
            elif isinstance(node, (nir.Linear, nir.Affine)):
                h = node.weight @ h + (node.bias if isinstance(node, nir.Affine) else 0)
            elif isinstance(node, nir.Scale):
                h = h * node.scale
            elif isinstance(node, nir.IF):
                v = state.get(name, np.zeros(h.shape)) + h
                spikes = (v > node.v_threshold).astype(np.float64)
                state[name] = v - spikes * node.v_threshold
                counts[name] = counts.get(name, 0) + spikes
                h = spikes
            elif isinstance(node, nir.I):
                state[name] = state.get(name, np.zeros(h.shape)) + h
                h = state[name]
            values[name] = h
    return counts, values["output"]


@pytest.mark.parametrize("pooling, readout", [("linear", "membrane"), ("spiking", "spike_count")])
def test_round_trip_gives_the_same_spikes(tmp_path, pooling, readout):
    model = asymmetric_net()
    net = engine.SpikingNetwork(model, THRESHOLDS, settings(pooling, readout))
    side = nirgraph.write(tmp_path / "net.nir", net.describe())
    assert side["nir_version"] == "1.0.5" and side["readout"] == readout
    back, thresholds, neurons = nirgraph.read(tmp_path / "net.nir")
    assert thresholds == pytest.approx(THRESHOLDS, rel=1e-7) and neurons.pooling == pooling
    again = engine.SpikingNetwork(back, thresholds, settings(neurons.pooling, neurons.readout))
    x = corner_inputs()
    a, b = net.simulate(x, record=range(4)), again.simulate(x, record=range(4))
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.spikes_per_timestep, b.spikes_per_timestep)
    for name, counts in a.recorded.items():
        np.testing.assert_array_equal(counts, b.recorded[name.replace(".", "_")])


def calibrated(model, x, pooling="spiking", readout="spike_count", batch_size=4):
    """``model`` converted with thresholds calibrated on ``x`` (analog input, T steps)."""
    net = engine.SpikingNetwork(model, None, settings(pooling, readout))
    thresholds = engine.calibrate_thresholds(net, x)
    return engine.SpikingNetwork(model, thresholds,
                                 dataclasses.replace(settings(pooling, readout), batch_size=batch_size))


def graph_inputs():
    return np.random.default_rng(2).uniform(0, 1, (4, 4, 4, 2)).astype(np.float32)


def flattened_sum(seed=0):
    """Two feature maps flattened and added without a ReLU (a linear Add of vectors in the engine's
    channels-last order, NIR's channels-first), read out by a dense layer."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((4, 4, 2))
    a = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv1")(inputs)
    b = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv2")(a)
    x = layers.Add(name="add")([layers.Flatten(name="f2")(b), layers.Flatten(name="f1")(a)])
    return tf.keras.Model(inputs, layers.Dense(3, name="out")(x), name="flattened_sum")


def strided_chain(seed=0):
    """Strided 'same' convolutions where TF pads one less before than after (8 rows, kernel 3, stride 2:
    0 before, 1 after; 7 columns, kernel 4: 1 before, 2 after), which NIR writes as symmetric integers
    and a kernel grown in front."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((8, 7, 1))
    x = layers.Conv2D(3, (3, 4), strides=2, padding="same", activation="relu", name="c1")(inputs)
    x = layers.Conv2D(2, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    out = layers.Dense(3, name="out")(layers.Flatten(name="flatten")(x))
    model = tf.keras.Model(inputs, out, name="strided")
    model.set_weights([np.abs(w) + 0.05 for w in model.get_weights()])
    return model


def strided_inputs():
    return np.random.default_rng(4).uniform(0, 1, (4, 8, 7, 1)).astype(np.float32)


def biased(model):
    """``model`` with every bias drawn nonzero (Keras starts them at 0): a bias enters the engine's current
    over the unit of its layer's input, and the file must hold it so."""
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.02, 0.1, bias.shape).astype(np.float32)])
    return model


GRAPHS = {"residual": (lambda: biased(residual_block()), graph_inputs),
          "separable": (lambda: biased(separable_chain(seed=2)), graph_inputs),
          "flattened_sum": (lambda: biased(flattened_sum()), graph_inputs),
          "strided": (lambda: biased(strided_chain()), strided_inputs)}


@pytest.mark.parametrize("pooling, readout", [("linear", "membrane"), ("spiking", "spike_count")])
@pytest.mark.parametrize("build", ["asymmetric", *GRAPHS])
def test_a_numpy_reading_of_the_nir_graph_spikes_as_the_engine(pooling, readout, build):
    if build == "asymmetric":
        net, x = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings(pooling, readout)), corner_inputs()
    else:   # separable_chain's seed 2: its readout spikes
        model, x = GRAPHS[build][0](), GRAPHS[build][1]()
        net = calibrated(model, x, pooling, readout)
    graph = nirgraph.to_nir(net.describe())
    result = net.simulate(x, record=range(4))
    assert all(result.recorded[name].sum() > 0 for name in result.recorded)
    for sample in range(4):
        counts, out = numpy_reference(graph, x[sample].transpose(2, 0, 1).astype(np.float64))
        for name, total in result.recorded.items():
            reference = counts[f"{name}.if"]
            reference = reference.transpose(1, 2, 0) if reference.ndim == 3 else reference
            np.testing.assert_array_equal(total[sample], reference, err_msg=name)
        if readout == "membrane":
            np.testing.assert_allclose(result.logits[sample], out, rtol=1e-4, atol=1e-4)


def test_the_export_check_compares_every_neurons_train_and_refuses_a_file_that_differs(tmp_path):
    import h5py
    one_at_a_time = dataclasses.replace(settings("spiking", "spike_count"), batch_size=1)   # as the check runs
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, one_at_a_time)
    x, y = corner_inputs(), np.array([0, 1, 2, 0])
    path = tmp_path / "net.nir"
    nirgraph.write(path, net.describe())
    checked = export.check_round_trip(net, path, x, y)
    run = net.simulate(x, y, record=range(4))
    neurons = 3 * 6 * 10 + 3 * 3 * 5 + 2 * 3 * 5 + 2 * 3 * 2 + 7 + 3
    assert checked == {"num_samples": 4, "timesteps": T, "layers": ["c1", "p1", "c2", "p2", "d1", "d2"],
                       "spike_values_compared": 4 * T * neurons, "spike_values_differing": 0, "spikes_equal": True,
                       "predictions_equal": True, "snn_accuracy": run.accuracy}
    d1 = run.recorded["d1"].sum(axis=0)
    i, j = np.argmax(d1), np.argmin(d1)
    assert d1[i] > d1[j]

    # Two hidden neurons swapped (d1's rows and d2's columns): the same function, the same per-layer totals
    # and decisions (all that the check compared before), but neurons i and j spike differently.
    order = np.arange(7)
    order[[i, j]] = order[[j, i]]
    with h5py.File(path, "r+") as f:
        f["node/nodes/d1/weight"][...] = f["node/nodes/d1/weight"][...][order]       # NIR: (out, in)
        f["node/nodes/d2/weight"][...] = f["node/nodes/d2/weight"][...][:, order]
    back = engine.SpikingNetwork(*nirgraph.read(path)[:2], one_at_a_time)
    ours, theirs = net.simulate(x, fast=True), back.simulate(x, fast=True)     # as the check was
    np.testing.assert_array_equal(ours.spikes_per_timestep, theirs.spikes_per_timestep)
    np.testing.assert_array_equal(ours.predictions, theirs.predictions)
    with pytest.raises(UserError, match=r"net.nir: .* neuron-steps differ on 4 test samples\); export refused"):
        export.check_round_trip(net, path, x, y)
    assert not path.exists() and not path.with_suffix(".json").exists()

    # One weight of the first layer changed.
    nirgraph.write(path, net.describe())
    with h5py.File(path, "r+") as f:
        f["node/nodes/c1/weight"][0, 0, 0, 0] += 1.0
    with pytest.raises(UserError, match="neuron-steps differ"):
        export.check_round_trip(net, path, x, y)
    assert not path.exists()


def test_same_padding_is_asymmetric_in_the_file():
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings("linear", "membrane"))
    graph = nirgraph.to_nir(net.describe())
    assert graph.nodes["c1"].padding == "same" and graph.nodes["c1"].weight.shape == (3, 1, 4, 2)
    theta = np.float32(THRESHOLDS["c1"])
    assert graph.nodes["c1.if"].v_threshold.flat[0] < theta and \
        np.nextafter(graph.nodes["c1.if"].v_threshold.flat[0], np.float32(np.inf)) == theta


def test_what_nir_cannot_hold_is_refused(tmp_path):
    leaky = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, engine.SnnSettings(timesteps=T, leak=0.9))
    with pytest.raises(UserError, match="leak below 1"):
        nirgraph.to_nir(leaky.describe())
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not a readable NIR file"):
        nirgraph.read(bad)
    with pytest.raises(UserError, match="not found"):
        nirgraph.read(tmp_path / "missing.nir")


def test_a_graph_node_that_leads_nowhere_or_a_scale_outside_a_merge_is_refused():
    import nir

    def graph(nodes, edges):
        return nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), **nodes, "output": nir.Output(np.array([2]))},
                            edges=edges, type_check=False)
    a, b = nir.Linear(np.ones((2, 2))), nir.Linear(np.ones((2, 2)))
    with pytest.raises(UserError, match="nothing reads nodes \\['b'\\]"):
        nirgraph.from_nir(graph({"a": a, "b": b}, [("input", "a"), ("input", "b"), ("a", "output")]))
    with pytest.raises(UserError, match="form a cycle"):
        nirgraph.from_nir(graph({"a": a, "b": b}, [("input", "a"), ("a", "b"), ("b", "a"), ("a", "output")]))
    with pytest.raises(UserError, match="node 's': a Scale outside a merge"):
        nirgraph.from_nir(graph({"s": nir.Scale(np.full(2, 2.0)), "a": a},
                                [("input", "s"), ("s", "a"), ("a", "output")]))
    with pytest.raises(UserError, match="'b' \\(Linear\\) is entered by several edges"):
        nirgraph.from_nir(graph({"a": a, "b": b}, [("input", "a"), ("input", "b"), ("a", "b"), ("b", "output")]))


def test_a_residual_block_is_written_as_edges_into_its_if_the_shortcut_through_its_merge_scale():
    # units (see test_graph): conv1's spikes stand for 2, conv2's for 2 x 4 = 8; conv3 is linear (no IF) and
    # keeps 8; the add's IF sums conv3's current and conv1's spikes x 2/8 = 0.25 (the Scale node).
    net = engine.SpikingNetwork(residual_block(), {"conv1": 2.0, "conv2": 4.0, "add": 3.0, "out": 1.5},
                                settings("spiking", "spike_count"))
    graph = nirgraph.to_nir(net.describe())
    assert graph.edges == [("input", "conv1"), ("conv1", "conv1.if"), ("conv1.if", "conv2"), ("conv2", "conv2.if"),
                           ("conv2.if", "conv3"), ("conv3", "add.if"), ("conv1.if", "add.scale.conv1"),
                           ("add.scale.conv1", "add.if"), ("add.if", "flatten"), ("flatten", "out"),
                           ("out", "out.if"), ("out.if", "output")]
    scale = graph.nodes["add.scale.conv1"].scale
    assert scale.shape == (3, 4, 4) and np.all(scale == 0.25)
    assert graph.nodes["add.if"].v_threshold.flat[0] == np.nextafter(np.float32(3.0), np.float32(0))
    assert graph.nodes["conv3"].weight.shape == (3, 3, 3, 3) and "conv3.if" not in graph.nodes


def test_a_bias_is_written_as_the_engine_adds_it_per_step_and_read_back_to_the_same(tmp_path):
    # A bias enters in the unit of its layer's input: conv1's in the input's (1), conv2's in conv1's (2),
    # conv3's in conv2's (2 x 4 = 8); the file holds b / unit (NIR adds its bias every step), the Keras
    # bias in the node's metadata. Without the metadata (another writer's file), the Keras bias read back
    # (the file's times the unit) gives the file's bias per step again, bit for bit on these values.
    import h5py
    model = biased(residual_block())
    thresholds = {"conv1": 2.0, "conv2": 4.0, "add": 3.0, "out": 1.5}
    net = engine.SpikingNetwork(model, thresholds, settings("spiking", "spike_count"))
    graph = nirgraph.to_nir(net.describe())
    for name, unit in (("conv1", 1), ("conv2", 2), ("conv3", 8)):
        keras_bias = model.get_layer(name).get_weights()[1]
        np.testing.assert_array_equal(graph.nodes[name].bias, keras_bias / np.float32(unit))
        np.testing.assert_array_equal(graph.nodes[name].metadata["keras_bias"], keras_bias)
    path = tmp_path / "net.nir"
    nirgraph.write(path, net.describe())
    with h5py.File(path, "r+") as f:
        for name in ("conv1", "conv2", "conv3"):
            del f[f"node/nodes/{name}/metadata/keras_bias"]
    back, thresholds_back, _ = nirgraph.read(path)
    again = nirgraph.to_nir(network.describe(back, thresholds_back))
    for name in ("conv1", "conv2", "conv3"):
        np.testing.assert_array_equal(again.nodes[name].bias, graph.nodes[name].bias)


def test_a_linear_add_is_an_identity_scale_and_a_grouped_convolution_keeps_its_groups():
    graph = nirgraph.to_nir(network.describe(flattened_sum(), {"conv1": 2.0, "conv2": 4.0}))
    assert np.all(graph.nodes["add"].scale == 1) and graph.nodes["add"].scale.shape == (48,)
    assert [e for e in graph.edges if "add" in e[1]] == [("f2", "add"), ("f1", "add.scale.f1"), ("add.scale.f1", "add")]
    assert np.all(graph.nodes["add.scale.f1"].scale == 0.25)
    separable = nirgraph.to_nir(network.describe(separable_chain()))
    depthwise = separable.nodes["depthwise"]
    assert depthwise.groups == 4 and depthwise.weight.shape == (8, 1, 3, 3) and "depthwise.if" not in separable.nodes
    assert ("depthwise", "pointwise") in separable.edges


def test_a_strided_same_convolution_is_written_padded_after_on_both_sides_its_kernel_grown_in_front():
    # c1: 8 rows, kernel 3, stride 2: TF pads 0 before, 1 after -> (1, 1), one zero row in front (kernel 4);
    # 7 columns, kernel 4: 1 before, 2 after -> (2, 2), one zero column in front (kernel 5). c2 on 4 x 4,
    # kernel 3, stride 2: 0 before, 1 after on both axes.
    graph = nirgraph.to_nir(network.describe(strided_chain()))
    c1, c2 = graph.nodes["c1"], graph.nodes["c2"]
    assert tuple(c1.padding) == (1, 2) and c1.weight.shape == (3, 1, 4, 5)
    assert not np.any(c1.weight[:, :, 0]) and not np.any(c1.weight[:, :, :, 0]) and np.all(c1.weight[:, :, 1:, 1:] > 0)
    assert tuple(c2.padding) == (1, 1) and c2.weight.shape == (2, 3, 4, 4)
    assert list(c1.metadata["keras_kernel_size"]) == [3, 4]


@pytest.mark.parametrize("build", list(GRAPHS))
def test_the_export_check_passes_on_graphs_read_back_as_the_same_graph(tmp_path, build):
    x = GRAPHS[build][1]()
    net = calibrated(GRAPHS[build][0](), x, batch_size=1)
    path = tmp_path / "net.nir"
    nirgraph.write(path, net.describe())
    model, thresholds, neurons = nirgraph.read(path)
    back = network.describe(model, thresholds, neurons)
    ours = net.describe()
    assert back.edges == ours.edges and back.thresholds() == pytest.approx(ours.thresholds(), rel=1e-7)
    assert [(type(a), getattr(a, "neuron", 0) is None) for a in back.nodes] == \
        [(type(b), getattr(b, "neuron", 0) is None) for b in ours.nodes]
    assert [getattr(n, "groups", 1) for n in back.nodes] == [getattr(n, "groups", 1) for n in ours.nodes]
    checked = export.check_round_trip(net, path, x, np.zeros(4, int))
    assert checked["spikes_equal"] and checked["predictions_equal"] and checked["spike_values_compared"] > 0


def test_a_file_whose_merge_scale_is_not_the_engines_is_refused(tmp_path):
    import h5py
    net = calibrated(residual_block(), graph_inputs())
    path = tmp_path / "net.nir"
    nirgraph.write(path, net.describe())
    with h5py.File(path, "r+") as f:
        f["node/nodes/add.scale.conv1/scale"][...] *= 2
    with pytest.raises(UserError, match="node 'add.if': an input enters scaled by"):
        nirgraph.read(path)


def test_a_concatenation_is_refused_in_one_line():
    with pytest.raises(UserError, match="layer 'cat': NIR 1.0.5 has no concatenation node"):
        nirgraph.to_nir(network.describe(concat_block()))


def test_the_description_names_match_nir():
    graph = network.describe(asymmetric_net())
    assert [type(n).__name__ for n in graph.compute_nodes] == ["Conv2d", "AvgPool2d", "Conv2d", "AvgPool2d",
                                                              "Affine", "Affine"]


@pytest.mark.slow
def test_export_stage_writes_a_file_the_engine_reads_back(sandbox, tiny_npz, capsys):
    from pipeline.__main__ import main
    args = ["export", f"OUT={sandbox}", "--data", str(tiny_npz), "--run", "ex", "--epochs", "2", "--width", "4",
            "--timesteps", "16"]
    assert main(args) == 0
    run = sandbox / "results" / "ex"
    side = json.loads((run / "converted_T16.json").read_text())
    checked = side["round_trip"]
    assert checked["spikes_equal"] and checked["spike_values_differing"] == 0 and checked["num_samples"] == 10
    assert checked["layers"] == ["conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"]
    assert side["readout"] == "spike_count" and side["pooling"] == "spiking" and side["nir_version"] == "1.0.5"
    model, thresholds, neurons = nirgraph.read(run / "converted_T16.nir")
    assert checked["spike_values_compared"] == 10 * 16 * sum(engine.SpikingNetwork(model).neuron_counts().values())
    assert set(thresholds) == {"conv1", "conv2", "conv3", "dense1", "dense2"} and neurons.pooling == "spiking"
    assert main(["export", f"OUT={sandbox}", "--run", "ex", "--timesteps", "16", "--net", "qcfs"]) == 0
    qcfs = json.loads((run / "qcfs_T16.json").read_text())
    assert qcfs["initial_membrane_fraction_of_threshold"] == 0.5 and qcfs["round_trip"]["spikes_equal"]
    assert qcfs["readout"] == "membrane" and qcfs["pooling"] == "linear"
    assert main(["export", f"OUT={sandbox}", "--run", "ex", "--timesteps", "16", "--net", "stdb"]) == 2
    assert "make stdb T=16" in capsys.readouterr().err


def test_a_bias_is_written_in_the_engines_unit_and_read_back_as_the_keras_bias():
    # c2 reads p1, whose unit is c1's threshold (THRESHOLDS["c1"]): the file's bias is the Keras bias over it;
    # a file from another tool (no keras_bias metadata) is read as a bias in that unit too.
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings("linear", "membrane"))
    keras_bias = net.model.get_layer("c2").bias.numpy()
    graph = nirgraph.to_nir(net.describe())
    np.testing.assert_array_equal(graph.nodes["c2"].bias, keras_bias / np.float32(THRESHOLDS["c1"]))
    back, _, _ = nirgraph.from_nir(graph)
    np.testing.assert_array_equal(back.get_layer("c2").bias.numpy(), keras_bias)
    del graph.nodes["c2"].metadata["keras_bias"]
    foreign, _, _ = nirgraph.from_nir(graph)
    np.testing.assert_allclose(foreign.get_layer("c2").bias.numpy(), keras_bias, rtol=1e-6)
