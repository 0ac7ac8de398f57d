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
