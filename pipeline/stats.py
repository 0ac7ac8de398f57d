"""Uncertainty of accuracies: Wilson intervals, exact McNemar tests, per-sample predictions in JSON.

An accuracy measured on N samples is a proportion k/N; at the default N = 100 one sample is one
percentage point, so every accuracy a result reports carries N and its 95 % Wilson score interval
(`interval`, good at k = 0 or k = N where the normal approximation collapses). Two classifiers
scored on the same samples are compared by their discordant pairs (`mcnemar`, exact two-sided
binomial): the paired test sees differences that two overlapping intervals hide, and says when an
"equal" accuracy cannot be told apart from a few points of difference; `paired_difference` gives
the difference of the two accuracies with its paired interval (a non-inferiority decision reads its
lower bound). Results keep each sample's final prediction (`encode_predictions`, one character per
sample) so a later comparison can pair any two runs on the same labels. NumPy only: the report reads these without TensorFlow.
"""
import math
from dataclasses import dataclass

import numpy as np

from pipeline import UserError

Z95 = 1.959963984540054          # the standard normal's 97.5th percentile: a two-sided 95 % interval
SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"   # class k is SYMBOLS[k] in an encoded string
UNDECIDED = "-"                                      # prediction -1: no output spike yet


def wilson(k, n, z=Z95):
    """(lo, hi): the Wilson score interval of k successes in n trials."""
    k, n = int(k), int(n)
    if n <= 0:
        raise UserError(f"an accuracy needs at least one sample (got N={n})")
    if not 0 <= k <= n:
        raise UserError(f"{k} correct of {n} samples is not a proportion")
    p, z2 = k / n, z * z
    center = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(n * p * (1 - p) + z2 / 4)
    return max(0.0, center - half), min(1.0, center + half)


def interval(accuracy, n):
    """[lo, hi] of an accuracy measured on n samples (k = accuracy x n, rounded), for JSON."""
    if n is None or int(n) <= 0:
        raise UserError(f"an accuracy needs at least one sample (got N={n})")
    return list(wilson(round(float(accuracy) * int(n)), n))


def scored(name, predictions, labels):
    """``{name: accuracy, name_interval: [lo, hi]}`` of predictions against labels (undecided = wrong)."""
    predictions, labels = _pair(predictions, labels)
    accuracy = float(np.mean(predictions == labels))
    return {name: accuracy, f"{name}_interval": interval(accuracy, len(labels))}


def ann_scores(predictions, labels, num_samples):
    """The ANN's accuracy on the first ``num_samples`` test samples (those an SNN simulated) and on
    the whole test set, each with its interval: ``ann_accuracy``, ``ann_accuracy_test``,
    ``num_test_samples``."""
    predictions, labels = _pair(predictions, labels)
    return {**scored("ann_accuracy", predictions[:num_samples], labels[:num_samples]),
            **scored("ann_accuracy_test", predictions, labels), "num_test_samples": len(labels)}


def with_intervals(record, names, n):
    """``record`` with ``name_interval`` beside each accuracy ``name`` it holds (measured on n samples)."""
    return {**record, **{f"{name}_interval": interval(record[name], n) for name in names
                         if record.get(name) is not None}}


def bounds(record, names, n):
    """``{name_lo, name_hi}`` for CSV columns: each accuracy's stored interval, else computed from it and n."""
    found = {}
    for name in names:
        lo, hi = record.get(f"{name}_interval") or interval(record[name], n)
        found.update({f"{name}_lo": lo, f"{name}_hi": hi})
    return found


@dataclass(frozen=True)
class Mcnemar:
    """Exact McNemar test of two classifiers on the same samples.

    ``a_only``: samples only A gets right; ``b_only``: only B. ``p_value``: two-sided exact
    binomial test of a_only against Binomial(a_only + b_only, 1/2); 1 when they never disagree.
    """
    a_only: int
    b_only: int
    p_value: float


def mcnemar(correct_a, correct_b):
    """The exact McNemar test of two per-sample correctness vectors (same samples, same order)."""
    a, b = _pair(np.asarray(correct_a, bool), np.asarray(correct_b, bool))
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    discordant = a_only + b_only
    tail = sum(math.comb(discordant, i) for i in range(min(a_only, b_only) + 1))
    return Mcnemar(a_only, b_only, min(1.0, 2 * tail / 2 ** discordant))


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of A minus accuracy of B on the same ``n`` samples, with its 95 % interval [lo, hi].

    ``a_only``/``b_only``: the discordant pairs (samples only A, only B gets right).
    """
    difference: float
    lo: float
    hi: float
    n: int
    a_only: int
    b_only: int


def paired_difference(correct_a, correct_b, z=Z95):
    """A's accuracy minus B's on the same samples, with Newcombe's hybrid score interval for paired
    proportions (Newcombe 1998, "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Stat. Med. 17:2635-2650, method 10, without continuity correction).

    The interval combines both accuracies' Wilson intervals, corrected for their correlation phi over
    the 2x2 table (both right ``both``, only A ``a_only``, only B ``b_only``, neither ``neither``):
    lo = d - sqrt((p_a - l_a)^2 - 2 phi (p_a - l_a)(u_b - p_b) + (u_b - p_b)^2), hi symmetrically.
    Unlike the Wald interval on per-sample differences (d +- z sqrt((a_only + b_only) - n d^2) / n) it
    does not collapse to a point when the two never disagree, and keeps its coverage when the
    discordant pairs are few: the case of an SNN converted from its ANN.
    """
    a, b = _pair(np.asarray(correct_a, bool), np.asarray(correct_b, bool))
    n = a.size
    both, a_only, b_only = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    neither = n - both - a_only - b_only
    p_a, p_b = (both + a_only) / n, (both + b_only) / n
    (l_a, u_a), (l_b, u_b) = wilson(both + a_only, n, z), wilson(both + b_only, n, z)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = (both * neither - a_only * b_only) / math.sqrt(margins) if margins else 0.0
    d = p_a - p_b
    lower = math.sqrt(max(0.0, (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2))
    upper = math.sqrt(max(0.0, (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2))
    return PairedDifference(d, max(-1.0, d - lower), min(1.0, d + upper), n, a_only, b_only)


def paired(name_a, predictions_a, name_b, predictions_b, labels):
    """``{a_only, b_only, p_value}`` with the classifiers' names (``snn_only``, ``ann_only``), for JSON."""
    labels = np.asarray(labels)
    test = mcnemar(np.asarray(predictions_a) == labels, np.asarray(predictions_b) == labels)
    return {f"{name_a}_only": test.a_only, f"{name_b}_only": test.b_only, "p_value": test.p_value}


def encode_predictions(predictions):
    """Per-sample classes for JSON: one character each (class k = SYMBOLS[k], -1 = "-"), or a list
    of ints when a class is beyond SYMBOLS."""
    values = np.asarray(predictions).astype(int).ravel()
    if values.size and (values.min() < -1 or values.max() >= len(SYMBOLS)):
        return values.tolist()
    return "".join(UNDECIDED if v < 0 else SYMBOLS[v] for v in values)


def decode_predictions(encoded):
    """The int array `encode_predictions` wrote (-1 = undecided)."""
    if isinstance(encoded, str):
        try:
            return np.array([-1 if c == UNDECIDED else SYMBOLS.index(c) for c in encoded], dtype=int)
        except ValueError:
            raise UserError(f"not an encoded prediction string: {encoded[:20]!r}") from None
    return np.asarray(encoded, dtype=int)


def comparison(labels, predictions, pairs=(("snn", "ann"),)):
    """What a result stores to pair its classifiers: ``predictions`` (labels and each named
    classifier's final predictions, encoded) and ``<a>_vs_<b>_mcnemar`` for each pair."""
    fields = {"predictions": {"labels": encode_predictions(labels),
                              **{name: encode_predictions(p) for name, p in predictions.items()}}}
    for a, b in pairs:
        fields[f"{a}_vs_{b}_mcnemar"] = paired(a, predictions[a], b, predictions[b], labels)
    return fields


def format_accuracy(accuracy, n, interval_=None):
    """'0.810 [0.72, 0.87] (N=100)': an accuracy with its 95 % interval and sample count.

    The interval is computed from accuracy and n when a (older) result did not store it.
    """
    if accuracy is None:
        return "—"
    if not n:
        return f"{accuracy:.3f} (N unknown)"
    lo, hi = interval_ if interval_ is not None else interval(accuracy, n)
    return f"{accuracy:.3f} [{lo:.2f}, {hi:.2f}] (N={int(n)})"


def format_recorded(record, name, n=None):
    """`format_accuracy` of ``record[name]`` with its stored interval, on ``n`` samples
    (default: the record's ``num_samples``); ``record``: a `pipeline.records` record or a dict."""
    n = record.get("num_samples") if n is None else n
    return format_accuracy(record.get(name), n, record.get(f"{name}_interval"))


def format_mcnemar(test):
    """'snn_only 3, ann_only 2, p = 1.00' of a stored ``*_mcnemar`` field; '—' when absent."""
    if not test:
        return "—"
    counts = ", ".join(f"{key} {value}" for key, value in test.items() if key != "p_value")
    return f"{counts}, p = {test['p_value']:.2g}"


def _pair(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise UserError(f"paired samples need two equal-length vectors (got shapes {a.shape} and {b.shape})")
    if a.size == 0:
        raise UserError("an accuracy needs at least one sample (got N=0)")
    return a, b


def correlation_interval(per_sample_r):
    """{"mean", "interval": [lo, hi], "n"}: the mean of per-sample correlations in Fisher z, with a 95 %
    t interval. The samples are the independent units: a layer's neurons within one sample are not
    independent draws, so a Fisher interval with n = neurons would be far too narrow. Samples whose r is
    undefined (None: the same constant rates in both, e.g. silent in both; or NaN) are left out; n counts
    those used. The mean is None without any, the interval None with fewer than 2.
    """
    from scipy import stats as scipy_stats
    r = np.asarray([v for v in per_sample_r if v is not None and np.isfinite(v)], float)
    if not r.size:
        return {"mean": None, "interval": None, "n": 0}
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    mean = float(np.tanh(z.mean()))
    if r.size < 2:
        return {"mean": mean, "interval": None, "n": 1}
    half = scipy_stats.t.ppf(0.975, r.size - 1) * z.std(ddof=1) / math.sqrt(r.size)
    return {"mean": mean, "interval": [float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))],
            "n": int(r.size)}


def across_seeds(values, confidence=0.95):
    """``{"mean", "std", "half_width", "interval": [lo, hi], "n"}`` of one quantity measured once per
    training seed: the mean with its two-sided Student t interval over the seeds (n - 1 degrees of
    freedom, sample standard deviation), so the spread between trainings, not only the test set's
    sampling noise (each seed's Wilson interval), is shown. With one seed: std, half width and
    interval None.
    """
    from scipy import stats as scipy_stats
    v = np.asarray([float(x) for x in values], float)
    if not v.size:
        raise UserError("an across-seed mean needs at least one seed")
    if not 0 < confidence < 1:
        raise UserError(f"confidence={confidence} must lie in (0, 1)")
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "std": None, "half_width": None, "interval": None, "n": 1}
    std = float(v.std(ddof=1))
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, v.size - 1) * std / math.sqrt(v.size))
    return {"mean": mean, "std": std, "half_width": half, "interval": [mean - half, mean + half], "n": int(v.size)}


def format_across(summary, digits=3):
    """'0.774 ± 0.012 [0.762, 0.786] (3 seeds)': an across-seed mean (`across_seeds`) with its t interval's
    half width and bounds; '0.774 (1 seed)' without one."""
    if summary["half_width"] is None:
        return f"{summary['mean']:.{digits}f} (1 seed)"
    lo, hi = summary["interval"]
    return (f"{summary['mean']:.{digits}f} ± {summary['half_width']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}] "
            f"({summary['n']} seeds)")
