"""Magnitude pruning with TensorFlow's own tool (tensorflow-model-optimization, `tfmot.sparsity.keras`).

A trained model's Conv2D and Dense kernels are wrapped in `prune_low_magnitude` with a
`PolynomialDecay` schedule (Zhu & Gupta 2017, "To prune, or not to prune"): the fraction of each
kernel set to zero, smallest magnitudes first, rises from 0 to the target over `RAMP_EPOCHS` epochs of
fine-tuning and is held there after; `UpdatePruningStep` advances the schedule each batch. Biases are
not pruned (tfmot's rule: they are few and each one feeds a whole channel). `strip` removes the
wrappers before saving: the result is a plain Conv2D/Dense model whose pruned weights are exact zeros,
so conversion, QCFS, STDB and the exports run it unchanged.
"""
import numpy as np

from pipeline import UserError

RAMP_EPOCHS = 2          # epochs over which the sparsity rises to its target
FINE_TUNE_EPOCHS = 4     # pruning fine-tune epochs; the best validation epoch after the ramp is kept
UPDATES_PER_EPOCH = 4    # mask recomputations per epoch during the ramp (each sorts every kernel's magnitudes)


def check_target(target):
    """``target`` as a float in [0, 1) (``PRUNE=``), or one line saying why not."""
    if not 0.0 <= float(target) < 1.0:
        raise UserError(f"PRUNE={target}: the fraction of each layer's weights set to zero must lie in [0, 1)")
    return float(target)


def schedule(target, steps_per_epoch):
    """The `PolynomialDecay` schedule reaching ``target`` at the end of the ramp (an update falls exactly on
    its last step, so the target is reached), and the frequency of its mask updates in steps."""
    import tensorflow_model_optimization as tfmot
    frequency = max(1, steps_per_epoch // UPDATES_PER_EPOCH)
    end = max(frequency, (RAMP_EPOCHS * steps_per_epoch // frequency) * frequency)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=check_target(target),
                                                begin_step=0, end_step=end, frequency=frequency)


def prunable(model, target, steps_per_epoch):
    """A copy of the trained ``model`` whose Conv2D and Dense layers are wrapped for pruning to ``target``
    (their weights copied from ``model``, other layers' weights, e.g. QCFS clip levels, too)."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    plan = schedule(target, steps_per_epoch)

    def wrap(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
            return tfmot.sparsity.keras.prune_low_magnitude(fresh, pruning_schedule=plan)
        return fresh

    copy = tf.keras.models.clone_model(model, clone_function=wrap)
    for old, new in zip(model.layers, copy.layers):
        if old.weights:
            getattr(new, "layer", new).set_weights(old.get_weights())
    return copy


def callbacks():
    """What `fit` needs to advance the schedule."""
    import tensorflow_model_optimization as tfmot
    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model):
    """The pruned ``model`` without its wrappers: plain layers whose pruned weights are zeros."""
    import tensorflow_model_optimization as tfmot
    return tfmot.sparsity.keras.strip_pruning(model)


def kernel_sparsity(model):
    """``{layer name: fraction of its kernel that is exactly zero}`` for every layer with a kernel."""
    return {layer.name: float(np.mean(layer.get_weights()[0] == 0)) for layer in model.layers
            if getattr(layer, "kernel", None) is not None}
