"""Each toolbox_compat patch: the toolbox call that breaks, run unpatched (fails) and patched (works)."""
import importlib
import json

import numpy as np
import pytest

from pipeline.toolbox import compat


@pytest.fixture
def fresh_toolbox():
    """Reload the patched toolbox modules so each test starts from the unpatched PyPI code."""
    from snntoolbox.conversion import utils as conversion_utils
    from snntoolbox.simulation import utils as sim_utils

    def reload():
        compat.APPLIED.clear()
        return importlib.reload(conversion_utils), importlib.reload(sim_utils)

    yield reload
    reload()


def test_convert_kernel_flips_spatial_axes(fresh_toolbox):
    _, sim_utils = fresh_toolbox()
    kernel = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    with pytest.raises((IndexError, TypeError)):
        sim_utils.convert_kernel(kernel)
    compat.patch_convert_kernel()
    flipped = sim_utils.convert_kernel(kernel)
    np.testing.assert_array_equal(flipped, kernel[::-1, ::-1, :, :])


def test_bool_alias_in_init_log_vars(fresh_toolbox):
    _, sim_utils = fresh_toolbox()
    if hasattr(np, "bool"):
        pytest.skip("np.bool exists on this NumPy (only 1.24-1.26 lack it)")
    with pytest.raises(AttributeError):
        sim_utils.np.bool
    compat.patch_simulation_numpy()
    assert sim_utils.np.bool is np.bool_
    assert sim_utils.np.prod is np.prod      # everything else is NumPy itself


def test_the_product_alias_gives_the_toolbox_np_product_where_numpy_lacks_it(fresh_toolbox, monkeypatch):
    # NumPy 2 removed np.product (setup.cfg allows numpy>=1.26.4; constraints.txt pins 1.26.4, which still
    # has it): take it away, as NumPy 2 does, and the toolbox's set_connectivity call breaks until patched.
    monkeypatch.delattr(np, "product")
    _, sim_utils = fresh_toolbox()
    with pytest.raises(AttributeError):
        sim_utils.np.product((8, 12, 2))
    compat.patch_simulation_numpy()
    assert sim_utils.np.product((8, 12, 2)) == 192


def test_ragged_log_vars_are_saved(fresh_toolbox, tmp_path):
    """`run` saves spike-train logs: a list of (array, layer name) tuples of different shapes."""
    _, sim_utils = fresh_toolbox()
    log_vars = {"spiketrains_n_b_l_t": [(np.zeros((2, 4, 3)), "conv"), (np.zeros((2, 5, 3)), "dense")],
                "top1err_b_t": np.zeros((2, 3), bool)}
    with pytest.raises(ValueError):
        sim_utils.np.savez_compressed(tmp_path / "a", **log_vars)
    compat.patch_simulation_numpy()
    sim_utils.np.savez_compressed(tmp_path / "b", **log_vars)
    with np.load(tmp_path / "b.npz", allow_pickle=True) as saved:
        trains = saved["spiketrains_n_b_l_t"]
        assert len(trains) == 2 and trains[1][1] == "dense" and trains[1][0].shape == (2, 5, 3)


def test_float32_scale_factors_written_as_json(fresh_toolbox, tmp_path):
    """On NumPy 2 percentiles of float32 activations are float32: normalize_parameters' json.dump fails."""
    conversion_utils, _ = fresh_toolbox()
    scale_facs = {"input": 1, "conv1": np.float32(2.5)}
    with pytest.raises(TypeError):
        with open(tmp_path / "a.json", "w") as f:
            conversion_utils.json.dump(scale_facs, f)
    compat.patch_scale_factor_json()
    with open(tmp_path / "b.json", "w") as f:
        conversion_utils.json.dump(scale_facs, f)
    assert json.loads((tmp_path / "b.json").read_text()) == {"input": 1, "conv1": 2.5}
    assert conversion_utils.json.load is json.load


def test_apply_is_idempotent(fresh_toolbox):
    fresh_toolbox()
    compat.apply()
    compat.apply()
    assert compat.APPLIED == [p.__name__ for p in compat.PATCHES]


def _keras_layer(layer, input_shape, seed=0):
    """Build `layer` on `input_shape` (H, W, C): random weights, zero biases (as the parser leaves them)."""
    import tensorflow as tf
    inputs = tf.keras.Input(input_shape)
    tf.keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()[:1]]
                      + [np.zeros_like(w) for w in layer.get_weights()[1:]])
    return layer


def _through_connections(connections, layer, x):
    """Output of `layer` on `x` (H, W, C) computed from the toolbox's (source, target, weight, delay) rows."""
    rows = np.asarray(connections, dtype=float)
    out_shape = layer.output_shape[1:]
    y = np.zeros(int(np.prod(out_shape)))
    np.add.at(y, rows[:, 1].astype(int), np.moveaxis(x, -1, 0).ravel()[rows[:, 0].astype(int)] * rows[:, 2])
    return np.moveaxis(y.reshape(out_shape[-1], *out_shape[:-1]), 0, -1)   # channels-first neurons -> HWC


def _sorted_rows(connections):
    rows = np.asarray(connections, dtype=float)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def _keras_output(layer, x):
    return layer(x[None].astype("float32")).numpy()[0]


CONVOLUTIONS = [  # (kernel, strides, padding, input (H, W, C), filters)
    (2, 1, "same", (6, 7, 2), 3), (4, 1, "same", (6, 7, 1), 2), (8, 1, "same", (10, 12, 1), 2),
    (3, 1, "same", (6, 7, 2), 3), (3, 1, "valid", (6, 7, 2), 3), (4, 2, "same", (7, 9, 2), 2),
    (3, 2, "same", (7, 9, 2), 2),
]


@pytest.mark.parametrize("kernel,strides,padding,shape,filters", CONVOLUTIONS)
def test_convolution_connections_compute_the_keras_layer(fresh_toolbox, kernel, strides, padding, shape,
                                                         filters):
    """brian2/pyNN wire Conv2D from build_convolution; ESCAPE-NET's kernels are 8x8, 4x4, 2x2 'same'."""
    import tensorflow as tf
    _, sim_utils = fresh_toolbox()
    compat.patch_convert_kernel()
    layer = _keras_layer(tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding), shape)
    x = np.random.default_rng(1).random(shape)
    expected = _keras_output(layer, x)
    original, _ = sim_utils.build_convolution(layer, 0, transpose_kernel=True)
    unpatched_right = np.allclose(_through_connections(original, layer, x), expected, atol=1e-5)
    assert unpatched_right == (kernel % 2 == 1 and strides == 1)   # even kernels: a tap lost, one pixel off
    compat.patch_even_kernel_convolution()
    connections, biases = sim_utils.build_convolution(layer, 0, transpose_kernel=True)
    np.testing.assert_allclose(_through_connections(connections, layer, x), expected, atol=1e-5)
    assert biases.shape == (np.prod(layer.output_shape[1:]),) and not biases.any()
    if unpatched_right:   # where the toolbox was right, the same synapses, just built faster
        np.testing.assert_allclose(_sorted_rows(connections), _sorted_rows(original), atol=1e-6)


def test_brian2_uses_the_patched_builders(fresh_toolbox):
    """brian2_target_sim imports build_convolution/build_pooling by name: patching sim_utils misses it."""
    pytest.importorskip("brian2")
    from snntoolbox.simulation.target_simulators import brian2_target_sim
    fresh_toolbox()
    compat.apply()
    assert brian2_target_sim.build_convolution is compat._build_convolution
    assert brian2_target_sim.build_pooling is compat._build_pooling


@pytest.mark.parametrize("shape", [(28, 50, 3), (14, 25, 3), (7, 5, 2)])
def test_pooling_connections_compute_the_keras_layer(fresh_toolbox, shape):
    """A side that is not a multiple of the pool size put pooled neurons in the wrong channel."""
    import tensorflow as tf
    _, sim_utils = fresh_toolbox()
    layer = _keras_layer(tf.keras.layers.AveragePooling2D(2), shape)
    x = np.random.default_rng(2).random(shape)
    expected = _keras_output(layer, x)
    divisible = shape[0] % 2 == 0 and shape[1] % 2 == 0
    original = np.asarray(sim_utils.build_pooling(layer, 0))
    n_out = np.prod(layer.output_shape[1:])
    unpatched_right = original[:, 1].max() < n_out and np.allclose(
        _through_connections(original, layer, x), expected, atol=1e-6)
    assert unpatched_right == divisible
    compat.patch_pooling_odd_sizes()
    connections = sim_utils.build_pooling(layer, 0)
    np.testing.assert_allclose(_through_connections(connections, layer, x), expected, atol=1e-6)


def test_brian2_feeds_multichannel_input_in_its_connections_order(fresh_toolbox):
    """ON/OFF input has two channels: brian2 fed them channels-last, its synapses read them channels-first."""
    brian2 = pytest.importorskip("brian2")
    import types
    from snntoolbox.simulation.target_simulators import brian2_target_sim

    def fed(x):
        snn = object.__new__(brian2_target_sim.SNN)
        snn.sim, snn.data_format, snn._poisson_input, snn._is_aedat_input = brian2, "channels_last", False, False
        snn._input_layer, snn.snn = types.SimpleNamespace(), types.SimpleNamespace(run=lambda *a, **k: None)
        snn._duration, snn._cell_params, snn.layers = 1, {}, []
        snn.get_recorded_vars = lambda layers: None
        snn.simulate(x_b_l=x)
        return np.asarray(snn._input_layer.bias * brian2.ms)

    x = np.arange(12.0).reshape(1, 2, 3, 2)            # (batch, H, W, C): two channels
    fresh_toolbox()
    importlib.reload(brian2_target_sim)
    try:
        channels_first = np.moveaxis(x, -1, 1).ravel()    # the order _build_convolution indexes neurons in
        assert not np.array_equal(fed(x), channels_first)
        compat.apply()
        np.testing.assert_array_equal(fed(x), channels_first)
        np.testing.assert_array_equal(fed(x[..., :1]), x[..., :1].ravel())   # one channel: as before
    finally:
        compat.APPLIED.clear()
        importlib.reload(brian2_target_sim)
