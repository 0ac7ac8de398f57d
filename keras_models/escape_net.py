"""ESCAPE-NET (peripheral-nerve CNN) in two variants.

`original`: the published network (max pooling, biases, batch normalisation).
`modified`: the conversion-friendly one the study converts (average pooling,
no bias, no batch norm, dropout for regularisation):
Conv W 8x8 -> AvgPool 2 -> Conv W 4x4 -> AvgPool 2 -> Conv W 2x2 -> Flatten
-> Dense 256 -> Dense classes (softmax), every conv 'same' padded with ReLU.
At width 64 on 56x100 input the modified model has 5,821,184 weights.
"""
import tensorflow as tf

VARIANTS = ("modified", "original")
KERNELS = ((8, 8), (4, 4), (2, 2))
HIDDEN_UNITS = 256


def build(variant="modified", input_shape=(56, 100, 1), num_classes=3, width=64, dropout=0.2):
    """Return an uncompiled ESCAPE-NET Keras model."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ESCAPE-NET variant {variant!r}; choose from {VARIANTS}")
    layers = tf.keras.layers
    original = variant == "original"
    inputs = layers.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for i, kernel in enumerate(KERNELS, start=1):
        if original:
            x = layers.Conv2D(width, kernel, padding="same", name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(width, kernel, padding="same", activation="relu",
                              use_bias=False, name=f"conv{i}")(x)
        if i < len(KERNELS):
            pool = layers.MaxPooling2D if original else layers.AveragePooling2D
            x = pool(2, name=f"pool{i}")(x)
            if not original:
                x = layers.Dropout(dropout, name=f"drop{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", use_bias=original, name="dense1")(x)
    x = layers.Dropout(dropout if not original else 0.5, name="drop_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", use_bias=original, name="dense2")(x)
    return tf.keras.Model(inputs, outputs, name=f"escape_net_{variant}_w{width}")
