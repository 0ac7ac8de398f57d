"""The engine's neuron pieces: the Heaviside spike and reset by subtraction (STDB swaps the spike's gradient)."""
from dataclasses import dataclass

import tensorflow as tf

NEVER_FIRED = -1000.0   # "time of last spike" before any spike (Rathi et al.'s reference code)


@dataclass(frozen=True)
class SubtractiveReset:
    """Reset by subtraction: the residual above threshold is kept, so no input charge is lost
    (Rueckauer et al. 2017, Front. Neurosci. 11:682). The spike is a constant in the reset, as in
    Rathi et al.'s reference code; a learned threshold still gets its gradient through it, a
    fixed one makes the whole reset term constant (nothing kept for backpropagation)."""

    def __call__(self, v, spikes, threshold, learn_threshold=False):
        if learn_threshold:
            return v - tf.stop_gradient(spikes) * threshold
        return v - tf.stop_gradient(spikes * threshold)


@tf.custom_gradient
def _scale(x, factor):
    """``factor * x`` for a constant factor (a fixed leak, a dropout mask): the backward pass needs
    only the factor, so BPTT does not keep every step's ``x`` for a gradient nobody asked for."""
    return factor * x, lambda upstream: (upstream * factor, None)


@dataclass(frozen=True)
class Heaviside:
    """Spike when the membrane reaches the threshold: ``v >= theta`` (INI: ``mem >= v_thresh``).
    No gradient of its own; STDB wraps it with a surrogate (`pipeline.training.stdb.SpikeFunction`)."""
    uses_history = False   # needs no "time since the last spike"

    def __call__(self, v, threshold, since=None):
        return tf.cast(v >= threshold, v.dtype)


heaviside = Heaviside()
RESET = SubtractiveReset()
