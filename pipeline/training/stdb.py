"""Spike-based backpropagation (STDB) fine-tuning of a converted network on the TF engine.

Rathi, Srinivasan, Panda & Roy, "Enabling deep spiking neural networks with hybrid conversion and
spike timing dependent backpropagation", ICLR 2020: start from the converted network (ANN
weights, per-layer thresholds) and train it through time with a surrogate gradient for the
spike, cross-entropy on the readout's accumulated membrane, Adam with coupled L2 weight decay.

The spike is ``H(z)`` with ``z = v / theta - 1`` (as in the reference code), so a surrogate is
``dS/dz`` and the engine's gradient for the membrane is ``surrogate / theta`` (and, for a
trainable threshold, ``-surrogate * v / theta**2``).
"""
import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import UserError, engine, frontier, processes, results

SURROGATES = ("linear", "stdb")
# How `train` chooses the network it keeps. Part of a checkpoint's key and of the stages' reuse signatures:
# states and results chosen by an older rule (among trained epochs only) are not reused.
SELECTION = "validation, epoch 0 a candidate"
# ... and with a `CheapestNonInferior` rule (the frontier's epoch choice)
PAIRED_SELECTION = SELECTION + "; the cheapest non-inferior to the ANN (paired), else the most accurate"


@dataclass(frozen=True)
class LinearSurrogate:
    """Piecewise-linear surrogate ``gamma * max(0, 1 - |v/theta - 1|)``: largest at threshold,
    zero beyond one threshold away (Bellec et al. 2018, NeurIPS, "Long short-term memory and
    learning-to-learn in networks of spiking neurons"; ``LinearSpike`` in Rathi et al.'s code)."""
    gamma: float = 0.3
    uses_history = False

    def __call__(self, v, threshold, since=None):
        return self.gamma * tf.nn.relu(1.0 - tf.abs(v / threshold - 1.0))


@dataclass(frozen=True)
class StdbSurrogate:
    """Spike-time-dependent surrogate ``alpha * exp(-beta * dt)``, ``dt`` = timesteps since the
    neuron's last spike (Rathi et al. 2020, eq. 10). A neuron that never fired has its last
    spike at `pipeline.engine.neurons.NEVER_FIRED` (-1000), so its gradient is ~alpha * exp(-10) ~ 0."""
    alpha: float = 0.3
    beta: float = 0.01
    uses_history = True

    def __call__(self, v, threshold, since):
        return self.alpha * tf.exp(-self.beta * since)


@dataclass(frozen=True)
class SpikeFunction:
    """Heaviside spike ``v >= theta`` in the forward pass, the surrogate in the backward pass.

    Gradients go to the membrane and to the threshold (both are explicit inputs, so a trainable
    threshold variable receives its gradient through the input list; nothing is read from a
    closure, which would need ``variables=`` in the gradient function). ``since`` is a constant.
    """
    surrogate: object

    @property
    def uses_history(self):
        return self.surrogate.uses_history

    def __call__(self, v, threshold, since=None):
        surrogate = self.surrogate

        @tf.custom_gradient
        def spike(v, threshold):
            def grad(upstream):
                dz = upstream * surrogate(v, threshold, since)
                d_threshold = tf.reduce_sum(-dz * v / tf.square(threshold))
                return dz / threshold, tf.reshape(d_threshold, tf.shape(threshold))
            return engine.heaviside(v, threshold), grad

        return spike(v, threshold)


@dataclass(frozen=True)
class StdbSettings:
    """STDB training settings (defaults: Rathi et al.'s reference code, issue 4).

    ``weight_decay`` is coupled L2 (added to the gradient, as PyTorch's Adam ``weight_decay``),
    applied to kernels and biases only. ``amsgrad`` as in the reference optimiser.
    Trained thresholds and leaks (DIET-SNN, Rathi & Roy 2021) take their own Adam steps of size
    ``neuron_lr`` on their logarithms: a step then changes every layer by the same fraction
    whatever its threshold's scale, where the weights' learning rate would barely move a
    threshold of order 1.
    ``sparsity`` > 0 adds that weight x the hidden neurons' mean firing rate to the loss
    (`firing_rate`); 0 leaves the loss, and so every number, as without it.
    """
    epochs: int = 10
    learning_rate: float = 1e-4
    weight_decay: float = 5e-4
    batch_size: int = 32
    surrogate: str = "linear"
    gamma: float = 0.3
    alpha: float = 0.3
    beta: float = 0.01
    train_thresholds: bool = False
    train_leak: bool = False
    neuron_lr: float = 1e-2
    amsgrad: bool = True
    seed: int = 0
    sparsity: float = 0.0

    def __post_init__(self):
        if self.surrogate not in SURROGATES:
            raise UserError(f"SURROGATE={self.surrogate!r}: choose one of {', '.join(SURROGATES)}")
        for key, value in (("STDB_EPOCHS", self.epochs), ("batch_size", self.batch_size)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise UserError(f"{key}={value!r}: must be a positive integer")
        if not self.learning_rate > 0:
            raise UserError(f"LR={self.learning_rate!r}: the learning rate must be positive")
        if not self.neuron_lr > 0:
            raise UserError(f"NEURON_LR={self.neuron_lr!r}: the learning rate must be positive")
        if not 0 <= self.sparsity < float("inf"):
            raise UserError(f"SPARSITY={self.sparsity!r}: must be a number >= 0")
        if self.weight_decay < 0:
            raise UserError(f"weight_decay={self.weight_decay!r}: must not be negative")

    def spike_function(self):
        if self.surrogate == "stdb":
            return SpikeFunction(StdbSurrogate(self.alpha, self.beta))
        return SpikeFunction(LinearSurrogate(self.gamma))


@dataclass(frozen=True)
class CheapestNonInferior:
    """An epoch rule (`train`'s ``choice``) for a search for the cheapest network that holds the ANN's accuracy:
    keep the cheapest epoch, the converted network (epoch 0) included, that is non-inferior on the validation
    samples to ``reference_correct`` (the ANN's per-sample correctness there): the paired difference's 95 %
    interval above ``-margin_pp`` (`frontier.non_inferiority`); when no epoch is, the most accurate, as without
    a rule. ``cost(network, result)``: the network's energy on its validation run. Ranking epochs by their
    separate accuracies would keep the most accurate epoch where a cheaper one already holds the ANN's."""
    reference_correct: np.ndarray
    cost: object
    margin_pp: float = frontier.WITHIN_PP

    def judge(self, network, result, labels):
        """What the rule reads of one validation run: its ``validation_cost`` and ``vs_reference``."""
        correct = result.predictions[:, -1] == engine.as_labels(labels)
        return {"validation_cost": float(self.cost(network, result)),
                "vs_reference": frontier.non_inferiority(correct, self.reference_correct, self.margin_pp)}


def rank(accuracy, judged):
    """The order `train` keeps epochs by (lower is better): non-inferior epochs first, the cheapest of them;
    then (or without a rule: ``judged`` empty) the most accurate."""
    if judged and judged["vs_reference"]["non_inferior"]:
        return 0, judged["validation_cost"]
    return 1, -accuracy


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    validation_loss: float
    validation_accuracy: float
    seconds: float
    judged: dict | None = None     # with a `CheapestNonInferior` rule: its `judge` of the epoch


@dataclass
class StdbResult:
    """Outcome of `train`; the network holds the best epoch's weights, thresholds and leaks.

    ``best_epoch``: the epoch with the best validation accuracy (the first of equals), or the one a
    ``choice`` rule keeps, 0 for the converted network itself (no trained epoch beat it: the network is
    the untrained one again); ``validation_after`` is its validation accuracy, ``validation_before`` the
    converted network's, ``judged_before`` the rule's `judge` of it (None without a rule). ``history``
    holds the trained epochs (1, 2, ...). ``peak_memory_mb`` is the process's peak resident memory
    (``ru_maxrss``) when training ended.
    """
    history: list
    best_epoch: int
    validation_before: float
    validation_loss_before: float
    validation_after: float
    thresholds: dict
    leaks: dict
    peak_memory_mb: float
    seconds: float
    settings: StdbSettings = field(default_factory=StdbSettings)
    judged_before: dict | None = None

    def history_dicts(self):
        return [dataclasses.asdict(record) for record in self.history]


def cross_entropy(accumulated, labels, timesteps):
    """Mean cross-entropy of the readout's membrane averaged over the T steps.

    The mean is the reference's sum over T at temperature T, so the loss does not sharpen as T
    grows; the decision (argmax) is the same. With the sum, a few confidently wrong samples
    dominated the loss and STDB lowered it by raising the deep layers' thresholds (fewer spikes,
    smaller logits) while accuracy fell; the mean's near-uniform softmax lets every sample push
    its own class up (docs/stdb.md has the measurements).
    """
    logits = accumulated / float(timesteps)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def firing_rate(network, counts):
    """Mean firing rate of the spiking layers' neurons (spikes per neuron and step) from a batch's
    per-step, per-layer, per-sample counts (``counts``: the engine's (T, input + layers, batch))."""
    neurons = network.neuron_counts()
    names = network.spiking_layer_names
    if all(name in neurons for name in names):
        spikes = tf.reduce_sum(counts[:, 1:, :])
    else:   # a max pool's column counts spikes it passes on, not its own (it has no neurons)
        spikes = tf.reduce_sum(tf.gather(counts, [k + 1 for k, name in enumerate(names) if name in neurons], axis=1))
    total = sum(neurons[name] for name in names if name in neurons)
    return spikes / float(total * network.settings.timesteps) / tf.cast(tf.shape(counts)[2], tf.float32)


def evaluate(network, x, y, choice=None):
    """Accuracy (the network's readout rule), loss (membrane logits) on ``x`` at the network's T, and a
    ``choice`` rule's `judge` of the run (`CheapestNonInferior`; None without a rule)."""
    result = network.simulate(x, y)
    labels = engine.as_labels(y)
    loss = float(cross_entropy(tf.constant(result.logits), tf.constant(labels), network.settings.timesteps).numpy())
    return result.accuracy, loss, None if choice is None else choice.judge(network, result, y)


def train(network, x_train, y_train, x_val, y_val, settings=StdbSettings(), progress=True, checkpoint=None,
          choice=None):
    """Fine-tune ``network`` in place with STDB; keep (restore) the epoch with the best validation accuracy,
    or the one the ``choice`` rule keeps (`CheapestNonInferior`: the cheapest non-inferior to the ANN).

    ``x_val``/``y_val``: held-out samples that choose the epoch (never the test set, which then
    measures the chosen network once). The converted network is a candidate too, as epoch 0: a
    trained epoch is kept only if its validation accuracy is strictly above every earlier
    candidate's, so where training never beats the conversion the untrained network (weights,
    thresholds, leaks) is restored (`SELECTION`). The forward pass is the engine's own time loop (the
    network's coding, pooling, leak, T). Poisson input and dropout masks are drawn per sample
    from (seed, epoch, the sample's index in ``x_train``) (`engine.sample_keys`), so the draws
    do not depend on the batch order or on how many replicas or workers share a batch. The
    validation set is simulated with the network's fixed seed every epoch, so epochs are
    compared on the same input spikes.

    ``checkpoint``: a `Checkpoint` (file, signature of everything the run depends on). The whole
    training state is written to it atomically after every epoch, and a checkpoint with the same
    signature is resumed from its last finished epoch: the run then ends as an uninterrupted one
    would (the same weights, thresholds, leaks, optimiser slots, permutation generator, history).
    """
    x_train = np.asarray(x_train, np.float32)
    y_train = engine.as_labels(y_train)
    if len(x_train) == 0 or len(x_train) != len(y_train):
        raise UserError(f"STDB needs training samples with one label each (got {len(x_train)} samples, "
                        f"{len(y_train)} labels)")
    spike_fn = settings.spike_function()
    weights = network.weight_variables()
    thresholds = network.hidden_thresholds() if settings.train_thresholds else []
    leaks = list(network.leaks.values()) if settings.train_leak else []
    learn = ("thresholds",) * bool(thresholds) + ("leak",) * bool(leaks)
    neuron_params = thresholds + leaks
    is_leak = [k >= len(thresholds) for k in range(len(neuron_params))]
    strategy = tf.distribute.get_strategy()   # the one whose scope the network was built in
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        logs = [tf.Variable(tf.math.log(p)) for p in neuron_params]
        optimizer = tf.keras.optimizers.Adam(settings.learning_rate, amsgrad=settings.amsgrad)
        neuron_optimizer = tf.keras.optimizers.Adam(settings.neuron_lr, amsgrad=settings.amsgrad)
    decay = settings.weight_decay / replicas   # the replicas' gradients are summed: decay once per batch
    masks = zero_masks(network, weights)

    def replica_step(x, labels, keys, batch):
        with tf.GradientTape() as tape:
            out = network.run(x, keys, training=True, spike_fn=spike_fn, learn=learn)
            share = tf.cast(tf.shape(labels)[0], tf.float32) / batch
            loss = cross_entropy(out["logits"], labels, network.settings.timesteps)
            if settings.sparsity > 0:
                loss = loss + settings.sparsity * firing_rate(network, out["counts"])
            loss = loss * share
        grads = tape.gradient(loss, weights + neuron_params)
        optimizer.apply_gradients([((g + decay * w) * (1.0 if m is None else m), w)
                                   for g, w, m in zip(grads, weights, masks)])
        if logs:   # d loss / d log p = p * d loss / d p
            neuron_optimizer.apply_gradients([(g * p, lg) for g, p, lg in
                                              zip(grads[len(weights):], neuron_params, logs)])
        correct = tf.reduce_sum(tf.cast(tf.argmax(out["logits"], axis=1) == labels, tf.float32))
        return loss, correct

    @tf.function
    def step(x, labels, keys):
        """One batch, split across the strategy's replicas (one replica on a CPU or a single GPU)."""
        shards = strategy.experimental_distribute_values_from_function(
            lambda ctx: tuple(part[ctx.replica_id_in_sync_group::ctx.num_replicas_in_sync]
                              for part in (x, labels, keys)))
        batch = tf.cast(tf.shape(labels)[0], tf.float32)
        loss, correct = strategy.run(replica_step, args=(*shards, batch))
        for p, lg, leak in zip(neuron_params, logs, is_leak):
            if leak:   # the neuron model needs 0 < leak <= 1
                lg.assign(tf.minimum(lg, 0.0))
            p.assign(tf.exp(lg))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss, axis=None), strategy.reduce(total, correct, axis=None)

    start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    optimizers = ((optimizer, weights), (neuron_optimizer, logs))
    resumed = checkpoint.load(settings) if checkpoint is not None else None
    if resumed is None:
        acc_before, loss_before, judged_before = evaluate(network, x_val, y_val, choice)
        history, best_epoch, best_state = [], 0, _snapshot(network)
    else:
        acc_before, loss_before, judged_before, history, best_epoch, best_state = _resume(
            resumed, network, logs, optimizers, rng, strategy)
        if progress:
            print(f"STDB: resuming from {checkpoint.path} after epoch {len(history)} of {settings.epochs}", flush=True)
    for epoch in range(len(history) + 1, settings.epochs + 1):
        tick = time.perf_counter()
        order = rng.permutation(len(x_train))
        batches = [order[i:i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        loss_sum = correct_sum = 0.0
        bar = _bar(len(batches), f"STDB epoch {epoch}/{settings.epochs}", progress)
        for b, idx in enumerate(batches):
            keys = engine.sample_keys(settings.seed, epoch, idx)
            loss, correct = step(tf.constant(x_train[idx]), tf.constant(y_train[idx]), keys)
            loss_sum += float(loss) * len(idx)
            correct_sum += float(correct)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / (b * settings.batch_size + len(idx)):.3f}")
        if bar is not None:
            bar.close()
        val_acc, val_loss, judged = evaluate(network, x_val, y_val, choice)
        record = EpochRecord(epoch, loss_sum / len(x_train), correct_sum / len(x_train), val_loss, val_acc,
                             time.perf_counter() - tick, judged)
        history.append(record)
        if progress:
            print(f"STDB epoch {epoch}: loss {record.loss:.4f}, train {record.train_accuracy:.3f}, "
                  f"validation {val_acc:.3f} ({record.seconds:.0f} s)", flush=True)
        if rank(val_acc, record.judged) < rank(_validation_accuracy(best_epoch, acc_before, history),
                                               history[best_epoch - 1].judged if best_epoch else judged_before):
            best_epoch, best_state = epoch, _snapshot(network)
        if checkpoint is not None:
            checkpoint.save(settings, _state(network, logs, optimizers, rng, acc_before, loss_before, judged_before,
                                             history, best_epoch, best_state))
    _restore(network, best_state)
    return StdbResult(history=history, best_epoch=best_epoch, validation_before=acc_before,
                      validation_loss_before=loss_before,
                      validation_after=_validation_accuracy(best_epoch, acc_before, history),
                      thresholds=network.threshold_values(), leaks=network.leak_values(),
                      peak_memory_mb=processes.peak_memory_mb(), seconds=time.perf_counter() - start, settings=settings,
                      judged_before=judged_before)


def zero_masks(network, weights):
    """Per variable of ``weights``: for a kernel with exact zeros (a pruned one), 1 where it is non-zero,
    else None. STDB multiplies the kernel's gradient (weight decay included) by it, so a pruned weight
    stays exactly zero: Adam moves a weight whose gradient has always been zero by 0 / (0 + eps) = 0."""
    kernels = {id(stage.layer.kernel) for stage in network.graph.weighted}
    return [tf.constant(w.numpy() != 0, w.dtype) if id(w) in kernels and not np.all(w.numpy()) else None
            for w in weights]


def _bar(total, label, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=label, leave=False)


def _validation_accuracy(epoch, acc_before, history):
    """Validation accuracy of ``epoch`` (0: the converted network, before training)."""
    return history[epoch - 1].validation_accuracy if epoch else acc_before


def _snapshot(network):
    return ([w.numpy() for w in network.weight_variables()], network.threshold_values(), network.leak_values())


def _restore(network, state):
    weights, thresholds, leaks = state
    for variable, value in zip(network.weight_variables(), weights):
        variable.assign(value)
    for name, value in thresholds.items():
        network.thresholds[name].assign(value)
    for name, value in leaks.items():
        network.leaks[name].assign(value)


# --------------------------------------------------------------------- checkpoint
@dataclass(frozen=True)
class Checkpoint:
    """Where `train` keeps its state after each epoch, and what a run must match to resume it.

    ``signature``: a JSON-able dict of everything the run depends on beyond `StdbSettings` (the
    model, data, T, coding, samples: the stage decides); a checkpoint made under another signature,
    other settings or another `SELECTION` rule is never resumed (one line says so and training starts
    from epoch 1). One ``.npz`` holds the arrays and a JSON header, written atomically (temp file +
    rename). ``writer``: False for the workers of a cluster other than the chief, who resume from
    the chief's file (results/ on a shared filesystem) and never write it.
    """
    path: Path
    signature: dict
    writer: bool = True

    def _key(self, settings):
        return {"signature": self.signature, "settings": dataclasses.asdict(settings), "selection": SELECTION}

    def load(self, settings):
        """The saved state if the file exists, reads, and was made for this run; else None."""
        path = Path(self.path)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
            header = json.loads(str(arrays.pop("header")))
        except Exception as exc:   # truncated or not ours: start again, the file is rewritten
            print(f"{path}: unreadable STDB checkpoint ({type(exc).__name__}); starting from epoch 1", flush=True)
            return None
        if header.get("key") != json.loads(json.dumps(self._key(settings))):
            print(f"{path}: a checkpoint of other settings; starting from epoch 1", flush=True)
            return None
        return header, arrays

    def save(self, settings, state):
        if not self.writer:
            return
        header, arrays = state
        header = json.dumps({**header, "key": self._key(settings)})

        def write(temp):
            with open(temp, "wb") as f:
                np.savez(f, header=np.array(header), **arrays)
        results.write_atomic_with(self.path, write)

    def remove(self):
        if self.writer:
            Path(self.path).unlink(missing_ok=True)


def _state(network, logs, optimizers, rng, acc_before, loss_before, judged_before, history, best_epoch, best_state):
    """Everything `train` needs to continue after this epoch: (JSON header, named arrays); ``best_state``
    is the converted network's own where ``best_epoch`` is 0."""
    best_weights, best_thresholds, best_leaks = best_state
    arrays = {f"weight_{i}": w.numpy() for i, w in enumerate(network.weight_variables())}
    arrays.update({f"best_weight_{i}": w for i, w in enumerate(best_weights)})
    arrays.update({f"log_{i}": lg.numpy() for i, lg in enumerate(logs)})
    for k, (optimizer, _) in enumerate(optimizers):
        arrays.update({f"optimizer{k}_{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
    header = {"epoch": len(history), "acc_before": acc_before, "loss_before": loss_before,
              "judged_before": judged_before,
              "history": [dataclasses.asdict(r) for r in history], "best_epoch": best_epoch,
              "thresholds": network.threshold_values(), "leaks": network.leak_values(),
              "best_thresholds": best_thresholds, "best_leaks": best_leaks,
              "rng": rng.bit_generator.state}
    return header, arrays


def _resume(saved, network, logs, optimizers, rng, strategy):
    """Put a saved state back (`_state`); returns acc_before, loss_before, judged_before, history, best_epoch,
    best_state."""
    header, arrays = saved
    count = len(network.weight_variables())
    _restore(network, ([arrays[f"weight_{i}"] for i in range(count)], header["thresholds"], header["leaks"]))
    for i, lg in enumerate(logs):
        lg.assign(arrays[f"log_{i}"])
    with strategy.scope():
        for k, (optimizer, variables) in enumerate(optimizers):
            if not variables:
                continue
            optimizer.build(variables)   # creates its slots, then they take the saved values
            for i, v in enumerate(optimizer.variables):
                v.assign(arrays[f"optimizer{k}_{i}"])
    rng.bit_generator.state = header["rng"]
    history = [EpochRecord(**r) for r in header["history"]]
    best_state = ([arrays[f"best_weight_{i}"] for i in range(count)], header["best_thresholds"],
                  header["best_leaks"])
    # a state saved before the epoch rules had no `judged_before` (it chose without a rule)
    return (header["acc_before"], header["loss_before"], header.get("judged_before"), history, header["best_epoch"],
            best_state)


# --------------------------------------------------------------------- export
def foldable(network):
    """Whether the thresholds fold into the weights (`fold_thresholds`): a chain whose weighted layers
    all have neurons. A merge's threshold has no weights to go into and its inputs' units follow
    the thresholds (`network.Network.merge_scales`), a linear layer has no threshold: such a graph
    is exported with its weights as they are and its thresholds kept beside them."""
    graph = network.graph
    return graph.is_chain and all(n.neuron is not None for n in graph.weighted)


def fold_thresholds(network):
    """A copy of the Keras model whose weights carry the thresholds: ``W/theta``, ``b/theta``.

    With unit spikes, a layer with weights ``W`` and threshold ``theta`` and one with ``W/theta``
    and threshold 1 spike identically (the membrane is just divided by ``theta``), so SNN
    Toolbox's single ``v_thresh = 1`` applies; run it with ``normalize = False`` so it does not
    rescale again. Preserved: weights, thresholds (folded), the layer structure (dropout,
    softmax output; use ``softmax_to_relu = True``). Not expressible in the toolbox: a leak < 1
    (its leak is a constant subtraction), linear pooling (its pools spike), the membrane readout
    (it counts output spikes), v(0) != 0, and the signed Poisson rule (it uses |x| / max x).
    So the toolbox reproduces the engine only for a network trained in the INI-compatible mode.
    A graph that is not `foldable` is refused.
    """
    if not foldable(network):
        raise UserError(f"network {network.graph.name!r}: its thresholds do not fold into its weights (a merge or a "
                        "linear layer); export its weights and thresholds as they are")
    folded = tf.keras.models.clone_model(network.model)
    folded.set_weights(network.model.get_weights())
    thresholds = network.threshold_values()
    for stage in network.graph.weighted:
        layer = folded.get_layer(stage.name)
        layer.set_weights([w / thresholds[stage.name] for w in layer.get_weights()])
    return folded


def export_h5(network, path):
    """Write `fold_thresholds` (network) to ``path`` as Keras ``.h5`` (atomically), or the model with its
    weights as they are where the network is not `foldable` (its thresholds then go with the record);
    returns the path."""
    if foldable(network):
        folded = fold_thresholds(network)
    else:
        folded = tf.keras.models.clone_model(network.model)
        folded.set_weights(network.model.get_weights())
    folded.compile("sgd", "categorical_crossentropy")   # the toolbox re-compiles with the saved loss
    with warnings.catch_warnings():  # the toolbox reads Keras .h5, the "legacy" format is the point
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        results.write_atomic_with(path, lambda temp: folded.save(temp, save_format="h5"))
    return Path(path)


_STRATEGY = []


def distribution_strategy():
    """The process's `tf.distribute` strategy, created once, before any other TensorFlow work.

    ``TF_CONFIG`` set (TensorFlow's standard cluster description, one worker per process or
    machine): `tf.distribute.MultiWorkerMirroredStrategy`, every worker running the same stage,
    each global batch split across all workers' replicas and the gradients summed (all-reduce).
    Else more than one GPU visible: `tf.distribute.MirroredStrategy`. Else TF's default strategy:
    one device, the same code path. Collective ops are configured when TF starts, so a stage
    calls this first.
    """
    if not _STRATEGY:
        if os.environ.get("TF_CONFIG"):
            _STRATEGY.append(tf.distribute.MultiWorkerMirroredStrategy())
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            _STRATEGY.append(tf.distribute.MirroredStrategy())
        else:
            _STRATEGY.append(tf.distribute.get_strategy())
    return _STRATEGY[0]


def worker_index(strategy):
    """This process's worker number in a `TF_CONFIG` cluster (0 = the chief, who writes results);
    0 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0
    if resolver.task_type == "chief":
        return 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return int(resolver.task_id) + int(has_chief)


def default_batch_size(network, budget_gb=8.0, floats_per_neuron_step=1.5, largest=32):
    """Largest power-of-two batch (<= ``largest``) whose BPTT activations fit ``budget_gb``.

    ``floats_per_neuron_step``: float32 values the engine keeps per neuron, sample and step for the
    backward pass (the STDB peak memory in docs/data.md).
    """
    neurons = sum(network.neuron_counts().values())
    per_sample_gb = network.settings.timesteps * neurons * floats_per_neuron_step * 4 / 1e9
    batch = largest
    while batch > 1 and batch * per_sample_gb > budget_gb:
        batch //= 2
    return batch
