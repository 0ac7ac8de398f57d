"""The one description of a converted spiking network: what it computes, not how it is run.

`describe` builds it, in one place, from a trained chain-shaped Keras model, the per-layer
thresholds and the neuron choices (`Neurons`: leak, reset, initial membrane, pooling, readout,
input coding). The engine (simulation, fast path, STDB), the energy counts and the exports all
read it; nothing else walks ``model.layers`` (the Keras builders and ANN training aside).

Nodes are named with NIR's vocabulary (Conv2d, Affine, AvgPool2d, Flatten, IF) but keep this
project's channels-last, per-sample shapes. Weights are not copied into the description: a
weighted node reaches them through its Keras ``layer`` (live variables for STDB, NumPy arrays
for the energy model and exports), so the description itself needs no TensorFlow.
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
HIDDEN_ACTIVATIONS = ("relu",)
OUTPUT_ACTIVATIONS = ("softmax", "linear", "relu")
POOL_THRESHOLD = 1.0    # a spiking pool neuron fires at the mean rate of its unit-spike inputs


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
    """One layer of the chain: its name and per-sample, channels-last input and output shapes;
    ``readout`` marks the network's output layer (a weighted node)."""
    kind: ClassVar[str] = ""
    name: str
    input_shape: tuple
    output_shape: tuple
    readout: bool = False

    @property
    def neurons(self):
        import math
        return math.prod(self.output_shape)


@dataclass(frozen=True, kw_only=True)
class Weighted(Node):
    """A layer with synapses; ``layer`` is the Keras layer that holds its weights. ``neuron`` is
    None only for the membrane readout (it integrates without spiking). ``qcfs_lambda``: the clip
    level of the QCFS activation the layer absorbs (Bu et al. 2022), else None."""
    kind: ClassVar[str] = "weighted"
    use_bias: bool = False
    neuron: IF | None = None
    qcfs_lambda: float | None = None
    layer: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Conv2d(Weighted):
    """A Keras Conv2D (cross-correlation), channels-last; padding ``"same"`` or ``"valid"``."""
    kernel_size: tuple
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "valid"

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


COMPUTE = (Conv2d, Affine, AvgPool2d, MaxPool2d)


# --------------------------------------------------------------------- the graph
@dataclass(frozen=True)
class Network:
    """A converted SNN: input shape, layer nodes in chain order (each feeds the next), neuron choices."""
    name: str
    input_shape: tuple
    nodes: tuple
    neurons: Neurons = Neurons()

    def __post_init__(self):
        shape = tuple(self.input_shape)
        for node in self.nodes:
            if tuple(node.input_shape) != shape:
                raise UserError(f"network {self.name!r}: node {node.name!r} takes {node.input_shape}, "
                                f"but the node before it gives {shape}")
            shape = tuple(node.output_shape)
        weighted = self.weighted
        if not weighted:
            raise UserError(f"network {self.name!r} has no Conv2D or Dense layer to convert")
        if [n for n in weighted if n.readout] != [weighted[-1]] or self.nodes[-1] is not weighted[-1]:
            raise UserError(f"network {self.name!r}: the last node must be the only readout")

    @property
    def edges(self):
        """(source, target) names, NIR-style: ``input`` to the first node, then along the chain."""
        names = ["input"] + [n.name for n in self.nodes] + ["output"]
        return tuple(zip(names[:-1], names[1:]))

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
        """The nodes that cost operations (conv, dense, pools); flatten, reshape and dropout cost nothing."""
        return tuple(n for n in self.nodes if isinstance(n, COMPUTE))

    def thresholds(self):
        """``{weighted layer: threshold}`` (the readout's too: the spike-count readout fires at it)."""
        return {n.name: n.neuron.threshold for n in self.weighted}

    def leaks(self):
        """``{hidden weighted layer: leak}``."""
        return {n.name: n.neuron.leak for n in self.weighted if not n.readout}

    def stateful(self):
        """Nodes with membranes: weighted layers, and pools when they spike."""
        return tuple(n for n in self.nodes if isinstance(n, Weighted) or getattr(n, "neuron", None) is not None)

    def spikes(self, node):
        """Whether the node emits spikes (all stateful nodes but the membrane readout)."""
        return not node.readout or self.neurons.readout == "spike_count"

    def with_neurons(self, thresholds=None, leaks=None):
        """The same structure with new thresholds and/or hidden leaks (names not given keep theirs)."""
        thresholds, leaks = dict(thresholds or {}), dict(leaks or {})
        nodes = []
        for node in self.nodes:
            if isinstance(node, Weighted):
                old = node.neuron
                neuron = IF(float(thresholds.get(node.name, old.threshold)),
                            float(leaks.get(node.name, old.leak)), old.initial_membrane)
                node = replace(node, neuron=neuron)
            nodes.append(node)
        return replace(self, nodes=tuple(nodes))


# --------------------------------------------------------------------- from Keras
def describe(model, thresholds=None, neurons=Neurons(), leaks=None, indices=None):
    """The converted SNN of a trained chain-shaped Keras model.

    ``thresholds``: per weighted layer (missing ones are 1.0, or ``lambda_k / lambda_{k-1}`` for a
    layer that feeds a QCFS activation, see `qcfs_thresholds`); ``leaks``: per hidden weighted
    layer (default ``neurons.leak``). A layer the engine cannot run is refused by its index (in
    ``model.layers``) and name: supported are Conv2D and Dense with ReLU (or linear and followed by
    QCFS), AveragePooling2D, MaxPooling2D (after a spiking layer), Flatten, Reshape, Dropout, and a
    softmax/linear/ReLU readout. ``indices``: the
    index to name each layer by (``{name: index}``) where the model was rewritten from the user's
    (`pipeline.canonical`), so a refusal names the user's layer.
    """
    import tensorflow as tf
    from keras_models.qcfs import QCFS

    keras = tf.keras.layers
    layers = [layer for layer in model.layers if type(layer) is not keras.InputLayer]
    if len(model.outputs) != 1 or len(model.inputs) != 1:
        raise UserError(f"model {model.name!r}: the engine maps single-input, single-output chains only")
    weighted = [layer for layer in layers if type(layer) in (keras.Conv2D, keras.Dense)]
    if not weighted:
        raise UserError(f"model {model.name!r} has no Conv2D or Dense layer to convert")
    previous, specs = None, []
    indices = indices or {}
    position = {id(layer): indices.get(layer.name, k) for k, layer in enumerate(model.layers)}   # as Keras shows
    for index, layer in enumerate(layers):
        where = f"layer {position[id(layer)]} {layer.name!r} ({type(layer).__name__})"
        check_chain(model, layer, previous, where)
        previous = layer
        if isinstance(layer, QCFS):
            if not specs or specs[-1][1] is not layer:
                raise UserError(f"{where} must directly follow a hidden Conv2D or Dense layer with a linear activation")
            continue
        weighted_before = any(type(spec) in (keras.Conv2D, keras.Dense) for spec, _ in specs)
        if type(layer) is keras.MaxPooling2D and not weighted_before:
            raise UserError(f"{where}: a max pool gates spikes by their counts, so it must follow a spiking layer "
                            "(here it pools the input)")
        following = layers[index + 1] if index + 1 < len(layers) else None
        absorbed = following if isinstance(following, QCFS) else None
        _check_layer(layer, where, is_readout=layer is weighted[-1], qcfs=absorbed is not None)
        specs.append((layer, absorbed))
    if specs[-1][0] is not weighted[-1]:
        last = specs[-1][0]
        raise UserError(f"layer {position[id(last)]} {last.name!r} ({type(last).__name__}) follows the readout "
                        f"layer {weighted[-1].name!r}; the engine reads out the last weighted layer")

    names = [layer.name for layer in weighted]
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise UserError(f"thresholds given for {unknown}, which are not weighted layers of {model.name!r} "
                        f"({', '.join(names)})")
    for name, value in thresholds.items():
        if not (value > 0 and value < float("inf")):
            raise UserError(f"threshold of layer {name!r} is {value!r}; thresholds must be positive")
    lambdas = [(layer.name, None if q is None else float(q.threshold.numpy())) for layer, q in specs
               if layer in weighted]
    defaults = qcfs_thresholds(lambdas)
    leaks = dict(leaks or {})
    nodes = [_node(layer, q, layer is weighted[-1], neurons, thresholds.get(layer.name, defaults.get(layer.name, 1.0)),
                   leaks.get(layer.name, neurons.leak)) for layer, q in specs]
    return Network(model.name, tuple(int(d) for d in model.input_shape[1:]), tuple(nodes), neurons)


def qcfs_thresholds(lambdas):
    """Thresholds of the layers that absorb a QCFS activation: ``lambda_k / lambda_{k-1}``.

    ``lambdas``: (weighted layer name, its QCFS lambda or None) in order. QCFS converts with
    theta = lambda when a spike carries the previous layer's lambda; the engine's spikes are unit
    events (and the input's scale is 1), so the previous lambda moves into the threshold. A layer
    without QCFS resets the chain (its spikes stand for 1).
    """
    found, previous = {}, 1.0
    for name, value in lambdas:
        if value is None:
            previous = 1.0
            continue
        found[name] = value / previous
        previous = value
    return found


def _shape(value):
    return tuple(int(d) for d in value[1:])


def _node(layer, qcfs_layer, is_readout, neurons, threshold, leak):
    import tensorflow as tf
    keras = tf.keras.layers
    shapes = {"name": layer.name, "input_shape": _shape(layer.input_shape), "output_shape": _shape(layer.output_shape)}
    if type(layer) in (keras.Conv2D, keras.Dense):
        neuron = IF(float(threshold), float(neurons.leak if is_readout else leak), neurons.initial_membrane)
        common = dict(use_bias=bool(layer.use_bias), readout=is_readout, neuron=neuron, layer=layer,
                      qcfs_lambda=None if qcfs_layer is None else float(qcfs_layer.threshold.numpy()))
        if type(layer) is keras.Conv2D:
            return Conv2d(**shapes, **common, kernel_size=tuple(layer.kernel_size), stride=tuple(layer.strides),
                          dilation=tuple(layer.dilation_rate), padding=layer.padding)
        return Affine(**shapes, **common)
    if type(layer) is keras.AveragePooling2D:
        neuron = IF(POOL_THRESHOLD, neurons.leak, neurons.initial_membrane) if neurons.pooling == "spiking" else None
        return AvgPool2d(**shapes, kernel_size=tuple(layer.pool_size), stride=tuple(layer.strides),
                         padding=layer.padding, neuron=neuron)
    if type(layer) is keras.MaxPooling2D:
        return MaxPool2d(**shapes, kernel_size=tuple(layer.pool_size), stride=tuple(layer.strides),
                         padding=layer.padding)
    if type(layer) is keras.Flatten:
        return Flatten(**shapes)
    if type(layer) is keras.Reshape:
        return Reshape(**shapes)
    return Dropout(**shapes, rate=float(layer.rate))


def check_chain(model, layer, previous, where):
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        raise UserError(f"{where} of model {model.name!r} is shared or unconnected; "
                        "the engine maps single-chain models only")
    inbound = nodes[0].inbound_layers
    inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
    if len(inbound) != 1 or (previous is not None and inbound[0] is not previous):
        raise UserError(f"{where} of model {model.name!r} is not fed by the layer before it; "
                        "the engine maps single-chain models only")


def _check_layer(layer, where, is_readout, qcfs=False):
    """Refuse, by index and name (``where``), a layer the engine cannot run (exact Keras classes: a
    subclass such as SpatialDropout2D or DepthwiseConv2D computes something else)."""
    import tensorflow as tf
    keras = tf.keras.layers
    weighted = type(layer) in (keras.Conv2D, keras.Dense)
    if qcfs and (is_readout or not weighted):
        raise UserError(f"{where} is followed by a QCFS activation; only a hidden Conv2D or Dense layer can be")
    if weighted:
        activation = getattr(layer.activation, "__name__", str(layer.activation))
        allowed = ("linear",) if qcfs else OUTPUT_ACTIVATIONS if is_readout else HIDDEN_ACTIVATIONS
        if activation not in allowed:
            raise UserError(f"{where}: activation {activation!r} has no spiking equivalent here "
                            f"(use {' or '.join(allowed)})")
        if type(layer) is keras.Conv2D and (layer.data_format != "channels_last" or layer.groups != 1):
            raise UserError(f"{where}: only channels_last, ungrouped convolutions are supported")
        return
    if type(layer) in (keras.AveragePooling2D, keras.MaxPooling2D):
        if layer.data_format != "channels_last":
            raise UserError(f"{where}: only channels_last pooling is supported")
        if type(layer) is keras.MaxPooling2D and any(s < p for s, p in zip(layer.strides, layer.pool_size)):
            raise UserError(f"{where}: overlapping max pools (strides {layer.strides} < pool {layer.pool_size}) are "
                            "not supported: INI's gate would pass a spike chosen by two windows twice")
        return
    if type(layer) in (keras.Flatten, keras.Reshape, keras.Dropout):
        return
    raise UserError(f"{where} cannot be mapped to a spiking layer (supported: Conv2D and Dense with ReLU "
                    "or followed by QCFS, AveragePooling2D, MaxPooling2D, Flatten, Reshape, Dropout, a softmax/linear "
                    "readout)")
