"""Train ESCAPE-NET on a Dataset and cache the .h5 by (data sha256, variant, width, epochs, seed;
levels L for the qcfs variant; the pruning target; the weight width).

Adam, batch 64, a class-balanced validation split of the training set, the
best-validation-accuracy weights kept. The model is saved compiled with
categorical cross-entropy: SNN Toolbox evaluates it with its own compiled loss
on one-hot labels.

A qcfs model starts from the modified model of the same width, epochs and seed
(trained first if needed; its weights, and every clip level lambda at the 99.9th
percentile of that layer's input on training data) and is fine-tuned with its
quantised activations for QCFS_FINE_TUNE_EPOCHS epochs, with the activation-sparsity penalty
`qcfs.penalise_activity` when ``sparsity`` > 0 (cached under its own name). Trained from scratch,
ESCAPE-NET's activations (no batch norm, sparse inputs) are so small at
initialisation that lambda/(2L) rounds almost all of them to zero: at width 64 the
network never left chance (loss log 3 for 8 epochs).
A user's model (``origin``: its `bring` cache) is fine-tuned the same way as its QCFS twin
(`qcfs.twin`: each hidden ReLU replaced by QCFS), cached as ``<its cache name>_qcfs_L<L>_s<seed>.h5``.

A pruned model (``prune`` > 0, `pipeline.training.pruning`) starts from the same model unpruned (the
modified ANN, or its QCFS fine-tune, trained first if needed) and is fine-tuned while magnitude pruning
raises each Conv2D/Dense kernel's fraction of zeros to ``prune``; it is saved without the pruning
wrappers (a plain model with zeros) under its own name.

A quantised model (``quant`` = b bits, `pipeline.training.quantisation`) is the same model in float
(pruned first when ``prune`` asks, so its zeros stay zero) with each kernel quantised after training,
per output channel; cached under its own name (``_q<b>``) with its scales.
"""
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_models import escape_net, qcfs
from pipeline import UserError, modelfile, results
from pipeline.training import pruning, quantisation

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
VALIDATION_FRACTION = 0.1
QCFS_INIT_SAMPLES = 256       # training samples that set the initial clip levels of a qcfs model
QCFS_FINE_TUNE_EPOCHS = 2     # best validation epoch kept; one is usually enough, more overfits
ARCHS = ("escape_net", "escape_net_1d")


@dataclass(frozen=True)
class TrainSettings:
    variant: str = "modified"
    width: int = 64
    epochs: int = 8
    seed: int = 0
    levels: int = 8   # L, quantisation steps of the qcfs variant (ignored by the others)
    sparsity: float = 0.0   # the qcfs fine-tune's activation-sparsity penalty weight (`qcfs.penalise_activity`)
    prune: float = 0.0      # fraction of each Conv2D/Dense kernel set to zero (`pruning`); 0: not pruned
    arch: str = "escape_net"   # or "escape_net_1d": `escape_net.build_1d` on the data's time-series view
    origin: str = ""        # qcfs only: the user's model (the `bring` cache) to fine-tune instead of ESCAPE-NET
    quant: int = 0          # weight width in bits after training (`quantisation`); 0: float

    def __post_init__(self):
        pruning.check_target(self.prune)
        quantisation.check_bits(self.quant)
        if self.arch not in ARCHS:
            raise ValueError(f"unknown ESCAPE-NET architecture {self.arch!r}; choose from {ARCHS}")
        if self.arch == "escape_net_1d" and self.variant != "modified":
            raise UserError(f"ARCH=escape_net_1d: the {self.variant} ESCAPE-NET is built in 2-D only (the 1-D "
                            "network is the conversion-friendly, modified one)")
        if self.origin and (self.variant != "qcfs" or self.prune):
            raise ValueError(f"a user's model is fine-tuned as the (unpruned) qcfs variant only, not {self.variant!r}")
        if not 0 <= self.sparsity < float("inf"):
            raise UserError(f"SPARSITY={self.sparsity}: must be a number >= 0")
        if self.sparsity and self.variant != "qcfs":
            raise ValueError(f"a sparsity penalty trains the qcfs variant only, not {self.variant!r}")


@dataclass(frozen=True)
class TrainedModel:
    path: Path
    info: dict   # history, accuracies, seconds (the JSON beside the .h5)


def model_name(dataset, settings):
    variant = f"qcfs_L{settings.levels}" if settings.variant == "qcfs" else settings.variant
    if settings.sparsity:
        variant += f"_sp{settings.sparsity:g}"
    if settings.prune:
        variant += f"_p{settings.prune:g}"
    if settings.quant:
        variant += f"_q{settings.quant}"
    if settings.origin:   # the user's model's cache name (its sha, the data's) says what it starts from
        return f"{Path(settings.origin).stem}_{variant}_s{settings.seed}"
    return (f"{settings.arch}_{variant}_w{settings.width}_e{settings.epochs}"
            f"_s{settings.seed}_{dataset.sha256[:12]}")


def seed_everything(seed):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


class _KeepBest:
    """Keras callback factory: remember the weights of the best validation accuracy from epoch ``first``
    on (a pruning fine-tune's earlier epochs have not reached the target sparsity)."""

    def __new__(cls, first=1):
        import tensorflow as tf

        class KeepBest(tf.keras.callbacks.Callback):
            best, best_epoch, weights = -1.0, 0, None

            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 >= first and logs["val_accuracy"] > self.best:
                    self.best, self.best_epoch = logs["val_accuracy"], epoch + 1
                    self.weights = self.model.get_weights()

        return KeepBest()


def train(dataset, settings: TrainSettings, folder, force=False, verbose=1):
    """Return the cached model for these settings in ``folder`` (`results.Folders.trained`), training it
    first if needed.

    A cached ``.h5`` is used only when its sha256 is the one its JSON recorded when it was written;
    otherwise (cut short, edited, JSON missing or damaged) one line says so and it is retrained.
    The cache is locked while it is checked and built, so two processes train it once.
    """
    path = Path(folder) / f"{model_name(dataset, settings)}.h5"
    with results.locked(path):
        if not force:
            cached = _verified(path)
            if cached is not None:
                return cached
        return _train(dataset, settings, path, verbose)


def _verified(path):
    """The cached model at `path` if its sha256 matches its record, else None (after one line saying why)."""
    info_path = path.with_suffix(".json")
    if not path.exists() and not info_path.exists():
        return None
    try:
        info = results.read_json(info_path)
        problem = results.cache_problem(path, info.get("sha256") if isinstance(info, dict) else None)
    except UserError as exc:
        problem = str(exc)
    if problem is None:
        return TrainedModel(path, info)
    results.report_rebuild(path, problem)
    return None


def _train(dataset, settings, path, verbose):
    if settings.quant:
        return _quantised(dataset, settings, path, verbose)
    from pipeline.data import balanced_subset, split_of
    info_path = path.with_suffix(".json")
    quantised, pruned = settings.variant == "qcfs", bool(settings.prune)
    if pruned:
        origin = train(dataset, dataclasses.replace(settings, prune=0.0), path.parent, verbose=verbose)
    elif settings.origin:
        origin = _verified(Path(settings.origin))
        if origin is None:
            raise UserError(f"{settings.origin}: the user's model to fine-tune with QCFS is missing or damaged "
                            "(run the stage again: MODEL= rebuilds it)")
    elif quantised:
        origin = train(dataset, dataclasses.replace(settings, variant="modified", sparsity=0.0), path.parent,
                       verbose=verbose)
    else:
        origin = None
    import tensorflow as tf
    seed_everything(settings.seed)
    train_idx, val_idx = split_of(dataset, VALIDATION_FRACTION, settings.seed)
    k = dataset.num_classes
    epochs, first_kept, extra_callbacks = settings.epochs, 1, []
    if pruned:
        model = pruning.prunable(load(origin.path), settings.prune, -(-len(train_idx) // BATCH_SIZE))
        epochs, first_kept, extra_callbacks = pruning.FINE_TUNE_EPOCHS, pruning.RAMP_EPOCHS, pruning.callbacks()
        if quantised:
            qcfs.penalise_activity(model, settings.sparsity)
    elif settings.origin:
        model = qcfs_twin(origin, settings.levels)
    elif settings.arch == "escape_net_1d":    # Conv1D on (time, channels); canonical below, after training
        model = escape_net.build_1d(dataset.input_shape[1:], k, settings.width)
    else:
        model = escape_net.build(settings.variant, dataset.input_shape, k, settings.width, levels=settings.levels)
    one_d = settings.arch == "escape_net_1d" and not pruned
    x_train = dataset.x_train[:, 0] if one_d else dataset.x_train    # (n, 1, L, C) -> (n, L, C)
    if quantised and not pruned:
        init_idx = train_idx[balanced_subset(dataset.y_train[train_idx], QCFS_INIT_SAMPLES, settings.seed)]
        initial_lambda = qcfs.warm_start(model, load(origin.path), dataset.x_train[init_idx])
        qcfs.penalise_activity(model, settings.sparsity)
        epochs = QCFS_FINE_TUNE_EPOCHS
    model.compile(tf.keras.optimizers.Adam(LEARNING_RATE), "categorical_crossentropy", ["accuracy"])
    keep_best = _KeepBest(first_kept)
    start = time.perf_counter()
    history = model.fit(
        x_train[train_idx], one_hot(dataset.y_train[train_idx], k),
        validation_data=(x_train[val_idx], one_hot(dataset.y_train[val_idx], k)),
        batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=verbose,
        callbacks=[keep_best, *extra_callbacks])
    seconds = time.perf_counter() - start
    model.set_weights(keep_best.weights)
    changes = ()
    if one_d:   # cached as every stage runs it: Conv2D / AveragePooling2D on the (1, L, C) map, no Reshape
        from pipeline import canonical
        form = canonical.canonicalise(model, dataset.input_shape)
        model, changes = form.model, form.changes
    if pruned or one_d:
        model = pruning.strip(model) if pruned else model
        model.compile(tf.keras.optimizers.Adam(LEARNING_RATE), "categorical_crossentropy", ["accuracy"])
    test_accuracy = float(np.mean(predict(model, dataset.x_test) == dataset.y_test))

    results.write_atomic_with(path, lambda tmp: model.save(tmp, save_format="h5"))
    info = {
        "variant": settings.variant, "arch": settings.arch,
        **({"source": origin.info["source"]} if settings.origin else {"width": settings.width,
                                                                       "epochs": settings.epochs}),
        "seed": settings.seed, "dataset": {"name": dataset.name, "sha256": dataset.sha256},
        "train_samples": len(train_idx), "validation_samples": len(val_idx),
        "test_samples": len(dataset.y_test), "best_epoch": keep_best.best_epoch,
        "validation_accuracy": float(keep_best.best), "test_accuracy": test_accuracy,
        "train_seconds": seconds, "parameters": int(model.count_params()), "sha256": results.file_sha256(path),
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
    }
    if one_d:
        info.update(canonical=list(changes))
    if pruned:
        info.update(prune=settings.prune, started_from={"path": str(origin.path),
                                                        "test_accuracy": origin.info["test_accuracy"]},
                    fine_tune_epochs=epochs, kernel_sparsity=pruning.kernel_sparsity(model))
        if quantised:
            info.update(levels=settings.levels, sparsity=settings.sparsity, clip_lambda=qcfs.threshold_values(model))
    elif quantised:
        info.update(levels=settings.levels, started_from={"path": str(origin.path), "sha256": origin.info["sha256"],
                                                          "test_accuracy": origin.info["test_accuracy"]},
                    fine_tune_epochs=QCFS_FINE_TUNE_EPOCHS, sparsity=settings.sparsity, initial_lambda=initial_lambda,
                    clip_lambda=qcfs.threshold_values(model))
    results.write_json(info_path, info)
    return TrainedModel(path, info)


def _quantised(dataset, settings, path, verbose):
    """The float model of these settings (trained, or pruned, first if needed) with its kernels quantised
    to ``settings.quant`` bits (post-training: no fine-tune), saved with its record under ``path``."""
    import tensorflow as tf
    origin = train(dataset, dataclasses.replace(settings, quant=0), path.parent, verbose=verbose)
    model = load(origin.path)
    scales = quantisation.quantise(model, settings.quant)
    model.compile(tf.keras.optimizers.Adam(LEARNING_RATE), "categorical_crossentropy", ["accuracy"])
    test_accuracy = float(np.mean(predict(model, dataset.x_test) == dataset.y_test))
    results.write_atomic_with(path, lambda tmp: model.save(tmp, save_format="h5"))
    info = {**origin.info, "test_accuracy": test_accuracy, "weight_bits": settings.quant, "weight_scales": scales,
            "quantised_from": {"path": str(origin.path), "test_accuracy": origin.info["test_accuracy"]},
            "sha256": results.file_sha256(path)}
    results.write_json(path.with_suffix(".json"), info)
    return TrainedModel(path, info)


def qcfs_twin(origin, levels):
    """The QCFS twin (`qcfs.twin`) of the user's model ``origin`` (its `bring` cache), refused in one line
    before any fine-tuning where the engine cannot convert it (`network.describe`)."""
    from pipeline import network
    model = qcfs.twin(load(origin.path), levels)
    try:
        network.describe(model)
    except UserError as exc:
        raise UserError(f"MODEL={origin.info['source']['path']}: its QCFS twin cannot be converted: {exc}") from None
    return model


def bring(source, dataset, folder, force=False):
    """A trained Keras model the user brings (``MODEL=path``), checked and made ready for the toolbox.

    Checked before anything runs: the file's architecture read as data (`modelfile.check` refuses a
    Lambda, custom or unknown layer unread); then rewritten into the layers the pipeline runs
    (`canonical_user_model`; the record's ``canonical`` lists what was folded or mapped, layer by layer)
    and checked again: every layer convertible (`network.describe` refuses one by index
    and name; a QCFS layer too, since SNN Toolbox cannot parse it), the input shape against the
    data's and the output size against its number of classes. The model is then saved compiled
    (categorical cross-entropy, as SNN Toolbox evaluates it) to ``<folder>/user_<model sha>_d<data
    sha>.h5`` (``folder``: `results.Folders.trained`), a verified cache like a trained one, with its test
    accuracy beside it.
    A ``.keras`` file is read if tf-keras can (its own format); a Keras-3 one is refused with the reason.
    """
    path = _user_model_path(source)
    sha = results.file_sha256(path)
    copy = Path(folder) / f"user_{sha[:12]}_d{dataset.sha256[:12]}.h5"
    with results.locked(copy):
        cached = None if force else _verified(copy)
        if cached is not None:
            return cached
        import tensorflow as tf
        model = _read_user_model(path)
        form = canonical_user_model(model, path, dataset.input_shape)
        model = form.model
        check_user_model(model, dataset, path, form.indices)
        model.compile(tf.keras.optimizers.Adam(LEARNING_RATE), "categorical_crossentropy", ["accuracy"])
        results.write_atomic_with(copy, lambda tmp: model.save(tmp, save_format="h5"))
        info = {"variant": "user", "source": {"path": str(path), "sha256": sha},
                "dataset": {"name": dataset.name, "sha256": dataset.sha256}, "test_samples": len(dataset.y_test),
                "test_accuracy": float(np.mean(predict(model, dataset.x_test) == dataset.y_test)),
                "parameters": int(model.count_params()), "canonical": list(form.changes),
                "sha256": results.file_sha256(copy)}
        results.write_json(copy.with_suffix(".json"), info)
    return TrainedModel(copy, info)


def _user_model_path(source):
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"MODEL={source}: no such file")
    if path.suffix.lower() not in (".h5", ".hdf5", ".keras"):
        raise UserError(f"MODEL={source}: a Keras .h5 file is expected (or a .keras file tf-keras can read)")
    return path


def user_input_shape(source):
    """The per-sample input shape of the model in ``MODEL=source`` (read as `bring` reads it: checked as
    data first), e.g. to see whether it takes recordings as time x channels."""
    return tuple(_read_user_model(_user_model_path(source)).input_shape[1:])


def _read_user_model(path):
    import tf_keras
    modelfile.check(path, f"MODEL={path}")
    try:
        return _keras_load(path)
    except Exception as exc:   # h5py, JSON or Keras errors: all mean "not a model we can read"
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:200]
        if path.suffix.lower() == ".keras":
            raise UserError(f"MODEL={path}: tf-keras {tf_keras.__version__} (the Keras-2 API SNN Toolbox needs) "
                            f"cannot read this .keras file ({reason}); save the model as .h5") from None
        raise UserError(f"MODEL={path}: not a readable Keras .h5 model ({reason})") from None


def canonical_user_model(model, path, data_shape):
    """The user's model rewritten into the layers the pipeline runs (`pipeline.canonical`: batch norm
    folded, ReLU / softmax layers merged, global pooling as a pool, Conv1D on a map of height 1, an
    (L, C) model taking the loader's (L, C, 1) samples ...), or one line naming the layer that cannot be."""
    from pipeline import canonical
    try:
        return canonical.canonicalise(model, data_shape)
    except UserError as exc:
        raise UserError(f"MODEL={path}: {exc}") from None


def check_user_model(model, dataset, path, indices=None):
    """Refuse, in one line, a model that the engine or the toolbox cannot run on this dataset.
    ``indices``: the user's index of each layer by name, where ``model`` was rewritten from theirs."""
    from pipeline import network
    indices = indices or {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, qcfs.QCFS):
            raise UserError(f"MODEL={path}: layer {indices.get(layer.name, index)} {layer.name!r} (QCFS): "
                            "SNN Toolbox cannot parse it")
    try:
        network.describe(model, indices=indices)
    except UserError as exc:
        raise UserError(f"MODEL={path}: {exc}") from None
    shape = tuple(model.input_shape[1:])
    if shape != dataset.input_shape:
        raise UserError(f"MODEL={path}: takes inputs of shape {shape}, the data {dataset.name} has "
                        f"{dataset.input_shape}")
    if model.output_shape[-1] != dataset.num_classes:
        raise UserError(f"MODEL={path}: has {model.output_shape[-1]} outputs, the data {dataset.name} has "
                        f"{dataset.num_classes} classes")


def predict(model, x, batch_size=256):
    """Class predictions of a Keras model (argmax of its output)."""
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)


def load(path):
    """The Keras model in ``path``, once `modelfile.check` has read its architecture as data."""
    modelfile.check(path)
    return _keras_load(path)


def _keras_load(path):
    import tensorflow as tf
    return tf.keras.models.load_model(path, custom_objects=qcfs.CUSTOM_OBJECTS, compile=False)


def test_predictions(model_path, x_test):
    """The ANN's class for every test sample: its accuracies (`stats.ann_scores`) and its paired
    test against an SNN on the same samples come from these."""
    return predict(load(model_path), x_test)
