"""95 % intervals for what a comparison reports: proportions (Wilson) and correlations (Fisher z).

Wilson's score interval, not the normal approximation: with the tens of samples a spiking
simulator can afford, accuracies and agreements sit near 0 or 1, where p ± 1.96·sqrt(p(1-p)/n)
leaves [0, 1] or collapses to a point.

A per-layer rate correlation pools thousands of neurons of the same samples; they are not
independent draws, so the textbook Fisher interval with n = neurons would be far too narrow.
`correlation_interval` treats the samples as the independent units instead: one r per sample,
their Fisher z-transforms averaged, a t interval on that mean, transformed back.
"""
import math

import numpy as np

Z95 = 1.959963984540054


def wilson(successes, n, z=Z95):
    """(low, high) of the Wilson score interval of successes / n; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def scored(name, predictions, reference):
    """``{name: the fraction of predictions equal to reference, name_interval: [lo, hi]}`` (Wilson 95 %)."""
    hits = np.asarray(predictions).ravel() == np.asarray(reference).ravel()
    return {name: float(hits.mean()), f"{name}_interval": list(wilson(int(hits.sum()), hits.size))}


def correlation_interval(per_sample_r):
    """{"mean", "interval": [lo, hi], "n"}: the mean of per-sample correlations in Fisher z, with a 95 %
    t interval. Samples whose r is undefined (None or NaN: a constant rate vector) are left out; n counts
    those used. The mean is None without any, the interval None with fewer than 2.
    """
    from scipy import stats
    r = np.asarray([v for v in per_sample_r if v is not None and np.isfinite(v)], float)
    if not r.size:
        return {"mean": None, "interval": None, "n": 0}
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    mean = float(np.tanh(z.mean()))
    if r.size < 2:
        return {"mean": mean, "interval": None, "n": 1}
    half = stats.t.ppf(0.975, r.size - 1) * z.std(ddof=1) / math.sqrt(r.size)
    return {"mean": mean, "interval": [float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))],
            "n": int(r.size)}
