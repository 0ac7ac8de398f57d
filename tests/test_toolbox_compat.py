"""Each toolbox_compat patch: the toolbox call that breaks, run unpatched (fails) and patched (works)."""
import importlib
import json

import numpy as np
import pytest

from pipeline import toolbox_compat


@pytest.fixture
def fresh_toolbox():
    """Reload the patched toolbox modules so each test starts from the unpatched PyPI code."""
    from snntoolbox.conversion import utils as conversion_utils
    from snntoolbox.simulation import utils as sim_utils

    def reload():
        toolbox_compat.APPLIED.clear()
        return importlib.reload(conversion_utils), importlib.reload(sim_utils)

    yield reload
    reload()


def test_convert_kernel_flips_spatial_axes(fresh_toolbox):
    _, sim_utils = fresh_toolbox()
    kernel = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    with pytest.raises((IndexError, TypeError)):
        sim_utils.convert_kernel(kernel)
    toolbox_compat.patch_convert_kernel()
    flipped = sim_utils.convert_kernel(kernel)
    np.testing.assert_array_equal(flipped, kernel[::-1, ::-1, :, :])


def test_bool_alias_in_init_log_vars(fresh_toolbox):
    _, sim_utils = fresh_toolbox()
    if hasattr(np, "bool"):
        pytest.skip("np.bool exists on this NumPy (only 1.24-1.26 lack it)")
    with pytest.raises(AttributeError):
        sim_utils.np.bool
    toolbox_compat.patch_simulation_numpy()
    assert sim_utils.np.bool is np.bool_
    assert sim_utils.np.prod is np.prod      # everything else is NumPy itself


def test_product_alias(fresh_toolbox):
    _, sim_utils = fresh_toolbox()
    if hasattr(np, "product"):
        pytest.skip("np.product exists on this NumPy (removed in NumPy 2)")
    with pytest.raises(AttributeError):
        sim_utils.np.product
    toolbox_compat.patch_simulation_numpy()
    assert sim_utils.np.product([2, 3]) == 6


def test_ragged_log_vars_are_saved(fresh_toolbox, tmp_path):
    """`run` saves spike-train logs: a list of (array, layer name) tuples of different shapes."""
    _, sim_utils = fresh_toolbox()
    log_vars = {"spiketrains_n_b_l_t": [(np.zeros((2, 4, 3)), "conv"), (np.zeros((2, 5, 3)), "dense")],
                "top1err_b_t": np.zeros((2, 3), bool)}
    with pytest.raises(ValueError):
        sim_utils.np.savez_compressed(tmp_path / "a", **log_vars)
    toolbox_compat.patch_simulation_numpy()
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
    toolbox_compat.patch_scale_factor_json()
    with open(tmp_path / "b.json", "w") as f:
        conversion_utils.json.dump(scale_facs, f)
    assert json.loads((tmp_path / "b.json").read_text()) == {"input": 1, "conv1": 2.5}
    assert conversion_utils.json.load is json.load


def test_apply_is_idempotent(fresh_toolbox):
    fresh_toolbox()
    toolbox_compat.apply()
    toolbox_compat.apply()
    assert toolbox_compat.APPLIED == [p.__name__ for p in toolbox_compat.PATCHES]
