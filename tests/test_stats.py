"""Wilson intervals, the exact McNemar test and the predictions encoding, against hand-computed values."""
import numpy as np
import pytest

from pipeline import UserError, stats


def test_wilson_against_hand_computed_values():
    # 81/100: centre (81 + z²/2) / (100 + z²) = 0.79853, half-width z / (100 + z²) x sqrt(15.39 + z²/4) = 0.07632
    lo, hi = stats.wilson(81, 100)
    assert lo == pytest.approx(0.72221, abs=1e-5) and hi == pytest.approx(0.87485, abs=1e-5)
    # k = 0 and k = n: one bound is exact, the other z² / (n + z²) from it
    z2 = stats.Z95 ** 2
    assert stats.wilson(0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))            # 0.27753
    assert stats.wilson(10, 10) == (pytest.approx(10 / (10 + z2)), 1.0)           # 0.72247
    assert stats.wilson(10, 10)[0] == pytest.approx(0.72247, abs=1e-5)
    assert stats.interval(0.81, 100) == list(stats.wilson(81, 100))


@pytest.mark.parametrize("k,n", [(0, 0), (3, 2), (-1, 5)])
def test_wilson_refuses_what_is_not_a_proportion(k, n):
    with pytest.raises(UserError):
        stats.wilson(k, n)


def test_interval_refuses_no_samples():
    with pytest.raises(UserError, match="N=0"):
        stats.interval(0.5, 0)
    with pytest.raises(UserError, match="N=0"):
        stats.scored("snn_accuracy", [], [])


def test_mcnemar_on_a_hand_made_table():
    # 10 samples: both right on 2, only A on 1, only B on 6, both wrong on 1.
    a = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    b = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 0], bool)
    test = stats.mcnemar(a, b)
    # discordant 7, the smaller side 1: p = 2 x (C(7,0) + C(7,1)) / 2^7 = 16/128
    assert (test.a_only, test.b_only, test.p_value) == (1, 6, 0.125)
    assert stats.mcnemar(b, a).p_value == 0.125                      # symmetric
    assert stats.mcnemar(np.zeros(5, bool), np.ones(5, bool)).p_value == 2 / 32
    assert stats.mcnemar([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]).p_value == 1.0   # 3 vs 3: capped at 1


def test_equal_predictions_give_p_1():
    labels = np.array([0, 1, 2, 1])
    predictions = np.array([0, 2, 2, -1])
    assert stats.paired("snn", predictions, "ann", predictions, labels) == \
        {"snn_only": 0, "ann_only": 0, "p_value": 1.0}


def test_mcnemar_refuses_unpaired_samples():
    with pytest.raises(UserError, match="equal-length"):
        stats.mcnemar([True, False], [True])


def test_paired_difference_interval_against_a_hand_computation():
    # 100 samples: both right 80, only A 2, only B 8, neither 10. d = 0.82 - 0.88 = -0.06.
    # Wilson: A 82/100 [0.733326, 0.882998], B 88/100 [0.801879, 0.930006];
    # phi = (80*10 - 2*8) / sqrt(82*18*88*12) = 784 / 1248.46 = 0.627973.
    # lo = d - sqrt(0.086674^2 - 2 phi 0.086674*0.050006 + 0.050006^2) = -0.06 - 0.067598
    # hi = d + sqrt(0.062998^2 - 2 phi 0.062998*0.078121 + 0.078121^2) = -0.06 + 0.062374
    a = np.array([1] * 80 + [1] * 2 + [0] * 8 + [0] * 10, bool)
    b = np.array([1] * 80 + [0] * 2 + [1] * 8 + [0] * 10, bool)
    d = stats.paired_difference(a, b)
    assert (d.n, d.a_only, d.b_only) == (100, 2, 8) and d.difference == pytest.approx(-0.06)
    assert d.lo == pytest.approx(-0.127598, abs=1e-5) and d.hi == pytest.approx(0.002374, abs=1e-5)


def test_paired_difference_of_identical_classifiers_keeps_a_width():
    same = np.array([1] * 90 + [0] * 10, bool)
    d = stats.paired_difference(same, same)          # Wald would give [0, 0]; Wilson's half-widths remain
    assert d.difference == 0 and -0.1 < d.lo < -0.01 and 0.01 < d.hi < 0.1


def test_predictions_round_trip_and_comparison_fields():
    labels = np.array([0, 1, 2, 2, 1])
    snn = np.array([0, -1, 2, 1, 1])
    ann = np.array([0, 1, 2, 2, 0])
    assert stats.encode_predictions(snn) == "0-211"
    assert stats.decode_predictions("0-211").tolist() == snn.tolist()
    many = np.array([0, 40, -1])                                      # beyond one character a class
    assert stats.encode_predictions(many) == [0, 40, -1]
    assert stats.decode_predictions([0, 40, -1]).tolist() == many.tolist()
    fields = stats.comparison(labels, {"snn": snn, "ann": ann})
    assert fields["predictions"] == {"labels": "01221", "snn": "0-211", "ann": "01220"}
    assert fields["snn_vs_ann_mcnemar"] == {"snn_only": 1, "ann_only": 2, "p_value": 1.0}
    assert stats.scored("snn_accuracy", snn, labels) == {"snn_accuracy": 0.6,
                                                         "snn_accuracy_interval": stats.interval(0.6, 5)}


def test_format_accuracy_is_one_line_with_n_and_interval():
    assert stats.format_accuracy(0.81, 100) == "0.810 [0.72, 0.87] (N=100)"
    assert stats.format_accuracy(0.81, 100, [0.5, 0.9]) == "0.810 [0.50, 0.90] (N=100)"   # stored wins
    assert stats.format_accuracy(0.81, None) == "0.810 (N unknown)"
    assert stats.format_accuracy(None, 100) == "—"
    assert stats.format_mcnemar({"snn_only": 3, "ann_only": 2, "p_value": 1.0}) == "snn_only 3, ann_only 2, p = 1"
    assert stats.format_mcnemar(None) == "—"


def test_correlation_interval_over_samples():
    same = stats.correlation_interval([0.9, 0.9, 0.9])
    assert same["mean"] == pytest.approx(0.9) and same["interval"] == pytest.approx([0.9, 0.9]) and same["n"] == 3
    spread = stats.correlation_interval([0.5, 0.9, None, float("nan"), 0.7])
    lo, hi = spread["interval"]
    assert spread["n"] == 3 and lo < spread["mean"] < hi < 1
    assert stats.correlation_interval([0.8]) == {"mean": pytest.approx(0.8), "interval": None, "n": 1}
    assert stats.correlation_interval([None])["mean"] is None
