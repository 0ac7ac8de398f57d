"""Named patches that let SNN Toolbox 0.6.0 (PyPI, unmodified) run on today's NumPy/TF.

Each patch fixes one breakage seen running the toolbox as a new user would
(on this stack, or a silent wiring bug of its brian2/pyNN connection
builders), and is applied only to the toolbox module that breaks, never to
NumPy itself.
`apply()` is idempotent; `pipeline.toolbox` calls it before anything else of
the toolbox runs. Every patch has a test in tests/test_toolbox_compat.py that
fails without it.
"""
import json
import types

import numpy as np

from pipeline.network import same_padding


APPLIED = []


def _to_builtin(value):
    """json `default=` hook: NumPy scalars and arrays to plain Python."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _savez_compressed_ragged(file, *args, **kwds):
    """np.savez_compressed that stores ragged lists as object arrays, as NumPy < 1.24 did."""
    fixed = {}
    for key, value in kwds.items():
        if isinstance(value, (list, tuple)):
            try:
                value = np.asarray(value)
            except ValueError:
                ragged = np.empty(len(value), dtype=object)
                ragged[:] = [np.asarray(v, dtype=object) if isinstance(v, tuple) else v for v in value]
                value = ragged
        fixed[key] = value
    return np.savez_compressed(file, *args, **fixed)


def _array_ragged_ok(obj, *args, **kwargs):
    """np.array that builds an object array from ragged sequences, as NumPy < 1.24 did."""
    try:
        return np.array(obj, *args, **kwargs)
    except ValueError:
        if args or kwargs or not isinstance(obj, (list, tuple)):
            raise
        ragged = np.empty(len(obj), dtype=object)
        ragged[:] = list(obj)
        return ragged


def _numpy_view(**overrides):
    """A stand-in for the `np` a toolbox module sees: NumPy itself plus `overrides`."""
    view = types.ModuleType("numpy")
    view.__dict__.update(np.__dict__)
    view.__dict__.update(overrides)
    return view


def _json_view():
    view = types.ModuleType("json")
    view.__dict__.update(json.__dict__)

    def dump(obj, fp, **kwargs):
        kwargs.setdefault("default", _to_builtin)
        return json.dump(obj, fp, **kwargs)

    view.dump = dump
    return view


def patch_scale_factor_json():
    """normalize_parameters: `TypeError: Object of type float32 is not JSON serializable`.

    On NumPy 2 `np.percentile` of float32 activations returns float32 scale
    factors, which `json.dump` cannot write to `<log dir>/normalization/*.json`.
    """
    from snntoolbox.conversion import utils as conversion_utils
    conversion_utils.json = _json_view()


def patch_simulation_numpy():
    """simulation.utils: `np.bool` / `np.product` gone, ragged `log_vars` arrays.

    - `init_log_vars` uses `np.bool` (AttributeError on NumPy 1.24-1.26).
    - `get_ann_ops`-style code uses `np.product` (AttributeError on NumPy 2).
    - `run` saves `log_vars` with `np.savez_compressed(**log_vars)` whose
      spike-train/membrane entries are lists of (array, name) tuples:
      `ValueError: setting an array element with a sequence ... inhomogeneous`
      on NumPy >= 1.24.
    """
    from snntoolbox.simulation import utils as sim_utils
    sim_utils.np = _numpy_view(bool=np.bool_, product=np.prod,
                               savez_compressed=_savez_compressed_ragged)


def patch_convert_kernel():
    """simulation.utils.convert_kernel: `IndexError: only integers, slices ...`.

    It indexes a kernel with a *list* of slices, which NumPy >= 1.23 refuses;
    fixed upstream after 0.6.0 (tuple index) but never released. Used when a
    kernel is flipped for brian2/pyNN connection lists.
    """
    from snntoolbox.simulation import utils as sim_utils

    def convert_kernel(kernel):
        kernel = np.asarray(kernel)
        if not 3 <= kernel.ndim <= 5:
            raise ValueError("Invalid kernel shape:", kernel.shape)
        flip = [slice(None, None, -1)] * (kernel.ndim - 2) + [slice(None), slice(None)]
        return np.copy(kernel[tuple(flip)])

    sim_utils.convert_kernel = convert_kernel


def patch_brian2_spiketrains():
    """brian2 backend: `ValueError: setting an array element with a sequence ... inhomogeneous`.

    `get_spiketrains_output` (and `_input`, and per layer) build
    `np.array([spike times of neuron i for i ...])`; neurons spike different
    numbers of times, and NumPy >= 1.24 refuses ragged arrays.
    """
    try:
        from snntoolbox.simulation.target_simulators import brian2_target_sim
    except ImportError:   # brian2 (the `sims` extra) not installed: nothing to patch
        return
    brian2_target_sim.np = _numpy_view(array=_array_ragged_ok)


def _connection_array(sources, targets, weights, delay):
    """(n, 4) rows of (source, target, weight, delay), what the toolbox's list of tuples holds.

    float32 halves the memory of the width-64 conv2's 87 M rows and is exact
    here: Keras weights are float32 and neuron indices stay below 2**24.
    """
    dtype = np.float32 if max(sources.max(initial=0), targets.max(initial=0)) < 2 ** 24 else np.float64
    rows = np.empty((len(sources), 4), dtype)
    rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = sources, targets, weights, delay
    return rows


def _build_convolution(layer, delay, transpose_kernel=False):
    """Conv2D connections, channels-first neuron indices, exactly as Keras computes the layer."""
    from snntoolbox.simulation.utils import get_weights
    weights, biases = get_weights(layer)
    if layer.data_format != "channels_last":
        raise NotImplementedError("only channels_last Conv2D layers are patched")
    if tuple(layer.dilation_rate) != (1, 1) or layer.padding not in ("same", "valid"):
        raise NotImplementedError(f"Conv2D dilation {layer.dilation_rate} / padding {layer.padding}")
    # transpose_kernel=True (keras_backend = tensorflow): the kernel is already a
    # cross-correlation kernel; otherwise it is a (Theano) convolution kernel.
    kernel = weights if transpose_kernel else weights[::-1, ::-1]
    ny, nx, _ = layer.input_shape[1:]
    my, mx, n_out = layer.output_shape[1:]
    ky, kx = layer.kernel_size
    sy, sx = layer.strides
    pad_y = same_padding(ny, ky, sy)[1] if layer.padding == "same" else 0   # TF: the odd pixel goes after
    pad_x = same_padding(nx, kx, sx)[1] if layer.padding == "same" else 0
    fin, fout = np.meshgrid(np.arange(kernel.shape[2], dtype=np.int32), np.arange(n_out, dtype=np.int32),
                            indexing="ij")
    sources, targets, values = [], [], []
    for a in range(ky):
        for b in range(kx):
            oy, ox = np.meshgrid(np.arange(my, dtype=np.int32), np.arange(mx, dtype=np.int32), indexing="ij")
            iy, ix = oy * sy + a - pad_y, ox * sx + b - pad_x
            inside = (0 <= iy) & (iy < ny) & (0 <= ix) & (ix < nx)
            pixel_in = (iy * nx + ix)[inside]
            pixel_out = (oy * mx + ox)[inside]
            sources.append((fin.ravel()[:, None] * ny * nx + pixel_in).ravel())
            targets.append((fout.ravel()[:, None] * my * mx + pixel_out).ravel())
            values.append(np.repeat(kernel[a, b].ravel(), len(pixel_in)))
    i_offset = np.repeat(biases, my * mx).astype("float64")
    return _connection_array(np.concatenate(sources), np.concatenate(targets),
                             np.concatenate(values), delay), i_offset


def _build_pooling(layer, delay):
    """Average-pooling connections, channels-first neuron indices, for any feature-map size."""
    import warnings
    if layer.__class__.__name__ == "MaxPooling2D":
        warnings.warn("Layer type 'MaxPooling' not supported yet. Falling back on 'AveragePooling'.",
                      RuntimeWarning)
    if layer.data_format != "channels_last" or layer.padding != "valid":
        raise NotImplementedError(f"pooling with {layer.data_format} / padding {layer.padding}")
    ny, nx, channels = layer.input_shape[1:]
    my, mx, _ = layer.output_shape[1:]
    dy, dx = layer.pool_size
    sy, sx = layer.strides
    oy, ox, c, a, b = np.meshgrid(np.arange(my), np.arange(mx), np.arange(channels), np.arange(dy),
                                  np.arange(dx), indexing="ij")
    sources = c * ny * nx + (oy * sy + a) * nx + ox * sx + b
    targets = c * my * mx + oy * mx + ox
    return _connection_array(sources.ravel(), targets.ravel(),
                             np.full(sources.size, 1 / (dx * dy)), delay)


def patch_even_kernel_convolution():
    """simulation.utils.build_convolution: even kernels with padding 'same' wired wrong (silently).

    It takes `(k - 1) // 2` taps either side of the centre, so an even kernel
    loses one row and one column (an 8x8 kernel keeps 49 of 64 weights, a 2x2
    keeps 1 of 4), and the taps it keeps sit one pixel off TF's 'same'
    padding, which pads the odd pixel after the input, not before (strided
    'same' layers on a side not divisible by the stride are mis-sized too:
    `nx // sx` columns where TF has ceil). brian2 and
    pyNN build their connection lists with it; INI runs the Keras layer and is
    right. ESCAPE-NET's 8x8, 4x4, 2x2 kernels made brian2's rates uncorrelated
    with INI's from conv2 on. The replacement also builds the list with NumPy
    instead of one Python tuple per synapse.
    """
    from snntoolbox.simulation import utils as sim_utils
    sim_utils.build_convolution = _build_convolution
    try:
        from snntoolbox.simulation.target_simulators import brian2_target_sim
    except ImportError:   # brian2 absent; pyNN imports it from sim_utils at call time
        return
    brian2_target_sim.build_convolution = _build_convolution


def patch_pooling_odd_sizes():
    """simulation.utils.build_pooling: channel offset `fout * nx * ny / (dx * dy)` is fractional.

    When a feature map's side is not a multiple of the pool size (a 14x25
    map pooled 2x2 is 7x12, not 87.5 neurons per channel) pooled neurons
    land in the wrong channel or past the layer's end.
    """
    from snntoolbox.simulation import utils as sim_utils
    sim_utils.build_pooling = _build_pooling
    try:
        from snntoolbox.simulation.target_simulators import brian2_target_sim
    except ImportError:
        return
    brian2_target_sim.build_pooling = _build_pooling


def patch_brian2_multichannel_input():
    """brian2 SNN.simulate: an input of more than one channel reaches the wrong input neurons (silently).

    It sets the input neurons to `x.flatten()`, in channels-last order ((y * nx + x) * C + c),
    while the connection lists (`build_convolution`, patched or not) index every layer's neurons,
    the input's included, channels-first (c * ny * nx + y * nx + x). With one channel the two
    orders coincide; with ON/OFF input (two channels) conv1 read the wrong pixels and brian2's
    rates were uncorrelated with INI's from conv1 on. The replacement hands the original the
    sample with its channel axis moved first.
    """
    try:
        from snntoolbox.simulation.target_simulators import brian2_target_sim
    except ImportError:   # brian2 (the `sims` extra) not installed: nothing to patch
        return
    original = brian2_target_sim.SNN.simulate

    def simulate(self, **kwargs):
        x = kwargs["x_b_l"]
        if self.data_format == "channels_last" and np.ndim(x) == 4:
            kwargs["x_b_l"] = np.moveaxis(x, -1, 1)
        return original(self, **kwargs)

    brian2_target_sim.SNN.simulate = simulate


PATCHES = (patch_scale_factor_json, patch_simulation_numpy, patch_convert_kernel,
           patch_brian2_spiketrains, patch_even_kernel_convolution, patch_pooling_odd_sizes,
           patch_brian2_multichannel_input)


def apply():
    """Apply every patch once (later calls do nothing)."""
    for patch in PATCHES:
        if patch.__name__ not in APPLIED:
            patch()
            APPLIED.append(patch.__name__)
