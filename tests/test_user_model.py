"""MODEL=path.h5: a trained Keras model the user brings is checked, recorded and converted without training."""
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from conftest import tiny_arrays

from pipeline import results
from pipeline.__main__ import main


def small_cnn(path, outputs=3, lstm=False):
    """Not ESCAPE-NET: one biased 3x3 conv, average pooling, a dense readout; trained a few epochs."""
    import tensorflow as tf
    tf.keras.backend.clear_session()   # Keras names layers by a per-process count: `conv2d`, whatever ran before
    tf.keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = tiny_arrays()
    keras = tf.keras.layers
    if lstm:
        model = tf.keras.Sequential([keras.Input((8, 12)), keras.LSTM(4), keras.Dense(outputs, activation="softmax")])
    else:
        model = tf.keras.Sequential([keras.Input((8, 12, 1)), keras.Conv2D(6, 3, padding="same", activation="relu"),
                                     keras.AveragePooling2D(2), keras.Flatten(),
                                     keras.Dense(outputs, activation="softmax")])
        model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        model.fit(x_train[..., None], y_train, epochs=4, batch_size=32, verbose=0)
    model.save(path, save_format="h5")
    return path


def one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(part in err[0] for part in parts), err


@pytest.mark.slow
def test_convert_runs_on_a_model_the_user_brings(sandbox, tiny_npz, capsys):
    path = small_cnn(sandbox / "mine.h5")
    argv = ["convert", f"OUT={sandbox}", f"MODEL={path}", f"DATA={tiny_npz}", "T=20", "N=20", "RUN=u"]
    assert main(argv) == 0
    record = json.loads((sandbox / "results" / "u" / "convert_T20.json").read_text())
    run = json.loads((sandbox / "results" / "u" / "run.json").read_text())
    assert run["model_file"] == str(path) and run["model_file_sha256"] == results.file_sha256(path)
    assert record["model"]["sha256"] == run["model"]["sha256"] and record["num_samples"] == 20
    assert record["ann_accuracy"] > 0.6 and len(record["accuracy_per_timestep"]) == 20
    assert not list(results.Folders.under(sandbox).trained.glob("escape_net_*"))     # nothing trained

    capsys.readouterr()
    import tensorflow as tf                                             # the file changes under the RUN
    model = tf.keras.models.load_model(path)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    model.save(path, save_format="h5")
    assert main(argv) == 2
    one_line_error(capsys, f"MODEL={path} changed since RUN=u recorded it", "FORCE=1")
    assert main([*argv, "FORCE=1"]) == 0
    assert json.loads((sandbox / "results" / "u" / "run.json").read_text())["model_file_sha256"] == \
        results.file_sha256(path)


@pytest.mark.parametrize("kind, parts", [
    ("lstm", ["layer 0 'lstm' (LSTM) is refused unread"]),
    ("outputs", ["has 4 outputs", "3 classes"]),
    ("garbage", ["not a readable Keras .h5 model"]),
    ("keras", ["cannot read this .keras file", "InputLayer", "save the model as .h5"]),
    ("missing", ["no such file"]),
])
def test_an_unusable_model_is_refused_in_one_line_before_anything_runs(sandbox, tiny_npz, capsys, kind, parts):
    path = sandbox / ("m.keras" if kind == "keras" else "m.h5")
    if kind == "lstm":
        small_cnn(path, lstm=True)
    elif kind == "outputs":
        small_cnn(path, outputs=4)
    elif kind == "keras":       # a Keras-3 model, in Keras 3's own format
        import keras
        keras.Sequential([keras.Input((8, 12, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(3, activation="softmax")]).save(path)
    elif kind == "garbage":
        path.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    assert main(["convert", f"OUT={sandbox}", f"MODEL={path}", f"DATA={tiny_npz}", "T=20", "RUN=bad"]) == 2
    one_line_error(capsys, *parts)
    assert not (sandbox / "results" / "bad" / "run.json").exists()
