"""Memory-inclusive energy and the memory footprint, beside the operation-only model (no TensorFlow).

The operation-only model (`pipeline.energy.costs`) prices arithmetic alone and stays the study's
comparison. Hardware-aware studies (Lemaire et al. 2022, "An analytical estimation of spiking neural
networks energy efficiency"; Dampfhoffer et al. 2023, "Are SNNs really more energy-efficient than
ANNs? An in-depth hardware-aware study") count the memory accesses each operation needs as well;
this module counts them, per layer, for the SNN and for the ANN, with one set of rules:

Memories: every compute layer keeps its own SRAMs, each sized to hold what it holds (a layer per
core, the usual neuromorphic mapping): its weights, its neuron state (SNN: membranes, plus the held
input current of a first layer fed analog or delta input; ANN: its output activations) and, in the
SNN, its output event buffer (one step's worth at most: every neuron's address once). An access's
energy is that SRAM's 45 nm read energy for its size class (`sram_access_pj`), writes as reads.

SNN, per inference (event-driven: a neuron that receives no event is not touched):
- each input event is read once by the layer it feeds (an address word of ceil(log2 N_source) bits);
- each synaptic event (AC) reads its weight and reads and writes its target's membrane (events of
  a step arrive in any order, so a running sum cannot stay in a register: read-modify-write);
- each emitted spike writes one event (its address) and one membrane write (reset by subtraction);
- every membrane is written once per inference (v(0): 0, or theta/2 for QCFS);
- a layer whose neurons change without events (a bias, a leak, or the held current of an analog or
  delta first layer) is swept every step: each neuron's membrane read and written, plus its bias or
  held current read;
- analog first layer: its current is computed once (each MAC reads its weight and its input value)
  and written once per neuron; delta first layer: each input event's ACs update the held current
  (weight read, current read and write) instead of the membrane;
- a linear pool is folded into the next layer (as in `count_operations`): no accesses of its own;
  a spiking pool has no weights to read (its weight is the constant 1/k^2).
- a max pool's gate (no membranes) keeps a spike counter per pooled input and, per window, its
  argmax and that input's count (`gate_words`; all cleared once per inference): each input spike in
  a window reads its event, reads and writes its counter, and reads and writes the window's maximum
  (an upper bound: it is written only when the maximum changes); each spike it passes on writes one
  event.

Graphs (`pipeline.network`, counted along the edges as in `count_operations`): every node that reads
the analog or delta input holds that current; an `Add` with neurons keeps membranes like any layer
(no weights); a node without neurons (a linear Conv2D/Dense, a linear `Add`, an unfolded linear
pool) keeps its output current instead, cleared and rebuilt every step (swept, as a leak is); each
read of a current or held value (MACs, or an `Add`'s or pool's adds) reads its weight, if any, and
the value from its source's memory; each source's events are read once per reader.

ANN, per inference (output-stationary, no reuse from SRAM, the rule Lemaire et al. apply to both
networks): each MAC reads its weight and its input activation, the running sum stays in a register,
each output activation is written once (and a bias read once); a pool reads each pooled input once.
Reuse buffers (weight- or input-stationary dataflows) would cut the ANN's reads; the SNN's event-
driven accesses cannot use them the same way, so the rule without reuse is the like-for-like one.
"""
import math
from dataclasses import dataclass

import numpy as np

from pipeline import network
from pipeline.energy.costs import PJ, energy_table
from pipeline.energy.operations import GATE_OPS, is_linear_pool, nonzero_kernel, spatial_fan_out, wiring

KIB = 1024
# pJ per 64-bit SRAM read at 45 nm by array size: Horowitz, "Computing's energy problem (and what we can
# do about it)", ISSCC 2014 (8 KB: 10 pJ, 32 KB: 20 pJ, 1 MB: 100 pJ).
SRAM_READ_64BIT_PJ = ((8 * KIB, 10.0), (32 * KIB, 20.0), (1024 * KIB, 100.0))
# Bits per weight, membrane and activation word: the arithmetic the PRESET prices (`costs.PRESETS`);
# a user's MAC_PJ/AC_PJ pair is taken as fp32. `int8-acc32`: membranes keep the 32-bit accumulator,
# ANN activations and input values are requantised to 8 bits (`ACTIVATION_BITS`), weights are 8 bits
# unless the RUN quantised them to fewer (`words`).
WORD_BITS = {"45nm-fp32": 32, "fp16": 16, "int8": 8, "int8-acc32": 32, "user": 32}
ACTIVATION_BITS = {"int8-acc32": 8}
WEIGHT_BITS = {"int8-acc32": 8}


@dataclass(frozen=True)
class Words:
    """Bits of a stored weight, of a neuron's state (SNN membrane, held current) and of an activation
    (ANN activations, input values)."""
    weight: int
    state: int
    activation: int


def sram_access_pj(size_bytes, bits):
    """pJ of one access moving ``bits`` bits in an SRAM of ``size_bytes``.

    The 64-bit energy is interpolated linearly in log2(size) between Horowitz's three points and
    held at the end points outside them (no smaller or larger SRAM is published in that table: a
    memory under 8 KB is priced as 8 KB, over 1 MB as 1 MB); it scales with the bits moved
    (bits / 64: a 32-bit word drives half a 64-bit word's bit lines).
    """
    sizes, energies = zip(*SRAM_READ_64BIT_PJ)
    per_64 = float(np.interp(math.log2(max(float(size_bytes), 1.0)), np.log2(sizes), energies))
    return per_64 * bits / 64.0


def word_bits(cost):
    """Bits of a membrane word under a `Costs` preset (of every word, where the preset does not split them)."""
    return WORD_BITS[cost.preset]


def words(cost, weight_bits=0):
    """The `Words` of a `Costs` preset; ``weight_bits``: the RUN's quantised weight width (QUANT), which
    sets the stored weights' width whatever the arithmetic's (0: the preset's)."""
    state = word_bits(cost)
    return Words(weight=weight_bits or WEIGHT_BITS.get(cost.preset, state), state=state,
                 activation=ACTIVATION_BITS.get(cost.preset, state))


def address_bits(neurons):
    """Bits of an address event naming one of ``neurons`` neurons."""
    return max(1, math.ceil(math.log2(max(int(neurons), 2))))


def weight_count(node):
    """Stored weights of a layer: conv k_h*k_w*C_in*C_out/groups, dense in*out, plus C_out biases; pools
    and adds none.
    With the layer's weights, only the non-zero kernel entries are stored (a pruned kernel); the index
    that locates them in a sparse format is not counted (see docs/pruning.md for its size)."""
    nonzero = nonzero_kernel(node)
    if nonzero is not None:
        count = int(nonzero.sum())
    elif isinstance(node, network.Conv2d):
        count = int(np.prod(node.kernel_size)) * int(node.input_shape[-1]) * int(node.output_shape[-1]) // node.groups
    elif isinstance(node, network.Affine):
        count = int(np.prod(node.input_shape)) * int(node.output_shape[-1])
    else:
        return 0
    return count + bias_count(node)


def bias_count(node):
    """A weighted layer's biases: C_out, or 0 without bias (pools and adds: 0)."""
    return int(node.output_shape[-1]) if getattr(node, "use_bias", False) else 0


def weight_bytes(node, words):
    """Bytes of a layer's weight memory: kernel entries at ``words.weight`` bits, biases at the accumulator's
    ``words.state`` (a quantised layer keeps float32 biases; an integer one, int32 biases)."""
    biases = bias_count(node)
    return ((weight_count(node) - biases) * words.weight + biases * words.state) / 8


def _layout(nodes):
    """The compute nodes of ``nodes`` (a `network.Network` or a chain's compute nodes), the input's size
    and the names of the nodes that read the input."""
    layers, feeds = wiring(nodes)
    shape = nodes.input_shape if isinstance(nodes, network.Network) else layers[0].input_shape
    return layers, int(np.prod(shape)), {g.name for g in layers if any(s == network.INPUT for s, _ in feeds[g.name])}


def holds_current(reads_input, coding):
    """Whether a layer keeps a held input current beside its state: one that reads the analog or delta input."""
    return reads_input and coding in ("analog", "delta")


def _linear(node):
    """A node without neurons of its own that passes a current on (a linear pool aside)."""
    return isinstance(node, (network.Weighted, network.Add)) and node.neuron is None and not node.readout


def _folded(node, count, pooling):
    """Whether ``node`` is a linear pool folded into its reader (``count``: its `count_operations` row,
    which has no parts then; None: every linear pool is taken as folded)."""
    return is_linear_pool(node, pooling) and (count is None or not count.parts)


def gate_words(node):
    """Words of a max pool's gate: a spike counter per pooled input, and per window its argmax and the
    argmax's count."""
    return int(np.count_nonzero(spatial_fan_out(node))) * int(node.input_shape[-1]) + 2 * node.neurons


def state_count(node, reads_input, folded, coding, kind):
    """Words of neuron state: SNN membranes, or a linear node's output current (a folded linear pool
    has none; a held input current doubles a layer's), a max pool's `gate_words`; ANN output activations."""
    if kind == "ann":
        return node.neurons
    if folded:
        return 0
    if isinstance(node, network.MaxPool2d):
        return gate_words(node)
    return node.neurons * (2 if holds_current(reads_input, coding) else 1)


# --------------------------------------------------------------------- footprint
def footprint(layers, bits=32, pooling="linear", coding="poisson", kind="snn", counts=None, weight_bits=None,
              bias_bits=None):
    """Bytes the network stores, per layer and in total: kernel weights at ``weight_bits`` each and biases
    at ``bias_bits`` (both default ``bits``), and neuron state (``kind`` "snn": membranes, linear nodes'
    currents and held currents; "ann": output activations), at ``bits`` per word. ``layers``: a
    `network.Network` or a chain's compute nodes; ``counts``: their `count_operations`, which say which
    linear pools are folded (without them: all)."""
    rows, weight_bits = [], weight_bits or bits
    widths = Words(weight=weight_bits, state=bias_bits or bits, activation=bits)
    nodes, _, readers = _layout(layers)
    for index, g in enumerate(nodes):
        folded = _folded(g, counts[index] if counts is not None else None, pooling)
        weights, state = weight_count(g), state_count(g, g.name in readers, folded, coding, kind)
        rows.append({"name": g.name, "weights": weights, "weight_bytes": weight_bytes(g, widths),
                     "state_words": state, "state_bytes": state * bits / 8})
    total = {key: sum(r[key] for r in rows) for key in ("weight_bytes", "state_bytes")}
    return rows, {**total, "bytes": total["weight_bytes"] + total["state_bytes"], "bits": bits,
                  "weight_bits": weight_bits}


# --------------------------------------------------------------------- accesses
@dataclass(frozen=True)
class Access:
    """``count`` accesses per inference of ``bits`` bits to a memory of ``memory_bytes``: ``what`` and which memory."""
    what: str
    memory: str
    count: float
    memory_bytes: float
    bits: int

    @property
    def energy_j(self):
        return self.count * sram_access_pj(self.memory_bytes, self.bits) * PJ


def snn_accesses(layers, counts, timesteps, input_events, pooling, coding, bits=32, words=None):
    """Per layer, the SNN's memory accesses per inference (`Access` lists), by the module's rules.

    ``layers``: a `network.Network` or a chain's compute nodes; ``counts``: their `count_operations`;
    ``input_events``: spiking input events per inference (ignored for analog input); ``words``: the
    `Words` (default: ``bits`` for every word).
    """
    w = words or Words(bits, bits, bits)
    nodes, input_size, readers = _layout(layers)
    spikes = {c.name: c.snn_spikes for c in counts}
    sizes = {g.name: g.neurons for g in nodes}
    sizes["input"], spikes["input"] = input_size, float(input_events or 0.0)
    out = []
    for g, c in zip(nodes, counts):
        if _folded(g, c, pooling):
            out.append([])
            continue
        if isinstance(g, network.MaxPool2d):
            out.append(_gate_accesses(g, c, spikes, sizes, w))
            continue
        n, held = g.neurons, holds_current(g.name in readers, coding)
        weights = weight_bytes(g, w)
        state = state_count(g, g.name in readers, False, coding, "snn") * w.state / 8
        own_address = address_bits(n)
        a = [Access("membrane init", "state", n, state, w.state),
             Access("spike reset", "state", c.snn_spikes, state, w.state),
             Access("spike event write", "events", c.snn_spikes, n * own_address / 8, own_address)]
        computed = False
        for p in c.parts:
            if p.when == "spikes":
                source_address = address_bits(sizes[p.source])
                a.append(Access("event read", f"{p.source} events", spikes[p.source],
                                sizes[p.source] * source_address / 8, source_address))
                if isinstance(g, network.Weighted):
                    a.append(Access("weight read", "weights", p.acs, weights, w.weight))
                target = "current" if held else "membrane"
                a += [Access(f"{target} read", "state", p.acs, state, w.state),
                      Access(f"{target} write", "state", p.acs, state, w.state)]
                continue
            ops = p.macs or p.acs      # each reads its weight (if any) and its input value
            memory = "input" if p.source == network.INPUT else f"{p.source} current"
            if isinstance(g, network.Weighted):
                a.append(Access("weight read", "weights", ops, weights, w.weight))
            # the input's values are activations; a linear node's current, a state word
            value_bits = w.activation if p.source == network.INPUT else w.state
            a.append(Access("input read", memory, ops, sizes[p.source] * value_bits / 8, value_bits))
            computed = computed or p.when == "once"
        if computed:        # a held value's current: computed once per inference, written once
            a.append(Access("current write", "state", n, state, w.state))
        leaky = getattr(g, "neuron", None) is not None and g.neuron.leak != 1.0
        bias = isinstance(g, network.Weighted) and g.use_bias
        every_step = _linear(g) or is_linear_pool(g, pooling) or any(p.when == "every step" for p in c.parts)
        if held or leaky or bias or every_step:   # neurons that change without events: swept every step
            sweep = timesteps * n
            a += [Access("step membrane read", "state", sweep, state, w.state),
                  Access("step membrane write", "state", sweep, state, w.state)]
            if held:
                a.append(Access("step current read", "state", sweep, state, w.state))
            if bias:
                a.append(Access("step bias read", "weights", sweep, weights, w.state))
        out.append([x for x in a if x.count])
    return out


def _gate_accesses(g, c, spikes, sizes, w):
    """A max pool's SNN accesses per inference (`Access` list): see the module's rules."""
    state = gate_words(g) * w.state / 8
    (part,) = c.parts
    pooled = part.acs / GATE_OPS           # input spikes that land in a window
    source_address, own_address = address_bits(sizes[part.source]), address_bits(g.neurons)
    a = [Access("gate init", "state", gate_words(g), state, w.state),
         Access("event read", f"{part.source} events", spikes[part.source], sizes[part.source] * source_address / 8,
                source_address),
         Access("count read", "state", pooled, state, w.state),
         Access("count write", "state", pooled, state, w.state),
         Access("window max read", "state", pooled, state, w.state),
         Access("window max write", "state", pooled, state, w.state),
         Access("spike event write", "events", c.snn_spikes, g.neurons * own_address / 8, own_address)]
    return [x for x in a if x.count]


def ann_accesses(layers, counts, bits=32, words=None):
    """Per layer, the ANN's memory accesses per inference (`Access` lists), by the module's rules: each
    layer reads what it reads (an `Add` each of its inputs once); ``words``: the `Words` (default: ``bits``
    for every word)."""
    w = words or Words(bits, bits, bits)
    nodes, _, _ = _layout(layers)
    word, out = w.activation / 8, []
    for g, c in zip(nodes, counts):
        n, own = g.neurons, g.neurons * word
        inputs = len(g.inputs) if isinstance(g, network.Add) else 1
        reads = n * inputs if isinstance(g, network.Add) else c.ann_macs or c.ann_adds
        a = [Access("input read", "input activations", reads, int(np.prod(g.input_shape)) * inputs * word,
                    w.activation),
             Access("activation write", "activations", n, own, w.activation)]
        if isinstance(g, network.Weighted):
            weights = weight_bytes(g, w)
            a.append(Access("weight read", "weights", c.ann_macs, weights, w.weight))
            if g.use_bias:
                a.append(Access("bias read", "weights", n, weights, w.state))
        out.append([x for x in a if x.count])
    return out


def memory_table(layers, counts, cost, timesteps, input_events, pooling, coding, weight_bits=0):
    """Per-layer and total memory energies (joules per inference) beside each side's operation energy.

    ``snn_memory_j``/``ann_memory_j``: the accesses alone; ``*_total_j``: operations + accesses;
    ``normalized_energy_memory``: SNN total / ANN total (the operation-only ratio stays in
    `energy_table`). ``accesses``: each kind of access with its count and pJ per access.
    ``weight_bits``: the RUN's quantised weight width (`words`; 0: float weights).
    """
    w = words(cost, weight_bits)
    op_rows, _ = energy_table(counts, cost)
    snn = snn_accesses(layers, counts, timesteps, input_events, pooling, coding, words=w)
    ann = ann_accesses(layers, counts, words=w)
    rows = []
    for op, s, a in zip(op_rows, snn, ann):
        snn_mem, ann_mem = sum(x.energy_j for x in s), sum(x.energy_j for x in a)
        rows.append({"name": op["name"], "snn_memory_j": snn_mem, "ann_memory_j": ann_mem,
                     "snn_total_j": op["snn_energy_j"] + snn_mem, "ann_total_j": op["ann_energy_j"] + ann_mem,
                     "accesses": {side: [{"what": x.what, "memory": x.memory, "count": x.count,
                                          "memory_bytes": x.memory_bytes, "bits": x.bits,
                                          "pj_per_access": sram_access_pj(x.memory_bytes, x.bits)} for x in xs]
                                  for side, xs in (("snn", s), ("ann", a))}})
    total = {key: sum(r[key] for r in rows) for key in ("snn_memory_j", "ann_memory_j", "snn_total_j", "ann_total_j")}
    total["normalized_energy_memory"] = (total["snn_total_j"] / total["ann_total_j"] if total["ann_total_j"]
                                         else float("nan"))
    total["saving_memory"] = total["ann_total_j"] / total["snn_total_j"] if total["snn_total_j"] else float("inf")
    return rows, {**total, "bits": w.state, "weight_bits": w.weight, "activation_bits": w.activation}


def memory_lines(record):
    """The 'with memory' table the energy stage prints beside the operation-only one (``record``: `memory_record`)."""
    total, snn_fp, ann_fp = record["total"], record["footprint"]["snn"], record["footprint"]["ann"]
    lines = [f"  {'layer':<8}{'SNN mem uJ':>12}{'ANN mem uJ':>12}{'SNN all uJ':>12}{'ANN all uJ':>12}{'ratio':>9}"
             f"{'weights B':>12}{'SNN state B':>13}"]
    for row, fp in zip(record["layers"], snn_fp["layers"]):
        ratio = row["snn_total_j"] / row["ann_total_j"] if row["ann_total_j"] else float("nan")
        lines.append(f"  {row['name']:<8}{row['snn_memory_j'] * 1e6:>12.4f}{row['ann_memory_j'] * 1e6:>12.4f}"
                     f"{row['snn_total_j'] * 1e6:>12.4f}{row['ann_total_j'] * 1e6:>12.4f}{ratio:>9.4f}"
                     f"{fp['weight_bytes']:>12,.0f}{fp['state_bytes']:>13,.0f}")
    widths = (f"{total['bits']}-bit words" if total['weight_bits'] == total['bits'] == total['activation_bits'] else
              f"{total['weight_bits']}-bit weights, {total['bits']}-bit membranes, "
              f"{total['activation_bits']}-bit activations")
    lines.append(f"  with memory ({widths}, 45 nm SRAM): ANN {total['ann_total_j'] * 1e6:.3f} uJ, "
                 f"SNN {total['snn_total_j'] * 1e6:.3f} uJ per inference; normalised "
                 f"{total['normalized_energy_memory']:.4f} ({total['saving_memory']:.1f}x saving)")
    lines.append(f"  footprint: weights {snn_fp['total']['weight_bytes']:,.0f} B; state SNN "
                 f"{snn_fp['total']['state_bytes']:,.0f} B (membranes, held current), ANN "
                 f"{ann_fp['total']['state_bytes']:,.0f} B (activations)")
    return lines


def memory_record(layers, counts, cost, timesteps, input_events, pooling, coding, weight_bits=0):
    """What a result stores of the memory model: per-layer and total energies (`memory_table`), both
    networks' footprints (`footprint`) and where the constants come from; ``weight_bits``: the RUN's
    quantised weight width (0: float)."""
    rows, total = memory_table(layers, counts, cost, timesteps, input_events, pooling, coding, weight_bits)
    w = words(cost, weight_bits)
    snn_rows, snn_total = footprint(layers, w.state, pooling, coding, "snn", counts, w.weight, w.state)
    ann_rows, ann_total = footprint(layers, w.activation, pooling, coding, "ann", counts, w.weight, w.state)
    return {"layers": rows, "total": total,
            "footprint": {"snn": {"layers": snn_rows, "total": snn_total},
                          "ann": {"layers": ann_rows, "total": ann_total}},
            "sources": {"sram_read_64bit_pj": [list(p) for p in SRAM_READ_64BIT_PJ],
                        "sram": "Horowitz, ISSCC 2014, 45 nm: 64-bit read by SRAM size, interpolated in log2(size), "
                                "held outside 8 KB..1 MB, scaled by bits/64, writes as reads",
                        "rules": "pipeline/energy/memory.py (Lemaire et al. 2022; Dampfhoffer et al. 2023)"}}
