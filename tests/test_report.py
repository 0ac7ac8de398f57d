"""The report: Table 1 from fabricated results, Tables 2/3 verbatim, relative figure links, missing stages."""
import json

import pytest

from pipeline.__main__ import main

PNG = b"\x89PNG\r\n\x1a\n"


def write(folder, name, data):
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(json.dumps(data) if isinstance(data, dict) else data)


def energy_record(net, coding, timesteps, normalized, figures=None):
    layer = {"name": "conv1", "neurons": 10, "ann_macs": 100, "ann_adds": 0, "snn_spikes": 3.0, "snn_acs": 20.0,
             "snn_macs": 0.0, "ann_energy_j": 4.6e-10, "snn_energy_j": 1.8e-11,
             "ac_source": "input spikes x fan-out into conv1"}
    return {"stage": "energy", "preset": "45nm-fp32", "e_mac_pj": 4.6, "e_ac_pj": 0.9, "timesteps": timesteps,
            "input_coding": coding, "net": net, "num_samples": 50, "layers": [layer],
            "total": {"ann_energy_j": 4.6e-10, "snn_energy_j": 4.6e-10 * normalized,
                      "normalized_energy": normalized, "saving": 1 / normalized},
            "input": {"mean_abs_x": 0.01, "floor_normalized_energy": 0.01, "floor_formula": "T x mean|x| x ...",
                      "first_layer_normalized_energy": 0.005},
            "snn_seconds_per_sample": 0.012, "ann_seconds_per_sample": 0.005, "raster_sample": 3,
            "figures": figures or {}}


@pytest.fixture
def run(sandbox):
    folder = sandbox / "results" / "r"
    folder.mkdir(parents=True)
    for t, acc in ((50, 0.42), (300, 0.713), (200, 0.711)):
        write(folder, f"convert_T{t}.json", {"timesteps": t, "snn_accuracy": acc, "num_samples": 100,
                                              "simulator": "INI", "ann_accuracy_test": 0.727, "wall_seconds": 60.0,
                                              "toolbox_seconds": {"parse": 1.0, "normalize": 20.0, "build": 2.0,
                                                                  "simulate": 30.0}})
    write(folder, "table2.md", "**Table 2. ANN to SNN only**\n\n| Timesteps | ANN | SNN |\n|---|---|---|\n"
                               "| 50 | 0.7270 | 0.4220 |\n")
    write(folder, "table2.png", PNG)
    write(folder, "ann_original.json", {"ann_accuracy_test": 0.738, "modified_ann_accuracy_test": 0.727})
    write(folder, "stdb_T28.json", {"timesteps": 28, "snn_accuracy": 0.699, "num_samples": 100})
    write(folder, "stdb_T28_curves.png", PNG)
    figures = {"fig4_raster": "energy_fig4_raster.png", "fig7_normalized_energy": "energy_fig7_normalized_energy.png"}
    for name in figures.values():
        write(folder, name, PNG)
    write(folder, "energy.json", energy_record("stdb", "poisson", 28, 0.0194174757, figures))
    return folder


def report(folder):
    """The report stage on the RUN whose results are in ``folder`` (results/<RUN>/ under the sandbox)."""
    return main(["report", f"OUT={folder.parents[1]}", "--run", folder.name])


def test_report_collects_tables_figures_and_missing_stages(run, capsys):
    assert report(run) == 0
    text = (run / "REPORT.md").read_text()
    table1 = text.split("## Table 1")[1].split("## Table 2")[0]
    # results written before intervals existed: computed from accuracy and N, or N said to be unknown
    assert "| Original ANN | 0.738 (N unknown) |" in table1 and "| Modified ANN | 0.727 (N unknown) |" in table1
    assert "| ANN to SNN only | 0.713 [0.61, 0.79] (N=100) (best T) | — | 300 | 300.00 ms (INI) |" in table1
    assert "| ANN to SNN + STDB | 0.699 [0.60, 0.78] (N=100) (best T) | 0.01942 (poisson) | 28 | " \
           "12.00 ms (TF engine) |" in table1
    assert "McNemar" not in table1                                     # no per-sample predictions stored
    assert "5.00 ms (Keras)" in table1
    assert "| 50 | 0.7270 | 0.4220 |" in text                          # Table 2 verbatim
    assert ('_Written before accuracies carried their interval; `make sweep TS="50 75 100 200 300" RUN=r` '
            '(with the TS') in text                                    # an old table2.md: how to rewrite it
    assert "51.5x saving" in text                                      # energy section
    # Figures linked by relative path, with captions, in the seed's order.
    assert "](stdb_T28_curves.png)" in text and "](table2.png)" in text
    assert "![Figure 4. Spike raster per layer for test sample 3; NET=stdb, T=28, poisson input]" \
           "(energy_fig4_raster.png)" in text
    assert str(run) not in text
    assert text.index("Figure 3.") < text.index("Figure 4.") < text.index("Figure 7.")
    # Missing stages, each with its command.
    missing = text.split("## Not run yet")[1]
    assert 'make stdb-sweep TS="5 10 15 20 25 28 35 50 75 100" RUN=r' in missing
    assert "make energy T=28 NET=stdb CODING=analog RUN=r" in missing
    assert "make bench T=100 N=50 RUN=r" in missing and "make latency" in missing and "make compare" in missing
    assert "make sweep" not in missing and "make stdb T=28" not in missing
    assert "stages not run yet" in capsys.readouterr().out


def test_report_prints_stored_intervals_and_paired_tests(run):
    record = json.loads((run / "convert_T300.json").read_text())
    record.update(snn_accuracy_interval=[0.6, 0.8], snn_vs_ann_mcnemar={"snn_only": 2, "ann_only": 3, "p_value": 1.0})
    write(run, "convert_T300.json", record)
    write(run, "ann_original.json", {"ann_accuracy_test": 0.738, "ann_accuracy_test_interval": [0.71, 0.76],
                                     "modified_ann_accuracy_test": 0.727, "num_test_samples": 1000,
                                     "original_vs_modified_mcnemar": {"original_only": 60, "modified_only": 49,
                                                                      "p_value": 0.34}})
    energy = json.loads((run / "energy.json").read_text())
    energy.update(snn_accuracy=0.5, ann_accuracy=0.7, snn_vs_ann_mcnemar={"snn_only": 1, "ann_only": 11,
                                                                         "p_value": 0.0063})
    write(run, "energy.json", energy)
    assert report(run) == 0
    text = (run / "REPORT.md").read_text()
    table1 = text.split("## Table 1")[1].split("## Table 2")[0]
    assert "| Original ANN | 0.738 [0.71, 0.76] (N=1000) |" in table1             # the stored interval
    assert "| Modified ANN | 0.727 [0.70, 0.75] (N=1000) |" in table1             # computed from it and N
    assert "| ANN to SNN only | 0.713 [0.60, 0.80] (N=100) (best T) |" in table1
    assert "ANN to SNN only at T=300: snn_only 2, ann_only 3, p = 1; original vs modified ANN on the whole test " \
           "set: original_only 60, modified_only 49, p = 0.34." in table1
    assert ("Accuracy on these samples: SNN 0.500 [0.37, 0.63] (N=50), ANN 0.700 [0.56, 0.81] (N=50); "
            "SNN vs ANN (exact McNemar): snn_only 1, ann_only 11, p = 0.0063.") in text


def test_report_reads_a_bench_older_than_intervals(run):
    write(run, "bench.json", {"timesteps": 100, "num_samples": 50, "ini_seconds": 42.2, "engine_seconds": 3.7,
                              "speedup": 11.4, "accuracy_ini": 0.76, "accuracy_engine": 0.76})
    assert report(run) == 0
    text = (run / "REPORT.md").read_text()
    assert "Accuracy: INI 0.760 [0.63, 0.86] (N=50), engine 0.760 [0.63, 0.86] (N=50); engine vs INI on the " \
           "same samples (exact McNemar): —." in text


def test_report_shows_both_codings_and_converted_energy(run):
    (run / "energy_analog.json").write_text(json.dumps(energy_record("stdb", "analog", 28, 0.18)))
    (run / "energy_converted.json").write_text(json.dumps(energy_record("converted", "poisson", 100, 0.5)))
    assert report(run) == 0
    text = (run / "REPORT.md").read_text()
    assert "| 0.01942 (poisson) / 0.18 (analog) | 28 |" in text
    assert "0.5 (poisson, at T=100)" in text                           # converted measured at another T
    assert "NET=stdb CODING=analog" not in text.split("## Not run yet")[1]   # energy_analog.json is there


def test_report_is_rewritten_whole(run):
    assert report(run) == 0
    first = (run / "REPORT.md").read_text()
    assert report(run) == 0
    assert (run / "REPORT.md").read_text() == first
    assert not list(run.glob(".REPORT.md*"))                          # no temp file left behind


@pytest.mark.parametrize("setup", ["nothing", "only_run_record"])
def test_a_run_without_results_is_refused(sandbox, setup, capsys):
    if setup == "only_run_record":
        folder = sandbox / "results" / "empty"
        folder.mkdir(parents=True)
        (folder / "run.json").write_text("{}")
    assert main(["report", f"OUT={sandbox}", "--run", "empty"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RUN=empty: no results" in err[0]
    assert not (sandbox / "results" / "empty" / "REPORT.md").exists()


def test_a_result_file_with_an_impossible_accuracy_is_refused_in_one_line_naming_it(run, capsys):
    write(run, "stdb_T28.json", {"timesteps": 28, "snn_accuracy": 69.9, "num_samples": 100})   # a percentage
    assert report(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stdb_T28.json: StdbRecord.snn_accuracy = 69.9 is not an accuracy in [0, 1]" in err[0]
