"""snnTorch (a simulator we did not write, in its own environment `.venv-interop`) runs our NIR export of
the symmetric-bug network: with its IF made the file's (beta 1, reset_delay on) every layer's spike count
equals the engine's, neuron by neuron, with constant input and with the engine's own Poisson frames; and
NeuroBench's operation counts on it are the hand-computed ones and what its rule gives on the engine's spikes.
Residual graphs (a merge's edges summed, a Scale rescaling the shortcut, a grouped convolution) spike as the
engine too."""
import json

import numpy as np
import pytest

from conftest import check_uncertainty
from pipeline import UserError, energy, engine, network, nirgraph, peers
from test_graph import layers, residual_block, separable_chain, tf
from test_nirgraph import THRESHOLDS, T, asymmetric_net, biased, calibrated, corner_inputs, graph_inputs, settings

pytestmark = pytest.mark.slow  # every test runs snnTorch or NeuroBench in .venv-interop


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


def test_snntorch_spikes_as_the_engine_on_its_poisson_frames(tmp_path):
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings("spiking", "spike_count"))
    net = net.with_settings(coding="poisson", seed=7)
    nirgraph.write(tmp_path / "net.nir", net.describe())
    x = corner_inputs()
    frames = engine.coded_frames(net, x)
    ours = net.simulate(x, record=range(len(x)))
    # The frames are the engine's own draws: its input count step by step, and a random input's draws vary.
    np.testing.assert_array_equal((frames != 0).sum(axis=(0, 2, 3, 4)), ours.spikes_per_timestep[:, 0])
    assert set(np.unique(frames)) == {0.0, 1.0} and 0 < frames[2:].mean() < 1
    theirs = peers.snntorch(tmp_path / "net.nir", x, T, batch_size=4, threads=1, variants=("corrected",), frames=frames)
    rows = peers.layer_agreement(ours.recorded, theirs.totals["corrected"])
    assert all(row["equal_per_neuron"] == 1.0 and row["engine_spikes"] > 0 for row in rows.values()), rows
    np.testing.assert_array_equal(np.cumsum(theirs.output["corrected"], axis=1), ours.outputs)
    # Held input instead of these frames: other spikes (the frames were used).
    held = peers.snntorch(tmp_path / "net.nir", x, T, batch_size=4, threads=1, variants=("corrected",))
    assert peers.first_difference(peers.layer_agreement(ours.recorded, held.totals["corrected"])) == "c1"

    # NeuroBench on the same frames: 0/1 input, so conv1's operations are ACs, as many as the energy model's
    # (input events x fan-out), and every layer's as its rule gives on the engine's spikes.
    bench = peers.neurobench(tmp_path / "net.nir", x, T, threads=1, frames=frames)
    counts = energy.count_operations(net.graph.compute_nodes, ours.neuron_totals, (frames != 0).sum(axis=(0, 1)),
                                     len(x), "spiking")
    assert bench["layers"]["c1"]["calls_as_ac"] == T and bench["layers"]["c1"]["macs"] == 0
    assert bench["layers"]["c1"]["acs"] == round(counts[0].snn_acs * len(x))
    compared = peers.compare_operations(net.graph.compute_nodes, counts, bench, x, frames, T, len(x))
    assert compared["all_equal_to_expected"]


def test_neurobench_counts_the_symmetric_bug_network_as_computed_by_hand(tmp_path):
    net = engine.SpikingNetwork(asymmetric_net(), THRESHOLDS, settings("spiking", "spike_count"))
    nirgraph.write(tmp_path / "net.nir", net.describe())
    x = corner_inputs()
    ours = net.simulate(x, record=range(len(x)))
    bench = peers.neurobench(tmp_path / "net.nir", x, T, threads=1)
    assert bench["versions"]["neurobench"] == "2.3.0"
    # c1 (kernel 4x2 'same' on 6x10: 1 row of padding before, 2 after; 0 columns before, 1 after; 3 channels)
    # gets analog input, so NeuroBench counts MACs at every step, one per nonzero input x reached neuron:
    # the (0, 0) corner reaches rows {0, 1} x column {0} (2 x 1 x 3 = 6), the (5, 9) corner rows {3, 4, 5} x
    # columns {8, 9} (3 x 2 x 3 = 18); a full input reaches (2+3+4+4+4+3) x (1+2x9) x 3 = 20 x 19 x 3 = 1140
    # (its "dense" count: padding costs nothing), where the energy model counts the ANN's 6x10x3x8 = 1440
    # (padding included) once per inference.
    c1 = bench["layers"]["c1"]
    assert c1 == {"acs": 0, "macs": T * (6 + 18 + 2 * 1140), "dense": T * 4 * 1140, "calls_as_ac": 0, "calls_as_mac": T}
    assert set(bench["layers"]) == {"c1", "c2", "d1", "d2"}          # pools are no connection layers
    nodes = net.graph.compute_nodes
    counts = energy.count_operations(nodes, ours.neuron_totals, None, len(x), "spiking")
    assert counts[0].snn_macs == 1440 and counts[0].snn_acs == 0
    compared = peers.compare_operations(nodes, counts, bench, x, None, T, len(x))
    assert compared["all_equal_to_expected"] and compared["total"]["by_layer_sums_to_synaptic_operations"]
    rows = compared["layers"]
    # After c1 every layer's input is spikes: both count the source's spikes x fan-out as ACs, exactly.
    for name in ("c2", "d1", "d2"):
        assert rows[name]["neurobench_acs"] == pytest.approx(rows[name]["energy_model_acs"], rel=1e-12)
        assert rows[name]["neurobench_acs"] > 0 and rows[name]["neurobench_macs"] == 0
    assert rows["p1"]["neurobench_acs"] == 0 and rows["p1"]["energy_model_acs"] > 0
    sparsity = peers.activation_sparsity(ours.neuron_totals, T, len(x), bench)
    assert sparsity["equal"] and 0 < sparsity["overall"]["neurobench"] < 1
    assert np.array_equal(bench["output_spikes"], ours.outputs[:, -1])


def grouped_residual(seed=2):
    """A grouped convolution (2 groups of 2 input channels), a linear pointwise one, and a residual add of
    its current and the first convolution's spikes, under a ReLU; a dense readout."""
    tf.keras.utils.set_random_seed(seed)
    inputs = layers.Input((4, 4, 2))
    first = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.Conv2D(8, 3, padding="same", groups=2, activation="relu", name="grouped")(first)
    x = layers.Conv2D(4, 1, name="pointwise")(x)
    x = layers.ReLU(name="relu")(layers.Add(name="add")([x, first]))
    return tf.keras.Model(inputs, layers.Dense(3, name="out")(layers.Flatten(name="flatten")(x)))


@pytest.mark.parametrize("build", [residual_block, grouped_residual])
def test_snntorch_spikes_as_the_engine_on_residual_graphs(tmp_path, build):
    # snnTorch's importer sums the edges that meet at the add's IF (nirtorch's rule) and runs the Scale that
    # rescales the shortcut's spikes to the branch's unit; with its IF made the file's, every layer (the add
    # too) spikes as the engine, neuron by neuron, and the readout step by step.
    import h5py
    net = calibrated(biased(build()), graph_inputs())    # nonzero biases: each enters over its input's unit
    path = tmp_path / "net.nir"
    nirgraph.write(path, net.describe())
    x = graph_inputs()
    ours = net.simulate(x, record=range(len(x)))
    theirs = peers.snntorch(path, x, T, batch_size=4, threads=1, variants=("corrected",))
    rows = peers.layer_agreement(ours.recorded, theirs.totals["corrected"])
    assert "add" in rows and set(rows) == set(net.spiking_layer_names)
    assert all(row["equal_per_neuron"] == 1.0 and row["engine_spikes"] > 0 for row in rows.values()), rows
    np.testing.assert_array_equal(np.cumsum(theirs.output["corrected"], axis=1), ours.outputs)
    # The Scale is used: set to 1 (the shortcut added unscaled), the add is the first layer that differs.
    with h5py.File(path, "r+") as f:
        scale = next(f"node/nodes/{name}/scale" for name in f["node/nodes"] if name.startswith("add.scale."))
        assert not np.all(f[scale][...] == 1)
        f[scale][...] = 1
    unscaled = peers.snntorch(path, x, T, batch_size=4, threads=1, variants=("corrected",))
    assert peers.first_difference(peers.layer_agreement(ours.recorded, unscaled.totals["corrected"])) == "add"


def test_a_depthwise_convolution_snntorch_cannot_build_is_refused_in_one_line():
    peers.check_importable(network.describe(grouped_residual()))     # 2 channels a group, 2 groups: it builds
    with pytest.raises(UserError, match="layer 'depthwise': snnTorch 1.0.0's NIR importer builds this grouped "
                                        "Conv2d with in_channels = 4 / 4"):
        peers.check_importable(network.describe(separable_chain()))


def test_a_missing_environment_or_a_bad_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="make .venv-interop"):
        peers.python(tmp_path / "nowhere")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="snnTorch failed on it"):
        peers.snntorch(bad, corner_inputs(), T, batch_size=4, threads=1)


def test_interop_stage_cross_checks_the_exported_file(sandbox, tiny_npz, capsys):
    from pipeline.__main__ import main
    common = ["--run", "io", "--timesteps", "16"]
    assert main(["interop", f"OUT={sandbox}", "--data", str(tiny_npz), "--epochs", "2", "--width", "4", *common]) == 2
    assert "make export NET=converted T=16 RUN=io writes it" in capsys.readouterr().err
    assert main(["export", f"OUT={sandbox}", *common]) == 0
    assert main(["interop", f"OUT={sandbox}", *common, "--num-samples", "6"]) == 0
    run = sandbox / "results" / "io"
    record = json.loads((run / "interop.json").read_text())
    assert record["num_samples"] == 6 and record["timesteps"] == 16 and record["threads"] > 0
    corrected = record["snntorch"]["corrected"]
    assert corrected["first_difference"] is None and corrected["accuracy"] == record["engine"]["accuracy"]
    assert corrected["accuracy_per_timestep"] == pytest.approx(record["engine"]["accuracy_per_timestep"])
    assert set(corrected["layers"]) == {"conv1", "pool1", "conv2", "pool2", "conv3", "dense1", "dense2"}
    assert record["snntorch"]["imported"]["first_difference"] == "conv1"
    assert "0.9" in record["snntorch"]["imported"]["cause"]
    check_uncertainty(record, (), (("snntorch_corrected", "engine"),))
    assert "| conv1 |" in (run / "interop.md").read_text()
    # Poisson input (the default CODING; the converted file's rule is the toolbox's, amplitude max(x)): the
    # engine's frames went to snnTorch (equal spikes above) and NeuroBench, which counts conv1's events as MACs.
    assert record["coding"] == "poisson" and "toolbox rule" in record["input"]
    nb = record["neurobench"]
    assert nb["operations"]["all_equal_to_expected"] and nb["activation_sparsity"]["equal"]
    assert nb["readout_spikes_equal_engine"] and nb["operations"]["total"]["by_layer_sums_to_synaptic_operations"]
    conv1 = nb["operations"]["layers"]["conv1"]
    assert conv1["neurobench_macs"] == pytest.approx(conv1["energy_model_acs"]) and conv1["neurobench_acs"] == 0
    assert "## NeuroBench" in (run / "interop.md").read_text()
    assert main(["interop", f"OUT={sandbox}", *common, "--num-samples", "6", "--coding", "analog"]) == 0
    conv1 = json.loads((run / "interop.json").read_text())["neurobench"]["operations"]["layers"]["conv1"]
    assert conv1["neurobench_macs"] > conv1["energy_model_macs"] > 0 and conv1["equal_to_expected"]
    assert main(["interop", f"OUT={sandbox}", *common, "--coding", "delta"]) == 2
    assert "CODING=delta" in capsys.readouterr().err
    assert main(["export", f"OUT={sandbox}", *common, "--net", "qcfs"]) == 0
    assert main(["interop", f"OUT={sandbox}", *common, "--net", "qcfs"]) == 2
    assert "NIR integrator I" in capsys.readouterr().err


def test_neurobench_and_the_energy_model_skip_the_same_zero_weights(tmp_path):
    model = asymmetric_net()
    for name in ("c2", "d1"):   # a pruned network: half of each kernel zero, chosen at random
        kernel, *rest = model.get_layer(name).get_weights()
        kernel[np.random.default_rng(0).random(kernel.shape) < 0.5] = 0
        model.get_layer(name).set_weights([kernel, *rest])
    net = engine.SpikingNetwork(model, THRESHOLDS, settings("spiking", "spike_count"))
    nirgraph.write(tmp_path / "net.nir", net.describe())
    x = corner_inputs()
    ours = net.simulate(x, record=range(len(x)))
    bench = peers.neurobench(tmp_path / "net.nir", x, T, threads=1)
    nodes = net.graph.compute_nodes
    counts = energy.count_operations(nodes, ours.neuron_totals, None, len(x), "spiking")
    compared = peers.compare_operations(nodes, counts, bench, x, None, T, len(x))
    assert compared["all_equal_to_expected"]
    for name in ("c2", "d1"):
        row = compared["layers"][name]
        assert 0 < row["neurobench_acs"] == pytest.approx(row["energy_model_acs"], rel=1e-12)
