"""Operation counts: ANN MACs vs SNN accumulates per inference, layer by layer (no TensorFlow).

An ANN pays a multiply-accumulate (MAC) for every weight of every output; an SNN pays an
accumulate (AC) only when a spike arrives, once for every neuron the spike reaches. So:

- ANN, per layer: conv ``H_out*W_out*C_out*k_h*k_w*C_in`` MACs (padding included, the usual
  convention), dense ``in*out`` MACs, pooling one add per pooled input element.
- SNN, per layer: sum over its input positions of (spikes there, summed over samples and
  timesteps) x the position's fan-out (how many neurons of the layer it reaches; exact at the
  borders of a 'same' convolution, where a position reaches fewer outputs), divided by the number
  of samples.
- Pruned kernels (issue 24): a synapse whose weight is exactly zero is neither stored nor done. A
  spike's fan-out counts only the (output position, output channel) pairs its input channel reaches
  through a non-zero tap; an ANN output costs one MAC per non-zero weight of its window (conv:
  ``H_out*W_out*nnz(kernel)``, dense ``nnz(kernel)``). The ANN gets the same sparsity benefit as the
  SNN, so the ratio compares the two networks on the same pruned weights. A description without
  weights (a node with no Keras ``layer``) counts every synapse: the dense geometry.
- A constant (analog) input current costs the first layer its MACs once per inference, not once per
  timestep: the current does not change, so it is computed once.
- Pooling: where pools spike (INI semantics) the pool neurons' spikes x the next layer's fan-out
  count like any layer's; where pooling is linear (STDB, QCFS) the pool folds into the next conv,
  so the previous layer's spikes count with the merged fan-out of pool + conv. Every layer's
  ``ac_source`` says which rule its number uses.

Graphs (`pipeline.network`: a node reads the nodes its edges name). Each compute node pays for
each thing it reads by what that carries: spikes (from the input or a node with neurons: spikes x
fan-out, as above), a current (a linear layer's output, a linear `Add`'s sum, an unfolded linear
pool's means: real values every step), or a held value (the analog input, and what is computed
from held values alone: computed once). Rules:

- A grouped conv (depthwise: groups = C_in): a spike reaches only its group's output channels,
  fan-out ``k_h*k_w*C_out/groups`` (border-exact); ANN ``H_out*W_out*C_out*k_h*k_w*C_in/groups``
  MACs (with weights, ``H_out*W_out*nnz``).
- A node fed by a current: its synapses are driven by real values every step, T x its ANN MACs on
  that input (a pool: T x its adds). An upper bound: currents that are zero are not skipped. A
  held value costs its MACs once (an `Add` still adds it every step, unless all its inputs are
  held). The linear layer itself pays for its own input like any layer (spikes x fan-out).
- An `Add` (with neurons, or linear): ANN one add per output per input after the first; SNN every
  spike arriving on a spike input 1 AC (fan-out 1), a current input one add (AC) per neuron per step.
- A Concatenate costs nothing; its readers pay per source: each source's spikes x the reader's
  fan-out from that source's channels (a current or held source: the MACs on its channels).
- A linear pool folds into its reader only where that is its only reader, a Conv2D or Dense reading
  nothing else, and the pool reads spikes alone; otherwise it pays its adds like a spiking pool and
  passes a current on.
- A max pool (`network.MaxPool2d`, INI's gate: per window the input with the most spikes so far passes
  its spikes): ANN one comparison per pooled input element (counted as `ann_adds`, like an average
  pool's adds); SNN, per input spike in a window, `GATE_OPS` = 2 ACs: the increment of its input's
  spike count and the comparison with the window's running maximum. The spikes it passes on (the
  engine records them as a layer's) cost its reader their fan-out like any layer's. It must read
  spikes (a current into a max pool is refused).

The layers are a `pipeline.network` description's ``compute_nodes`` (read along its edges); spike counts come from the
engine as totals per neuron and per timestep (no spike train of the whole set is held in memory).
"""
from dataclasses import dataclass

import numpy as np

from pipeline import UserError, network
from pipeline.energy.costs import PJ

GATE_OPS = 2    # a max pool's operations per input spike it pools: count increment, running-max comparison


# --------------------------------------------------------------------- layer geometry (no TF needed)
def _window_taps(n_in, size, stride, dilation, padding):
    """For each input index along one axis, ``{output index: kernel tap}`` of the outputs whose window covers it."""
    n_out, before = network.padding_of(n_in, size, stride, dilation, padding)
    taps = [{} for _ in range(n_in)]
    for o in range(n_out):
        for m in range(size):
            i = o * stride - before + m * dilation
            if 0 <= i < n_in:
                taps[i][o] = m
    return taps


def _window_reach(n_in, size, stride, dilation, padding):
    """For each input index along one axis, the set of output indices whose window covers it."""
    return [set(t) for t in _window_taps(n_in, size, stride, dilation, padding)]


def nonzero_kernel(node):
    """Where the weighted node's kernel is non-zero (conv (k_h, k_w, C_in, C_out), dense (in, out)), or
    None for a node without weights: a pool, or a description of the geometry only. A grouped conv's
    kernel (k_h, k_w, C_in/groups, C_out) is laid out block-diagonally over all C_in: output block g
    has no synapse from input block other than g."""
    layer = getattr(node, "layer", None)
    if not isinstance(node, network.Weighted) or layer is None:
        return None
    nonzero = np.asarray(layer.get_weights()[0]) != 0
    groups = getattr(node, "groups", 1)
    if groups == 1:
        return nonzero
    per_in, per_out = nonzero.shape[2], nonzero.shape[3] // groups
    full = np.zeros(nonzero.shape[:2] + (per_in * groups, nonzero.shape[3]), bool)
    for k in range(groups):
        block = slice(k * per_out, (k + 1) * per_out)
        full[:, :, k * per_in:(k + 1) * per_in, block] = nonzero[:, :, :, block]
    return full


def ann_macs(node):
    """Multiply-accumulates of the ANN layer: conv H_out*W_out*C_out*k_h*k_w*C_in/groups, dense in*out;
    with its weights, only the non-zero ones (conv H_out*W_out*nnz, dense nnz)."""
    nonzero = nonzero_kernel(node)
    if isinstance(node, network.Conv2d):
        if nonzero is not None:
            return int(np.prod(node.output_shape[:2])) * int(nonzero.sum())
        return node.neurons * int(np.prod(node.kernel_size)) * int(node.input_shape[-1]) // node.groups
    if isinstance(node, network.Affine):
        if nonzero is not None:
            return int(nonzero.sum())
        return int(np.prod(node.input_shape)) * int(node.output_shape[-1])
    return 0


def ann_adds(node):
    """Pooling: one add (a max pool: one comparison) per pooled input element (a border input may be pooled
    0 or several times); an `Add`: one add per output per input after the first."""
    if isinstance(node, network.Add):
        return node.neurons * (len(node.inputs) - 1)
    if not isinstance(node, (network.AvgPool2d, network.MaxPool2d)):
        return 0
    return int(spatial_fan_out(node).sum()) * int(node.input_shape[-1])


def ann_energy_j(nodes, cost):
    """Joules of one ANN inference over these compute nodes (MACs through non-zero weights, pooling adds)."""
    return sum(ann_macs(n) * cost.e_mac_pj + ann_adds(n) * cost.e_ac_pj for n in nodes) * PJ


def reach(node):
    """Per spatial axis: for each input index, the output indices it reaches."""
    dilation = getattr(node, "dilation", (1, 1))   # a max pool has none
    return [_window_reach(int(node.input_shape[a]), int(node.kernel_size[a]), int(node.stride[a]),
                          int(dilation[a]), node.padding) for a in (0, 1)]


def spatial_fan_out(node):
    rows, cols = reach(node)
    return np.outer([len(r) for r in rows], [len(c) for c in cols])


def fan_out(node):
    """Neurons of this layer reached by one spike at each input position, broadcastable to the input.

    Conv: output positions the kernel reaches from the position, times C_out/groups (the output
    channels of its group); pool: pool windows covering the position (its own channel only); dense:
    all units.
    With the layer's weights, only the synapses whose weight is non-zero (per input channel).
    """
    nonzero = nonzero_kernel(node)
    if isinstance(node, network.Affine):
        if nonzero is not None:
            return nonzero.sum(axis=-1).reshape(node.input_shape).astype(np.float64)
        return np.asarray(node.output_shape[-1], np.float64)
    if isinstance(node, network.Conv2d) and nonzero is not None:
        tapsets = [[[(t,) for t in taps.values()] for taps in axis] for axis in _taps(node)]
        return _pruned_fan_out(nonzero, *tapsets)
    channels = node.output_shape[-1] // node.groups if isinstance(node, network.Conv2d) else 1
    return (spatial_fan_out(node) * channels)[:, :, None].astype(np.float64)


def _taps(node):
    """Per spatial axis: for each input index, ``{output index: kernel tap}`` (`_window_taps`)."""
    return [_window_taps(int(node.input_shape[a]), int(node.kernel_size[a]), int(node.stride[a]),
                         int(node.dilation[a]), node.padding) for a in (0, 1)]


def _pruned_fan_out(nonzero, rows, cols):
    """Fan-out (H, W, C_in) through a kernel's non-zero entries ``nonzero`` (taps_h, taps_w, C_in, C_out).

    ``rows[i]`` lists, for each output row input row i reaches, the kernel rows that connect them (one
    tap for a conv; several when a linear pool before the conv is folded in); ``cols`` likewise. An
    input reaches output (row, column, channel k) when some connecting (tap row, tap column) has a
    non-zero weight from its channel to k. Each distinct pair of tap sets is evaluated once.
    """
    def distinct(axis):
        sets = sorted({tuple(sorted(t)) for per_input in axis for t in per_input})
        index = {t: a for a, t in enumerate(sets)}
        multiplicity = np.zeros((len(axis), len(sets)))
        for i, per_input in enumerate(axis):
            for t in per_input:
                multiplicity[i, index[tuple(sorted(t))]] += 1
        return sets, multiplicity

    (row_sets, row_count), (col_sets, col_count) = distinct(rows), distinct(cols)
    reached = np.zeros((len(row_sets), len(col_sets), nonzero.shape[2]))
    for a, r in enumerate(row_sets):
        any_row = nonzero[list(r)].any(axis=0)
        for b, c in enumerate(col_sets):
            reached[a, b] = any_row[list(c)].any(axis=0).sum(axis=-1)
    return np.einsum("ia,jb,abc->ijc", row_count, col_count, reached)


def merged_fan_out(pool, layer):
    """Fan-out of the pool's input into `layer` when the pool is linear (folded into `layer`).

    An input position reaches the union of the layer's outputs reached from every pool window
    that covers it (windows and kernels are rectangles, so the union factorises per axis).
    """
    if not isinstance(pool, network.AvgPool2d) or not isinstance(layer, network.Weighted):
        raise UserError(f"cannot merge {pool.name!r} ({pool.kind}) into {layer.name!r} ({layer.kind})")
    pool_reach = reach(pool)
    nonzero = nonzero_kernel(layer)
    if nonzero is not None and isinstance(layer, network.Affine):   # pool output (h, w, c) is a dense row
        per_position = nonzero.reshape(*pool.output_shape, -1)
        return _pruned_fan_out(per_position, *[[[qs] if qs else [] for qs in axis] for axis in pool_reach])
    if nonzero is not None:   # the taps reaching output o from the pool windows covering input p
        tapsets = []
        for axis, layer_taps in enumerate(_taps(layer)):
            tapsets.append([[{layer_taps[q][o] for q in qs if o in layer_taps[q]}
                             for o in set().union(*(layer_taps[q] for q in qs))] for qs in pool_reach[axis]])
        return _pruned_fan_out(nonzero, *tapsets)
    if isinstance(layer, network.Affine):
        covered = np.outer([bool(r) for r in pool_reach[0]], [bool(c) for c in pool_reach[1]])
        return (covered * layer.output_shape[-1])[:, :, None].astype(np.float64)
    sizes = []
    for axis, layer_reach in enumerate(reach(layer)):
        sizes.append([len(set().union(*(layer_reach[q] for q in qs))) for qs in pool_reach[axis]])
    return (np.outer(*sizes) * layer.output_shape[-1])[:, :, None].astype(np.float64)

# --------------------------------------------------------------------- what each node reads
def wiring(nodes):
    """The compute nodes and, per compute node, what it reads: ``{name: [(source, index), ...]}``.

    ``nodes``: a `network.Network` (its edges are followed) or a chain's compute nodes in order (each
    reads the one before it; a pool-free, merge-free network's ``compute_nodes`` as the frontier
    passes them). ``source`` is a compute node's name or ``"input"``; ``index`` gives, for each
    element of the source's output (channels-last, flat), the flat position it takes in what the
    node reads: its input (an `Add`: its output, one input of the sum). Flatten, reshape and dropout
    keep positions; a Concatenate places each source's channels at its offset.
    """
    if not isinstance(nodes, network.Network):
        layers = tuple(nodes)
        for before, g in zip(layers, layers[1:]):
            if isinstance(g, network.Add) or before.neurons != int(np.prod(g.input_shape)):
                raise UserError(f"layer {g.name!r} does not read {before.name!r} alone: count this network from "
                                "its graph (the Network), not its compute nodes")
        return layers, {g.name: [(layers[k - 1].name if k else network.INPUT, np.arange(int(np.prod(g.input_shape))))]
                        for k, g in enumerate(layers)}
    graph = nodes
    by_name = {n.name: n for n in graph.nodes}

    def shape(name):
        return tuple(graph.input_shape) if name == network.INPUT else tuple(by_name[name].output_shape)

    def resolve(name, index):
        node = by_name.get(name)
        if node is None or isinstance(node, network.COMPUTE):
            return [(name, index)]
        sources = graph.inputs_of(node)
        if not isinstance(node, network.Concatenate):
            return resolve(sources[0], index)
        found, offset, per_position = [], 0, index.reshape(-1, node.output_shape[-1])
        for source in sources:
            channels = shape(source)[-1]
            found += resolve(source, per_position[:, offset:offset + channels].reshape(-1))
            offset += channels
        return found

    feeds = {}
    for g in graph.compute_nodes:
        positions = np.arange(g.neurons if isinstance(g, network.Add) else int(np.prod(g.input_shape)))
        feeds[g.name] = [part for source in (graph.inputs_of(g) if isinstance(g, network.Add) else graph.inputs_of(g)[:1])
                         for part in resolve(source, positions)]
    return graph.compute_nodes, feeds


# --------------------------------------------------------------------- SNN operation counts
@dataclass(frozen=True)
class Part:
    """What a node pays for one thing it reads, per inference: ``source`` (a compute node or ``"input"``)
    carries ``"spikes"``, a ``"current"`` (real values, every step) or a ``"held"`` value (constant: the
    analog input and what is computed from it alone); ``acs`` and ``macs`` are spent ``when``:
    ``"spikes"`` (with the source's spikes), ``"every step"`` (evenly) or ``"once"`` (at the first step)."""
    source: str
    carries: str
    acs: float
    macs: float
    when: str


@dataclass(frozen=True)
class LayerCount:
    """Operations of one layer per inference; ``source`` is the layer whose spikes feed it (the first
    such, or None: an analog input or a current); ``parts``: the same operations per thing it reads."""
    name: str
    neurons: int
    ann_macs: int
    ann_adds: int
    snn_spikes: float
    snn_acs: float
    snn_macs: float
    source: str | None
    ac_source: str
    parts: tuple = ()


@dataclass(frozen=True)
class _Step:
    """`_plan`'s entry for one compute node: the linear ``pool`` folded into it (or None), what it reads
    ``(source, index, carries)``, its fan-out per flat position of what it reads (None: an `Add`, 1), and
    ``folded_into``: the reader a linear pool is folded into (else None)."""
    node: object
    pool: object
    reads: list
    fan: np.ndarray | None
    folded_into: object = None


def is_linear_pool(node, pooling):
    """An average pool that passes the mean of its input on (no neurons of its own)."""
    return isinstance(node, network.AvgPool2d) and pooling == "linear"


def _plan(nodes, pooling, spiking_input):
    """What every compute node reads and what its output carries (`_Step`s, in order), folding each
    linear pool into its reader where the counting rules allow it (see the module docstring)."""
    if pooling not in ("spiking", "linear"):
        raise UserError(f"pooling={pooling!r}: choose spiking or linear")
    layers, feeds = wiring(nodes)
    carries = {network.INPUT: "spikes" if spiking_input else "held"}
    folded, steps = {}, []
    for g in layers:
        pool = folded.get(g.name)
        reads = [(source, index, carries[source]) for source, index in feeds[pool.name if pool else g.name]]
        if is_linear_pool(g, pooling):
            readers = [r for r in layers if any(source == g.name for source, _ in feeds[r.name])]
            if not readers:
                raise UserError(f"linear pool {g.name!r} ends the network: nothing to fold it into")
            reader = readers[0]
            if len(readers) == 1 and isinstance(reader, network.Weighted) and len(feeds[reader.name]) == 1 and \
                    all(kind == "spikes" for *_, kind in reads) and \
                    (isinstance(reader, network.Affine) or tuple(reader.input_shape) == tuple(g.output_shape)):
                folded[reader.name] = g
                steps.append(_Step(g, None, [], None, reader))
                continue
        if isinstance(g, network.MaxPool2d):
            if any(kind != "spikes" for *_, kind in reads):
                raise UserError(f"max pool {g.name!r} reads a current, not spikes: its gate is counted on spikes only")
            fan = np.broadcast_to(GATE_OPS * fan_out(g), tuple(g.input_shape)).reshape(-1)
        elif isinstance(g, network.Add):
            fan = None
        elif pool is not None:
            fan = np.broadcast_to(merged_fan_out(pool, g), tuple(pool.input_shape)).reshape(-1)
        else:
            fan = np.broadcast_to(fan_out(g), tuple(g.input_shape)).reshape(-1)
        if isinstance(g, network.MaxPool2d):
            spiking = True
        elif isinstance(g, network.AvgPool2d):
            spiking = pooling == "spiking"
        else:
            spiking = g.neuron is not None
        held = all(kind == "held" for *_, kind in reads)
        carries[g.name] = "spikes" if spiking else "held" if held else "current"
        steps.append(_Step(g, pool, reads, fan))
    return steps


def _piece_macs(node, index):
    """The weighted node's ANN MACs on the inputs at ``index`` (flat positions of its input; all of them:
    `ann_macs`). A conv's input channel costs H_out*W_out*(its synapses), spread over its positions (a
    concatenated source brings whole channels)."""
    size = int(np.prod(node.input_shape))
    if len(index) == size:
        return float(ann_macs(node))
    nonzero = nonzero_kernel(node)
    if isinstance(node, network.Affine):
        per_input = nonzero.sum(axis=-1).reshape(-1) if nonzero is not None else np.full(size, node.output_shape[-1])
        return float(per_input[index].sum())
    channels = int(node.input_shape[-1])
    if nonzero is not None:
        per_channel = int(np.prod(node.output_shape[:2])) * nonzero.sum(axis=(0, 1, 3))
    else:
        per_channel = np.full(channels, node.neurons * int(np.prod(node.kernel_size)) // node.groups)
    return float(np.sum(np.bincount(index % channels, minlength=channels) * per_channel)) / (size // channels)


def count_operations(nodes, neuron_totals, input_totals, num_samples, pooling, timesteps=None):
    """ANN and SNN operations per inference for every compute node (conv, dense, pool, add) of ``nodes``:
    a `network.Network` (counted along its edges) or a chain's ``compute_nodes`` (see `wiring`).

    ``neuron_totals``: per spiking node, spikes per neuron summed over samples and timesteps (the
    engine's ``neuron_totals``); ``input_totals``: input spike events per input position, summed the
    same way, or None for an analog input (then its readers cost their MACs once). ``pooling``:
    "spiking" (INI) or "linear" (folded into the next layer). ``timesteps``: needed where a node
    reads a current (a linear layer's output), which costs its reader every step.
    """
    counts = []
    for step in _plan(nodes, pooling, input_totals is not None):
        g, pool = step.node, step.pool
        if step.folded_into is not None:
            counts.append(LayerCount(g.name, g.neurons, 0, ann_adds(g), 0.0, 0.0, 0.0, None,
                                     f"linear pool: folded into {step.folded_into.name} (no operations of its own)"))
            continue
        all_held = all(kind == "held" for *_, kind in step.reads)
        parts, how = [], []
        for source, index, kind in step.reads:
            fan = np.ones(len(index)) if step.fan is None else step.fan[index]
            whole = len(index) == len(step.fan if step.fan is not None else fan)
            mine = "" if whole else " (its channels)"
            if kind == "spikes":
                totals = input_totals if source == network.INPUT else neuron_totals.get(source)
                if totals is None:
                    raise UserError(f"no spike counts for {source!r}, which feeds {g.name!r}")
                acs = float(np.sum(np.reshape(np.asarray(totals, np.float64), -1) * fan)) / num_samples
                parts.append(Part(source, kind, acs, 0.0, "spikes"))
                if isinstance(g, network.Add):
                    how.append(f"{source} spikes x 1 (an add each)")
                elif isinstance(g, network.MaxPool2d):
                    how.append(f"{source} spikes in a window x {GATE_OPS} (its count's increment, the comparison "
                               "with the window's running maximum)")
                elif pool is not None:
                    how.append(f"{source} spikes x merged fan-out of {pool.name}+{g.name}")
                else:
                    how.append(f"{source} spikes x fan-out into {g.name}{mine}")
                continue
            once = kind == "held" and (all_held or not isinstance(g, network.Add))
            if not once and timesteps is None:
                raise UserError(f"{g.name!r} reads the {kind} of {source!r} every step: give timesteps to count it")
            repeat = 1 if once else timesteps
            if isinstance(g, network.Weighted):
                acs, macs = 0.0, repeat * _piece_macs(g, index)
            else:
                acs, macs = repeat * float(fan.sum()), 0.0
            parts.append(Part(source, kind, acs, macs, "once" if once else "every step"))
            ops = "MACs" if isinstance(g, network.Weighted) else "adds"
            if source == network.INPUT and once and isinstance(g, network.Weighted) and whole:
                how.append("analog input current: the layer's MACs once per inference")
            elif once:
                how.append(f"{source} held value: the {ops} on it once per inference{mine}")
            else:
                how.append(f"{source} {kind}: T x the {ops} on it{mine} (every step; zeros are not skipped: "
                           "an upper bound)")
        emitted = neuron_totals.get(g.name)
        spikes = float(np.sum(emitted)) / num_samples if emitted is not None else 0.0
        source = next((p.source for p in parts if p.when == "spikes"), None)
        counts.append(LayerCount(g.name, g.neurons, ann_macs(g), ann_adds(g), spikes, sum(p.acs for p in parts),
                                 sum(p.macs for p in parts), source, "; ".join(how), tuple(parts)))
    return counts


def input_fan_out(nodes, pooling):
    """Operations one input event at each input position costs (input-shaped): the fan-out into every
    node that reads the input (into a linear pool's reader where the pool is folded), summed."""
    layers, _ = wiring(nodes)
    shape = tuple(nodes.input_shape) if isinstance(nodes, network.Network) else tuple(layers[0].input_shape)
    total = np.zeros(int(np.prod(shape)))
    for step in _plan(nodes, pooling, True):
        for source, index, _ in step.reads:
            if source == network.INPUT:
                np.add.at(total, index, 1.0 if step.fan is None else step.fan[index])
    return total.reshape(shape)


def cumulative_energy(counts, cost, spikes_per_timestep, column_names, input_acs_per_step=None):
    """SNN energy per inference spent up to each timestep (joules), shape (T,).

    ACs fed by spikes at step t are their source's spikes at t times the source's spike-weighted
    mean fan-out (the engine counts spikes per step per layer, not per position), so the curve is
    exact for dense layers, for the input when ``input_acs_per_step`` replays it exactly (its ACs,
    all readers of the input together), and at t = T for every layer; inside a conv it assumes
    border positions keep their share of spikes. Operations on held values are spent at step 1,
    on currents evenly over the steps.
    """
    per_step = np.zeros(len(spikes_per_timestep))
    input_acs = sum(p.acs for c in counts for p in c.parts if p.source == network.INPUT and p.when == "spikes")
    for c in counts:
        for p in c.parts:
            energy = p.macs * cost.e_mac_pj + p.acs * cost.e_ac_pj
            if p.when == "once":
                per_step[0] += energy
            elif p.when == "every step":
                per_step += energy / len(per_step)
            elif p.acs:
                if p.source == network.INPUT and input_acs_per_step is not None:
                    acs = np.asarray(input_acs_per_step, np.float64) * (p.acs / input_acs)
                else:
                    column = np.asarray(spikes_per_timestep, np.float64)[:, list(column_names).index(p.source)]
                    acs = p.acs * column / column.sum()
                per_step += acs * cost.e_ac_pj
    return np.cumsum(per_step) * PJ


def coding_floor(coding, nodes, input_totals, num_samples, cost, ann_energy_j, pooling="linear"):
    """Normalised energy the input coding alone costs: what the nodes reading the input spend on it.

    ``nodes``: a `network.Network`, or the first layer of a chain. A spiking input (Poisson, rate,
    delta) costs its events x each position's fan-out into its readers as ACs (``input_totals``:
    events per input position summed over ``num_samples`` samples, `pipeline.engine.replay_input`;
    exact); an analog input costs its readers' MACs once. Whatever the hidden layers do, a network
    with this coding spends at least this much. The encoder's own updates (`encoder_updates`) are
    counted for no coding: see there.
    """
    graph = nodes if isinstance(nodes, network.Network) else [nodes]
    steps = _plan(graph, pooling, input_totals is not None)
    readers = [(step.node, index) for step in steps for source, index, _ in step.reads if source == network.INPUT]
    who = "the first layer" if len(readers) == 1 else "the layers reading it"
    if coding == "analog" or input_totals is None:
        macs = sum(_piece_macs(g, index) for g, index in readers if isinstance(g, network.Weighted))
        return macs * cost.e_mac_pj * PJ / ann_energy_j, f"{'first-layer' if len(readers) == 1 else 'input readers'}" \
            " MACs x E_MAC / ANN energy"
    acs = float(np.sum(np.asarray(input_totals, np.float64) * input_fan_out(graph, pooling))) / num_samples
    return acs * cost.e_ac_pj * PJ / ann_energy_j, f"input events x their fan-out into {who} x E_AC / ANN energy"


def encoder_updates(coding, input_size, timesteps):
    """Operations of the input encoder itself per inference, reported beside the energy, never in it.

    Poisson: a random draw and a compare per input value and step; rate: an integrate-and-fire
    update per value and step; delta: a compare per value (its crossings all happen at the first
    step); analog: none (the value is the input). They are counted for no coding, as the ANN's
    own input (the digitised recording) is not: they happen in the sensor front end, their cost
    per operation is not an AC's, and at T x the input size they are small next to the first
    layer's T x the input size x fan-out accumulates.
    """
    per_step = {"poisson": timesteps, "rate": timesteps, "delta": 1, "analog": 0}
    if coding not in per_step:
        raise UserError(f"CODING={coding!r}: choose one of {', '.join(per_step)}")
    return per_step[coding] * int(input_size)


def silent_fractions(totals):
    """Fraction of each layer's neurons that never spiked in `totals` (per-neuron spike counts)."""
    return {name: float(np.mean(np.asarray(t) == 0)) for name, t in totals.items()}
