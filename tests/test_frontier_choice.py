"""The frontier's choice rule (paired non-inferiority to the ANN, 1-pp margin) and its Pareto front, by hand."""
import numpy as np
import pytest

from pipeline import frontier


def paired(both, snn_only, ann_only, neither):
    """(SNN correct, ANN correct) per sample for a 2x2 table of counts."""
    snn = [1] * both + [1] * snn_only + [0] * ann_only + [0] * neither
    ann = [1] * both + [0] * snn_only + [1] * ann_only + [0] * neither
    return np.array(snn, bool), np.array(ann, bool)


def test_an_snn_within_1_pp_by_separate_accuracies_is_rejected_when_its_paired_interval_reaches_below_minus_1_pp():
    snn, ann = paired(199, 0, 1, 0)            # 0.995 vs 1.000 on 200 samples: 0.5 pp apart
    verdict = frontier.non_inferiority(snn, ann)
    assert verdict["difference"] == pytest.approx(-0.005) and verdict["interval"][0] < -0.01
    assert not verdict["non_inferior"]
    assert frontier.choose_point([{"normalized_energy": 0.1}], [snn], ann) is None


def test_equal_accuracies_are_told_apart_by_their_discordant_pairs():
    # the ANN right on the first 1800 of 2000 samples; two SNNs each right on 1800 too (0.900, the ANN's
    # accuracy: the separate accuracies cannot choose), one swapping 10 samples each way, one 200
    ann = np.arange(2000) < 1800
    few_snn, many_snn = ann.copy(), ann.copy()
    few_snn[:10], few_snn[1800:1810] = False, True          # 20 discordant pairs: interval about +-0.5 pp
    many_snn[:200], many_snn[1800:] = False, True           # 400 discordant pairs: about +-2 pp
    assert few_snn.mean() == many_snn.mean() == ann.mean() == 0.9
    assert frontier.non_inferiority(few_snn, ann)["non_inferior"]
    assert not frontier.non_inferiority(many_snn, ann)["non_inferior"]
    rows = [{"normalized_energy": 0.1, "id": "many"}, {"normalized_energy": 0.2, "id": "few"}]
    assert frontier.choose_point(rows, [many_snn, few_snn], ann)["id"] == "few"     # not the cheaper one
    assert frontier.choose_parameter([(4, many_snn, 0.1), (16, few_snn, 0.2)], ann) == 16


def test_without_a_non_inferior_candidate_the_parameter_closest_to_the_ann_is_kept():
    close, ann = paired(199, 0, 1, 0)            # -0.5 pp, rejected
    far, _ = paired(190, 0, 10, 0)               # -5 pp, rejected, cheaper
    assert frontier.choose_parameter([(1, far, 0.05), (2, close, 0.1)], ann) == 2
    assert frontier.choose_parameter([(1, close, 0.1)], ann) == 1


def test_pareto_front_by_hand():
    rows = [{"snn_accuracy": a, "normalized_energy": e, "id": i}
            for i, (a, e) in enumerate([(0.5, 0.01), (0.7, 0.1), (0.6, 0.2), (0.8, 0.3), (0.8, 0.5)])]
    assert [r["id"] for r in frontier.pareto_front(rows)] == [0, 1, 3]
