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
  written as NIR's ``"same"`` string (PyTorch's rule, the same one), never as symmetric integers;
  'same' with a stride is refused when it would pad unevenly.
- Linear average pools are ``AvgPool2d`` nodes; spiking pools are ``AvgPool2d`` then an ``IF``
  with threshold 1. The membrane readout is an integrator ``I`` (it never spikes); the
  spike-count readout an ``IF``.
- Not in the graph, written to the side file: the input coding (Poisson rule), the readout rule,
  the initial membrane (v(0) = fraction x theta, e.g. QCFS's theta/2), the NIR version.
- A Reshape (a Conv1D model's (L, C) input as a 2-D map (1, L, C)) and a spiking max pool have no NIR
  1.0.5 node: refused.
- A leak below 1 (the engine's discrete LIF) has no exact NIR form (NIR's LIF is continuous,
  its discretisation is the importer's): refused.
- Quantised weights (``QUANT=b``, `pipeline.training.quantisation`): NIR holds float weights, so the
  file holds q x scale, the very float32 values the engine runs; each Conv2d/Affine/Linear node's
  ``metadata`` (NIR 1.0.5 serialises it with the node) holds ``weight_bits`` and ``weight_scale`` (one
  float32 per output channel, so q = weight / weight_scale along the first axis, exactly), and the side file
  repeats them per layer under ``weight_quantisation``.
"""
import numpy as np

from pipeline import UserError, network

NIR_VERSION = "1.0.5"
INPUT, OUTPUT = "input", "output"


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
    if graph.neurons.leak != 1.0 or any(n.neuron.leak != 1.0 for n in graph.weighted):
        raise UserError(f"network {graph.name!r}: a leak below 1 has no exact NIR form (NIR's LIF is continuous; "
                        "its time step is the importer's): export networks with LEAK=1")
    for node in graph.nodes:
        if isinstance(node, network.Reshape):
            raise UserError(f"layer {node.name!r}: NIR {NIR_VERSION} has no Reshape node (a Conv1D model runs "
                            "here as a 2-D map of height 1): it cannot be exported yet")
        if isinstance(node, network.MaxPool2d):
            raise UserError(f"layer {node.name!r}: NIR {NIR_VERSION} has no max pool node (nor a spike-count "
                            "gate): it cannot be exported")
        if isinstance(node, network.Conv2d) and node.padding == "same" and node.stride != (1, 1) \
                and any(node.pads()[a] * 2 != _total_pad(node, a) for a in (0, 1)):
            raise UserError(f"layer {node.name!r}: 'same' padding with stride {node.stride} pads unevenly; "
                            "NIR holds 'same' for stride 1 only")
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


def _quantisation(node, bits):
    """A weighted node's NIR ``metadata``: its weights' width and per-output-channel scale (``bits`` > 0;
    a ValueError if its kernel is not quantised to that width), else none."""
    if not bits:
        return {}
    from pipeline.training import quantisation
    _, scale = quantisation.integer_weights(_weights(node)[0], bits)
    return {"weight_bits": np.int64(bits), "weight_scale": scale}


def to_nir(graph, weight_bits=0):
    """The NIR graph of a converted network (`network.Network` whose weighted nodes hold their layer);
    ``weight_bits``: the width its kernels are quantised to (0: float), recorded in each weighted node's
    ``metadata`` with its scale."""
    import nir
    _check_exportable(graph)
    nodes = {INPUT: nir.Input(input_type=np.array(_channels_first(graph.input_shape)))}
    edges, previous, flat_from = [], INPUT, None
    for node in graph.nodes:
        added = []
        if isinstance(node, network.Conv2d):
            kernel, bias = _weights(node)
            padding = "same" if node.padding == "same" else (0, 0)
            added.append((node.name, nir.Conv2d(input_shape=tuple(node.input_shape[:2]),
                                                weight=kernel.transpose(3, 2, 0, 1).copy(), stride=node.stride,
                                                padding=padding, dilation=node.dilation, groups=1, bias=bias,
                                                metadata=_quantisation(node, weight_bits))))
        elif isinstance(node, network.Affine):
            kernel, bias = _weights(node)
            weight = kernel.T
            if flat_from is not None:
                weight = weight[:, _flatten_permutation(flat_from)]
                flat_from = None
            metadata = _quantisation(node, weight_bits)
            layer = (nir.Affine(weight=weight.copy(), bias=bias, metadata=metadata) if node.use_bias
                     else nir.Linear(weight=weight.copy(), metadata=metadata))
            added.append((node.name, layer))
        elif isinstance(node, network.AvgPool2d):
            added.append((node.name, nir.AvgPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                                                   padding=np.array((0, 0)))))
        elif isinstance(node, network.Flatten):
            flat_from = tuple(node.input_shape) if len(node.input_shape) == 3 else None
            added.append((node.name, nir.Flatten(input_type={"input": np.array(_channels_first(node.input_shape))},
                                                 start_dim=0, end_dim=-1)))
        if getattr(node, "neuron", None) is not None and graph.spikes(node):
            added.append((f"{node.name}.if", _if_node(nir, node.output_shape, node.neuron.threshold)))
        elif node.readout:
            added.append((f"{node.name}.i", nir.I(r=np.ones(node.output_shape, np.float32))))
        for name, value in added:
            value.input_type = {"input": np.array(_channels_first(node.input_shape if value is added[0][1]
                                                                  else node.output_shape))}
            value.output_type = {"output": np.array(_channels_first(node.output_shape))}
            nodes[name] = value
            edges.append((previous, name))
            previous = name
    nodes[OUTPUT] = nir.Output(output_type=np.array(graph.readout.output_shape))
    edges.append((previous, OUTPUT))
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


def _chain(graph, path):
    """The NIR graph's nodes in edge order, checked to be one chain from input to output."""
    following = {}
    for source, target in graph.edges:
        if source in following:
            raise UserError(f"{path}: node {source!r} feeds more than one node; the engine runs chains only")
        following[source] = target
    order, name = [], INPUT
    while name in following:
        name = following[name]
        order.append(name)
    if not order or order[-1] != OUTPUT or len(order) != len(graph.nodes) - 1:
        raise UserError(f"{path}: the edges do not chain input -> ... -> output through every node")
    return order[:-1]


def from_nir(nir_graph, side=None, path="<graph>"):
    """A Keras model, its thresholds and `network.Neurons` from a NIR graph written by `to_nir`
    (or any chain of Conv2d / Linear / Affine / AvgPool2d / Flatten / IF / I nodes).
    ``side``: the `sidecar` dict (input coding, initial membrane), if there is one."""
    import nir
    import tensorflow as tf
    side = side or {}
    layers = tf.keras.layers
    if INPUT not in nir_graph.nodes or OUTPUT not in nir_graph.nodes:
        raise UserError(f"{path}: the graph has no 'input' or no 'output' node")
    shape = np.asarray(nir_graph.nodes[INPUT].input_type["input"]).tolist()
    input_shape = tuple(shape[1:] + shape[:1]) if len(shape) == 3 else tuple(shape)
    inputs = layers.Input(input_shape, name="input")
    x, weights, thresholds, flat_from, pools_spike, readout, last = inputs, [], {}, None, set(), None, None
    order = _chain(nir_graph, path)
    for index, name in enumerate(order):
        node = nir_graph.nodes[name]
        is_last_weighted = not any(isinstance(nir_graph.nodes[n], (nir.Conv2d, nir.Linear, nir.Affine))
                                   for n in order[index + 1:])
        if isinstance(node, nir.Conv2d):
            kernel = np.asarray(node.weight, np.float32).transpose(2, 3, 1, 0)
            bias = np.asarray(node.bias, np.float32)
            padding = node.padding if isinstance(node.padding, str) else "valid"
            if not isinstance(node.padding, str) and np.any(np.asarray(node.padding) != 0):
                raise UserError(f"{path}: node {name!r}: integer padding {node.padding} is symmetric; the engine "
                                "runs Keras 'same' or 'valid' convolutions")
            conv = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=_pair(node.stride),
                                 dilation_rate=_pair(node.dilation), padding=padding, use_bias=bool(np.any(bias)),
                                 activation="linear" if is_last_weighted else "relu", name=name.replace(".", "_"))
            x = conv(x)
            weights.append((conv, [kernel] + ([bias] if np.any(bias) else [])))
            last = conv
        elif isinstance(node, (nir.Linear, nir.Affine)):
            weight = np.asarray(node.weight, np.float32)
            if flat_from is not None:
                inverse = np.argsort(_flatten_permutation(flat_from))
                weight = weight[:, inverse]
                flat_from = None
            bias = np.asarray(node.bias, np.float32) if isinstance(node, nir.Affine) else np.zeros(len(weight))
            dense = layers.Dense(weight.shape[0], use_bias=bool(np.any(bias)), name=name.replace(".", "_"),
                                 activation="linear" if is_last_weighted else "relu")
            x = dense(x)
            weights.append((dense, [weight.T.copy()] + ([bias.astype(np.float32)] if np.any(bias) else [])))
            last = dense
        elif isinstance(node, nir.AvgPool2d):
            if np.any(np.asarray(node.padding) != 0):
                raise UserError(f"{path}: node {name!r}: padded average pooling is not supported")
            pool = layers.AveragePooling2D(tuple(np.asarray(node.kernel_size).tolist()),
                                           tuple(np.asarray(node.stride).tolist()), name=name.replace(".", "_"))
            x = pool(x)
            last = pool
        elif isinstance(node, nir.Flatten):
            flat_from = tuple(x.shape[1:]) if len(x.shape) == 4 else None
            x = layers.Flatten(name=name.replace(".", "_"))(x)
        elif isinstance(node, nir.IF):
            values = np.unique(np.asarray(node.v_threshold))
            if values.size != 1 or not np.all(np.asarray(node.r) == 1):
                raise UserError(f"{path}: node {name!r}: the engine needs one threshold per layer and r = 1")
            theta = _threshold_in(values[0])
            if isinstance(last, layers.AveragePooling2D):
                pools_spike.add(last.name)
            elif last is not None:
                thresholds[last.name] = theta
            if is_last_weighted and index == len(order) - 1:
                readout = "spike_count"
        elif isinstance(node, nir.I):
            readout = "membrane"
        else:
            raise UserError(f"{path}: node {name!r} ({type(node).__name__}) has no engine equivalent "
                            "(supported: Conv2d, Linear, Affine, AvgPool2d, Flatten, IF, I)")
    model = tf.keras.Model(inputs, x, name="from_nir")
    for name, value in side.get("thresholds", {}).items():   # the membrane readout's threshold is in no node
        if name in {layer.name for layer, _ in weights}:
            thresholds.setdefault(name, float(value))
    for layer, values in weights:
        layer.set_weights(values)
    pool_names = {layer.name for layer in model.layers if isinstance(layer, layers.AveragePooling2D)}
    if pools_spike and pools_spike != pool_names:
        raise UserError(f"{path}: some average pools spike and others do not; the engine runs one pooling rule")
    neurons = network.Neurons(coding=side.get("input_coding", "poisson"), poisson_rule=side.get("poisson_rule", "signed"),
                              gain=float(side.get("input_gain", 1.0)), delta=float(side.get("input_delta", 0.05)),
                              readout=readout or "membrane", pooling="spiking" if pools_spike else "linear",
                              initial_membrane=float(side.get("initial_membrane_fraction_of_threshold", 0.0)))
    return model, thresholds, neurons


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
