"""The converted network in NIR (the Neuromorphic Intermediate Representation) and back.

`to_nir` translates a `pipeline.network.Network` (and its weights) node by node; `from_nir` reads
a graph back into a Keras model, thresholds and neuron choices the engine runs. The translation
is exact for what NIR 1.0.5 can hold; what it cannot is refused with the reason, or written to
the side file (`sidecar`), never dropped silently:

- NIR 1.0.5's IF resets by subtraction (from 1.0.6 on it resets to ``v_reset``): the engine's
  neuron exactly. NIR fires at ``v > v_threshold``, the engine at ``v >= theta``: the file holds
  the largest float32 below theta, so both fire on the same float32 membranes.
- Tensors are channels-first without a batch axis: kernels become (C_out, C_in, kH, kW); a
  flatten of (C, H, W) orders features channel-major, so the next dense layer's weight columns
  are permuted from the engine's channels-last order.
- Keras 'same' padding puts the smaller half first (even kernels pad 3 before, 4 after for 8):
  written as NIR's ``"same"`` string (PyTorch's rule, the same one), never as symmetric integers.
  With a stride (no 'same' in PyTorch) it is integers, ``after`` on both sides, the kernel grown in
  front by zero rows where TF pads one less before (`_conv_padding`).
- Linear average pools are ``AvgPool2d`` nodes; spiking pools are ``AvgPool2d`` then an ``IF``
  with threshold 1. The membrane readout is an integrator ``I`` (it never spikes); the
  spike-count readout an ``IF``.
- A graph keeps its edges, and NIR sums every edge entering a node: an `Add` with neurons is an ``IF``
  entered by its inputs, a linear one an identity ``Scale``; each input after the first enters through
  a ``Scale`` holding its merge scale, the engine's float32 factor (`merge_scales`). A linear weighted
  layer is its ``Conv2d`` / ``Affine`` without an ``IF``; a grouped convolution ``Conv2d(groups=...)``.
  NIR 1.0.5 has no concatenation (edges only sum): a `Concatenate` is refused.
- Not in the graph, written to the side file: the input coding (Poisson rule), the readout rule,
  the initial membrane (v(0) = fraction x theta, e.g. QCFS's theta/2), the NIR version.
- A Reshape (a Conv1D model's (L, C) input as a 2-D map (1, L, C)) and a spiking max pool have no NIR
  1.0.5 node: refused.
- A leak below 1 (the engine's discrete LIF) has no exact NIR form (NIR's LIF is continuous,
  its discretisation is the importer's): refused.
- Quantised weights (``QUANT=b``, `pipeline.training.quantisation`): NIR holds float weights, so the
  file holds q x scale, the very float32 values the engine runs; each Conv2d/Affine/Linear node's
  ``metadata`` (NIR 1.0.5 serialises it with the node) holds ``weight_bits`` and ``weight_scale`` (one
  float32 per output channel, so q = weight / weight_scale along the first axis, exactly), and the side
  file repeats them per layer under ``weight_quantisation``.
"""
import numpy as np

from pipeline import UserError, network

NIR_VERSION = "1.0.5"
INPUT, OUTPUT = network.INPUT, network.OUTPUT


def _threshold_out(theta):
    """NIR's v > thr equals the engine's v >= theta on float32 membranes for thr = nextafter(theta, -inf)."""
    return np.nextafter(np.float32(theta), np.float32(-np.inf))


def _threshold_in(value):
    return float(np.nextafter(np.float32(value), np.float32(np.inf)))


def _channels_first(shape):
    return tuple(shape[-1:]) + tuple(shape[:-1]) if len(shape) == 3 else tuple(shape)


def _if_node(nir, shape, theta):
    shape = _channels_first(shape)
    return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, _threshold_out(theta), np.float32))


def _flatten_permutation(shape):
    """Channels-first flat index -> channels-last flat index of an (H, W, C) map."""
    height, width, channels = shape
    return np.arange(height * width * channels).reshape(height, width, channels).transpose(2, 0, 1).ravel()


def _weights(node):
    values = [np.asarray(w) for w in node.layer.get_weights()]
    kernel = values[0].astype(np.float32)
    bias = values[1].astype(np.float32) if node.use_bias else np.zeros(kernel.shape[-1], np.float32)
    return kernel, bias


def _check_exportable(graph):
    if graph.neurons.leak != 1.0 or any(n.neuron.leak != 1.0 for n in graph.calibrated()):
        raise UserError(f"network {graph.name!r}: a leak below 1 has no exact NIR form (NIR's LIF is continuous; "
                        "its time step is the importer's): export networks with LEAK=1")
    for node in graph.nodes:
        if isinstance(node, network.Reshape):
            raise UserError(f"layer {node.name!r}: NIR {NIR_VERSION} has no Reshape node (a Conv1D model runs "
                            "here as a 2-D map of height 1): it cannot be exported yet")
        if isinstance(node, network.MaxPool2d):
            raise UserError(f"layer {node.name!r}: NIR {NIR_VERSION} has no max pool node (nor a spike-count "
                            "gate): it cannot be exported")
        if isinstance(node, network.Concatenate):
            raise UserError(f"layer {node.name!r}: NIR {NIR_VERSION} has no concatenation node (its edges only sum): "
                            "a Concatenate cannot be exported")
        if isinstance(node, network.Conv2d) and node.padding == "same" and node.stride != (1, 1) \
                and any((_total_pad(node, a) - 2 * node.pads()[a]) % node.dilation[a] for a in (0, 1)):
            raise UserError(f"layer {node.name!r}: 'same' padding with stride {node.stride} and dilation "
                            f"{node.dilation} pads unevenly; NIR's padding is symmetric, and the kernel cannot "
                            "grow by less than its dilation to make up for it")
        if isinstance(node, network.AvgPool2d) and any(_total_pad(node, a) for a in (0, 1)):
            raise UserError(f"layer {node.name!r}: a padded average pool (TF excludes the padding from the mean) "
                            "has no NIR form")


def _total_pad(node, axis):
    dilation = node.dilation[axis] if isinstance(node, network.Conv2d) else 1
    if node.padding != "same":
        return 0
    out, before, after = network.same_padding(node.input_shape[axis], node.kernel_size[axis], node.stride[axis],
                                              dilation)
    return before + after


def _units(graph):
    """`Network.units` as the engine computes them: float32 products of float32 thresholds."""
    units = graph.units({name: np.full(1, theta, np.float32) for name, theta in graph.thresholds().items()})
    return {name: np.float32(np.asarray(unit, np.float32).flat[0]) for name, unit in units.items()}


def merge_scales(graph):
    """``{merge: per-input scales}`` as float32, as the engine computes them (`Network.merge_scales` on
    float32 products of float32 thresholds): the file's Scale nodes hold the engine's factors exactly."""
    units = _units(graph)
    return {node.name: [np.float32(scale) for scale in graph.merge_scales(node, units)]
            for node in graph.nodes if isinstance(node, network.MERGES)}


def bias_in_units(graph, node, bias):
    """The bias a weighted node adds to its current every step, as the engine adds it: the Keras bias over
    the unit of the node's input (a spike stands for that unit), in float32."""
    return np.asarray(bias, np.float32) / _units(graph)[graph.inputs_of(node)[0]]


def _conv_padding(node, weight):
    """NIR padding, weight (C_out, C_in/g, kH, kW) and metadata of a Keras convolution. 'same' at stride 1
    is NIR's ``"same"`` (PyTorch's rule: TF's, the smaller half first). With a stride PyTorch has no
    'same', and TF pads ``after`` = ``before`` or one more: the file pads ``after`` on both sides and the
    kernel grows in front by the difference (over the dilation), zero rows that meet only the extra
    padding, so every window weighs the same inputs by the same weights; the metadata names the Keras
    kernel size, so `from_nir` takes the zero rows off again."""
    if node.padding != "same":
        return (0, 0), weight, {}
    if node.stride == (1, 1):
        return "same", weight, {}
    pads = [network.same_padding(node.input_shape[a], node.kernel_size[a], node.stride[a], node.dilation[a])[1:]
            for a in (0, 1)]
    grow = [(after - before) // node.dilation[a] for a, (before, after) in enumerate(pads)]
    weight = np.pad(weight, ((0, 0), (0, 0), (grow[0], 0), (grow[1], 0)))
    return tuple(int(after) for _, after in pads), weight, {"keras_kernel_size": list(node.kernel_size)}


def _quantisation(node, bits):
    """A weighted node's NIR ``metadata``: its weights' width and per-output-channel scale (``bits`` > 0;
    a ValueError if its kernel is not quantised to that width), else none."""
    if not bits:
        return {}
    from pipeline.training import quantisation
    _, scale = quantisation.integer_weights(_weights(node)[0], bits)
    return {"weight_bits": np.int64(bits), "weight_scale": scale}


def _ops(nir, node, flat, graph, weight_bits=0):
    """The NIR nodes of one engine node, each reading the one before: (name, NIR node) pairs. ``flat``:
    the channels-last map its input is a flattening of, if it is one (an Affine's columns follow NIR's
    channels-first order); ``weight_bits``: the width its kernel is quantised to (`_quantisation`). A bias is
    written as the engine adds it (`bias_in_units`); the Keras bias is in the metadata (``keras_bias``), so
    the file reads back to the very same weights."""
    ops = []
    if isinstance(node, network.Weighted):
        kernel, bias = _weights(node)
        metadata = {"keras_bias": bias.tolist()} if node.use_bias else {}
        bias = bias_in_units(graph, node, bias)
    if isinstance(node, network.Conv2d):
        padding, weight, more = _conv_padding(node, kernel.transpose(3, 2, 0, 1))
        ops.append((node.name, nir.Conv2d(input_shape=tuple(node.input_shape[:2]), weight=weight.copy(),
                                          stride=node.stride, padding=padding, dilation=node.dilation,
                                          groups=node.groups, bias=bias,
                                          metadata={**metadata, **more, **_quantisation(node, weight_bits)})))
    elif isinstance(node, network.Affine):
        weight = kernel.T if flat is None else kernel.T[:, _flatten_permutation(flat)]
        metadata = {**metadata, **_quantisation(node, weight_bits)}
        ops.append((node.name, nir.Affine(weight=weight.copy(), bias=bias, metadata=metadata) if node.use_bias
                    else nir.Linear(weight=weight.copy(), metadata=metadata)))
    elif isinstance(node, network.AvgPool2d):
        ops.append((node.name, nir.AvgPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                                             padding=np.array((0, 0)))))
    elif isinstance(node, network.Flatten):
        ops.append((node.name, nir.Flatten(input_type={"input": np.array(_channels_first(node.input_shape))},
                                           start_dim=0, end_dim=-1)))
    elif isinstance(node, network.Add) and node.neuron is None:   # a pure sum: the identity its edges enter
        ops.append((node.name, nir.Scale(np.ones(_channels_first(node.output_shape), np.float32))))
    return ops


def to_nir(graph, weight_bits=0):
    """The NIR graph of a converted network (`network.Network` whose weighted nodes hold their layer);
    ``weight_bits``: the width its kernels are quantised to (0: float), recorded in each weighted node's
    ``metadata`` with its scale.

    Each engine node becomes its NIR node (named as it), then its neurons (``<name>.if``, or
    ``<name>.i`` for the membrane readout); a linear layer has none. A merge is where edges meet (NIR
    sums every edge entering a node): an `Add` with neurons is the IF ``<name>.if`` entered by its
    inputs, a linear `Add` the identity ``Scale`` ``<name>``; each input after the first enters through
    ``<name>.scale.<input>``, a Scale holding its merge scale (`merge_scales`). Dropout is nothing.
    """
    import nir
    _check_exportable(graph)
    scales = merge_scales(graph)
    nodes = {INPUT: nir.Input(input_type=np.array(_channels_first(graph.input_shape)))}
    edges = []
    out, flat = {INPUT: INPUT}, {INPUT: None}   # engine node -> the NIR node carrying its output; the map it flattens
    for node in graph.nodes:
        sources = graph.inputs_of(node)
        if len({flat[s] for s in sources}) > 1:
            raise UserError(f"layer {node.name!r} merges a flattened map with another vector: NIR flattens "
                            "channels-first, so their elements would not line up")
        ops = _ops(nir, node, flat[sources[0]], graph, weight_bits)
        if getattr(node, "neuron", None) is not None and graph.spikes(node):
            ops.append((f"{node.name}.if", _if_node(nir, node.output_shape, node.neuron.threshold)))
        elif node.readout:
            ops.append((f"{node.name}.i", nir.I(r=np.ones(node.output_shape, np.float32))))
        flat[node.name] = (tuple(node.input_shape) if isinstance(node, network.Flatten) and len(node.input_shape) == 3
                           else flat[sources[0]] if isinstance(node, (network.Add, network.Dropout)) else None)
        if not ops:     # dropout: the identity at inference
            out[node.name] = out[sources[0]]
            continue
        head = ops[0][0]
        edges.append((out[sources[0]], head))
        for source, scale in zip(sources[1:], scales.get(node.name, [])[1:]):
            name = f"{node.name}.scale.{source}"
            nodes[name] = nir.Scale(np.full(_channels_first(node.output_shape), scale, np.float32))
            edges += [(out[source], name), (name, head)]
        for index, (name, value) in enumerate(ops):
            value.input_type = {"input": np.array(_channels_first(node.input_shape if index == 0
                                                                  else node.output_shape))}
            value.output_type = {"output": np.array(_channels_first(node.output_shape))}
            nodes[name] = value
            if index:
                edges.append((ops[index - 1][0], name))
        out[node.name] = ops[-1][0]
    nodes[OUTPUT] = nir.Output(output_type=np.array(graph.readout.output_shape))
    edges.append((out[graph.readout.name], OUTPUT))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def sidecar(graph, approximations=(), weight_bits=0):
    """What the NIR file does not hold, for a reader (and `from_nir`) to run it as the engine does (and,
    for quantised weights, their width and scales, also in the nodes' metadata)."""
    quantised = {"weight_quantisation": {
        "bits": weight_bits, "scheme": "symmetric per output channel, post-training; q = weight / scale exactly, "
                                      "|q| <= 2^(bits-1) - 1; biases float32",
        "scales": {node.name: [float(s) for s in _quantisation(node, weight_bits)["weight_scale"]]
                   for node in graph.nodes if isinstance(node, network.Weighted)}}} if weight_bits else {}
    return {**quantised, "nir_version": NIR_VERSION, "format": "NIR HDF5 (nir.write)",
            "input_shape_channels_last": list(graph.input_shape),
            "input_coding": graph.neurons.coding, "poisson_rule": graph.neurons.poisson_rule,
            "input_gain": graph.neurons.gain, "input_delta": graph.neurons.delta,
            "readout": graph.neurons.readout, "pooling": graph.neurons.pooling, "reset": "subtract",
            "initial_membrane_fraction_of_threshold": graph.neurons.initial_membrane,
            "threshold_rule": "engine fires at v >= theta; the file holds nextafter(float32 theta, -inf) for NIR's v > thr",
            "thresholds": graph.thresholds(),
            "approximations": list(approximations) or ["none: every node is exact in NIR 1.0.5"]}


def _pair(value):
    """A NIR stride / dilation (an int or a pair) as a pair of ints."""
    values = np.atleast_1d(np.asarray(value)).astype(int).tolist()
    return tuple(values * 2 if len(values) == 1 else values)


def _graph_order(graph, path):
    """The NIR graph's nodes between input and output, each after every node feeding it (in the file's
    order where that allows), with the sources and readers of every node (in edge order)."""
    sources, readers = ({name: [] for name in graph.nodes} for _ in range(2))
    for source, target in graph.edges:
        if source not in graph.nodes or target not in graph.nodes:
            raise UserError(f"{path}: edge {source!r} -> {target!r} names a node the graph does not have")
        sources[target].append(source)
        readers[source].append(target)
    order, placed, remaining = [], {INPUT}, [n for n in graph.nodes if n not in (INPUT, OUTPUT)]
    while remaining:
        ready = next((n for n in remaining if sources[n] and set(sources[n]) <= placed), None)
        if ready is None:
            raise UserError(f"{path}: nodes {remaining} are not reached from the input, or form a cycle; the "
                            "engine runs feed-forward graphs")
        order.append(ready)
        placed.add(ready)
        remaining.remove(ready)
    unread = [n for n in order if not readers[n]]
    if unread or len(sources[OUTPUT]) != 1 or sources[INPUT]:
        raise UserError(f"{path}: " + (f"nothing reads nodes {unread}" if unread else
                                       "the output must be fed by one node and the input by none"))
    return order, sources, readers


def _if_threshold(node, name, path):
    values = np.unique(np.asarray(node.v_threshold))
    if values.size != 1 or not np.all(np.asarray(node.r) == 1):
        raise UserError(f"{path}: node {name!r}: the engine needs one threshold per layer and r = 1")
    return _threshold_in(values[0])


def from_nir(nir_graph, side=None, path="<graph>"):
    """A Keras model (functional: a chain or a graph), its thresholds and `network.Neurons` from a NIR
    graph written by `to_nir`, or any feed-forward graph of Conv2d / Linear / Affine / AvgPool2d /
    Flatten / IF / I / Scale nodes the engine can run. ``side``: the `sidecar` dict (input coding,
    initial membrane), if there is one.

    A node entered by several edges (which NIR sums) is a Keras ``Add``: an IF (``Add`` + ``ReLU``, its
    threshold the Add's) or a Scale of ones (a linear ``Add``); one input enters directly, each other
    through a Scale read only by the merge, whose values must be the engine's merge scales for the
    thresholds read (`merge_scales`): the engine derives them from the thresholds, so other values
    would run another network. A weighted node with an IF as its only reader has ReLU neurons; without
    one it is linear (its current passes on)."""
    import nir
    import tensorflow as tf
    side = side or {}
    layers = tf.keras.layers
    if INPUT not in nir_graph.nodes or OUTPUT not in nir_graph.nodes:
        raise UserError(f"{path}: the graph has no 'input' or no 'output' node")
    order, sources, readers = _graph_order(nir_graph, path)
    nodes = nir_graph.nodes
    shape = np.asarray(nodes[INPUT].input_type["input"]).tolist()
    input_shape = tuple(shape[1:] + shape[:1]) if len(shape) == 3 else tuple(shape)
    inputs = layers.Input(input_shape, name="input")
    weighted_kinds = (nir.Conv2d, nir.Linear, nir.Affine)
    last = sources[OUTPUT][0]
    readout = sources[last][0] if isinstance(nodes[last], (nir.IF, nir.I)) else last
    if not isinstance(nodes[readout], weighted_kinds) or readers[readout] != [last] and readout != last:
        raise UserError(f"{path}: the output must be fed by a Conv2d, Linear or Affine node's IF or I (the readout)")

    def fires(name):     # a weighted node whose only reader is an IF of its own: ReLU neurons
        (reader, *others) = readers[name]
        single_if = isinstance(nodes[reader], nir.IF) and len(sources[reader]) == 1
        if single_if and others:
            raise UserError(f"{path}: node {name!r} feeds its IF and other nodes; the engine passes on one of the two")
        return single_if and name != readout

    value, flat, keras_of = {INPUT: inputs}, {INPUT: None}, {}   # per NIR node: tensor, flattened map, Keras layer
    factors, merges, weights, thresholds, pools_spike, readout_rule = {}, [], [], {}, set(), "membrane"
    foreign = []    # layers whose bias the file holds in the engine's units only (no keras_bias metadata)

    def weigh(layer, node, kernel, bias):
        """Queue ``layer``'s weights: its kernel, and its Keras bias (`_keras_bias`) where it has one."""
        keras_bias, exported = _keras_bias(node, bias)
        weights.append((layer, [kernel] + ([keras_bias] if np.any(bias) else [])))
        if np.any(bias) and not exported:
            foreign.append(layer)
    for name in order:
        node, source = nodes[name], sources[name][0]
        keras_name = name.replace(".", "_")
        value[name], flat[name] = value[source], flat[source]
        if len(sources[name]) > 1:
            if not (isinstance(node, nir.IF) or isinstance(node, nir.Scale) and np.all(np.asarray(node.scale) == 1)):
                raise UserError(f"{path}: node {name!r} ({type(node).__name__}) is entered by several edges; the engine "
                                "sums edges only into an IF or a Scale of ones (a residual Add)")
            direct = [s for s in sources[name] if s not in factors]
            scaled = [s for s in sources[name] if s in factors]
            if len(direct) != 1:
                raise UserError(f"{path}: node {name!r}: of a merge's inputs, all but the first enter through a Scale "
                                f"(here {len(direct)} enter directly)")
            parts = direct + [sources[s][0] for s in scaled]
            if len({flat[s] for s in parts}) > 1:
                raise UserError(f"{path}: node {name!r} adds a flattened map to another vector")
            base = name.removesuffix(".if") if isinstance(node, nir.IF) else name
            add = layers.Add(name=base.replace(".", "_"))
            value[name] = add([value[s] for s in parts])
            merges.append((add.name, [factors[s] for s in scaled], name))
            keras_of[name] = add
            if isinstance(node, nir.IF):
                value[name] = layers.ReLU(name=f"{add.name}_relu")(value[name])
                thresholds[add.name] = _if_threshold(node, name, path)
        elif isinstance(node, nir.Scale):
            if len(readers[name]) != 1 or len(sources[readers[name][0]]) < 2:
                raise UserError(f"{path}: node {name!r}: a Scale outside a merge has no engine equivalent (the "
                                "engine scales only the inputs of an Add, by their units)")
            factors[name] = np.asarray(node.scale, np.float32)
        elif isinstance(node, nir.Conv2d):
            kernel, padding = _keras_conv(node, tuple(value[source].shape[1:3]), name, path)
            bias = np.asarray(node.bias, np.float32)
            conv = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=_pair(node.stride),
                                 dilation_rate=_pair(node.dilation), groups=int(node.groups), padding=padding,
                                 use_bias=bool(np.any(bias)), activation="relu" if fires(name) else "linear",
                                 name=keras_name)
            value[name], flat[name], keras_of[name] = conv(value[source]), None, conv
            weigh(conv, node, kernel, bias)
        elif isinstance(node, (nir.Linear, nir.Affine)):
            weight = np.asarray(node.weight, np.float32)
            if flat[source] is not None:
                weight = weight[:, np.argsort(_flatten_permutation(flat[source]))]
            bias = np.asarray(node.bias, np.float32) if isinstance(node, nir.Affine) else np.zeros(len(weight))
            dense = layers.Dense(weight.shape[0], use_bias=bool(np.any(bias)), name=keras_name,
                                 activation="relu" if fires(name) else "linear")
            value[name], flat[name], keras_of[name] = dense(value[source]), None, dense
            weigh(dense, node, weight.T.copy(), bias)
        elif isinstance(node, nir.AvgPool2d):
            if np.any(np.asarray(node.padding) != 0):
                raise UserError(f"{path}: node {name!r}: padded average pooling is not supported")
            pool = layers.AveragePooling2D(tuple(np.asarray(node.kernel_size).tolist()),
                                           tuple(np.asarray(node.stride).tolist()), name=keras_name)
            value[name], flat[name], keras_of[name] = pool(value[source]), None, pool
        elif isinstance(node, nir.Flatten):
            flat[name] = tuple(value[source].shape[1:]) if len(value[source].shape) == 4 else None
            value[name] = layers.Flatten(name=keras_name)(value[source])
        elif isinstance(node, nir.IF):
            theta, before = _if_threshold(node, name, path), keras_of.get(source)
            if readers[source] != [name] or before is None:
                raise UserError(f"{path}: node {name!r}: an IF follows a Conv2d, Linear, Affine, AvgPool2d or a sum, "
                                "as its only reader")
            if isinstance(before, layers.AveragePooling2D):
                pools_spike.add(before.name)
            elif isinstance(before, layers.Add):
                value[name] = layers.ReLU(name=f"{before.name}_relu")(value[source])
                thresholds[before.name] = theta
            else:
                thresholds[before.name] = theta
            readout_rule = "spike_count" if readers[name] == [OUTPUT] else readout_rule
        elif isinstance(node, nir.I) and readers[name] == [OUTPUT] and source == readout:
            readout_rule = "membrane"
        else:
            raise UserError(f"{path}: node {name!r} ({type(node).__name__}) has no engine equivalent here "
                            "(supported: Conv2d, Linear, Affine, AvgPool2d, Flatten, IF, I as the readout's, Scale "
                            "into a merge)")
    model = tf.keras.Model(inputs, value[last], name="from_nir")
    for name, theta in side.get("thresholds", {}).items():   # the membrane readout's threshold is in no node
        if name in {layer.name for layer, _ in weights}:
            thresholds.setdefault(name, float(theta))
    for layer, values in weights:
        layer.set_weights(values)
    if foreign:     # a bias in the engine's units, from another tool: times the unit of the layer's input
        graph = network.describe(model, thresholds, network.Neurons())
        units = _units(graph)
        for layer in foreign:
            node = next(n for n in graph.weighted if n.name == layer.name)
            layer.bias.assign(layer.bias.numpy() * units[graph.inputs_of(node)[0]])
    pool_names = {layer.name for layer in model.layers if isinstance(layer, layers.AveragePooling2D)}
    if pools_spike and pools_spike != pool_names:
        raise UserError(f"{path}: some average pools spike and others do not; the engine runs one pooling rule")
    neurons = network.Neurons(coding=side.get("input_coding", "poisson"), poisson_rule=side.get("poisson_rule", "signed"),
                              gain=float(side.get("input_gain", 1.0)), delta=float(side.get("input_delta", 0.05)),
                              readout=readout_rule, pooling="spiking" if pools_spike else "linear",
                              initial_membrane=float(side.get("initial_membrane_fraction_of_threshold", 0.0)))
    if merges:
        _check_merge_scales(network.describe(model, thresholds, neurons), merges, path)
    return model, thresholds, neurons


def _keras_bias(node, bias):
    """(the Keras bias of a weighted NIR node, whether it is the exported one): its ``keras_bias`` metadata
    where this module wrote it, else the file's bias (then scaled by `from_nir` once the units are known)."""
    stored = (getattr(node, "metadata", None) or {}).get("keras_bias")
    if stored is not None and np.shape(stored) == np.shape(bias):
        return np.asarray(stored, np.float32), True
    return np.asarray(bias, np.float32), False


def _keras_conv(node, size, name, path):
    """The Keras kernel (kH, kW, C_in/g, C_out) and padding of a NIR Conv2d on a map of ``size``: integer
    padding is Keras 'same' where TF would pad so (`_conv_padding`'s encoding: the zero rows the kernel
    grew by, per its metadata, taken off again), else refused: the engine runs 'same' or 'valid'."""
    kernel = np.asarray(node.weight, np.float32).transpose(2, 3, 1, 0)
    if isinstance(node.padding, str):
        return kernel, node.padding
    pads = _pair(node.padding)
    if pads == (0, 0):
        return kernel, "valid"
    shape = tuple(int(k) for k in node.metadata.get("keras_kernel_size", kernel.shape[:2]))
    grow = [kernel.shape[a] - shape[a] for a in (0, 1)]
    trimmed = kernel[grow[0]:, grow[1]:]
    stride, dilation = _pair(node.stride), _pair(node.dilation)
    tf_pads = [network.same_padding(size[a], shape[a], stride[a], dilation[a])[1:] for a in (0, 1)]
    if min(grow) < 0 or np.any(kernel[:grow[0]]) or np.any(kernel[:, :grow[1]]) or any(
            after != pads[a] or after - before != grow[a] * dilation[a] for a, (before, after) in enumerate(tf_pads)):
        raise UserError(f"{path}: node {name!r}: integer padding {pads} is not what Keras 'same' pads here; the "
                        "engine runs Keras 'same' or 'valid' convolutions")
    return trimmed, "same"


def _check_merge_scales(graph, merges, path):
    """Refuse a file whose merge Scales are not the engine's (`merge_scales` of the thresholds read)."""
    expected = merge_scales(graph)
    for layer, scales, name in merges:
        for value, want in zip(scales, expected[layer][1:]):
            if not np.all(value == want):
                raise UserError(f"{path}: node {name!r}: an input enters scaled by {np.unique(value).tolist()}; the "
                                f"engine rescales it by {float(want)!r}, the ratio of the units its thresholds give")


def write(path, graph, approximations=(), weight_bits=0):
    """``path`` (.nir, HDF5) and ``path`` .json (the `sidecar`), each written atomically; ``weight_bits``:
    the width the kernels are quantised to (0: float)."""
    import nir
    from pipeline import results
    results.write_atomic_with(path, lambda tmp: nir.write(tmp, to_nir(graph, weight_bits)))
    side = sidecar(graph, approximations, weight_bits)
    results.write_json(path.with_suffix(".json"), side)
    return side


def _read_graph(path):
    """`nir.read` without its type check: nir 1.0.5 does not restore an AvgPool2d's types from the file
    (upstream: `read_node` drops them), so reading back a graph it wrote fails the check."""
    import h5py
    import nir
    from nir.serialization import hdf2dict
    with h5py.File(path, "r") as f:
        data = hdf2dict(f["node"])
    nodes = {name: nir.dict2NIRNode(node) for name, node in data["nodes"].items()}
    edges = [tuple(e.decode() if isinstance(e, bytes) else str(e) for e in edge) for edge in data["edges"]]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def read(path):
    """`from_nir` of a .nir file and its side file (if present); a file that is not NIR: one line."""
    import json
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: NIR file not found")
    try:
        graph = _read_graph(path)
    except Exception as error:   # h5py / nir raise many kinds on a damaged file
        raise UserError(f"{path}: not a readable NIR file ({type(error).__name__}: {error})") from None
    side_path = path.with_suffix(".json")
    side = json.loads(side_path.read_text()) if side_path.is_file() else {}
    return from_nir(graph, side, str(path))
