"""1-D data end to end: an (n, L, C) `.npz` with a Conv1D model through the stages, and the 1-D ESCAPE-NET
(`ARCH=escape_net_1d`: channels as features, convolution over time) on channels x time recordings."""
import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from conftest import tiny_arrays

from pipeline import UserError, canonical, data, network
from pipeline.__main__ import main


def conv1d_model(length=8, channels=12):
    """A Conv1D classifier on (length, channels) inputs: conv (6 filters, 3 taps, 'same') -> pool -> dense."""
    import tensorflow as tf
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([L.Input((length, channels)), L.Conv1D(6, 3, padding="same", activation="relu",
                                                                       name="conv"),
                                L.AveragePooling1D(2, name="pool"), L.Flatten(name="flat"),
                                L.Dense(3, activation="softmax", name="out")])


def one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(part in err[0] for part in parts), err


def test_the_time_series_view_puts_time_along_a_map_of_height_one_and_the_channels_as_features(tiny_npz):
    dataset = data.load_dataset(str(tiny_npz))           # (n, 8, 12) read as 8 channels x 12 time samples
    view = data.time_series_view(dataset)
    assert dataset.input_shape == (8, 12, 1) and view.input_shape == (1, 12, 8)
    assert view.x_test[3, 0, 5, 2] == dataset.x_test[3, 2, 5, 0]          # channel 2 at time 5
    np.testing.assert_array_equal(view.y_train, dataset.y_train)
    assert view.sha256 != dataset.sha256 and not view.x_train.flags.writeable


def test_the_time_series_view_refuses_images_with_several_channels_in_one_line(tmp_path):
    x = np.zeros((4, 8, 12, 3), np.float32)
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=x + np.arange(4)[:, None, None, None], y_train=[0, 1, 0, 1], x_test=x, y_test=[0, 1, 0, 1])
    with pytest.raises(UserError, match=r"^[^\n]*rgb.npz: a 1-D network over time takes recordings of channels x "
                                        r"time[^\n]*\(8, 12, 3\)$"):
        data.time_series_view(data.load_dataset(str(path)))


def test_a_conv1d_model_on_data_of_height_one_runs_as_2d_without_a_reshape():
    """Data seen as (1, L, C) is already the map the 1-D stack runs on: no Reshape, so NIR can export it."""
    model = conv1d_model()
    form = canonical.canonicalise(model, (1, 8, 12))
    assert [type(layer).__name__ for layer in form.model.layers] == ["InputLayer", "Conv2D", "AveragePooling2D",
                                                                      "Flatten", "Dense"]
    assert form.model.input_shape == (None, 1, 8, 12) and form.changes[0]["name"] == "input"
    x = tiny_arrays()[2][:16]
    np.testing.assert_allclose(form.model.predict(x[:, None], verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_a_spikes_fan_out_follows_its_value_through_the_reshape_before_a_conv1d():
    """(L, C, 1) samples feed the conv on (1, L, C): each value's fan-out is that of its (time, channel)
    position: 'same' 3-tap conv on 8 steps reaches 2 outputs from the ends, 3 elsewhere, x 6 filters."""
    from pipeline.energy import input_fan_out
    graph = network.describe(canonical.canonicalise(conv1d_model(), (8, 12, 1)).model)
    fan = input_fan_out(graph, "linear")
    per_time = np.array([2, 3, 3, 3, 3, 3, 3, 2]) * 6
    np.testing.assert_array_equal(fan, np.broadcast_to(per_time[:, None, None], (8, 12, 1)))


def test_the_1d_escape_net_mirrors_the_2d_one_with_kernels_over_time():
    from keras_models import escape_net
    model = escape_net.build_1d(width=64)
    convs = [layer for layer in model.layers if "conv" in layer.name]
    assert [layer.kernel_size for layer in convs] == [(8,), (4,), (2,)] and model.output_shape == (None, 3)
    assert model.get_layer("flatten").output_shape == (None, 25 * 64)     # 100 steps pooled twice
    assert model.count_params() == 8 * 56 * 64 + 4 * 64 * 64 + 2 * 64 * 64 + 25 * 64 * 256 + 256 * 3 == 463_616


@pytest.mark.slow
def test_a_conv1d_model_on_length_by_channel_npz_converts_and_counts_its_energy(sandbox, tiny_npz):
    """`make convert SIM=fast MODEL=… DATA=x.npz` and `make energy` on x of shape (n, 8, 12); the first
    conv's ANN MACs by hand: 8 steps x 6 filters x 3 taps x 12 channels."""
    model = conv1d_model()
    x_train, y_train = tiny_arrays()[:2]
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=3, verbose=0)
    model.save(sandbox / "c1d.h5", save_format="h5")
    common = [f"OUT={sandbox}", f"MODEL={sandbox / 'c1d.h5'}", f"DATA={tiny_npz}", "N=20", "RUN=c1", "T=20"]
    assert main(["convert", "SIM=fast", *common]) == 0
    assert main(["energy", *common]) == 0
    record = json.loads((sandbox / "results" / "c1" / "energy.json").read_text())
    assert [row["name"] for row in record["layers"]] == ["conv", "pool", "out"]
    assert record["layers"][0]["ann_macs"] == 8 * 6 * 3 * 12 and record["layers"][0]["snn_acs"] > 0
    assert record["num_samples"] == 20


@pytest.mark.slow
def test_the_1d_escape_net_trains_converts_counts_and_exports_on_channels_by_time_data(sandbox, capsys):
    """ARCH=escape_net_1d on (n, 8 channels, 24 time samples): recorded in run.json, trained once as Conv1D
    and cached as the map of height 1 every stage runs; convert (engine and INI), sweep, energy, export run;
    latency and MODEL= refuse it in one line."""
    x_train, y_train, x_test, y_test = tiny_arrays(shape=(8, 24))
    path = sandbox / "cuff.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    common = [f"OUT={sandbox}", f"DATA={path}", "RUN=one", "N=10", "T=10"]
    assert main(["convert", "SIM=fast", "ARCH=escape_net_1d", "WIDTH=2", "EPOCHS=1", *common]) == 0
    run = json.loads((sandbox / "results" / "one" / "run.json").read_text())
    assert run["arch"] == "escape_net_1d" and "escape_net_1d_modified_w2_e1" in run["model"]["path"]
    from pipeline.training import ann
    model = ann.load(run["model"]["path"])
    assert model.input_shape == (None, 1, 24, 8) and model.get_layer("conv1").kernel_size == (1, 8)
    assert "Reshape" not in {type(layer).__name__ for layer in model.layers}
    for stage in (["convert"], ["sweep", "SIM=fast", "TS=5 10"], ["energy"], ["export"]):
        assert main([stage[0], *common, *stage[1:]]) == 0, stage
    assert (sandbox / "results" / "one" / "converted_T10.nir").exists()
    capsys.readouterr()
    assert main(["latency", *common, "TS=2"]) == 2
    one_line_error(capsys, "ARCH=escape_net_1d", "2-D only")
    assert main(["convert", f"OUT={sandbox}", f"DATA={path}", "RUN=two", "ARCH=escape_net_1d",
                 f"MODEL={sandbox / 'absent.h5'}", "T=10"]) == 2
    one_line_error(capsys, "ARCH=escape_net_1d", "MODEL=")


@pytest.mark.slow
def test_a_conv1d_model_over_time_takes_a_rat_file_as_100_time_samples_of_56_channels(sandbox):
    """A RAT .mat holds 56 channels x 100 samples per recording; a MODEL= taking (100, 56) gets them as time
    series (the same view as ARCH=escape_net_1d), with no Reshape in the canonical copy."""
    import scipy.io
    from test_data import rat_variables
    scipy.io.savemat(sandbox / "rat.mat", rat_variables(n_train=30, n_test=6))
    conv1d_model(length=100, channels=56).save(sandbox / "time.h5", save_format="h5")
    from pipeline import settings, workspace
    from pipeline.training import ann
    ws = workspace.prepare(settings.parse(["convert", f"OUT={sandbox}", f"MODEL={sandbox / 'time.h5'}",
                                           f"DATA={sandbox / 'rat.mat'}", "RUN=rat"]))
    view = data.time_series_view(data.load_dataset(str(sandbox / "rat.mat")))
    assert ws.dataset.input_shape == (1, 100, 56) and ws.record["dataset"]["sha256"] == view.sha256
    model = ann.load(ws.model.path)
    assert model.input_shape == (None, 1, 100, 56)
    assert "Reshape" not in {type(layer).__name__ for layer in model.layers}
