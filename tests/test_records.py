"""The typed result records: they write the JSON the dict code wrote, read older files, check
themselves, and the result-field reference is generated from them."""
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from pipeline import UserError, records, results, stats

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = {"dataset": {"name": "tiny", "sha256": "cb0e"}, "model": {"path": "/m.h5", "sha256": "8c84"},
              "seed": 0, "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "numpy": "1.26.4",
                                      "snntoolbox": "0.6.0"}}
INTERVAL_70 = [0.4810271816464766, 0.8545227551323957]     # 14 of 20
INTERVAL_71 = [0.5340767066925007, 0.8390419984369939]     # 22 of 31


# Written by hand in the format the dict code of stages/stdb.py wrote (before records), key for key.
STDB_BY_THE_DICT_CODE = {
    "stage": "stdb", "simulator": "engine", "timesteps": 6, "num_samples": 20,
    "ann_accuracy": 0.7, "ann_accuracy_interval": INTERVAL_70,
    "ann_accuracy_test": 0.7833333333333333, "ann_accuracy_test_interval": [0.6637997242680521, 0.868769559518097],
    "num_test_samples": 60, "snn_accuracy_before": 0.7, "snn_accuracy": 0.7,
    "snn_accuracy_before_interval": INTERVAL_70, "snn_accuracy_interval": INTERVAL_70, "improvement": 0.0,
    "validation_samples": 31, "validation_accuracy_before": 0.7096774193548387,
    "validation_accuracy": 0.7096774193548387, "validation_accuracy_before_interval": INTERVAL_71,
    "validation_accuracy_interval": INTERVAL_71, "ann_validation_accuracy": 0.7096774193548387,
    "ann_validation_accuracy_interval": INTERVAL_71, "accuracy_per_timestep": [0.0, 0.0, 0.0, 0.45, 0.7, 0.7],
    "predictions": {"labels": "22200212110102122100", "snn": "222-1212111112122111",
                    "ann": "22211212111112122111", "snn_before": "222-1212111112122111",
                    "toolbox_export": "22222222222222222222"},
    "snn_vs_ann_mcnemar": {"snn_only": 0, "ann_only": 0, "p_value": 1.0},
    "snn_vs_snn_before_mcnemar": {"snn_only": 0, "snn_before_only": 0, "p_value": 1.0},
    "best_epoch": 0, "leak": 1.0, "surrogate": "linear", "learning_rate": 0.0001, "stdb_epochs": 2, "ntrain": 64,
    "train_thresholds": False, "train_leak": False, "neuron_lr": 0.01, "sparsity": 0.0, "thresholds_mode": "max",
    "threshold_source": "thresholds 0.7 x max input current on 100 training samples", "coding": "poisson",
    "poisson_rule": "signed", "pooling": "linear", "readout": "membrane", "initial_membrane": 0.0,
    "history": [{"epoch": 1, "loss": 0.87, "train_accuracy": 0.671875, "validation_loss": 0.85,
                 "validation_accuracy": 0.7096774193548387, "seconds": 1.37}],
    "seconds_per_epoch": 1.37, "peak_memory_mb": 811.3, "wall_seconds": 11.5,
    "thresholds": {"conv1": 0.98, "dense2": 0.048}, "leaks": {"conv1": 1.0},
    "exported_model": "/r/stdb_T6.h5", "exported_folded": True,
    "toolbox_export_accuracy": 0.35, "toolbox_export_accuracy_interval": [0.1811918241010821, 0.5671457233147637],
    "toolbox_export_note": "SNN Toolbox INI on the exported .h5 ...", "config": "/g/st_stdb_T6_76700f8199.ini",
    "signature": {"model_sha256": "8c84", "num_samples": 20, "ntrain": 64,
                  "selection": "validation, epoch 0 a candidate", "leak": 1.0, "surrogate": "linear", "lr": 0.0001,
                  "stdb_epochs": 2, "thresholds_mode": "max",
                  "coding": "poisson", "train_thresholds": False, "train_leak": False, "neuron_lr": 0.01},
    **PROVENANCE,
}

# As stages/frontier.py's dict code wrote a row (qcfs+stdb: with its "stdb"; others without).
FRONTIER_ROW = {
    "coding": "rate", "method": "qcfs+stdb", "timesteps": 4, "parameter": "gain", "value": 2.0, "sparsity": 0.0,
    "num_samples": 20, "ann_accuracy": 0.7, "ann_accuracy_interval": INTERVAL_70,
    "own_ann_accuracy": 0.7, "own_ann_accuracy_interval": INTERVAL_70,
    "snn_accuracy": 0.7, "snn_accuracy_interval": INTERVAL_70,
    "normalized_energy": 0.25, "saving": 4.0, "normalized_energy_memory": 0.9,
    "footprint_bytes": {"snn": 1200, "ann": 1100}, "input_floor": 0.01,
    "input_floor_formula": "events x fan-out x E_AC",
    "layer_energy": {"conv1": 0.1, "dense2": 0.001}, "input_events_per_inference": 120.5,
    "encoder_updates_per_inference": 384, "validation_accuracy": 0.7096774193548387, "validation_energy": 0.26,
    "validation_candidates": [{"parameter": "gain", "value": 2.0, "sparsity": 0.0, "accuracy": 0.71,
                               "normalized_energy": 0.26}],
    "predictions": {"labels": "22200212110102122100", "snn": "22211212111112122111", "ann": "22211212111112122111"},
    "snn_vs_ann_mcnemar": {"snn_only": 0, "ann_only": 0, "p_value": 1.0},
    "stdb": {"best_epoch": 1, "seconds": 3.2, "validation_accuracy_before": 0.6, "validation_accuracy_after": 0.71},
}
ANALOG_ROW = {**{k: v for k, v in FRONTIER_ROW.items() if k != "stdb"},
              "coding": "analog", "method": "conversion", "parameter": None, "value": None}
FRONTIER_BY_THE_DICT_CODE = {
    "stage": "frontier", "rows": [ANALOG_ROW, FRONTIER_ROW], "num_samples": 20, "validation_samples": 31,
    "codings": ["analog", "rate"], "methods": ["conversion", "qcfs", "qcfs+sparsity", "qcfs+stdb"],
    "timesteps": [4], "gains": [2.0], "deltas": [0.05], "sparsities": [4.0], "levels": 8,
    "preset": "45nm-fp32", "e_mac_pj": 4.6, "e_ac_pj": 0.9, "ann_energy_j": 5.8e-7,
    "ann": {"test_accuracy": 0.7, "test_accuracy_interval": INTERVAL_70, "validation_accuracy": 0.71,
            "qcfs_test_accuracy": 0.7, "qcfs_test_accuracy_interval": INTERVAL_70, "qcfs_validation_accuracy": 0.7,
            "qcfs_sparsity": [{"sparsity": 4.0, "test_accuracy": 0.7, "test_accuracy_interval": INTERVAL_70,
                               "validation_accuracy": 0.7}]},
    "chosen": FRONTIER_ROW, "pareto_front": [FRONTIER_ROW], "cheapest_within_1pp_test": None,
    "conversion_thresholds": {"values": {"conv1": 0.98}, "how": "0.7 x max input current on 64 training samples"},
    "stdb": None,
    "accounting": {"denominator": "the modified ANN's dense energy", "encoder": "not counted", "floor": "input_floor"},
    "cells": {"simulated": 6, "reused": 0, "folder": "frontier_cells"},
    **PROVENANCE,
}

CONVERT_BY_THE_DICT_CODE = {
    "stage": "convert", "simulator": "INI", "timesteps": 6, "num_samples": 20,
    "ann_accuracy": 0.7, "ann_accuracy_interval": INTERVAL_70,
    "ann_accuracy_test": 0.7833333333333333, "ann_accuracy_test_interval": [0.6637997242680521, 0.868769559518097],
    "num_test_samples": 60, "snn_accuracy": 0.7, "snn_accuracy_interval": INTERVAL_70,
    "accuracy_per_timestep": [0.0, 0.45, 0.7],
    "predictions": {"labels": "22200212110102122100", "snn": "22211212111112122111", "ann": "22211212111112122111"},
    "snn_vs_ann_mcnemar": {"snn_only": 0, "ann_only": 0, "p_value": 1.0}, "wall_seconds": 20.1,
    "toolbox_seconds": {"parse": 0.1, "normalize": 1.0, "build": 0.2, "simulate": 3.0},
    "config": "/g/r_T6_abc.ini", "config_sha256": "ab12", **PROVENANCE,
}


@pytest.mark.parametrize("kind, data", [(records.StdbRecord, STDB_BY_THE_DICT_CODE),
                                        (records.FrontierRecord, FRONTIER_BY_THE_DICT_CODE),
                                        (records.ConvertRecord, CONVERT_BY_THE_DICT_CODE)])
def test_a_record_written_by_the_dict_code_reads_back_and_writes_out_equal(kind, data, tmp_path):
    path = tmp_path / "old.json"
    results.write_json(path, data)
    record = kind.read(path)
    record.write(tmp_path / "new.json")
    assert (tmp_path / "new.json").read_text() == path.read_text()
    assert record == kind.from_dict(record.to_dict()) and record.to_dict() == data


def test_nested_rows_and_keys_are_records_and_a_row_writes_its_stdb_only_when_it_has_one():
    frontier = records.FrontierRecord.from_dict(FRONTIER_BY_THE_DICT_CODE)
    assert all(isinstance(row, records.FrontierRow) for row in frontier.rows + frontier.pareto_front)
    assert frontier.chosen.method == "qcfs+stdb" and frontier.cheapest_within_1pp_test is None
    fresh = records.FrontierRow(**{**ANALOG_ROW, "stdb": None})
    assert "stdb" not in fresh.to_dict() and list(fresh.to_dict()) == list(ANALOG_ROW)
    stdb = records.StdbRecord.from_dict(STDB_BY_THE_DICT_CODE)
    assert isinstance(stdb.signature, records.StdbKey) and stdb.snn_vs_ann_mcnemar["p_value"] == 1.0


def test_an_older_file_writes_back_only_the_keys_it_had_and_keeps_keys_no_field_knows():
    old = {"timesteps": 28, "snn_accuracy": 0.699, "num_samples": 100, "added_later": {"x": 1}}
    record = records.StdbRecord.from_dict(old)
    assert record.snn_accuracy_interval is None and record.best_epoch is None   # fields it lacks read None
    assert record.to_dict() == old and list(record.to_dict()) == list(old)   # also in its order
    assert dict(record) == old and record.get("best_epoch", "absent") == "absent"
    with pytest.raises(KeyError):
        record["best_epoch"]


def test_records_read_as_mappings_so_stored_and_computed_intervals_print_alike():
    record = records.StdbRecord.from_dict({"snn_accuracy": 0.81, "num_samples": 100})
    assert stats.format_recorded(record, "snn_accuracy") == "0.810 [0.72, 0.87] (N=100)"
    stored = records.ConvertRecord.from_dict({**CONVERT_BY_THE_DICT_CODE, "snn_accuracy_interval": [0.6, 0.8]})
    assert stats.format_recorded(stored, "snn_accuracy") == "0.700 [0.60, 0.80] (N=20)"


def test_the_stdb_key_leaves_out_a_zero_sparsity_so_results_from_before_sparsity_match():
    class Settings:
        leak, surrogate, lr, stdb_epochs, thresholds, coding = 1.0, "linear", 0.0001, 2, "max", "poisson"
        train_thresholds, train_leak, neuron_lr, sparsity = False, False, 0.01, 0.0
    key = records.StdbKey.of(Settings, "8c84", 20, 64, "validation, epoch 0 a candidate")
    assert key.to_dict() == STDB_BY_THE_DICT_CODE["signature"]
    assert records.StdbRecord.from_dict(STDB_BY_THE_DICT_CODE).signature == key
    Settings.sparsity = 4.0
    other = records.StdbKey.of(Settings, "8c84", 20, 64, "validation, epoch 0 a candidate")
    assert other.to_dict()["sparsity"] == 4.0 and other != key
    unknown = records.StdbKey.from_dict({**STDB_BY_THE_DICT_CODE["signature"], "new_setting": 1})
    assert unknown != key                                             # a key from a newer version: not reused


def test_a_convert_record_is_reusable_only_for_the_same_model_samples_simulator_and_ini():
    record = records.ConvertRecord.from_dict(CONVERT_BY_THE_DICT_CODE)
    assert record.reusable("8c84", 20, "ab12", "INI")
    assert not any([record.reusable("other", 20, "ab12"), record.reusable("8c84", 40, "ab12"),
                    record.reusable("8c84", 20, "cd34"), record.reusable("8c84", 20, "ab12", "fast")])
    assert not records.ConvertRecord.from_dict({"num_samples": 20}).reusable("8c84", 20, "ab12")


@pytest.mark.parametrize("change, message", [
    ({"snn_accuracy": 1.2}, r"StdbRecord.snn_accuracy = 1.2 is not an accuracy in \[0, 1\]"),
    ({"snn_accuracy_interval": [0.8, 0.9]}, "snn_accuracy_interval .* holding its accuracy"),
    ({"num_samples": 0}, "num_samples = 0 is not a positive whole number"),
    ({"snn_vs_ann_mcnemar": [1, 2]}, "is not a McNemar test")])
def test_a_record_refuses_a_bad_field_in_one_line_naming_the_file(change, message, tmp_path):
    path = tmp_path / "stdb_T6.json"
    results.write_json(path, {**STDB_BY_THE_DICT_CODE, **change})
    with pytest.raises(UserError, match=f"^{path}: .*{message}"):
        records.StdbRecord.read(path)


def test_every_field_says_what_it_means():
    for kind in records.RECORDS:
        assert kind.__doc__ and kind.FILES, kind
        for f in fields(kind):
            assert records.meaning_of(f), f"{kind.__name__}.{f.name}"


def test_the_result_field_reference_is_the_declaration():
    reference = (ROOT / "docs" / "result-fields.md").read_text()
    assert reference == records.markdown() + "\n", "regenerate it: python -m pipeline.records markdown"
    out = subprocess.run([sys.executable, "-m", "pipeline.records", "markdown"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == reference


def test_records_need_neither_numpy_nor_tensorflow():
    code = ("import sys, pipeline.records; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
