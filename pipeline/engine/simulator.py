"""The engine's simulator: a `pipeline.network` description run on TensorFlow, step by step or fast.

`SpikingNetwork` describes a trained Keras model (`network.describe`) and uses the Keras layers'
own weight variables (nothing is copied, so training the engine trains the Keras model):

- weighted layers: integrate-and-fire neurons, ``v = leak * v + I``, a spike when
  ``v >= theta``, reset by subtraction (Rueckauer et al. 2017; Rathi et al. 2020). Spikes are
  unit events; the layer's threshold carries the scale of the ANN activation (for a layer that
  absorbs a QCFS activation, ``lambda_k / lambda_{k-1}``; simulate QCFS with
  ``initial_membrane=0.5`` for its v(0) = theta/2).
- the readout accumulates its input current without spiking (``readout="membrane"``, the logit
  STDB trains on) or spikes and is read by spike counts (``"spike_count"``, SNN Toolbox's rule;
  no output spike = undecided = wrong).
- average pools are linear unless ``pooling="spiking"`` (INI's pool neurons, threshold 1);
  dropout multiplies by a mask drawn once per sample and kept for all timesteps (training only).

Each timestep runs the whole network, layer after layer, so a spike reaches the readout in the
step it is made (INI's order): `SpikingNetwork.run` is that time loop, one batch at a time, each
neuron layer updated by `neurons.if_step`, what is recorded asked for with a `Recording`, T given
per call. ``simulate(fast=True)`` computes the same run layer by layer instead
(`SpikingNetwork._fast_batch`, with the compiled kernels of `pipeline.engine.kernels`).
"""
import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline import UserError, modelfile, network
from pipeline.engine import kernels
from pipeline.engine.coding import (batch_key, delta_input, delta_levels, input_spikes, padded_batch,
                                   stateless_uniform)
from pipeline.engine.neurons import NEVER_FIRED, IFParams, IFState, _scale, heaviside, if_step
from pipeline.network import CONSTANT_CODINGS, POOL_THRESHOLD, Neurons

FAST_FRAMES = 100       # fast simulation: (sample x step) frames per chunk: small keeps the membranes in cache
WEIGHTED, POOL, MAXPOOL, FLATTEN, RESHAPE, DROPOUT, ADD, CONCAT = (
    network.Weighted.kind, network.AvgPool2d.kind, network.MaxPool2d.kind, network.Flatten.kind,
    network.Reshape.kind, network.Dropout.kind, network.Add.kind, network.Concatenate.kind)


@dataclass(frozen=True)
class SnnSettings(Neurons):
    """How the spiking network is simulated: the neuron choices (`network.Neurons`) plus T, the
    seed of the input draws and the batch size (weights and thresholds live in `SpikingNetwork`)."""
    timesteps: int = 28
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self):
        if not isinstance(self.timesteps, (int, np.integer)) or self.timesteps <= 0:
            raise UserError(f"T={self.timesteps!r}: timesteps must be a positive integer")
        super().__post_init__()
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size <= 0:
            raise UserError(f"batch_size={self.batch_size!r}: must be a positive integer")

    @property
    def neurons(self):
        return Neurons.of(self)

    @classmethod
    def ini_compatible(cls, timesteps, coding="analog", **changes):
        """The INI simulator's semantics: no leak, spiking pools, toolbox Poisson rule, spike-count readout."""
        return cls(timesteps=timesteps, coding=coding, poisson_rule="toolbox", readout="spike_count",
                   pooling="spiking", leak=1.0, initial_membrane=0.0, **changes)


def load_keras(path):
    """Load a trained Keras ``.h5`` for the engine (no compile: the engine never uses Keras' loss), once
    `modelfile.check` has read its architecture as data."""
    modelfile.check(path)
    try:
        return tf.keras.models.load_model(str(path), compile=False)
    except (OSError, IOError, ValueError) as error:
        raise UserError(f"{path}: cannot load the Keras model ({error})") from None


def _current(stage, h, kernel, bias=None):
    """Synaptic current of a weighted layer, computed with the very ops Keras (and INI) use."""
    if isinstance(stage, network.Conv2d):
        out = stage.layer.convolution_op(h, kernel)
    else:
        out = tf.matmul(h, kernel)
    if bias is not None:
        out = tf.nn.bias_add(out, bias)
    return out


def _layer_weights(stage):
    layer = stage.layer
    return [layer.kernel] + ([layer.bias] if stage.use_bias else [])


def _avg_pool(stage, h):
    return tf.nn.avg_pool2d(h, stage.kernel_size, stage.stride, stage.padding.upper())


def _gated_max_pool(stage, counts, h):
    """A max pool's output spikes (`network.MaxPool2d`): per window, the spikes ``h`` of the input with
    the most spikes so far (``counts``, this step's included) pass, with INI's very ops (first in
    row-major order on ties); windows do not overlap, so the gate is 0 or 1."""
    window, stride, padding = stage.kernel_size, stage.stride, stage.padding.upper()
    _, chosen = tf.nn.max_pool_with_argmax(counts, window, stride, padding, include_batch_in_index=True)
    gate = tf.scatter_nd(tf.reshape(chosen, (-1, 1)), tf.ones(tf.size(chosen)),
                         tf.reshape(tf.size(h, out_type=tf.int64), [1]))
    return tf.nn.max_pool2d(h * tf.reshape(gate, tf.shape(h)), window, stride, padding)


def _merge(stage, values, scales):
    """An `Add`'s sum or a `Concatenate`'s stack of ``values``, each times its scale (the first's is 1:
    left out, so a merge of equal units does no multiplication)."""
    scaled = [values[0]] + [v * tf.cast(c, v.dtype) for v, c in zip(values[1:], scales[1:])]
    return tf.add_n(scaled) if stage.kind == ADD else tf.concat(scaled, axis=-1)


def _pool_geometry(stage):
    """`_avg_pool` for `kernels.scan`: window, strides, TF's top/left padding, output size."""
    (ph, pw), (sh, sw), (oh, ow) = stage.kernel_size, stage.stride, stage.output_shape[:2]
    top, left = stage.pads()
    return ph, pw, sh, sw, top, left, oh, ow


@dataclass(frozen=True)
class Recording:
    """What `SpikingNetwork.run` keeps besides the logits, the readout and the spike counts per step:
    ``totals``, every neuron's spike total; ``trains``, the spike trains of these rows of the batch;
    ``peaks``, every weighted layer's largest input current per step and sample (threshold calibration)."""
    totals: bool = False
    trains: tuple = ()
    peaks: bool = False


@dataclass
class SimulationResult:
    """What one inference run measured; arrays are NumPy, samples first.

    ``logits``: accumulated input current of the readout layer (the STDB logit), (N, C).
    ``outputs``: the readout the decision uses after every step (cumulative current or
    cumulative output spike counts), (N, T, C). ``predictions``: (N, T), -1 = undecided.
    ``layer_names`` / ``spikes_per_timestep``: spike counts per step, summed over neurons and
    samples, (T, L) int64; column ``"input"`` counts the input events (Poisson and rate: per step; delta:
    all at the first step; 0 for analog input).
    ``neuron_totals``: per layer, spikes per neuron summed over samples and time. A max pool has no
    neurons but counts as a layer here (after the layer it reads): the spikes its gate passes on.
    ``recorded``: per layer, per-neuron totals of the ``record`` samples, (R, ...).
    ``trains``: per layer, spike trains of the ``record`` samples, bool (R, T, ...), if asked.
    ``stage_seconds``: fast simulation only, wall time per part (``"conv2 current"``,
    ``"conv2+pool2 scan"``, ...), summed over batches.
    """
    logits: np.ndarray
    outputs: np.ndarray
    predictions: np.ndarray
    layer_names: tuple
    spikes_per_timestep: np.ndarray
    neuron_totals: dict
    recorded: dict
    trains: dict
    seconds: float
    accuracy: float | None = None
    accuracy_per_timestep: np.ndarray | None = None
    stage_seconds: dict | None = None

    @property
    def spikes_per_layer(self):
        """Total spikes per layer over the whole run."""
        return dict(zip(self.layer_names, self.spikes_per_timestep.sum(axis=0).tolist()))


class SpikingNetwork:
    """The engine running one converted network: ``graph`` (`network.describe` of the Keras model).

    ``thresholds`` maps weighted-layer names to thresholds (missing ones are 1.0, or
    `network.qcfs_thresholds` for a layer that feeds a QCFS activation). All thresholds
    and per-layer leaks are `tf.Variable`s so STDB can train them; pools keep threshold 1.
    """

    def __init__(self, model, thresholds=None, settings=SnnSettings(), leaks=None):
        self.model = model
        self.settings = settings
        self.graph = network.describe(model, thresholds, settings.neurons, leaks)
        self.stages = self.graph.nodes
        self.thresholds = {n: tf.Variable(float(v), name=f"{n}_threshold")
                           for n, v in self.graph.thresholds().items()}
        self.leaks = {n: tf.Variable(float(v), name=f"{n}_leak") for n, v in self.graph.leaks().items()}
        self._compiled_loop = tf.function(self._time_loop)

    # ----------------------------------------------------------------- views and variables
    def with_settings(self, **changes):
        """The same network (shared Keras weights, current thresholds) simulated differently."""
        settings = dataclasses.replace(self.settings, **changes)
        leaks = None if "leak" in changes else self.leak_values()
        return SpikingNetwork(self.model, self.threshold_values(), settings, leaks)

    def threshold_values(self):
        return {n: float(v.numpy()) for n, v in self.thresholds.items()}

    def describe(self):
        """The network as it is now: `graph` with the current (possibly trained) thresholds and leaks."""
        return self.graph.with_neurons(self.threshold_values(), self.leak_values())

    def leak_values(self):
        return {n: float(v.numpy()) for n, v in self.leaks.items()}

    def weight_variables(self):
        """Kernels and biases of the weighted layers (the Keras model's own variables)."""
        return [w for stage in self.graph.weighted for w in _layer_weights(stage)]

    def hidden_thresholds(self):
        return [self.thresholds[s.name] for s in self.graph.calibrated() if not s.readout]

    @property
    def spiking_layer_names(self):
        """Layers whose spikes are counted, in order (after ``"input"``)."""
        return tuple(s.name for s in self._recorded())

    def neuron_counts(self):
        """Neurons per weighted, pooling (spiking or not) and add node, in order."""
        return {s.name: s.neurons for s in self.stages if s.kind in (WEIGHTED, POOL, ADD)}

    @property
    def num_classes(self):
        return self.graph.num_classes

    def _stateful(self):
        return list(self.graph.stateful())

    def _spikes(self, stage):
        return self.graph.spikes(stage)

    def _recorded(self):
        """Nodes whose spikes are recorded, in order: those with spiking neurons, and max pools (no neurons:
        the spikes their gate passes on are recorded as a layer's, for the energy model to count)."""
        stateful = self._stateful()
        return [st for st in self.stages if st.kind == MAXPOOL or (st in stateful and self._spikes(st))]

    # ----------------------------------------------------------------- inference
    def simulate(self, x, y=None, record=(), trains=False, progress=False, input_frames=None, fast=False,
                 sparse=True, timesteps=None):
        """Run the network on ``x`` batch by batch; decisions per timestep, spike counts per layer.

        ``y``: integer labels or one-hot rows (optional; gives the accuracies). ``record``: sample
        indices whose per-neuron totals (and with ``trains`` their full spike trains) are kept.
        Poisson draws depend on the seed, the batch size and the order of the samples.
        ``input_frames``: a function ``(x_batch, T) -> (T, batch, ...)`` array that replaces the
        coding, e.g. `toolbox_poisson_replay` (then the batch size must divide the sample count).
        ``fast``: simulate layer by layer (`_fast_batch`): same dynamics and decisions, no spike
        trains; ``sparse`` then computes the currents of spike inputs event by event.
        ``timesteps``: T of this run (default: the settings').
        """
        s = self.settings
        T = int(timesteps or s.timesteps)
        if fast and trains:
            raise UserError("fast simulation keeps no spike trains: simulate with fast=False to record them")
        x = np.asarray(x, np.float32)
        record = [int(i) for i in record]
        if any(i < 0 or i >= len(x) for i in record):
            raise UserError(f"record indices {record} outside the {len(x)} samples simulated")
        if input_frames is not None and len(x) % s.batch_size:
            raise UserError(f"replayed input needs whole batches: batch size {s.batch_size} does not divide "
                            f"{len(x)} samples")
        names = ("input",) + self.spiking_layer_names
        start_time = time.perf_counter()
        logits, outputs, counts = [], [], np.zeros((T, len(names)), np.int64)
        totals, rec_totals, rec_trains = {}, {n: [] for n in names[1:]}, {n: [] for n in names[1:]}
        stage_seconds = {} if fast else None
        starts = range(0, len(x), s.batch_size)
        for batch, start in enumerate(progress_bar(starts, progress, "simulate")):
            xb, n = padded_batch(x[start:start + s.batch_size], s.batch_size)
            rows = [i - start for i in record if start <= i < start + n]
            frames = None if input_frames is None else tf.constant(input_frames(xb, T), tf.float32)
            if fast:
                out = self._fast_batch(xb, batch_key(s.seed, batch), T, frames, sparse, stage_seconds)
            else:
                kept = Recording(totals=True, trains=tuple(rows) if trains and record else ())
                out = self.run(tf.constant(xb), batch_key(s.seed, batch), T, record=kept, frames=frames)
            logits.append(np.asarray(out["logits"])[:n])
            outputs.append(np.transpose(np.asarray(out["readout"]), (1, 0, 2))[:n])
            counts += np.asarray(out["counts"])[:, :, :n].sum(axis=2).round().astype(np.int64)
            for name, total in zip(names[1:], out["totals"]):
                total = np.asarray(total)[:n]
                totals[name] = totals.get(name, 0) + total.sum(axis=0, dtype=np.int64)
                rec_totals[name].append(total[rows].astype(np.int64))
            for name, train in zip(names[1:], out.get("trains", [])):
                rec_trains[name].append(np.swapaxes(train.numpy(), 0, 1))
        outputs = np.concatenate(outputs)
        result = SimulationResult(
            logits=np.concatenate(logits), outputs=outputs, predictions=decide(outputs, s.readout),
            layer_names=names, spikes_per_timestep=counts, neuron_totals=totals,
            recorded={n: np.concatenate(v) for n, v in rec_totals.items()} if record else {},
            trains={n: np.concatenate(v) for n, v in rec_trains.items()} if trains and record else {},
            seconds=time.perf_counter() - start_time, stage_seconds=stage_seconds)
        if y is not None:
            labels = as_labels(y)
            hits = result.predictions == labels[:, None]
            result.accuracy_per_timestep = hits.mean(axis=0)
            result.accuracy = float(result.accuracy_per_timestep[-1])
        return result

    # ----------------------------------------------------------------- the time loop
    def run(self, x, key, timesteps=None, *, training=False, spike_fn=heaviside, record=Recording(), learn=(),
            frames=None):
        """One batch ``x`` through T steps (``timesteps``, default: the settings'), the engine's time loop;
        compiled once per batch shape, T and recording. Within a step the layers update in order,
        each neuron layer by `if_step`.

        ``key``: the batch's input draws (`coding.batch_key`, `coding.sample_keys`). ``training`` turns
        dropout on; ``spike_fn`` is `heaviside` or an STDB spike function; ``learn`` names what besides the
        weights gets gradients (``"thresholds"``, ``"leak"``); ``frames`` (T, batch, ...) replaces the input
        coding. Returns ``logits`` (batch, C): the readout's accumulated current; ``readout`` (T, batch, C):
        what decides after each step; ``counts`` (T, layers, batch): spikes per step, the input's first;
        and what ``record`` asks for: ``totals`` (per layer (batch, ...)), ``trains`` (per layer
        (T, rows, ...), bool), ``peaks`` (T, weighted layers, batch).
        """
        rows = tf.constant(record.trains, tf.int32) if record.trains else None
        return self._compiled_loop(x, key, int(timesteps or self.settings.timesteps), training, spike_fn,
                                   record.totals, bool(record.trains), rows, record.peaks, tuple(learn), frames)

    def _time_loop(self, x, key, T, training, spike_fn, collect, trains, rows, probe, learn, frames):
        """`run`'s loop (traced by `tf.function`): ``collect``, ``trains`` with ``rows`` and ``probe``
        are `Recording`'s totals, trains and peaks."""
        s = self.settings
        graph = self.graph
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]  # static shapes: lean BPTT
        history = getattr(spike_fn, "uses_history", False)
        stateful = self._stateful()
        neurons = [st for st in stateful if self._spikes(st)]
        masks = self._dropout_masks(key, batch) if training else {}
        analog = s.coding in CONSTANT_CODINGS and frames is None
        # Weights, thresholds and leaks are read once, outside the loop: BPTT then keeps no
        # per-step copies of them.
        weights = self._weights(learn)
        params = {st.name: IFParams(self._threshold(st, learn), self._leak(st, learn), spike_fn,
                                    "thresholds" in learn and st.name in self.thresholds,
                                    "leak" in learn and st.name in self.leaks) for st in stateful}
        scales = self._merge_scales(learn)

        def current(stage, values):
            """The node's output without neurons (its neurons' input current): a weighted layer's synaptic
            current, a pool, a merge, or a reshape/dropout of what it reads."""
            if stage.kind == WEIGHTED:
                return _current(stage, values[0], *weights[stage.name])
            if stage.kind in (ADD, CONCAT):
                return _merge(stage, values, scales[stage.name])
            return self._apply_passive([stage], values[0], masks)

        # Values that do not change over time (a constant input, what is computed from it alone before the
        # first neurons), and the constant current of the neurons that read them, are computed once.
        held, held_current = {}, {}
        if analog:
            held[network.INPUT] = self._held_input(x)
            for st in self.stages:
                sources = graph.inputs_of(st)
                if st.kind == MAXPOOL or not all(src in held for src in sources):
                    continue
                value = current(st, [held[src] for src in sources])
                (held_current if st in stateful else held)[st.name] = value
            held_events = self._held_events(x)

        def full(stage, value):
            return tf.fill(tf.concat([[batch], stage.output_shape], 0), value)

        state = {
            "v": [full(st, s.initial_membrane * params[st.name].threshold) for st in neurons],
            "acc": tf.zeros([batch, self.num_classes]),
            "out_count": tf.zeros([batch, self.num_classes]),
            "readout": tf.TensorArray(tf.float32, size=T),
            "counts": tf.TensorArray(tf.float32, size=T),
        }
        gated = [st for st in self.stages if st.kind == MAXPOOL]
        if gated:   # a max pool's input spike counts so far (its gate)
            state["gate_counts"] = [tf.zeros(tf.concat([[batch], st.input_shape], 0)) for st in gated]
        if history:
            state["last"] = [full(st, NEVER_FIRED) for st in neurons]
        recorded = self._recorded()   # the neurons' spikes and what max pools pass on
        if collect:
            state["totals"] = [full(st, 0.0) for st in recorded]
        if trains:
            state["trains"] = [tf.TensorArray(tf.bool, size=T) for _ in recorded]
        if probe:
            state["probe"] = tf.TensorArray(tf.float32, size=T)

        def body(t, old):
            new = {key_: old[key_] for key_ in ("acc", "out_count", "readout", "counts")}
            for key_ in ("v", "last", "totals", "trains", "gate_counts"):
                if key_ in old:
                    new[key_] = []
            now = tf.cast(t, tf.float32)
            values = dict(held)
            if analog:   # a delta input's level crossings all happen at the first step
                layer_counts = [held_events * tf.cast(tf.equal(t, 0), tf.float32)]
            else:
                values[network.INPUT] = tf.stop_gradient(self._encode(x, key, t) if frames is None else frames[t])
                layer_counts = [_per_sample(tf.cast(values[network.INPUT] != 0, tf.float32))]
            peaks = []
            j = 0

            def keep(spikes):
                """Record a `recorded` node's spikes this step (its index: the layers counted so far)."""
                k = len(layer_counts) - 1
                if collect:
                    new["totals"].append(old["totals"][k] + spikes)
                if trains:
                    new["trains"].append(old["trains"][k].write(t, tf.gather(spikes, rows) > 0))
                layer_counts.append(_per_sample(spikes))
            for stage in self.stages:
                if stage.name in held:
                    continue
                inputs = [values[src] for src in graph.inputs_of(stage)]
                if stage.kind == MAXPOOL:
                    counts = old["gate_counts"][len(new["gate_counts"])] + inputs[0]
                    new["gate_counts"].append(counts)
                    values[stage.name] = _gated_max_pool(stage, counts, inputs[0])
                    keep(values[stage.name])
                    continue
                if stage.name in held_current:
                    i_in = held_current[stage.name]
                else:
                    i_in = current(stage, inputs)
                if stage not in stateful:
                    values[stage.name] = i_in
                    continue
                if stage.name in self.thresholds and probe:
                    peaks.append(_per_sample(i_in, tf.reduce_max))
                if stage.readout:
                    new["acc"] = new["acc"] + i_in
                    if not self._spikes(stage):
                        break
                spikes, state_ = if_step(i_in, IFState(old["v"][j], old["last"][j] if history else None),
                                         params[stage.name], now)
                new["v"].append(state_.v)
                if history:
                    new["last"].append(state_.last)
                keep(spikes)
                if stage.readout:
                    new["out_count"] = new["out_count"] + spikes
                values[stage.name] = spikes
                j += 1
            spike_readout = s.readout == "spike_count"
            new["readout"] = new["readout"].write(t, new["out_count"] if spike_readout else new["acc"])
            new["counts"] = new["counts"].write(t, tf.stack(layer_counts))
            if probe:
                new["probe"] = old["probe"].write(t, tf.stack(peaks))
            return t + 1, new

        _, state = tf.while_loop(lambda t, _: t < T, body, (tf.constant(0), state), maximum_iterations=T)
        out = {"logits": state["acc"], "readout": state["readout"].stack(), "counts": state["counts"].stack()}
        if collect:
            out["totals"] = [tf.cast(t, tf.int32) for t in state["totals"]]   # sums of 0/1: exact integers
        if trains:
            out["trains"] = [ta.stack() for ta in state["trains"]]
        if probe:
            out["peaks"] = state["probe"].stack()
        return out

    # ----------------------------------------------------------------- fast inference
    def _fast_batch(self, x, key, T, frames, sparse, seconds):
        """`run`'s inference, computed layer by layer instead of step by step.

        Within a step the layers update in order (INI's order too), so a layer's input at step t
        is the spikes the layer below made at step t: a layer's whole spike train can be
        computed before the next layer starts. Every input current then is one op over all
        (T x batch) frames (`_frames_current`; with constant input the first layer's current is
        computed once), and only the membranes step through time, in one compiled loop per chain
        of stages (`kernels.scan`: `if_step`, `heaviside` and `RESET` in the same float32
        operations; Numba, faster than XLA's loop). Samples are independent,
        so the batch runs in chunks of at most `FAST_FRAMES` frames (bounded memory), one thread
        per CPU core; Poisson input is drawn for the whole batch first, exactly as `run` draws it.
        Returns `run`'s outputs as NumPy arrays and adds wall time per part (summed over the
        threads) to ``seconds``.
        """
        if frames is None and self.settings.coding not in CONSTANT_CODINGS:
            xb = tf.constant(x)
            frames = tf.stack([self._encode(xb, key, tf.constant(t)) for t in range(T)])
        size = _chunk_size(len(x), T)
        chunks = [(x[i:i + size], None if frames is None else frames[:, i:i + size]) for i in range(0, len(x), size)]
        timings = [{} for _ in chunks]
        chunk = self._fast_chunk if self._chained() else self._fast_graph_chunk
        weights = self._weights()   # read once a batch, shared by its chunks
        with ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1)) as pool:  # TF, XLA, Numba release the GIL
            parts = list(pool.map(lambda c, t: chunk(*c, T, sparse, t, weights), chunks, timings))
        for timing in timings:
            for part, value in timing.items():
                seconds[part] = seconds.get(part, 0.0) + value
        return {"logits": np.concatenate([p["logits"] for p in parts]),
                "readout": np.concatenate([p["readout"] for p in parts], axis=1),
                "counts": np.concatenate([p["counts"] for p in parts], axis=2),
                "totals": [np.concatenate(layer) for layer in zip(*(p["totals"] for p in parts))]}

    def _fast_chunk(self, x, frames, T, sparse, seconds, weights):
        """`_fast_batch` for a few samples: chain after chain, currents, then membranes."""
        batch = len(x)
        if frames is None:
            h, counts = None, [np.zeros((T, 1, batch), np.float32)]
            counts[0][0, 0] = _numpy(self._held_events(tf.constant(x)))
        else:
            h = frames
            counts = [_step_counts(frames)]
        totals, logits, readout = [], None, None
        for passive, chain in self._chains():
            head = chain[0]
            tick = time.perf_counter()
            if h is not None and any(p.kind == MAXPOOL for p in passive):
                h, passive, pooled = self._max_pools_in_time(passive, h)
                for train in pooled:   # recorded in order, before the head's spikes
                    totals.append(train.sum(axis=0, dtype=np.int32))
                    counts.append(_step_counts(train))
            if h is None:
                current = _numpy(self._stage_current(head, self._apply_passive(passive, self._held_input(x), {}),
                                                     weights))
            else:
                current = self._frames_current(head, passive, h, sparse, weights)
            _add_time(seconds, f"{head.name} current", tick)
            constant = h is None
            if head.readout:
                accumulated = _accumulated(current, constant, T)
                logits = accumulated[-1]
                if not self._spikes(head):
                    readout = accumulated
                    break
            tick = time.perf_counter()
            thresholds = np.array([float(self._threshold(st)) for st in chain], np.float32)
            h, chain_totals, chain_counts = kernels.scan(
                current, constant, T, thresholds, [float(self._leak(st)) for st in chain],
                np.float32(self.settings.initial_membrane) * thresholds, [_pool_geometry(st) for st in chain[1:]])
            totals += chain_totals
            counts += [chain_counts[:, k:k + 1] for k in range(len(chain))]
            _add_time(seconds, "+".join(st.name for st in chain) + " scan", tick)
        if readout is None:
            readout = np.cumsum(h, axis=0, dtype=np.float32)
        return {"logits": logits, "readout": readout, "counts": np.concatenate(counts, axis=1), "totals": totals}

    def _fast_graph_chunk(self, x, frames, T, sparse, seconds, weights):
        """`_fast_chunk` for a graph (merges, linear layers): node after node in the graph's order, each
        node's whole output over T before its readers start. A value is held (``(batch, ...)``, constant
        over time: a constant input and what is computed from it alone) or a train ``(T, batch, ...)``:
        spikes as bools (event-driven currents), currents as float32. Operations are the step loop's TF
        ops over all frames, membranes `kernels.scan` one node at a time, so the spikes are `run`'s."""
        graph, stateful, batch = self.graph, self._stateful(), len(x)
        scales = self._merge_scales()
        if frames is None:
            values, held = {network.INPUT: self._held_input(x)}, {network.INPUT}
            counts = [np.zeros((T, 1, batch), np.float32)]
            counts[0][0, 0] = _numpy(self._held_events(tf.constant(x)))
        else:
            values, held = {network.INPUT: frames}, set()
            counts = [_step_counts(frames)]
        totals, logits, readout = [], None, None
        for node in self.stages:
            tick = time.perf_counter()
            sources = graph.inputs_of(node)
            inputs = [values[src] for src in sources]
            if all(src in held for src in sources) and node.kind != MAXPOOL:
                value = self._node_output(node, [tf.convert_to_tensor(v) for v in inputs], scales, weights)
                constant = True
            else:
                inputs = [np.broadcast_to(_numpy(v), (T,) + tuple(v.shape)) if src in held else v
                          for src, v in zip(sources, inputs)]
                value, constant = self._node_frames(node, inputs, scales, sparse, weights), False
            _add_time(seconds, f"{node.name} current", tick)
            if node.kind == MAXPOOL:   # the spikes it passes on, recorded as a layer's
                totals.append(value.sum(axis=0, dtype=np.int32))
                counts.append(_step_counts(value))
            if node not in stateful:
                values[node.name] = value
                if constant:
                    held.add(node.name)
                continue
            current = _numpy(value) if constant else value
            if node.readout:
                accumulated = _accumulated(current, constant, T)
                logits = accumulated[-1]
                if not self._spikes(node):
                    readout = accumulated
                    break
            tick = time.perf_counter()
            threshold = np.float32(self._threshold(node))
            spikes, node_totals, node_counts = kernels.scan(
                current, constant, T, [threshold], [float(self._leak(node))],
                [np.float32(self.settings.initial_membrane) * threshold], [])
            totals += node_totals
            counts.append(node_counts)
            values[node.name] = spikes
            _add_time(seconds, f"{node.name} scan", tick)
        if readout is None:
            readout = np.cumsum(values[graph.readout.name], axis=0, dtype=np.float32)
        return {"logits": logits, "readout": readout, "counts": np.concatenate(counts, axis=1), "totals": totals}

    def _node_output(self, node, inputs, scales, weights):
        """A node's output (its neurons' input current where it has neurons) from what it reads, one frame
        per row: the step loop's ops."""
        if node.kind == WEIGHTED:
            return _current(node, inputs[0], *weights[node.name])
        if node.kind in (ADD, CONCAT):
            return _merge(node, inputs, scales[node.name])
        return self._apply_passive([node], inputs[0], {})

    def _node_frames(self, node, inputs, scales, sparse, weights):
        """`_node_output` for trains ``(T, batch, ...)``: a max pool's gate over the counts so far, a weighted
        layer on bool spikes event by event (`event_current`), everything else one op over all frames.
        Flatten, reshape and dropout keep bool spikes bool."""
        T, batch = inputs[0].shape[:2]
        binary = all(isinstance(v, np.ndarray) and v.dtype == bool for v in inputs)
        if node.kind == WEIGHTED and sparse and binary and _event_driven(node):
            out = event_current(node, inputs[0].reshape((T * batch,) + tuple(node.input_shape)),
                                _bias(node, weights))
            return out.reshape((T, batch) + out.shape[1:])
        frames = [tf.reshape(tf.cast(v, tf.float32), [T * batch] + list(v.shape[2:])) for v in inputs]
        if node.kind == MAXPOOL:
            counts = tf.reshape(tf.cumsum(tf.cast(inputs[0], tf.float32), axis=0), frames[0].shape)
            out = _gated_max_pool(node, counts, frames[0])
        else:
            out = self._node_output(node, frames, scales, weights)
        out = _numpy(tf.reshape(out, [T, batch] + list(out.shape[1:])))
        return out > 0 if binary and node.kind in (MAXPOOL, FLATTEN, RESHAPE, DROPOUT) else out

    def _chained(self):
        """Whether `_fast_chunk`'s chains hold the network: a chain of neuron layers with passive stages
        between them (no merge, no linear weighted layer)."""
        graph = self.graph
        return graph.is_chain and all(n.neuron is not None for n in graph.weighted)

    def _chains(self):
        """Stateful stages grouped for `kernels.scan`: each with the passive stages before it and the
        spiking pools right after it (dropout is the identity at inference), e.g. conv1+pool1."""
        chains, passive = [], []
        stateful = self._stateful()
        for stage in self.stages:
            if stage not in stateful:
                passive.append(stage)
            elif stage.kind == POOL and chains and all(p.kind == DROPOUT for p in passive):
                chains[-1] = (chains[-1][0], chains[-1][1] + (stage,))
                passive = []
            else:
                chains.append((tuple(passive), (stage,)))
                passive = []
        return chains

    def _max_pools_in_time(self, passive, h):
        """The passive stages up to the last max pool, on spike trains ``h`` (T, batch, ...): a max pool's
        gate needs the spike counts so far (a sum over T, exact in float32, as `run` adds them step by
        step), the others act frame by frame. Returns the pooled spike trains, the stages left and each max
        pool's output trains (recorded as a layer's spikes)."""
        last = max(k for k, stage in enumerate(passive) if stage.kind == MAXPOOL)
        T, batch = h.shape[:2]
        h, pooled = tf.cast(h, tf.float32), []
        for stage in passive[:last + 1]:
            frames = tf.reshape(h, [T * batch] + list(h.shape[2:]))
            if stage.kind == MAXPOOL:
                counts = tf.reshape(tf.cumsum(h, axis=0), frames.shape)
                out = _gated_max_pool(stage, counts, frames)
            else:
                out = self._apply_passive([stage], frames, {})
            h = tf.reshape(out, [T, batch] + list(out.shape[1:]))
            if stage.kind == MAXPOOL:
                pooled.append(_numpy(h) > 0)
        return _numpy(h) > 0, passive[last + 1:], pooled

    def _stage_current(self, stage, h, weights):
        if stage.kind == POOL:
            return _avg_pool(stage, h)
        return _current(stage, h, *weights[stage.name])

    def _frames_current(self, stage, passive, h, sparse, weights):
        """Input current of ``stage`` at every step from the spikes ``h`` (T, batch, ...) below:
        one op over all frames, event by event (`event_current`) for binary spikes if ``sparse``."""
        T, batch = h.shape[:2]
        binary = isinstance(h, np.ndarray) and h.dtype == bool and all(p.kind != POOL for p in passive)
        if sparse and binary and _event_driven(stage):
            out = event_current(stage, h.reshape((T * batch,) + tuple(stage.input_shape)), _bias(stage, weights))
            return out.reshape((T, batch) + out.shape[1:])
        frames = tf.reshape(tf.cast(h, tf.float32), [T * batch] + list(h.shape[2:]))
        out = self._stage_current(stage, self._apply_passive(passive, frames, {}), weights)
        return _numpy(tf.reshape(out, [T, batch] + list(out.shape[1:])))

    def _weights(self, learn=()):
        """``{weighted node: [kernel, bias]}`` as the currents use them: the bias in the unit of the node's
        input (`network.Network.units`). A spike stands for its layer's unit (theta times the unit below),
        so the ANN's ``W a + b`` arrives as ``W s + b / unit``; with every threshold 1 (SNN Toolbox's
        normalised model) the unit is 1."""
        graph = self.graph
        biased = [st for st in graph.weighted if st.use_bias]
        units = graph.units({st.name: self._threshold(st, learn) for st in graph.calibrated()}) if biased else {}
        out = {}
        for st in graph.weighted:
            values = [w.read_value() for w in _layer_weights(st)]
            if st.use_bias:
                values[1] = values[1] / tf.cast(units[graph.inputs_of(st)[0]], tf.float32)
            out[st.name] = values
        return out

    def _merge_scales(self, learn=()):
        """``{merge: per-input scales}`` (`network.Network.merge_scales`) from the current thresholds (their
        gradients flow only when the thresholds are learned)."""
        merges = [st for st in self.stages if st.kind in (ADD, CONCAT)]
        if not merges:
            return {}
        units = self.graph.units({st.name: self._threshold(st, learn) for st in self.graph.calibrated()})
        return {st.name: self.graph.merge_scales(st, units) for st in merges}

    def _threshold(self, stage, learn=()):
        if stage.name not in self.thresholds:
            return tf.constant(POOL_THRESHOLD)
        value = self.thresholds[stage.name].read_value()
        return value if "thresholds" in learn else tf.stop_gradient(value)

    def _leak(self, stage, learn=()):
        """Hidden weighted layers have (trainable) leak variables; pools and the readout use the setting."""
        if stage.name not in self.leaks:
            return tf.constant(float(self.settings.leak))
        value = self.leaks[stage.name].read_value()
        return value if "leak" in learn else tf.stop_gradient(value)

    def _apply_passive(self, stages, h, masks):
        """Stages without neurons: flatten, reshape, dropout, and linear pooling (max pools need their
        spike history: `run`'s loop and `_max_pools_in_time` apply them)."""
        for stage in stages:
            if stage.kind == FLATTEN:
                h = tf.reshape(h, [tf.shape(h)[0], -1])
            elif stage.kind == RESHAPE:
                h = tf.reshape(h, [tf.shape(h)[0], *stage.output_shape])
            elif stage.kind == DROPOUT:
                mask = masks.get(stage.name)
                h = h if mask is None else _scale(h, mask)
            elif stage.kind == POOL:
                h = _avg_pool(stage, h)
        return h

    def _dropout_masks(self, key, batch):
        """One inverted-dropout mask per sample and dropout layer, kept for all timesteps."""
        masks = {}
        for i, stage in enumerate(self.stages):
            if stage.kind == DROPOUT and stage.rate > 0:
                rate = stage.rate
                keep = stateless_uniform(tf.concat([[batch], stage.output_shape], 0), key, 2 ** 30 + i) >= rate
                masks[stage.name] = tf.cast(keep, tf.float32) / (1.0 - rate)
        return masks

    def _encode(self, x, key, t):
        return input_spikes(x, key, t, self.settings)

    def _held_input(self, x):
        """The input a held-current coding gives the first layer: x (analog) or its delta levels x delta."""
        x = tf.convert_to_tensor(x, tf.float32)
        return delta_input(x, self.settings.delta) if self.settings.coding == "delta" else x

    def _held_events(self, x):
        """Input events per sample of a held-current coding (all at the first step): delta's level
        crossings, none for analog input."""
        if self.settings.coding != "delta":
            return tf.zeros([tf.shape(x)[0]])
        return tf.cast(_per_sample(delta_levels(x, self.settings.delta)), tf.float32)


def _bias(stage, weights):
    """The bias a weighted stage adds as ``weights`` (`SpikingNetwork._weights`) hold it, or None."""
    return weights[stage.name][1] if stage.use_bias else None


def _accumulated(current, constant, T):
    """The readout's input current summed over the steps so far, (T, batch, C): `run`'s acc, added step by
    step in float32 (``constant``: one current (batch, C) for every step)."""
    steps = np.broadcast_to(current, (T,) + current.shape) if constant else current
    return np.cumsum(steps, axis=0, dtype=np.float32)


def _chunk_size(batch, timesteps):
    """The largest divisor of the batch whose chunks hold at most `FAST_FRAMES` frames (or 1)."""
    fitting = [d for d in range(1, batch + 1) if batch % d == 0 and d * timesteps <= FAST_FRAMES]
    return max(fitting, default=1)


def _step_counts(train):
    """Spikes per step and sample of a train (T, batch, ...), as `kernels.scan` counts a stage's: (T, 1, batch)."""
    T, batch = train.shape[:2]
    return np.count_nonzero(np.reshape(train, (T, batch, -1)), axis=2)[:, None, :].astype(np.float32)


def _add_time(seconds, part, since):
    seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - since


def _event_driven(stage):
    """Whether `event_current` handles the stage: Dense, or ungrouped Conv2D with unit strides and dilation."""
    if isinstance(stage, network.Conv2d):
        return tuple(stage.stride) == (1, 1) and tuple(stage.dilation) == (1, 1) and stage.groups == 1
    return isinstance(stage, network.Affine)


def event_current(stage, frames, bias=None):
    """Input current of binary frames (F, ...) computed event by event (`pipeline.engine.kernels`);
    ``bias``: what to add where the layer has a bias (default: its own)."""
    kernel = _numpy(stage.layer.kernel.value())
    if isinstance(stage, network.Conv2d):
        out = kernels.conv_current(frames, kernel, stage.padding)
    else:
        out = kernels.dense_current(frames, kernel)
    if stage.use_bias:
        out += _numpy(stage.layer.bias.value()) if bias is None else np.asarray(bias)
    return out


def _numpy(tensor):
    """A TF tensor's data as a read-only NumPy array, without the copy ``.numpy()`` makes."""
    return np.from_dlpack(tensor)


def _per_sample(values, reduce=tf.reduce_sum):
    """Reduce every axis but the batch axis (spike counts per sample are exact in float32)."""
    return reduce(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def progress_bar(iterable, enabled, label):
    """``iterable``, with a progress bar labelled ``label`` on the terminal when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=label, leave=False)


def as_labels(y):
    """Integer class labels from integer or one-hot labels."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


def decide(outputs, readout):
    """Class per sample and timestep from the cumulative readout (N, T, C).

    Spike counts follow SNN Toolbox: argmax (first on ties) and -1 when no output spike yet.
    The membrane readout is undecided (-1) only while every class has the same value.
    """
    guesses = outputs.argmax(axis=-1)
    if readout == "spike_count":
        undecided = outputs.sum(axis=-1) == 0
    else:
        undecided = outputs.max(axis=-1) == outputs.min(axis=-1)
    return np.where(undecided, -1, guesses)
