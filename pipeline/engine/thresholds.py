"""Conversion thresholds: Rathi et al.'s calibration on the engine, and SNN Toolbox's normalisation."""
import numpy as np
import tensorflow as tf

from pipeline import UserError, network
from pipeline.engine.coding import batch_key, padded_batch
from pipeline.engine.simulator import Recording, progress_bar


def calibrate_thresholds(network, x, percentile=100.0, scale=0.7, timesteps=None, progress=False):
    """Rathi et al.'s conversion thresholds (ICLR 2020, hybrid conversion, ``find_threshold``).

    Layer by layer (every node with neurons of its own, `network.Network.calibrated`: weighted
    layers and residual adds, in the graph's order), the spiking network runs on ``x`` (training
    data) with the thresholds found so far; the new layer's threshold is the maximum of its input
    current over samples, neurons and timesteps. Only after all layers are found is every threshold
    multiplied by ``scale`` (0.7 in the reference code, which lets a short simulation fire more).
    ``percentile`` < 100 takes that percentile of the per-sample, per-step maxima instead of the
    overall maximum.
    The run uses the network's coding and pooling with leak 1, as the reference does; the
    readout layer gets a threshold too (used only by the spike-count readout).
    Returns ``{layer name: threshold}``; the network itself is not changed.
    """
    if not 0.0 < percentile <= 100.0:
        raise UserError(f"percentile={percentile!r}: must lie in (0, 100]")
    if scale <= 0:
        raise UserError(f"threshold scale={scale!r}: must be positive")
    changes = {"leak": 1.0, "initial_membrane": 0.0}
    if timesteps is not None:
        changes["timesteps"] = timesteps
    probe_net = network.with_settings(**changes)
    x = np.asarray(x, np.float32)
    found = {}
    size = probe_net.settings.batch_size
    for k, node in enumerate(progress_bar(probe_net.graph.calibrated(), progress, "thresholds")):
        name = node.name
        peaks = []
        for batch, start in enumerate(range(0, len(x), size)):
            xb, n = padded_batch(x[start:start + size], size)
            out = probe_net.run(tf.constant(xb), batch_key(probe_net.settings.seed, batch),
                                record=Recording(peaks=True))
            peaks.append(out["peaks"].numpy()[:, k, :n].ravel())
        peak = float(np.percentile(np.concatenate(peaks), percentile))
        if not peak > 0:
            raise UserError(f"layer {name!r} received no positive input current on the calibration data; "
                            "cannot set its threshold (more samples or timesteps?)")
        found[name] = peak
        probe_net.thresholds[name].assign(peak)
    return {name: value * scale for name, value in found.items()}


def thresholds_from_scale_factors(model, scale_factors, softmax_to_relu=True):
    """Thresholds equivalent to SNN Toolbox's data-based normalisation (Rueckauer et al. 2017).

    The toolbox (``conversion/utils.py: normalize_parameters``) scales each weighted layer k to
    ``W_k * lambda_{k-1} / lambda_k`` (bias ``b_k / lambda_k``) and fires at threshold 1, where
    ``lambda_k`` is the 99.9th percentile (config ``percentile``) of the layer's non-zero ANN
    activations and ``lambda_0`` the input's entry (1). With unit spikes and the original weights
    that is threshold ``lambda_k / lambda_{k-1}``; the softmax readout keeps scale 1 unless
    ``softmax_to_relu``. Pools stay at threshold 1 in both. ``scale_factors`` is the toolbox's
    ``<log dir>/normalization/<percentile>.json``: input first, then the weighted layers in order
    (parsed names like ``01Conv2D_56x100x64``), matched here by position. Biases break the
    equivalence (the toolbox's bias is not scaled by lambda_{k-1}), so a model with non-zero
    biases is refused: simulate the toolbox's normalised model with thresholds 1 instead.
    """
    weighted = network.describe(model).weighted
    entries = list(scale_factors.items())
    if len(entries) != len(weighted) + 1:
        raise UserError(f"scale factors list {len(entries)} entries ({', '.join(k for k, _ in entries)}); "
                        f"expected the input plus {len(weighted)} weighted layers of {model.name!r}")
    for stage in weighted:
        if stage.use_bias and np.any(stage.layer.bias.numpy() != 0):
            raise UserError(f"layer {stage.name!r} has a bias: toolbox thresholds need a bias-free model "
                            "(simulate the toolbox's normalised model with threshold 1 instead)")
    previous = float(entries[0][1])
    thresholds = {}
    for stage, (_, value) in zip(weighted, entries[1:]):
        activation = getattr(stage.layer.activation, "__name__", "")
        value = 1.0 if activation == "softmax" and not softmax_to_relu else float(value)
        thresholds[stage.name] = value / previous
        previous = value
    return thresholds


def toolbox_normalised_model(model, scale_factors, softmax_to_relu=True):
    """A copy of ``model`` with SNN Toolbox's normalised weights, bit for bit (NumPy 1.x arithmetic).

    ``normalize_parameters`` computes ``W * lambda_in / lambda`` and ``b / lambda`` in float32
    (NumPy 1.x casts the Python-float factors to the array's float32); the readout keeps
    ``lambda = 1`` when it stays softmax. Simulated with every threshold 1 and the INI-compatible
    settings, this is the toolbox's own network, as `thresholds_from_scale_factors` is in theory.
    """
    weighted = network.describe(model).weighted
    entries = list(scale_factors.values())
    if len(entries) != len(weighted) + 1:
        raise UserError(f"scale factors list {len(entries)} entries; expected the input plus "
                        f"{len(weighted)} weighted layers of {model.name!r}")
    normalised = tf.keras.models.clone_model(model)
    normalised.set_weights(model.get_weights())
    previous = np.float32(entries[0])
    for stage, value in zip(weighted, entries[1:]):
        softmax = getattr(stage.layer.activation, "__name__", "") == "softmax"
        scale = np.float32(1.0 if softmax and not softmax_to_relu else value)
        layer = normalised.get_layer(stage.name)
        params = layer.get_weights()
        params[0] = params[0] * previous / scale
        if len(params) > 1:
            params[1] = params[1] / scale
        layer.set_weights(params)
        previous = np.float32(value)
    return normalised
