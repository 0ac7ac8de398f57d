"""A user's Keras model (a chain or a functional graph) rewritten into the layers the pipeline runs,
computing the same function.

Models written the way the Keras tutorials write them (``Conv2D -> BatchNormalization ->
Activation("relu") -> ... -> GlobalAveragePooling2D -> Dense -> Softmax()``, ResNet and MobileNet
blocks) hold layers that are not neurons of their own: a batch norm is an affine map, a ReLU layer is
the activation of the layer before it, a depthwise convolution is a grouped one. `canonicalise` walks
the model's graph in topological order (each layer's inbound layers, not ``model.layers`` as a chain),
folds and merges those layers, each by a stated rule, and rebuilds a functional model
(``tf.keras.Model(inputs, outputs)``) of the layers `pipeline.network.describe` maps: Conv2D (any
``groups``) / Dense (+ReLU, or linear), AveragePooling2D, MaxPooling2D, Flatten, Reshape, Dropout,
QCFS, ``Add``, ``Concatenate(axis=-1)`` and ``Activation("relu")`` directly after an ``Add``
(docs/layers.md has the table):

- ``BatchNormalization`` directly after a Conv2D, Dense, DepthwiseConv2D or SeparableConv2D whose
  activation is still linear and whose output feeds the batch norm alone (a batch norm after a batch
  norm too): folded into its kernel and bias, per output channel ``w' = w * gamma / sqrt(var + eps)``,
  ``b' = (b - mean) * gamma / sqrt(var + eps) + beta`` (gamma 1 without ``scale``, beta 0 without
  ``center``). After a ReLU, an ``Add`` or anything else, or after a layer whose output is also used
  elsewhere, it is refused: the ReLU (or the layer, or the other use of the unnormalised value)
  stands between, so the scale and shift do not fold into the weights before it.
- ``Activation("relu")`` / plain ``ReLU()`` directly after a weighted layer whose output feeds it
  alone (or after its batch norm): that layer's ReLU activation (after a value already ReLU'd:
  dropped, ReLU is idempotent). Directly after an ``Add`` whose sum feeds it alone: an
  ``Activation("relu")`` right after the Add (the one form `network.describe` takes as the Add's
  neuron). A ReLU of a value that is also used un-ReLU'd elsewhere is refused: an IF neuron gives
  only the rectified value. ``Activation("linear")``: dropped. ``Softmax()`` /
  ``Activation("softmax")`` directly after the last Dense: the readout's softmax. A clipped
  ``ReLU(max_value=...)``, a leaky or shifted ReLU and other activations are refused with the reason.
- ``DepthwiseConv2D(k, depth_multiplier=m)`` on C channels: ``Conv2D(C*m, k, groups=C)`` (same
  strides, padding, dilation, activation, bias), its kernel ``(kh, kw, C, m)`` reshaped to
  ``(kh, kw, 1, C*m)`` (output channel ``c*m + j`` in both). ``SeparableConv2D``: that grouped conv
  (``<name>_depthwise``, linear, no bias), then a 1x1 Conv2D (its pointwise kernel, bias and
  activation, under the layer's own name).
- ``GlobalAveragePooling2D`` (``GlobalMaxPooling2D``): ``AveragePooling2D`` (``MaxPooling2D``) over
  the whole map (pool = stride = map size, valid padding), then ``Flatten`` unless ``keepdims``; the
  same mean (summed in another order) or maximum.
- ``ZeroPadding2D`` directly before Conv2D / DepthwiseConv2D / SeparableConv2D with valid padding (each
  of its consumers one): merged into the conv as ``padding="same"`` only where the zeros are exactly what
  'same' would add (TF's rule, smaller half first, as MobileNet's ``correct_pad`` pads); else refused.
- ``Conv1D`` / ``AveragePooling1D`` / ``MaxPooling1D`` / ``GlobalAveragePooling1D`` /
  ``GlobalMaxPooling1D`` / ``ZeroPadding1D`` on (length, channels) maps: a ``Reshape`` to
  (1, length, channels) of the value they read (one per value), then each as its 2-D twin on that map
  of height 1 (windows, strides, dilations (1, k); a kernel (k, C_in, C_out) as (1, k, C_in, C_out)),
  the same sums. A value on such a map goes on through batch norm, ReLU, Dropout, ``Add`` and
  ``Concatenate`` over the channels (an (L, C) value added to it gets its Reshape too: a Conv1D
  residual block maps) and ends at a Flatten or global pooling. A causal convolution (left padding
  only), and a layer that needs the 1-D map (an LSTM after a Conv1D), are refused.
- ``MaxPooling2D`` is kept (`network.MaxPool2d`: SNN Toolbox's spike-count gate); ``MaxPooling1D``
  and ``GlobalMaxPooling1D`` become their 2-D twins like the other 1-D layers.
- ``Concatenate`` over the channels (its last axis given as a number): ``axis=-1``. Over another
  axis: refused.

Every other layer is kept as it is: `network.describe` stays the semantic check and refuses what
the engine cannot run. The model must have one input and one output, and each layer be called once
in it (a shared layer is refused). A model with nothing to rewrite is returned unchanged (the very
object). Refusals name the layer by its index in the user's ``model.layers`` and its name, in one line.
"""
from dataclasses import dataclass, field

import numpy as np

from pipeline import UserError, network

DROPPED = "dropped"


@dataclass(frozen=True)
class Canonical:
    """The rewritten model, what was done to which layer (``changes``: one dict per user layer that
    was folded, merged, dropped or replaced, for the model's record) and ``indices``: the user's
    index of every layer of the new model by name, so that refusals name the user's layer."""
    model: object
    changes: tuple
    indices: dict


@dataclass(eq=False)
class _Spec:
    """One layer of the graph being built: its class (None: the model's input), config, weights (None: the
    user's own), the specs it reads (``many``: called on a list, as a merge is) and whether its value is a
    1-D map run as a 2-D map of height 1 (``as_2d``)."""
    cls: type
    config: dict
    index: int | None
    weights: list | None = None
    weighted: bool = False
    inputs: list = field(default_factory=list)
    many: bool = False
    as_2d: bool = False

    @property
    def activation(self):
        return self.config.get("activation", "linear") if self.weighted else None

    @property
    def relu(self):
        """Whether its value is already ReLU'd (a weighted layer's activation, or the Activation after an Add)."""
        return self.activation == "relu" or (self.cls is not None and self.cls.__name__ == "Activation"
                                             and self.config.get("activation") == "relu")


@dataclass(eq=False)
class _Pad:
    """A zero padding waiting for the convolution it merges into (reading ``source``)."""
    layer: object
    source: _Spec


@dataclass
class _Graph:
    """The user's model as a graph: its input layer, its layers in topological order (the input first),
    each one's inbound layers (``inbound``), consumers (``users``: one entry per edge, None for the
    model's output) and whether it is called on a list (``many``)."""
    input: object
    output: object
    order: list
    inbound: dict
    users: dict
    many: dict

    def descendants(self, layer):
        seen, todo = set(), [layer]
        while todo:
            for user in self.users[id(todo.pop())]:
                if user is not None and id(user) not in seen:
                    seen.add(id(user))
                    todo.append(user)
                    yield user


def canonicalise(model, data_shape=None):
    """The model as a graph of the layers `network.describe` maps, and what changed (`Canonical`).

    ``data_shape``: the per-sample shape of the data it is to run on. Where that is the model's input
    shape and a trailing 1 (the data loader reads an (n, L, C) array as single-channel images
    (L, C, 1)), the canonical model takes the data's shape, a Reshape at its input dropping the 1:
    the same values in the same order. Where it is a 1 and the model's (L, C) input shape, and every
    layer reading the input is a 1-D one, the data already is the map of height 1 the 1-D layers run
    on: the canonical model takes it with no Reshape at all (so NIR, which has no Reshape, can export it).
    """
    import tensorflow as tf
    keras = tf.keras.layers
    position = {id(layer): k for k, layer in enumerate(model.layers)}
    names = {layer.name for layer in model.layers}
    graph = _graph(model, position)
    one_d = (keras.Conv1D, keras.AveragePooling1D, keras.MaxPooling1D, keras.GlobalAveragePooling1D,
             keras.GlobalMaxPooling1D, keras.ZeroPadding1D)
    leaky = (keras.LeakyReLU, keras.PReLU, keras.ELU, keras.ThresholdedReLU)
    merges = (keras.Add, keras.Concatenate)
    in_1d = (keras.BatchNormalization, keras.Activation, keras.ReLU, keras.Softmax, keras.Dropout,
             keras.Flatten) + one_d + leaky + merges   # (leaky ones refused below, with the reason)
    convs = (keras.Conv2D, keras.Conv1D, keras.DepthwiseConv2D, keras.SeparableConv2D)
    weighted_kinds = convs + (keras.Dense,)
    shape = inputs = tuple(int(d) for d in model.input_shape[1:])   # inputs: what the canonical model takes
    source = _Spec(None, {"name": graph.input.name}, None)
    specs, changes, members, twins = [source], [], {id(source): [graph.input]}, {}
    entry, unannounced = None, set()     # the Reshape at the input, if the data's shape asks for one
    value = {id(graph.input): source}

    def add(spec, layer):
        specs.append(spec)
        members[id(spec)] = [layer] if layer is not None else []
        return spec

    def record(layer, index, rule):
        changes.append({"layer": index, "name": layer.name, "class": type(layer).__name__, "rule": rule})

    def as_2d(spec, layer, index, value_shape):
        """``spec``'s value as the 2-D map of height 1 (a Reshape before ``layer``, one per value)."""
        if spec.as_2d:
            if id(spec) in unannounced:     # the input's Reshape, made 2-D for its 1-D consumers: say so once
                unannounced.discard(id(spec))
                record(layer, index, f"a Reshape {spec.config['name']!r} before it makes its {value_shape} map "
                                     f"{spec.config['target_shape']}: the 1-D stack runs as a 2-D map of height 1")
            return spec
        if id(spec) not in twins:
            target = (1,) + tuple(value_shape)
            twins[id(spec)] = add(_Spec(keras.Reshape, {"name": _new_name(f"{layer.name}_as_2d", names),
                                                        "target_shape": target}, index, [], inputs=[spec],
                                        as_2d=True), None)
            record(layer, index, f"a Reshape {twins[id(spec)].config['name']!r} before it makes its {value_shape} map "
                                 f"{target}: the 1-D stack runs as a 2-D map of height 1")
        return twins[id(spec)]

    def others(spec, layer):
        """Who else reads ``spec``'s value than ``layer`` (names; the model's output as such)."""
        inside = {id(u) for u in members[id(spec)]} | {id(layer)}
        return [("the model's output" if user is None else repr(user.name)) for u in members[id(spec)]
                for user in graph.users[id(u)] if user is None or id(user) not in inside]

    if data_shape is not None and tuple(data_shape) == shape + (1,):    # the Reshape at the input
        flat = any(type(user) in one_d for user in graph.users[id(graph.input)])
        entry = add(_Spec(keras.Reshape, {"name": _new_name("input_as_model", names),
                                          "target_shape": (1,) * flat + shape}, 0, [],
                          inputs=[source], as_2d=flat), graph.input)
        unannounced.update([id(entry)] if flat else [])
        value[id(graph.input)], inputs = entry, tuple(data_shape)
        changes.append({"layer": None, "name": "input", "class": "InputLayer",
                        "rule": f"takes the data's {tuple(data_shape)}, a Reshape {entry.config['name']!r} to the "
                                f"model's {shape} at its input (the same values in the same order)"})
    elif data_shape is not None and tuple(data_shape) == (1,) + shape and \
            all(type(user) in one_d for user in graph.users[id(graph.input)]):
        source.as_2d, inputs = True, tuple(data_shape)   # already the map of height 1 its 1-D readers run on
        changes.append({"layer": None, "name": "input", "class": "InputLayer",
                        "rule": f"takes the data's {tuple(data_shape)}, the map of height 1 its 1-D layers run on "
                                f"as 2-D (the model's {shape}, the same values in the same order; no Reshape)"})
    for layer in graph.order[1:]:
        index, where, kind = position[id(layer)], _where(layer, position), type(layer)
        reads = [value[id(p)] for p in graph.inbound[id(layer)]]

        def change(rule, layer=layer, index=index):
            record(layer, index, rule)

        for read in reads:
            if isinstance(read, _Pad) and kind not in convs:
                raise UserError(f"{_where(read.layer, position)}: zero padding maps only directly before a "
                                f"convolution (it becomes the conv's 'same' padding); here {layer.name!r} follows it")
        pad = reads[0] if reads and isinstance(reads[0], _Pad) else None
        x = pad.source if pad is not None else (reads[0] if reads else None)
        shapes = layer.input_shape if graph.many[id(layer)] else [layer.input_shape]
        if kind in one_d:
            x = as_2d(x, layer, index, tuple(int(d) for d in shapes[0][1:])) if pad is None else x
            reads = [x] if pad is None else reads
        elif kind in merges and any(r.as_2d for r in reads):
            reads = [r if r.as_2d else as_2d(r, layer, index, tuple(int(d) for d in s[1:]))
                     for r, s in zip(reads, shapes)]
        elif x is not None and x.as_2d and kind not in in_1d:
            raise UserError(f"{where}: after 1-D layers (run as a 2-D map of height 1) only 1-D convolutions, "
                            "pooling and zero padding, batch norm, ReLU, Dropout, Add, Concatenate and Flatten map")
        if kind is keras.BatchNormalization:
            _fold_batch_norm(layer, x, others(x, layer), where)
            value[id(layer)] = x
            members[id(x)].append(layer)
            change(f"folded into the kernel and bias of {x.config['name']!r}: w' = w * gamma / sqrt(var + eps), "
                   "b' = (b - mean) * gamma / sqrt(var + eps) + beta, per output channel")
        elif kind in (keras.Activation, keras.ReLU, keras.Softmax):
            activation = _activation_of(layer, where)
            later_weighted = any(type(d) in weighted_kinds for d in graph.descendants(layer))
            rule, after_add = _merge_activation(layer, activation, x, others(x, layer), later_weighted, where)
            if not after_add:
                value[id(layer)] = x
                members[id(x)].append(layer)
            else:
                value[id(layer)] = add(_Spec(keras.Activation, {"name": layer.name, "activation": "relu"}, index, [],
                                             inputs=[x], as_2d=x.as_2d), layer)
            if rule:
                change(rule)
        elif kind in leaky:
            raise UserError(f"{where}: {kind.__name__} passes negative (or shifted) values, which an "
                            "integrate-and-fire neuron (it fires positive spikes only) cannot carry; use ReLU()")
        elif kind in (keras.GlobalAveragePooling2D, keras.GlobalAveragePooling1D, keras.GlobalMaxPooling2D,
                      keras.GlobalMaxPooling1D):
            pool, *flatten = _global_pool(layer, index, where, names)
            value[id(layer)] = add(pool, layer)
            pool.inputs, pool.as_2d = [x], x.as_2d
            for spec in flatten:
                value[id(layer)] = add(spec, layer)
                spec.inputs = [pool]
            change(f"became {pool.cls.__name__} over the whole {'x'.join(str(d) for d in pool.config['pool_size'])} "
                   f"map (pool = stride = map size, valid){'' if layer.keepdims else ' + Flatten'}: the same "
                   f"{'maximum' if pool.cls is keras.MaxPooling2D else 'mean'}")
        elif kind in (keras.ZeroPadding2D, keras.ZeroPadding1D):
            value[id(layer)] = _Pad(layer, x)
        elif kind in merges:
            spec = add(_Spec(kind, layer.get_config(), index, [], inputs=reads, many=True,
                             as_2d=any(r.as_2d for r in reads)), layer)
            if kind is keras.Concatenate:
                _concatenate_over_channels(layer, spec, where, change)
            value[id(layer)] = spec
        else:
            weighted = kind in weighted_kinds
            spec = _Spec(kind, layer.get_config(), index, layer.get_weights() if weighted else None, weighted,
                         inputs=list(reads), many=graph.many[id(layer)], as_2d=x is not None and x.as_2d)
            if pad is not None:
                spec.inputs = [x]
                _merge_padding(pad.layer, layer, spec, _where(pad.layer, position))
                record(pad.layer, position[id(pad.layer)],
                       f"merged into {layer.name!r} as padding='same' (the very zeros 'same' adds)")
            if kind in (keras.Conv1D, keras.AveragePooling1D, keras.MaxPooling1D):
                spec = _conv_or_pool_2d(spec, where)
                window = spec.config.get('kernel_size', spec.config.get('pool_size'))
                change(f"became {spec.cls.__name__} with a {window} "
                       "window on the map of height 1 (the same sums)")
            elif kind in (keras.DepthwiseConv2D, keras.SeparableConv2D):
                grouped = _grouped(layer, spec, where, names)
                if kind is keras.SeparableConv2D:
                    add(grouped[0], None)
                spec = grouped[-1]
                change(f"became {' then '.join(_describe_conv(s) for s in grouped)} (the same sums)")
            spec.as_2d = spec.as_2d and kind is not keras.Flatten
            value[id(layer)] = add(spec, layer)
    output = value[id(graph.output)]
    if isinstance(output, _Pad):
        raise UserError(f"{_where(output.layer, position)}: zero padding maps only directly before a convolution "
                        "(it becomes the conv's 'same' padding); it ends the model")
    if not changes:
        return Canonical(model, (), {layer.name: k for k, layer in enumerate(model.layers)})
    return Canonical(_build(model, inputs, specs, output), tuple(changes),
                     {s.config["name"]: s.index for s in specs[1:]})


def _graph(model, position):
    """The user's model as a `_Graph`; a model of several inputs or outputs, or a shared layer, refused."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                        "the engine maps models of one input and one output")
    first, output = model.inputs[0]._keras_history.layer, model.outputs[0]._keras_history.layer
    keys = set(model._network_nodes)
    inbound, users, many = {}, {}, {}
    layers = [first] + [layer for layer in model.layers if layer is not first]
    for layer in layers:
        nodes = [node for k, node in enumerate(layer._inbound_nodes) if f"{layer.name}_ib-{k}" in keys]
        if len(nodes) != 1:
            raise UserError(f"{_where(layer, position)} of model {model.name!r} is called {len(nodes)} times in it "
                            "(a shared layer); each layer maps once")
        parents = nodes[0].inbound_layers
        inbound[id(layer)] = list(parents) if isinstance(parents, (list, tuple)) else [parents]
        many[id(layer)] = bool(nodes[0].call_args) and isinstance(nodes[0].call_args[0], (list, tuple))
        users[id(layer)] = [None] if layer is output else []
    for layer in layers:
        for parent in inbound[id(layer)]:
            users[id(parent)].append(layer)
    order, done = [], set()     # topological: each layer after its inbound ones, else in model.layers' order
    while len(order) < len(layers):
        layer = next(layer for layer in layers if id(layer) not in done
                     and all(id(p) in done for p in inbound[id(layer)]))
        order.append(layer)
        done.add(id(layer))
    return _Graph(first, output, order, inbound, users, many)


def _where(layer, position):
    return f"layer {position.get(id(layer), 'input')} {layer.name!r} ({type(layer).__name__})"


def _activation_of(layer, where):
    """The activation an Activation / ReLU / Softmax layer applies, by name; a ReLU that clips, leaks
    or is shifted, and a softmax over another axis, refused with the reason."""
    import tensorflow as tf
    keras = tf.keras.layers
    if type(layer) is keras.ReLU:
        if layer.max_value is not None:
            raise UserError(f"{where}: ReLU(max_value={float(layer.max_value):g}) clips its output; a clipped ReLU is "
                            "what QCFS trains (keras_models.qcfs: a learned clip, quantised), and mapping it as a "
                            "plain ReLU would change the ANN, so it is not mapped yet: use ReLU()")
        if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            raise UserError(f"{where}: a ReLU with negative_slope or threshold passes negative or shifted values, "
                            "which an integrate-and-fire neuron (positive spikes only) cannot carry; use ReLU()")
        return "relu"
    if type(layer) is keras.Softmax:
        axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
        if axis not in (-1, len(layer.input_shape) - 1):
            raise UserError(f"{where}: a softmax over axis {axis} is not a readout (over the classes, axis -1)")
        return "softmax"
    activation = getattr(layer.activation, "__name__", str(layer.activation))
    if activation not in ("relu", "linear", "softmax"):
        raise UserError(f"{where}: activation {activation!r} has no spiking equivalent (an integrate-and-fire "
                        "neuron's rate follows a ReLU); use relu, or softmax for the readout")
    return activation


def _merge_activation(layer, activation, target, others, later_weighted, where):
    """Merge an activation layer into the spec it reads (``others``: who else reads that value).
    Returns the rule it followed (None: kept as it is) and whether an Activation("relu") is to follow
    the Add it reads (a ReLU after an Add) rather than the layer be merged or dropped."""
    import tensorflow as tf
    keras = tf.keras.layers
    if activation == "linear":
        return DROPPED + ": the identity", False
    weighted = target is not None and target.weighted
    if activation == "softmax":
        if not weighted or target.cls is not keras.Dense or later_weighted or target.activation != "linear":
            raise UserError(f"{where}: a softmax maps only as the readout, directly after the last Dense layer "
                            "(with a linear activation)")
        _sole_user(target, others, "a softmax readout", where)
        target.config["activation"] = "softmax"
        return f"the softmax of the readout {target.config['name']!r}", False
    if target is not None and target.relu:
        return f"{DROPPED}: {target.config['name']!r} is already ReLU'd (ReLU(ReLU(x)) = ReLU(x))", False
    if target is not None and target.cls is keras.Add:
        _sole_user(target, others, "a ReLU", where)
        kept = type(layer) is keras.Activation
        return (None if kept else f"Activation('relu') after the Add {target.config['name']!r} (its neuron)"), True
    if not weighted:
        raise UserError(f"{where}: a ReLU layer maps only directly after a Conv2D or Dense layer (or its batch "
                        "norm), where it becomes that layer's activation, or after an Add")
    if target.activation != "linear":
        raise UserError(f"{where}: follows {target.config['name']!r}, whose activation is "
                        f"{target.activation!r}; a ReLU layer maps only after a linear one")
    _sole_user(target, others, "a ReLU", where)
    target.config["activation"] = "relu"
    return f"the activation of {target.config['name']!r} (relu)", False


def _sole_user(target, others, what, where):
    """Refuse ``what`` of a value that others read too: merged into the layer, it would change their value."""
    if others:
        raise UserError(f"{where}: {what} of {target.config['name']!r} whose output is also used elsewhere "
                        f"({', '.join(others)}): merged into {target.config['name']!r} it would change what they "
                        f"read too (a layer's neurons give one value), so {what} maps only where that output "
                        "feeds it alone")


def _fold_batch_norm(layer, last, others, where):
    """Fold the batch norm's inference transform into the kernel and bias of the weighted spec before it
    (``others``: who else reads that spec's value; it must be none)."""
    if last is None or not last.weighted:
        after = f"follows {last.config['name']!r}" if last is not None and last.cls is not None else "comes first"
        raise UserError(f"{where}: batch norm folds only into a Conv2D or Dense layer directly before it; "
                        f"here nothing weighted does (it {after}: nothing to fold its scale and shift into)")
    if last.activation != "linear":
        raise UserError(f"{where}: follows {last.config['name']!r} after its {last.activation} activation: the "
                        f"{last.activation} stands between, so the batch norm's scale and shift do not fold into "
                        "the weights before it (put the batch norm before the activation)")
    _sole_user(last, others, "a batch norm", where)
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    rank = len(layer.input_shape)
    if [a % rank for a in axes] != [rank - 1] or last.config.get("data_format", "channels_last") != "channels_last":
        raise UserError(f"{where}: batch norm over axis {layer.axis} of a {rank - 1}-d map folds only over the "
                        "channels (the last axis, channels_last)")
    if getattr(layer, "renorm", False) or getattr(layer, "virtual_batch_size", None):
        raise UserError(f"{where}: batch renormalisation / virtual batches are not folded")
    mean, variance = (np.asarray(v.numpy(), np.float64) for v in (layer.moving_mean, layer.moving_variance))
    gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else 1.0
    beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else 0.0
    factor = gamma / np.sqrt(variance + float(layer.epsilon))
    kernel, bias = last.weights[0], (last.weights[1] if last.config["use_bias"] else 0.0)
    last.weights = [(np.asarray(kernel, np.float64) * factor).astype(np.float32),
                    ((np.asarray(bias, np.float64) - mean) * factor + beta).astype(np.float32)]
    last.config["use_bias"] = True


def _concatenate_over_channels(layer, spec, where, change):
    """A Concatenate over the channels as ``axis=-1``; over any other axis refused."""
    rank = len(layer.output_shape)
    if layer.axis % rank != rank - 1:
        raise UserError(f"{where}: concatenates over axis {layer.axis}, not the channels (the last axis); only "
                        "a concatenation of channels maps (each input's neurons side by side)")
    if layer.axis != -1:
        spec.config["axis"] = -1
        change(f"axis {layer.axis} written as -1 (the channels{', of the map of height 1' if spec.as_2d else ''})")


def _grouped(layer, spec, where, names):
    """A DepthwiseConv2D (SeparableConv2D) spec as a grouped Conv2D (and the 1x1 Conv2D after it):
    ``depth_multiplier`` m on C channels is C groups of m filters, kernel (kh, kw, C, m) as (kh, kw, 1, C*m)."""
    import tensorflow as tf
    keras = tf.keras.layers
    if layer.data_format != "channels_last":
        raise UserError(f"{where}: only channels_last convolutions are supported")
    channels, multiplier = int(layer.input_shape[-1]), int(layer.depth_multiplier)
    separable = type(layer) is keras.SeparableConv2D
    kernel = spec.weights[0]
    config = {"name": _new_name(f"{layer.name}_depthwise", names) if separable else layer.name,
              "filters": channels * multiplier, "kernel_size": tuple(layer.kernel_size),
              "strides": tuple(layer.strides),
              "padding": spec.config["padding"], "data_format": "channels_last",
              "dilation_rate": tuple(layer.dilation_rate), "groups": channels,
              "activation": "linear" if separable else spec.config["activation"],
              "use_bias": layer.use_bias and not separable}
    grouped = _Spec(keras.Conv2D, config, spec.index, [kernel.reshape(*kernel.shape[:2], 1, channels * multiplier)]
                    + (spec.weights[1:] if config["use_bias"] else []), True, inputs=spec.inputs)
    if not separable:
        return [grouped]
    pointwise = {"name": layer.name, "filters": int(layer.filters), "kernel_size": (1, 1), "strides": (1, 1),
                 "padding": "valid", "data_format": "channels_last", "dilation_rate": (1, 1), "groups": 1,
                 "activation": spec.config["activation"], "use_bias": layer.use_bias}
    return [grouped, _Spec(keras.Conv2D, pointwise, spec.index, spec.weights[1:], True, inputs=[grouped])]


def _describe_conv(spec):
    config = spec.config
    return (f"Conv2D {config['name']!r} ({config['filters']} filters, {config['kernel_size']} kernel, "
            f"groups={config['groups']}, {config['activation']}{', bias' if config['use_bias'] else ''})")


def _global_pool(layer, index, where, names):
    """AveragePooling2D (MaxPooling2D) over the whole map (+ Flatten) for a GlobalAveragePooling2D
    (GlobalMaxPooling2D; or 1D, on its map of height 1)."""
    import tensorflow as tf
    keras = tf.keras.layers
    twin = keras.MaxPooling2D if type(layer) in (keras.GlobalMaxPooling2D, keras.GlobalMaxPooling1D) else \
        keras.AveragePooling2D
    if layer.data_format != "channels_last":
        raise UserError(f"{where}: only channels_last pooling is supported")
    size = (1,) * (4 - len(layer.input_shape)) + tuple(int(d) for d in layer.input_shape[1:-1])   # 1-D: height 1
    pool = _Spec(twin, {"name": layer.name, "pool_size": size, "strides": size,
                        "padding": "valid", "data_format": "channels_last"}, index, [])
    if layer.keepdims:
        return [pool]
    return [pool, _Spec(keras.Flatten, {"name": _new_name(f"{layer.name}_flatten", names),
                                        "data_format": "channels_last"}, index, [])]


def _new_name(name, names):
    """``name``, made unique among ``names`` (and taken)."""
    while name in names:
        name += "_"
    names.add(name)
    return name


def _conv_or_pool_2d(spec, where):
    """A Conv1D / AveragePooling1D / MaxPooling1D spec as its 2-D twin on a map of height 1:
    windows, strides and dilations (1, k); a kernel (k, C_in, C_out) becomes (1, k, C_in, C_out)."""
    import tensorflow as tf
    keras = tf.keras.layers
    config = dict(spec.config)
    if config.get("data_format", "channels_last") != "channels_last":
        raise UserError(f"{where}: only channels_last 1-D layers are supported")
    if config["padding"] not in ("same", "valid"):
        raise UserError(f"{where}: padding {config['padding']!r} (left only) is not a 'same' or 'valid' "
                        "convolution, which is what the engine runs")
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size"):
        if key in config:
            config[key] = (1,) + tuple(config[key])
    if spec.cls is keras.Conv1D:
        return _Spec(keras.Conv2D, config, spec.index, [spec.weights[0][None]] + spec.weights[1:], True,
                     inputs=spec.inputs, as_2d=True)
    twin = keras.MaxPooling2D if spec.cls is keras.MaxPooling1D else keras.AveragePooling2D
    return _Spec(twin, config, spec.index, [], inputs=spec.inputs, as_2d=True)


def _merge_padding(pad, conv, spec, where):
    """Make ``spec`` (the conv after ``pad``) a 'same' conv on the unpadded map, if that is what they compute."""
    import tensorflow as tf
    keras = tf.keras.layers
    twins = (keras.Conv1D,) if type(pad) is keras.ZeroPadding1D else \
        (keras.Conv2D, keras.DepthwiseConv2D, keras.SeparableConv2D)
    if type(conv) not in twins or conv.padding != "valid" or getattr(pad, "data_format", "channels_last") != \
            "channels_last":
        raise UserError(f"{where}: zero padding maps only before a channels_last "
                        f"{' / '.join(t.__name__ for t in twins)} with valid padding "
                        f"(it becomes the conv's 'same' padding); {conv.name!r} is not one")
    sizes = pad.input_shape[1:-1]
    same = tuple(network.same_padding(int(sizes[a]), conv.kernel_size[a], conv.strides[a], conv.dilation_rate[a])[1:]
                 for a in range(len(sizes)))
    given = tuple(tuple(int(p) for p in axis) for axis in ((pad.padding,) if twins[0] is keras.Conv1D
                                                           else pad.padding))
    if given != same:
        raise UserError(f"{where}: pads {given} (before, after per axis), but the 'same' padding of {conv.name!r} "
                        f"would be {same}; only padding equal to 'same' maps (the engine's convolutions are "
                        "'same' or 'valid')")
    spec.config["padding"] = "same"


def _build(model, input_shape, specs, output):
    """A functional model of ``specs`` (in an order where each follows those it reads; the first is the
    input) on inputs of ``input_shape`` up to ``output``, weights set (the user's where not rewritten)."""
    import tensorflow as tf
    inputs = tf.keras.Input(input_shape, name=model.layers[0].name
                            if type(model.layers[0]) is tf.keras.layers.InputLayer else None)
    own = {layer.name: layer for layer in model.layers}
    tensors, built = {id(specs[0]): inputs}, []
    for spec in specs[1:]:
        layer = spec.cls.from_config(spec.config)
        reads = [tensors[id(s)] for s in spec.inputs]
        tensors[id(spec)] = layer(reads if spec.many else reads[0])
        weights = spec.weights if spec.weights is not None else own[spec.config["name"]].get_weights()
        built.append((layer, weights))
    for layer, weights in built:
        layer.set_weights(weights)
    return tf.keras.Model(inputs, tensors[id(output)], name=model.name)
