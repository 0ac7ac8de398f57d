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
    assert main(["compare", "--data", str(tiny_npz), "--width", "4", "--epochs", "3", "--run", "cmp",
                 "--timesteps", "40", "--num-samples", "4", "--sims", "INI brian2"]) == 0
    report = json.loads((sandbox / "results" / "cmp" / "simulators.json").read_text())
    assert set(report["simulators"]) == {"INI", "brian2"} and report["scale"] == "unsigned"
    for sim in report["simulators"].values():
        assert 0 <= sim["accuracy"] <= 1 and sim["wall_seconds"] > 0 and sim["peak_memory_mb"] > 0
    assert 0 <= report["class_agreement"] <= 1
    layers = report["rate_correlation"]
    assert len(layers) == 7 and any(name.startswith("00Conv2D") for name in layers)
    # even kernels wired as Keras computes them: every layer's rates agree, not just conv1's
    assert all(r is None or r > 0.95 for r in layers.values()), layers
    brian2 = report["simulators"]["brian2"]
    assert brian2["output_delay_steps"] == 7          # input->conv1 ... dense1->dense2
    assert 7 <= brian2["first_output_spike_delay_steps"] <= 9
    assert "| brian2 |" in (sandbox / "results" / "cmp" / "simulators.md").read_text()


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
    assert main(["compare", "--run", "c", "--timesteps", "10", "--sims", sims]) == 2
    assert message in capsys.readouterr().err
