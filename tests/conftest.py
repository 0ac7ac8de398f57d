"""Shared fixtures: a tiny dataset and a sandbox that keeps results/models/configs out of the repo."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)


def tiny_arrays(n_train=300, n_test=60, shape=(8, 12), seed=0):
    """Three classes, each a bright band of rows: learnable in a few epochs by a width-4 net."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.normal(0, 0.3, (n, *shape)).astype("float32")
        for k in range(3):
            x[y == k, 2 * k:2 * k + 2, :] += 0.8
        return x, y

    (x_train, y_train), (x_test, y_test) = make(n_train), make(n_test)
    return x_train, y_train, x_test, y_test


def blobs(n, seed, noise=0.5):
    """Three classes: a bright bar on row 1, 3 or 5 of an 8x8 noisy image, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, noise, (n, 8, 8, 1))
    for i, c in enumerate(y):
        x[i, 1 + 2 * c:3 + 2 * c, 1:7, 0] += 0.6
    return np.clip(x, -1, 1).astype(np.float32), y


def trained_blobs_net(n_train, n_test):
    """A width-4 ESCAPE-NET on 8x8 `blobs`, trained for a few seconds (seeded): model and data."""
    import tensorflow as tf
    from keras_models import escape_net
    tf.keras.utils.set_random_seed(0)
    x_train, y_train = blobs(n_train, 0)
    x_test, y_test = blobs(n_test, 1)
    model = escape_net.build(input_shape=(8, 8, 1), width=4)
    model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    return model, x_train, y_train, x_test, y_test


def write_tiny_npz(folder):
    """`tiny_arrays` as a DATA file, ``folder``/tiny.npz."""
    x_train, y_train, x_test, y_test = tiny_arrays()
    path = folder / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def prepared_tiny_run(root, run, *extra):
    """A RUN on `write_tiny_npz`'s data under ``root`` (width 4, 1 epoch; ``extra``: more settings such as
    ``PRUNE=0.5``), trained and prepared (`workspace.prepare`)."""
    from pipeline import settings as settings_module, workspace
    chosen = settings_module.parse(["convert", f"DATA={write_tiny_npz(root)}", "WIDTH=4", "EPOCHS=1", f"RUN={run}",
                                    *extra, f"OUT={root}"])
    return workspace.prepare(chosen, verbose=0)


@pytest.fixture
def tiny_npz(tmp_path):
    return write_tiny_npz(tmp_path)


@pytest.fixture
def sandbox(tmp_path):
    """A temporary folder for the pipeline's outputs: a stage given ``OUT={sandbox}`` writes its results/,
    trained models, data caches and rendered configs under it (`results.Folders.under`), and so does a
    library call given ``Folders.under(sandbox)`` or one of its folders."""
    return tmp_path


def check_uncertainty(record, accuracies=(("snn", "snn_accuracy"), ("ann", "ann_accuracy")), pairs=(("snn", "ann"),)):
    """A result's stored per-sample predictions give back its accuracies, their intervals and its
    paired tests: ``accuracies`` pairs a predictions name with the accuracy field it scores."""
    from pipeline import stats
    stored = record["predictions"]
    labels = stats.decode_predictions(stored["labels"])
    assert len(labels) == record.get("num_samples", len(labels))
    for name, field in accuracies:
        assert record[field] == pytest.approx(np.mean(stats.decode_predictions(stored[name]) == labels))
        assert record[f"{field}_interval"] == pytest.approx(stats.interval(record[field], len(labels)))
    for a, b in pairs:
        assert record[f"{a}_vs_{b}_mcnemar"] == stats.paired(a, stats.decode_predictions(stored[a]), b,
                                                             stats.decode_predictions(stored[b]), labels)


def toolbox_run(tmp_path, model, x_test, y_test, x_norm, timesteps, poisson, batch_size=25):
    """SNN Toolbox 0.6.0's INI simulator on ``model`` (spike counts logged), via the spine's runner;
    model, data, ini and log dir go under ``tmp_path``."""
    from pipeline.toolbox import configs, runner
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])  # the toolbox's loader needs a loss
    model.save(tmp_path / "tiny.h5", save_format="h5")
    for name, array in (("x_test", x_test), ("y_test", np.eye(3, dtype=np.float32)[y_test]), ("x_norm", x_norm)):
        np.savez_compressed(data / f"{name}.npz", array)
    ini = configs.read_ini(configs.TEMPLATE)
    values = {("paths", "path_wd"): tmp_path, ("paths", "dataset_path"): data, ("paths", "filename_ann"): "tiny",
              ("paths", "log_dir_of_current_run"): tmp_path / f"log_{poisson}", ("simulation", "duration"): timesteps,
              ("simulation", "num_to_test"): len(x_test), ("simulation", "batch_size"): batch_size,
              ("input", "poisson_input"): poisson}
    for (section, key), value in values.items():
        if not ini.has_section(section):
            ini.add_section(section)
        ini.set(section, key, str(value))
    path = tmp_path / f"tiny_{poisson}.ini"
    with open(path, "w") as f:
        ini.write(f)
    config = configs.validate(path)
    return config, runner.run(config, progress=False, log_spikes=True)
