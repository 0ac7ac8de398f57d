"""A model file is data: its stored architecture is read as JSON and checked before Keras rebuilds it.

Rebuilding a Keras model runs code that the file names: a ``Lambda`` layer's Python function
(marshalled into the file), a custom activation imported from whatever module the file says
(``{"module": "os", ...}``), a registered custom class. So every model file a user hands the
pipeline (``MODEL=``, the ``.h5`` an ini given with ``CONFIG=`` names, every engine load) goes
through `check` first: h5py and json only, no Keras, and any layer or object that is not one
of the built-in Keras classes below is refused by index, name and class in one line, before
anything in the file is deserialized. Which of these layers can be *converted* is decided later,
on the loaded model (`pipeline.network.describe`).
"""
import json
import zipfile
from pathlib import Path

from pipeline import UserError

MODELS = ("Sequential", "Functional", "Model")
# Built-in Keras layers: deserializing one runs no code from the file. ESCAPE-NET's three variants
# use InputLayer to Dropout, BatchNormalization, Activation and MaxPooling2D; the rest are what
# researchers' CNNs are written with. QCFS is this project's own layer (keras_models/qcfs.py,
# registered as "escape_snn>QCFS"; plain "QCFS" is its `CUSTOM_OBJECTS` name).
LAYERS = ("InputLayer", "Conv2D", "Dense", "AveragePooling2D", "Flatten", "Dropout",
          "BatchNormalization", "Activation", "ReLU", "Softmax", "MaxPooling1D", "MaxPooling2D", "Conv1D",
          "AveragePooling1D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "ZeroPadding1D",
          "ZeroPadding2D", "Reshape", "DepthwiseConv2D", "SeparableConv2D", "Add", "Concatenate",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
          "escape_snn>QCFS", "QCFS")
# Keras' built-in activations by name (tf_keras 2.21 `activations`); any other name or object is code.
ACTIVATIONS = ("elu", "exponential", "gelu", "hard_sigmoid", "linear", "mish", "relu", "selu", "sigmoid",
               "softmax", "softplus", "softsign", "swish", "tanh")
INITIALIZERS = ("Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
                "LecunNormal", "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform",
                "TruncatedNormal", "VarianceScaling", "Zeros")
REGULARIZERS = ("L1", "L2", "L1L2", "OrthogonalRegularizer")
CONSTRAINTS = ("MaxNorm", "MinMaxNorm", "NonNeg", "RadialConstraint", "UnitNorm")
# Markers of Keras' JSON (tuples, shapes, dtype policies): data, not classes to build.
MARKERS = ("__tuple__", "TensorShape", "Policy", "DTypePolicy", "__keras_tensor__")
OBJECTS = INITIALIZERS + REGULARIZERS + CONSTRAINTS + MARKERS
KERAS_MODULES = ("keras", "tf_keras")


def check(path, label=None):
    """Refuse, in one line starting with ``label`` (default: the path), a model file whose stored
    architecture names anything but built-in Keras layers and objects. Reads ``.h5``/``.hdf5``
    (the ``model_config`` attribute), ``.keras`` (its ``config.json``) and ``.json`` (an
    architecture alone, as SNN Toolbox reads beside the weights); runs nothing from the file."""
    path = Path(path)
    label = label or str(path)
    stored, compiled = _stored(path, label)
    try:
        config = json.loads(stored)
    except ValueError as exc:
        raise UserError(f"{label}: its stored model architecture is not JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("class_name") not in MODELS:
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise UserError(f"{label}: the stored architecture is not a Keras model ({found!r}; "
                        f"expected one of {', '.join(MODELS)})")
    _check_model(config, label, "")
    if compiled is not None:
        try:
            compiled = json.loads(compiled)
        except ValueError as exc:
            raise UserError(f"{label}: its stored compile settings are not JSON ({exc})") from None
    _check_compile(compiled if compiled is not None else config.get("compile_config"), label)   # .h5 / .keras


def _stored(path, label):
    """(architecture JSON text, compile settings JSON text or None) as stored in the file."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return path.read_text(), None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{label}: cannot read the model architecture ({exc})") from None
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                return archive.read("config.json").decode(), None
        except (OSError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise UserError(f"{label}: not a readable .keras file ({type(exc).__name__}: {exc})") from None
    import h5py
    try:
        with h5py.File(path, "r") as f:
            attrs = {key: f.attrs.get(key) for key in ("model_config", "training_config")}
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"{label}: not a readable Keras .h5 model (OSError: {reason})"[:300]) from None
    text = {key: value.decode() if isinstance(value, bytes) else value for key, value in attrs.items()}
    if not isinstance(text["model_config"], str):
        raise UserError(f"{label}: the .h5 holds no model architecture (weights only?); "
                        "save the whole model with model.save(path, save_format='h5')")
    return text["model_config"], text["training_config"] if isinstance(text["training_config"], str) else None


def _check_model(config, label, outer):
    """Every layer of a Sequential or Functional config, nested models included. Indices are those
    of ``model.layers`` (a Sequential model does not list its InputLayer there)."""
    body = config.get("config")
    layers = body if isinstance(body, list) else body.get("layers", []) if isinstance(body, dict) else None
    if not isinstance(layers, list):
        raise UserError(f"{label}: {outer or 'the model'} has no list of layers in its stored architecture")
    if config.get("class_name") == "Sequential":
        layers = [layer for layer in layers
                  if not (isinstance(layer, dict) and layer.get("class_name") == "InputLayer")]
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise UserError(f"{label}: {outer}layer {index} of the stored architecture is not a layer config")
        _check_layer(layer, label, outer, index)
    rest = {key: value for key, value in body.items() if key != "layers"} if isinstance(body, dict) else {}
    _check_objects(rest, label, f"{outer or 'the model'}: ")


def _check_layer(layer, label, outer, index):
    cls = layer.get("class_name")
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    where = f"{outer}layer {index} {config.get('name')!r} ({cls})"
    if cls in MODELS:
        _check_origin(layer, label, where)
        _check_model(layer, label, f"{where} > ")
        _check_objects({k: v for k, v in layer.items() if k != "config"}, label, f"{where}: ")
        return
    if cls == "Lambda":
        raise UserError(f"{label}: {where} is refused unread: a Lambda layer is Python code stored in the file, "
                        "which Keras would run while loading it (write it with built-in layers)")
    if cls not in LAYERS:
        kind = "a custom class, code the file would run" if not isinstance(cls, str) or ">" in cls else \
            "not among the Keras layers this pipeline reads"
        raise UserError(f"{label}: {where} is refused unread: {kind} (supported: {', '.join(LAYERS[:-1])})")
    _check_origin(layer, label, where)
    for key, value in config.items():
        if (key == "activation" or key.endswith("_activation")) and value not in ACTIVATIONS:
            raise UserError(f"{label}: {where}: {key} {_shown(value)} is not a built-in Keras activation "
                            f"name: a custom activation is code the file would run ({', '.join(ACTIVATIONS)})")
    _check_objects(layer, label, f"{where}: ")


def _check_objects(value, label, where, key=None):
    """Every object inside ``value`` that Keras would deserialize (a dict with ``class_name``)
    must be a built-in initializer, regularizer, constraint or JSON marker from a Keras module."""
    if isinstance(value, list):
        for item in value:
            _check_objects(item, label, where, key)
        return
    if not isinstance(value, dict):
        return
    if "class_name" in value and key is not None:
        if value["class_name"] not in OBJECTS:
            raise UserError(f"{label}: {where}{key} {_shown(value)} is not a built-in Keras initializer, "
                            "regularizer or constraint: a custom one is code the file would run")
        _check_origin(value, label, f"{where}{key}")
    for name, item in value.items():
        if name not in ("class_name", "module", "registered_name"):
            _check_objects(item, label, where, name if key is None or name != "config" else key)


def _check_origin(entry, label, where):
    """An entry naming its module must name a Keras one, and no other registered name than its class."""
    module, registered = entry.get("module"), entry.get("registered_name")
    if module is not None and not (isinstance(module, str) and module.split(".")[0] in KERAS_MODULES):
        raise UserError(f"{label}: {where} comes from module {module!r}, not from Keras: "
                        "code the file would import and run")
    if registered not in (None, entry.get("class_name")) and registered not in LAYERS:
        raise UserError(f"{label}: {where} is registered as {registered!r}: a custom class, code the file would run")


def _check_compile(settings, label):
    """The compile settings (loss, metrics, optimizer) that a compiling load rebuilds (SNN Toolbox's):
    Keras' own only. A name is looked up among Keras' and registered objects; a ``module`` is imported."""

    def walk(value, key):
        if isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, dict):
            module = value.get("module")
            if module is not None and not (isinstance(module, str) and module.split(".")[0] in KERAS_MODULES):
                raise UserError(f"{label}: compile setting {key} {_shown(value)} comes from module {module!r}, "
                                "not from Keras: code the file would import and run (save with compile=False)")
            for name, item in value.items():
                walk(item, key if name == "config" else name)

    walk(settings, "training_config")


def _shown(value):
    """An activation or object as the file names it, briefly."""
    if isinstance(value, dict):
        name = value.get("config") if value.get("class_name") == "function" else value.get("class_name")
        module = value.get("module")
        return repr(f"{module}.{name}" if module else name)[:120]
    return repr(value)[:120]
