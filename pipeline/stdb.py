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
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import UserError, processes, results, snn

SURROGATES = ("linear", "stdb")


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
    spike at `snn.NEVER_FIRED` (-1000), so its gradient is ~alpha * exp(-10) ~ 0."""
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
            return snn.heaviside(v, threshold), grad

        return spike(v, threshold)


@dataclass(frozen=True)
class StdbSettings:
    """STDB training settings (defaults: Rathi et al.'s reference code, issue 4).

    ``weight_decay`` is coupled L2 (added to the gradient, as PyTorch's Adam ``weight_decay``),
    applied to kernels and biases only. ``amsgrad`` as in the reference optimiser.
    Trained thresholds and leaks (DIET-SNN, Rathi & Roy 2021) take their own Adam steps of size
    ``neuron_lr`` on their logarithms: a step then changes every layer by the same fraction
    whatever its threshold's scale (0.8 in conv3, 3.1 in conv2 here), where the weights' 1e-4
    would move a threshold of ~3 by 0.003 % per step.
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
        if self.weight_decay < 0:
            raise UserError(f"weight_decay={self.weight_decay!r}: must not be negative")

    def spike_function(self):
        if self.surrogate == "stdb":
            return SpikeFunction(StdbSurrogate(self.alpha, self.beta))
        return SpikeFunction(LinearSurrogate(self.gamma))


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass
class StdbResult:
    """Outcome of `train`; the network holds the best epoch's weights, thresholds and leaks.

    ``best_epoch`` counts from 1 (the reference keeps the best test accuracy among trained
    epochs); ``acc_after`` is that epoch's test accuracy. ``peak_memory_mb`` is the process's
    peak resident memory (``ru_maxrss``) when training ended.
    """
    history: list
    best_epoch: int
    acc_before: float
    loss_before: float
    acc_after: float
    thresholds: dict
    leaks: dict
    peak_memory_mb: float
    seconds: float
    settings: StdbSettings = field(default_factory=StdbSettings)

    def history_dicts(self):
        return [dataclasses.asdict(record) for record in self.history]


def cross_entropy(accumulated, labels, timesteps):
    """Mean cross-entropy of the readout's membrane averaged over the T steps.

    The mean is the reference's sum over T at temperature T, so the loss does not sharpen as T
    grows; the decision (argmax) is the same. Measured at T=28 on the default data: the summed
    logits spread 1.5x as wide as the ANN's, and a few confidently wrong samples dominated the
    loss (test loss 1.90 at 46 % accuracy): STDB lowered it by raising the deep layers'
    thresholds (fewer spikes, smaller logits) while test accuracy fell. The mean's logits are
    ~1/20 of the ANN's, the softmax near uniform: every sample's gradient pushes its own class
    up, and STDB learns more, earlier output evidence (0.46 -> 0.50 with weights, 0.73 with
    thresholds too).
    """
    logits = accumulated / float(timesteps)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def evaluate(network, x, y):
    """Test accuracy (the network's readout rule) and loss (membrane logits) at its T."""
    result = network.simulate(x, y)
    labels = snn.as_labels(y)
    return result.accuracy, float(cross_entropy(tf.constant(result.logits), tf.constant(labels),
                                          network.settings.timesteps).numpy())


def train(network, x_train, y_train, x_test, y_test, settings=StdbSettings(), progress=True):
    """Fine-tune ``network`` in place with STDB; keep (restore) the epoch with the best test accuracy.

    The forward pass is the engine's own time loop (the network's coding, pooling, leak, T),
    with dropout masks per sample and a fresh Poisson draw per batch; the test set is simulated
    with the network's fixed seed every epoch, so epochs are compared on the same input spikes.
    """
    x_train = np.asarray(x_train, np.float32)
    y_train = snn.as_labels(y_train)
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

    def replica_step(x, labels, key, batch):
        with tf.GradientTape() as tape:
            out = network._batch_fn(x, key, training=True, spike_fn=spike_fn, learn=learn)
            share = tf.cast(tf.shape(labels)[0], tf.float32) / batch
            loss = cross_entropy(out["logits"], labels, network.settings.timesteps) * share
        grads = tape.gradient(loss, weights + neuron_params)
        optimizer.apply_gradients([(g + decay * w, w) for g, w in zip(grads, weights)])
        if logs:   # d loss / d log p = p * d loss / d p
            neuron_optimizer.apply_gradients([(g * p, lg) for g, p, lg in
                                              zip(grads[len(weights):], neuron_params, logs)])
        correct = tf.reduce_sum(tf.cast(tf.argmax(out["logits"], axis=1) == labels, tf.float32))
        return loss, correct

    @tf.function
    def step(x, labels, key):
        """One batch, split across the strategy's replicas (one replica on a CPU or a single GPU)."""
        shards = strategy.experimental_distribute_values_from_function(
            lambda ctx: (x[ctx.replica_id_in_sync_group::ctx.num_replicas_in_sync],
                         labels[ctx.replica_id_in_sync_group::ctx.num_replicas_in_sync]))
        batch = tf.cast(tf.shape(labels)[0], tf.float32)
        loss, correct = strategy.run(replica_step, args=(*shards, key, batch))
        for p, lg, leak in zip(neuron_params, logs, is_leak):
            if leak:   # the neuron model needs 0 < leak <= 1
                lg.assign(tf.minimum(lg, 0.0))
            p.assign(tf.exp(lg))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss, axis=None), strategy.reduce(total, correct, axis=None)

    start = time.perf_counter()
    acc_before, loss_before = evaluate(network, x_test, y_test)
    rng = np.random.default_rng(settings.seed)
    history, best, best_state = [], None, None
    for epoch in range(1, settings.epochs + 1):
        tick = time.perf_counter()
        order = rng.permutation(len(x_train))
        batches = [order[i:i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        loss_sum = correct_sum = 0.0
        bar = _bar(len(batches), f"STDB epoch {epoch}/{settings.epochs}", progress)
        for b, idx in enumerate(batches):
            key = tf.constant([settings.seed, epoch * 1_000_003 + b], tf.int64)
            loss, correct = step(tf.constant(x_train[idx]), tf.constant(y_train[idx]), key)
            loss_sum += float(loss) * len(idx)
            correct_sum += float(correct)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / (b * settings.batch_size + len(idx)):.3f}")
        if bar is not None:
            bar.close()
        test_acc, test_loss = evaluate(network, x_test, y_test)
        record = EpochRecord(epoch, loss_sum / len(x_train), correct_sum / len(x_train), test_loss, test_acc,
                             time.perf_counter() - tick)
        history.append(record)
        if progress:
            print(f"STDB epoch {epoch}: loss {record.loss:.4f}, train {record.train_accuracy:.3f}, "
                  f"test {test_acc:.3f} ({record.seconds:.0f} s)", flush=True)
        if best is None or test_acc > best.test_accuracy:
            best, best_state = record, _snapshot(network)
    _restore(network, best_state)
    return StdbResult(history=history, best_epoch=best.epoch, acc_before=acc_before, loss_before=loss_before,
                      acc_after=best.test_accuracy, thresholds=network.threshold_values(),
                      leaks=network.leak_values(), peak_memory_mb=processes.peak_memory_mb(),
                      seconds=time.perf_counter() - start, settings=settings)


def _bar(total, label, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=label, leave=False)


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


# --------------------------------------------------------------------- export
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
    """
    folded = tf.keras.models.clone_model(network.model)
    folded.set_weights(network.model.get_weights())
    thresholds = network.threshold_values()
    for stage in network.graph.weighted:
        layer = folded.get_layer(stage.name)
        layer.set_weights([w / thresholds[stage.name] for w in layer.get_weights()])
    return folded


def export_h5(network, path):
    """Write `fold_thresholds` (network) to ``path`` as Keras ``.h5`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix=".h5", dir=path.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings():  # the toolbox reads Keras .h5, the "legacy" format is the point
            warnings.filterwarnings("ignore", message=".*HDF5 file.*")
            folded = fold_thresholds(network)
            folded.compile("sgd", "categorical_crossentropy")   # the toolbox re-compiles with the saved loss
            folded.save(temp, save_format="h5")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def distribution_strategy():
    """`tf.distribute.MirroredStrategy` over the GPUs when more than one is visible (the batch is
    split, gradients summed), else TF's default strategy: one device, the same code path."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def default_batch_size(network, budget_gb=8.0, floats_per_neuron_step=1.5, largest=32):
    """Largest power-of-two batch (<= ``largest``) whose BPTT activations fit ``budget_gb``.

    The engine keeps about 1.5 float32 values per neuron per sample and step for the backward
    pass (measured on the width-64 ESCAPE-NET, ~582 k neurons: ~3.4 MB per sample-step, so
    batch 32 at T=28 peaks near 4 GB and at T=100 near 11 GB).
    """
    neurons = sum(network.neuron_counts().values())
    per_sample_gb = network.settings.timesteps * neurons * floats_per_neuron_step * 4 / 1e9
    batch = largest
    while batch > 1 and batch * per_sample_gb > budget_gb:
        batch //= 2
    return batch


# --------------------------------------------------------------------- the stdb / stdb-sweep stages
DEFAULT_NTRAIN = 256      # sized so `make stdb T=28` fits ~20 min on a 2-core CPU (README)
DEFAULT_N = 100
CALIBRATION_SAMPLES = 100
TABLE3_COLUMNS = ("ann_accuracy", "timesteps", "leak", "snn_accuracy_before", "snn_accuracy", "best_epoch")


def stage_settings(settings, seed=0, **changes):
    """StdbSettings from the CLI settings (STDB_EPOCHS, LR, SURROGATE, TRAIN_THRESHOLDS, TRAIN_LEAK,
    NEURON_LR), ``changes`` overriding them; refuses bad ones."""
    chosen = dict(epochs=settings.stdb_epochs, learning_rate=settings.lr, surrogate=settings.surrogate,
                  train_thresholds=settings.train_thresholds, train_leak=settings.train_leak,
                  neuron_lr=settings.neuron_lr, seed=seed)
    return StdbSettings(**{**chosen, **changes})


def _signature(ws, settings, n, ntrain):
    """What a finished stdb_T<T>.json must match to be reused by a sweep."""
    return {"model_sha256": ws.model_sha256, "num_samples": n, "ntrain": ntrain, "leak": settings.leak,
            "surrogate": settings.surrogate, "lr": settings.lr, "stdb_epochs": settings.stdb_epochs,
            "thresholds_mode": settings.thresholds, "coding": settings.coding,
            "train_thresholds": settings.train_thresholds, "train_leak": settings.train_leak,
            "neuron_lr": settings.neuron_lr}


def _toolbox_check(ws, export_path, timesteps, n, coding):
    """Run the exported (threshold-folded) network on SNN Toolbox INI with normalize = False."""
    from pipeline import configs, convert, toolbox, workspace
    batch = workspace.batch_size_for(n)
    paths = convert.toolbox_paths(ws, batch)
    link = paths["path_wd"] / export_path.name
    link.unlink(missing_ok=True)
    os.symlink(export_path.resolve(), link)
    sha = results.file_sha256(export_path)
    paths.update(filename_ann=link.stem, log_dir_of_current_run=paths["path_wd"] / f"log_stdb_m{sha[:12]}_b{batch}")
    config = configs.render(f"{ws.run}_stdb", timesteps, n, batch, paths, seed=ws.record["seed"],
                            overrides={("tools", "normalize"): False,
                                       ("input", "poisson_input"): coding == "poisson"})
    run = toolbox.run(configs.validate(config), progress=True)
    return run.accuracy, str(config)


def run_stdb(settings, ws, timesteps):
    """Convert, fine-tune with STDB at `timesteps`, export, check on the toolbox; write stdb_T<T>.json."""
    from pipeline import convert, data, plots, workspace
    start = time.perf_counter()
    n = workspace.check_num_samples(settings.num_samples or min(DEFAULT_N, len(ws.dataset.y_test)), ws.dataset)
    ntrain = min(settings.ntrain or DEFAULT_NTRAIN, len(ws.dataset.y_train))
    seed = int(ws.record["seed"])
    train_idx = data.balanced_subset(ws.dataset.y_train, ntrain, seed)
    x_train, y_train = ws.dataset.x_train[train_idx], ws.dataset.y_train[train_idx]
    x_test, y_test = ws.dataset.x_test[:n], ws.dataset.y_test[:n]
    stdb_settings = stage_settings(settings, seed)

    ann_same, ann_test = convert.ann_accuracies(ws.model.path, ws.dataset.x_test, ws.dataset.y_test, n)
    engine_settings = snn.SnnSettings(timesteps=timesteps, leak=settings.leak, coding=settings.coding,
                                      seed=seed, batch_size=stdb_settings.batch_size)
    with distribution_strategy().scope():   # the network's variables live on every replica
        network, source = workspace.converted_network(ws, engine_settings, settings.thresholds,
                                                      ws.dataset.x_train[:CALIBRATION_SAMPLES])
        print(f"STDB at T={timesteps}: {ntrain} training samples, {n} test samples, {source}")
        outcome = train(network, x_train, y_train, x_test, y_test, stdb_settings, progress=True)
        final = network.simulate(x_test, y_test)

    export_path = ws.dir / f"stdb_T{timesteps}.h5"
    export_h5(network, export_path)
    toolbox_accuracy, toolbox_config = _toolbox_check(ws, export_path, timesteps, n, settings.coding)
    per_epoch = [record.seconds for record in outcome.history]
    record = {
        "stage": "stdb", "simulator": "engine", "timesteps": timesteps, "num_samples": n,
        "ann_accuracy": ann_same, "ann_accuracy_test": ann_test,
        "snn_accuracy_before": outcome.acc_before, "snn_accuracy": outcome.acc_after,
        "improvement": outcome.acc_after - outcome.acc_before,
        "accuracy_per_timestep": [float(a) for a in final.accuracy_per_timestep],
        "best_epoch": outcome.best_epoch, "leak": settings.leak, "surrogate": settings.surrogate,
        "learning_rate": settings.lr, "stdb_epochs": settings.stdb_epochs, "ntrain": ntrain,
        "train_thresholds": settings.train_thresholds, "train_leak": settings.train_leak,
        "neuron_lr": settings.neuron_lr,
        "thresholds_mode": settings.thresholds, "threshold_source": source,
        "coding": settings.coding, "poisson_rule": engine_settings.poisson_rule,
        "pooling": engine_settings.pooling, "readout": engine_settings.readout,
        "initial_membrane": engine_settings.initial_membrane,
        "history": outcome.history_dicts(), "seconds_per_epoch": float(np.mean(per_epoch)),
        "peak_memory_mb": outcome.peak_memory_mb, "wall_seconds": time.perf_counter() - start,
        "thresholds": outcome.thresholds, "leaks": outcome.leaks,
        "exported_model": str(export_path), "exported_folded": True,
        "toolbox_export_accuracy": toolbox_accuracy,
        "toolbox_export_note": "SNN Toolbox INI on the exported .h5 (thresholds folded, normalize = False): "
                               "its pools spike, it counts output spikes and uses its own Poisson rule, "
                               "so it differs from the engine's linear pools and membrane readout",
        "config": toolbox_config, "signature": _signature(ws, settings, n, ntrain),
        "dataset": {"name": ws.dataset.name, "sha256": ws.dataset.sha256},
        "model": {"path": str(ws.model.path), "sha256": ws.model_sha256},
        "seed": seed, "versions": results.versions(),
    }
    results.write_json(ws.dir / f"stdb_T{timesteps}.json", record)
    plots.stdb_curves(ws.dir / f"stdb_T{timesteps}_curves.png", record)
    return record


def print_rows(records):
    print(f"\n  {'T':>5} {'ANN':>7} {'SNN before':>11} {'STDB':>7} {'best epoch':>11} {'toolbox(export)':>16}"
          f" {'s/epoch':>8} {'peak MB':>8}")
    for r in records:
        print(f"  {r['timesteps']:>5} {r['ann_accuracy']:>7.4f} {r['snn_accuracy_before']:>11.4f} "
              f"{r['snn_accuracy']:>7.4f} {r['best_epoch']:>11} {r['toolbox_export_accuracy']:>16.4f} "
              f"{r['seconds_per_epoch']:>8.0f} {r['peak_memory_mb']:>8.0f}")


def main(settings):
    """`make stdb T=28`: one fine-tuning run."""
    from pipeline import workspace
    if settings.timesteps is None:
        raise UserError("T is required: make stdb T=28")
    stage_settings(settings)          # refuse bad settings before any work
    snn.SnnSettings(timesteps=settings.timesteps, leak=settings.leak, coding=settings.coding)
    ws = workspace.prepare(settings)
    record = run_stdb(settings, ws, settings.timesteps)
    print_rows([record])
    print(f"  STDB changed accuracy by {record['improvement']:+.4f} (before {record['snn_accuracy_before']:.4f}, "
          f"after {record['snn_accuracy']:.4f}); -> {ws.dir / f'stdb_T{settings.timesteps}.json'}")
    return record


def sweep_main(settings):
    """`make stdb-sweep TS="..."`: Table 3, one STDB run per T; finished runs are reused."""
    import csv
    import io
    from pipeline import workspace
    if not settings.timesteps_list:
        raise UserError("TS is required: make stdb-sweep TS=\"5 10 15 20 25 28 35 50 75 100\"")
    stage_settings(settings)
    snn.SnnSettings(timesteps=max(settings.timesteps_list), leak=settings.leak, coding=settings.coding)
    ws = workspace.prepare(settings)
    n = settings.num_samples or min(DEFAULT_N, len(ws.dataset.y_test))
    ntrain = min(settings.ntrain or DEFAULT_NTRAIN, len(ws.dataset.y_train))
    records = []
    for t in sorted(set(settings.timesteps_list)):
        path = ws.dir / f"stdb_T{t}.json"
        old = results.read_json(path) if path.exists() and not settings.force else None
        if old is not None and old.get("signature") == _signature(ws, settings, n, ntrain):
            records.append(old)
        else:
            records.append(run_stdb(settings, ws, t))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE3_COLUMNS)
    writer.writerows([[r[c] for c in TABLE3_COLUMNS] for r in records])
    results.write_atomic(ws.dir / "table3.csv", buffer.getvalue())
    trained = ["weights"] + ["thresholds"] * settings.train_thresholds + ["leaks"] * settings.train_leak
    lines = [f"**Table 3. ANN to SNN + STDB** ({n} test samples, {ntrain} training samples, "
             f"{settings.stdb_epochs} epochs, {settings.surrogate} surrogate, {settings.coding} input, "
             f"{', '.join(trained)} trained, "
             "engine with linear pools and membrane readout)", "",
             "| ANN Accuracy | Timesteps | Leak | SNN only Accuracy | SNN STDB Accuracy | Best Epoch |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['ann_accuracy']:.4f} | {r['timesteps']} | {r['leak']} | {r['snn_accuracy_before']:.4f} | "
              f"{r['snn_accuracy']:.4f} | {r['best_epoch']} |" for r in records]
    results.write_atomic(ws.dir / "table3.md", "\n".join(lines) + "\n")
    print_rows(records)
    print(f"  -> {ws.dir / 'table3.md'}")
    return records
