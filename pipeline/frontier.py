"""The accuracy-energy frontier's bookkeeping (no TensorFlow): cell keys, choices, the Pareto front.

A cell is one network (method), input coding with its parameter (rate gain, delta step), T and
sample set (validation or test) simulated once; its JSON is named by a hash of everything it
depends on (`cell_key`), so a rerun finds it and a changed model, threshold, coding, T, sample set
or energy preset misses it. Choices are made on the validation split only (`choose_parameter`,
`choose_point`), each on the paired difference to the ANN on the same samples with a 1-pp
non-inferiority margin (`non_inferiority`); the test set then gives the reported numbers of exactly
those choices.
"""
import hashlib
import json

import numpy as np

from pipeline import stats

WITHIN_PP = 1.0     # "as good as the ANN": the non-inferiority margin, in percentage points


def cell_key(**depends_on):
    """A short, stable name for a cell: the sha256 of its dependencies as sorted JSON."""
    text = json.dumps(depends_on, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def samples_digest(*arrays):
    """sha256 of arrays' bytes (the samples and labels a cell was measured on)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def non_inferiority(correct, reference_correct, margin_pp=WITHIN_PP):
    """``{"difference", "interval", "n", "non_inferior"}``: the network's accuracy minus the reference's
    (the ANN's) on the same samples, its paired 95 % interval (`stats.paired_difference`), and whether
    the interval's lower bound lies above ``-margin_pp`` points (non-inferior at that margin).

    Deciding on the paired difference, not on two accuracies each measured with its own noise, uses
    that both saw the same samples: only the samples where they disagree move the difference.
    """
    d = stats.paired_difference(correct, reference_correct)
    return {"difference": d.difference, "interval": [d.lo, d.hi], "n": d.n,
            "non_inferior": bool(d.lo > -margin_pp / 100.0)}


def choose_parameter(candidates, reference_correct, margin_pp=WITHIN_PP):
    """The coding parameter of one (coding, method, T) from its validation cells.

    ``candidates``: (parameter, per-sample correctness, normalised energy), each on the samples of
    ``reference_correct`` (the ANN's correctness there). The cheapest candidate non-inferior to the
    ANN (`non_inferiority`); when none is, the one closest to the ANN (largest paired difference, then
    the cheaper), so a row still shows its best try.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    tested = [(c, non_inferiority(c[1], reference_correct, margin_pp)) for c in candidates]
    good = [(c, t) for c, t in tested if t["non_inferior"]]
    if good:
        return min(good, key=lambda ct: (ct[0][2], -ct[1]["difference"]))[0][0]
    return min(tested, key=lambda ct: (-ct[1]["difference"], ct[0][2]))[0][0]


def choose_point(rows, correct, reference_correct, margin_pp=WITHIN_PP):
    """The cheapest row (``normalized_energy``) non-inferior to the reference (`non_inferiority`), None
    if none; ``correct``: each row's per-sample correctness on the samples of ``reference_correct``."""
    good = [(r, non_inferiority(c, reference_correct, margin_pp)) for r, c in zip(rows, correct)]
    good = [(r, t) for r, t in good if t["non_inferior"]]
    return min(good, key=lambda rt: (rt[0]["normalized_energy"], -rt[1]["difference"]), default=(None,))[0]


def pareto_front(rows, accuracy="snn_accuracy", energy="normalized_energy"):
    """Rows no other row beats (at most as much energy and at least the accuracy, one strictly),
    sorted by energy."""
    def dominated(r):
        return any(o[energy] <= r[energy] and o[accuracy] >= r[accuracy]
                   and (o[energy] < r[energy] or o[accuracy] > r[accuracy]) for o in rows)
    return sorted((r for r in rows if not dominated(r)), key=lambda r: (r[energy], -r[accuracy]))
