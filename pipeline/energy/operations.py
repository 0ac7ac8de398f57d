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

The layers are a `pipeline.network` description's ``compute_nodes``; spike counts come from the
engine as totals per neuron and per timestep (no spike train of the whole set is held in memory).
"""
from dataclasses import dataclass

import numpy as np

from pipeline import UserError, network
from pipeline.energy.costs import PJ


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
    None for a node without weights: a pool, or a description of the geometry only."""
    layer = getattr(node, "layer", None)
    if not isinstance(node, network.Weighted) or layer is None:
        return None
    return np.asarray(layer.get_weights()[0]) != 0


def ann_macs(node):
    """Multiply-accumulates of the ANN layer: conv H_out*W_out*C_out*k_h*k_w*C_in, dense in*out; with
    its weights, only the non-zero ones (conv H_out*W_out*nnz, dense nnz)."""
    nonzero = nonzero_kernel(node)
    if isinstance(node, network.Conv2d):
        if nonzero is not None:
            return int(np.prod(node.output_shape[:2])) * int(nonzero.sum())
        return node.neurons * int(np.prod(node.kernel_size)) * int(node.input_shape[-1])
    if isinstance(node, network.Affine):
        if nonzero is not None:
            return int(nonzero.sum())
        return int(np.prod(node.input_shape)) * int(node.output_shape[-1])
    return 0


def ann_adds(node):
    """Pooling: one add per pooled input element (a border input may be pooled 0 or several times)."""
    if not isinstance(node, network.AvgPool2d):
        return 0
    return int(spatial_fan_out(node).sum()) * int(node.input_shape[-1])


def reach(node):
    """Per spatial axis: for each input index, the output indices it reaches."""
    return [_window_reach(int(node.input_shape[a]), int(node.kernel_size[a]), int(node.stride[a]),
                          int(node.dilation[a]), node.padding) for a in (0, 1)]


def spatial_fan_out(node):
    rows, cols = reach(node)
    return np.outer([len(r) for r in rows], [len(c) for c in cols])


def fan_out(node):
    """Neurons of this layer reached by one spike at each input position, broadcastable to the input.

    Conv: output positions the kernel reaches from the position, times C_out (every output
    channel); pool: pool windows covering the position (its own channel only); dense: all units.
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
    channels = node.output_shape[-1] if isinstance(node, network.Conv2d) else 1
    return (spatial_fan_out(node) * channels)[:, :, None].astype(np.float64)


def input_fan_out(node, input_shape):
    """`fan_out` of the first layer in the layout of the data it is fed, per-sample ``input_shape``: a
    Reshape before that layer (a Conv1D model's map of height 1 fed (L, C, 1) samples) keeps the values'
    order, so the fan-out of each input value is the fan-out at its position in the layer's input."""
    return np.broadcast_to(fan_out(node), tuple(node.input_shape)).reshape(tuple(input_shape))


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

# --------------------------------------------------------------------- SNN operation counts
@dataclass(frozen=True)
class LayerCount:
    """Operations of one layer per inference; ``source`` is the layer whose spikes feed it."""
    name: str
    neurons: int
    ann_macs: int
    ann_adds: int
    snn_spikes: float
    snn_acs: float
    snn_macs: float
    source: str | None
    ac_source: str


def count_operations(layers, neuron_totals, input_totals, num_samples, pooling):
    """ANN and SNN operations per inference for every layer of `layers` (a network's
    ``compute_nodes``: conv, dense and pool; flatten and dropout cost nothing).

    ``neuron_totals``: per spiking layer, spikes per neuron summed over samples and timesteps
    (the engine's ``neuron_totals``); ``input_totals``: input spike events per input position,
    summed the same way, or None for an analog input (then the first layer costs its MACs once).
    ``pooling``: "spiking" (INI) or "linear" (folded into the next layer).
    """
    if pooling not in ("spiking", "linear"):
        raise UserError(f"pooling={pooling!r}: choose spiking or linear")
    counts, source, source_name, pending = [], input_totals, "input", None
    for g in layers:
        if isinstance(g, network.MaxPool2d):   # the spikes its gate passes are not recorded
            raise UserError(f"layer {g.name!r}: the operations of a spiking max pool (its gate's comparisons, the "
                            "spikes it passes on) are not counted yet; use average pooling for energy figures")
    for index, g in enumerate(layers):
        emitted = neuron_totals.get(g.name)
        spikes = float(np.sum(emitted)) / num_samples if emitted is not None else 0.0
        if isinstance(g, network.AvgPool2d) and pooling == "linear":
            if index + 1 == len(layers):
                raise UserError(f"linear pool {g.name!r} ends the network: nothing to fold it into")
            pending = g
            counts.append(LayerCount(g.name, g.neurons, 0, ann_adds(g), 0.0, 0.0, 0.0, None,
                                     f"linear pool: folded into {layers[index + 1].name} (no operations of its own)"))
            continue
        macs = acs = 0.0
        if source is None and index == 0:
            macs, how = float(ann_macs(g)), "analog input current: the layer's MACs once per inference"
        elif source is None:
            raise UserError(f"no spike counts for {source_name!r}, which feeds {g.name!r}")
        elif pending is not None:
            acs = float(np.sum(_shaped(source, pending) * merged_fan_out(pending, g))) / num_samples
            how = f"{source_name} spikes x merged fan-out of {pending.name}+{g.name}"
        else:
            acs = float(np.sum(_shaped(source, g) * fan_out(g))) / num_samples
            how = f"{source_name} spikes x fan-out into {g.name}"
        counts.append(LayerCount(g.name, g.neurons, ann_macs(g), ann_adds(g), spikes, acs, macs,
                                 source_name if source is not None else None, how))
        source, source_name, pending = emitted, g.name, None
    return counts


def _shaped(totals, node):
    """Per-position totals in the node's input shape: a flatten or reshape between moves no spike."""
    return np.reshape(np.asarray(totals), tuple(node.input_shape))


def cumulative_energy(counts, cost, spikes_per_timestep, column_names, input_acs_per_step=None):
    """SNN energy per inference spent up to each timestep (joules), shape (T,).

    A layer's ACs at step t are its source's spikes at t times the source's spike-weighted mean
    fan-out (the engine counts spikes per step per layer, not per position), so the curve is
    exact for dense layers, for the input when ``input_acs_per_step`` replays it exactly, and at
    t = T for every layer; inside a conv it assumes border positions keep their share of spikes.
    Analog first-layer MACs are spent at step 1.
    """
    per_step = np.zeros(len(spikes_per_timestep))
    for c in counts:
        per_step[0] += c.snn_macs * cost.e_mac_pj
        if c.snn_acs == 0:
            continue
        if c.source == "input" and input_acs_per_step is not None:
            acs = np.asarray(input_acs_per_step, np.float64)
        else:
            column = np.asarray(spikes_per_timestep, np.float64)[:, list(column_names).index(c.source)]
            acs = c.snn_acs * column / column.sum()
        per_step += acs * cost.e_ac_pj
    return np.cumsum(per_step) * PJ


def coding_floor(coding, first, input_totals, num_samples, cost, ann_energy_j):
    """Normalised energy the input coding alone costs: what the first layer spends on the input.

    A spiking input (Poisson, rate, delta) costs its events x each position's fan-out into the
    first layer as ACs (``input_totals``: events per input position summed over ``num_samples``
    samples, `pipeline.engine.replay_input`; exact); an analog input costs the first layer's MACs
    once. Whatever the hidden layers do, a network with this coding spends at least this much.
    The encoder's own updates (`encoder_updates`) are counted for no coding: see there.
    """
    if coding == "analog" or input_totals is None:
        return ann_macs(first) * cost.e_mac_pj * PJ / ann_energy_j, "first-layer MACs x E_MAC / ANN energy"
    acs = float(np.sum(_shaped(np.asarray(input_totals, np.float64), first) * fan_out(first))) / num_samples
    return acs * cost.e_ac_pj * PJ / ann_energy_j, "input events x their fan-out into the first layer x E_AC / ANN energy"


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
