"""Pruning (PRUNE, issue 24 item 1): the pipeline's pruned model reaches the target sparsity in every
layer and is cached under its own name; its zeros stay zero through conversion, STDB and NIR export;
the energy model counts only non-zero synapses (a hand count on a tiny net)."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, conversion, engine, nirgraph, settings as settings_module, workspace
from pipeline.training import ann, pruning, stdb

TARGET = 0.75


def zeros_of(model):
    """``{layer name: kernel == 0}`` of every layer with a kernel."""
    return {layer.name: layer.get_weights()[0] == 0 for layer in model.layers
            if getattr(layer, "kernel", None) is not None}


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    """A RUN with PRUNE=0.75 on tiny band data (width 4, 1 epoch, then the pruning fine-tune), in a sandbox."""
    from conftest import prepared_tiny_run
    return prepared_tiny_run(tmp_path_factory.mktemp("prune"), "p", f"PRUNE={TARGET}")


@pytest.mark.slow  # ANN training and its pruning fine-tune (the module's RUN, trained once: 6 s)
def test_pruning_reaches_the_target_sparsity_in_every_layer_and_is_cached_under_its_own_name(pruned_run):
    ws = pruned_run
    assert f"_p{TARGET:g}_" in ws.model.path.name and ws.record["prune"] == TARGET
    model = ann.load(ws.model.path)
    sparsity = pruning.kernel_sparsity(model)
    assert set(sparsity) == {"conv1", "conv2", "conv3", "dense1", "dense2"}
    for name, zeros in zeros_of(model).items():   # tfmot zeroes round(target x size) weights, ties aside
        assert abs(float(np.mean(zeros)) - TARGET) <= 1.0 / zeros.size + 1e-9, name
    assert ws.model.info["kernel_sparsity"] == pytest.approx(sparsity)
    assert ws.model.info["started_from"]["path"].endswith(".h5") and "_p" not in ws.model.info["started_from"]["path"]
    assert ann._verified(ws.model.path) is not None   # a verified cache like every trained model


@pytest.mark.slow  # STDB training
def test_pruned_weights_stay_zero_through_conversion_stdb_and_nir_export(pruned_run, tmp_path, monkeypatch):
    model = ann.load(pruned_run.model.path)
    zeros, before = zeros_of(model), {layer.name: layer.get_weights()[0] for layer in model.layers if layer.weights}
    settings = engine.SnnSettings(timesteps=4, coding="analog", batch_size=64)
    x, y = pruned_run.dataset.x_train[:64], pruned_run.dataset.y_train[:64]
    net = conversion.from_model(model, settings, engine.calibrate_thresholds(conversion.from_model(model, settings), x))
    described = {g.name: g.layer.get_weights()[0] == 0 for g in net.describe().compute_nodes
                 if getattr(g, "layer", None) is not None}
    assert all(np.array_equal(described[name], z) for name, z in zeros.items())
    monkeypatch.setattr(stdb, "_restore", lambda network, state: None)   # keep the trained epoch, better or not
    stdb.train(net, x, y, x[:32], y[:32], stdb.StdbSettings(epochs=1, learning_rate=1e-2), progress=False)
    moved = False
    for stage in net.graph.weighted:
        kernel = stage.layer.kernel.numpy()
        assert np.all(kernel[zeros[stage.name]] == 0), stage.name
        moved |= not np.array_equal(kernel, before[stage.name])
    assert moved   # STDB did train: the zeros stayed because they were masked, not because nothing moved
    nirgraph.write(tmp_path / "pruned.nir", net.describe())
    back, _, _ = nirgraph.read(tmp_path / "pruned.nir")
    for stage in net.graph.weighted:
        exported = back.get_layer(stage.name).get_weights()[0]
        np.testing.assert_array_equal(exported == 0, stage.layer.kernel.numpy() == 0)


def test_a_prune_target_outside_0_1_is_one_clear_error():
    with pytest.raises(UserError, match=r"PRUNE=1\.0 must lie in \[0, 1\)"):
        settings_module.parse(["convert", "PRUNE=1"])
    with pytest.raises(UserError, match="PRUNE"):
        ann.TrainSettings(prune=-0.1)
    assert ann.model_name(type("D", (), {"sha256": "0" * 64}), ann.TrainSettings(prune=0.0)) == \
        ann.model_name(type("D", (), {"sha256": "0" * 64}), ann.TrainSettings())


def test_a_users_model_is_not_pruned_one_line_says_so(sandbox):
    model = sandbox / "mine.h5"
    model.write_bytes(b"not read: the refusal comes first")
    chosen = settings_module.parse(["convert", f"MODEL={model}", "PRUNE=0.5", "RUN=u", f"OUT={sandbox}"])
    with pytest.raises(UserError, match=r"PRUNE=0\.5 prunes the ESCAPE-NET the pipeline trains; RUN=u runs on MODEL="):
        workspace.prepare(chosen, verbose=0)


def test_stdb_masks_only_kernels_that_hold_zeros():
    import tensorflow as tf
    from keras_models import escape_net
    tf.keras.utils.set_random_seed(0)
    model = escape_net.build(input_shape=(8, 8, 1), width=2)
    kernel = model.get_layer("conv2").kernel
    kernel.assign(tf.where(tf.abs(kernel) < 0.1, 0.0, kernel))
    net = engine.SpikingNetwork(model, None, engine.SnnSettings(timesteps=2, batch_size=8))
    masks = stdb.zero_masks(net, net.weight_variables())
    named = dict(zip([w.name for w in net.weight_variables()], masks))
    assert [name for name, m in named.items() if m is not None] == [kernel.name]
    np.testing.assert_array_equal(named[kernel.name].numpy(), kernel.numpy() != 0)


# --------------------------------------------------------------------- energy: only non-zero synapses count
class Kernel:
    """What the energy model reads of a Keras layer: ``get_weights()[0]``."""

    def __init__(self, kernel):
        self.kernel = np.asarray(kernel, np.float32)

    def get_weights(self):
        return [self.kernel]


def test_energy_counts_only_non_zero_synapses_by_hand_on_a_tiny_net():
    """Conv 2x2 'valid' on 3x3x1 -> 2x2x2 (channel 0: tap (0,0) only; channel 1: taps (0,0) and (1,1)),
    Flatten, Dense 8 -> 2 with 7 non-zero weights. An input at (i, j) reaches output (i - m) through tap m."""
    from pipeline import energy, network
    kernel = np.zeros((2, 2, 1, 2))
    kernel[0, 0, 0, 0], kernel[0, 0, 0, 1], kernel[1, 1, 0, 1] = 0.5, -0.3, 0.7
    dense = np.zeros((8, 2))
    dense[0], dense[2, 0], dense[3, 1], dense[5], dense[6, 0] = 0.1, 0.2, 0.3, 0.4, 0.5   # rows: 2 0 1 1 0 2 1 0
    conv = network.Conv2d(name="conv", input_shape=(3, 3, 1), output_shape=(2, 2, 2), kernel_size=(2, 2),
                          neuron=network.IF(1.0), layer=Kernel(kernel))
    affine = network.Affine(name="dense", input_shape=(8,), output_shape=(2,), readout=True, layer=Kernel(dense))
    by_hand = [[2, 2, 0],    # (0,0): ch0 via (0,0), ch1 via (0,0); (0,2): its outputs would lie at column 2
               [2, 3, 1],    # (1,1): ch0 and ch1 via (0,0) to (1,1), ch1 via (1,1) to (0,0)
               [0, 1, 1]]    # row 2 reaches only through tap (1,1) of channel 1
    np.testing.assert_array_equal(energy.fan_out(conv)[:, :, 0], by_hand)
    np.testing.assert_array_equal(energy.fan_out(affine), [2, 0, 1, 1, 0, 2, 1, 0])
    assert energy.ann_macs(conv) == 4 * 3 and energy.ann_macs(affine) == 7   # output positions x non-zero weights
    inputs = np.zeros((3, 3, 1))
    inputs[0, 0], inputs[1, 1], inputs[2, 2], inputs[0, 2] = 3, 2, 1, 5      # (0,2) reaches nothing
    spikes = np.zeros((2, 2, 2))
    spikes[0, 0, 0], spikes[0, 1, 1], spikes[1, 0, 1], spikes[1, 1, 1] = 4, 1, 6, 2   # flat rows 0, 3, 5, 7
    counts = energy.count_operations([conv, affine], {"conv": spikes}, inputs, num_samples=1, pooling="spiking")
    assert counts[0].snn_acs == 3 * 2 + 2 * 3 + 1 * 1 + 5 * 0 == 13
    assert counts[1].snn_acs == 4 * 2 + 1 * 1 + 6 * 2 + 2 * 0 == 21
    assert (energy.weight_count(conv), energy.weight_count(affine)) == (3, 7)   # only non-zero weights stored
    _, total = energy.footprint([conv, affine], bits=32)
    assert total["weight_bytes"] == (3 + 7) * 4


def reached(delta, kernel, pool=None, padding="SAME", stride=1):
    """Output (position, channel) pairs a unit input reaches through ``kernel``'s non-zero entries (after an
    average pool, when given), pushed through TensorFlow."""
    import tensorflow as tf
    h = tf.constant(delta[None], tf.float32)
    if pool:
        h = tf.nn.avg_pool2d(h, pool, pool, "VALID")
    if kernel.ndim == 2:   # dense after the pool's flatten
        return int(np.count_nonzero(tf.reshape(h, (1, -1)).numpy() @ (kernel != 0)))
    return int(np.count_nonzero(tf.nn.conv2d(h, (kernel != 0).astype(np.float32), stride, padding).numpy()))


@pytest.mark.parametrize("pool,stride,padding", [(None, 1, "same"), (None, 2, "same"), (None, 1, "valid"),
                                                 ((2, 2), 1, "same"), ("dense", 1, None)])
def test_pruned_fan_out_equals_the_outputs_a_unit_input_reaches(pool, stride, padding):
    from pipeline import energy, network
    rng = np.random.default_rng(1)
    shape, c_in, c_out = (6, 7), 2, 3
    pooled = (shape[0] // 2, shape[1] // 2, c_in)
    if pool == "dense":
        kernel = rng.normal(size=(int(np.prod(pooled)), 4)) * (rng.random((int(np.prod(pooled)), 4)) < 0.3)
        layer = network.Affine(name="d", input_shape=(kernel.shape[0],), output_shape=(4,), layer=Kernel(kernel))
    else:
        kernel = rng.normal(size=(3, 3, c_in, c_out)) * (rng.random((3, 3, c_in, c_out)) < 0.3)
        source = pooled if pool else (*shape, c_in)
        out = [network.padding_of(source[a], 3, stride, 1, padding)[0] for a in (0, 1)]
        layer = network.Conv2d(name="c", input_shape=source, output_shape=(*out, c_out), kernel_size=(3, 3),
                               stride=(stride,) * 2, padding=padding, layer=Kernel(kernel))
    if pool:
        node = network.AvgPool2d(name="p", input_shape=(*shape, c_in), output_shape=pooled, kernel_size=(2, 2),
                                 stride=(2, 2))
        fan = energy.merged_fan_out(node, layer)
    else:
        fan = energy.fan_out(layer)
    for i, j, c in np.ndindex(*shape, c_in):
        delta = np.zeros((*shape, c_in))
        delta[i, j, c] = 1
        brute = reached(delta, kernel, (2, 2) if pool else None, (padding or "same").upper(), stride)
        assert fan[i, j, c] == brute, (i, j, c)
