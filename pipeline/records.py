"""The result records: one frozen dataclass per result file (or row of one), which checks itself,
writes itself (`to_dict`, the JSON the stages have always written, key for key and in the same order)
and reads itself back (`from_dict`, also from files written before a field existed).

A field's meaning lives beside it (``metadata["meaning"]``, or `COMMON` for the fields every record
shares), and docs/result-fields.md is generated from them (``python -m pipeline.records markdown``).
What a finished result must match to be reused is a record too (`StdbKey`, `ConvertRecord.reusable`).

A record is also a read-only mapping of the fields it writes, so code that picks a field by name
(`stats.format_recorded`, `frontier.choose_point`, the plots) reads a record as it read the dict.
NumPy-free and TensorFlow-free: the report reads results without either.
"""
from __future__ import annotations

import collections.abc
import numbers
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field, fields

from pipeline import UserError, results

# --------------------------------------------------------------------- declaring fields
FRONTIER_METHODS = ("`conversion`, `qcfs`, `qcfs+sparsity` or `qcfs+stdb`; the first three also on the RUN's networks "
                    "quantised to b bits (`+q<b>`, `QUANTS`), pruned to target f (`+p<f>`, `PRUNES`) or both "
                    "(`+p<f>+q<b>`), `qcfs+stdb` on the pruned ones")
TUNED = ("`qcfs+stdb`: the fine-tune's `best_epoch`, `seconds`, validation accuracies before and after, and per "
         "epoch (0: the converted network) its validation accuracy, energy and non-inferiority to the ANN")
MCNEMAR = ("exact McNemar test of `{a}` vs `{b}` on the same samples: `{a}_only` and `{b}_only` (samples only "
           "that one gets right) and the two-sided binomial `p_value` (1 when they never disagree)")
INTERVAL = ("95 % Wilson score interval `[lo, hi]` of `{name}` on the samples it was measured on (absent in "
            "results older than intervals: the report computes it from the accuracy and its N)")

# Fields several records share, described once (a field declared without a meaning takes it from here).
COMMON = {
    "stage": "the stage that wrote the record",
    "simulator": "what simulated the SNN: `INI` (SNN Toolbox), `fast` (the engine in INI's place), `engine`",
    "timesteps": "simulation timesteps T",
    "num_samples": "test samples simulated (the first N of the test set, `N`): the N of the record's accuracies",
    "num_test_samples": "samples in the whole test set: the N of the `*_test` accuracies",
    "ann_accuracy": "the modified ANN on the same samples as the SNN",
    "ann_accuracy_test": "the modified ANN on the whole test set (`num_test_samples`)",
    "snn_accuracy": "the SNN's accuracy (its decision at the last timestep) on the simulated samples",
    "own_ann_accuracy": "the SNN's own ANN on the same samples (qcfs: the QCFS ANN; qcfs+sparsity: the QCFS ANN "
                        "fine-tuned with the sparsity penalty; otherwise the modified ANN)",
    "accuracy_per_timestep": "the SNN's accuracy after each timestep 1..T (bare: no intervals)",
    "predictions": "each sample's final class, one character a sample (class k is the k-th of `0-9a-z`, "
                   "`-` = undecided; a list of ints beyond 36 classes): `labels` and each classifier named in "
                   "the record, on the same samples, so any two results on them can be paired later",
    "normalized_energy": "SNN energy per inference / the ANN's (the energy model on the spikes of this very run)",
    "wall_seconds": "wall time of the whole stage run, seconds",
    "peak_memory_mb": "peak resident memory of the process, MB",
    "preset": "energy per operation (`PRESET`; `int8-acc32` by default in a RUN with `QUANT`)",
    "e_mac_pj": "energy of one multiply-accumulate, pJ",
    "e_ac_pj": "energy of one accumulate, pJ",
    "levels": "quantisation levels L of the QCFS network (`L`)",
    "leak": "multiplicative leak of the neurons (`LEAK`)",
    "config": "the ini that was run (path)",
    "split": "the samples: `validation` or `test`",
    "layer_energy": "per layer with MACs: its SNN energy / the modified ANN's dense energy",
    "input_floor_formula": "how `input_floor` was computed",
    "input_events_per_inference": "input spikes (events) per inference",
    "encoder_updates_per_inference": "the encoder's own updates per inference (counted for no coding)",
    "pooling": "how average pools are simulated: `linear` (their average current) or spiking",
    "readout": "how the output is read: `membrane` (the accumulated current of the output layer) or spike counts",
    "surrogate": "the surrogate gradient (`SURROGATE`)",
    "stdb_epochs": "training epochs (`STDB_EPOCHS`)",
    "thresholds_mode": "how the conversion thresholds were set (`THRESHOLDS`)",
    "coding": "the input coding (`CODING`)",
    "train_thresholds": "whether the hidden thresholds were trained (`TRAIN_THRESHOLDS`)",
    "train_leak": "whether the hidden leaks were trained (`TRAIN_LEAK`)",
    "neuron_lr": "the learning rate of thresholds and leaks (`NEURON_LR`)",
    "input_coding": "the input coding (`CODING`)",
    "lr": "the learning rate (`LR`)",
    "learning_rate": "the learning rate (`LR`)",
    "dataset": "the data: `name` and `sha256` of the dataset",
    "model": "the model: `path` and `sha256` of its .h5",
    "seed": "the RUN's seed",
    "versions": "python, tensorflow, numpy and snntoolbox versions",
}


def info(meaning=None, optional=False, kind=None):
    """A record field; ``meaning`` None takes the `COMMON` one; ``optional``: written only when set
    (a key today's stage writes only in some runs)."""
    return field(default=None if optional else MISSING,
                 metadata={"meaning": meaning, "optional": optional, "kind": kind})


def accuracy(meaning=None, optional=False):
    """A fraction of samples classified right: checked to lie in [0, 1]."""
    return info(meaning, optional, kind="accuracy")


def interval(optional=False):
    """``<accuracy>_interval``, checked to hold its accuracy; its meaning is `INTERVAL`."""
    return info(None, optional, kind="interval")


def mcnemar(optional=False):
    """``<a>_vs_<b>_mcnemar``; its meaning is `MCNEMAR`."""
    return info(None, optional, kind="mcnemar")


def count(meaning=None, optional=False):
    """A positive whole number (samples, timesteps)."""
    return info(meaning, optional, kind="count")


def meaning_of(f):
    """The meaning of a record field, as docs/result-fields.md gives it."""
    kind = f.metadata["kind"]
    if kind == "interval":
        return INTERVAL.format(name=f.name.removesuffix("_interval"))
    if kind == "mcnemar":
        a, b = f.name.removesuffix("_mcnemar").split("_vs_")
        return MCNEMAR.format(a=a, b=b)
    return f.metadata["meaning"] or COMMON[f.name]


# --------------------------------------------------------------------- the base
class Record(collections.abc.Mapping):
    """Base of the records: checks, `to_dict`, `from_dict`, `read`, `write` and the mapping view.

    A record read from a file writes back exactly the keys the file had, in its order: fields it
    lacked (an older file) stay unwritten, keys no field knows (a newer file) are kept.
    """
    FILES = ""                  # the result file(s) the record is, for the reference
    _keys = None                # the keys of the file it was read from, in order (None: made by a stage)
    _extra = types.MappingProxyType({})   # the values of that file's keys no field knows

    def __post_init__(self):
        for f in fields(self):
            value, kind = getattr(self, f.name), f.metadata.get("kind")
            if value is None or kind is None:
                continue
            if kind == "accuracy" and not (_is_number(value) and 0 <= value <= 1):
                self._refuse(f.name, value, "an accuracy in [0, 1]")
            elif kind == "count" and not (isinstance(value, numbers.Integral) and _is_number(value) and value > 0):
                self._refuse(f.name, value, "a positive whole number")
            elif kind == "interval":
                of = getattr(self, f.name.removesuffix("_interval"), None)
                pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)
                if not (pair and 0 <= value[0] <= value[1] <= 1
                        and (of is None or value[0] - 1e-9 <= of <= value[1] + 1e-9)):   # 1e-9: float rounding
                    self._refuse(f.name, value, "a 95 % interval [lo, hi] holding its accuracy")
            elif kind == "mcnemar" and not (isinstance(value, collections.abc.Mapping) and "p_value" in value):
                self._refuse(f.name, value, "a McNemar test {a_only, b_only, p_value}")

    def _refuse(self, name, value, wanted):
        raise UserError(f"{type(self).__name__}.{name} = {value!r} is not {wanted}")

    # the mapping view: the fields the record writes, by name
    def _written(self):
        if self._keys is not None:
            return list(self._keys)
        return [f.name for f in fields(self) if not (f.metadata["optional"] and getattr(self, f.name) is None)]

    def __getitem__(self, name):
        if name in self._extra:
            return self._extra[name]
        if name not in self._written():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self):
        return iter(self._written())

    def __len__(self):
        return len(self._written())

    def to_dict(self):
        """The JSON the record is written as: its fields in declaration order (a record read from a
        file: the file's keys in its order), nested records as dicts."""
        return {name: _plain(self[name]) for name in self._written()}

    @classmethod
    def from_dict(cls, data):
        """The record of a dict `to_dict` (or the stage before records existed) wrote; fields the
        dict lacks are None and stay unwritten."""
        if not isinstance(data, collections.abc.Mapping):
            raise UserError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        record = cls(**{name: _read(hints[name], data[name]) if name in data else None for name in names})
        object.__setattr__(record, "_keys", tuple(data))
        object.__setattr__(record, "_extra", types.MappingProxyType({k: v for k, v in data.items() if k not in names}))
        return record

    @classmethod
    def read(cls, path):
        """The record in the result file at `path` (a bad one: one line naming the file)."""
        try:
            return cls.from_dict(results.read_json(path))
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(str(path)) else f"{path}: {message}") from None

    def write(self, path):
        """Write the record to `path` atomically (`results.write_json`)."""
        results.write_json(path, self.to_dict())

    # dataclass(eq=True) would compare field values; records are equal when they write the same
    __eq__ = collections.abc.Mapping.__eq__
    __hash__ = None


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)   # NumPy's scalars too


def _plain(value):
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _read(hint, value):
    """``value`` read as ``hint``: nested records (also in lists, dict values, ``X | None``) from dicts."""
    if value is None:
        return None
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        records = [a for a in args if a is not type(None)]
        return _read(records[0], value) if len(records) == 1 else value
    if origin is list:
        return [_read(args[0], v) for v in value]
    if origin is dict:
        return {k: _read(args[1], v) for k, v in value.items()}
    return value


def record(cls):
    """The decorator of a record: frozen, keyword-only (fields in the order the JSON has them), with
    `Record`'s equality (what it writes)."""
    return dataclass(frozen=True, kw_only=True, eq=False)(cls)


# --------------------------------------------------------------------- convert and sweep
@record
class ConvertRecord(Record):
    """One ini simulated by SNN Toolbox's INI (or the engine in its place, ``SIM=fast``)."""
    FILES = "`convert_T<T>.json`, `convert_T<T>_fast.json` (`make convert`, `make sweep`)"
    stage: str = info()
    simulator: str = info()
    timesteps: int = count()
    num_samples: int = count("test samples really simulated (the ini's `num_to_test`)")
    ann_accuracy: float = accuracy()
    ann_accuracy_interval: list = interval()
    ann_accuracy_test: float = accuracy()
    ann_accuracy_test_interval: list = interval()
    num_test_samples: int = count()
    snn_accuracy: float = accuracy()
    snn_accuracy_interval: list = interval()
    accuracy_per_timestep: list = info()
    predictions: dict = info()
    snn_vs_ann_mcnemar: dict = mcnemar()
    wall_seconds: float = info()
    toolbox_seconds: dict = info("the simulator's seconds per part: `parse`, `normalize`, `build`, `simulate`")
    config: str = info()
    config_sha256: str = info("sha256 of the ini's content: a sweep reuses the record only for the same ini")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()

    def reusable(self, model_sha256, num_samples, config_sha256, simulator="INI"):
        """Whether a sweep may reuse this finished run: same simulator, model, samples and rendered ini."""
        return ((self.model or {}).get("sha256") == model_sha256 and self.num_samples == num_samples
                and self.simulator == simulator and self.config_sha256 == config_sha256)


@record
class AnnOriginalRecord(Record):
    """The published ESCAPE-NET (max pooling, biases, batch norm) against the modified one, for Table 1."""
    FILES = "`ann_original.json` (`make sweep`)"
    variant: str = info("`original`: the published ESCAPE-NET")
    ann_accuracy_test: float = accuracy("the original ESCAPE-NET on the whole test set")
    ann_accuracy_test_interval: list = interval()
    modified_ann_accuracy_test: float = accuracy("the modified ESCAPE-NET (the RUN's model) on the whole test set")
    modified_ann_accuracy_test_interval: list = interval()
    num_test_samples: int = count()
    predictions: dict = info()
    original_vs_modified_mcnemar: dict = mcnemar()
    model: dict = info("the original ESCAPE-NET: `path` and `sha256` of its .h5")
    dataset: dict = info()
    train_seconds: float = info("seconds the original ESCAPE-NET trained")
    epochs: int = info("its training epochs")


# --------------------------------------------------------------------- stdb and stdb-sweep
@record
class StdbKey(Record):
    """What a finished stdb_T<T>.json must match to be reused by a sweep: the model, the samples and
    every STDB setting (``selection``: not one whose epoch was chosen by another rule)."""
    FILES = "`signature` of `stdb_T<T>.json`"
    model_sha256: str = info("sha256 of the RUN's model")
    num_samples: int = count()
    ntrain: int = count("training samples STDB used (`NTRAIN`)")
    selection: str = info("how the kept epoch was chosen")
    leak: float = info()
    surrogate: str = info()
    lr: float = info()
    stdb_epochs: int = info()
    thresholds_mode: str = info()
    coding: str = info()
    train_thresholds: bool = info()
    train_leak: bool = info()
    neuron_lr: float = info()
    sparsity: float = info("the activation-sparsity penalty weight (`SPARSITY`); 0 is left out, so "
                           "results from before `SPARSITY` match", optional=True)

    @classmethod
    def of(cls, settings, model_sha256, num_samples, ntrain, selection):
        """The key of a stdb run with these stage settings (`pipeline.settings.Settings`)."""
        return cls(model_sha256=model_sha256, num_samples=num_samples, ntrain=ntrain, selection=selection,
                   leak=settings.leak, surrogate=settings.surrogate, lr=settings.lr,
                   stdb_epochs=settings.stdb_epochs, thresholds_mode=settings.thresholds, coding=settings.coding,
                   train_thresholds=settings.train_thresholds, train_leak=settings.train_leak,
                   neuron_lr=settings.neuron_lr, sparsity=settings.sparsity or None)


@record
class StdbRecord(Record):
    """One STDB fine-tuning run: the converted network before and after, the export checked on the toolbox."""
    FILES = "`stdb_T<T>.json` (`make stdb`, `make stdb-sweep`)"
    stage: str = info()
    simulator: str = info()
    timesteps: int = count()
    num_samples: int = count()
    ann_accuracy: float = accuracy()
    ann_accuracy_interval: list = interval()
    ann_accuracy_test: float = accuracy()
    ann_accuracy_test_interval: list = interval()
    num_test_samples: int = count()
    snn_accuracy_before: float = accuracy("the converted network before STDB (epoch 0) on the test samples")
    snn_accuracy: float = accuracy("the network after STDB (its chosen epoch) on the test samples")
    snn_accuracy_before_interval: list = interval()
    snn_accuracy_interval: list = interval()
    improvement: float = info("`snn_accuracy` - `snn_accuracy_before`")
    validation_samples: int = count("validation samples the kept epoch was chosen on")
    validation_accuracy_before: float = accuracy("the converted network on the validation samples")
    validation_accuracy: float = accuracy("the kept epoch on the validation samples")
    validation_accuracy_before_interval: list = interval()
    validation_accuracy_interval: list = interval()
    ann_validation_accuracy: float = accuracy("the modified ANN on the validation samples")
    ann_validation_accuracy_interval: list = interval()
    accuracy_per_timestep: list = info()
    predictions: dict = info("as elsewhere, for `labels`, `snn`, `ann`, `snn_before` (the converted network) "
                             "and `toolbox_export` (the export on SNN Toolbox)")
    snn_vs_ann_mcnemar: dict = mcnemar()
    snn_vs_snn_before_mcnemar: dict = mcnemar()
    best_epoch: int = info("the kept epoch, chosen on validation; 0: no trained epoch beat the converted "
                           "network, which is kept")
    leak: float = info()
    surrogate: str = info()
    learning_rate: float = info()
    stdb_epochs: int = info()
    ntrain: int = count("training samples, class-balanced from the ANN's training split (`NTRAIN`)")
    train_thresholds: bool = info()
    train_leak: bool = info()
    neuron_lr: float = info()
    sparsity: float = info("the activation-sparsity penalty weight (`SPARSITY`)")
    thresholds_mode: str = info()
    threshold_source: str = info("where the conversion thresholds came from, in words")
    coding: str = info()
    poisson_rule: str = info("how Poisson input spikes are drawn")
    pooling: str = info()
    readout: str = info()
    initial_membrane: float = info("the membranes' start, in thresholds")
    history: list = info("per trained epoch: its loss, accuracies and seconds (bare accuracies)")
    seconds_per_epoch: float = info("mean seconds of a training epoch")
    peak_memory_mb: float = info()
    wall_seconds: float = info()
    thresholds: dict = info("the kept network's threshold per layer")
    leaks: dict = info("the kept network's leak per layer")
    exported_model: str = info("the exported .h5 (thresholds folded into the weights)")
    exported_folded: bool = info("whether the thresholds are folded into the exported weights")
    toolbox_export_accuracy: float = accuracy("the exported .h5 on SNN Toolbox's INI (normalize = False)")
    toolbox_export_accuracy_interval: list = interval()
    toolbox_export_note: str = info("why the toolbox's accuracy differs from the engine's")
    config: str = info("the ini of the toolbox check (path)")
    signature: StdbKey = info("what a sweep must match to reuse the run (`StdbKey`)")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()


# --------------------------------------------------------------------- energy
@record
class EnergyRecord(Record):
    """ANN operations vs SNN accumulates per inference, per layer and in total (seed Table 1, Figures 4-8)."""
    FILES = "`energy.json` (Poisson input), `energy_<CODING>.json` (`make energy`)"
    stage: str = info()
    preset: str = info()
    e_mac_pj: float = info()
    e_ac_pj: float = info()
    timesteps: int = count()
    input_coding: str = info()
    net: str = info("the network measured (`NET`: `converted`, `stdb`, `qcfs`)")
    network: str = info("that network, in words")
    pooling: str = info()
    readout: str = info()
    num_samples: int = count()
    layers: list = info("per layer: `name`, `neurons`, `ann_macs`, `ann_adds`, `snn_spikes`, `snn_acs`, "
                        "`snn_macs`, `ann_energy_j`, `snn_energy_j`, `ac_source` (what its ACs count), per inference")
    total: dict = info("the whole network: `ann_energy_j`, `snn_energy_j`, `normalized_energy` (SNN / ANN), "
                       "`saving` (ANN / SNN), per inference")
    memory: dict = info("the memory-inclusive model (`pipeline/energy/memory.py`): per layer and in total the SNN's "
                        "and the ANN's SRAM accesses and their energy beside the operations, "
                        "`normalized_energy_memory`, the word widths (`weight_bits`, membrane `bits`, "
                        "`activation_bits`), and the `footprint` (weights and neuron state, bytes)")
    per_timestep: dict = info("`snn_cumulative_energy_j` and `snn_cumulative_normalized` after each step, and the "
                              "`method` that splits the ACs over the steps")
    input: dict = info("the input coding's cost: its parameters, events per inference, the encoder's updates "
                       "(not counted), `floor_normalized_energy` (what the input alone costs) with its "
                       "`floor_formula`, `mean_abs_x`, and what the first layer measured")
    silent_fraction: dict = info("per layer, the fraction of neurons that never spiked: in the raster `sample` "
                                 "and over `all_samples`")
    raster_sample: int = info("the test sample of Figure 4 and of Figure 5's single-sample histogram")
    snn_accuracy: float = accuracy()
    snn_accuracy_interval: list = interval()
    ann_accuracy: float = accuracy()
    ann_accuracy_interval: list = interval()
    own_ann_accuracy: float = accuracy()
    own_ann_accuracy_interval: list = interval()
    predictions: dict = info()
    snn_vs_ann_mcnemar: dict = mcnemar()
    snn_seconds_per_sample: float = info("the engine's wall time per sample")
    ann_seconds_per_sample: float = info("the Keras ANN's wall time per sample")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()
    figures: dict = info("Figures 4-8: figure key -> PNG file name beside the record")


# --------------------------------------------------------------------- bench
@record
class BenchRecord(Record):
    """SNN Toolbox INI against the engine's fast simulation, on the same samples, T and constant input."""
    FILES = "`bench.json` (`make bench`)"
    timesteps: int = count()
    num_samples: int = count()
    ini_seconds: float = info("INI's simulate stage at its fastest batch size, seconds")
    engine_seconds: float = info("the engine's simulation after its warm-up, seconds")
    speedup: float = info("`ini_seconds` / `engine_seconds`")
    ann_dense_seconds: float = info("T dense ANN passes over the samples, seconds: the dense bound")
    dense_bound_ratio: float = info("`engine_seconds` / `ann_dense_seconds`")
    spike_agreement: float = info("fraction of equal per-neuron spike counts, INI vs engine, on "
                                  "`spike_agreement_samples` samples")
    accuracy_ini: float = accuracy("INI on the samples")
    accuracy_ini_interval: list = interval()
    accuracy_engine: float = accuracy("the engine on the samples")
    accuracy_engine_interval: list = interval()
    predictions: dict = info()
    engine_vs_ini_mcnemar: dict = mcnemar()
    peak_memory_mb: float = info("the engine's peak memory, MB")
    ini_batch_size: int = count("INI's fastest batch size, the one compared")
    ini_runs: dict = info("per INI batch size: `seconds` per toolbox stage, `accuracy` (with interval), "
                          "`peak_memory_mb`")
    ini_peak_memory_mb: float = info("INI's peak memory at that batch size, MB")
    engine_warmup_seconds: float = info("the engine's warm-up batch (compiling its loops), seconds")
    engine_stage_seconds: dict = info("the engine's thread-seconds by part")
    ann_dense_pass_seconds: float = info("one dense ANN pass over the samples, seconds")
    accuracy_per_timestep_equal: bool = info("whether INI and the engine have equal accuracy at every step")
    accuracy_max_abs_difference: float = info("their largest accuracy difference at any step")
    spike_agreement_samples: int = count("samples of the spike-count comparison")
    spike_agreement_per_layer: dict = info("`spike_agreement` per layer")
    sparse_agreement_per_layer: dict = info("per layer, the fraction of neurons whose spike counts the default "
                                            "event-driven currents give equal to the exact dense ones "
                                            "(`simulate(fast=True, sparse=False)`), same samples")
    load_average: dict = info("the machine's load average `before` and `after`")
    cpu_count: int = count("CPUs of the machine")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()
    snntorch: dict = info("with `PEERS=snntorch`: snnTorch on the engine's NIR export, its time, threads, "
                          "versions, accuracy and spike agreement with the engine", optional=True)


# --------------------------------------------------------------------- latency
@record
class LatencyRow(Record):
    """One method at one T of the latency stage, against its own ANN on the same test samples."""
    FILES = "`rows` of `latency*.json`"
    method: str = info("`conversion`, `conversion+stdb`, `qcfs` or `qcfs+stdb`")
    timesteps: int = count()
    ann_accuracy: float = accuracy("the method's own ANN (modified or QCFS) on the same samples")
    ann_accuracy_interval: list = interval()
    snn_accuracy: float = accuracy()
    snn_accuracy_interval: list = interval()
    normalized_energy: float = info()
    predictions: dict = info()
    snn_vs_ann_mcnemar: dict = mcnemar()


@record
class LatencyRecord(Record):
    """Accuracy and energy at low T, plain conversion vs QCFS (± STDB), membrane readout."""
    FILES = "`latency.json` (Poisson input), `latency_<CODING>.json` (`make latency`)"
    stage: str = info()
    rows: list[LatencyRow] = info("one `LatencyRow` per method and T")
    readout: str = info("the output read: `membrane`")
    pooling: str = info("average pools: `linear`")
    reset: str = info("the neurons' reset: `subtraction`")
    input_coding: str = info()
    leak: float = info()
    levels: int = count()
    sparsity: float = info("the activation-sparsity penalty weight of the QCFS fine-tune (`SPARSITY`)")
    num_samples: int = count()
    num_test_samples: int = count()
    preset: str = info()
    e_mac_pj: float = info()
    e_ac_pj: float = info()
    cheapest_within_1pp: dict[str, LatencyRow | None] = info(
        "per method and `overall`: the lowest-energy row whose SNN is within 1 pp of its ANN (null if none)")
    ann: dict = info("the ANNs: `modified` (the RUN's model; its `name`: `modified ESCAPE-NET` or "
                     "`MODEL=<file>`) and `qcfs`, each with `accuracy_on_samples` and `test_accuracy` "
                     "(whole test set; intervals beside), `path`, `sha256` (QCFS: its `lambda` per layer); "
                     "`qcfs_vs_modified_mcnemar` on the whole test set")
    conversion_thresholds: dict = info("the conversion thresholds: `values` per layer and `how` they were set")
    qcfs_toolbox_semantics: list = info("per T: the QCFS network under SNN Toolbox's semantics (v(0) = 0, "
                                        "spiking pools, spike counts), `snn_accuracy` with interval")
    poisson_input_ceiling: list | None = info("Poisson input only, per T: each ANN on the mean of the same first "
                                              "T input frames (`<method>_ann_accuracy`, with interval)")
    stdb: dict | None = info("`STDB=1`: the STDB settings (`epochs`, `train_samples`, `lr`, `surrogate`, "
                             "`selection`) and per fine-tuned row its `runs` (kept epoch, validation "
                             "accuracies, seconds, memory)")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()


# --------------------------------------------------------------------- frontier
@record
class FrontierRow(Record):
    """One network (method, input coding with its chosen parameter, T) on the frontier's test samples."""
    FILES = "`rows`, `chosen`, `pareto_front`, `cheapest_within_1pp_test` of `frontier.json`"
    coding: str = info("the input coding: `analog`, `poisson`, `rate`, `delta`")
    method: str = info(FRONTIER_METHODS)
    timesteps: int = count()
    parameter: str | None = info("the coding's parameter chosen on validation: `gain` (rate), `delta` (delta), "
                                 "null for none")
    value: float | None = info("its value")
    sparsity: float = info("the sparsity-penalty weight chosen on validation (`qcfs+sparsity`; else 0)")
    num_samples: int = count()
    ann_accuracy: float = accuracy()
    ann_accuracy_interval: list = interval()
    own_ann_accuracy: float = accuracy()
    own_ann_accuracy_interval: list = interval()
    snn_accuracy: float = accuracy()
    snn_accuracy_interval: list = interval()
    normalized_energy: float = info("SNN energy / the modified ANN's dense energy (one denominator for every row)")
    saving: float = info("1 / `normalized_energy`")
    energy_vs_own_ann: float = info("SNN energy / its own ANN's: the same weights in the same arithmetic (a `+p` "
                                    "row's ANN also skips its zero weights); else equal to `normalized_energy`",
                                    optional=True)
    normalized_energy_memory: float | None = info("the memory-inclusive SNN energy / its own ANN's (the same "
                                                  "weights: `energy.memory`); null in cells cached before it")
    footprint_bytes: dict | None = info("bytes stored, `snn` and `ann` (weights and neuron state)")
    input_floor: float = info("what the input alone costs, normalised as `normalized_energy` (its events' ACs "
                              "into conv1; analog: conv1's MACs)")
    input_floor_formula: str = info()
    layer_energy: dict = info()
    input_events_per_inference: float = info()
    encoder_updates_per_inference: float = info()
    validation_accuracy: float = accuracy("the SNN on the validation samples (bare)")
    validation_energy: float = info("its normalised energy on the validation samples")
    validation_candidates: list = info("every candidate tried on validation: `parameter`, `value`, `sparsity`, "
                                       "`accuracy`, `normalized_energy`, `vs_ann` (the paired "
                                       "non-inferiority test against the ANN: `frontier.non_inferiority`)")
    predictions: dict = info()
    snn_vs_ann_mcnemar: dict = mcnemar()
    stdb: dict = info(TUNED, optional=True)


@record
class FrontierCellKey(Record):
    """What one frontier cell depends on: its cache file is named by this key's hash
    (`frontier.cell_key`), so a changed model, threshold, coding, T, sample set or energy preset misses it."""
    FILES = "the name of `frontier_cells/<key>.json`"
    model: str = info("sha256 of the network's .h5")
    method: str = info(FRONTIER_METHODS)
    coding: str = info("the input coding")
    parameter: tuple = info("the coding's parameter: (`gain` or `delta` or null, its value)")
    timesteps: int = count()
    split: str = info()
    seed: int = info()
    levels: int = count()
    samples: str = info("digest of the samples and their labels (`frontier.samples_digest`)")
    thresholds: dict | None = info("the conversion thresholds (`conversion`; else null)")
    costs: list = info("[E_MAC, E_AC] in pJ")
    sparsity: float = info("the sparsity-penalty weight; 0 is left out", optional=True)
    stdb: dict = info("`qcfs+stdb`: the STDB settings, selection rule and training-sample digest", optional=True)
    weight_bits: int = info("the network's quantised weight width (the memory model's weight words); float is left "
                            "out", optional=True)


@record
class FrontierCell(Record):
    """One network simulated once on one sample set (validation or test): the frontier's cache."""
    FILES = "`frontier_cells/<key>.json` (make frontier)"
    method: str = info(FRONTIER_METHODS)
    coding: str = info("the input coding")
    parameter: str | None = info("the coding's parameter: `gain`, `delta` or null")
    value: float | None = info("its value")
    sparsity: float = info("the sparsity-penalty weight (0: none)")
    timesteps: int = count()
    split: str = info()
    num_samples: int = count("the samples simulated")
    accuracy: float = accuracy("the SNN on these samples (bare)")
    predictions: str | list = info("each sample's final class, encoded as in `predictions` elsewhere")
    normalized_energy: float = info()
    layer_energy: dict = info()
    normalized_energy_memory: float | None = info("the memory-inclusive SNN energy / the ANN's (`energy.memory`)")
    footprint_bytes: dict | None = info("bytes stored, `snn` and `ann` (weights and neuron state)")
    input_floor: float = info("what the input alone costs, normalised as `normalized_energy`")
    input_floor_formula: str = info()
    input_events_per_inference: float = info()
    encoder_updates_per_inference: float = info()
    seconds: float = info("seconds to simulate and count it")
    stdb: dict = info(TUNED, optional=True)


@record
class FrontierRecord(Record):
    """Every input coding x method x T: accuracy against energy, the Pareto front, the point chosen on validation."""
    FILES = "`frontier.json` (`make frontier`)"
    stage: str = info()
    rows: list[FrontierRow] = info("one `FrontierRow` per coding, method and T, its parameter chosen on validation")
    num_samples: int = count()
    validation_samples: int = count("validation samples the parameters and the reported point were chosen on")
    codings: list = info("the input codings (`CODINGS`)")
    methods: list = info("the methods")
    timesteps: list = info("the T values (`TS`)")
    gains: list = info("the rate gains chosen from (`GAINS`)")
    deltas: list = info("the delta steps chosen from (`DELTAS`)")
    sparsities: list = info("the penalty weights chosen from (`SPARSITIES`)")
    levels: int = count()
    preset: str = info()
    e_mac_pj: float = info()
    e_ac_pj: float = info()
    ann_energy_j: float = info("the modified ANN's dense energy per inference, J: the one denominator")
    ann: dict = info("the ANNs: the modified one's `test_accuracy` (with interval) and `validation_accuracy`, "
                     "the QCFS one's `qcfs_test_accuracy` and `qcfs_validation_accuracy`, and per penalty weight "
                     "`qcfs_sparsity`")
    chosen: FrontierRow | None = info("the cheapest network tried on validation non-inferior to the modified ANN "
                                      "there (`choice_rule`), by its validation energy, measured on the test samples "
                                      "(null if none)")
    pareto_front: list[FrontierRow] = info("the rows no other row beats on both accuracy and energy, by energy")
    cheapest_within_1pp_test: FrontierRow | None = info("the cheapest row non-inferior to the ANN on the test set "
                                                        "itself (picked on the test set: optimistic)")
    choice_rule: str = info("the rule that chose `chosen`, in words", optional=True)
    conversion_thresholds: dict = info("the conversion thresholds: `values` per layer and `how` they were set")
    left_out: dict = info("methods without rows and why: a `conversion` whose calibration found a silent layer "
                          "(a heavily pruned network at a small T)", optional=True)
    stdb: dict | None = info("`STDB=1`: the STDB settings, `train_samples`, what the epoch was chosen on and the "
                             "`selection` rule")
    accounting: dict = info("the energy accounting in words: `denominator`, `encoder`, `floor`")
    cells: dict = info("cells `simulated` and `reused` by this run, and the `folder` of the cell cache")
    dataset: dict = info()
    model: dict = info()
    seed: int = info()
    versions: dict = info()


# --------------------------------------------------------------------- SEEDS=
@record
class SeedsRow(Record):
    """One row of a stage run once per training seed: each seed's values and their mean across seeds."""
    FILES = "`rows` of `table2_seeds.json`, `frontier_seeds.json`"
    key: dict = info("what the row is: `timesteps` (sweep); `coding`, `method`, `timesteps` (frontier)")
    per_seed: list = info("per seed, in the order of `seeds`: `seed`, `run`, each quantity (accuracies with their "
                          "95 % Wilson interval on `num_samples`), the seed's paired SNN-vs-ANN test and, for the "
                          "frontier, the coding parameter and penalty weight its validation split chose")
    across: dict = info("per quantity: `mean`, `std` (sample standard deviation), `half_width`, `interval` "
                        "[lo, hi] (Student t over the seeds, n - 1 degrees of freedom: `stats.across_seeds`) and "
                        "`n` seeds; std and interval null with one seed")


@record
class SeedsRecord(Record):
    """A stage run once per training seed (`SEEDS`): every seed's rows, the means across seeds with t intervals."""
    FILES = "`table2_seeds.json` (`make sweep SEEDS=...`), `frontier_seeds.json` (`make frontier SEEDS=...`)"
    stage: str = info()
    seeds: list = info("the training seeds (`SEEDS`)")
    runs: list = info("each seed's RUN (`<RUN>-seed<s>`, in the order of `seeds`): its own run.json, trained model "
                      "and results")
    num_samples: int = count()
    confidence: float = info("the confidence of the across-seed intervals")
    rows: list[SeedsRow] = info("one `SeedsRow` per row of the stage's table (T; coding, method and T)")
    chosen: SeedsRow | None = info("frontier: each seed's point chosen on its validation split (`key`: the "
                                   "network per seed differs, so empty) and their mean", optional=True)


# --------------------------------------------------------------------- the reference
RECORDS = (ConvertRecord, AnnOriginalRecord, StdbRecord, StdbKey, EnergyRecord, LatencyRecord, LatencyRow,
           FrontierRecord, FrontierRow, FrontierCell, FrontierCellKey, BenchRecord, SeedsRecord, SeedsRow)


def markdown():
    """docs/result-fields.md: every record's fields with their JSON type and meaning."""
    lines = ["# Result fields", "",
             ("Generated from `pipeline/records.py` (`python -m pipeline.records markdown > docs/result-fields.md`); "
             "`tests/test_records.py` keeps it equal. Every result file is written atomically (temp file + "
             "rename). Every accuracy `X` has `X_interval` beside it (its 95 % Wilson interval on the samples it "
             "was measured on); per-timestep curves, STDB's per-epoch history and the frontier's validation "
             "accuracies stay bare. A record read from a file written before a field existed lacks it; "
             "the report computes a missing interval from the accuracy and its N, and writes `(N unknown)` "
             "where N was not recorded."), ""]
    for cls in RECORDS:
        lines += [f"## {cls.__name__}: {cls.FILES}", "", " ".join(cls.__doc__.split()).replace("``", "`"), "",
                  "| field | type | meaning |", "|---|---|---|"]
        lines += [f"| `{f.name}` | {_cell(f.type)} | {_cell(meaning_of(f))}"
                  + (" (written only when set)" if f.metadata["optional"] else "") + " |" for f in fields(cls)]
        lines.append("")
    return "\n".join(lines)


def _cell(text):
    return text.replace("|", "\\|")     # a type such as `FrontierRow | None` inside a table cell


if __name__ == "__main__":
    print({"markdown": markdown}[sys.argv[1] if len(sys.argv) > 1 else "markdown"]())
