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
    from conftest import tiny_arrays
    from pipeline import results
    from pipeline.toolbox import configs
    root = tmp_path_factory.mktemp("prune")
    npz = root / "tiny.npz"
    x_train, y_train, x_test, y_test = tiny_arrays()
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    saved = results.RESULTS, ann.TRAINED, workspace.DATA_CACHE, configs.GENERATED
    results.RESULTS, ann.TRAINED = root / "results", root / "trained"
    workspace.DATA_CACHE, configs.GENERATED = root / "data", root / "generated"
    try:
        chosen = settings_module.parse(["convert", f"DATA={npz}", "WIDTH=4", "EPOCHS=1", "RUN=p", f"PRUNE={TARGET}"])
        yield workspace.prepare(chosen, verbose=0)
    finally:
        results.RESULTS, ann.TRAINED, workspace.DATA_CACHE, configs.GENERATED = saved


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
