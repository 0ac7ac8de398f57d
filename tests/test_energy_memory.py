"""The memory-inclusive energy model and the footprint, counted by hand on a tiny net (NumPy only).

The net: a 3x3x1 input -> Conv2D 2x2 'valid', 1 filter (2x2x1 = 4 neurons) -> Flatten -> Dense 4 -> 3
(the membrane readout). Every memory of it is under 8 KB, so every 64-bit access costs 10 pJ
(Horowitz's smallest class): a 32-bit word 5 pJ, an address of b bits 10 * b / 64 pJ.
"""
import numpy as np
import pytest

from pipeline import energy, network

T = 5


def tiny_net(bias=False):
    conv = network.Conv2d(name="conv", input_shape=(3, 3, 1), output_shape=(2, 2, 1), kernel_size=(2, 2),
                          neuron=network.IF(1.0))
    dense = network.Affine(name="dense", input_shape=(4,), output_shape=(3,), use_bias=bias, readout=True)
    return [conv, dense]


def tiny_counts(layers):
    """Input: the centre pixel 2 events (reaches all 4 conv outputs), a corner 1 (reaches 1): 9 conv ACs.
    Conv: 3 spikes, each reaching the 3 dense units: 9 dense ACs. One sample."""
    inputs = np.zeros((3, 3, 1))
    inputs[1, 1], inputs[0, 0] = 2, 1
    conv_spikes = np.zeros((2, 2, 1))
    conv_spikes[0, 0], conv_spikes[1, 1] = 1, 2
    counts = energy.count_operations(layers, {"conv": conv_spikes}, inputs, 1, "linear")
    assert [(c.snn_acs, c.snn_spikes, c.ann_macs) for c in counts] == [(9, 3, 16), (9, 0, 12)]
    return counts, float(inputs.sum())


def by_what(accesses):
    return {(a.what, a.memory): a.count for a in accesses}


def test_sram_energy_interpolates_in_log_size_between_horowitz_points_and_holds_outside():
    kib = 1024
    assert energy.sram_access_pj(8 * kib, 64) == 10 and energy.sram_access_pj(32 * kib, 64) == 20
    assert energy.sram_access_pj(1024 * kib, 64) == 100
    assert energy.sram_access_pj(16 * kib, 64) == pytest.approx(15)             # halfway in log2: 13 -> 15
    assert energy.sram_access_pj(256 * kib, 32) == pytest.approx((20 + 80 * 3 / 5) / 2)   # 3 of 5 doublings, 32 bits
    assert energy.sram_access_pj(100, 64) == 10 and energy.sram_access_pj(4096 * kib, 8) == 100 / 8


def test_footprint_counts_weights_and_neuron_state_by_hand():
    layers = tiny_net(bias=True)
    rows, total = energy.footprint(layers, bits=32)
    assert [(r["weights"], r["state_words"]) for r in rows] == [(4, 4), (12 + 3, 3)]
    assert (total["weight_bytes"], total["state_bytes"], total["bytes"]) == (19 * 4, 7 * 4, 26 * 4)
    _, int8 = energy.footprint(layers, bits=8, coding="analog")          # int8: a byte a word; analog: held current
    assert (int8["weight_bytes"], int8["state_bytes"]) == (19, 4 * 2 + 3)
    _, ann = energy.footprint(layers, bits=32, kind="ann")                # ANN state: output activations
    assert ann["state_bytes"] == 7 * 4


def test_snn_memory_accesses_are_counted_by_hand():
    layers = tiny_net()
    counts, events = tiny_counts(layers)
    conv, dense = energy.snn_accesses(layers, counts, T, events, "linear", "poisson", bits=32)
    assert by_what(conv) == {
        ("event read", "input events"): 3,            # each input event read once
        ("weight read", "weights"): 9,                # one per AC
        ("membrane read", "state"): 9, ("membrane write", "state"): 9,
        ("membrane init", "state"): 4, ("spike reset", "state"): 3,
        ("spike event write", "events"): 3}
    assert by_what(dense) == {
        ("event read", "conv events"): 3, ("weight read", "weights"): 9,
        ("membrane read", "state"): 9, ("membrane write", "state"): 9, ("membrane init", "state"): 3}
    # addresses: 9 input positions -> 4 bits, 4 conv neurons -> 2 bits
    assert {a.what: a.bits for a in conv}["event read"] == 4 and {a.what: a.bits for a in dense}["event read"] == 2
    rows, total = energy.memory_table(layers, counts, energy.costs(), T, events, "linear", "poisson")
    conv_pj = 3 * 10 * 4 / 64 + (9 + 9 + 9 + 4 + 3) * 5 + 3 * 10 * 2 / 64
    dense_pj = 3 * 10 * 2 / 64 + (9 + 9 + 9 + 3) * 5
    assert rows[0]["snn_memory_j"] == pytest.approx(conv_pj * 1e-12)
    assert rows[1]["snn_memory_j"] == pytest.approx(dense_pj * 1e-12)
    assert total["snn_total_j"] == pytest.approx((conv_pj + dense_pj + 18 * 0.9) * 1e-12)   # + the 18 ACs


def test_ann_memory_accesses_and_energy_are_counted_by_hand():
    layers = tiny_net()
    counts, events = tiny_counts(layers)
    conv, dense = energy.ann_accesses(layers, counts, bits=32)
    assert by_what(conv) == {("input read", "input activations"): 16, ("weight read", "weights"): 16,
                             ("activation write", "activations"): 4}
    assert by_what(dense) == {("input read", "input activations"): 12, ("weight read", "weights"): 12,
                              ("activation write", "activations"): 3}
    rows, total = energy.memory_table(layers, counts, energy.costs(), T, events, "linear", "poisson")
    assert [r["ann_memory_j"] for r in rows] == pytest.approx([(16 + 16 + 4) * 5e-12, (12 + 12 + 3) * 5e-12])
    assert total["ann_total_j"] == pytest.approx(((36 + 27) * 5 + 28 * 4.6) * 1e-12)
    snn_pj = 3 * 10 * 4 / 64 + 34 * 5 + 3 * 10 * 2 / 64 + 3 * 10 * 2 / 64 + 30 * 5 + 18 * 0.9
    assert total["normalized_energy_memory"] == pytest.approx(snn_pj / ((36 + 27) * 5 + 28 * 4.6))


def test_a_bias_an_analog_input_and_int8_words_change_the_counts_as_stated():
    layers = tiny_net(bias=True)
    analog = energy.count_operations(layers, {"conv": np.array([[[1], [0]], [[0], [2]]])}, None, 1, "linear")
    conv, dense = energy.snn_accesses(layers, analog, T, None, "linear", "analog", bits=8)
    assert by_what(conv) == {
        ("weight read", "weights"): 16, ("input read", "input"): 16, ("current write", "state"): 4,   # once
        ("step membrane read", "state"): T * 4, ("step membrane write", "state"): T * 4,
        ("step current read", "state"): T * 4, ("membrane init", "state"): 4, ("spike reset", "state"): 3,
        ("spike event write", "events"): 3}
    assert by_what(dense)[("step bias read", "weights")] == T * 3                 # the bias: every neuron, every step
    assert by_what(dense)[("step membrane write", "state")] == T * 3
    assert {a.what: a.bits for a in conv}["weight read"] == 8
    assert by_what(energy.ann_accesses(layers, analog, bits=8)[1])[("bias read", "weights")] == 3


def test_the_memory_record_holds_both_footprints_and_prints_a_with_memory_table():
    layers = tiny_net()
    counts, events = tiny_counts(layers)
    record = energy.memory_record(layers, counts, energy.costs("int8"), T, events, "linear", "poisson")
    assert record["total"]["bits"] == 8 and record["footprint"]["snn"]["total"]["bytes"] == 16 + 7
    lines = energy.memory_lines(record)
    assert len(lines) == 1 + 2 + 2 and "with memory (8-bit words" in lines[3] and "weights 16 B" in lines[4]
