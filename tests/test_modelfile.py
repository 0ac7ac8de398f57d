"""Files are data: a model file's architecture is read as JSON and checked before Keras rebuilds it,
so a Lambda, a custom activation or a custom class in a file someone hands you never runs."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from conftest import tiny_arrays
from test_user_model import one_line_error

from pipeline import UserError, modelfile, results
from pipeline.__main__ import main

MARKER = []   # the marker file the hostile code below touches, set by each test


def touch_marker(x):
    """A custom activation: runs whenever Keras builds the layer, e.g. while loading a model file."""
    Path(MARKER[0]).touch()
    return x


def hostile(kind, path, marker):
    """A tiny model (8x12x1 -> 3 classes, as `tiny_arrays`) whose loading would touch ``marker``."""
    import tensorflow as tf
    keras = tf.keras.layers
    MARKER[:] = [str(marker)]
    middle = []
    if kind in ("lambda", "nested lambda"):
        middle = [keras.Lambda(eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"),
                               name="sneaky")]
        if kind == "nested lambda":
            middle = [tf.keras.Sequential([keras.Input((8, 12, 1)), *middle], name="inner")]
    elif kind == "custom layer":
        @tf.keras.utils.register_keras_serializable(package="visitor")
        class Touching(keras.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                Path(MARKER[0]).touch()
        middle = [Touching(name="sneaky")]
    activation = "softmax"
    if kind == "custom activation":   # registered where the model is made, and (it runs) where it is loaded
        activation = tf.keras.utils.register_keras_serializable(package="visitor")(touch_marker)
    model = tf.keras.Sequential([keras.Input((8, 12, 1)), *middle, keras.Flatten(),
                                 keras.Dense(3, activation=activation, name="readout")])
    model.save(path, save_format="h5")
    if kind == "custom activation":   # tf-keras writes an object it cannot read back; by name it loads and runs
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            config["config"]["layers"][-1]["config"]["activation"] = "visitor>touch_marker"
            f.attrs["model_config"] = json.dumps(config)
    Path(marker).unlink(missing_ok=True)   # building the model ran the code; loading must not
    return path


KINDS = [("lambda", "layer 0 'sneaky' (Lambda)"),
         ("nested lambda", "layer 0 'inner' (Sequential) > layer 0 'sneaky' (Lambda)"),
         ("custom layer", "layer 0 'sneaky' (visitor>Touching)"),
         ("custom activation", "layer 1 'readout' (Dense): activation 'visitor>touch_marker'")]


@pytest.mark.parametrize("kind, named", KINDS)
def test_a_model_file_that_would_run_code_is_refused_by_layer_and_nothing_runs(sandbox, tiny_npz, capsys,
                                                                                kind, named):
    from pipeline import engine
    marker = sandbox / "MARKER"
    path = hostile(kind, sandbox / "hostile.h5", marker)
    assert main(["convert", f"OUT={sandbox}", f"MODEL={path}", f"DATA={tiny_npz}", "T=5", "RUN=bad"]) == 2
    one_line_error(capsys, f"MODEL={path}: {named}")
    with pytest.raises(UserError, match="refused unread|is not a built-in Keras activation"):
        engine.load_keras(path)
    assert not marker.exists()


@pytest.mark.parametrize("sim, beside", [("INI", False), ("fast", False), ("INI", True)],
                         ids=["INI", "fast", "INI, architecture in a .json beside"])
def test_the_model_an_ini_names_is_checked_before_the_toolbox_or_engine_loads_it(sandbox, capsys, sim, beside):
    from pipeline.toolbox import configs
    wd, data = sandbox / "wd", sandbox / "data"
    wd.mkdir()
    data.mkdir()
    hostile("lambda", wd / "net.h5", sandbox / "MARKER")
    if beside:   # SNN Toolbox builds the model from <filename_ann>.json when there is one
        with h5py.File(wd / "net.h5", "r") as f:
            (wd / "net.json").write_text(f.attrs["model_config"])
    x, y, _, _ = tiny_arrays(n_train=20, n_test=0)
    for name, array in (("x_test", x[..., None]), ("y_test", np.eye(3)[y]), ("x_norm", x[..., None])):
        np.savez(data / f"{name}.npz", array)
    ini = configs.render("r", 5, 20, 10, {"path_wd": wd, "dataset_path": data, "filename_ann": "net",
                                          "log_dir_of_current_run": sandbox / "log"},
                         results.Folders.under(sandbox).configs)
    assert main(["convert", f"OUT={sandbox}", f"CONFIG={ini}", f"SIM={sim}", "RUN=ini"]) == 2
    one_line_error(capsys, f"{wd / ('net.json' if beside else 'net.h5')}: layer 0 'sneaky' (Lambda) is refused unread")
    assert not (sandbox / "MARKER").exists()


def test_every_model_the_pipeline_trains_and_the_layers_coming_next_pass_the_check(tmp_path):
    import tensorflow as tf
    from keras_models import escape_net
    from pipeline import engine
    from pipeline.training import ann
    for variant in escape_net.VARIANTS:
        path = tmp_path / f"{variant}.h5"
        model = escape_net.build(variant, (8, 12, 1), 3, width=2)
        model.compile("adam", "categorical_crossentropy", ["accuracy"])   # saved compiled, as `ann.train` does
        model.save(path, save_format="h5")
        assert [layer.name for layer in ann.load(path).layers] == [layer.name for layer in model.layers]
        engine.load_keras(path)
    keras = tf.keras.layers   # the layers support comes next for (issue 23): they load without running code
    x = keras.Input((8, 8, 2))
    h = keras.ZeroPadding2D(1)(x)
    a = keras.DepthwiseConv2D(3, padding="same", depthwise_regularizer="l2")(h)
    b = keras.SeparableConv2D(2, 3, padding="same", kernel_constraint=tf.keras.constraints.MaxNorm(2))(h)
    h = keras.Concatenate()([keras.Add()([a, h]), b])
    h = keras.MaxPooling2D()(keras.ReLU(max_value=6.0)(keras.BatchNormalization()(h)))
    s = keras.Reshape((25, 4))(h)
    s = keras.MaxPooling1D()(keras.AveragePooling1D()(keras.ZeroPadding1D(1)(keras.Conv1D(3, 3)(s))))
    h = keras.Concatenate()([keras.GlobalAveragePooling2D()(h), keras.GlobalAveragePooling1D()(s)])
    h = keras.Dense(3)(keras.Dropout(0.1)(keras.Activation("relu")(h)))
    graph = tf.keras.Model(x, keras.Softmax()(h))
    graph.save(tmp_path / "graph.h5", save_format="h5")
    modelfile.check(tmp_path / "graph.h5")


@pytest.mark.parametrize("content, message", [
    (b"not hdf5 at all", "not a readable Keras .h5 model"),
    ("weights only", "holds no model architecture"),
])
def test_a_file_that_is_not_a_whole_keras_model_is_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "m.h5"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("w", data=np.zeros(3))
    with pytest.raises(UserError, match=message):
        modelfile.check(path)
