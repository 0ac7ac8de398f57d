"""A Keras model written the way the Keras tutorials write one, trained on an .npz, saved for `MODEL=`.

    python tools/tutorial_model.py DATA.npz OUT.h5            # Conv2D-BN-ReLU-pool ... GAP-Dense-Softmax
    python tools/tutorial_model.py DATA.npz OUT.h5 --conv1d   # the same with Conv1D on (length, channels)
    python tools/tutorial_model.py DATA.npz OUT.h5 --max-pool # max pooling instead of average pooling
    python tools/tutorial_model.py DATA.npz OUT.h5 --model residual   # or plain, mobilenet, separable, conv1d-residual

Its batch norms, ReLU and Softmax layers and global pooling (and the graphs' depthwise and separable
convolutions, Add and ReLU after it) are what `pipeline/canonical.py` folds and maps (docs/layers.md), so
`make convert MODEL=OUT.h5 DATA=DATA.npz` converts the chains (the graphs are brought and described; which
stages run them: docs/layers.md). The data is read as the pipeline reads it (`pipeline.data.load_dataset`,
signed scaling): the model learns on what the stages give it. Adam (1e-2), batch 32, seeded; prints its
test accuracy.
"""
import argparse

import numpy as np


def build(input_shape, classes, width, conv1d, max_pool=False):
    """Conv -> BN -> ReLU -> AvgPool (or MaxPool) -> Conv (no bias) -> BN -> ReLU -> GlobalAvgPool -> Dense ->
    Softmax."""
    import tensorflow as tf
    L = tf.keras.layers
    conv, pool, gap = (L.Conv1D, L.MaxPooling1D if max_pool else L.AveragePooling1D, L.GlobalAveragePooling1D) \
        if conv1d else (L.Conv2D, L.MaxPooling2D if max_pool else L.AveragePooling2D, L.GlobalAveragePooling2D)
    return tf.keras.Sequential([L.Input(input_shape), conv(width, 3, padding="same"), L.BatchNormalization(),
                                L.Activation("relu"), pool(2), conv(2 * width, 3, padding="same", use_bias=False),
                                L.BatchNormalization(), L.ReLU(), gap(), L.Dense(classes), L.Softmax()])


def plain(input_shape, classes, width=8):
    """Conv2D(ReLU) -> AvgPool -> Conv2D(ReLU) -> AvgPool -> Flatten -> Dense(softmax): a chain with nothing to
    rewrite."""
    import tensorflow as tf
    L = tf.keras.layers
    return tf.keras.Sequential([L.Input(input_shape), L.Conv2D(width, 3, padding="same", activation="relu"),
                                L.AveragePooling2D(2), L.Conv2D(2 * width, 3, padding="same", activation="relu"),
                                L.AveragePooling2D(2), L.Flatten(), L.Dense(classes, activation="softmax")])


def _bn(L):
    """A batch norm whose moving statistics settle within the few hundred steps of a small dataset (momentum
    0.9; Keras' 0.99 leaves them far from the batches' after 10 epochs of 600 samples, and the model's
    inference accuracy at chance while its training accuracy is 1)."""
    return L.BatchNormalization(momentum=0.9)


def _conv_bn(L, x, filters, kernel, relu=True, **conv):
    """Conv (no bias: the BN's beta is the bias) -> BN (-> ReLU), as the Keras ResNet and MobileNet write it."""
    x = _bn(L)(L.Conv2D(filters, kernel, padding="same", use_bias=False, **conv)(x))
    return L.ReLU()(x) if relu else x


def _head(L, x, classes):
    return L.Softmax()(L.Dense(classes)(L.GlobalAveragePooling2D()(x)))


def residual(input_shape, classes, width=8):
    """A ResNet in small: a Conv-BN-ReLU stem, a basic block on the identity (Conv-BN-ReLU-Conv-BN, Add,
    ReLU), a strided block with a 1x1 conv + BN projection shortcut, GlobalAvgPool, Dense, Softmax."""
    import tensorflow as tf
    L = tf.keras.layers
    inputs = L.Input(input_shape)
    x = _conv_bn(L, inputs, width, 3)
    y = _conv_bn(L, _conv_bn(L, x, width, 3), width, 3, relu=False)
    x = L.ReLU()(L.Add()([y, x]))
    y = _conv_bn(L, _conv_bn(L, x, 2 * width, 3, strides=2), 2 * width, 3, relu=False)
    x = L.Activation("relu")(L.Add()([y, _conv_bn(L, x, 2 * width, 1, relu=False, strides=2)]))
    return tf.keras.Model(inputs, _head(L, x, classes), name="residual")


def mobilenet(input_shape, classes, width=8):
    """A MobileNet in small: a Conv-BN-ReLU stem; v1's strided block (ZeroPadding2D as `correct_pad` pads,
    DepthwiseConv2D-BN-ReLU, 1x1 Conv-BN-ReLU); v2's inverted residual (1x1 expand x2 -BN-ReLU,
    DepthwiseConv2D-BN-ReLU, linear 1x1 projection-BN, Add; ReLU in place of ReLU6, which is not mapped);
    GlobalAvgPool, Dense, Softmax."""
    import tensorflow as tf
    L = tf.keras.layers
    inputs = L.Input(input_shape)
    x = _conv_bn(L, inputs, width, 3)
    pad = tuple((0, 1 - size % 2) for size in input_shape[:2])     # 'same' for a 3x3 kernel at stride 2
    x = L.ReLU()(_bn(L)(L.DepthwiseConv2D(3, strides=2, use_bias=False)(L.ZeroPadding2D(pad)(x))))
    x = _conv_bn(L, x, 2 * width, 1)
    y = _conv_bn(L, x, 4 * width, 1)
    y = L.ReLU()(_bn(L)(L.DepthwiseConv2D(3, padding="same", use_bias=False)(y)))
    x = L.Add()([_conv_bn(L, y, 2 * width, 1, relu=False), x])
    return tf.keras.Model(inputs, _head(L, x, classes), name="mobilenet")


def separable(input_shape, classes, width=8):
    """SeparableConv2D-BN-ReLU, AvgPool, SeparableConv2D (depth multiplier 2)-BN-ReLU, GlobalAvgPool, Dense,
    Softmax (Xception's convolutions)."""
    import tensorflow as tf
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input(input_shape), L.SeparableConv2D(width, 3, padding="same", use_bias=False), _bn(L),
        L.ReLU(), L.AveragePooling2D(2), L.SeparableConv2D(2 * width, 3, padding="same", depth_multiplier=2,
                                                           use_bias=False),
        _bn(L), L.ReLU(), L.GlobalAveragePooling2D(), L.Dense(classes), L.Softmax()], name="separable")


def conv1d_residual(input_shape, classes, width=8):
    """On (length, channels): a Conv1D-BN-ReLU stem, a residual block (Conv1D-BN-ReLU-Conv1D-BN, Add, ReLU),
    GlobalAvgPool1D, Dense, Softmax."""
    import tensorflow as tf
    L = tf.keras.layers
    inputs = L.Input(input_shape)
    x = L.ReLU()(_bn(L)(L.Conv1D(width, 3, padding="same")(inputs)))
    y = L.ReLU()(_bn(L)(L.Conv1D(width, 3, padding="same")(x)))
    y = _bn(L)(L.Conv1D(width, 3, padding="same")(y))
    x = L.ReLU()(L.Add()([y, x]))
    return tf.keras.Model(inputs, L.Softmax()(L.Dense(classes)(L.GlobalAveragePooling1D()(x))), name="conv1d_residual")


GRAPHS = {"residual": residual, "mobilenet": mobilenet, "separable": separable, "conv1d-residual": conv1d_residual}
BUILDERS = {"plain": plain, **GRAPHS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an .npz the pipeline reads (x_train, y_train, x_test, y_test)")
    parser.add_argument("out", help="the .h5 to write")
    parser.add_argument("--model", choices=("tutorial",) + tuple(BUILDERS), default="tutorial",
                        help="the tutorial chain (default), a plain Conv2D/ReLU/AvgPool/Dense chain, or a graph: a "
                             "ResNet, MobileNet or separable block, a "
                             "Conv1D residual block (x of (n, L, C))")
    parser.add_argument("--conv1d", action="store_true", help="Conv1D over (length, channels): x of (n, L, C)")
    parser.add_argument("--max-pool", action="store_true", help="max pooling instead of average pooling")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
    import tensorflow as tf
    from pipeline import data
    dataset = data.load_dataset(args.data)
    x_train, x_test = np.asarray(dataset.x_train), np.asarray(dataset.x_test)
    if args.conv1d or args.model == "conv1d-residual":    # (L, C) samples: the loader reads (n, L, C) as (L, C, 1);
        x_train, x_test = (x[:, 0] if x.shape[1] == 1 else x[..., 0] for x in (x_train, x_test))  # (1, L, C) too
    tf.keras.utils.set_random_seed(args.seed)
    model = (build(x_train.shape[1:], dataset.num_classes, args.width, args.conv1d, args.max_pool)
             if args.model == "tutorial" else BUILDERS[args.model](x_train.shape[1:], dataset.num_classes, args.width))
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, dataset.y_train, batch_size=32, epochs=args.epochs, verbose=0)
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == dataset.y_test))
    model.save(args.out, save_format="h5")
    print(f"{args.out}: test accuracy {accuracy:.3f} on {len(x_test)} samples")


if __name__ == "__main__":
    main()
