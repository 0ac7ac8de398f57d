"""snnTorch (a simulator we did not write, in its own environment `.venv-interop`) runs our NIR export of
the symmetric-bug network: with its IF made the file's (beta 1, reset_delay on) every layer's spike count
equals the engine's, neuron by neuron."""
import json

import numpy as np
import pytest

from conftest import check_uncertainty
from pipeline import UserError, engine, nirgraph, peers
from test_nirgraph import THRESHOLDS, T, asymmetric_net, corner_inputs, settings


def test_snntorch_spikes_as_the_engine_on_the_symmetric_bug_network(tmp_path):
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings("spiking", "spike_count"))
    nirgraph.write(tmp_path / "net.nir", net.describe())
    x = corner_inputs()
    ours = net.simulate(x, record=range(len(x)))
    theirs = peers.snntorch(tmp_path / "net.nir", x, T, batch_size=3, threads=1)
    assert theirs.versions["snntorch"] == "1.0.0" and theirs.versions["nir"] == "1.0.8"
    # Exact: the same float32 membranes cross the same thresholds (a tolerance would hide a layout bug
    # that moves a few spikes); every layer, every neuron, and the readout's spikes step by step.
    rows = peers.layer_agreement(ours.recorded, theirs.totals["corrected"])
    assert set(rows) == {"c1", "p1", "c2", "p2", "d1", "d2"}
    assert all(row["equal_per_neuron"] == 1.0 and row["engine_spikes"] > 0 for row in rows.values()), rows
    np.testing.assert_array_equal(np.cumsum(theirs.output["corrected"], axis=1), ours.outputs)
    np.testing.assert_array_equal(peers.predictions(theirs.output["corrected"]), ours.predictions)
    # As imported, snnTorch's IF leaks (beta 0.9): fewer spikes from the first layer on. With beta 1 alone,
    # c2's neurons, driven above twice their threshold, fall a spike behind (reset_delay off).
    imported = peers.layer_agreement(ours.recorded, theirs.totals["imported"])
    assert imported["c1"]["peer_spikes"] < imported["c1"]["engine_spikes"]
    assert peers.first_difference(imported) == "c1" and peers.first_difference(rows) is None
    beta1 = peers.layer_agreement(ours.recorded, theirs.totals["beta1"])
    assert peers.first_difference(beta1) == "c2" and beta1["c2"]["peer_spikes"] < beta1["c2"]["engine_spikes"]


def test_a_missing_environment_or_a_bad_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="make .venv-interop"):
        peers.python(tmp_path / "nowhere")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="snnTorch failed on it"):
        peers.snntorch(bad, corner_inputs(), T, batch_size=4, threads=1)


@pytest.mark.slow
def test_interop_stage_cross_checks_the_exported_file(sandbox, tiny_npz, capsys):
    from pipeline.__main__ import main
    common = ["--run", "io", "--timesteps", "8"]
    assert main(["interop", "--data", str(tiny_npz), "--epochs", "2", "--width", "4", *common]) == 2
    assert "make export NET=converted T=8 RUN=io writes it" in capsys.readouterr().err
    assert main(["export", *common]) == 0
    assert main(["interop", *common, "--num-samples", "6"]) == 0
    run = sandbox / "results" / "io"
    record = json.loads((run / "interop.json").read_text())
    assert record["num_samples"] == 6 and record["timesteps"] == 8 and record["threads"] > 0
    corrected = record["snntorch"]["corrected"]
    assert corrected["first_difference"] is None and corrected["accuracy"] == record["engine"]["accuracy"]
    assert corrected["accuracy_per_timestep"] == pytest.approx(record["engine"]["accuracy_per_timestep"])
    assert set(corrected["layers"]) == {"conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"}
    assert record["snntorch"]["imported"]["first_difference"] == "conv1"
    assert "0.9" in record["snntorch"]["imported"]["cause"]
    check_uncertainty(record, (), (("snntorch_corrected", "engine"),))
    assert "| conv1 |" in (run / "interop.md").read_text()
    assert main(["export", *common, "--net", "qcfs"]) == 0
    assert main(["interop", *common, "--net", "qcfs"]) == 2
    assert "NIR integrator I" in capsys.readouterr().err
