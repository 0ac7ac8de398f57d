"""Compare: INI vs brian2 on one tiny converted model; the brian2 compat patch; bad SIMS."""
import json

import numpy as np
import pytest

from pipeline import toolbox_compat
from pipeline.__main__ import main


def test_ragged_spiketrains_become_object_arrays():
    """brian2's get_spiketrains_output: np.array(list of per-neuron spike-time arrays of different lengths)."""
    from snntoolbox.simulation.target_simulators import brian2_target_sim
    trains = [np.array([1.0, 5.0]), np.array([]), np.array([3.0])]
    with pytest.raises(ValueError):
        np.array(trains)
    toolbox_compat.apply()
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
    assert report["simulators"]["brian2"]["output_delay_steps"] > 0
    layers = report["rate_correlation"]
    assert len(layers) >= 5 and any(name.startswith("00Conv2D") for name in layers)
    assert layers[next(n for n in layers if n.startswith("00Conv2D"))] > 0.5   # same input, same first layer
    assert "| brian2 |" in (sandbox / "results" / "cmp" / "simulators.md").read_text()


@pytest.mark.parametrize("sims,message", [("", "SIMS is empty"), ("INI loihi9", "unknown simulator 'loihi9'")])
def test_bad_simulators(sandbox, sims, message, capsys):
    assert main(["compare", "--run", "c", "--timesteps", "10", "--sims", sims]) == 2
    assert message in capsys.readouterr().err
