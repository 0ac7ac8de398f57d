"""Post-training weight quantisation (``QUANT=8``): symmetric, per output channel, biases kept float32.

Each Conv2D and Dense kernel is quantised channel by channel (its last axis): with q_max = 2^(b-1) - 1,
scale = max|w| / q_max over the channel and q = round(w / scale), clipped to [-q_max, q_max] (symmetric:
no zero point, so 0 stays 0 and a pruned weight stays pruned). Biases, the QCFS clip levels and the
thresholds stay float32: a bias is added once per neuron and step, not per synapse, and an integer
accelerator keeps it at the accumulator's width anyway.

The model keeps the kernel as q x scale in float32, the very numbers Keras, the engine and the NIR
export then use. The scale is rounded up to 25 - b significant bits (a relative change below
2^(b-25), e.g. 6e-6 at 8 bits) so that q x scale, a (b-1)-bit integer times it, fits float32's 24-bit
significand: each stored weight is exactly q x scale, with no rounding, and `integer_weights` recovers q
and the scale from the stored kernel alone (the largest |q| of a non-zero channel is q_max).
"""
import numpy as np

from pipeline import UserError

WIDTHS = (2, 3, 4, 5, 6, 7, 8)   # bits; 0 means float (not quantised)


def check_bits(bits):
    """``bits`` as an int, 0 (float) or 2..8 (``QUANT=``), or one line saying why not."""
    if int(bits) != bits or not (bits == 0 or int(bits) in WIDTHS):
        raise UserError(f"QUANT={bits}: the weight width in bits must be 0 (float, not quantised) or 2 to 8")
    return int(bits)


def q_max(bits):
    """The largest integer weight of a symmetric ``bits``-bit code: 2^(bits-1) - 1 (127 at 8 bits)."""
    return 2 ** (check_bits(bits) - 1) - 1


def _round_up(values, significant_bits):
    """``values`` (> 0, float64) rounded up to ``significant_bits`` significant bits."""
    mantissa, exponent = np.frexp(values)
    return np.ldexp(np.ceil(mantissa * 2.0 ** significant_bits) / 2.0 ** significant_bits, exponent)


def quantise_kernel(kernel, bits):
    """(q as int32, per-output-channel float32 scale) of ``kernel`` (..., C_out) at ``bits`` bits.
    An all-zero channel gets scale 1 (its q are 0)."""
    w = np.asarray(kernel, np.float64)
    peak = np.max(np.abs(w.reshape(-1, w.shape[-1])), axis=0)
    scale = _round_up(np.where(peak > 0, peak / q_max(bits), 1.0), 25 - bits)
    q = np.clip(np.rint(w / scale), -q_max(bits), q_max(bits))
    return q.astype(np.int32), scale.astype(np.float32)


def dequantised(q, scale):
    """The float32 kernel the model holds: q x scale, exact (see the module's docstring)."""
    return (np.asarray(q, np.float64) * np.asarray(scale, np.float64)).astype(np.float32)


def integer_weights(kernel, bits):
    """(q, scale) of a kernel already quantised to ``bits`` bits, recovered from the stored float32 values;
    a ValueError if the kernel is not exactly q x scale with |q| <= q_max."""
    q, scale = quantise_kernel(kernel, bits)
    if not np.array_equal(dequantised(q, scale), np.asarray(kernel, np.float32)):
        raise ValueError(f"the kernel is not quantised to {bits} bits (q x scale differs from it)")
    return q, scale


def quantise(model, bits):
    """Quantise every kernel of ``model`` in place (its layers with a ``kernel``: Conv2D, Dense);
    returns ``{layer name: [scale per output channel]}``."""
    scales = {}
    for layer in model.layers:
        if getattr(layer, "kernel", None) is None:
            continue
        weights = layer.get_weights()
        q, scale = quantise_kernel(weights[0], bits)
        layer.set_weights([dequantised(q, scale), *weights[1:]])
        scales[layer.name] = [float(s) for s in scale]
    return scales
