"""ESCAPE-NET builders: layer shapes, the weight count of the study, and an original net that generalises."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
from conftest import tiny_arrays

from keras_models import escape_net


def test_modified_width_64_has_the_studys_weights_and_shapes():
    model = escape_net.build("modified", input_shape=(56, 100, 1), num_classes=3, width=64)
    assert model.count_params() == 5_821_184
    shapes = {layer.name: layer.output_shape[1:] for layer in model.layers}
    assert shapes["conv1"] == (56, 100, 64) and shapes["pool1"] == (28, 50, 64)
    assert shapes["conv3"] == (14, 25, 64) and shapes["dense1"] == (256,) and shapes["dense2"] == (3,)
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in model.layers)


def test_original_has_max_pooling_biases_and_batch_norm():
    model = escape_net.build("original", input_shape=(56, 100, 1), width=8, num_classes=5)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 3 and kinds.count("MaxPooling2D") == 2
    assert model.get_layer("dense2").use_bias and model.output_shape == (None, 5)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        escape_net.build("resnet")


def test_original_generalises_on_small_inputs_after_a_short_training():
    """Inputs at the nerve cuff's scale (|x| ~ 0.03): with too slow batch-norm moving statistics the
    trained network predicted one class at inference (chance), whatever it learnt."""
    x_train, y_train, x_test, y_test = tiny_arrays(n_train=480)
    scale = 0.03
    tf.keras.utils.set_random_seed(0)
    model = escape_net.build("original", input_shape=(8, 12, 1), width=4)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train[..., None] * scale, y_train, epochs=5, batch_size=16, verbose=0)
    accuracy = np.mean(model.predict(x_test[..., None] * scale, verbose=0).argmax(1) == y_test)
    assert accuracy > 0.8
