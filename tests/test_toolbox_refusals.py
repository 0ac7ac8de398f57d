"""SIM=INI refuses, in one line and before any toolbox work, a model SNN Toolbox 0.6.0 would run as another network."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf

from pipeline import UserError
from pipeline.toolbox import configs, runner

layers = tf.keras.layers


def model_of(build):
    """A tiny functional model on a (4, 4, 2) input: ``build(inputs)`` gives the last hidden tensor."""
    tf.keras.utils.set_random_seed(0)
    inputs = layers.Input((4, 4, 2))
    out = layers.Dense(3, activation="softmax", name="out")(layers.Flatten(name="flat")(build(inputs)))
    return tf.keras.Model(inputs, out)


def conv(filters, name, activation="relu", **kwargs):
    return layers.Conv2D(filters, 3, padding="same", activation=activation, name=name, **kwargs)


def residual(x):
    a = conv(2, "c1")(x)
    return layers.Add(name="add")([conv(2, "c2")(a), a])


def concatenation(x):
    return layers.Concatenate(name="cat")([conv(2, "c1")(x), conv(3, "c2")(x)])


def hidden_linear(x):
    return conv(4, "c2")(conv(4, "lin", activation="linear")(x))


def grouped(x):
    return conv(4, "grouped", groups=2)(x)


def batch_normed(x):   # a linear conv whose ReLU comes after batch norm: the toolbox finds it
    return layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(conv(4, "c1", activation="linear")(x)))


@pytest.mark.parametrize("build,simulator,where", [
    (residual, "INI", "layer 3 'add' (Add): SNN Toolbox parses an Add as a concatenation"),
    (concatenation, "INI", "layer 3 'cat' (Concatenate)"),
    (hidden_linear, "INI", "layer 1 'lin' (Conv2D): a hidden layer with a linear activation"),
    (grouped, "brian2", "layer 1 'grouped' (Conv2D): SNN Toolbox's brian2 connections ignore its 2 groups"),
])
def test_a_layer_the_toolbox_would_run_as_another_network_is_refused_by_index_and_name(build, simulator, where):
    with pytest.raises(UserError) as refused:
        runner.refuse_unrunnable(model_of(build), simulator, "net.h5")
    message = str(refused.value)
    assert message.startswith(f"net.h5: {where}") and "SIM=fast runs it" in message and "\n" not in message


@pytest.mark.parametrize("build", [grouped, batch_normed])
def test_a_grouped_conv_and_a_batch_normed_relu_run_on_ini(build):
    runner.refuse_unrunnable(model_of(build), "INI", "net.h5")     # the parser keeps groups; finds the ReLU


@pytest.mark.parametrize("sim,says", [("INI", "SIM=fast runs it on the engine (with [tools] normalize = False"),
                                      ("fast", "run it with [tools] normalize = False")])
def test_make_convert_refuses_a_residual_model_before_any_toolbox_work(sandbox, tmp_path, capsys, monkeypatch,
                                                                       sim, says):
    from pipeline.__main__ import main
    wd, data = tmp_path / "wd", tmp_path / "data"
    wd.mkdir()
    data.mkdir()
    model_of(residual).save(wd / "net.h5", save_format="h5")
    for name in ("x_test.npz", "y_test.npz", "x_norm.npz"):
        np.savez(data / name, np.zeros((4, 4, 4, 2)))
    path = configs.render("r", 5, 4, 4, {"path_wd": wd, "dataset_path": data, "filename_ann": "net",
                                         "log_dir_of_current_run": tmp_path / "log"}, sandbox / "configs")

    def toolbox_work(*args):
        raise AssertionError("the toolbox was set up")

    monkeypatch.setattr(runner.compat, "apply", toolbox_work)        # INI's first toolbox call
    monkeypatch.setattr(runner, "scale_factors", toolbox_work)       # SIM=fast's
    assert main(["convert", f"OUT={sandbox}", f"CONFIG={path}", "RUN=residual", f"SIM={sim}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "net.h5: layer 3 'add' (Add)" in err[0] and says in err[0], err
