"""The one description of a converted spiking network: what it computes, not how it is run.

`describe` builds it, in one place, from a trained Keras model (a chain, or a graph with residual
`Add` and `Concatenate` merges), the per-layer thresholds and the neuron choices (`Neurons`: leak,
reset, initial membrane, pooling, readout, input coding). The engine (simulation, fast path, STDB),
the energy counts and the exports all read it; nothing else walks ``model.layers`` (the Keras
builders and ANN training aside).

A network is nodes plus edges, as in NIR: each node names the nodes it reads (``inputs``; none
given: the node before it, so a chain is just its nodes in order). Nodes are named with NIR's
vocabulary (Conv2d, Affine, AvgPool2d, Flatten, IF) but keep this project's channels-last,
per-sample shapes. Weights are not copied into the description: a weighted node reaches them through its
Keras ``layer`` (live variables for STDB, NumPy arrays for the energy model and exports), so the
description itself needs no TensorFlow.
"""
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

from pipeline import UserError

CODINGS = ("poisson", "analog", "rate", "delta")
CONSTANT_CODINGS = ("analog", "delta")   # codings whose input reaches the first layer as a held current
POISSON_RULES = ("signed", "toolbox")
READOUTS = ("membrane", "spike_count")
POOLINGS = ("linear", "spiking")
RESETS = ("subtract",)
HIDDEN_ACTIVATIONS = ("relu", "linear")
OUTPUT_ACTIVATIONS = ("softmax", "linear", "relu")
POOL_THRESHOLD = 1.0    # a spiking pool neuron fires at the mean rate of its unit-spike inputs
INPUT, OUTPUT = "input", "output"   # the graph's edges start at INPUT and end at OUTPUT (NIR's names)


def same_padding(size, window, stride=1, dilation=1):
    """TF/Keras 'same' padding of one axis: (outputs, pad before, pad after).

    The smaller half goes first: an even kernel of 8 pads 3 before and 4 after.
    """
    span = (window - 1) * dilation + 1
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + span - size, 0)
    return outputs, total // 2, total - total // 2


def padding_of(size, window, stride, dilation, padding):
    """(outputs, pad before) of one axis for Keras' ``"same"`` or ``"valid"`` padding."""
    if padding == "same":
        return same_padding(size, window, stride, dilation)[:2]
    span = (window - 1) * dilation + 1
    return max((size - span) // stride + 1, 0), 0


# --------------------------------------------------------------------- neurons
@dataclass(frozen=True)
class Neurons:
    """The neuron choices of a conversion, shared by every layer.

    ``coding``: ``"poisson"`` rate-codes the input; ``"analog"`` feeds it as a constant current;
    ``"rate"`` is a deterministic integrate-and-fire encoder per input value (rate ``gain * |x|``,
    events of amplitude ``sign(x) / gain``, `pipeline.engine.coding.rate_spikes`); ``"delta"`` is a
    level-crossing encoder with step ``delta`` whose events set a held first-layer current
    (`pipeline.engine.coding.delta_levels`).
    ``poisson_rule``: ``"signed"`` spikes with probability |x| and the sign of x (Rathi et al.);
    ``"toolbox"`` is SNN Toolbox INI's rule (probability |x| / max x of the batch, amplitude
    max x * sign x). ``readout``: ``"membrane"`` accumulates the last layer's input current,
    ``"spike_count"`` lets it spike and counts (SNN Toolbox). ``pooling``: ``"linear"`` average
    pools pass the mean of their input spikes on, ``"spiking"`` pools are IF neurons of their own
    (threshold 1, as INI). ``initial_membrane``: v(0) as a fraction of each threshold (0.5 for
    QCFS). ``leak``: multiplicative, in (0, 1]. ``reset``: by subtraction.
    """
    leak: float = 1.0
    coding: str = "poisson"
    poisson_rule: str = "signed"
    readout: str = "membrane"
    pooling: str = "linear"
    initial_membrane: float = 0.0
    reset: str = "subtract"
    gain: float = 1.0
    delta: float = 0.05

    def __post_init__(self):
        if not 0.0 < self.leak <= 1.0:
            raise UserError(f"LEAK={self.leak!r}: the leak must lie in (0, 1]")
        for key, value, allowed in (("CODING", self.coding, CODINGS),
                                    ("poisson_rule", self.poisson_rule, POISSON_RULES),
                                    ("readout", self.readout, READOUTS),
                                    ("pooling", self.pooling, POOLINGS),
                                    ("reset", self.reset, RESETS)):
            if value not in allowed:
                raise UserError(f"{key}={value!r}: choose one of {', '.join(allowed)}")
        for key, value in (("GAIN", self.gain), ("DELTA", self.delta)):
            if not 0.0 < float(value) < float("inf"):
                raise UserError(f"{key}={value!r}: must be a positive, finite number")
        if not 0.0 <= self.initial_membrane < 1.0:
            raise UserError(f"initial_membrane={self.initial_membrane!r}: must lie in [0, 1)")

    @classmethod
    def of(cls, settings):
        """The neuron choices held by any object with these attributes (e.g. engine settings)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class IF:
    """Integrate-and-fire neurons of one layer: ``v = leak * v + I``, a spike when ``v >= threshold``,
    reset by subtraction, ``v(0) = initial_membrane * threshold`` (LIF when ``leak < 1``)."""
    threshold: float
    leak: float = 1.0
    initial_membrane: float = 0.0

    def __post_init__(self):
        if not (self.threshold > 0 and self.threshold < float("inf")):
            raise UserError(f"threshold {self.threshold!r}: thresholds must be positive and finite")


# --------------------------------------------------------------------- layer nodes
@dataclass(frozen=True, kw_only=True)
class Node:
    """One layer: its name, per-sample, channels-last input and output shapes, and ``inputs``: the names
    of the nodes it reads (`INPUT` for the network's input; empty: the node before it in the network's
    order). ``readout`` marks the network's output layer (a weighted node)."""
    kind: ClassVar[str] = ""
    name: str
    input_shape: tuple
    output_shape: tuple
    readout: bool = False
    inputs: tuple = ()

    @property
    def neurons(self):
        import math
        return math.prod(self.output_shape)


@dataclass(frozen=True, kw_only=True)
class Weighted(Node):
    """A layer with synapses; ``layer`` is the Keras layer that holds its weights. ``neuron``: its IF
    neurons (the readout's too: the spike-count readout fires at its threshold), or None for a *linear*
    hidden layer (a Keras layer with a linear activation, e.g. a residual branch's last convolution
    before its `Add`, or a depthwise convolution before its pointwise one): its input current passes
    on as it is, every step. ``qcfs_lambda``: the clip level of the QCFS activation the layer absorbs
    (Bu et al. 2022), else None."""
    kind: ClassVar[str] = "weighted"
    use_bias: bool = False
    neuron: IF | None = None
    qcfs_lambda: float | None = None
    layer: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Conv2d(Weighted):
    """A Keras Conv2D (cross-correlation), channels-last; padding ``"same"`` or ``"valid"``; ``groups``:
    a grouped convolution (input and output channels in ``groups`` blocks, block g reading only input
    block g; a depthwise convolution is ``groups`` = input channels)."""
    kernel_size: tuple
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "valid"
    groups: int = 1

    def __post_init__(self):
        channels_in, channels_out = self.input_shape[-1], self.output_shape[-1]
        if self.groups < 1 or channels_in % self.groups or channels_out % self.groups:
            raise UserError(f"node {self.name!r}: {self.groups} groups do not divide {channels_in} input and "
                            f"{channels_out} output channels")

    def pads(self):
        """Per spatial axis: pad before the input (TF's rule)."""
        return tuple(padding_of(self.input_shape[a], self.kernel_size[a], self.stride[a], self.dilation[a],
                                self.padding)[1] for a in (0, 1))


@dataclass(frozen=True, kw_only=True)
class Affine(Weighted):
    """A Keras Dense layer (NIR's Affine with a bias, Linear without)."""


@dataclass(frozen=True, kw_only=True)
class AvgPool2d(Node):
    """Average pooling (padding excluded from the mean, as TF). ``neuron``: IF pool neurons
    (spiking pools) or None (linear: the average passes on)."""
    kind: ClassVar[str] = "pool"
    kernel_size: tuple
    stride: tuple
    padding: str = "valid"
    neuron: IF | None = None
    dilation: tuple = (1, 1)

    def pads(self):
        return tuple(padding_of(self.input_shape[a], self.kernel_size[a], self.stride[a], 1, self.padding)[1]
                     for a in (0, 1))


@dataclass(frozen=True, kw_only=True)
class MaxPool2d(Node):
    """Max pooling of spikes gated by their counts (SNN Toolbox's INI rule, Rueckauer et al. 2017):
    in each window, the input that has had the most spikes so far (this step's included; the first
    in row-major order on ties, as TF's ``max_pool_with_argmax``) passes its spikes on; the others
    are held back. No membrane: the gate is a function of the input's spike history."""
    kind: ClassVar[str] = "maxpool"
    kernel_size: tuple
    stride: tuple
    padding: str = "valid"

    def pads(self):
        return tuple(padding_of(self.input_shape[a], self.kernel_size[a], self.stride[a], 1, self.padding)[1]
                     for a in (0, 1))


@dataclass(frozen=True, kw_only=True)
class Flatten(Node):
    """Channels-last (H, W, C) to a vector, C fastest (NIR's channels-first order differs)."""
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True, kw_only=True)
class Reshape(Node):
    """Keras Reshape: the same values in channels-last order, in another per-sample shape (e.g. a
    1-D map (L, C) as the 2-D map (1, L, C) that `pipeline.canonical` makes of a Conv1D model)."""
    kind: ClassVar[str] = "reshape"


@dataclass(frozen=True, kw_only=True)
class Dropout(Node):
    """The identity at inference; in STDB a mask drawn once per sample and kept for all steps."""
    kind: ClassVar[str] = "dropout"
    rate: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Add(Node):
    """A residual merge (Keras ``Add``): the sum of its inputs, each rescaled to the first input's unit
    (`Network.merge_scales`). ``neuron``: IF neurons on that sum (a ReLU or QCFS layer after the Keras
    ``Add``; ``qcfs_lambda`` as for a weighted node), or None: the sum passes on as a current. Its
    shapes are its inputs'."""
    kind: ClassVar[str] = "add"
    neuron: IF | None = None
    qcfs_lambda: float | None = None


@dataclass(frozen=True, kw_only=True)
class Concatenate(Node):
    """Keras ``Concatenate`` along the channels (last axis), each input rescaled to the first input's
    unit (`Network.merge_scales`); ``input_shape`` is the first input's."""
    kind: ClassVar[str] = "concat"


MERGES = (Add, Concatenate)
COMPUTE = (Conv2d, Affine, AvgPool2d, MaxPool2d, Add)


# --------------------------------------------------------------------- the graph
@dataclass(frozen=True)
class Network:
    """A converted SNN: input shape, nodes in an order where each node comes after the nodes it reads
    (a chain: each feeds the next), neuron choices. The last node is the readout, the only one."""
    name: str
    input_shape: tuple
    nodes: tuple
    neurons: Neurons = Neurons()

    def __post_init__(self):
        shapes = {INPUT: tuple(self.input_shape)}
        used = set()
        for node in self.nodes:
            if node.name in shapes or node.name == OUTPUT:
                raise UserError(f"network {self.name!r}: node name {node.name!r} is used twice or reserved")
            sources = self.inputs_of(node)
            unknown = [s for s in sources if s not in shapes]
            if unknown:
                raise UserError(f"network {self.name!r}: node {node.name!r} reads {unknown}, which come after it "
                                "or do not exist")
            _check_shapes(self.name, node, [shapes[s] for s in sources])
            used.update(sources)
            shapes[node.name] = tuple(node.output_shape)
        weighted = self.weighted
        if not weighted:
            raise UserError(f"network {self.name!r} has no Conv2D or Dense layer to convert")
        if [n for n in weighted if n.readout] != [weighted[-1]] or self.nodes[-1] is not weighted[-1]:
            raise UserError(f"network {self.name!r}: the last node must be the only readout")
        unread = [n.name for n in self.nodes[:-1] if n.name not in used]
        if unread:
            raise UserError(f"network {self.name!r}: nothing reads nodes {unread}")
        for node in self.nodes:
            if isinstance(node, Weighted) and node.neuron is None and node.readout:
                raise UserError(f"network {self.name!r}: the readout {node.name!r} needs its neurons")

    def inputs_of(self, node):
        """The names of the nodes ``node`` reads (`INPUT`: the network's input)."""
        if node.inputs:
            return tuple(node.inputs)
        k = self.nodes.index(node)
        return (self.nodes[k - 1].name if k else INPUT,)

    @property
    def edges(self):
        """(source, target) names, NIR-style: from `INPUT`, and from the readout to ``output``."""
        return tuple((source, n.name) for n in self.nodes for source in self.inputs_of(n)) + \
            ((self.nodes[-1].name, OUTPUT),)

    @property
    def is_chain(self):
        """Whether every node reads exactly the node before it."""
        return all(self.inputs_of(n) == ((self.nodes[k - 1].name if k else INPUT),) for k, n in enumerate(self.nodes))

    @property
    def weighted(self):
        return tuple(n for n in self.nodes if isinstance(n, Weighted))

    @property
    def readout(self):
        return self.weighted[-1]

    @property
    def num_classes(self):
        return int(self.readout.output_shape[-1])

    @property
    def compute_nodes(self):
        """The nodes that cost operations (conv, dense, pools, adds); flatten, reshape, dropout and
        concatenation cost nothing."""
        return tuple(n for n in self.nodes if isinstance(n, COMPUTE))

    def calibrated(self):
        """Nodes with a threshold of their own (calibrated on the data, trained by STDB): weighted layers
        and adds that have neurons (the readout too)."""
        return tuple(n for n in self.nodes if isinstance(n, (Weighted, Add)) and n.neuron is not None)

    def thresholds(self):
        """``{node: threshold}`` of the `calibrated` nodes (the readout's too: the spike-count readout
        fires at it)."""
        return {n.name: n.neuron.threshold for n in self.calibrated()}

    def leaks(self):
        """``{hidden calibrated node: leak}``."""
        return {n.name: n.neuron.leak for n in self.calibrated() if not n.readout}

    def stateful(self):
        """Nodes with membranes: the calibrated ones, and pools when they spike."""
        return tuple(n for n in self.nodes if getattr(n, "neuron", None) is not None)

    def spikes(self, node):
        """Whether the node emits spikes (all stateful nodes but the membrane readout)."""
        return not node.readout or self.neurons.readout == "spike_count"

    def units(self, thresholds):
        """What one unit of each node's output stands for in the ANN's values, ``{name: unit}`` (the
        input's unit is 1), given every calibrated node's threshold (floats or tensors).

        Spikes are unit events and thresholds carry the scale (Rathi et al. 2020): a node with
        neurons at threshold theta fed in unit u fires at its ANN value / (u * theta), so its spikes
        stand for u * theta; pools (threshold 1), linear nodes and reshapes keep their input's unit;
        a merge works in its first input's unit (`merge_scales`).
        """
        units = {INPUT: 1.0}
        for node in self.nodes:
            unit = units[self.inputs_of(node)[0]]
            if node.name in thresholds:
                unit = unit * thresholds[node.name]
            units[node.name] = unit
        return units

    def merge_scales(self, node, units):
        """Per input of a merge: the factor that brings it to the first input's unit (``units``: `units`),
        so the merge adds (or stacks) values that stand for the same ANN values."""
        sources = self.inputs_of(node)
        return tuple(units[s] / units[sources[0]] for s in sources)

    def with_neurons(self, thresholds=None, leaks=None):
        """The same structure with new thresholds and/or hidden leaks (names not given keep theirs)."""
        thresholds, leaks = dict(thresholds or {}), dict(leaks or {})
        calibrated = {n.name for n in self.calibrated()}
        nodes = []
        for node in self.nodes:
            if node.name in calibrated:
                old = node.neuron
                neuron = IF(float(thresholds.get(node.name, old.threshold)),
                            float(leaks.get(node.name, old.leak)), old.initial_membrane)
                node = replace(node, neuron=neuron)
            nodes.append(node)
        return replace(self, nodes=tuple(nodes))


def _check_shapes(name, node, shapes):
    """Refuse a node whose inputs' shapes (``shapes``, in ``inputs`` order) do not fit it."""
    if isinstance(node, MERGES) != (len(shapes) > 1) or not shapes:
        raise UserError(f"network {name!r}: node {node.name!r} ({type(node).__name__}) reads {len(shapes)} "
                        "inputs; merges read two or more, every other node one")
    if isinstance(node, Concatenate):
        if any(s[:-1] != shapes[0][:-1] for s in shapes) or \
                node.output_shape != shapes[0][:-1] + (sum(s[-1] for s in shapes),):
            raise UserError(f"network {name!r}: node {node.name!r} concatenates {shapes} into {node.output_shape}")
        shapes = shapes[:1]
    elif isinstance(node, Add) and any(s != node.output_shape for s in shapes):
        raise UserError(f"network {name!r}: node {node.name!r} adds {shapes} into {node.output_shape}")
    if tuple(node.input_shape) != shapes[0]:
        raise UserError(f"network {name!r}: node {node.name!r} takes {node.input_shape}, "
                        f"but the node before it gives {shapes[0]}")


# --------------------------------------------------------------------- from Keras
def describe(model, thresholds=None, neurons=Neurons(), leaks=None, indices=None):
    """The converted SNN of a trained Keras model: a chain, or a graph with `Add` / `Concatenate` merges.

    ``thresholds``: per calibrated node (`Network.calibrated`; missing ones are 1.0, or
    ``lambda_k / lambda_{k-1}`` for a layer that feeds a QCFS activation, see `qcfs_thresholds`);
    ``leaks``: per hidden calibrated node (default ``neurons.leak``). A layer the engine cannot run is
    refused by its index (in ``model.layers``) and name: supported are Conv2D (grouped too) and Dense
    with ReLU, linear (the current passes on) or followed by QCFS; AveragePooling2D; MaxPooling2D
    (after a spiking layer); Flatten, Reshape, Dropout; Add (followed by a ReLU layer: IF neurons on
    the sum; else a linear merge) and Concatenate over the channels; a softmax/linear/ReLU readout,
    which is the model's output. ``indices``: the index to name each layer by (``{name: index}``)
    where the model was rewritten from the user's (`pipeline.canonical`), so a refusal names the
    user's layer.
    """
    import tensorflow as tf
    from keras_models.qcfs import QCFS

    keras = tf.keras.layers
    if len(model.outputs) != 1 or len(model.inputs) != 1:
        raise UserError(f"model {model.name!r}: the engine maps single-input, single-output models only")
    layers = [layer for layer in model.layers if type(layer) is not keras.InputLayer]
    indices = indices or {}
    position = {id(layer): indices.get(layer.name, k) for k, layer in enumerate(model.layers)}   # as Keras shows

    def where(layer):
        return f"layer {position[id(layer)]} {layer.name!r} ({type(layer).__name__})"

    sources = {layer.name: inbound_names(model, layer, where(layer)) for layer in layers}
    readers = {layer.name: [other for other in layers if layer.name in sources[other.name]] for layer in layers}
    seen = {INPUT}
    for layer in layers:
        if not set(sources[layer.name]) <= seen:
            raise UserError(f"{where(layer)} of model {model.name!r} comes before a layer it reads")
        seen.add(layer.name)
    weighted = [layer for layer in layers if type(layer) in (keras.Conv2D, keras.Dense)]
    if not weighted:
        raise UserError(f"model {model.name!r} has no Conv2D or Dense layer to convert")
    last = layers[-1]
    if last is not weighted[-1] or readers[last.name]:
        raise UserError(f"{where(last)} follows the readout layer {weighted[-1].name!r}; the engine reads out the "
                        "last weighted layer")
    alias, absorbed = {}, {}    # an absorbed layer's name -> its node's; a node's name -> the layer it absorbs
    for layer in layers:
        if isinstance(layer, QCFS) or (type(layer) in (keras.Activation, keras.ReLU) and _is_relu(layer)):
            _absorb(layer, sources, readers, layers, where, alias, absorbed)
            continue
        if type(layer) is keras.MaxPooling2D and not any(w in layers[:layers.index(layer)] for w in weighted):
            raise UserError(f"{where(layer)}: a max pool gates spikes by their counts, so it must follow a spiking "
                            "layer (here it pools the input)")
        _check_layer(layer, where(layer), is_readout=layer is last,
                     qcfs=isinstance(absorbed.get(layer.name), QCFS) or _feeds_qcfs(layer, readers))
    kept = [layer for layer in layers if layer.name not in alias]
    nodes = [_node(layer, absorbed.get(layer.name), layer is last, neurons,
                   tuple(alias.get(s, s) for s in sources[layer.name])) for layer in kept]
    graph = Network(model.name, tuple(int(d) for d in model.input_shape[1:]), tuple(nodes), neurons)
    names = [n.name for n in graph.calibrated()]
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise UserError(f"thresholds given for {unknown}, which are not layers with neurons of {model.name!r} "
                        f"({', '.join(names)})")
    for name, value in thresholds.items():
        if not (value > 0 and value < float("inf")):
            raise UserError(f"threshold of layer {name!r} is {value!r}; thresholds must be positive")
    leaks = dict(leaks or {})
    return graph.with_neurons(qcfs_thresholds(graph, thresholds),
                              {n.name: leaks.get(n.name, neurons.leak) for n in graph.calibrated() if not n.readout})


def _is_relu(layer):
    """A ReLU layer that is exactly max(x, 0): ``Activation("relu")`` or a plain ``ReLU()``."""
    if hasattr(layer, "max_value"):
        return layer.max_value is None and not float(layer.negative_slope) and not float(layer.threshold)
    return getattr(layer.activation, "__name__", "") == "relu"


def _absorb(layer, sources, readers, layers, where, alias, absorbed):
    """Let the node before ``layer`` take it over: a QCFS activation after a hidden linear Conv2D or
    Dense (its thresholds), a ReLU layer after an Add (its IF neurons). The value before it must have
    no other reader: it would be read without the activation."""
    import tensorflow as tf
    from keras_models.qcfs import QCFS
    keras = tf.keras.layers
    qcfs = isinstance(layer, QCFS)
    source = sources[layer.name][0]
    before = next((other for other in layers if other.name == source), None)
    linear = type(before) in (keras.Conv2D, keras.Dense) and _activation(before) == "linear"
    fits = type(before) is keras.Add or (qcfs and linear)
    if not fits or len(readers[source]) != 1 or source in absorbed:
        what = "an Add or a hidden Conv2D or Dense layer with a linear activation" if qcfs else "an Add"
        raise UserError(f"{where(layer)} must directly follow {what}, the only reader of its output")
    alias[layer.name] = source
    absorbed[source] = layer


def _feeds_qcfs(layer, readers):
    from keras_models.qcfs import QCFS
    return any(isinstance(reader, QCFS) for reader in readers[layer.name])


def _activation(layer):
    return getattr(layer.activation, "__name__", str(layer.activation))


def _qcfs_lambda(layer):
    from keras_models.qcfs import QCFS
    return float(layer.threshold.numpy()) if isinstance(layer, QCFS) else None


def qcfs_thresholds(graph, given):
    """Every calibrated node's threshold: ``given`` where given, else ``lambda / unit`` for a node that
    absorbs a QCFS activation, else 1.

    QCFS converts with theta = lambda when a spike carries the lambda of the layer below; the engine's
    spikes are unit events, so the unit of the node's input (`Network.units`: the lambda below, in a
    chain ``lambda_k / lambda_{k-1}``; 1 for the input) moves into the threshold.
    """
    found, units = {}, {INPUT: 1.0}
    calibrated = {n.name for n in graph.calibrated()}
    for node in graph.nodes:
        unit = units[graph.inputs_of(node)[0]]
        if node.name in calibrated:
            lam = getattr(node, "qcfs_lambda", None)
            found[node.name] = float(given.get(node.name, 1.0 if lam is None else lam / unit))
            unit = unit * found[node.name]
        units[node.name] = unit
    return found


def _shape(value):
    return tuple(int(d) for d in value[1:])


def _node(layer, absorbed, is_readout, neurons, inputs):
    """The node of one Keras layer (``absorbed``: the QCFS or ReLU layer it takes over, else None);
    its neurons get threshold 1 here (`describe` sets them)."""
    import tensorflow as tf
    keras = tf.keras.layers
    kind = type(layer)
    input_shape = layer.input[0].shape if kind in (keras.Add, keras.Concatenate) else layer.input.shape
    shapes = {"name": layer.name, "input_shape": _shape(input_shape), "output_shape": _shape(layer.output.shape),
              "inputs": inputs}
    neuron = IF(1.0, neurons.leak, neurons.initial_membrane)
    if kind in (keras.Conv2D, keras.Dense):
        linear = absorbed is None and not is_readout and _activation(layer) == "linear"
        common = dict(use_bias=bool(layer.use_bias), readout=is_readout, neuron=None if linear else neuron,
                      layer=layer, qcfs_lambda=_qcfs_lambda(absorbed))
        if kind is keras.Conv2D:
            return Conv2d(**shapes, **common, kernel_size=tuple(layer.kernel_size), stride=tuple(layer.strides),
                          dilation=tuple(layer.dilation_rate), padding=layer.padding, groups=int(layer.groups))
        return Affine(**shapes, **common)
    if kind is keras.AveragePooling2D:
        return AvgPool2d(**shapes, kernel_size=tuple(layer.pool_size), stride=tuple(layer.strides),
                         padding=layer.padding, neuron=neuron if neurons.pooling == "spiking" else None)
    if kind is keras.MaxPooling2D:
        return MaxPool2d(**shapes, kernel_size=tuple(layer.pool_size), stride=tuple(layer.strides),
                         padding=layer.padding)
    if kind is keras.Add:
        return Add(**shapes, neuron=None if absorbed is None else neuron, qcfs_lambda=_qcfs_lambda(absorbed))
    if kind is keras.Concatenate:
        return Concatenate(**shapes)
    if kind is keras.Flatten:
        return Flatten(**shapes)
    if kind is keras.Reshape:
        return Reshape(**shapes)
    return Dropout(**shapes, rate=float(layer.rate))


def inbound_names(model, layer, where):
    """The names of the layers ``layer`` reads, in call order (`INPUT` for the model's input); one line
    naming the layer where it is shared (called twice) or unconnected."""
    import tensorflow as tf
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        raise UserError(f"{where} of model {model.name!r} is shared or unconnected; "
                        "the engine maps layers called once")
    inbound = nodes[0].inbound_layers
    inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
    return tuple(INPUT if type(other) is tf.keras.layers.InputLayer else other.name for other in inbound)


def _check_layer(layer, where, is_readout, qcfs=False):
    """Refuse, by index and name (``where``), a layer the engine cannot run (exact Keras classes: a
    subclass such as SpatialDropout2D or DepthwiseConv2D computes something else)."""
    import tensorflow as tf
    keras = tf.keras.layers
    weighted = type(layer) in (keras.Conv2D, keras.Dense)
    if qcfs and (is_readout or not (weighted or type(layer) is keras.Add)):
        raise UserError(f"{where} is followed by a QCFS activation; only a hidden Conv2D, Dense or Add layer can be")
    if weighted:
        activation = _activation(layer)
        allowed = ("linear",) if qcfs else OUTPUT_ACTIVATIONS if is_readout else HIDDEN_ACTIVATIONS
        if activation not in allowed:
            raise UserError(f"{where}: activation {activation!r} has no spiking equivalent here "
                            f"(use {' or '.join(allowed)})")
        if type(layer) is keras.Conv2D and layer.data_format != "channels_last":
            raise UserError(f"{where}: only channels_last convolutions are supported")
        return
    if type(layer) in (keras.AveragePooling2D, keras.MaxPooling2D):
        if layer.data_format != "channels_last":
            raise UserError(f"{where}: only channels_last pooling is supported")
        if type(layer) is keras.MaxPooling2D and any(s < p for s, p in zip(layer.strides, layer.pool_size)):
            raise UserError(f"{where}: overlapping max pools (strides {layer.strides} < pool {layer.pool_size}) are "
                            "not supported: INI's gate would pass a spike chosen by two windows twice")
        return
    if type(layer) is keras.Concatenate and layer.axis not in (-1, len(layer.output.shape) - 1):
        raise UserError(f"{where}: only concatenation over the channels (the last axis) is supported")
    if type(layer) in (keras.Flatten, keras.Reshape, keras.Dropout, keras.Add, keras.Concatenate):
        return
    raise UserError(f"{where} cannot be mapped to a spiking layer (supported: Conv2D, grouped too, and Dense with "
                    "ReLU, linear or followed by QCFS, AveragePooling2D, MaxPooling2D, Flatten, Reshape, Dropout, "
                    "Add (+ ReLU), Concatenate, a softmax/linear readout)")
