"""The energy model on graphs, counted by hand: a grouped conv, a linear conv, an Add, a Concatenate."""
import dataclasses

import numpy as np
import pytest

from pipeline import UserError, energy, network

T = 5


class Kernel:
    """A stand-in for a Keras layer: just its weights."""
    def __init__(self, kernel):
        self.kernel = kernel

    def get_weights(self):
        return [self.kernel]


def tiny_graph(kernel=None):
    """input (2,2,2) -> dw: Conv 2x2 'same', 4 filters in 2 groups (IF) -> lin: Conv 1x1, 4 filters, linear
    -> add = lin + dw (IF) -> cat = [add, lin] (2,2,8) -> flatten -> out: Dense 3 (readout).
    'same' with a 2x2 kernel pads after: along an axis, index 0 reaches output 0, index 1 outputs 0 and 1."""
    IF = network.IF(1.0)
    dw = network.Conv2d(name="dw", input_shape=(2, 2, 2), output_shape=(2, 2, 4), kernel_size=(2, 2), padding="same",
                        groups=2, neuron=IF, inputs=("input",), layer=None if kernel is None else Kernel(kernel))
    lin = network.Conv2d(name="lin", input_shape=(2, 2, 4), output_shape=(2, 2, 4), kernel_size=(1, 1), inputs=("dw",))
    add = network.Add(name="add", input_shape=(2, 2, 4), output_shape=(2, 2, 4), neuron=IF, inputs=("lin", "dw"))
    cat = network.Concatenate(name="cat", input_shape=(2, 2, 4), output_shape=(2, 2, 8), inputs=("add", "lin"))
    flat = network.Flatten(name="flat", input_shape=(2, 2, 8), output_shape=(32,), inputs=("cat",))
    out = network.Affine(name="out", input_shape=(32,), output_shape=(3,), readout=True, neuron=IF, inputs=("flat",))
    return network.Network("tiny", (2, 2, 2), (dw, lin, add, cat, flat, out))


def spikes():
    """Input: 3 events at (0,0,0) (fan-out 1x1 positions x 2 channels of its group), 2 at (1,1,1) (2x2 x 2),
    1 at (0,1,0) (1x2 x 2). dw: 3 spikes; add: 4. One sample."""
    inputs = np.zeros((2, 2, 2))
    inputs[0, 0, 0], inputs[1, 1, 1], inputs[0, 1, 0] = 3, 2, 1
    dw, add = np.zeros((2, 2, 4)), np.zeros((2, 2, 4))
    dw[0, 0, 0], dw[1, 1, 3], add[0, 1, 2] = 2, 1, 4
    return inputs, {"dw": dw, "add": add}


def by_what(accesses):
    """Access counts by (what, memory), summed over the things a node reads."""
    found = {}
    for a in accesses:
        found[a.what, a.memory] = found.get((a.what, a.memory), 0) + a.count
    return found


def test_a_grouped_conv_reaches_only_its_groups_output_channels():
    dw = tiny_graph().nodes[0]
    np.testing.assert_array_equal(energy.fan_out(dw)[:, :, 0], [[1 * 2, 2 * 2], [2 * 2, 4 * 2]])
    assert energy.ann_macs(dw) == 2 * 2 * 4 * (2 * 2) * 2 // 2 == 64     # H_out W_out C_out k_h k_w C_in / groups
    # With weights: input channel 0 (group 0) reaches output channel 0 through tap (0,0) and channel 1 through
    # tap (1,1); input channel 1 (group 1) reaches output channel 2 through tap (0,0). Input (i,j) reaches output
    # (i - m, j - m) through tap (m, m).
    kernel = np.zeros((2, 2, 1, 4))
    kernel[0, 0, 0, 0], kernel[1, 1, 0, 1], kernel[0, 0, 0, 2] = 0.5, 0.2, -0.4
    dw = tiny_graph(kernel).nodes[0]
    np.testing.assert_array_equal(energy.fan_out(dw), [[[1, 1], [1, 1]], [[1, 1], [2, 1]]])
    assert energy.ann_macs(dw) == 4 * 3 and energy.weight_count(dw) == 3


def test_a_graph_is_counted_along_its_edges_by_hand():
    graph = tiny_graph()
    inputs, totals = spikes()
    dw, lin, add, out = energy.count_operations(graph, totals, inputs, 1, "linear", T)
    assert [c.ann_macs for c in (dw, lin, add, out)] == [64, 2 * 2 * 4 * 4, 0, 32 * 3]
    assert add.ann_adds == 16 * (2 - 1)                                  # one add per output per extra input
    assert dw.snn_acs == 3 * 2 + 2 * 8 + 1 * 4 == 26 and dw.snn_macs == 0
    assert lin.snn_acs == 3 * 4 and lin.snn_spikes == 0                  # the linear conv pays for its input
    assert add.snn_acs == T * 16 + 3                                     # lin's current every step + dw's spikes
    assert out.snn_acs == 4 * 3                                          # add's spikes x fan-out 3
    assert out.snn_macs == T * 16 * 3                                    # lin's channels of cat: a current, T x MACs
    assert [(p.source, p.when) for p in out.parts] == [("add", "spikes"), ("lin", "every step")]
    assert "T x the MACs on it (its channels)" in out.ac_source and out.source == "add"
    # Analog input: dw computes its current once; the rest is unchanged.
    analog = energy.count_operations(graph, totals, None, 1, "linear", T)
    assert (analog[0].snn_macs, analog[0].snn_acs) == (64, 0) and analog[2].snn_acs == add.snn_acs
    # The input's fan-out and floor: dw alone reads the input.
    np.testing.assert_array_equal(energy.input_fan_out(graph, "linear")[:, :, 0], [[2, 4], [4, 8]])
    rows, total = energy.energy_table([dw, lin, add, out], energy.costs())
    floor, formula = energy.coding_floor("poisson", graph, inputs, 1, energy.costs(), total["ann_energy_j"])
    assert floor == pytest.approx(26 * 0.9 / ((64 + 64 + 96) * 4.6 + 16 * 0.9)) and "first layer" in formula
    # Energy over time: spikes' ACs follow their source's steps, currents' operations spread evenly.
    per_step = np.array([[6, 3, 0], [0, 0, 4]], float)                   # input, dw, add spikes per step (T=2 here)
    curve = energy.cumulative_energy([dw, lin, add, out], energy.costs(), per_step, ("input", "dw", "add"))
    assert curve[-1] == pytest.approx(total["snn_energy_j"])
    assert curve[0] == pytest.approx((26 + 12 + 3 + T * 16 / 2) * 0.9e-12 + T * 48 / 2 * 4.6e-12)


def test_a_graph_given_as_its_compute_nodes_is_refused():
    graph = tiny_graph()
    inputs, totals = spikes()
    with pytest.raises(UserError, match="^layer 'add' does not read 'lin' alone"):
        energy.count_operations(graph.compute_nodes, totals, inputs, 1, "linear", T)
    with pytest.raises(UserError, match="give timesteps"):
        energy.count_operations(graph, totals, inputs, 1, "linear")


def test_the_memory_model_counts_a_graphs_weights_state_and_accesses():
    graph = tiny_graph()
    inputs, totals = spikes()
    counts = energy.count_operations(graph, totals, inputs, 1, "linear", T)
    rows, _ = energy.footprint(graph, bits=32, counts=counts)
    # weights: dw 2*2*(2/2)*4, lin 4*4, add none, out 32*3; state: membranes, lin's current, add's membranes
    assert [(r["name"], r["weights"], r["state_words"]) for r in rows] == [
        ("dw", 16, 16), ("lin", 16, 16), ("add", 0, 16), ("out", 96, 3)]
    _, analog = energy.footprint(graph, bits=32, coding="analog")
    assert analog["state_bytes"] == (2 * 16 + 16 + 16 + 3) * 4          # dw holds the analog input's current
    dw, lin, add, out = energy.snn_accesses(graph, counts, T, float(inputs.sum()), "linear", "poisson")
    assert by_what(add) == {
        ("membrane init", "state"): 16, ("spike reset", "state"): 4, ("spike event write", "events"): 4,
        ("input read", "lin current"): T * 16,                             # lin's current, every step
        ("event read", "dw events"): 3, ("membrane read", "state"): 3, ("membrane write", "state"): 3,
        ("step membrane read", "state"): T * 16, ("step membrane write", "state"): T * 16}
    assert by_what(out)[("weight read", "weights")] == 12 + T * 48        # per AC and per MAC
    assert by_what(out)[("event read", "add events")] == 4
    assert by_what(lin)[("step membrane write", "state")] == T * 16        # its current is rebuilt every step
    ann = energy.ann_accesses(graph, counts)
    assert by_what(ann[2]) == {("input read", "input activations"): 32, ("activation write", "activations"): 16}


@pytest.mark.slow
def test_the_engines_spikes_on_a_residual_and_a_concat_graph_are_counted_along_their_edges():
    from pipeline import conversion, engine
    from test_graph import concat_block, residual_block
    x = np.random.default_rng(0).uniform(0, 1, (4, 4, 4, 2)).astype(np.float32)
    settings = engine.SnnSettings(timesteps=6, coding="poisson", batch_size=4)
    for build in (residual_block, concat_block):
        model = build()
        net = conversion.from_model(model, settings, {n.name: 0.3 for n in network.describe(model).calibrated()})
        result = net.simulate(x)
        pooling = net.settings.pooling
        totals, _, acs = engine.replay_input(net, x, energy.input_fan_out(net.graph, pooling))
        counts = energy.count_operations(net.graph, result.neuron_totals, totals, len(x), pooling, 6)
        counts = {c.name: c for c in counts}
        spent = [p.acs for c in counts.values() for p in c.parts if p.source == "input"]
        assert sum(spent) == pytest.approx(acs.sum() / len(x))       # the replayed input's ACs, all its readers
        _, total = energy.energy_table(list(counts.values()), energy.costs())
        curve = energy.cumulative_energy(list(counts.values()), energy.costs(), result.spikes_per_timestep,
                                         result.layer_names, acs / len(x))
        assert curve[-1] == pytest.approx(total["snn_energy_j"])
        assert all(np.sum(t) > 0 for t in result.neuron_totals.values())
        if build is residual_block:        # conv3 is linear: the add takes its 4x4x3 current every step
            assert counts["add"].snn_acs == pytest.approx(np.sum(result.neuron_totals["conv1"]) / len(x) + 6 * 48)
            assert counts["conv3"].snn_spikes == 0 and counts["conv3"].snn_acs > 0
        else:                              # the input feeds left and right; the linear pool folds into out
            assert len(spent) == 2 and counts["pool"].snn_acs == 0
            assert [p.source for p in counts["out"].parts] == ["left", "right"]


@pytest.mark.slow   # builds a Keras model and runs its convolution: ~10 s on the shared 2 cores
def test_a_keras_grouped_convs_fan_out_is_the_outputs_its_own_convolution_reaches():
    # Every input element as a unit impulse through Keras' grouped convolution with the kernel's non-zero
    # pattern (some taps pruned): the outputs it reaches are its fan-out, the block-diagonal layout's.
    import tensorflow as tf
    from test_graph import separable_chain
    model = separable_chain()
    layer = model.get_layer("depthwise")
    kernel = layer.get_weights()[0]
    kernel[0, :, 0, ::3] = 0                                    # prune a few taps
    layer.set_weights([kernel, layer.get_weights()[1]])
    node = next(n for n in network.describe(model).nodes if n.name == "depthwise")
    shape = node.input_shape
    impulses = np.eye(int(np.prod(shape)), dtype=np.float32).reshape((-1,) + tuple(shape))
    reached = layer.convolution_op(tf.constant(impulses), tf.constant((kernel != 0).astype(np.float32)))
    brute = np.count_nonzero(reached.numpy().reshape(len(impulses), -1), axis=1).reshape(shape)
    np.testing.assert_array_equal(np.broadcast_to(energy.fan_out(node), shape), brute)
    assert energy.ann_macs(node) == 4 * 4 * np.count_nonzero(kernel)


def maxpool_graph():
    """input (2,3,1) -> c: Conv 1x1, 2 filters (IF) -> mp: max pool 2x2, stride 2, 'valid' (1,1,2): column 2
    is in no window -> flat -> out: Dense 3 (readout). Input: 10 events at (0,0,0), 1 at (1,2,0); c spikes 3 at
    (0,0,0), 2 at (1,1,0), 1 at (1,0,1) (all in the window) and 5 at (0,2,1) (in none); mp passes 3 + 1."""
    IF = network.IF(1.0)
    c = network.Conv2d(name="c", input_shape=(2, 3, 1), output_shape=(2, 3, 2), kernel_size=(1, 1), neuron=IF,
                       inputs=("input",))
    mp = network.MaxPool2d(name="mp", input_shape=(2, 3, 2), output_shape=(1, 1, 2), kernel_size=(2, 2),
                           stride=(2, 2), inputs=("c",))
    flat = network.Flatten(name="flat", input_shape=(1, 1, 2), output_shape=(2,), inputs=("mp",))
    out = network.Affine(name="out", input_shape=(2,), output_shape=(3,), readout=True, neuron=IF, inputs=("flat",))
    inputs, c_spikes, mp_spikes = np.zeros((2, 3, 1)), np.zeros((2, 3, 2)), np.zeros((1, 1, 2))
    inputs[0, 0, 0], inputs[1, 2, 0] = 10, 1
    c_spikes[0, 0, 0], c_spikes[1, 1, 0], c_spikes[1, 0, 1], c_spikes[0, 2, 1] = 3, 2, 1, 5
    mp_spikes[0, 0] = 3, 1
    return network.Network("pooled", (2, 3, 1), (c, mp, flat, out)), inputs, {"c": c_spikes, "mp": mp_spikes}


def test_a_max_pools_gate_costs_two_acs_per_input_spike_in_a_window_and_its_spikes_cost_its_reader():
    graph, inputs, totals = maxpool_graph()
    c, mp, out = energy.count_operations(graph, totals, inputs, 1, "spiking", T)
    assert c.snn_acs == 11 * 2 and c.ann_macs == 6 * 2
    assert mp.ann_adds == 2 * 2 * 2 and mp.ann_macs == 0                  # one comparison per pooled input element
    assert mp.snn_acs == 2 * (3 + 2 + 1) and mp.snn_spikes == 4          # increment + comparison; (0,2,1) unpooled
    assert mp.source == "c" and "x 2 (its count's increment" in mp.ac_source
    assert out.snn_acs == 4 * 3 and out.source == "mp"                   # mp's spikes x fan-out 3
    rows, _ = energy.footprint(graph, bits=32, counts=[c, mp, out])
    assert rows[1]["weights"] == 0 and rows[1]["state_words"] == 8 + 2 * 2   # a counter per pooled input, 2 per window
    gate = energy.snn_accesses(graph, [c, mp, out], T, 11.0, "spiking", "poisson")[1]
    assert by_what(gate) == {
        ("gate init", "state"): 12, ("event read", "c events"): 11, ("spike event write", "events"): 4,
        ("count read", "state"): 6, ("count write", "state"): 6, ("window max read", "state"): 6,
        ("window max write", "state"): 6}
    assert by_what(energy.ann_accesses(graph, [c, mp, out])[1]) == {
        ("input read", "input activations"): 8, ("activation write", "activations"): 2}
    curve = energy.cumulative_energy([c, mp, out], energy.costs(), np.array([[11, 11, 4]]), ("input", "c", "mp"))
    assert curve[-1] == pytest.approx((22 + 12 + 12) * 0.9e-12)


def test_a_max_pool_fed_a_current_is_refused_in_one_line():
    graph, inputs, totals = maxpool_graph()
    linear = dataclasses.replace(graph.nodes[0], neuron=None)
    with pytest.raises(UserError, match=r"^max pool 'mp' reads a current, not spikes[^\n]*$"):
        energy.count_operations(network.Network("pooled", (2, 3, 1), (linear, *graph.nodes[1:])), totals, inputs,
                                1, "spiking", T)
