"""Compare: INI vs brian2 on one tiny converted model; the brian2 compat patch; bad SIMS."""
import json

import numpy as np
import pytest

from pipeline.stages import compare
from pipeline.toolbox import compat
from pipeline.__main__ import main


def test_ragged_spiketrains_become_object_arrays():
    """brian2's get_spiketrains_output: np.array(list of per-neuron spike-time arrays of different lengths)."""
    from snntoolbox.simulation.target_simulators import brian2_target_sim
    trains = [np.array([1.0, 5.0]), np.array([]), np.array([3.0])]
    with pytest.raises(ValueError):
        np.array(trains)
    compat.apply()
    flat = brian2_target_sim.np.array(trains)
    assert flat.dtype == object and [len(t) for t in flat] == [2, 0, 1]
    assert brian2_target_sim.np.array([[1, 2], [3, 4]]).shape == (2, 2)   # regular input unchanged


@pytest.mark.slow
def test_compare_ini_brian2(sandbox, tiny_npz):
    pytest.importorskip("brian2")
    assert main(["compare", f"OUT={sandbox}", "--data", str(tiny_npz), "--width", "4", "--epochs", "3", "--run", "cmp",
                 "--timesteps", "40", "--num-samples", "4", "--sims", "INI brian2"]) == 0
    report = json.loads((sandbox / "results" / "cmp" / "simulators.json").read_text())
    assert set(report["simulators"]) == {"INI", "brian2"}
    assert report["scale"] == "signed" and report["input"] == "onoff" and report["negative_input_fraction"] > 0
    assert report["num_samples"] == 4 and report["ann"]["accuracy_test"] > 0.6   # chance: 1/3
    for sim in report["simulators"].values():
        lo, hi = sim["accuracy_interval"]
        assert lo <= sim["accuracy"] <= hi and sim["accuracy"] in (0, .25, .5, .75, 1)
        assert sim["ann_agreement_interval"] and sim["wall_seconds"] > 0 and sim["peak_memory_mb"] > 0
    assert report["simulators"]["INI"]["synapses"] is None
    synapses = report["simulators"]["brian2"]["synapses_per_layer"]
    assert len(synapses) == 7 and sum(synapses.values()) == report["simulators"]["brian2"]["synapses"]
    lo, hi = report["class_agreement_interval"]
    assert lo <= report["class_agreement"] <= hi
    layers = report["rate_correlation"]
    assert len(layers) == 7 and any(name.startswith("00Conv2D") for name in layers)
    # ON/OFF input and even kernels wired as Keras computes them: every layer's rates agree, not just conv1's
    assert all(r is None or r > 0.95 for r in layers.values()), layers    # None: silent in both
    for layer, interval in report["rate_correlation_interval"].items():
        assert interval["mean"] is None or interval["n"] <= 4, layer
    brian2 = report["simulators"]["brian2"]
    assert brian2["output_delay_steps"] == 7          # input->conv1 ... dense1->dense2
    assert 7 <= brian2["first_output_spike_delay_steps"] <= 9
    assert "| brian2 |" in (sandbox / "results" / "cmp" / "simulators.md").read_text()


@pytest.mark.slow
def test_compare_keeps_unsigned_input_as_an_option(sandbox, tiny_npz):
    assert main(["compare", f"OUT={sandbox}", "--data", str(tiny_npz), "--width", "4", "--epochs", "3", "--run", "cmpu",
                 "--scale", "unsigned", "--timesteps", "20", "--num-samples", "4"]) == 0
    report = json.loads((sandbox / "results" / "cmpu" / "simulators.json").read_text())
    assert report["scale"] == "unsigned" and report["input"] == "as is" and report["negative_input_fraction"] == 0
    assert list(report["simulators"]) == ["INI"] and report["num_samples"] == 4 and not report["pairs"]
    assert "accuracy_interval" in report["simulators"]["INI"]


def test_a_layer_silent_in_one_simulator_fails_the_rate_check_and_one_silent_in_both_is_said():
    rng = np.random.default_rng(0)
    spiking = rng.integers(0, 20, (3, 10)).astype(float)
    silent = np.zeros((3, 10))
    ini = {"conv": spiking, "dense": silent, "out": spiking}
    brian2 = {"conv": silent, "dense": silent, "out": spiking}
    r, interval, diff = compare.rate_statistics(ini, brian2, 20)
    assert r["conv"] == 0.0 and interval["conv"] == {"mean": 0.0, "interval": [0.0, 0.0], "n": 3}
    assert not r["conv"] > 0.95                       # the check of test_compare_ini_brian2 fails
    assert r["dense"] is None and interval["dense"]["mean"] is None and diff["dense"] == 0
    assert r["out"] == pytest.approx(1)
    report = {"timesteps": 20, "num_samples": 3, "input": "onoff", "scale": "signed", "width": 4, "epochs": 3,
              "ann": {"accuracy": 1.0, "accuracy_interval": [0.4, 1.0], "accuracy_test": 1.0, "num_test": 3},
              "simulators": {}, "class_agreement": 1.0, "class_agreement_interval": [0.4, 1.0],
              "rate_correlation": r, "rate_correlation_interval": interval, "rate_mean_abs_diff": diff}
    rows = {line.split(" | ")[0]: line for line in compare.markdown(report).splitlines()}
    assert "n/a (the same constant rates: silent in both)" in rows["| dense"]
    assert "| 0.000 |" in rows["| conv"]


def test_first_output_spike_and_matched_latency():
    counts = np.zeros((3, 2, 6), int)          # (samples, classes, T) cumulative output spikes
    counts[0, 1, 2:] = 1
    counts[1, 0, 4:] = 2
    steps = compare.first_output_spike_steps({"output_counts": counts})
    assert steps.tolist() == [2, 4, -1]        # sample 2 never spiked
    assert compare.first_spike_summary(steps, np.array([0, 1, 0])) == (3.0, 2.5)
    curve = np.array([0, 0, .5, .5, 1, 1])
    assert compare.accuracy_at_latency(curve, 6, 1) == 1.0      # INI after 5 steps
    assert compare.accuracy_at_latency(curve, 6, 3) == 0.5
    assert compare.accuracy_at_latency(curve, 6, 4) == 0.0
    assert compare.accuracy_at_latency(curve, 6, 6) == 0.0      # nothing left to compute in


@pytest.mark.parametrize("sims,message", [("", "SIMS is empty"), ("INI loihi9", "unknown simulator 'loihi9'"),
                                          ("INI nest", "nest is not supported")])
def test_bad_simulators(sandbox, sims, message, capsys):
    assert main(["compare", f"OUT={sandbox}", "--run", "c", "--timesteps", "10", "--sims", sims]) == 2
    assert message in capsys.readouterr().err


def test_a_simulator_not_installed_is_named_with_its_extra(sandbox, monkeypatch, capsys):
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(compare.importlib.util, "find_spec", lambda name: None if name == "brian2" else real(name))
    assert main(["compare", f"OUT={sandbox}", "--run", "c", "--sims", "INI brian2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "brian2" in err and "sims extra" in err
    assert not (sandbox / "results" / "c").exists()     # refused before anything is written
