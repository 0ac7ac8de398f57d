"""ESCAPE-NET (peripheral-nerve CNN) in three variants.

`original`: the published network (max pooling, biases, batch normalisation).
`modified`: the conversion-friendly one the study converts (average pooling,
no bias, no batch norm, dropout for regularisation):
Conv W 8x8 -> AvgPool 2 -> Conv W 4x4 -> AvgPool 2 -> Conv W 2x2 -> Flatten
-> Dense 256 -> Dense classes (softmax), every conv 'same' padded with ReLU.
At width 64 on 56x100 input the modified model has 5,821,184 weights.
`qcfs`: the modified network with every ReLU replaced by a QCFS activation layer with
`levels` quantisation steps and a trainable clip level (`keras_models.qcfs`; layers qcfs1,
qcfs2, qcfs3, qcfs_dense1 after conv1-3 and dense1, which become linear): the low-latency
conversion of Bu et al. (ICLR 2022). Same weights as `modified`, plus one lambda per layer.

`build_1d`: the modified network in one dimension, for recordings seen as time x channels (the 56
channels as features, convolution over the 100 samples): the same layers with Conv1D /
AveragePooling1D and kernel lengths 8, 4, 2 over time. At width 64 on (100, 56) input it has 463,616
weights (28,672 + 16,384 + 8,192 in the convolutions, 409,600 + 768 in the dense layers): the 2-D
network's 5.8 M are 98.5 % its first dense layer, fed the 14 x 25 x 64 map that keeps 14 channel rows,
where the 1-D one is fed 25 x 64.
"""
import tensorflow as tf

from keras_models.qcfs import QCFS

VARIANTS = ("modified", "original", "qcfs")
KERNELS = ((8, 8), (4, 4), (2, 2))
KERNELS_1D = tuple(kernel[1] for kernel in KERNELS)   # the 2-D kernels' extent over time
# Keras' default 0.99 leaves 0.99^272 = 6.5 % of the initial moving variance (1.0) after the 272 steps of
# 8 epochs on 2,160 samples; with nerve-cuff inputs (|x| ~ 0.03) the true variance is ~1e-3, so inference
# normalised with that mostly-initial value and the original network sat at chance (0.333) on the test set.
BATCH_NORM_MOMENTUM = 0.9
HIDDEN_UNITS = 256


def build(variant="modified", input_shape=(56, 100, 1), num_classes=3, width=64, dropout=0.2, levels=8):
    """Return an uncompiled ESCAPE-NET Keras model (`levels` is used by the `qcfs` variant only)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ESCAPE-NET variant {variant!r}; choose from {VARIANTS}")
    layers = tf.keras.layers
    original = variant == "original"
    quantised = variant == "qcfs"
    hidden_activation = None if quantised else "relu"

    def activate(x, name):
        return QCFS(levels, name=name)(x) if quantised else x

    inputs = layers.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for i, kernel in enumerate(KERNELS, start=1):
        if original:
            x = layers.Conv2D(width, kernel, padding="same", name=f"conv{i}")(x)
            x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"bn{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(width, kernel, padding="same", activation=hidden_activation,
                              use_bias=False, name=f"conv{i}")(x)
            x = activate(x, f"qcfs{i}")
        if i < len(KERNELS):
            pool = layers.MaxPooling2D if original else layers.AveragePooling2D
            x = pool(2, name=f"pool{i}")(x)
            if not original:
                x = layers.Dropout(dropout, name=f"drop{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu" if original else hidden_activation, use_bias=original,
                     name="dense1")(x)
    x = activate(x, "qcfs_dense1")
    x = layers.Dropout(dropout if not original else 0.5, name="drop_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", use_bias=original, name="dense2")(x)
    name = f"escape_net_qcfs_L{levels}_w{width}" if quantised else f"escape_net_{variant}_w{width}"
    return tf.keras.Model(inputs, outputs, name=name)


def build_1d(input_shape=(100, 56), num_classes=3, width=64, dropout=0.2):
    """Return an uncompiled 1-D ESCAPE-NET (modified variant) on (time, channels) inputs:
    Conv1D W 8 -> AvgPool1D 2 -> Conv1D W 4 -> AvgPool1D 2 -> Conv1D W 2 -> Flatten -> Dense 256 ->
    Dense classes (softmax), every conv 'same' padded with ReLU, no biases, dropout as in `build`."""
    layers = tf.keras.layers
    inputs = layers.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for i, kernel in enumerate(KERNELS_1D, start=1):
        x = layers.Conv1D(width, kernel, padding="same", activation="relu", use_bias=False, name=f"conv{i}")(x)
        if i < len(KERNELS_1D):
            x = layers.AveragePooling1D(2, name=f"pool{i}")(x)
            x = layers.Dropout(dropout, name=f"drop{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", use_bias=False, name="dense1")(x)
    x = layers.Dropout(dropout, name="drop_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", use_bias=False, name="dense2")(x)
    return tf.keras.Model(inputs, outputs, name=f"escape_net_1d_w{width}")
