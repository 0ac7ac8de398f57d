"""The quantisation-clip-floor-shift (QCFS) activation of Bu et al., ICLR 2022.

    h(z) = lambda * clip(floor(z * L / lambda + phi) / L, 0, 1),   phi = 1/2

with a trainable clip level ``lambda`` per layer and a straight-through gradient for the floor
(the floor passes its input's gradient unchanged, as ``GradFloor`` in the authors' code). A
network trained with it converts to an integrate-and-fire SNN with threshold ``theta = lambda``
and initial membrane ``theta / 2`` whose expected conversion error is zero at any T (their
Theorem 2); at T = L the SNN can reproduce the ANN's L + 1 activation levels exactly.

`penalise_activity` adds an activation-sparsity penalty to a model's training loss: weight x the
mean of h / lambda over every hidden QCFS neuron, the rate (spikes per step) at which the converted
neuron fires, so the penalty lowers exactly what the SNN's synaptic operations are counted from. It
is a training-time attribute, not part of the saved model.

The layer is registered with Keras (``escape_snn>QCFS``), so any ``load_model`` of a QCFS
``.h5`` works once this module is imported; `CUSTOM_OBJECTS` names it explicitly too.
"""
import numpy as np

import tensorflow as tf

SHIFT = 0.5            # phi: rounds to the nearest level; makes the expected conversion error zero
INITIAL_THRESHOLD = 1.0


@tf.keras.utils.register_keras_serializable(package="escape_snn")
class QCFS(tf.keras.layers.Layer):
    """``lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1)``; ``lambda`` is the weight ``threshold``."""

    def __init__(self, levels=8, initial_threshold=INITIAL_THRESHOLD, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(levels, (int, np.integer)) or levels <= 0:
            raise ValueError(f"QCFS levels L={levels!r}: must be a positive integer")
        if not initial_threshold > 0:
            raise ValueError(f"QCFS initial_threshold={initial_threshold!r}: must be positive")
        self.levels = int(levels)
        self.initial_threshold = float(initial_threshold)
        self.penalty = 0.0   # loss weight per unit of summed h / lambda (`penalise_activity`); not saved

    def build(self, input_shape):
        self.threshold = self.add_weight(
            name="threshold", shape=(), trainable=True,
            initializer=tf.keras.initializers.Constant(self.initial_threshold))
        super().build(input_shape)

    def call(self, z):
        lam = tf.cast(self.threshold, z.dtype)
        steps = z * (self.levels / lam) + SHIFT
        steps = steps + tf.stop_gradient(tf.floor(steps) - steps)   # floor forward, identity backward
        rate = tf.clip_by_value(steps / self.levels, 0.0, 1.0)     # h / lambda
        if self.penalty:   # per sample: the summed rate of this layer's neurons, averaged over the batch
            self.add_loss(self.penalty * tf.reduce_mean(tf.reduce_sum(tf.reshape(rate, [tf.shape(z)[0], -1]), 1)))
        return lam * rate

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "initial_threshold": self.initial_threshold}


CUSTOM_OBJECTS = {"QCFS": QCFS, "escape_snn>QCFS": QCFS}


def layers_of(model):
    """The model's QCFS layers, in order."""
    return [layer for layer in model.layers if isinstance(layer, QCFS)]


def threshold_values(model):
    """``{QCFS layer name: lambda}``."""
    return {layer.name: float(layer.threshold.numpy()) for layer in layers_of(model)}


def penalise_activity(model, weight):
    """Make ``weight`` x the mean of h / lambda over all the model's QCFS neurons (each neuron counted
    once, so the large early layers weigh as much as their neuron counts) part of its training loss;
    ``weight`` 0 removes the penalty, leaving the model's computation exactly as without it."""
    found = layers_of(model)
    neurons = sum(int(np.prod(layer.output_shape[1:])) for layer in found)
    for layer in found:
        layer.penalty = float(weight) / neurons


def warm_start(model, source, x):
    """Copy a trained ReLU network's weights into the QCFS ``model`` (layers matched by name), then
    set its lambdas from ``x`` (`initialise_thresholds`). Returns ``{QCFS layer name: lambda}``."""
    for layer in source.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return initialise_thresholds(model, x)


def initialise_thresholds(model, x, percentile=99.9):
    """Set every lambda, layer by layer, to a high percentile of the activation's input on ``x``.

    Without batch normalisation the pre-activation scale of ESCAPE-NET is far from the paper's
    initial lambda (8, for BN networks): a lambda much larger than the activations would round
    them all to zero, a much smaller one would clip them all (the conversion literature's
    99.9th percentile, Rueckauer et al. 2017). Each layer is measured with the lambdas before it
    already set, so it sees the quantised input it will train on.
    Returns ``{QCFS layer name: lambda}``.
    """
    found = {}
    for layer in layers_of(model):
        probe = tf.keras.Model(model.inputs, layer.input)
        z = np.asarray(probe.predict(x, batch_size=128, verbose=0))
        positive = z[z > 0]
        value = float(np.percentile(positive, percentile)) if positive.size else INITIAL_THRESHOLD
        layer.threshold.assign(value)
        found[layer.name] = value
    return found


def twin(model, levels):
    """The QCFS network of a trained ReLU ``model``, built from the model itself (any functional graph):
    every layer in the same order and wiring, weights copied, but each hidden ReLU replaced by QCFS
    with L = ``levels`` (lambda at `INITIAL_THRESHOLD`; `initialise_thresholds` sets it from data):

    - a layer with a ``relu`` activation (Conv2D, Dense) keeps its name with a linear activation and is
      followed by ``QCFS`` named ``<name>_qcfs``: the form `pipeline.network.describe` absorbs;
    - a ReLU layer (``Activation("relu")``, plain ``ReLU()``), as a canonical model keeps after an
      ``Add``, becomes ``QCFS`` named ``<name>_qcfs`` in its place: the sum is clipped and quantised
      like every other hidden value, as Bu et al. do after the residual additions of their ResNets.

    A layer whose output is a model output (the readout) keeps its activation. Layers are matched by
    name (`warm_start` copies by name). Refuses a model that already has QCFS layers (ValueError).
    """
    import tensorflow as tf
    keras = tf.keras.layers
    if layers_of(model):
        raise ValueError(f"model {model.name!r} already has QCFS layers")
    readouts = {id(tensor._keras_history.layer) for tensor in model.outputs}
    names = {layer.name for layer in model.layers}

    def qcfs_after(name):
        new = f"{name}_qcfs"
        while new in names:   # a user's layer already has that name
            new += "_"
        names.add(new)
        return QCFS(levels, name=new)

    values = {}   # id of a source KerasTensor -> the twin's tensor

    def inputs_of(node):
        found = [values[id(t)] for t in tf.nest.flatten(node.input_tensors)]
        return found if isinstance(node.input_tensors, (list, tuple)) else found[0]

    inputs = []
    for tensor in model.inputs:
        values[id(tensor)] = tf.keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor._keras_history.layer.name)
        inputs.append(values[id(tensor)])
    built = []
    for layer in model.layers:
        if type(layer) is keras.InputLayer:
            continue
        node = next(node for node in layer.inbound_nodes
                    if all(id(t) in values for t in tf.nest.flatten(node.input_tensors)))
        config = layer.get_config()
        relu_layer = (type(layer) is keras.Activation and config["activation"] == "relu") or (
            type(layer) is keras.ReLU and config["max_value"] is None and not config["negative_slope"]
            and not config["threshold"])
        hidden = id(layer) not in readouts
        if relu_layer and hidden:
            output = qcfs_after(layer.name)(inputs_of(node))
        else:
            relu = hidden and getattr(getattr(layer, "activation", None), "__name__", None) == "relu"
            if relu:
                config["activation"] = "linear"
            clone = type(layer).from_config(config)
            output = clone(inputs_of(node))
            built.append((clone, layer.get_weights()))
            if relu:
                output = qcfs_after(layer.name)(output)
        for source, new in zip(tf.nest.flatten(node.output_tensors), tf.nest.flatten(output)):
            values[id(source)] = new
    for clone, weights in built:
        clone.set_weights(weights)
    outputs = [values[id(t)] for t in model.outputs]
    return tf.keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=f"{model.name}_qcfs")
