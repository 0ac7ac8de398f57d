"""Every stage and every setting, declared once.

`STAGE_LIST` declares the stages: name, code, what each answers and writes. The `Settings` dataclass
declares the settings: Make name, default, choices and meaning. From them come the CLI's stages and
``--flags`` (`parser`), `__main__`'s dispatch, the ``NAME=value`` arguments the Makefile passes (`parse`),
the Makefile's stage targets and variable names and `make help` (``python -m pipeline.settings
stages|names|help``), and the README's stage and variable tables (``python -m pipeline.settings
stages-markdown|markdown``; a test keeps the README equal to them). Standard library only: the Makefile
runs this module without the venv.
"""
import argparse
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from pipeline import UserError



@dataclass(frozen=True)
class Stage:
    """A stage: its Make target and CLI name, the code it runs (``module[:function]``, ``main`` when no
    function is named), the question it answers and what it writes under ``results/<RUN>/``."""
    name: str
    entry: str
    answers: str
    writes: str


# The one list of stages: the CLI's choices, `__main__`'s dispatch, the Makefile's targets and `make help`.
STAGE_LIST = (
    Stage("convert", "pipeline.stages.convert", "ANN vs SNN accuracy at T (INI, or the engine with SIM=fast)",
          "convert_T<T>.json"),
    Stage("sweep", "pipeline.stages.sweep", "Tables 1-2: SNN accuracy per T of TS; the original ESCAPE-NET",
          "table2.{md,csv,png}, ann_original.json, convert_T<T>.json"),
    Stage("compare", "pipeline.stages.compare", "one network and its samples on several toolbox simulators (SIMS)",
          "simulators.{md,json}"),
    Stage("stdb", "pipeline.stages.stdb", "what STDB fine-tuning at T buys over the converted network",
          "stdb_T<T>.{json,h5}, stdb_T<T>_curves.png"),
    Stage("stdb-sweep", "pipeline.stages.stdb:sweep_main", "Table 3: STDB at every T of TS",
          "table3.{md,csv}, stdb_T<T>.*"),
    Stage("energy", "pipeline.stages.energy", "per-layer operations and energy of NET vs the ANN (CODING, PRESET)",
          "energy[_<CODING>].json, energy_fig*.png"),
    Stage("bench", "pipeline.stages.bench", "the engine's fast path vs INI (and PEERS): seconds, spike agreement",
          "bench.json"),
    Stage("latency", "pipeline.stages.latency", "low T: plain conversion vs QCFS (STDB=1: fine-tuned) per T",
          "latency[_<CODING>].{json,md,png}"),
    Stage("frontier", "pipeline.stages.frontier", "the accuracy-energy frontier: codings x methods x T",
          "frontier.{json,md,png}, frontier_cells/"),
    Stage("export", "pipeline.stages.export", "NET as a NIR graph, read back and checked on the engine",
          "<NET>_T<T>.nir, <NET>_T<T>.json"),
    Stage("interop", "pipeline.stages.interop", "snnTorch and NeuroBench on the exported graph vs the engine",
          "interop.{json,md}"),
    Stage("report", "pipeline.stages.report", "everything collected; missing stages named with their command",
          "REPORT.md"),
)
STAGES = tuple(s.name for s in STAGE_LIST)
CLUSTER_STAGES = ("sweep", "frontier")   # the stages whose work EXECUTOR= may send to a Dask cluster
SEED_STAGES = ("sweep", "frontier", "latency")      # the stages SEEDS= runs once per seed
TRUE = ("1", "yes", "true")


def _parser(step):
    """A parser factory: for the setting ``name``, ``text -> step(name, text)`` (its errors name the setting)."""
    return lambda name: lambda text: step(name, text)


def _number(kind, word):
    """``kind(text)``, or one line naming the setting (``word``: what it must be)."""
    def step(name, text):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not {word}") from None
    return _parser(step)


_int = _number(int, "an integer")
_float = _number(float, "a number")


def _checked(number, ok, must):
    """``number`` (`_int` or `_float`) that also passes ``ok``; else one line, ``NAME=value`` then ``must``."""
    def step(name, text):
        value = number(name)(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{name}={value} {must}")
        return value
    return _parser(step)


_positive_int = _checked(_int, lambda v: 0 < v < float("inf"), "must be a positive integer")
_positive_float = _checked(_float, lambda v: 0 < v < float("inf"), "must be a positive number")
_non_negative_int = _checked(_int, lambda v: v >= 0, "must be an integer >= 0")
_non_negative_float = _checked(_float, lambda v: 0 <= v < float("inf"), "must be a number >= 0")
_quant_bits = _checked(_int, lambda v: v == 0 or 2 <= v <= 8, "must be 0 (float) or a width of 2 to 8 bits")
_fraction = _checked(_float, lambda v: 0 <= v < 1, "must lie in [0, 1)")


def _list_of(item, example):
    """Space- or comma-separated values, each parsed by ``item``."""
    def step(name, text):
        values = tuple(item(name)(part) for part in text.replace(",", " ").split())
        if not values:
            raise argparse.ArgumentTypeError(f"{name} is empty: give {example}")
        return values
    return _parser(step)


_int_list = _list_of(_positive_int, 'timesteps like "50 100 300"')
_float_list = _list_of(_positive_float, 'positive numbers like "1 2 4"')


def _seed_list(name):
    """Distinct non-negative integer seeds, space- or comma-separated."""
    def parse(text):
        values = tuple(_int(name)(part) for part in text.replace(",", " ").split())
        if not values:
            raise argparse.ArgumentTypeError(f"{name} is empty: give seeds like \"0 1 2\"")
        bad = [v for v in values if v < 0]
        if bad:
            raise argparse.ArgumentTypeError(f"{name}={bad[0]} must be a non-negative integer")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise argparse.ArgumentTypeError(f"{name}={text!r} names seed {repeated[0]} twice")
        return values
    return parse


def _choices_list(name, choices):
    def parse(text):
        values = tuple(text.replace(",", " ").split())
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{name}={text!r}: choose from {', '.join(choices)}")
        return tuple(dict.fromkeys(values))
    return parse


def _choice(name, choices):
    def parse(text):
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{name}={text!r}: choose one of {', '.join(choices)}")
        return text
    return parse


def _folder(name):
    """A folder to write into (made when first written), as an absolute path: a sweep's child processes
    and a RUN's later stages find the same place whatever their working directory."""
    def parse(text):
        path = Path(text).expanduser()
        if not text or (path.exists() and not path.is_dir()):
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not a folder")
        return str(path.resolve())
    return parse


def _executor(name):
    """`local`, or a Dask scheduler's address ``tcp://host:port`` (checked here; reached by `pipeline.cluster`)."""
    def parse(text):
        match = re.fullmatch(r"tcp://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})", text)
        if text != "local" and not (match and 0 < int(match[2]) < 65536):
            raise argparse.ArgumentTypeError(f"{name}={text!r}: `local` or a Dask scheduler address "
                                             "tcp://host:port")
        return text
    return parse


def _words(name):
    return lambda text: tuple(text.split())


def option(make, meaning, default=None, parse=None, choices=None, flag=False, shown=None):
    """A setting: Make variable ``make``, its meaning, default (``shown`` in help when the real
    default is decided later, e.g. by the RUN's record) and how its text is parsed."""
    return field(default=default, metadata={"make": make, "meaning": meaning, "parse": parse, "choices": choices,
                                            "flag": flag, "shown": shown})


@dataclass(frozen=True)
class Settings:
    stage: str
    run: str = option("RUN", "results folder `results/<RUN>/`; the first stage records data, scale, width, "
                             "`ARCH`, epochs, seed, `PRUNE`, `QUANT`, `VAL_TRIALS`, `MODEL` and model in `run.json`, "
                             "later stages reuse them; asking for others is refused (use another RUN, or `FORCE=1` "
                             "with the new value)",
                      "default")
    out: str | None = option("OUT", "where `results/`, `keras_models/trained/`, `data/` and `snn_configs/generated/` "
                                    "are written and read (e.g. a cluster's scratch); every stage of a RUN needs the "
                                    "same OUT", parse=_folder, shown="the checkout")
    data: str | None = option("DATA", "`synthetic`, or a RAT `.mat` / generic `.npz` path",
                              shown="recorded, else `synthetic`")
    epochs: int | None = option("EPOCHS", "ANN training epochs", parse=_positive_int, shown="recorded, else 8")
    width: int | None = option("WIDTH", "filters per conv layer", parse=_positive_int, shown="recorded, else 64")
    arch: str | None = option("ARCH", "the network the pipeline trains: `escape_net` (2-D convolutions over the "
                                      "channels x time map) or `escape_net_1d` (1-D convolutions over time, the "
                                      "channels as features: each recording seen as (1, time, channels); "
                                      "convert, sweep, compare, stdb, energy, bench, export, interop; not latency "
                                      "or frontier, [docs/one-d.md](docs/one-d.md)); not with `MODEL`",
                              choices=("escape_net", "escape_net_1d"), shown="recorded, else `escape_net`")
    scale: str | None = option("SCALE", "`signed` (÷ the training set's peak \\|x\\|, to [-1, 1]) or `unsigned` "
                                        "(min-max to [0, 1]); the test set uses the training set's factors and is "
                                        "clipped; `make compare` gives signed data to its simulators as ON/OFF "
                                        "channels (max(x, 0), max(−x, 0))", choices=("signed", "unsigned"),
                              shown="recorded, else `signed`")
    prune: float | None = option("PRUNE", "fraction of each Conv2D/Dense kernel set to zero by magnitude pruning "
                                          "(tensorflow-model-optimization; the trained ANN, and the QCFS fine-tune, "
                                          "fine-tuned while it prunes); the energy model counts only non-zero "
                                          "synapses, for the ANN too ([docs/pruning.md](docs/pruning.md)); 0: not "
                                          "pruned", parse=_fraction,
                              shown="recorded, else 0")
    quant: int | None = option("QUANT", "weight width in bits after training: each Conv2D/Dense kernel quantised "
                                        "symmetrically per output channel (post-training; after `PRUNE`), biases "
                                        "kept float32; the model, the engine and the NIR export hold q × scale; "
                                        "energy then defaults to `PRESET=int8-acc32` and counts weights at this "
                                        "width ([docs/quantisation.md](docs/quantisation.md)); 0: float",
                               parse=_quant_bits, shown="recorded, else 0")
    val_trials: int | None = option("VAL_TRIALS", "synthetic data only: that many more trials, from their own "
                                                  "random stream, as the validation split every choice is made on "
                                                  "(the ANN's and STDB's best epoch, the frontier's point); the ANN "
                                                  "then trains on every original training trial; a 1-pp paired "
                                                  "non-inferiority choice needs about 12,600 (4,000 where the SNN "
                                                  "and the ANN disagree on 5 % of trials: "
                                                  "[docs/energy-memory.md](docs/energy-memory.md)); 0: 10 % of the "
                                                  "training trials", parse=_non_negative_int,
                                    shown="recorded, else 0")
    seed: int | None = option("SEED", "seed of data split, training and simulation", parse=_int,
                              shown="recorded, else 0")
    seeds: tuple | None = option("SEEDS", "`make sweep`, `make frontier` and `make latency` once per seed "
                                          "(e.g. `\"0 1 2\"`), each in "
                                          "its own RUN `<RUN>-seed<s>` (its own training, `run.json` and results); "
                                          "the across-seed table (per-seed rows, mean with its Student t interval "
                                          "over seeds) in `results/<RUN>/`; not with `SEED` "
                                          "([docs/seeds.md](docs/seeds.md))",
                                 parse=_seed_list, shown="— (the RUN's one seed)")
    model: str | None = option("MODEL", "a trained Keras `.h5` to convert instead of training ESCAPE-NET (convert, "
                                        "sweep without the `original` row, compare, stdb, energy, bench, latency); "
                                        "checked first: every layer convertible, input shape, output size; recorded "
                                        "in `run.json` with its sha256", shown="recorded, else —")
    timesteps: int | None = option("T", "simulation timesteps", parse=_positive_int, shown="— (compare 100)")
    timesteps_list: tuple = option("TS", "a list of timesteps (sweeps, latency, frontier)", (), parse=_int_list,
                                   shown="—")
    num_samples: int | None = option("N", "test samples simulated; the toolbox's batch size is the largest divisor "
                                          "of N up to 50", parse=_positive_int,
                                     shown="100 (bench and interop 50, compare 20)")
    ntrain: int | None = option("NTRAIN", "training samples for STDB, class-balanced from the ANN's training split "
                                          "(its validation split chooses the epoch; NTRAIN at least the split's size: "
                                          "all of it); conversion thresholds are calibrated on 100 others "
                                          "(`pipeline/conversion.py`)",
                                parse=_positive_int, shown="256")
    stdb_epochs: int = option("STDB_EPOCHS", "STDB training epochs; the best on the validation split is kept", 10,
                              parse=_positive_int)
    jobs: int = option("JOBS", "stdb-sweep: T values trained at once, each in its own process with cores/JOBS "
                               "threads", 1, parse=_positive_int)
    leak: float = option("LEAK", "multiplicative leak of the STDB / latency neurons, in (0, 1]", 1.0,
                         parse=_float)
    surrogate: str = option("SURROGATE", "STDB's surrogate gradient: `linear` γ·max(0, 1 − \\|u/θ − 1\\|), γ = 0.3, or "
                                         "`stdb` α·exp(−β·Δt), α = 0.3, β = 0.01", "linear",
                            choices=("linear", "stdb"))
    lr: float = option("LR", "STDB learning rate (Adam with coupled L2 5e-4, batch 32)", 1e-4, parse=_float)
    train_thresholds: bool = option("TRAIN_THRESHOLDS", "`1`: STDB also trains the hidden thresholds (DIET-SNN)",
                                    False, flag=True)
    train_leak: bool = option("TRAIN_LEAK", "`1`: STDB also trains the hidden leaks", False, flag=True)
    neuron_lr: float = option("NEURON_LR", "STDB's learning rate of the log thresholds and log leaks", 1e-2,
                              parse=_float)
    thresholds: str = option("THRESHOLDS", "conversion thresholds: `max` (0.7 × max input current, Rathi et al.) "
                                           "or `toolbox` (the toolbox's scale factors)", "max",
                             choices=("max", "toolbox"))
    coding: str = option("CODING", "input coding of the engine: `poisson`, `analog` (constant current), `rate` "
                                   "(deterministic integrate-and-fire encoder, rate `GAIN`·\\|x\\|) or `delta` "
                                   "(level crossings of step `DELTA`, sent once, held as conv1's current); "
                                   "`make interop` sends the peers the engine's own frames (poisson, rate) or the "
                                   "held input (analog), "
                                   "and refuses delta", "poisson",
                         choices=("poisson", "analog", "rate", "delta"))
    gain: float = option("GAIN", "input gain g of `CODING=rate`: events at rate g·\\|x\\| (at most one a step), each "
                                 "of amplitude 1/g", 1.0, parse=_positive_float)
    delta: float = option("DELTA", "level step Δ of `CODING=delta`: floor(\\|x\\|/Δ) events of amplitude Δ per input "
                                   "value", 0.05, parse=_positive_float)
    codings: tuple = option("CODINGS", "input codings `make frontier` compares", ("analog", "poisson", "rate", "delta"),
                            parse=lambda name: _choices_list(name, ("poisson", "analog", "rate", "delta")),
                            shown="`analog poisson rate delta`")
    gains: tuple = option("GAINS", "rate-encoder gains `make frontier` chooses from on the validation split",
                          (1.0, 4.0, 16.0), parse=_float_list, shown="`1 4 16`")
    deltas: tuple = option("DELTAS", "delta-encoder steps `make frontier` chooses from on the validation split",
                           (0.02, 0.05, 0.1), parse=_float_list, shown="`0.02 0.05 0.1`")
    sparsity: float = option("SPARSITY", "activation-sparsity penalty weight: the QCFS fine-tune (`make latency`, "
                                         "`NET=qcfs`) adds weight × the hidden QCFS neurons' mean activation h/λ to "
                                         "its loss, STDB weight × the hidden neurons' mean firing rate (spikes per "
                                         "neuron and step): the same quantity, as h/λ is the rate the converted neuron "
                                         "fires at; 0: no penalty", 0.0, parse=_non_negative_float)
    sparsities: tuple = option("SPARSITIES", "penalty weights the `qcfs+sparsity` rows of `make frontier` choose from "
                                             "on the validation split", (4.0, 16.0), parse=_float_list,
                               shown="`4 16`")
    quants: tuple = option("QUANTS", "weight widths in bits: `make frontier` adds its `conversion`, `qcfs` and "
                                     "`qcfs+sparsity` rows on the RUN's networks quantised to each (methods "
                                     "`…+q<b>`, energy at `int8-acc32`; [docs/quantisation.md](docs/quantisation.md))",
                           (), parse=_list_of(_quant_bits, 'widths like "8 4"'), shown="— (none)")
    prunes: tuple = option("PRUNES", "pruning targets: `make frontier` adds its `conversion`, `qcfs` and "
                                     "`qcfs+sparsity` rows on the RUN's networks pruned to each (methods "
                                     "`…+p<f>`; with `QUANTS` also pruned, then quantised: `…+p<f>+q<b>`; "
                                     "[docs/pruning.md](docs/pruning.md))",
                           (), parse=_list_of(_fraction, 'fractions like "0.5 0.9"'), shown="— (none)")
    net: str = option("NET", "the network `make energy` measures, `make export` writes and `make interop` "
                             "cross-checks: `converted` (INI "
                             "semantics), `stdb` (the `make stdb` result at T) or `qcfs` (the QCFS network, `L` "
                             "levels, v(0) = θ/2)", "converted", choices=("converted", "stdb", "qcfs"))
    preset: str | None = option("PRESET", "energy per operation: `45nm-fp32`, `fp16`, `int8` (8-bit adds) or "
                                          "`int8-acc32` (8-bit multiplies, 32-bit adds)",
                                choices=("45nm-fp32", "fp16", "int8", "int8-acc32"),
                                shown="`45nm-fp32`; `int8-acc32` in a RUN with `QUANT`")
    mac_pj: float | None = option("MAC_PJ", "energy of a MAC in pJ (with `AC_PJ`, overrides `PRESET`)",
                                  parse=_float, shown="—")
    ac_pj: float | None = option("AC_PJ", "energy of an AC in pJ (with `MAC_PJ`)", parse=_float, shown="—")
    levels: int = option("L", "quantisation levels of the QCFS network (`make latency`)", 8, parse=_positive_int)
    sim: str = option("SIM", "`INI` (SNN Toolbox) or `fast` (the engine in INI's place) for convert/sweep", "INI",
                      choices=("INI", "fast"))
    sims: tuple = option("SIMS", "toolbox simulators `make compare` runs, e.g. \"INI brian2\" (brian2: the `sims` "
                                         "extra, which `make compare` installs)", ("INI",),
                         parse=_words, shown="INI")
    peers: tuple = option("PEERS", "simulators we did not write that `make bench` also runs on the same network and "
                                   "input: `snntorch` (its NIR import, corrected to the file's IF, in "
                                   "`.venv-interop`, which make builds)", (),
                          parse=lambda name: _choices_list(name, ("snntorch",)), shown="—")
    config: str | None = option("CONFIG", "run an existing ini as is (`make convert CONFIG=path.ini`)", shown="—")
    stdb: bool = option("STDB", "`1`: `make latency` adds STDB-fine-tuned rows, `make frontier` `qcfs+stdb` rows "
                                "(and `qcfs+stdb+p<f>` per `PRUNES`; minutes each)", False, flag=True)
    executor: str = option("EXECUTOR", "where `make frontier` simulates its cells and `make sweep` its T values: "
                                       "`local` (this process) or a Dask scheduler `tcp://host:port` whose workers "
                                       "simulate them (results identical; docs/cluster.md)", "local", parse=_executor)
    force: bool = option("FORCE", "`1`: recompute what the RUN recorded: settings not given come from its "
                                   "`run.json` (not the defaults), a value given replaces the recorded one and "
                                   "the summary prints what changed", False, flag=True)

    def input_coding(self):
        """The engine's input-coding fields (`network.Neurons`: coding, gain, delta) these settings ask for."""
        return {"coding": self.coding, "gain": self.gain, "delta": self.delta}

    def stdb_choices(self):
        """STDB's fields (`training.stdb.StdbSettings`) these settings ask for: STDB_EPOCHS, LR, SURROGATE,
        TRAIN_THRESHOLDS, TRAIN_LEAK, NEURON_LR, SPARSITY."""
        return {"epochs": self.stdb_epochs, "learning_rate": self.lr, "surrogate": self.surrogate,
                "train_thresholds": self.train_thresholds, "train_leak": self.train_leak,
                "neuron_lr": self.neuron_lr, "sparsity": self.sparsity}


OPTIONS = tuple(f for f in fields(Settings) if f.metadata)
BY_MAKE_NAME = {f.metadata["make"]: f for f in OPTIONS}


def flag_of(f):
    return "--" + f.name.replace("_", "-")


def default_text(f):
    meta = f.metadata
    if meta["shown"] is not None:
        return meta["shown"]
    if meta["flag"]:
        return "off"
    return f"`{f.default}`" if isinstance(f.default, str) else str(f.default)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # "argument --flag: NAME=value ..." -> "NAME=value ...": the message already names the setting
        raise UserError(re.sub(r"^argument --[a-z-]+: (?=[A-Z_]+=)", "", message))


def parser():
    p = _Parser(prog="python -m pipeline", description="escape-snn pipeline stages; settings as --flags or "
                                                       "NAME=value (the Make variables, see make help)")
    p.add_argument("stage", choices=STAGES)
    for f in OPTIONS:
        meta = f.metadata
        help_text = f"{meta['make']}: {meta['meaning']}"
        if meta["flag"]:
            p.add_argument(flag_of(f), action="store_true", help=help_text)
            continue
        parse = (lambda name: _choice(name, meta["choices"])) if meta["choices"] else meta["parse"]
        p.add_argument(flag_of(f), type=parse(meta["make"]) if parse else None, default=f.default, help=help_text)
    return p


def _as_flags(argv):
    """``NAME=value`` arguments (how the Makefile passes its variables) as ``--flag value``."""
    out = []
    for arg in argv:
        name, equals, value = arg.partition("=")
        if not equals or arg.startswith("-"):
            out.append(arg)
            continue
        f = BY_MAKE_NAME.get(name)
        if f is None:
            raise UserError(f"{name}: unknown setting (make help lists them all)")
        if not f.metadata["flag"]:
            out += [flag_of(f), value]
        elif value.lower() in TRUE:
            out.append(flag_of(f))
        elif value.lower() not in ("", "0", "no", "false"):
            raise UserError(f"{name}={value!r}: use {name}=1 to switch it on")
    return out


def parse(argv):
    values = vars(parser().parse_args(_as_flags(argv)))
    if values["executor"] != "local" and values["stage"] not in CLUSTER_STAGES:   # not silently run here instead
        raise UserError(f"EXECUTOR={values['executor']}: only {' and '.join(CLUSTER_STAGES)} send their work to "
                        f"a cluster; run {values['stage']} with EXECUTOR=local")
    if values["seeds"] is not None and values["stage"] not in SEED_STAGES:
        raise UserError(f"SEEDS={' '.join(map(str, values['seeds']))}: only {', '.join(SEED_STAGES)} run once per "
                        f"seed; run {values['stage']} with SEED= (one seed)")
    if values["seeds"] is not None and values["seed"] is not None:
        raise UserError(f"SEED={values['seed']} and SEEDS={' '.join(map(str, values['seeds']))}: give one of them")
    return Settings(**{f.name: values[f.name] for f in fields(Settings)})


def help_text():
    width = max(len(f.metadata["make"]) for f in OPTIONS)
    name_width = max(len(s.name) for s in STAGE_LIST)
    lines = ["Stages (make STAGE NAME=value ...): what each answers -> what it writes under results/<RUN>/"]
    lines += [f"  {s.name:<{name_width}}  {s.answers} -> {s.writes}" for s in STAGE_LIST]
    lines += ["", "Make variables:"]
    for f in OPTIONS:
        meaning = f.metadata["meaning"].replace("`", "").replace("\\|", "|")
        meaning = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", meaning)   # a Markdown link: its text
        lines.append(f"  {f.metadata['make']:<{width}}  {meaning} [default: {default_text(f).replace('`', '')}]")
    return "\n".join(lines)


def stages_markdown_table():
    lines = ["| `make` target | what it answers | writes under `results/<RUN>/` |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {s.answers} | {', '.join(f'`{w}`' for w in s.writes.split(', '))} |" for s in STAGE_LIST]
    return "\n".join(lines)


def markdown_table():
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    lines += [f"| `{f.metadata['make']}` | {f.metadata['meaning']} | {default_text(f)} |" for f in OPTIONS]
    return "\n".join(lines)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "names"
    print({"names": lambda: " ".join(BY_MAKE_NAME), "stages": lambda: " ".join(STAGES), "help": help_text,
           "markdown": markdown_table, "stages-markdown": stages_markdown_table}[what]())
