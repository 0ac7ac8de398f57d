"""A user's Keras chain rewritten into the layers the pipeline runs, computing the same function.

Models written the way the Keras tutorials write them (``Conv2D -> BatchNormalization ->
Activation("relu") -> ... -> GlobalAveragePooling2D -> Dense -> Softmax()``) hold layers that are
not neurons of their own: a batch norm is an affine map, a ReLU layer is the activation of the
layer before it. `canonicalise` folds and merges them, each by a stated rule, into the chain of
Conv2D / Dense (+ReLU) / AveragePooling2D / Flatten / Dropout that `pipeline.network.describe`
maps (docs/layers.md has the table):

- ``BatchNormalization`` directly after a Conv2D or Dense whose activation is still linear (a
  batch norm after a batch norm too): folded into its kernel and bias, per output channel
  ``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``
  (gamma 1 without ``scale``, beta 0 without ``center``). After a ReLU, or after anything else,
  it is refused: the ReLU (or the layer) stands between, so the scale and shift do not fold
  into the weights before it.
- ``Activation("relu")`` / plain ``ReLU()`` directly after a Conv2D or Dense (or its batch
  norm): that layer's ReLU activation (after a layer already ReLU'd: dropped, ReLU is
  idempotent). ``Activation("linear")``: dropped. ``Softmax()`` / ``Activation("softmax")``
  directly after the last Dense: the readout's softmax. A clipped ``ReLU(max_value=...)``, a
  leaky or shifted ReLU and other activations are refused with the reason.
- ``GlobalAveragePooling2D`` (``GlobalMaxPooling2D``): ``AveragePooling2D`` (``MaxPooling2D``) over
  the whole map (pool = stride = map size, valid padding), then ``Flatten`` unless ``keepdims``; the
  same mean (summed in another order) or maximum.
- ``ZeroPadding2D`` directly before a Conv2D with valid padding: merged into the conv as
  ``padding="same"`` only where the zeros are exactly what 'same' would add (TF's rule, smaller
  half first); else refused.
- ``Conv1D`` / ``AveragePooling1D`` / ``MaxPooling1D`` / ``GlobalAveragePooling1D`` /
  ``GlobalMaxPooling1D`` / ``ZeroPadding1D`` on (length, channels) maps: a ``Reshape`` to
  (1, length, channels) before the first of them, then each as its 2-D twin on that map of height 1
  (windows, strides, dilations (1, k); a kernel (k, C_in, C_out) as (1, k, C_in, C_out)), the same sums;
  the 1-D stack ends at a Flatten or global pooling. A causal convolution (left padding only), and a
  layer that needs the 1-D map (an LSTM after a Conv1D), are refused.
- ``MaxPooling2D`` is kept (`network.MaxPool2d`: SNN Toolbox's spike-count gate); ``MaxPooling1D``
  and ``GlobalMaxPooling1D`` become their 2-D twins like the other 1-D layers.

Every other layer is kept as it is: `network.describe` stays the semantic check and refuses what
the engine cannot run. A model with nothing to rewrite is returned unchanged (the very object).
Refusals name the layer by its index in the user's ``model.layers`` and its name, in one line.
"""
from dataclasses import dataclass

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


@dataclass
class _Spec:
    """One layer of the chain being built: its class, config and weights (None: the user's own)."""
    cls: type
    config: dict
    index: int
    weights: list | None = None
    weighted: bool = False

    @property
    def activation(self):
        return self.config.get("activation", "linear") if self.weighted else None


def canonicalise(model, data_shape=None):
    """The model as a chain of the layers `network.describe` maps, and what changed (`Canonical`).

    ``data_shape``: the per-sample shape of the data it is to run on. Where that is the model's input
    shape and a trailing 1 (the data loader reads an (n, L, C) array as single-channel images
    (L, C, 1)), the canonical model takes the data's shape, a Reshape at its input dropping the 1:
    the same values in the same order.
    """
    import tensorflow as tf
    keras = tf.keras.layers
    layers = [layer for layer in model.layers if type(layer) is not keras.InputLayer]
    position = {id(layer): k for k, layer in enumerate(model.layers)}
    names = {layer.name for layer in model.layers}
    previous = None
    for layer in layers:      # a graph is not rewritten: its first non-chain layer is refused, by the user's index
        network.check_chain(model, layer, previous, _where(layer, position))
        previous = layer
    global_pools = (keras.GlobalAveragePooling2D, keras.GlobalAveragePooling1D, keras.GlobalMaxPooling2D,
                    keras.GlobalMaxPooling1D)
    one_d = (keras.Conv1D, keras.AveragePooling1D, keras.MaxPooling1D, keras.GlobalAveragePooling1D,
             keras.GlobalMaxPooling1D, keras.ZeroPadding1D)
    leaky = (keras.LeakyReLU, keras.PReLU, keras.ELU, keras.ThresholdedReLU)
    in_1d = (keras.BatchNormalization, keras.Activation, keras.ReLU, keras.Softmax, keras.Dropout,
             keras.Flatten) + one_d + leaky   # (leaky ones refused below, with the reason)
    specs, changes, pad, as_2d = [], [], None, False   # as_2d: inside a 1-D stack, run as a map of height 1
    shape = tuple(int(d) for d in model.input_shape[1:])
    entry = None     # the Reshape at the input, if the data's shape asks for one
    if data_shape is not None and tuple(data_shape) == shape + (1,):
        entry = _Spec(keras.Reshape, {"name": _new_name("input_as_model", names), "target_shape": shape}, 0, [])
        specs.append(entry)
        changes.append({"layer": None, "name": "input", "class": "InputLayer",
                        "rule": f"takes the data's {tuple(data_shape)}, a Reshape {entry.config['name']!r} to the "
                                f"model's {shape} at its input (the same values in the same order)"})
    for k, layer in enumerate(layers):
        index, where, kind = position[id(layer)], _where(layer, position), type(layer)
        last = specs[-1] if specs else None
        if pad is not None and kind not in (keras.Conv2D, keras.Conv1D):
            raise UserError(f"{_where(pad, position)}: zero padding maps only directly before a convolution "
                            f"(it becomes the conv's 'same' padding); here {layer.name!r} follows it")
        later_weighted = any(type(other) in (keras.Conv2D, keras.Conv1D, keras.Dense) for other in layers[k + 1:])

        def change(rule, layer=layer, index=index):
            changes.append({"layer": index, "name": layer.name, "class": type(layer).__name__, "rule": rule})

        if as_2d and kind not in in_1d:
            raise UserError(f"{where}: after 1-D layers (run as a 2-D map of height 1) only 1-D convolutions, "
                            "pooling and zero padding, batch norm, ReLU, Dropout and Flatten map")
        if kind in one_d and not as_2d:
            if last is not None and last is entry:       # one Reshape at the input does both
                entry.config["target_shape"] = (1,) + entry.config["target_shape"]
            else:
                specs.append(_to_2d(layer, index, names))
            change(f"a Reshape {specs[-1].config['name']!r} before it makes its {tuple(layer.input_shape[1:])} map "
                   f"{specs[-1].config['target_shape']}: the 1-D stack runs as a 2-D map of height 1")
            as_2d, last = True, specs[-1]
        if kind is keras.BatchNormalization:
            _fold_batch_norm(layer, last, where)
            change(f"folded into the kernel and bias of {last.config['name']!r}: w' = w * gamma / sqrt(var + eps), "
                   "b' = (b - mean) * gamma / sqrt(var + eps) + beta, per output channel")
        elif kind in (keras.Activation, keras.ReLU, keras.Softmax):
            rule = _merge_activation(layer, _activation_of(layer, where), last, later_weighted, where)
            change(rule)
        elif kind in leaky:
            raise UserError(f"{where}: {kind.__name__} passes negative (or shifted) values, which an "
                            "integrate-and-fire neuron (it fires positive spikes only) cannot carry; use ReLU()")
        elif kind in global_pools:
            specs += _global_pool(layer, index, where, names)
            pool = specs[-1 if layer.keepdims else -2]
            change(f"became {pool.cls.__name__} over the whole {'x'.join(str(d) for d in pool.config['pool_size'])} "
                   f"map (pool = stride = map size, valid){'' if layer.keepdims else ' + Flatten'}: the same "
                   f"{'maximum' if pool.cls is keras.MaxPooling2D else 'mean'}")
            as_2d = as_2d and layer.keepdims
        elif kind in (keras.ZeroPadding2D, keras.ZeroPadding1D):
            pad = layer
        else:
            weighted = kind in (keras.Conv2D, keras.Conv1D, keras.Dense)
            spec = _Spec(kind, layer.get_config(), index, layer.get_weights() if weighted else None, weighted)
            if pad is not None:
                _merge_padding(pad, layer, spec, _where(pad, position))
                change(f"merged into {layer.name!r} as padding='same' (the very zeros 'same' adds)", pad,
                       position[id(pad)])
                pad = None
            if kind in (keras.Conv1D, keras.AveragePooling1D, keras.MaxPooling1D):
                spec = _conv_or_pool_2d(spec, where)
                window = spec.config.get('kernel_size', spec.config.get('pool_size'))
                change(f"became {spec.cls.__name__} with a {window} "
                       "window on the map of height 1 (the same sums)")
            as_2d = as_2d and kind is not keras.Flatten
            specs.append(spec)
    if pad is not None:
        raise UserError(f"{_where(pad, position)}: zero padding maps only directly before a convolution (it becomes "
                        "the conv's 'same' padding); it ends the model")
    if not changes:
        return Canonical(model, (), {layer.name: k for k, layer in enumerate(model.layers)})
    inputs = tuple(data_shape) if entry is not None else shape
    return Canonical(_build(model, inputs, layers, specs), tuple(changes), {s.config["name"]: s.index for s in specs})


def _where(layer, position):
    return f"layer {position[id(layer)]} {layer.name!r} ({type(layer).__name__})"


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


def _merge_activation(layer, activation, last, later_weighted, where):
    """Merge an activation layer into the weighted spec before it; return the rule it followed."""
    import tensorflow as tf
    if activation == "linear":
        return DROPPED + ": the identity"
    target = None if last is None or not last.weighted else last
    if activation == "softmax":
        if target is None or target.cls is not tf.keras.layers.Dense or later_weighted or target.activation != "linear":
            raise UserError(f"{where}: a softmax maps only as the readout, directly after the last Dense layer "
                            "(with a linear activation)")
        target.config["activation"] = "softmax"
        return f"the softmax of the readout {target.config['name']!r}"
    if target is None:
        raise UserError(f"{where}: a ReLU layer maps only directly after a Conv2D or Dense layer (or its batch "
                        "norm), where it becomes that layer's activation")
    if target.activation == "relu":
        return f"{DROPPED}: {target.config['name']!r} already applies ReLU (ReLU(ReLU(x)) = ReLU(x))"
    if target.activation != "linear":
        raise UserError(f"{where}: follows {target.config['name']!r}, whose activation is "
                        f"{target.activation!r}; a ReLU layer maps only after a linear one")
    target.config["activation"] = "relu"
    return f"the activation of {target.config['name']!r} (relu)"


def _fold_batch_norm(layer, last, where):
    """Fold the batch norm's inference transform into the kernel and bias of the weighted spec before it."""
    if last is None or not last.weighted:
        raise UserError(f"{where}: batch norm folds only into a Conv2D or Dense layer directly before it; "
                        "here nothing weighted does (nothing to fold its scale and shift into)")
    if last.activation != "linear":
        raise UserError(f"{where}: follows {last.config['name']!r} after its {last.activation} activation: the "
                        f"{last.activation} stands between, so the batch norm's scale and shift do not fold into "
                        "the weights before it (put the batch norm before the activation)")
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


def _to_2d(layer, index, names):
    """The Reshape that makes the (L, C) map before a 1-D layer the 2-D map (1, L, C)."""
    import tensorflow as tf
    target = (1,) + tuple(int(d) for d in layer.input_shape[1:])
    return _Spec(tf.keras.layers.Reshape, {"name": _new_name(f"{layer.name}_as_2d", names), "target_shape": target},
                 index, [])


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
        return _Spec(keras.Conv2D, config, spec.index, [spec.weights[0][None]] + spec.weights[1:], True)
    twin = keras.MaxPooling2D if spec.cls is keras.MaxPooling1D else keras.AveragePooling2D
    return _Spec(twin, config, spec.index, [])


def _merge_padding(pad, conv, spec, where):
    """Make ``spec`` (the conv after ``pad``) a 'same' conv on the unpadded map, if that is what they compute."""
    import tensorflow as tf
    keras = tf.keras.layers
    twin = keras.Conv1D if type(pad) is keras.ZeroPadding1D else keras.Conv2D
    if type(conv) is not twin or conv.padding != "valid" or getattr(pad, "data_format", "channels_last") != \
            "channels_last":
        raise UserError(f"{where}: zero padding maps only before a channels_last {twin.__name__} with valid padding "
                        f"(it becomes the conv's 'same' padding); {conv.name!r} is not one")
    sizes = pad.input_shape[1:-1]
    same = tuple(network.same_padding(int(sizes[a]), conv.kernel_size[a], conv.strides[a], conv.dilation_rate[a])[1:]
                 for a in range(len(sizes)))
    given = tuple(tuple(int(p) for p in axis) for axis in ((pad.padding,) if twin is keras.Conv1D else pad.padding))
    if given != same:
        raise UserError(f"{where}: pads {given} (before, after per axis), but the 'same' padding of {conv.name!r} "
                        f"would be {same}; only padding equal to 'same' maps (the engine's convolutions are "
                        "'same' or 'valid')")
    spec.config["padding"] = "same"


def _build(model, input_shape, layers, specs):
    """A functional model of ``specs`` on inputs of ``input_shape``, weights set (the user's where not rewritten)."""
    import tensorflow as tf
    inputs = tf.keras.Input(input_shape, name=model.layers[0].name
                            if type(model.layers[0]) is tf.keras.layers.InputLayer else None)
    own = {layer.name: layer for layer in layers}
    x, built = inputs, []
    for spec in specs:
        layer = spec.cls.from_config(spec.config)
        x = layer(x)
        weights = spec.weights if spec.weights is not None else own[spec.config["name"]].get_weights()
        built.append((layer, weights))
    for layer, weights in built:
        layer.set_weights(weights)
    return tf.keras.Model(inputs, x, name=model.name)
