"""Named patches that let SNN Toolbox 0.6.0 (PyPI, unmodified) run on today's NumPy/TF.

Each patch fixes one breakage seen running the toolbox as a new user would, and
is applied only to the toolbox module that breaks, never to NumPy itself.
`apply()` is idempotent; `pipeline.toolbox` calls it before anything else of
the toolbox runs. Every patch has a test in tests/test_toolbox_compat.py that
fails without it.
"""
import json
import types

import numpy as np

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

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


PATCHES = (patch_scale_factor_json, patch_simulation_numpy, patch_convert_kernel,
           patch_brian2_spiketrains)


def apply():
    """Apply every patch once (later calls do nothing)."""
    for patch in PATCHES:
        if patch.__name__ not in APPLIED:
            patch()
            APPLIED.append(patch.__name__)
