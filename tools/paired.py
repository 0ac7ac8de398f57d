"""Pair two results on the same test samples: each classifier both recorded, B minus A.

    .venv/bin/python tools/paired.py results/q0/energy.json results/q8/energy.json

For every classifier in both files' ``predictions`` (snn, ann, own_ann, ...): the two accuracies with
their Wilson intervals, B - A with Newcombe's paired interval and the exact McNemar test
(`pipeline.stats`). The files must hold the same labels (the same samples, in the same order), else
one line says so. Used for docs/quantisation.md (a quantised RUN against the float one).
"""
import sys

import numpy as np

from pipeline import UserError, results, stats


def pair(path_a, path_b):
    """Lines comparing the classifiers recorded in both results."""
    a, b = (results.read_json(p)["predictions"] for p in (path_a, path_b))
    labels = stats.decode_predictions(a["labels"])
    if not np.array_equal(labels, stats.decode_predictions(b["labels"])):
        raise UserError(f"{path_a} and {path_b} hold other samples (their labels differ): nothing to pair")
    lines = [f"N = {len(labels)}; B - A, Newcombe 95 % interval, exact McNemar"]
    for name in (k for k in a if k != "labels" and k in b):
        correct_a, correct_b = (stats.decode_predictions(r[name]) == labels for r in (a, b))
        d, test = stats.paired_difference(correct_b, correct_a), stats.mcnemar(correct_b, correct_a)
        lines.append(f"  {name}: A {stats.format_accuracy(correct_a.mean(), len(labels))}, "
                     f"B {stats.format_accuracy(correct_b.mean(), len(labels))}; B - A {100 * d.difference:+.1f} pp "
                     f"[{100 * d.lo:+.1f}, {100 * d.hi:+.1f}], only B {test.a_only} vs only A {test.b_only}, "
                     f"p = {test.p_value:.2g}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        print("\n".join(pair(*sys.argv[1:])))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
