"""Datasets: the lab's RAT `.mat` files, a generic `.npz`, or the embedded synthetic default.

Every source ends as the same `Dataset`: float32 images `(N, H, W, C)` scaled by the
training set alone, int64 labels `0..K-1`, and a sha256 that keys trained-model caches.
`write_toolbox_files` exports it in the layout SNN Toolbox 0.6.0 reads (`dataset_format = npz`).

Bad input (missing file or key, wrong shape, bad labels, NaN/Inf, empty sets, unknown
scale) raises `pipeline.UserError` with one line naming the file and key.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from pipeline import UserError, results

SCALES = ("signed", "unsigned")

# RAT files: each column of the 5600 x N matrices is one signature, 56 channels x 100 samples.
RAT_CHANNELS, RAT_SAMPLES = 56, 100
RAT_CLASSES = 3  # 1 dorsiflexion, 2 plantarflexion, 3 pricking
RAT_KEYS = ("training_data_rat", "training_data_labels", "test_data_rat", "test_data_labels")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Dataset:
    """A loaded, scaled dataset; its arrays are read-only so `sha256` stays true."""

    name: str
    source: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    scale: str
    sha256: str
    validation_size: int = 0   # > 0: the last that many training samples are the validation split (`split_of`)

    @property
    def input_shape(self) -> tuple:
        return tuple(int(d) for d in self.x_train.shape[1:])


# ---------------------------------------------------------------- dispatch


def load_raw(source: str):
    """Unscaled `(x_train, y_train, x_test, y_test)` from `synthetic`, a `.mat` or a `.npz`."""
    if source == "synthetic":
        from pipeline.data import synthetic

        x_train, y_train, x_test, y_test = synthetic.default_split(seed=0)
        return (np.asarray(x_train, np.float32), np.asarray(y_train, np.int64),
                np.asarray(x_test, np.float32), np.asarray(y_test, np.int64))
    loader = {".mat": load_rat_mat, ".npz": load_npz}.get(Path(source).suffix.lower())
    if loader is None:
        raise UserError(f"DATA must be 'synthetic' or a path to a .mat or .npz file, got {source!r}")
    return loader(source)


def load_dataset(source: str, scale: str = "signed", cache_dir: str | Path = "data",
                 validation_trials: int = 0) -> Dataset:
    """Load, validate and scale a dataset.

    The synthetic default is cached as an `.npz` in `cache_dir` (its generation is
    deterministic), keyed by the generator's version; real files are read every time so an
    edited file is never shadowed by a stale copy. ``validation_trials`` (synthetic data only, `VAL_TRIALS`):
    that many more trials from their own random stream, appended to the training set as its validation split
    (`split_of`), so a choice made on validation can be held to a 1-pp margin (docs/energy-memory.md).
    """
    _check_scale(scale)
    if validation_trials and source != "synthetic":
        raise UserError(f"VAL_TRIALS={validation_trials}: only the synthetic data can generate more trials; "
                        f"{source}'s validation split is drawn from its own training set")
    if source == "synthetic":
        name = "synthetic"
        x_train, y_train, x_test, y_test = _cached_synthetic(Path(cache_dir))
        if validation_trials:
            x_val, y_val = _cached_synthetic(Path(cache_dir), validation_trials)
            x_train, y_train = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
            name = f"synthetic+{validation_trials}val"
    else:
        path = Path(source).expanduser().resolve()
        name, source = path.stem, str(path)
        x_train, y_train, x_test, y_test = load_raw(source)
    if Path(source).suffix.lower() == ".mat":
        num_classes = RAT_CLASSES
    else:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    x_train, x_test = scale_inputs(x_train, x_test, scale)
    arrays = (x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    for a in arrays:
        a.setflags(write=False)
    return Dataset(name, source, *arrays, num_classes=num_classes, scale=scale,
                   sha256=_digest(arrays), validation_size=int(validation_trials))


def _cached_synthetic(cache_dir: Path, validation_trials: int = 0):
    """The synthetic default split, generated once per generator version; with ``validation_trials``, that
    many trials of the validation stream instead, ``(x, y)``."""
    from pipeline.data import synthetic

    version = getattr(synthetic, "VERSION", None)
    if version is None:  # no explicit version: any edit of the generator invalidates the cache
        version = hashlib.sha256(inspect.getsource(synthetic).encode()).hexdigest()[:12]
    if validation_trials:
        path = cache_dir / f"synthetic_v{version}_val{validation_trials}.npz"
        with results.locked(path):
            if path.is_file() and results.stamped_problem(path) is None:
                with np.load(path) as stored:
                    return stored["x"], stored["y"]
            x, y = synthetic.generate(validation_trials, 0, stream=synthetic.VALIDATION_STREAM)
            cache_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, lambda f: np.savez(f, x=x, y=y))
            results.write_stamp(path)
        return x, y
    path = cache_dir / f"synthetic_v{version}.npz"
    with results.locked(path):
        if path.is_file():
            problem = results.stamped_problem(path)
            if problem is None:
                try:
                    return load_npz(path)
                except UserError as exc:
                    problem = str(exc)
            results.report_rebuild(path, problem)
        split = load_raw("synthetic")
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: np.savez(f, **dict(zip(NPZ_KEYS, split))))
        results.write_stamp(path)
    return split


def _existing_file(source: str) -> Path:
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: no such data file")
    return path


# ---------------------------------------------------------------- RAT .mat


def load_rat_mat(path):
    """Read a RAT fold file (MATLAB v5 or v7.3) as float32 `(N, 56, 100, 1)` and labels 0..2.

    As in the lab's preprocessing, the 5600 x N matrix is transposed to N x 5600 and each
    row reshaped C-order to 56 x 100, so `x[i, c, t, 0]` is channel c at sample t.
    """
    path = _existing_file(str(path))
    variables = _read_mat(path)
    missing = [k for k in RAT_KEYS if k not in variables]
    if missing:
        found = ", ".join(sorted(variables)) or "none"
        raise UserError(f"{path}: missing key '{missing[0]}' (keys found: {found})")
    out = []
    for x_key, y_key in (RAT_KEYS[:2], RAT_KEYS[2:]):
        x = _rat_signatures(path, x_key, variables[x_key])
        out += [x, _rat_labels(path, y_key, variables[y_key], len(x))]
    return tuple(out)


def _read_mat(path: Path) -> dict:
    """All top-level variables, each in MATLAB's own orientation (rows x columns)."""
    try:
        if h5py.is_hdf5(path):
            return _read_mat73(path)
        try:
            variables = scipy.io.loadmat(path)
        except NotImplementedError:  # scipy's answer to an HDF5-based v7.3 file
            return _read_mat73(path)
    except UserError:
        raise
    except Exception as exc:  # any reader failure is a bad file, not a bug
        raise UserError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    return {k: v for k, v in variables.items() if not k.startswith("__")}


def _read_mat73(path: Path) -> dict:
    """v7.3 via h5py, which sees MATLAB's column-major arrays transposed: undo that."""
    variables = {}
    with h5py.File(path, "r") as f:
        for key, obj in f.items():
            if key.startswith("#"):  # MATLAB's internal '#refs#' / '#subsystem#' groups
                continue
            if not isinstance(obj, h5py.Dataset):
                variables[key] = np.empty(0, dtype=object)  # struct/cell: rejected by the dtype check
            elif obj.attrs.get("MATLAB_empty", 0):
                variables[key] = np.zeros((0, 0))  # MATLAB stores an empty array's dims as its data
            else:
                variables[key] = np.asarray(obj[()]).T
    return variables


def _rat_signatures(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    size = RAT_CHANNELS * RAT_SAMPLES
    _check_real(path, key, value)
    if value.size == 0:
        raise UserError(f"{path}: {key}: empty (0 signatures)")
    if value.ndim != 2 or value.shape[0] != size:
        raise UserError(f"{path}: {key}: expected {size} x N (one {RAT_CHANNELS}x{RAT_SAMPLES} "
                        f"signature per column), got {' x '.join(map(str, value.shape))}")
    x = np.ascontiguousarray(value.T, dtype=np.float32)
    _check_finite(path, key, x)
    return x.reshape(-1, RAT_CHANNELS, RAT_SAMPLES, 1)


def _rat_labels(path: Path, key: str, value: np.ndarray, n: int) -> np.ndarray:
    _check_real(path, key, value)
    _check_finite(path, key, value)
    if value.size != n or sum(d > 1 for d in value.shape) > 1:
        raise UserError(f"{path}: {key}: expected {n} x 1 labels (one per signature), "
                        f"got {' x '.join(map(str, value.shape))}")
    y = value.reshape(-1)
    bad = ~np.isin(y, np.arange(1, RAT_CLASSES + 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{path}: {key}: label {y[i]:g} at signature {i + 1} is outside 1..{RAT_CLASSES}")
    return y.astype(np.int64) - 1


# ---------------------------------------------------------------- generic .npz


def load_npz(path):
    """Read `x_train, y_train, x_test, y_test` from an `.npz`.

    Images `(N, H, W)` gain a channel axis, `(N, H, W, C)` are kept; inputs may have any real
    range (scaled later). Labels are class indices `0..K-1` or one-hot rows.
    """
    path = _existing_file(str(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                found = ", ".join(sorted(f.files)) or "none"
                raise UserError(f"{path}: missing key '{missing[0]}' (keys found: {found})")
            raw = {k: f[k] for k in NPZ_KEYS}
    except UserError:
        raise
    except Exception as exc:  # not a zip, object arrays, truncated member...
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    x_train = _npz_images(path, "x_train", raw["x_train"])
    x_test = _npz_images(path, "x_test", raw["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{path}: x_test: expected images of shape {x_train.shape[1:]} like x_train, "
                        f"got {x_test.shape[1:]}")
    y_train = _npz_labels(path, "y_train", raw["y_train"], len(x_train))
    y_test = _npz_labels(path, "y_test", raw["y_test"], len(x_test))
    if max(y_train.max(), y_test.max()) < 1:
        raise UserError(f"{path}: y_train: needs at least 2 classes, found only class 0")
    return x_train, y_train, x_test, y_test


def _npz_images(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    _check_real(path, key, value)
    if value.ndim not in (3, 4):
        raise UserError(f"{path}: {key}: expected shape (N, H, W) or (N, H, W, C), got {value.shape}")
    if len(value) == 0 or value.size == 0:
        raise UserError(f"{path}: {key}: empty (shape {value.shape})")
    x = np.asarray(value, dtype=np.float32)
    _check_finite(path, key, x)
    return x[..., np.newaxis] if x.ndim == 3 else x


def _npz_labels(path: Path, key: str, value: np.ndarray, n: int) -> np.ndarray:
    _check_real(path, key, value)
    _check_finite(path, key, value)
    if value.ndim == 2 and value.shape[1] > 1:  # one-hot rows
        if len(value) != n:
            raise UserError(f"{path}: {key}: expected {n} one-hot rows (one per image), got {len(value)}")
        is_one_hot = np.isin(value, (0, 1)).all(axis=1) & (value.sum(axis=1) == 1)
        if not is_one_hot.all():
            i = int(np.argmin(is_one_hot))
            raise UserError(f"{path}: {key}: row {i} is not one-hot: {value[i].tolist()}")
        return np.argmax(value, axis=1).astype(np.int64)
    if value.size != n or value.ndim > 2:
        raise UserError(f"{path}: {key}: expected {n} labels (one per image), got shape {value.shape}")
    y = value.reshape(-1)
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise UserError(f"{path}: {key}: label {y[int(np.argmax(bad))]:g} is not a class index 0..K-1")
    return y.astype(np.int64)


# ---------------------------------------------------------------- the 1-D view


def time_series_view(dataset: Dataset) -> Dataset:
    """The dataset's channels x time recordings `(N, C, L, 1)` (the RAT layout: `x[i, c, t, 0]`) seen as
    time series `(N, 1, L, C)`: a map of height 1 whose L positions are the time samples and whose C
    features are the channels, what a 1-D network (`ARCH=escape_net_1d`) convolves over time. The same
    values, scaled as they were; a new sha256 (the arrays differ), so caches keyed by it stay apart."""
    shape = dataset.input_shape
    if len(shape) != 3 or shape[-1] != 1:
        raise UserError(f"{dataset.source}: a 1-D network over time takes recordings of channels x time, "
                        f"(N, channels, time) or (N, channels, time, 1); got samples of shape {shape}")
    arrays = [np.ascontiguousarray(np.transpose(x, (0, 3, 2, 1))) for x in (dataset.x_train, dataset.x_test)]
    arrays = (arrays[0], dataset.y_train, arrays[1], dataset.y_test)
    for a in arrays:
        a.setflags(write=False)
    return Dataset(dataset.name, dataset.source, *arrays, num_classes=dataset.num_classes, scale=dataset.scale,
                   sha256=_digest(arrays), validation_size=dataset.validation_size)


# ---------------------------------------------------------------- checks


def _check_real(path: Path, key: str, value: np.ndarray) -> None:
    if not (np.issubdtype(value.dtype, np.number) and not np.issubdtype(value.dtype, np.complexfloating)):
        raise UserError(f"{path}: {key}: expected a real numeric array, got dtype {value.dtype}")


def _check_finite(path: Path, key: str, value: np.ndarray) -> None:
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        kind = "NaN" if np.isnan(value).any() else "Inf"
        raise UserError(f"{path}: {key}: contains {kind} values ({int((~np.isfinite(value)).sum())} entries)")


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UserError(f"SCALE must be one of {', '.join(SCALES)}, got {scale!r}")


# ---------------------------------------------------------------- scaling


def scale_inputs(x_train, x_test, mode):
    """Scale inputs by factors taken from the training set only.

    - `signed`: divide by the training set's peak |x|, so training inputs span at most [-1, 1]
      (the lab's convention; the spiking input rate is proportional to |x|).
    - `unsigned`: min-max to [0, 1] with the training set's min and max.

    The test set uses the same factors (no information from it leaks into scaling) and is
    then clipped to the same range, since the toolbox's input coding assumes it.
    """
    _check_scale(mode)
    x_train = np.asarray(x_train, dtype=np.float32)
    x_test = np.asarray(x_test, dtype=np.float32)
    if mode == "signed":
        offset, span, lo = 0.0, float(np.abs(x_train).max()), -1.0
    else:
        offset, lo = float(x_train.min()), 0.0
        span = float(x_train.max()) - offset
    if span == 0:
        raise UserError(f"SCALE={mode}: every training input has the same value, nothing to scale by")
    return tuple(np.clip((x.astype(np.float64) - offset) / span, lo, 1.0).astype(np.float32)
                 for x in (x_train, x_test))


# ---------------------------------------------------------------- splits and subsets


def split_of(dataset, fraction, seed):
    """(train_idx, val_idx) of ``dataset``'s training set: its generated validation block where it has one
    (`load_dataset`'s ``validation_trials``), else `validation_split`."""
    if dataset.validation_size:
        n = len(dataset.y_train)
        return np.arange(n - dataset.validation_size, dtype=np.int64), \
            np.arange(n - dataset.validation_size, n, dtype=np.int64)
    return validation_split(dataset.y_train, fraction, seed)


def validation_split(y, fraction, seed):
    """Class-balanced, seeded split of training indices into (train_idx, val_idx).

    Like the lab's preprocessing, each class gives the same fraction of its own samples to
    validation (equal counts per class when the classes are equal in size), so validation
    accuracy is not skewed by one class. Both index arrays are sorted.
    """
    if not 0 <= fraction < 1:
        raise UserError(f"validation fraction must be in [0, 1), got {fraction}")
    y = np.asarray(y).reshape(-1)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        val.append(members[: int(round(fraction * len(members)))])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx).astype(np.int64)
    return train_idx, val_idx


def balanced_subset(y, size, seed) -> np.ndarray:
    """Sorted indices of `size` samples (all if fewer) drawn round-robin over classes.

    Round-robin keeps every class represented even when `size` is small, so the toolbox's
    normalisation percentiles see each class's activations.
    """
    y = np.asarray(y).reshape(-1)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rounds = max(len(m) for m in per_class)
    order = [m[r] for r in range(rounds) for m in per_class if r < len(m)]
    return np.sort(np.asarray(order[:size], dtype=np.int64))


# ---------------------------------------------------------------- SNN Toolbox export


def write_toolbox_files(dataset: Dataset, folder, num_norm, seed=0, layout=None) -> None:
    """Write `x_test.npz`, `y_test.npz` (one-hot) and `x_norm.npz` for SNN Toolbox 0.6.0.

    `layout`, when given, maps every input array (x_test and x_norm alike) to the layout the
    simulated model reads (e.g. ON/OFF channels, `pipeline.toolbox.onoff.split_inputs`).

    The toolbox reads each as `np.load(os.path.join(dataset_path, name))['arr_0']`
    (`snntoolbox/datasets/utils.py: load_npz`), so each file holds one unnamed array; its sha256 is
    recorded beside it (`results.write_stamp`), so a damaged file is noticed and rewritten.
    `x_norm` is a class-balanced subset of the training set (never test data) of `num_norm`
    samples; the toolbox trims it to a multiple of its batch size.
    """
    if num_norm < 1:
        raise UserError(f"the normalisation set needs at least 1 sample, got num_norm={num_norm}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    one_hot = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_test]
    x_norm = dataset.x_train[balanced_subset(dataset.y_train, num_norm, seed)]
    layout = layout or (lambda x: x)
    for name, array in (("x_test", layout(dataset.x_test)), ("y_test", one_hot), ("x_norm", layout(x_norm))):
        _atomic_write(folder / f"{name}.npz", lambda f, a=array: np.savez_compressed(f, a))
        results.write_stamp(folder / f"{name}.npz")


def _atomic_write(path: Path, write) -> None:
    """`results.write_atomic_with`, for a writer that takes an open binary file (``np.savez`` appends
    ``.npz`` to a file name that lacks it)."""
    def to_file(tmp):
        with open(tmp, "wb") as f:
            write(f)
    results.write_atomic_with(path, to_file)


def _digest(arrays) -> str:
    """sha256 over (dtype, shape, bytes) of x_train, y_train, x_test, y_test, in that order."""
    h = hashlib.sha256()
    for name, a in zip(NPZ_KEYS, arrays):
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()
