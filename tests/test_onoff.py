"""ON/OFF input: the split model computes the trained function, on the ANN and on SNN Toolbox's INI."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import toolbox_run, trained_blobs_net
from keras_models import escape_net
from pipeline import UserError
from pipeline.toolbox import onoff


def test_split_inputs_are_two_non_negative_channels():
    x = np.array([[[[0.5, -0.25]], [[-1.0, 0.0]]]], np.float32)      # (1, 2, 1, 2)
    split = onoff.split_inputs(x)
    assert split.shape == (1, 2, 1, 4) and split.dtype == np.float32 and (split >= 0).all()
    np.testing.assert_array_equal(split[..., :2] - split[..., 2:], x)   # x = x+ - x-


@pytest.mark.parametrize("variant,channels", [("modified", 1), ("original", 2)])
def test_split_model_computes_the_same_function(variant, channels):
    """Same outputs to float rounding, 'same' padding at the borders and conv1's bias included."""
    tf.keras.utils.set_random_seed(0)
    model = escape_net.build(variant, input_shape=(8, 12, channels), width=4)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 12, channels)).astype(np.float32)
    split = onoff.split_model(model)
    assert split.input_shape == (None, 8, 12, 2 * channels)
    kernel = split.get_layer("conv1").get_weights()[0]
    trained = model.get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(kernel, np.concatenate([trained, -trained], axis=2))
    for layer in model.layers[2:]:          # every other layer shares the trained weights
        for ours, theirs in zip(split.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(split.predict(onoff.split_inputs(x), verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_a_model_whose_input_does_not_feed_a_convolution_is_refused():
    inputs = tf.keras.Input((4, 4, 1))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="head")(tf.keras.layers.Flatten(name="flat")(inputs)))
    with pytest.raises(UserError, match="flat"):
        onoff.split_model(model)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_ini_decides_the_same_on_onoff_input(tmp_path):
    """Constant input: the toolbox's scale factors and INI's decisions at every step equal the signed model's."""
    model, x_train, _, x_test, y_test = trained_blobs_net(300, 40)
    x_norm = x_train[:100]
    assert (x_test < 0).any()
    _, signed = toolbox_run(tmp_path / "signed", model, x_test, y_test, x_norm, timesteps=30, poisson=False,
                            batch_size=20)
    _, split = toolbox_run(tmp_path / "onoff", onoff.split_model(model), onoff.split_inputs(x_test), y_test,
                           onoff.split_inputs(x_norm), timesteps=30, poisson=False, batch_size=20)
    assert split.scale_factors.keys() == signed.scale_factors.keys()
    for layer, factor in signed.scale_factors.items():
        assert split.scale_factors[layer] == pytest.approx(factor, rel=1e-5), layer
    np.testing.assert_array_equal(split.predictions_per_timestep, signed.predictions_per_timestep)
    assert signed.accuracy > 0.6            # a network that decides, not one at chance
