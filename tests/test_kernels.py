"""The fast path's membrane scan against the same dynamics in TF ops, step by step (the event-driven
currents are tested through the engine's layers in test_engine.py)."""
import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf

from pipeline.engine import kernels


def reference_scan(current, constant, T, thresholds, leaks, initial, pools):
    """The same dynamics with TF ops, step by step: ``u = leak * v + I``, spike at ``u >= theta``,
    reset by subtraction; a pool stage's input is ``tf.nn.avg_pool2d`` of the spikes below."""
    batch = current.shape[0 if constant else 1]
    v, totals, counts, out = None, None, np.zeros((T, len(thresholds), batch), np.float32), []
    for t in range(T):
        h = tf.constant(current if constant else current[t])
        new_v = []
        for k, (theta, leak) in enumerate(zip(thresholds, leaks)):
            if k:
                size, stride, padding = pools[k - 1]
                h = tf.nn.avg_pool2d(h, size, stride, padding)
            previous = tf.fill(tf.shape(h), np.float32(initial[k])) if v is None else v[k]
            u = leak * previous + h
            spikes = tf.cast(u >= theta, tf.float32)
            new_v.append(u - spikes * theta)
            counts[t, k] = tf.reduce_sum(tf.reshape(spikes, [batch, -1]), axis=1).numpy()
            totals = [0] * len(thresholds) if totals is None else totals
            totals[k] = totals[k] + spikes.numpy()
            h = spikes
        v = new_v
        out.append(h.numpy() > 0)
    return np.stack(out), totals, counts


@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize("leak", [1.0, 0.9])
def test_scan_is_the_step_by_step_dynamics(constant, leak):
    # A 'same' pool on odd sides averages over partial windows; v(0) = theta / 2.
    rng = np.random.default_rng(2)
    T, shape = 12, (3, 7, 9, 4)
    current = rng.random(shape if constant else (T,) + shape).astype(np.float32) * 0.6 - 0.1
    thresholds = np.array([0.7, 1.0, 1.0], np.float32)
    pools = [((2, 2), (2, 2), "SAME"), ((3, 2), (1, 2), "VALID")]
    geometry = [(2, 2, 2, 2, 0, 0, 4, 5), (3, 2, 1, 2, 0, 0, 2, 2)]
    initial = thresholds / 2
    want = reference_scan(current, constant, T, thresholds, [leak] * 3, initial, pools)
    got = kernels.scan(current, constant, T, thresholds, [leak] * 3, initial, geometry)
    np.testing.assert_array_equal(got[0], want[0])
    for got_totals, want_totals in zip(got[1], want[1]):
        np.testing.assert_array_equal(got_totals, want_totals)
    np.testing.assert_array_equal(got[2], want[2])
    assert want[2][:, 2].sum() > 0          # spikes reach the last pool


def test_scan_of_a_dense_layer():
    rng = np.random.default_rng(3)
    current = rng.random((10, 2, 16)).astype(np.float32)
    spikes, totals, counts = kernels.scan(current, False, 10, [1.5], [1.0], [0.0], [])
    want = reference_scan(current, False, 10, [1.5], [1.0], [0.0], [])
    np.testing.assert_array_equal(spikes, want[0])
    np.testing.assert_array_equal(totals[0], want[1][0])
    assert spikes.shape == (10, 2, 16)
