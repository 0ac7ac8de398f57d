"""Data loading: RAT .mat (v5 and v7.3), generic .npz, scaling, splits, toolbox export, bad input."""
import ast
import importlib.util
import os
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import pipeline
from pipeline import UserError, data

CHANNELS, SAMPLES = 56, 100


# ---------------------------------------------------------------- fixtures: files as the lab writes them


def pattern(n, offset=0):
    """x[i, c, t] = 100000*(i+offset) + 1000*c + t: every entry names its sample, channel and time."""
    i, c, t = np.meshgrid(np.arange(n) + offset, np.arange(CHANNELS), np.arange(SAMPLES), indexing="ij")
    return (100000 * i + 1000 * c + t).astype(np.float64)


def rat_variables(n_train=6, n_test=3):
    """MATLAB-oriented variables: 5600 x N signatures (one per column), N x 1 labels 1..3."""
    x_train, x_test = pattern(n_train), pattern(n_test, offset=n_train)
    return {
        "training_data_rat": x_train.reshape(n_train, -1).T,
        "training_data_labels": (np.arange(n_train) % 3 + 1.0).reshape(-1, 1),
        "test_data_rat": x_test.reshape(n_test, -1).T,
        "test_data_labels": (np.arange(n_test)[::-1] % 3 + 1.0).reshape(-1, 1),
    }


def write_mat_v5(path, variables):
    scipy.io.savemat(path, variables)
    return path


def write_mat_v73(path, variables, header=True):
    """An HDF5 file laid out as MATLAB's `save -v7.3`: transposed datasets, 512-byte userblock."""
    with h5py.File(path, "w", userblock_size=512 if header else 0) as f:
        for key, value in variables.items():
            ds = f.create_dataset(key, data=np.asarray(value).T)  # MATLAB is column-major
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    if header:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        block = text.ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
        with open(path, "r+b") as f:
            f.write(block.ljust(512, b"\x00"))
    return path


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def generic_arrays(shape=(4, 5), k=5, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x_train=rng.normal(3.0, 50.0, (n_train, *shape)),
        y_train=np.arange(n_train) % k,
        x_test=rng.normal(3.0, 50.0, (n_test, *shape)),
        y_test=np.arange(n_test) % k,
    )


def one_line_error(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message, (part, message)
    return message


# ---------------------------------------------------------------- RAT .mat


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_rat_mat_channel_major_order(tmp_path, writer):
    path = writer(tmp_path / "Rat4Training_Fold1.mat", rat_variables())
    x_train, y_train, x_test, y_test = data.load_rat_mat(path)

    assert x_train.shape == (6, CHANNELS, SAMPLES, 1) and x_test.shape == (3, CHANNELS, SAMPLES, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    # x[i, c, t, 0] is sample i, channel c, time t
    assert x_train[2, 7, 42, 0] == 2 * 100000 + 7 * 1000 + 42
    assert x_test[1, 55, 99, 0] == 7 * 100000 + 55 * 1000 + 99
    np.testing.assert_array_equal(x_train[..., 0], pattern(6))
    np.testing.assert_array_equal(x_test[..., 0], pattern(3, offset=6))
    # labels 1..3 -> 0..2
    np.testing.assert_array_equal(y_train, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(y_test, [2, 1, 0])


def test_v73_file_is_what_matlab_writes_and_equals_v5(tmp_path):
    variables = rat_variables()
    v5 = write_mat_v5(tmp_path / "v5.mat", variables)
    v73 = write_mat_v73(tmp_path / "v73.mat", variables)
    assert scipy.io.matlab.matfile_version(str(v73)) == (2, 0)  # scipy sees a v7.3 header
    with h5py.File(v73, "r") as f:  # h5py sees MATLAB's arrays transposed
        assert f["training_data_rat"].shape == (6, CHANNELS * SAMPLES)
        assert f["training_data_labels"].shape == (1, 6)
    plain_hdf5 = write_mat_v73(tmp_path / "plain.mat", variables, header=False)

    expected = data.load_rat_mat(v5)
    for other in (data.load_rat_mat(v73), data.load_rat_mat(plain_hdf5)):
        for a, b in zip(expected, other):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert data.load_dataset(str(v5)).sha256 == data.load_dataset(str(v73)).sha256


def test_load_dataset_from_mat(tmp_path):
    variables = rat_variables()
    variables["training_data_rat"] = variables["training_data_rat"] - 30000  # signed != unsigned
    path = write_mat_v5(tmp_path / "Rat4Training_Fold1.mat", variables)
    ds = data.load_dataset(str(path))
    assert ds.name == "Rat4Training_Fold1" and ds.source == str(path.resolve())
    assert ds.num_classes == 3 and ds.input_shape == (CHANNELS, SAMPLES, 1) and ds.scale == "signed"
    assert np.abs(ds.x_train).max() == 1.0
    assert not ds.x_train.flags.writeable  # the sha256 stays true
    assert data.load_dataset(str(path)).sha256 == ds.sha256
    unsigned = data.load_dataset(str(path), scale="unsigned")
    assert unsigned.x_train.min() == 0.0 and unsigned.sha256 != ds.sha256


# ---------------------------------------------------------------- generic .npz


def test_npz_integer_labels_3d_images_five_classes(tmp_path):
    arrays = generic_arrays(shape=(4, 5), k=5)
    ds = data.load_dataset(str(write_npz(tmp_path / "toy.npz", **arrays)))
    assert ds.name == "toy" and ds.num_classes == 5
    assert ds.x_train.shape == (20, 4, 5, 1) and ds.input_shape == (4, 5, 1)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float32


def test_npz_one_hot_labels_4d_images(tmp_path):
    arrays = generic_arrays(shape=(4, 5, 2), k=5)
    labels = {k: arrays[k] for k in ("y_train", "y_test")}
    for k in labels:
        arrays[k] = np.eye(5)[labels[k]]
    x_train, y_train, x_test, y_test = data.load_npz(write_npz(tmp_path / "toy.npz", **arrays))
    assert x_train.shape == (20, 4, 5, 2)
    np.testing.assert_array_equal(y_train, labels["y_train"])
    np.testing.assert_array_equal(y_test, labels["y_test"])


def test_npz_class_count_is_max_over_train_and_test(tmp_path):
    arrays = generic_arrays(k=3)
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][0] = 4  # class 4 only in the test set
    ds = data.load_dataset(str(write_npz(tmp_path / "toy.npz", **arrays)))
    assert ds.num_classes == 5


# ---------------------------------------------------------------- scaling


def test_signed_scaling_uses_training_peak():
    x_train = np.array([[-4.0, 2.0], [1.0, 0.0]], np.float32)
    x_test = np.array([[2.0, -8.0], [6.0, 1.0]], np.float32)
    s_train, s_test = data.scale_inputs(x_train, x_test, "signed")
    np.testing.assert_allclose(s_train, x_train / 4)
    np.testing.assert_allclose(s_test, [[0.5, -1.0], [1.0, 0.25]])  # train factor, then clipped
    assert s_train.dtype == s_test.dtype == np.float32


def test_unsigned_scaling_uses_training_min_max():
    x_train = np.array([2.0, 4.0, 6.0], np.float32)
    x_test = np.array([0.0, 3.0, 10.0], np.float32)
    s_train, s_test = data.scale_inputs(x_train, x_test, "unsigned")
    np.testing.assert_allclose(s_train, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(s_test, [0.0, 0.25, 1.0])


def test_scaling_refuses_constant_training_set():
    with pytest.raises(UserError, match="SCALE=signed"):
        data.scale_inputs(np.zeros(4), np.ones(4), "signed")


# ---------------------------------------------------------------- validation split and x_norm subset


def test_validation_split_is_class_balanced_and_deterministic():
    y = np.repeat([0, 1, 2], 40)
    train_idx, val_idx = data.validation_split(y, 0.25, seed=3)
    assert np.bincount(y[val_idx]).tolist() == [10, 10, 10]
    assert np.intersect1d(train_idx, val_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(y)))
    again = data.validation_split(y, 0.25, seed=3)
    np.testing.assert_array_equal(again[1], val_idx)
    assert not np.array_equal(data.validation_split(y, 0.25, seed=4)[1], val_idx)


def test_validation_split_keeps_class_proportions_when_unequal():
    y = np.array([0] * 60 + [1] * 20 + [2] * 20)
    _, val_idx = data.validation_split(y, 0.1, seed=0)
    assert np.bincount(y[val_idx]).tolist() == [6, 2, 2]


def test_balanced_subset_round_robin():
    y = np.array([0] * 50 + [1] * 30 + [2] * 3)
    idx = data.balanced_subset(y, 12, seed=0)
    assert np.bincount(y[idx]).tolist() == [5, 4, 3]
    np.testing.assert_array_equal(idx, data.balanced_subset(y, 12, seed=0))
    assert len(data.balanced_subset(y, 1000, seed=0)) == len(y)


# ---------------------------------------------------------------- SNN Toolbox files


def toolbox_load_npz():
    """SNN Toolbox 0.6.0's own `load_npz`, taken from its source without importing TensorFlow."""
    spec = importlib.util.find_spec("snntoolbox")
    if spec is None:
        pytest.skip("snntoolbox not installed")
    source_path = Path(spec.submodule_search_locations[0]) / "datasets" / "utils.py"
    tree = ast.parse(source_path.read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load_npz")
    namespace = {"np": np, "os": os}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(source_path), "exec"), namespace)
    return namespace["load_npz"]


def test_toolbox_files(tmp_path):
    arrays = generic_arrays(shape=(4, 5), k=5, n_train=40, n_test=10)
    ds = data.load_dataset(str(write_npz(tmp_path / "toy.npz", **arrays)))
    folder = tmp_path / "toolbox"
    data.write_toolbox_files(ds, folder, num_norm=15, seed=0)

    names = ["x_norm.npz", "x_test.npz", "y_test.npz"]
    assert sorted(os.listdir(folder)) == sorted(names + [n + ".sha256" for n in names])  # no temp files
    for name in ("x_test.npz", "y_test.npz", "x_norm.npz"):
        with np.load(folder / name) as f:
            assert f.files == ["arr_0"]
    load = toolbox_load_npz()
    x_test, y_test, x_norm = (load(str(folder), f"{n}.npz") for n in ("x_test", "y_test", "x_norm"))

    np.testing.assert_array_equal(x_test, ds.x_test)
    assert y_test.shape == (10, 5) and y_test.dtype == np.float32
    np.testing.assert_array_equal(y_test.sum(axis=1), 1)
    np.testing.assert_array_equal(y_test.argmax(axis=1), ds.y_test)
    assert x_norm.shape == (15, 4, 5, 1)
    rows = [np.flatnonzero((ds.x_train == row).all(axis=(1, 2, 3)))[0] for row in x_norm]
    assert np.bincount(ds.y_train[rows]).tolist() == [3, 3, 3, 3, 3]  # training rows, balanced

    data.write_toolbox_files(ds, folder, num_norm=15, seed=0)
    np.testing.assert_array_equal(load(str(folder), "x_norm.npz"), x_norm)


# ---------------------------------------------------------------- the synthetic default (generator mocked)


@pytest.fixture
def fake_synthetic(monkeypatch):
    module = types.ModuleType("pipeline.data.synthetic")
    module.VERSION = "7"
    module.calls = 0

    def default_split(seed=0):
        module.calls += 1
        rng = np.random.default_rng(seed)
        return (rng.uniform(-0.5, 0.5, (12, CHANNELS, SAMPLES, 1)).astype(np.float32), np.arange(12) % 3,
                rng.uniform(-0.5, 0.5, (6, CHANNELS, SAMPLES, 1)).astype(np.float32), np.arange(6) % 3)

    def generate(n, seed, stream=0):
        module.calls += 1
        rng = np.random.default_rng([seed, stream])
        return rng.uniform(-0.5, 0.5, (n, CHANNELS, SAMPLES, 1)).astype(np.float32), np.arange(n) % 3

    module.default_split = default_split
    module.generate = generate
    module.VALIDATION_STREAM = 3
    monkeypatch.setitem(sys.modules, "pipeline.data.synthetic", module)
    monkeypatch.setattr(pipeline.data, "synthetic", module, raising=False)
    return module


def test_synthetic_default_is_cached_by_version(tmp_path, fake_synthetic):
    first = data.load_dataset("synthetic", cache_dir=tmp_path)
    second = data.load_dataset("synthetic", cache_dir=tmp_path)
    assert fake_synthetic.calls == 1
    assert sorted(os.listdir(tmp_path)) == ["synthetic_v7.npz", "synthetic_v7.npz.lock", "synthetic_v7.npz.sha256"]
    assert first.sha256 == second.sha256 and first.name == first.source == "synthetic"
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.num_classes == 3 and np.abs(first.x_train).max() == 1.0

    fake_synthetic.VERSION = "8"
    data.load_dataset("synthetic", cache_dir=tmp_path)
    assert fake_synthetic.calls == 2


def test_damaged_synthetic_cache_is_regenerated(tmp_path, fake_synthetic):
    (tmp_path / "synthetic_v7.npz").write_bytes(b"truncated")
    ds = data.load_dataset("synthetic", cache_dir=tmp_path)
    assert fake_synthetic.calls == 1 and ds.x_train.shape == (12, CHANNELS, SAMPLES, 1)


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_cache_that_is_not_what_was_written_is_reported_in_one_line_and_rebuilt(tmp_path, fake_synthetic,
                                                                                  capsys, damage):
    first = data.load_dataset("synthetic", cache_dir=tmp_path)
    cache = tmp_path / "synthetic_v7.npz"
    blob = cache.read_bytes()
    if damage == "truncate":   # cut short, as by a full disk
        cache.write_bytes(blob[:len(blob) // 2])
    else:                      # still a valid .npz, other numbers: only the recorded sha256 tells
        x_train, y_train, x_test, y_test = fake_synthetic.default_split()
        np.savez(cache, x_train=x_train * 0, y_train=y_train, x_test=x_test, y_test=y_test)
    capsys.readouterr()
    calls = fake_synthetic.calls
    again = data.load_dataset("synthetic", cache_dir=tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{cache}: ") and out[0].endswith("; rebuilding it")
    assert fake_synthetic.calls == calls + 1 and again.sha256 == first.sha256
    assert cache.read_bytes() == blob


# ---------------------------------------------------------------- bad input: one line, file and key named


def rat_file(tmp_path, writer=write_mat_v5, **changes):
    variables = rat_variables()
    for key, value in changes.items():
        if value is None:
            del variables[key]
        else:
            variables[key] = value
    return writer(tmp_path / "Rat1Training_Fold2.mat", variables)


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_mat_missing_key(tmp_path, writer):
    path = rat_file(tmp_path, writer, test_data_rat=None)
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(path))
    one_line_error(excinfo, path, "missing key 'test_data_rat'", "training_data_rat", "test_data_labels")


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_mat_wrong_shape(tmp_path, writer):
    path = rat_file(tmp_path, writer, training_data_rat=np.zeros((6, 5600)))  # stored N x 5600
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(path))
    one_line_error(excinfo, path, "training_data_rat", "expected 5600 x N", "got 6 x 5600")


def test_mat_label_count_mismatch(tmp_path):
    path = rat_file(tmp_path, test_data_labels=np.ones((2, 1)))
    with pytest.raises(UserError) as excinfo:
        data.load_rat_mat(path)
    one_line_error(excinfo, path, "test_data_labels", "expected 3 x 1", "got 2 x 1")


@pytest.mark.parametrize("bad", [0, 4, 2.5])
def test_mat_labels_outside_one_to_three(tmp_path, bad):
    labels = np.array([[1.0], [2.0], [bad], [3.0], [1.0], [2.0]])
    path = rat_file(tmp_path, training_data_labels=labels)
    with pytest.raises(UserError) as excinfo:
        data.load_rat_mat(path)
    one_line_error(excinfo, path, "training_data_labels", f"label {bad:g} ", "outside 1..3")


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf")])
@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_mat_non_finite_values(tmp_path, writer, bad, word):
    x = rat_variables()["test_data_rat"].copy()
    x[100, 1] = bad
    path = rat_file(tmp_path, writer, test_data_rat=x)
    with pytest.raises(UserError) as excinfo:
        data.load_rat_mat(path)
    one_line_error(excinfo, path, "test_data_rat", word)


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_mat_empty_set(tmp_path, writer):
    path = rat_file(tmp_path, writer, test_data_rat=np.zeros((5600, 0)), test_data_labels=np.zeros((0, 1)))
    with pytest.raises(UserError) as excinfo:
        data.load_rat_mat(path)
    one_line_error(excinfo, path, "test_data_rat", "empty")


def test_mat_not_a_matlab_file(tmp_path):
    path = tmp_path / "Rat1Training_Fold1.mat"
    path.write_bytes(b"this is a text file, not MATLAB data " * 10)
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(path))
    one_line_error(excinfo, path, "not a readable MATLAB file")


@pytest.mark.parametrize("name", ["missing.mat", "missing.npz"])
def test_missing_file(tmp_path, name):
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(tmp_path / name))
    one_line_error(excinfo, tmp_path / name, "no such data file")


def test_unknown_source_kind(tmp_path):
    with pytest.raises(UserError) as excinfo:
        data.load_raw(str(tmp_path / "data.csv"))
    one_line_error(excinfo, "data.csv", "'synthetic'", ".mat or .npz")


def test_unknown_scale(tmp_path):
    path = write_npz(tmp_path / "toy.npz", **generic_arrays())
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(path), scale="zscore")
    one_line_error(excinfo, "SCALE", "'zscore'", "signed, unsigned")


@pytest.mark.parametrize("change, parts", [
    (dict(y_test=None), ["missing key 'y_test'", "x_test, x_train, y_train"]),
    (dict(x_train=np.zeros((20, 4))), ["x_train", "expected shape (N, H, W) or (N, H, W, C)", "(20, 4)"]),
    (dict(x_test=np.zeros((10, 4, 6))), ["x_test", "(4, 5, 1)", "(4, 6, 1)"]),
    (dict(x_train=np.zeros((0, 4, 5)), y_train=np.zeros(0, int)), ["x_train", "empty"]),
    (dict(y_train=np.arange(19) % 5), ["y_train", "expected 20 labels", "(19,)"]),
    (dict(y_test=np.arange(10) - 1), ["y_test", "label -1 is not a class index"]),
    (dict(y_test=np.full(10, 1.5)), ["y_test", "label 1.5 is not a class index"]),
    (dict(y_train=np.full((20, 5), 0.2)), ["y_train", "row 0 is not one-hot"]),
    (dict(y_train=np.zeros(20, int), y_test=np.zeros(10, int)), ["y_train", "at least 2 classes"]),
    (dict(x_test=np.full((10, 4, 5), np.nan)), ["x_test", "NaN"]),
    (dict(x_train=np.full((20, 4, 5), -np.inf)), ["x_train", "Inf"]),
    (dict(y_train=np.full(20, np.nan)), ["y_train", "NaN"]),
    (dict(x_train=np.full((20, 4, 5), "a")), ["x_train", "real numeric array"]),
])
def test_npz_bad_input(tmp_path, change, parts):
    arrays = generic_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError) as excinfo:
        data.load_dataset(str(path))
    one_line_error(excinfo, path, *parts)


def test_npz_not_a_zip(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_text("not numpy")
    with pytest.raises(UserError) as excinfo:
        data.load_npz(path)
    one_line_error(excinfo, path, "not a readable .npz file")


def test_more_validation_trials_are_appended_as_the_validation_split_and_cached(tmp_path, fake_synthetic):
    plain = data.load_dataset("synthetic", cache_dir=tmp_path)
    more = data.load_dataset("synthetic", cache_dir=tmp_path, validation_trials=6)
    again = data.load_dataset("synthetic", cache_dir=tmp_path, validation_trials=6)
    assert fake_synthetic.calls == 2 and more.sha256 == again.sha256 != plain.sha256   # the 6 trials: generated once
    assert len(more.y_train) == 18 and more.validation_size == 6 and more.name == "synthetic+6val"
    train_idx, val_idx = data.split_of(more, 0.1, seed=0)
    assert list(train_idx) == list(range(12)) and list(val_idx) == list(range(12, 18))
    x_val, _ = fake_synthetic.generate(6, 0, stream=3)
    scale = max(np.abs(fake_synthetic.default_split()[0]).max(), np.abs(x_val).max())   # signed: / the peak |x|
    np.testing.assert_allclose(more.x_train[12:], x_val / scale, rtol=1e-6)   # scaled with the training set
    assert list(data.split_of(plain, 0.5, seed=0)[1]) == list(data.validation_split(plain.y_train, 0.5, 0)[1])


def test_more_validation_trials_of_a_file_are_refused_in_one_line(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((6, 2, 2)), y_train=np.arange(6) % 3, x_test=np.zeros((3, 2, 2)),
             y_test=np.arange(3))
    with pytest.raises(UserError, match="VAL_TRIALS=30: only the synthetic data can generate more trials"):
        data.load_dataset(str(path), validation_trials=30)


def test_the_validation_stream_is_not_the_training_streams_trials():
    from pipeline.data import synthetic
    val, train = synthetic.generate(3, 0, stream=synthetic.VALIDATION_STREAM)[0], synthetic.generate(3, 0, stream=1)[0]
    assert not np.allclose(val, train)
