"""Intervals of the compare stage: Wilson for proportions, Fisher z over samples for correlations."""
import numpy as np
import pytest

from pipeline import statistics


def test_wilson_matches_the_textbook_values():
    assert statistics.wilson(17, 20) == pytest.approx((0.6396, 0.9476), abs=1e-4)   # by hand from the score formula
    low, high = statistics.wilson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=1e-4)                   # no collapse at p = 1
    assert statistics.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert statistics.wilson(0, 0) == (0.0, 1.0)


def test_scored_is_a_fraction_with_its_interval():
    assert statistics.scored("accuracy", [0, 1, 2, 1], [0, 1, 1, 1]) == {
        "accuracy": 0.75, "accuracy_interval": pytest.approx(list(statistics.wilson(3, 4)))}


def test_correlation_interval_over_samples():
    same = statistics.correlation_interval([0.9, 0.9, 0.9])
    assert same["mean"] == pytest.approx(0.9) and same["interval"] == pytest.approx([0.9, 0.9]) and same["n"] == 3
    spread = statistics.correlation_interval([0.5, 0.9, None, float("nan"), 0.7])
    lo, hi = spread["interval"]
    assert spread["n"] == 3 and lo < spread["mean"] < hi < 1
    assert statistics.correlation_interval([0.8]) == {"mean": pytest.approx(0.8), "interval": None, "n": 1}
    assert statistics.correlation_interval([None])["mean"] is None
