"""Weight quantisation (QUANT, issue 24 item 2): per-channel symmetric codes by hand; the engine's currents
are the integer arithmetic's, scaled; a RUN with PRUNE and QUANT keeps its zeros and its integer grid,
is cached under its own name and exports its scales to NIR; int8 energy and memory counted by hand."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, energy, engine, network, nirgraph, settings as settings_module, workspace
from pipeline.engine import simulator
from pipeline.training import ann, quantisation


def test_a_kernel_is_quantised_per_output_channel_by_hand_and_zeros_stay_zero():
    kernel = np.array([[1.0, -0.5], [0.25, 0.0], [0.0, 0.125]], np.float32)   # (in 3, out 2)
    q, scale = quantisation.quantise_kernel(kernel, 8)
    # channel 0: scale 1/127 (rounded up to 17 significant bits), 0.25 x 127 = 31.75 -> 32
    # channel 1: scale 0.5/127, 0.125 x 127 / 0.5 = 31.75 -> 32
    np.testing.assert_array_equal(q, [[127, -127], [32, 0], [0, 32]])
    assert scale[0] == pytest.approx(1 / 127, rel=2 ** -16) and scale[0] >= np.float32(1 / 127)
    assert scale[1] == pytest.approx(0.5 / 127, rel=2 ** -16)
    stored = quantisation.dequantised(q, scale)
    # q x scale is exact in float32: the float64 product equals the stored float32 value
    np.testing.assert_array_equal(stored.astype(np.float64), q * scale.astype(np.float64))
    back_q, back_scale = quantisation.integer_weights(stored, 8)
    np.testing.assert_array_equal(back_q, q)
    np.testing.assert_array_equal(back_scale, scale)
    with pytest.raises(ValueError, match="not quantised to 8 bits"):
        quantisation.integer_weights(kernel, 8)
    q4, _ = quantisation.quantise_kernel(kernel, 4)                  # q_max 7: 0.25 x 7 = 1.75 -> 2
    np.testing.assert_array_equal(q4, [[7, -7], [2, 0], [0, 2]])


def test_a_bad_width_is_one_clear_error():
    for bits in (1, 9, -8):
        with pytest.raises(UserError, match=f"QUANT={bits}: .* 0 .* or 2 to 8"):
            ann.TrainSettings(quant=bits)
    with pytest.raises(UserError, match="QUANT=16 must be 0 .* or a width of 2 to 8 bits"):
        settings_module.parse(["energy", "QUANT=16"])


def tiny_quantised_model(kernels):
    """Input 3x3x1 -> Conv2D 2x2 'valid', 2 filters -> Flatten -> Dense 8 -> 2, no biases, quantised to 8 bits."""
    import tensorflow as tf
    inputs = tf.keras.Input((3, 3, 1))
    conv = tf.keras.layers.Conv2D(2, 2, use_bias=False, activation="relu", name="conv")(inputs)
    out = tf.keras.layers.Dense(2, use_bias=False, name="dense")(tf.keras.layers.Flatten()(conv))
    model = tf.keras.Model(inputs, out)
    model.set_weights(kernels)
    scales = quantisation.quantise(model, 8)
    return model, {name: np.array(s, np.float32) for name, s in scales.items()}


@pytest.mark.parametrize("case", ["power of two scale", "random scale"])
def test_the_engines_currents_are_the_integer_sums_scaled(case):
    import tensorflow as tf
    rng = np.random.default_rng(1)
    if case == "power of two scale":   # each channel's peak 127 x 2^-7: scale 2^-7, every sum exact in float32
        q = [rng.integers(-127, 128, (2, 2, 1, 2)), rng.integers(-127, 128, (8, 2))]
        for k in q:
            k.reshape(-1, k.shape[-1])[0] = 127
        kernels = [(k * 2.0 ** -7).astype(np.float32) for k in q]
    else:
        kernels = [rng.normal(size=(2, 2, 1, 2)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)]
    model, scales = tiny_quantised_model(kernels)
    graph = network.describe(model)
    frames = {"conv": rng.random((5, 3, 3, 1)) < 0.5, "dense": rng.random((5, 8)) < 0.5}   # unit spikes
    for stage in graph.weighted:
        q, scale = quantisation.integer_weights(stage.layer.get_weights()[0], 8)
        np.testing.assert_array_equal(scale, scales[stage.name])
        s = frames[stage.name].astype(np.int64)
        if isinstance(stage, network.Conv2d):   # integer correlation, 'valid': sum_ab q[a, b, 0, k] s[i+a, j+b]
            sums = np.stack([np.einsum("fabc,abck->fk", s[:, i:i + 2, j:j + 2], q) for i in range(2) for j in range(2)],
                            axis=1).reshape(5, 2, 2, 2)
            magnitudes = np.stack([np.einsum("fabc,abck->fk", s[:, i:i + 2, j:j + 2], np.abs(q))
                                   for i in range(2) for j in range(2)], axis=1).reshape(5, 2, 2, 2)
            terms = 4
        else:
            sums, magnitudes, terms = s @ q, s @ np.abs(q), 8
        exact = sums * scale.astype(np.float64)            # integer accumulation, then one scaling
        # float32 sums of exact products q x scale: recursive summation's bound (terms - 1) u sum|q x scale|,
        # plus the rounding of the result to float32 (u = 2^-24)
        bound = terms * 2.0 ** -24 * magnitudes * scale.astype(np.float64)
        x = frames[stage.name].astype(np.float32)
        keras_op = (stage.layer.convolution_op(x, stage.layer.kernel) if isinstance(stage, network.Conv2d)
                    else tf.matmul(x, stage.layer.kernel))   # the step path's ops: Keras' own
        for current in (simulator.event_current(stage, x), keras_op.numpy()):   # and the fast path's, event by event
            if case == "power of two scale":
                np.testing.assert_array_equal(current.astype(np.float64), exact)
            else:
                assert np.all(np.abs(current.astype(np.float64) - exact) <= bound)


@pytest.fixture(scope="module")
def quantised_run(tmp_path_factory):
    """A RUN with PRUNE=0.5 and QUANT=4 on tiny band data (width 4, 1 epoch), in a sandbox."""
    from conftest import prepared_tiny_run
    return prepared_tiny_run(tmp_path_factory.mktemp("quant"), "q", "PRUNE=0.5", "QUANT=4")


@pytest.mark.slow  # ANN training and its pruning fine-tune (trained once for the module: about 6 s)
def test_a_pruned_then_quantised_run_keeps_its_zeros_and_its_grid_and_is_cached_under_its_own_name(quantised_run):
    ws = quantised_run
    assert "_p0.5_q4_" in ws.model.path.name and ws.record["quant"] == 4 and ws.record["prune"] == 0.5
    pruned = ann.load(ws.model.info["quantised_from"]["path"])
    model = ann.load(ws.model.path)
    assert "_p0.5_" in ws.model.info["quantised_from"]["path"] and "_q" not in ws.model.info["quantised_from"]["path"]
    for before, after in zip(pruned.layers, model.layers):
        if getattr(after, "kernel", None) is None:
            continue
        w, w_q = before.get_weights()[0], after.get_weights()[0]
        q, scale = quantisation.integer_weights(w_q, 4)
        assert (w == 0).any() and np.all(w_q[w == 0] == 0)   # every pruned zero stays zero
        assert np.all(np.abs(q) <= 7) and np.max(np.abs(q)) == 7
        assert np.all(np.abs(w_q - w) <= scale / 2 * (1 + 2 ** -20))         # within half a step
        for b, b_after in zip(before.get_weights()[1:], after.get_weights()[1:]):   # biases untouched
            np.testing.assert_array_equal(b, b_after)
        assert ws.model.info["weight_scales"][after.name] == [float(s) for s in scale]
    assert ann._verified(ws.model.path) is not None


@pytest.mark.slow  # uses the module's trained RUN
def test_the_nir_export_holds_q_times_scale_and_each_layers_scale_and_reads_back_the_same(quantised_run, tmp_path):
    model = ann.load(quantised_run.model.path)
    settings = engine.SnnSettings(timesteps=4, coding="analog", batch_size=8)
    net = engine.SpikingNetwork(model, None, settings)
    path = tmp_path / "q.nir"
    side = nirgraph.write(path, net.describe(), weight_bits=4)
    graph = nirgraph._read_graph(path)
    for layer in model.layers:
        if getattr(layer, "kernel", None) is None:
            continue
        node = graph.nodes[layer.name]
        _, scale = quantisation.integer_weights(layer.get_weights()[0], 4)
        assert int(node.metadata["weight_bits"]) == 4
        np.testing.assert_array_equal(node.metadata["weight_scale"], scale)
        assert side["weight_quantisation"]["scales"][layer.name] == [float(s) for s in scale]
        q = node.weight / scale.reshape((-1,) + (1,) * (node.weight.ndim - 1))   # NIR: output channels first
        np.testing.assert_array_equal(q, np.rint(q))
    back, _, _ = nirgraph.read(path)
    for layer in model.layers:
        if getattr(layer, "kernel", None) is not None:
            np.testing.assert_array_equal(back.get_layer(layer.name).get_weights()[0], layer.get_weights()[0])
    with pytest.raises(ValueError, match="not quantised to 3 bits"):
        nirgraph.write(tmp_path / "wrong.nir", net.describe(), weight_bits=3)


def test_a_quantised_run_refuses_stdb_in_one_line():
    ws = type("W", (), {"record": {"quant": 8}, "run": "q8"})()
    with pytest.raises(UserError, match=r"STDB trains float weights; RUN=q8 is quantised \(QUANT=8\)"):
        workspace.refuse_weight_training(ws, "STDB")
    workspace.refuse_weight_training(type("W", (), {"record": {}, "run": "old"})(), "STDB")   # recorded before QUANT


def test_int8_energy_and_memory_are_counted_by_hand_on_a_tiny_net():
    # conv 2x2 on 3x3x1 -> 1 filter (4 neurons, 4 weights + 1 bias), dense 4 -> 3 (12 weights + 3 biases)
    conv = network.Conv2d(name="conv", input_shape=(3, 3, 1), output_shape=(2, 2, 1), kernel_size=(2, 2),
                          neuron=network.IF(1.0), use_bias=True)
    dense = network.Affine(name="dense", input_shape=(4,), output_shape=(3,), use_bias=True, readout=True)
    layers = [conv, dense]
    inputs = np.zeros((3, 3, 1))
    inputs[1, 1] = 2                                          # reaches all 4 conv outputs twice: 8 ACs
    counts = energy.count_operations(layers, {"conv": np.ones((2, 2, 1))}, inputs, 1, "linear")   # 4 x 3 dense ACs
    assert [(c.snn_acs, c.ann_macs) for c in counts] == [(8, 16), (12, 12)]
    cost = energy.costs(weight_bits=8)
    assert (cost.preset, cost.e_mac_pj, cost.e_ac_pj) == ("int8-acc32", 0.3, 0.1)   # 0.2 + 0.1; 0.1
    assert energy.costs(weight_bits=0).preset == "45nm-fp32" and energy.costs("fp16", weight_bits=8).preset == "fp16"
    layers_energy, total = energy.energy_table(counts, cost)
    assert total["ann_energy_j"] == pytest.approx(28 * 0.3e-12) and total["snn_energy_j"] == pytest.approx(20 * 0.1e-12)
    record = energy.memory_record(layers, counts, cost, 5, 2.0, "linear", "poisson", weight_bits=4)
    assert (record["total"]["weight_bits"], record["total"]["bits"], record["total"]["activation_bits"]) == (4, 32, 8)
    # weights: 16 kernel entries at 4 bits (8 B) + 4 biases at 32 bits (16 B); SNN state 7 membranes x 4 B,
    # ANN state 7 activations x 1 B
    snn, ann_fp = record["footprint"]["snn"]["total"], record["footprint"]["ann"]["total"]
    assert (snn["weight_bytes"], snn["state_bytes"], ann_fp["weight_bytes"], ann_fp["state_bytes"]) == (24, 28, 24, 7)
    # every memory < 8 KB: 10 pJ per 64 bits. Each synaptic event reads a 4-bit weight and a 32-bit membrane
    reads = [{side: {(a["what"], a["bits"]): a["count"] for a in row["accesses"][side]} for side in ("snn", "ann")}
             for row in record["layers"]]
    assert [(r["snn"][("weight read", 4)], r["snn"][("membrane read", 32)]) for r in reads] == [(8, 8), (12, 12)]
    assert [(r["ann"][("input read", 8)], r["ann"][("bias read", 32)]) for r in reads] == [(16, 4), (12, 3)]
    assert "with memory (4-bit weights, 32-bit membranes, 8-bit activations" in energy.memory_lines(record)[3]
    ann_memory = sum(row["ann_memory_j"] for row in record["layers"])
    # ANN: 28 weight reads x 4 bits + 28 input reads x 8 + 7 activation writes x 8 + 7 bias reads x 32,
    # at 10 pJ per 64 bits
    assert ann_memory == pytest.approx((28 * 4 + 28 * 8 + 7 * 8 + 7 * 32) * 10 / 64 * 1e-12)
