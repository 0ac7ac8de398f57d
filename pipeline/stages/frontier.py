"""The frontier stage: which network, input coding and T save the most energy at an accuracy one accepts.

`make frontier TS="2 4 8 16"` simulates, on the engine's fast path, every input coding of
``CODINGS`` (analog, Poisson, the deterministic rate encoder, the delta encoder) x method x T:

- ``conversion``: the RUN's modified ESCAPE-NET, thresholds 0.7 x the maximum input current
  (`conversion.conversion_thresholds`: on training samples outside the validation split, with analog
  input at max(TS): one set of thresholds for every coding, so only the coding changes);
- ``qcfs``: its QCFS fine-tune (`conversion.qcfs_model`, L = ``L``), theta = lambda, v(0) = theta/2;
- ``qcfs+sparsity``: the QCFS fine-tune with the activation-sparsity penalty (`qcfs.penalise_activity`),
  its weight one of ``SPARSITIES``, converted the same way;
- ``qcfs+stdb`` (``STDB=1``): the ``qcfs`` network, with the coding parameter its row chose, fine-tuned
  with STDB at that coding and T (``STDB_EPOCHS``, ``LR``, ``SPARSITY``... on ``NTRAIN`` training
  samples outside the validation split, its epoch the cheapest non-inferior to the ANN on validation,
  `stdb.CheapestNonInferior`, 0 being the untrained network): minutes per cell; with ``PRUNES`` also
  ``qcfs+stdb+p<f>``, each pruned QCFS network fine-tuned the same way, its zeros kept;
- ``+q<b>`` / ``+p<f>`` (``QUANTS="8 4"``, ``PRUNES="0.5 0.9"``): the three methods above once more per
  width / target, on the RUN's networks quantised to b bits / pruned to f (`conversion.variant_settings`,
  `conversion.qcfs_model`: the trained-model cache), each with its own conversion thresholds; a quantised
  row's arithmetic is priced at its preset (`energy.costs` of its width: int8-acc32) and its memory model
  counts b-bit weights; its energy is over the same ANN priced in the same arithmetic (like for like:
  int8 over int8), the other rows' over the RUN's ANN at the RUN's preset.

Both with reset by subtraction, linear average pools and the membrane readout. The coding's
parameter (rate: gain from ``GAINS``; delta: step from ``DELTAS``), and for ``qcfs+sparsity`` the
penalty weight with it, is chosen per (coding, method, T) on the validation split the ANN was
trained with (`data.validation_split`), and so is the reported point, the cheapest network tried on
validation (any row's, any of its candidates) non-inferior to the modified ANN there (the paired
difference's 95 % interval above -1 pp, `pipeline.frontier.non_inferiority`), by its validation
energy (`pipeline.frontier.choose_point`); the test samples (``N``) are simulated once
per row, with the chosen parameter, and once for the reported point if it is not a row's pick.

Accounting, the same for every row: energy is the energy model's count on the spikes of that
very run, normalised by the modified ANN's energy, every MAC of a frame-based ANN (one denominator
for every row: the QCFS network has the same MACs; in a pruned RUN, `PRUNE`, the MACs through
non-zero weights, the same count per layer in both, docs/pruning.md); the input's own cost (each coding's floor: its events' ACs into
conv1, or conv1's MACs for analog input) is printed beside what the network spent; the encoders'
own updates are counted for no coding (`energy.encoder_updates`). Every simulated cell is cached
as a JSON named by what it depends on (`pipeline.frontier.cell_key`), so a rerun or a larger grid
reuses it; ``FORCE=1`` recomputes. Writes frontier.json, frontier.md and frontier.png.

``EXECUTOR=tcp://host:port`` sends the uncached cells (but ``qcfs+stdb``'s) to the workers of that Dask
scheduler (`pipeline.cluster`, docs/cluster.md): each builds its network from the model's .h5 file and
returns the cell's record, and this process writes it; the numbers are those of a local run.

``SEEDS="0 1 2"`` runs the whole stage once per training seed, each in its own RUN ``<RUN>-seed<s>``
(`pipeline.seeds`), and writes frontier_seeds.{json,md,png} in results/<RUN>/: each seed's rows and the
mean of every row across seeds with its t interval.
"""
import dataclasses
import re
import time

import numpy as np

from keras_models import qcfs  # noqa: F401  (registers the QCFS layer, so .h5 models with it load)
from pipeline import UserError, cluster, conversion, energy, engine, frontier, plots, records, results, seeds, stats, workspace
from pipeline.training import ann as train
from pipeline.training import stdb

METHODS = ("conversion", "qcfs", "qcfs+sparsity")
CELLS = "frontier_cells"
# a method's `+q<bits>` / `+p<fraction>` / `+p<fraction>+q<bits>` suffix (QUANTS, PRUNES, both)
VARIANT = re.compile(r"(?:\+p[0-9.e-]+(?:\+q\d+)?|\+q\d+)$")


def variants(settings):
    """``{suffix: (prune, quant)}``: the RUN's own networks ('': its PRUNE and QUANT, None) and, for each of
    ``QUANTS`` / ``PRUNES``, the same networks quantised to that width ('+q8') or pruned to that target
    ('+p0.9'), the other of the two kept at the RUN's; with both, each pruned one quantised too ('+p0.9+q8':
    pruned, then quantised, as a RUN with PRUNE and QUANT)."""
    return {"": (None, None), **{f"+q{b}": (None, b) for b in settings.quants},
            **{f"+p{f:g}": (f, None) for f in settings.prunes},
            **{f"+p{f:g}+q{b}": (f, b) for f in settings.prunes for b in settings.quants}}


def split_method(method):
    """('qcfs+sparsity', '+q8') of 'qcfs+sparsity+q8'; (method, '') of a method without a variant."""
    suffix = VARIANT.search(method)
    return (method, "") if suffix is None else (method[:suffix.start()], suffix.group())


def candidates(settings, coding):
    """(parameter name, value) pairs the validation split chooses from; (None, None) for no parameter."""
    if coding == "rate":
        return [("gain", g) for g in settings.gains]
    if coding == "delta":
        return [("delta", d) for d in settings.deltas]
    return [(None, None)]


def weights(settings, method):
    """The sparsity-penalty weights a method's rows choose from (0: trained without the penalty)."""
    return settings.sparsities if split_method(method)[0] == "qcfs+sparsity" else (0.0,)


def network_name(method, sparsity):
    """The trained network a (method, penalty weight) starts from: `conversion`, `qcfs` (also for
    `qcfs+stdb`) or `qcfs+sparsity=<w>`, with the method's variant suffix (`qcfs+q8`)."""
    base, suffix = split_method(method)
    return (f"qcfs+sparsity={sparsity:g}" if sparsity else base.removesuffix("+stdb")) + suffix


def is_stdb(method):
    """Whether a method's network is STDB-fine-tuned (`qcfs+stdb`, also of a pruned variant: `qcfs+stdb+p0.9`)."""
    return split_method(method)[0] == "qcfs+stdb"


def stdb_methods(settings):
    """``STDB=1``: the `qcfs+stdb` method of the RUN's networks and of each pruned variant (its zeros kept,
    `stdb.zero_masks`); not of a quantised one, whose weights STDB would move off their grid."""
    return tuple("qcfs+stdb" + v for v, (_, quant) in variants(settings).items() if quant is None) * settings.stdb


def tuning_key(s, suffix):
    """What a qcfs+stdb network is fine-tuned for: its variant and its engine settings' coding and T."""
    return suffix, s.coding, s.gain, s.delta, s.timesteps


class Grid:
    """The networks (`network_name`), the conversion thresholds and the cell cache of one RUN; per variant
    (`variants`), its weight width and the energy costs of its arithmetic; ``cost``: the RUN's, which prices
    the one denominator (the modified ANN's dense energy)."""

    def __init__(self, settings, ws, paths, timesteps, cost, stdb_samples=None, executor=None):
        self.ws, self.force, self.levels = ws, settings.force, settings.levels
        # EXECUTOR: a `cluster.Cluster` simulates the uncached cells (`prefetch`); the keys it simulated in this
        # run (their files are new, not reused) and the samples already sent to it
        self.executor, self.fresh, self.shared = executor, set(), {}
        self.seed = int(ws.record["seed"])
        # qcfs+stdb: (x_train, y_train, x_select, y_select), its settings, what its cells depend on
        self.stdb_samples, self.tuned = stdb_samples, {}
        self.stdb_settings = stdb.StdbSettings(**settings.stdb_choices(), seed=self.seed)
        self.stdb_key = None if stdb_samples is None else {
            "settings": dataclasses.asdict(self.stdb_settings), "selection": stdb.PAIRED_SELECTION,
            "samples": frontier.samples_digest(*(np.asarray(a) for a in stdb_samples))}
        self.paths = paths
        self.sha = {m: results.file_sha256(p) for m, p in self.paths.items()}
        self.models = {m: engine.load_keras(p) for m, p in self.paths.items()}
        # a quantised variant's weights are counted at its width and its arithmetic priced by its preset
        self.bits = {v: workspace.quant_of(ws.record) if quant is None else quant
                     for v, (_, quant) in variants(settings).items()}
        self.costs = {v: energy.costs(settings.preset, settings.mac_pj, settings.ac_pj, b) for v, b in self.bits.items()}
        calibration = engine.SnnSettings(timesteps=max(timesteps), coding="analog", readout="membrane",
                                         pooling="linear", seed=self.seed, batch_size=workspace.SIM_BATCH)
        # each variant's converted network calibrated on its own weights; one whose calibration finds a layer
        # silent (a heavily pruned network at a small T) has no conversion rows, the reason recorded (`left_out`)
        self.thresholds, self.left_out, source = {}, {}, "thresholds not calibrated"
        for v in self.bits:
            try:
                self.thresholds[v], source = conversion.conversion_thresholds(ws, calibration, "max",
                                                                              self.models["conversion" + v])
            except UserError as error:
                self.left_out["conversion" + v] = f"not calibrated at T={max(timesteps)}: {error}"
                print(f"  conversion{v}: left out, {self.left_out['conversion' + v]}", flush=True)
        self.threshold_note = f"{source.removeprefix('thresholds ')}, analog input, T={max(timesteps)}"
        nodes = conversion.from_model(self.models["conversion"], calibration,
                                      self.thresholds.get("")).graph.compute_nodes
        self.ann_energy_j = energy.ann_energy_j(nodes, cost)
        # like for like: a quantised variant's rows over the same ANN priced in its own (int8) arithmetic
        self.ann_energy = {v: energy.ann_energy_j(nodes, self.costs[v]) if self.bits[v] != self.bits[""] else
                           self.ann_energy_j for v in self.bits}
        # each variant's own ANN: its weights (a pruned one's MACs through non-zero weights only), its arithmetic
        self.own_ann_energy = {v: energy.ann_energy_j(conversion.from_model(self.models["conversion" + v], calibration,
                                                                     self.thresholds.get(v)).graph.compute_nodes,
                                               self.costs[v]) for v in self.bits}

    def network(self, method, coding, parameter, sparsity, timesteps):
        s = engine_settings(method, coding, parameter, timesteps, self.seed)
        if is_stdb(method):
            return self.fine_tuned(s, split_method(method)[1])
        return conversion.from_model(self.models[network_name(method, sparsity)], s, self.thresholds_of(method))

    def thresholds_of(self, method):
        """A `conversion` method's thresholds (its variant's); None for the QCFS methods (theta = lambda)."""
        base, suffix = split_method(method)
        return self.thresholds[suffix] if base == "conversion" else None

    def fine_tuned(self, s, suffix):
        """The QCFS network of variant ``suffix`` fine-tuned with STDB under engine settings ``s`` (trained once
        per run, on a fresh copy of the model: STDB changes weights in place); its best epoch by the selection
        samples."""
        key = tuning_key(s, suffix)
        if key not in self.tuned:
            net = conversion.qcfs(self.paths["qcfs" + suffix], s)
            x_train, y_train, x_select, y_select = self.stdb_samples
            print(f"  STDB{suffix}: {s.coding} T={s.timesteps}, {len(x_train)} training samples, "
                  f"{self.stdb_settings.epochs} epochs", flush=True)
            # the epoch kept as the frontier keeps its networks: the cheapest non-inferior to the ANN (paired)
            reference = train.predict(self.models["conversion"], x_select) == y_select
            choice = stdb.CheapestNonInferior(reference, lambda network, result: energy.energy_table(
                counted(network, x_select, result)[0], self.costs[""])[1]["snn_energy_j"] / self.ann_energy_j)
            outcome = stdb.train(net, x_train, y_train, x_select, y_select,
                                 dataclasses.replace(self.stdb_settings, batch_size=stdb.default_batch_size(net)),
                                 progress=False, choice=choice)
            judged = [outcome.judged_before] + [r.judged for r in outcome.history]
            self.tuned[key] = (net, {"best_epoch": outcome.best_epoch, "seconds": outcome.seconds,
                                     "validation_accuracy_before": outcome.validation_before,
                                     "validation_accuracy_after": outcome.validation_after,
                                     "validation_accuracy_per_epoch": [outcome.validation_before] + [
                                         r.validation_accuracy for r in outcome.history],
                                     "validation_energy_per_epoch": [j["validation_cost"] for j in judged],
                                     "non_inferior_per_epoch": [j["vs_reference"]["non_inferior"] for j in judged]})
        return self.tuned[key][0]

    def path(self, split, x, y, method, coding, parameter, sparsity, timesteps):
        """The cache file of one cell: named by everything it depends on (`records.FrontierCellKey`)."""
        v = split_method(method)[1]
        key = records.FrontierCellKey(model=self.sha[network_name(method, sparsity)], method=method, coding=coding,
                                      parameter=parameter, timesteps=timesteps, split=split, seed=self.seed,
                                      levels=self.levels, samples=frontier.samples_digest(x, np.asarray(y, np.int64)),
                                      thresholds=self.thresholds_of(method),
                                      costs=[self.costs[v].e_mac_pj, self.costs[v].e_ac_pj], sparsity=sparsity or None,
                                      weight_bits=self.bits[v] or None,
                                      stdb=self.stdb_key if is_stdb(method) else None)
        return self.ws.dir / CELLS / f"{frontier.cell_key(**key.to_dict())}.json"

    def cell(self, split, x, y, method, coding, parameter, sparsity, timesteps):
        """One simulated network on one sample set (`records.FrontierCell`), from the cache or simulated
        now, and whether it came from the cache (a cell the cluster simulated in this run did not)."""
        path = self.path(split, x, y, method, coding, parameter, sparsity, timesteps)
        if path.stem in self.fresh:
            return records.FrontierCell.read(path), False
        if path.exists() and not self.force:
            return records.FrontierCell.read(path), True
        start = time.perf_counter()
        net = self.network(method, coding, parameter, sparsity, timesteps)
        v = split_method(method)[1]
        record = measure(net, x, y, split, method, parameter, sparsity, self.costs[v], self.ann_energy[v], start,
                         stdb=self.tuned[tuning_key(net.settings, v)][1] if is_stdb(method) else None,
                         weight_bits=self.bits[v])
        record.write(path)
        return record, False

    def prefetch(self, requests):
        """With a cluster (EXECUTOR=tcp://...): simulate there every cell of ``requests`` (`cell`'s
        arguments) not cached yet, all at once, and write each here as it arrives, so `cell` then reads
        them. ``qcfs+stdb`` cells stay here (their STDB training is held in this process). Local: nothing;
        `cell` simulates each as it comes."""
        if self.executor is None:
            return
        jobs, paths = {}, {}
        for split, x, y, method, coding, parameter, sparsity, timesteps in requests:
            path = self.path(split, x, y, method, coding, parameter, sparsity, timesteps)
            if is_stdb(method) or path.stem in self.fresh or (path.exists() and not self.force):
                continue
            name, v = network_name(method, sparsity), split_method(method)[1]
            job = RemoteCell(model_path=str(self.paths[name]), model_sha256=self.sha[name], method=method,
                             coding=coding, parameter=parameter, sparsity=sparsity, timesteps=timesteps, split=split,
                             seed=self.seed, thresholds=self.thresholds_of(method),
                             cost=self.costs[v], ann_energy_j=self.ann_energy[v], weight_bits=self.bits[v])
            jobs[f"frontier-{path.stem}"], paths[f"frontier-{path.stem}"] = (job, self.share(x), self.share(y)), path
        if not jobs:
            return
        start = time.perf_counter()
        print(f"  {len(jobs)} cells to {self.executor.workers()} Dask workers at {self.executor.address}", flush=True)
        for key, record in self.executor.run(simulate, jobs):
            record.write(paths[key])
            self.fresh.add(paths[key].stem)
        print(f"  {len(jobs)} cells back ({time.perf_counter() - start:.0f} s)", flush=True)

    def share(self, samples):
        """``samples`` on the cluster, sent once per run (keyed by their digest)."""
        digest = frontier.samples_digest(samples)
        if digest not in self.shared:
            self.shared[digest] = self.executor.share(np.asarray(samples))
        return self.shared[digest]


def engine_settings(method, coding, parameter, timesteps, seed):
    """The engine settings of a cell: its coding with its parameter (``(name, value)``, or ``(None, None)``),
    linear pools, the membrane readout, v(0) = 0 for plain conversion and theta/2 for the QCFS methods."""
    changes = {} if parameter[0] is None else {parameter[0]: parameter[1]}
    return engine.SnnSettings(timesteps=timesteps, coding=coding, readout="membrane", pooling="linear",
                              seed=seed, batch_size=workspace.SIM_BATCH,
                              initial_membrane=0.0 if split_method(method)[0] == "conversion" else 0.5, **changes)


def counted(net, x, result):
    """The energy model's operation counts (`energy.count_operations`) of ``net``'s run ``result`` on ``x``
    (its own spikes, and its input events replayed position by position), with the input events per position
    (summed over samples and steps) and per step."""
    nodes = net.graph.compute_nodes
    totals, events, _ = engine.replay_input(net, x, energy.fan_out(nodes[0]))
    if not np.array_equal(events, result.spikes_per_timestep[:, 0]):
        raise RuntimeError(f"replayed {net.settings.coding} input differs from the engine's input count")
    return energy.count_operations(nodes, result.neuron_totals, totals, len(x), "linear"), totals, events


def measure(net, x, y, split, method, parameter, sparsity, cost, ann_energy_j, start, stdb=None, weight_bits=0):
    """The cell record (`records.FrontierCell`) of network ``net`` simulated on ``x``, ``y`` (fast path):
    accuracy, predictions and the energy model's count on its own spikes, normalised by ``ann_energy_j``;
    ``start``: when the work on it began (its ``seconds``); ``weight_bits``: its weights' width (0: float)."""
    coding, timesteps = net.settings.coding, net.settings.timesteps
    result = net.simulate(x, y, fast=True)
    nodes = net.graph.compute_nodes
    counts, totals, events = counted(net, x, result)
    layers, total = energy.energy_table(counts, cost)
    floor, formula = energy.coding_floor(coding, nodes[0], totals, len(x), cost, ann_energy_j)
    memory = energy.memory_record(nodes, counts, cost, timesteps, float(events.sum()) / len(x), "linear", coding,
                                  weight_bits)
    return records.FrontierCell(
        method=method, coding=coding, parameter=parameter[0], value=parameter[1], sparsity=sparsity,
        timesteps=timesteps, split=split, num_samples=len(x),
        accuracy=float(np.mean(result.predictions[:, -1] == y)),
        predictions=stats.encode_predictions(result.predictions[:, -1]),
        normalized_energy=total["snn_energy_j"] / ann_energy_j,
        layer_energy={row["name"]: row["snn_energy_j"] / ann_energy_j for row in layers if row["ann_macs"] > 0},
        normalized_energy_memory=memory["total"]["normalized_energy_memory"],
        footprint_bytes={side: memory["footprint"][side]["total"]["bytes"] for side in ("snn", "ann")},
        input_floor=floor, input_floor_formula=formula,
        input_events_per_inference=float(events.sum()) / len(x),
        encoder_updates_per_inference=energy.encoder_updates(coding, x[0].size, timesteps),
        seconds=time.perf_counter() - start, stdb=stdb)


@dataclasses.dataclass(frozen=True)
class RemoteCell:
    """What a cluster worker needs to simulate one cell besides its samples, all plain values: the model's
    .h5 path (and sha256, checked there), the cell's network and coding, the conversion thresholds, the
    energy costs and the ANN's dense energy (the denominator)."""
    model_path: str
    model_sha256: str
    method: str
    coding: str
    parameter: tuple
    sparsity: float
    timesteps: int
    split: str
    seed: int
    thresholds: dict | None
    cost: energy.Costs
    ann_energy_j: float
    weight_bits: int = 0


_MODELS = {}    # a worker process's loaded models, by sha256: each loaded once, whatever cells follow


def simulate(cell, x, y):
    """A cluster worker's task: `RemoteCell` ``cell`` on samples ``x``, ``y`` -> its record, built as the
    stage builds it here (`engine_settings`, `conversion.from_model`, `measure`) from the model file, not
    from anything of the client's TensorFlow."""
    start = time.perf_counter()
    if cell.model_sha256 not in _MODELS:
        if results.file_sha256(cell.model_path) != cell.model_sha256:
            raise RuntimeError(f"{cell.model_path} on this worker is not the model the stage sent "
                               f"(sha256 {cell.model_sha256[:12]}): the workers need the stage's files")
        _MODELS[cell.model_sha256] = engine.load_keras(cell.model_path)
    net = conversion.from_model(_MODELS[cell.model_sha256],
                                engine_settings(cell.method, cell.coding, cell.parameter, cell.timesteps, cell.seed),
                                cell.thresholds)
    return measure(net, x, y, cell.split, cell.method, cell.parameter, cell.sparsity, cell.cost, cell.ann_energy_j,
                   start, weight_bits=cell.weight_bits)


def label(row):
    """'rate g=2' / 'delta Δ=0.05' / 'analog': the coding with its chosen parameter."""
    if row.parameter == "gain":
        return f"rate g={row.value:g}"
    if row.parameter == "delta":
        return f"delta Δ={row.value:g}"
    return row.coding


def method_label(row):
    """'qcfs' / 'qcfs+sparsity w=4': the method with its chosen penalty weight."""
    return f"{row.method} w={row.sparsity:g}" if row.sparsity else row.method


def split_text(row):
    return ", ".join(f"{name} {value:.4f}" for name, value in row.layer_energy.items())


def optional(value, spec):
    """A number that a cell cached before it was recorded lacks: '—' then."""
    return "—" if value is None else format(value, spec)


def stored_kb(row, side):
    """Kilobytes ``side`` (`snn`, `ann`) of a row stores (weights and neuron state); '—' if not recorded."""
    return "—" if row.footprint_bytes is None else f"{row.footprint_bytes[side] / 1000:,.0f}"


def write_markdown(path, record):
    rows, n = record.rows, record.num_samples
    ann = record.ann
    lines = [f"**The accuracy-energy frontier** ({n} test samples; parameters and the chosen point picked on "
             f"{record.validation_samples} validation samples; {record.preset})", "",
             "Energy: SNN / the modified ANN's dense energy on the same samples (one denominator for every row). "
             "Floor: what the input alone costs (its events' ACs into conv1; analog: conv1's MACs). Encoder updates "
             "(Poisson draws, rate-encoder IF steps, delta compares) are counted for no coding. Accuracy [95 % "
             "Wilson interval] (N); own ANN: the network's own ANN (qcfs, qcfs+stdb: the QCFS ANN; qcfs+sparsity w: "
             "the QCFS ANN fine-tuned with the activation-sparsity penalty of weight w).", "",
             f"Modified ANN: {stats.format_recorded(ann, 'test_accuracy', n)} on the test samples, "
             f"{stats.format_accuracy(ann['validation_accuracy'], record.validation_samples)} on validation "
             "(its best epoch was chosen there); QCFS ANN "
             f"{stats.format_recorded(ann, 'qcfs_test_accuracy', n)}"
             + "".join(f"; with sparsity w={a['sparsity']:g} {stats.format_recorded(a, 'test_accuracy', n)}"
                       for a in ann["qcfs_sparsity"]) + ".", "",
             "Over own ANN: the row's energy over the ANN with the same weights in the same arithmetic (a +p row's: "
             "the ANN pruned to the same target, which skips its zero weights too); the energy column divides every "
             "row by the one (dense) ANN. With memory: the memory-inclusive SNN energy over that same own ANN's "
             "(weight fetches, membrane and activation traffic: docs/energy-memory.md). SNN stored: weights and "
             "neuron state, kB.", "",
             "| coding | method | T | own ANN | SNN | SNN - ANN (pp) | SNN vs ANN | energy | saving | over own ANN | "
             "with memory | SNN stored | floor | validation SNN | per layer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {label(r)} | {method_label(r)} | {r.timesteps} | "
                     f"{stats.format_recorded(r, 'own_ann_accuracy', n)} | {stats.format_recorded(r, 'snn_accuracy', n)} | "
                     f"{100 * (r.snn_accuracy - r.ann_accuracy):+.1f} | "
                     f"{stats.format_mcnemar(r.snn_vs_ann_mcnemar)} | {r.normalized_energy:.4f} | "
                     f"{r.saving:.1f}x | {optional(r.energy_vs_own_ann, '.4f')} | "
                     f"{optional(r.normalized_energy_memory, '.3f')} | {stored_kb(r, 'snn')} | "
                     f"{r.input_floor:.4f} | {r.validation_accuracy:.3f} | {split_text(r)} |")
    lines += ["", "**Pareto front** (test rows no other row beats on both accuracy and energy):", "",
              "| energy | saving | SNN | coding | method | T |", "|---|---|---|---|---|---|"]
    for r in record.pareto_front:
        lines.append(f"| {r.normalized_energy:.4f} | {r.saving:.1f}x | {stats.format_recorded(r, 'snn_accuracy', n)} "
                     f"| {label(r)} | {method_label(r)} | {r.timesteps} |")
    chosen = record.chosen
    lines += ["", "**Chosen on validation**: of every network simulated there (each row's candidates), the cheapest "
                  f"(validation energy) non-inferior to the modified ANN on validation (paired 95 % interval of SNN "
                  f"- ANN above -{frontier.WITHIN_PP:g} pp): " + ("none" if chosen is None else
                  f"{label(chosen)}, {method_label(chosen)}, T={chosen.timesteps} (validation SNN "
                  f"{chosen.validation_accuracy:.3f}, ANN {ann['validation_accuracy']:.3f}): test SNN "
                  f"{stats.format_recorded(chosen, 'snn_accuracy', n)} vs ANN "
                  f"{stats.format_recorded(chosen, 'ann_accuracy', n)} "
                  f"({stats.format_mcnemar(chosen.snn_vs_ann_mcnemar)}), normalised energy "
                  f"{chosen.normalized_energy:.4f} ({chosen.saving:.1f}x; floor {chosen.input_floor:.4f}; "
                  f"{split_text(chosen)}); over its own ANN {optional(chosen.energy_vs_own_ann, '.4f')}; with "
                  f"memory {optional(chosen.normalized_energy_memory, '.3f')}; stored: SNN {stored_kb(chosen, 'snn')} "
                  f"kB, ANN {stored_kb(chosen, 'ann')} kB."),
              "", "On the test rows themselves (picked on the test set: optimistic), the cheapest non-inferior "
                  f"(margin {frontier.WITHIN_PP:g} pp) to the ANN: " + ("none" if record.cheapest_within_1pp_test is None else
                  "{0}, {1}, T={2}, energy {3:.4f}".format(label(record.cheapest_within_1pp_test),
                                                          method_label(record.cheapest_within_1pp_test),
                                                          record.cheapest_within_1pp_test.timesteps,
                                                          record.cheapest_within_1pp_test.normalized_energy)) + ".",
              "", f"Conversion thresholds: {record.conversion_thresholds['how']}."]
    lines += [f"Left out: {method}, {why}." for method, why in (record.left_out or {}).items()]
    results.write_atomic(path, "\n".join(lines) + "\n")


def main(settings):
    """`make frontier`: its cells here (EXECUTOR=local) or on the workers of a Dask scheduler, reached first so
    a wrong address fails before any training."""
    if settings.executor == "local":
        return seeded(settings)
    with cluster.Cluster(settings.executor) as executor:
        return seeded(settings, executor)


def seeded(settings, executor=None):
    """SEEDS unset: the RUN's frontier (its record). SEEDS: the frontier of every seed, each in its own RUN
    (`pipeline.seeds`), then the table across seeds in results/<RUN>/ (its record)."""
    if settings.seeds is None:
        return frontier_stage(settings, executor)
    results.hold_run(settings.run, results.Folders.under(settings.out))   # the across-seed files' folder
    return across_seeds(settings, [frontier_stage(s, executor) for _, s in seeds.per_seed(settings)])


def parameter_text(entry):
    """'g=4' / 'Δ=0.05' / 'w=16' / 'g=4, w=16' / '—': the coding parameter and penalty weight a seed chose."""
    parts = [f"{'g' if entry.get('parameter') == 'gain' else 'Δ'}={entry['value']:g}"] if entry.get("parameter") else []
    parts += [f"w={entry['sparsity']:g}"] if entry.get("sparsity") else []
    return ", ".join(parts) or "—"


def across_seeds(settings, records_per_seed):
    """frontier_seeds.{json,md,png} in results/<RUN>/: every seed's rows (accuracies with their Wilson
    intervals, energy, the parameter its validation split chose, its paired test), each row's mean across
    seeds with its t interval, and each seed's chosen point with their mean."""
    first = records_per_seed[0]
    record = seeds.summary("frontier", settings.seeds, [seeds.run_name(settings.run, s) for s in settings.seeds],
                           [r.rows for r in records_per_seed], ("coding", "method", "timesteps"),
                           ("ann_accuracy", "snn_accuracy", "normalized_energy"), first.num_samples,
                           carried=("coding", "method", "timesteps", "parameter", "value", "sparsity",
                                    "snn_vs_ann_mcnemar"),
                           chosen=[r.chosen for r in records_per_seed])
    folder = results.Folders.under(settings.out).run_dir(settings.run)
    lines = seeds.header(record, f"The accuracy-energy frontier ({first.preset})") + [
        "Energy: SNN / the seed's modified ANN's dense energy. Each seed chose its coding parameters and its point "
        f"on its own validation split ({first.validation_samples} samples).", ""]
    lines += seeds.table_lines(record, (("coding", "coding"), ("method", "method"), ("timesteps", "T")),
                               (("ann_accuracy", "ANN", "accuracy"), ("snn_accuracy", "SNN", "accuracy"),
                                ("normalized_energy", "energy", ".4f")),
                               extra=(("chosen on validation", parameter_text),
                                      ("SNN vs ANN", lambda e: stats.format_mcnemar(e.get("snn_vs_ann_mcnemar")))))
    chosen = record.chosen
    lines += ["", "**Chosen on validation, per seed** (each seed's cheapest network non-inferior to its ANN there):", ""]
    lines += [f"- seed {e['seed']}: {e['coding']} {parameter_text(e)}, {e['method']}, T={e['timesteps']}: SNN "
              f"{stats.format_accuracy(e['snn_accuracy'], record.num_samples, e.get('snn_accuracy_interval'))} vs ANN "
              f"{stats.format_accuracy(e['ann_accuracy'], record.num_samples, e.get('ann_accuracy_interval'))}, "
              f"energy {e['normalized_energy']:.4f}" for e in chosen.per_seed]
    missed = [str(s) for s, r in zip(settings.seeds, records_per_seed) if r.chosen is None]
    lines += [f"- seed{'s' * (len(missed) > 1)} {', '.join(missed)}: none non-inferior"] * bool(missed)
    if chosen.per_seed:
        lines += ["", f"Mean over the {len(chosen.per_seed)} chosen points: SNN "
                      f"{stats.format_across(chosen.across['snn_accuracy'])}, ANN "
                      f"{stats.format_across(chosen.across['ann_accuracy'])}, energy "
                      f"{stats.format_across(chosen.across['normalized_energy'], 4)}."]
    seeds.write(record, folder / "frontier_seeds", lines)
    plots.frontier_across_seeds(folder / "frontier_seeds.png", record)
    print(f"\nfrontier across {len(settings.seeds)} seeds -> {folder / 'frontier_seeds.md'}")
    return record


def frontier_stage(settings, executor=None):
    """The stage on its cells' ``executor`` (`cluster.Cluster`; None: this process): the record it wrote."""
    timesteps, cost, ws, n = workspace.engine_stage(settings, 'make frontier TS="2 4 8 16"')
    val_idx = workspace.training_split(ws)[1]
    x_val, y_val = np.asarray(ws.dataset.x_train[val_idx], np.float32), ws.dataset.y_train[val_idx]
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    paths = {}
    for v, (prune, quant) in variants(settings).items():
        paths["conversion" + v] = ws.model.path if not v else train.train(
            ws.dataset, conversion.variant_settings(ws, prune, quant), ws.folders.trained, force=settings.force).path
        paths.update({network_name(m + v, w): conversion.qcfs_model(ws, settings.levels, w, settings.force, prune,
                                                                    quant).path
                      for m in METHODS[1:] for w in weights(settings, m)})
    stdb_samples = None
    if settings.stdb:
        pick = workspace.training_split(ws, settings.ntrain or workspace.STDB_TRAINING_SAMPLES)[0]
        stdb_samples = (np.asarray(ws.dataset.x_train[pick], np.float32), ws.dataset.y_train[pick], x_val, y_val)
    grid = Grid(settings, ws, paths, timesteps, cost, stdb_samples, executor)
    methods = tuple(m + v for v in variants(settings) for m in METHODS if m + v not in grid.left_out) + \
        stdb_methods(settings)
    anns = {name: {"test": train.predict(model, x), "validation": train.predict(model, x_val)}
            for name, model in grid.models.items()}
    ann_val_correct = anns["conversion"]["validation"] == y_val
    reference_val = float(np.mean(ann_val_correct))

    def val_correct(cell):
        """A validation cell's per-sample correctness, paired with the ANN's (``ann_val_correct``)."""
        return stats.decode_predictions(cell["predictions"]) == y_val

    counts = {"simulated": 0, "reused": 0}

    def row_of(coding, method, t, option, tried):
        """The test row of one network (method, coding, option = (coding parameter, penalty weight), T)
        with the validation cells it was chosen from."""
        cell, cached = grid.cell("test", x, y, method, coding, *option, t)
        counts["reused" if cached else "simulated"] += 1
        (parameter, sparsity), validated = option, dict(tried)[option]
        suffix = split_method(method)[1]
        predictions = stats.decode_predictions(cell.predictions)
        return records.FrontierRow(
            coding=coding, method=method, timesteps=t, parameter=parameter[0], value=parameter[1], sparsity=sparsity,
            num_samples=n, **stats.scored("ann_accuracy", anns["conversion"]["test"], y),
            **stats.scored("own_ann_accuracy", anns[network_name(method, sparsity)]["test"], y),
            **stats.scored("snn_accuracy", predictions, y),
            normalized_energy=cell.normalized_energy, saving=1.0 / cell.normalized_energy,
            energy_vs_own_ann=cell.normalized_energy * grid.ann_energy[suffix] / grid.own_ann_energy[suffix],
            # memory-inclusive ratio and bytes stored (`energy.memory`); None in cells cached before it
            normalized_energy_memory=cell.normalized_energy_memory, footprint_bytes=cell.footprint_bytes,
            input_floor=cell.input_floor, input_floor_formula=cell.input_floor_formula,
            layer_energy=cell.layer_energy,
            input_events_per_inference=cell.input_events_per_inference,
            encoder_updates_per_inference=cell.encoder_updates_per_inference,
            validation_accuracy=validated.accuracy, validation_energy=validated.normalized_energy,
            validation_candidates=[{"parameter": p[0], "value": p[1], "sparsity": w,
                                    "accuracy": c.accuracy, "normalized_energy": c.normalized_energy,
                                    "vs_ann": frontier.non_inferiority(val_correct(c), ann_val_correct)}
                                   for (p, w), c in tried],
            **stats.comparison(y, {"snn": predictions, "ann": anns["conversion"]["test"]}),
            stdb=cell.stdb)

    # first every row's choice on its validation cells, then the test cells of the choices: each pass's cells
    # are independent, so a cluster simulates them all at once (`Grid.prefetch`; local: one after another)
    plan = [(coding, method, t) for coding in settings.codings for method in methods for t in timesteps]

    def options_of(coding, method, t):
        """The (coding parameter, penalty weight) pairs a row tries on validation; qcfs+stdb: the qcfs
        row's pick (STDB: minutes per option)."""
        if is_stdb(method):
            return [qcfs_pick[coding, t, split_method(method)[1]]]
        return [(p, w) for p in candidates(settings, coding) for w in weights(settings, method)]

    choices, validated, picked, qcfs_pick = [], {}, {}, {}
    grid.prefetch([("validation", x_val, y_val, method, coding, *o, t) for coding, method, t in plan
                   if not is_stdb(method) for o in options_of(coding, method, t)])
    for coding, method, t in plan:
        simulated = [(o, *grid.cell("validation", x_val, y_val, method, coding, *o, t))
                     for o in options_of(coding, method, t)]
        tried = validated[coding, method, t] = [(o, c) for o, c, _ in simulated]
        for _, _, cached in simulated:
            counts["reused" if cached else "simulated"] += 1
        option = frontier.choose_parameter([(o, val_correct(c), c.normalized_energy) for o, c in tried],
                                           ann_val_correct)
        if split_method(method)[0] == "qcfs":
            qcfs_pick[coding, t, split_method(method)[1]] = option
        choices.append((coding, method, t, option))
    grid.prefetch([("test", x, y, method, coding, *option, t) for coding, method, t, option in choices])
    rows = []
    for coding, method, t, option in choices:
        start = time.perf_counter()
        row = picked[coding, method, t, option] = row_of(coding, method, t, option, validated[coding, method, t])
        rows.append(row)
        print(f"  {label(row):<14} {method_label(row):<18} T={t:<4} SNN {stats.format_recorded(row, 'snn_accuracy')}  "
              f"energy {row.normalized_energy:.4f} (floor {row.input_floor:.4f})  "
              f"val {row.validation_accuracy:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    # the reported point: the cheapest of every network tried on validation (each coding parameter and
    # penalty weight, not only each row's pick) non-inferior to the ANN there, by its validation energy
    tried_all = [(key, o, c) for key, tried in validated.items() for o, c in tried]
    best = frontier.choose_point([{"network": (*key, o), "normalized_energy": c.normalized_energy}
                                  for key, o, c in tried_all], [val_correct(c) for _, _, c in tried_all],
                                 ann_val_correct)
    chosen = None
    if best is not None:
        coding, method, t, (parameter, sparsity) = best["network"]
        grid.prefetch([("test", x, y, method, coding, parameter, sparsity, t)])
        chosen = picked.get(best["network"]) or row_of(*best["network"], validated[best["network"][:3]])

    ann_test = stats.scored("test_accuracy", anns["conversion"]["test"], y)
    record = records.FrontierRecord(
        stage="frontier", rows=rows, num_samples=n, validation_samples=len(val_idx),
        codings=list(settings.codings), methods=list(methods), timesteps=list(timesteps),
        gains=list(settings.gains), deltas=list(settings.deltas), sparsities=list(settings.sparsities),
        levels=settings.levels,
        preset=cost.preset, e_mac_pj=cost.e_mac_pj, e_ac_pj=cost.e_ac_pj,
        ann_energy_j=grid.ann_energy_j,
        ann={**ann_test, "validation_accuracy": reference_val,
             **stats.scored("qcfs_test_accuracy", anns["qcfs"]["test"], y),
             "qcfs_validation_accuracy": float(np.mean(anns["qcfs"]["validation"] == y_val)),
             "qcfs_sparsity": [{"sparsity": w, **stats.scored("test_accuracy", anns[network_name("qcfs+sparsity", w)]["test"], y),
                                "validation_accuracy": float(np.mean(anns[network_name("qcfs+sparsity", w)]["validation"]
                                                                     == y_val))}
                               for w in settings.sparsities]},
        chosen=chosen,
        pareto_front=frontier.pareto_front(rows),
        cheapest_within_1pp_test=frontier.choose_point(
            rows, [stats.decode_predictions(r.predictions["snn"]) == y for r in rows], anns["conversion"]["test"] == y),
        choice_rule=f"non-inferior to the modified ANN: the lower bound of the paired 95 % interval (Newcombe) of "
                    f"SNN - ANN accuracy on the same samples above -{frontier.WITHIN_PP:g} pp; the cheapest such",
        conversion_thresholds={"values": grid.thresholds.get(""), "how": grid.threshold_note},
        left_out=grid.left_out,
        stdb=None if stdb_samples is None else {
            **grid.stdb_key["settings"], "train_samples": len(stdb_samples[0]),
            "epoch_chosen_on": f"the {len(val_idx)} validation samples", "selection": grid.stdb_key["selection"]},
        accounting={"denominator": "the modified ANN's dense energy (MACs and pooling adds), one for every row",
                    "encoder": "encoder updates are counted for no coding (encoder_updates_per_inference "
                               "reports them)",
                    "floor": "input_floor: the input's own cost (events x fan-out into conv1 x E_AC; analog: "
                             "conv1's MACs x E_MAC) / the denominator",
                    **({"variants": "+q<b> rows: the network's arithmetic at its width's preset (int8-acc32), its "
                                    "weights counted at b bits, over the same ANN priced in that arithmetic; +p<f> "
                                    "rows: only non-zero synapses counted, over the RUN's ANN (energy_vs_own_ann: "
                                    "over the ANN pruned to the same target)"}
                       if settings.quants or settings.prunes else {})},
        cells={**counts, "folder": CELLS},
        **ws.provenance(),
    )
    stem = ws.dir / "frontier"
    record.write(stem.with_suffix(".json"))
    write_markdown(stem.with_suffix(".md"), record)
    plots.frontier(stem.with_suffix(".png"), rows, record.pareto_front, record.chosen,
                   ann_test["test_accuracy"], n)
    chosen = record.chosen
    print(f"\n{counts['simulated']} cells simulated, {counts['reused']} reused; chosen on validation: "
          + ("none within 1 pp" if chosen is None else
             f"{label(chosen)} {method_label(chosen)} T={chosen.timesteps}: SNN "
             f"{stats.format_recorded(chosen, 'snn_accuracy')} vs ANN {stats.format_recorded(chosen, 'ann_accuracy')}, "
             f"energy {chosen.normalized_energy:.4f} ({chosen.saving:.1f}x)"))
    print(f"  -> {stem.with_suffix('.md')}")
    return record
