"""Signed input as two non-negative channels (ON/OFF), the way event sensors code it.

x⁺ = max(x, 0) and x⁻ = max(−x, 0) go in as two channels, and the first convolution's kernel W
becomes [W, −W] on the input-channel axis. Since W∗x = W∗x⁺ + (−W)∗x⁻ (a zero of the 'same'
padding splits into two zeros, a bias is added once as before), the split model computes exactly
the trained function, with no retraining, and every layer after the first convolution, its
weights and its activations are the trained model's. The toolbox's data-based normalisation
therefore finds the same activations and the same scale factors.

Why it lives in the toolbox library: only SNN Toolbox's simulators need it (brian2's input
neurons integrate a constant current, so a negative input never spikes; INI takes signed input
but must see the same network to be compared). The engine codes signed input itself, and a
dataset keeps one layout for training and every other stage; the split is made where a model
and its data are handed to the toolbox (`workspace.toolbox_paths`), from the trained model and
the RUN's signed data, and nowhere else.
"""
import numpy as np

from pipeline import UserError, results


def split_inputs(x):
    """(N, H, W, C) -> (N, H, W, 2C): [max(x, 0), max(-x, 0)] on the channel axis, same dtype."""
    x = np.asarray(x)
    return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=-1).astype(x.dtype, copy=False)


def first_convolution(model):
    """The one layer that reads the model's input; refused unless it is a Conv2D."""
    import tensorflow as tf
    consumers = [node.outbound_layer for node in model.layers[0].outbound_nodes] \
        if isinstance(model.layers[0], tf.keras.layers.InputLayer) else [model.layers[0]]
    if len(consumers) != 1 or not isinstance(consumers[0], tf.keras.layers.Conv2D):
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in consumers)
        raise UserError(f"ON/OFF input needs a model whose input feeds one Conv2D, {model.name}'s feeds {names}")
    return consumers[0]


def split_model(model):
    """A copy of `model` that takes ON/OFF input: the first Conv2D's kernel W becomes [W, -W]."""
    import tensorflow as tf
    conv = first_convolution(model)
    shape = model.input_shape[1:]
    inputs = tf.keras.Input(shape=(*shape[:-1], 2 * shape[-1]), name=model.layers[0].name)
    split = tf.keras.models.clone_model(model, input_tensors=inputs)
    for source in model.layers[1:]:
        weights = source.get_weights()
        if source is conv:
            weights[0] = np.concatenate([weights[0], -weights[0]], axis=2)
        split.get_layer(source.name).set_weights(weights)
    return split


def write_split_model(source_path, target_path):
    """`split_model` of the .h5 at `source_path`, saved (atomically) at `target_path` as the toolbox loads
    it: compiled with categorical cross-entropy, like the trained model."""
    from pipeline.training import ann
    split = split_model(ann.load(source_path))
    split.compile("sgd", "categorical_crossentropy", ["accuracy"])
    results.write_atomic_with(target_path, lambda tmp: split.save(tmp, save_format="h5"))
