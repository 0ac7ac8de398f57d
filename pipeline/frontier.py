"""The accuracy-energy frontier's bookkeeping (no TensorFlow): cell keys, choices, the Pareto front.

A cell is one network (method), input coding with its parameter (rate gain, delta step), T and
sample set (validation or test) simulated once; its JSON is named by a hash of everything it
depends on (`cell_key`), so a rerun finds it and a changed model, threshold, coding, T, sample set
or energy preset misses it. Choices are made on the validation split only (`choose_parameter`,
`choose_point`); the test set then gives the reported numbers of exactly those choices.
"""
import hashlib
import json

import numpy as np

WITHIN_PP = 1.0     # "as good as the ANN": within this many percentage points


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


def choose_parameter(candidates, pp=WITHIN_PP):
    """The coding parameter of one (coding, method, T) from its validation cells.

    ``candidates``: (parameter, validation accuracy, normalised energy). Accuracy first: the
    cheapest candidate within ``pp`` points of the most accurate one (a larger gain or a finer
    delta step buys accuracy with input events; past the point where accuracy stops rising, the
    cheaper one is kept).
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    best = max(accuracy for _, accuracy, _ in candidates)
    good = [c for c in candidates if c[1] >= best - pp / 100.0]
    return min(good, key=lambda c: (c[2], -c[1]))[0]


def choose_point(rows, reference, accuracy="validation_accuracy", pp=WITHIN_PP):
    """The cheapest row whose ``accuracy`` is within ``pp`` points of ``reference`` (None if none)."""
    good = [r for r in rows if r[accuracy] >= reference - pp / 100.0]
    return min(good, key=lambda r: (r["normalized_energy"], -r[accuracy]), default=None)


def pareto_front(rows, accuracy="snn_accuracy", energy="normalized_energy"):
    """Rows no other row beats (at most as much energy and at least the accuracy, one strictly),
    sorted by energy."""
    def dominated(r):
        return any(o[energy] <= r[energy] and o[accuracy] >= r[accuracy]
                   and (o[energy] < r[energy] or o[accuracy] > r[accuracy]) for o in rows)
    return sorted((r for r in rows if not dominated(r)), key=lambda r: (r[energy], -r[accuracy]))
