"""A Keras model written the way the Keras tutorials write one, trained on an .npz, saved for `MODEL=`.

    python tools/tutorial_model.py DATA.npz OUT.h5            # Conv2D-BN-ReLU-pool ... GAP-Dense-Softmax
    python tools/tutorial_model.py DATA.npz OUT.h5 --conv1d   # the same with Conv1D on (length, channels)
    python tools/tutorial_model.py DATA.npz OUT.h5 --max-pool # max pooling instead of average pooling

Its batch norms, ReLU and Softmax layers and global pooling are what `pipeline/canonical.py` folds and
maps (docs/layers.md), so `make convert MODEL=OUT.h5 DATA=DATA.npz` converts it. The data is read as the
pipeline reads it (`pipeline.data.load_dataset`, signed scaling): the model learns on what the stages give
it. Adam (1e-2), batch 32, seeded; prints its test accuracy.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an .npz the pipeline reads (x_train, y_train, x_test, y_test)")
    parser.add_argument("out", help="the .h5 to write")
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
    if args.conv1d:    # the loader reads (n, L, C) as images (L, C, 1)
        x_train, x_test = x_train[..., 0], x_test[..., 0]
    tf.keras.utils.set_random_seed(args.seed)
    model = build(x_train.shape[1:], dataset.num_classes, args.width, args.conv1d, args.max_pool)
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, dataset.y_train, batch_size=32, epochs=args.epochs, verbose=0)
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == dataset.y_test))
    model.save(args.out, save_format="h5")
    print(f"{args.out}: test accuracy {accuracy:.3f} on {len(x_test)} samples")


if __name__ == "__main__":
    main()
