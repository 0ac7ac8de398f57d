"""Run SNN Toolbox 0.6.0 in-process on a validated ini and collect what it computed.

We drive the toolbox's own stages (parse, normalise, build, run) instead of
`run_pipeline`, so each stage is timed on its own and the simulator's output
spike counts are captured per batch and timestep: the accuracy at every
timestep comes from the one run, exactly as the toolbox decides it (argmax of
cumulative output spikes, no spike = wrong).
"""
import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline import UserError, modelfile
from pipeline.engine import decide
from pipeline.results import file_sha256
from pipeline.toolbox import compat, configs
from pipeline.toolbox.configs import ToolboxConfig


@dataclass
class ToolboxRun:
    """What one toolbox simulation produced."""
    simulator: str
    timesteps: int
    num_samples: int
    labels: np.ndarray                 # (N,) true classes of the simulated samples
    output_counts: np.ndarray          # (N, classes, T) cumulative output spike counts
    seconds: dict                      # parse / normalize / build / simulate wall time
    scale_factors: dict = field(default_factory=dict)
    spike_counts: dict = field(default_factory=dict)   # layer -> (N, neurons) totals, when logged
    synapses: dict = field(default_factory=dict)       # layer -> explicit synapses into it (brian2)

    @property
    def predictions_per_timestep(self):
        """(N, T) predicted class per step; -1 where no output neuron has spiked yet."""
        return decide(np.transpose(self.output_counts, (0, 2, 1)), "spike_count")

    @property
    def accuracy_per_timestep(self):
        return (self.predictions_per_timestep == self.labels[:, None]).mean(axis=0)

    @property
    def accuracy(self):
        return float(self.accuracy_per_timestep[-1])


WEIGHTED = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")   # SNN Toolbox's weighted spiking layers


def refuse_unrunnable(model, simulator, label):
    """Refuse, in one line naming the layer (`unrunnable`) and saying what runs it, a model SNN Toolbox's
    ``simulator`` would run as another network."""
    found = unrunnable(model, simulator)
    if found:
        raise UserError(f"{label}: {found}; SIM=INI cannot run this model, SIM=fast runs it on the engine "
                        "(with [tools] normalize = False: thresholds 1)")


def unrunnable(model, simulator):
    """The first layer, by index (in ``model.layers``) and name with the reason, that SNN Toolbox 0.6.0
    parses into something else, so its ``simulator`` would run another network, else None:

    - ``Add``: the parser replaces it by a concatenation into a 1x1 ReLU convolution (a linear sum is
      rectified), whose normalisation rescales only convolution inputs;
    - ``Concatenate``: normalisation rescales a concatenation's inputs only for a convolution reading
      convolutions (a Dense after one raises NotImplementedError);
    - a hidden Conv2D/Dense whose activation is linear (none found by the parser's own search: up to
      three single readers for an Activation or ReLU layer): every weighted layer spikes, so INI
      would rectify it;
    - a grouped Conv2D (``groups`` > 1) on brian2 or nest, whose connection builders read the kernel
      as ungrouped (the parser keeps ``groups`` and INI runs Keras' own convolution: checked, equal).
    The engine runs all of these (``SIM=fast`` too, without the toolbox's normalisation).
    """
    from pipeline import network
    layers = list(model.layers)
    readers = {layer.name: [] for layer in layers}
    for index, layer in enumerate(layers):
        if type(layer).__name__ != "InputLayer":
            for source in network.inbound_names(model, layer, f"layer {index} {layer.name!r}"):
                readers.get(source, []).append(layer)
    weighted = [layer for layer in layers if type(layer).__name__ in WEIGHTED]
    for index, layer in enumerate(layers):
        kind = type(layer).__name__
        reason = None
        if kind == "Add":
            reason = "SNN Toolbox parses an Add as a concatenation into a 1x1 ReLU convolution"
        elif kind == "Concatenate":
            reason = "SNN Toolbox's normalisation rescales a concatenation's inputs only into a convolution"
        elif kind in WEIGHTED and weighted and layer is not weighted[-1] and \
                _toolbox_activation(layer, readers) == "linear":
            reason = "a hidden layer with a linear activation would spike (be rectified) on SNN Toolbox"
        elif kind == "Conv2D" and layer.groups > 1 and simulator != "INI":
            reason = f"SNN Toolbox's {simulator} connections ignore its {layer.groups} groups (INI runs it)"
        if reason:
            return f"layer {index} {layer.name!r} ({kind}): {reason}"
    return None


def _toolbox_activation(layer, readers):
    """The activation SNN Toolbox 0.6.0 gives a weighted layer (`AbstractModelParser.absorb_activation`):
    its own, unless one of up to three single readers in a row is an Activation (its activation) or a
    ReLU layer (relu), the search stopping at a layer that has an activation of its own."""
    found = getattr(layer.activation, "__name__", str(layer.activation))
    for _ in range(3):
        if len(readers[layer.name]) != 1:
            break
        layer = readers[layer.name][0]
        if type(layer).__name__ == "Activation":
            return getattr(layer.activation, "__name__", str(layer.activation))
        if type(layer).__name__ == "ReLU":
            return "relu"
        if hasattr(layer, "activation"):
            break
    return found


def check_layers(config: ToolboxConfig):
    """`refuse_unrunnable` on the model the toolbox will read for ``config`` (its .json architecture where
    one lies beside the .h5, as the toolbox prefers), before any toolbox work."""
    import tensorflow as tf
    from pipeline.engine import load_keras
    architecture = config.path_wd / f"{config.filename_ann}.json"
    if architecture.is_file():
        modelfile.check(architecture)
        model = tf.keras.models.model_from_json(architecture.read_text())
        label = architecture
    else:
        label = config.path_wd / f"{config.filename_ann}.h5"
        model = load_keras(label)
    refuse_unrunnable(model, config.simulator, label)


def _guard_scale_factor_cache(config: ToolboxConfig):
    """Drop cached scale factors that belong to another model, data set or batch size.

    The toolbox silently reuses `<log dir>/normalization/<percentile>.json` for
    whatever model runs next in that log dir.
    """
    norm_dir = config.log_dir / "normalization"
    key = {
        "model": file_sha256(config.path_wd / f"{config.filename_ann}.h5"),
        "x_norm": file_sha256(config.dataset_path / "x_norm.npz"),
        "percentile": config.percentile,
        "batch_size": config.batch_size,
    }
    stamp = config.log_dir / "normalization_source.json"
    if norm_dir.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != key):
        shutil.rmtree(norm_dir)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(key))


@contextlib.contextmanager
def _quiet(log_path):
    """Send the toolbox's chatter to a log file; our own progress bar stays on the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log, contextlib.redirect_stdout(log):
        yield


def _scale_factor_path(config: ToolboxConfig):
    """Where the toolbox caches its scale factors: <log dir>/normalization/<percentile as written>.json."""
    percentile = configs.merged(config.path).get("normalization", "percentile")
    return config.log_dir / "normalization" / f"{percentile}.json"


def _setup(config: ToolboxConfig, log_spikes=False):
    """The toolbox's own parsed config of `config`, logging into our log dir."""
    from snntoolbox.bin.utils import update_setup
    try:
        tb_config = update_setup(str(config.path))
    except AssertionError as exc:
        raise UserError(f"{config.path}: {exc}") from None
    tb_config.set("paths", "log_dir_of_current_run", str(config.log_dir))
    if log_spikes:
        tb_config.set("output", "log_vars", str({"spiketrains_n_b_l_t"}))
    return tb_config


def _parse_and_normalize(config: ToolboxConfig, tb_config, normset, seconds):
    """The toolbox's parsed model of `config`, normalised when the ini asks; adds stage times to `seconds`."""
    from snntoolbox.conversion.utils import normalize_parameters
    from snntoolbox.parsing.model_libs import keras_input_lib
    start = time.perf_counter()
    architecture = config.path_wd / f"{config.filename_ann}.json"   # the toolbox prefers it to the .h5's own
    modelfile.check(architecture if architecture.is_file() else architecture.with_suffix(".h5"))
    model = keras_input_lib.load(str(config.path_wd), config.filename_ann)["model"]
    parser = keras_input_lib.ModelParser(model, tb_config)
    parser.parse()
    parsed = parser.build_parsed_model()
    seconds["parse"] = time.perf_counter() - start
    start = time.perf_counter()
    if config.normalize:
        normalize_parameters(parsed, tb_config, **normset)
    seconds["normalize"] = time.perf_counter() - start
    return parsed


def scale_factors(config: ToolboxConfig):
    """The toolbox's data-based scale factors for `config`, computed by the toolbox itself.

    Parse and normalise exactly as `run` does (no simulation), unless its cache already holds
    them for this model, data and batch size (`_guard_scale_factor_cache`).
    """
    compat.apply()
    from snntoolbox.datasets.utils import get_dataset
    _guard_scale_factor_cache(config)
    path = _scale_factor_path(config)
    if not path.exists():
        with _quiet(config.log_dir / "toolbox.log"):
            tb_config = _setup(config)
            normset, _ = get_dataset(tb_config)
            _parse_and_normalize(config, tb_config, normset, {})
    return json.loads(path.read_text())


def run(config: ToolboxConfig, progress=True, log_spikes=False):
    """Parse, normalise, build and simulate `config` (a model the toolbox would run as another network
    refused first, `check_layers`); return a ToolboxRun."""
    check_layers(config)
    compat.apply()
    import tensorflow as tf
    from snntoolbox.bin.utils import import_target_sim
    from snntoolbox.datasets.utils import get_dataset
    from tqdm import tqdm

    num_test = len(np.load(config.dataset_path / "x_test.npz", mmap_mode="r")["arr_0"])
    if config.num_to_test > num_test:
        raise UserError(f"{config.path}: [simulation] num_to_test = {config.num_to_test} but "
                        f"{config.dataset_path / 'x_test.npz'} holds only {num_test} samples")
    _guard_scale_factor_cache(config)
    np.random.seed(config.seed)  # the toolbox's Poisson input draws from NumPy's global generator
    tf.random.set_seed(config.seed)
    seconds = {}
    with _quiet(config.log_dir / "toolbox.log"):
        tb_config = _setup(config, log_spikes)
        normset, testset = get_dataset(tb_config)
        parsed = _parse_and_normalize(config, tb_config, normset, seconds)
        start = time.perf_counter()
        snn = import_target_sim(tb_config).SNN(tb_config)
        snn.build(parsed)
        seconds["build"] = time.perf_counter() - start
        synapses = explicit_synapses(snn)

        outputs, spike_counts = [], {}
        num_batches = config.num_to_test // config.batch_size
        bar = tqdm(total=num_batches * config.duration, disable=not progress, unit="step",
                   desc=f"{config.simulator} T={config.duration}", file=_terminal())
        simulate, set_time = snn.simulate, getattr(snn, "set_time", None)

        def recording_simulate(**kwargs):
            out = simulate(**kwargs)
            outputs.append((np.asarray(kwargs["truth_b"]), np.asarray(out)))
            if log_spikes and snn.spiketrains_n_b_l_t is not None:
                for trains, name in snn.spiketrains_n_b_l_t:
                    counts = (np.asarray(trains) > 0).sum(axis=-1).reshape(len(trains), -1)
                    spike_counts.setdefault(name, []).append(counts)
            if set_time is None:
                bar.update(config.duration)
            return out

        def stepping_set_time(t):
            set_time(t)
            bar.update(1)

        snn.simulate = recording_simulate
        if set_time is not None:
            snn.set_time = stepping_set_time
        start = time.perf_counter()
        snn.run(**testset)
        seconds["simulate"] = time.perf_counter() - start
        bar.close()
        snn.end_sim()

    scale_path = _scale_factor_path(config)
    labels = np.concatenate([truth for truth, _ in outputs])
    return ToolboxRun(
        simulator=config.simulator, timesteps=config.duration, num_samples=len(labels),
        labels=labels, output_counts=np.concatenate([out for _, out in outputs]),
        seconds=seconds,
        scale_factors=json.loads(scale_path.read_text()) if scale_path.exists() else {},
        spike_counts={name: np.concatenate(parts) for name, parts in spike_counts.items()},
        synapses=synapses,
    )


def explicit_synapses(snn):
    """{layer: synapses into it} of a simulator that unrolls the network into synapse lists (brian2's
    `Synapses`, one per projection, in the order of its neuron groups after the input); {} for INI,
    whose layers stay Keras layers."""
    groups, connections = getattr(snn, "layers", None), getattr(snn, "connections", None)
    if not connections or not groups:
        return {}
    return {str(group.label): int(len(synapses)) for group, synapses in zip(groups[1:], connections)}


def _terminal():
    import sys
    return sys.__stderr__
