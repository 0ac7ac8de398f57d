"""SEEDS=: parsed and refused in one line, one RUN per seed, and the table across seeds (per-seed rows with
their Wilson intervals, the mean with a Student t interval over the seeds, checked by hand)."""
import csv
import json
import math

import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, seeds, settings as settings_module, stats
from pipeline.__main__ import main

TINY = ["--width", "4", "--epochs", "2", "--num-samples", "20"]


def test_the_across_seed_interval_is_the_mean_plus_minus_student_t_by_hand():
    # three seeds 0.70, 0.74, 0.78: mean 0.74, sample std 0.04, t(0.975, 2 dof) = 4.3027 (the table's 4.303)
    found = stats.across_seeds([0.70, 0.74, 0.78])
    half = 4.302652729911275 * 0.04 / math.sqrt(3)
    assert found["mean"] == pytest.approx(0.74) and found["std"] == pytest.approx(0.04)
    assert found["half_width"] == pytest.approx(half) and found["n"] == 3
    assert found["interval"] == pytest.approx([0.74 - half, 0.74 + half])
    # five seeds: t(0.975, 4) = 2.7764; a 90 % interval: t(0.95, 4) = 2.1318
    five = [0.1, 0.2, 0.3, 0.4, 0.5]
    std = math.sqrt(sum((v - 0.3) ** 2 for v in five) / 4)
    assert stats.across_seeds(five)["half_width"] == pytest.approx(2.776445 * std / math.sqrt(5), rel=1e-6)
    assert stats.across_seeds(five, 0.90)["half_width"] == pytest.approx(2.131847 * std / math.sqrt(5), rel=1e-6)
    one = stats.across_seeds([0.8])     # one seed: a mean, no spread
    assert one == {"mean": 0.8, "std": None, "half_width": None, "interval": None, "n": 1}
    assert stats.format_across(one) == "0.800 (1 seed)"
    assert stats.format_across(found) == f"0.740 ± {half:.3f} [{0.74 - half:.3f}, {0.74 + half:.3f}] (3 seeds)"
    with pytest.raises(UserError):
        stats.across_seeds([])


def test_seeds_are_parsed_and_each_runs_in_its_own_run():
    parsed = settings_module.parse(["sweep", "RUN=study", "SEEDS=0, 1 7", "TS=10"])
    assert parsed.seeds == (0, 1, 7) and parsed.seed is None
    assert [(s, x.run, x.seed, x.seeds) for s, x in seeds.per_seed(parsed)] == \
        [(0, "study-seed0", 0, None), (1, "study-seed1", 1, None), (7, "study-seed7", 7, None)]
    unset = settings_module.parse(["sweep", "TS=10"])       # no SEEDS: the RUN's one run, untouched
    assert unset.seeds is None and seeds.per_seed(unset) == [(None, unset)]


@pytest.mark.parametrize("args, message", [
    (["sweep", "TS=10", "SEEDS=0 -1"], "SEEDS=-1 must be a non-negative integer"),
    (["sweep", "TS=10", "SEEDS=0 x"], "SEEDS='x' is not an integer"),
    (["sweep", "TS=10", "SEEDS=1 2 1"], "names seed 1 twice"),
    (["sweep", "TS=10", "SEEDS= "], "SEEDS is empty"),
    (["convert", "T=10", "SEEDS=0 1"], "only sweep, frontier, latency run once per seed"),
    (["frontier", "TS=2", "SEED=1", "SEEDS=0 1"], "SEED=1 and SEEDS=0 1: give one of them"),
])
def test_bad_seeds_are_one_line_and_exit_2(args, message, sandbox, capsys):
    assert main([*args, f"OUT={sandbox}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (sandbox / "results").exists()      # refused before any RUN was touched


@pytest.mark.slow   # two seeds: two trainings each of the modified and the original ESCAPE-NET
def test_a_two_seed_sweep_gives_each_seeds_table_and_the_mean_with_its_t_interval(sandbox, tiny_npz):
    argv = ["sweep", f"OUT={sandbox}", "RUN=sw", f"DATA={tiny_npz}", "TS=10 25", "SIM=fast", "SEEDS=0 1", *TINY]
    record = main_record(argv)
    results = sandbox / "results"
    assert record["runs"] == ["sw-seed0", "sw-seed1"] and record["seeds"] == [0, 1] and record["num_samples"] == 20
    for seed in (0, 1):           # each seed a whole one-seed sweep in its own RUN, its seed recorded
        assert json.loads((results / f"sw-seed{seed}" / "run.json").read_text())["seed"] == seed
        assert (results / f"sw-seed{seed}" / "ann_original.json").exists()
    assert [r["key"] for r in record["rows"]] == [{"timesteps": 10}, {"timesteps": 25}]
    for row in record["rows"]:
        t = row["key"]["timesteps"]
        per_seed = []
        for seed, entry in zip((0, 1), row["per_seed"]):
            with open(results / f"sw-seed{seed}" / "table2.csv") as f:
                mine = next(r for r in csv.DictReader(f) if int(r["timesteps"]) == t)
            assert entry["seed"] == seed and entry["snn_accuracy"] == float(mine["snn_accuracy"])
            assert entry["snn_accuracy_interval"] == stats.interval(entry["snn_accuracy"], 20)   # its Wilson interval
            assert ("snn_vs_ann_mcnemar" in entry) == (t == 25)     # the paired test at the longest T, per seed
            per_seed.append(entry["snn_accuracy"])
        a, b = per_seed           # two seeds: mean ± t(0.975, 1) x |a - b| / 2 (std |a - b| / sqrt 2, over sqrt 2)
        across = row["across"]["snn_accuracy"]
        assert across["mean"] == pytest.approx((a + b) / 2)
        assert across["half_width"] == pytest.approx(12.706204736 * abs(a - b) / 2)
    table = (results / "sw" / "table2_seeds.md").read_text()
    assert "| 25 | 1 |" in table and "**mean of 2**" in table and "(N=20)" in table and "seeds)" in table
    assert (results / "sw" / "table2_seeds.png").stat().st_size > 0
    assert main(["report", f"OUT={sandbox}", "RUN=sw"]) == 0      # the report shows it with its figure
    report = (results / "sw" / "REPORT.md").read_text()
    assert "## Table 2 across training seeds" in report and "](table2_seeds.png)" in report
    # the guard of each seed's run.json holds: the same RUN with another width is refused
    assert main(["sweep", f"OUT={sandbox}", "RUN=sw", "TS=10", "SEEDS=0 1", "WIDTH=8"]) == 2


@pytest.mark.slow   # two seeds, each three trainings (the ANN, its QCFS and QCFS+sparsity fine-tunes)
def test_a_two_seed_frontier_gives_each_seeds_rows_and_their_means(sandbox, tiny_npz):
    argv = ["frontier", f"OUT={sandbox}", "RUN=fr", f"DATA={tiny_npz}", "TS=2 4", "CODINGS=analog rate",
            "GAINS=1 4", "SPARSITIES=1", "SEEDS=0 1", *TINY]
    record = main_record(argv)
    results = sandbox / "results"
    per_run = [json.loads((results / f"fr-seed{s}" / "frontier.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in per_run] == [0, 1]
    assert len(record["rows"]) == len(per_run[0]["rows"]) == 2 * 3 * 2
    for i, row in enumerate(record["rows"]):
        mine = [run["rows"][i] for run in per_run]
        assert row["key"] == {k: mine[0][k] for k in ("coding", "method", "timesteps")}
        for q in ("snn_accuracy", "normalized_energy"):
            values = [m[q] for m in mine]
            assert [e[q] for e in row["per_seed"]] == values
            assert row["across"][q]["mean"] == pytest.approx(sum(values) / 2)
            assert row["across"][q]["half_width"] == pytest.approx(12.706204736 * abs(values[0] - values[1]) / 2)
    chosen = [run["chosen"] for run in per_run if run["chosen"] is not None]
    assert [e["seed"] for e in record["chosen"]["per_seed"]] == [c["seed"] for c in per_run if c["chosen"]]
    assert [e["normalized_energy"] for e in record["chosen"]["per_seed"]] == [c["normalized_energy"] for c in chosen]
    assert "**mean of 2**" in (results / "fr" / "frontier_seeds.md").read_text()
    assert (results / "fr" / "frontier_seeds.png").stat().st_size > 0


@pytest.mark.slow   # two seeds: two trainings of the modified ESCAPE-NET and two QCFS fine-tunes
def test_a_two_seed_latency_gives_each_seeds_rows_and_their_means(sandbox, tiny_npz):
    argv = ["latency", f"OUT={sandbox}", "RUN=lat", f"DATA={tiny_npz}", "TS=2 4", "SEEDS=0 1", *TINY]
    record = main_record(argv)
    results = sandbox / "results"
    per_run = [json.loads((results / f"lat-seed{s}" / "latency.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in per_run] == [0, 1]
    assert [tuple(row["key"].values()) for row in record["rows"]] == [("conversion", 2), ("conversion", 4),
                                                                      ("qcfs", 2), ("qcfs", 4)]
    for i, row in enumerate(record["rows"]):
        values = [run["rows"][i]["snn_accuracy"] for run in per_run]
        assert [e["snn_accuracy"] for e in row["per_seed"]] == values
        assert row["across"]["snn_accuracy"]["mean"] == pytest.approx(sum(values) / 2)
    assert "**mean of 2**" in (results / "lat" / "latency_seeds.md").read_text()


def main_record(argv):
    """The across-seed record a stage wrote, run as the CLI runs it."""
    assert main(argv) == 0
    settings = settings_module.parse(argv)
    name = {"sweep": "table2_seeds.json", "frontier": "frontier_seeds.json"}.get(settings.stage,
                                                                                  "latency_seeds.json")
    from pipeline import results
    return json.loads((results.Folders.under(settings.out).run_dir(settings.run) / name).read_text())
