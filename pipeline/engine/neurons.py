"""The engine's neuron: the integrate-and-fire step (`if_step`), the Heaviside spike and reset by subtraction.

`if_step` is the one update every neuron of the engine makes (STDB swaps the spike's gradient through
``spike_fn``); `pipeline.engine.kernels.scan` repeats its float32 operations for the fast path.
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple

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


class IFState(NamedTuple):
    """What a layer of integrate-and-fire neurons carries from one step to the next: the membranes,
    and (for a spike function that uses it, `Heaviside.uses_history`) the step of each neuron's last spike."""
    v: tf.Tensor
    last: tf.Tensor | None = None


@dataclass(frozen=True)
class IFParams:
    """A layer's neuron parameters for `if_step`: threshold and multiplicative leak (tensors or floats),
    the spike function, and whether threshold and leak get gradients (else they enter as constants, so
    backpropagation through time keeps nothing for them)."""
    threshold: tf.Tensor | float
    leak: tf.Tensor | float = 1.0
    spike_fn: Callable = heaviside
    learn_threshold: bool = False
    learn_leak: bool = False


def if_step(current, state, params, t=0.0):
    """One step of integrate-and-fire neurons: ``v = leak * v + I``, a spike where ``v >= theta``
    (``params.spike_fn``), reset by subtraction. ``t``: the step's index (float), for spike functions
    that use the time since the last spike. Returns ``(spikes, new state)``; pure: nothing is changed."""
    decayed = params.leak * state.v if params.learn_leak else _scale(state.v, params.leak)
    v = decayed + current
    since = None if state.last is None else t - state.last
    spikes = params.spike_fn(v, params.threshold, since)
    last = None if state.last is None else tf.where(spikes > 0, t, state.last)
    return spikes, IFState(RESET(v, spikes, params.threshold, params.learn_threshold), last)
