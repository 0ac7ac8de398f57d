"""What every stage of a RUN stands on: its dataset, its trained model, the toolbox's data files.

`prepare` locks the RUN, settles its recorded choices (results.resolve_run), loads the
data, trains or reuses the cached model (or checks a MODEL= the user brings) and records both in
run.json, all in the output folders OUT names (`results.Folders`, the checkout by default), which the
`Workspace` carries for every later read and write.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import UserError, data, results
from pipeline.settings import Settings
from pipeline.toolbox import configs
from pipeline.toolbox import onoff as onoff_inputs
from pipeline.training import ann as train

DEFAULTS = {"data": "synthetic", "scale": "signed", "width": 64, "epochs": 8, "seed": 0, "model_file": None,
            "prune": 0.0, "arch": "escape_net", "val_trials": 0, "quant": 0}
NUM_NORM = 500   # training samples the toolbox normalises on
SIM_BATCH = 50   # samples per batch of the stages that sweep networks on the engine (latency, frontier)
DEFAULT_N = 100             # test samples simulated when N is not given
STDB_TRAINING_SAMPLES = 256  # STDB's training samples unless NTRAIN says otherwise (sized for a 2-core CPU)
ONOFF_SUFFIX = "_onoff"     # the toolbox's data, model and log dir with ON/OFF input


@dataclass(frozen=True)
class Workspace:
    run: str
    record: dict
    dataset: data.Dataset
    model: train.TrainedModel
    folders: results.Folders

    @property
    def dir(self):
        return self.folders.run_dir(self.run)

    @property
    def model_sha256(self):
        return self.record["model"]["sha256"]

    def provenance(self):
        """Dataset, model, seed and versions of this RUN, as every result records them."""
        return results.provenance(self.dataset.name, self.dataset.sha256, self.model.path, self.model_sha256,
                                  self.record["seed"])

    def toolbox_data(self, onoff=False):
        """Folder with x_test/y_test/x_norm.npz for this dataset (written once; rewritten when a file is
        missing or its sha256 is not the one recorded when it was written); `onoff`: the inputs as ON/OFF
        channels (`onoff.split_inputs`), for the model `onoff_model` writes."""
        folder = self.folders.data / "toolbox" / f"{self.dataset.sha256[:16]}_norm{NUM_NORM}{ONOFF_SUFFIX * onoff}"
        with results.locked(folder):
            problems = [(folder / name, results.stamped_problem(folder / name))
                        for name in ("x_test.npz", "y_test.npz", "x_norm.npz")]
            damaged = [(path, problem) for path, problem in problems if problem not in (None, "missing")]
            if damaged:
                results.report_rebuild(*damaged[0])
            if any(problem is not None for _, problem in problems):
                data.write_toolbox_files(self.dataset, folder, NUM_NORM, seed=self.record["seed"],
                                         layout=onoff_inputs.split_inputs if onoff else None)
        return folder

    def onoff_model(self):
        """The trained model with ON/OFF input (`onoff.split_model`), written once next to the RUN's
        toolbox files and named by the trained model's sha256."""
        path = self.dir / "toolbox" / f"{self.model.path.stem}{ONOFF_SUFFIX}_{self.model_sha256[:12]}.h5"
        if not path.exists():
            onoff_inputs.write_split_model(self.model.path, path)
        return path


def prepare(settings: Settings, variant="modified", verbose=1, lock=True) -> Workspace:
    """Lock the RUN for this process (`results.hold_run`: a second stage on it is refused), settle its
    recorded choices, load the data, train or reuse the model (or check and take the user's MODEL=)
    and record both in run.json. ``lock=False``: a process working for the process that holds the
    RUN (a cluster's other workers; a sweep's child processes, each writing only its own T's files)."""
    folders = results.Folders.under(settings.out)
    if lock:
        results.hold_run(settings.run, folders)
    requested = {"data": settings.data, "scale": settings.scale, "width": settings.width,
                 "epochs": settings.epochs, "seed": settings.seed, "model_file": settings.model,
                 "prune": settings.prune, "arch": settings.arch, "val_trials": settings.val_trials,
                 "quant": settings.quant}
    for key in ("data", "model_file"):
        if requested[key] not in (None, "synthetic"):
            requested[key] = str(Path(requested[key]).expanduser().resolve())
    chosen = results.resolve_run(settings.run, folders, requested, DEFAULTS, settings.force)
    user_model = chosen.get("model_file")
    if user_model and prune_of(chosen):
        raise UserError(f"PRUNE={prune_of(chosen)} prunes the ESCAPE-NET the pipeline trains; RUN={settings.run} "
                        f"runs on MODEL={user_model}")
    if user_model and quant_of(chosen):
        raise UserError(f"QUANT={quant_of(chosen)} quantises the ESCAPE-NET the pipeline trains; RUN={settings.run} "
                        f"runs on MODEL={user_model}")
    if user_model and variant != "modified":
        raise UserError(f"the {variant} ESCAPE-NET is trained by the pipeline; RUN={settings.run} runs on "
                        f"MODEL={user_model}")
    if user_model and arch_of(chosen) != DEFAULTS["arch"]:
        raise UserError(f"ARCH={arch_of(chosen)} names a network the pipeline trains; RUN={settings.run} runs on "
                        f"MODEL={user_model}, whose file says its architecture")
    dataset = data.load_dataset(chosen["data"], chosen["scale"], cache_dir=folders.data,
                                validation_trials=int(chosen.get("val_trials") or 0))
    if arch_of(chosen) == "escape_net_1d" or user_model and Path(chosen["data"]).suffix.lower() == ".mat" \
            and train.user_input_shape(user_model) == (data.RAT_SAMPLES, data.RAT_CHANNELS):
        dataset = data.time_series_view(dataset)   # a RAT file's 56 x 100 as 100 time samples x 56 channels
    if user_model:
        trained = train.bring(user_model, dataset, folders.trained, force=settings.force)
        was, now = chosen.get("model_file_sha256"), trained.info["source"]["sha256"]
        if was and was != now and not settings.force:   # the file at that path is not the RUN's model any more
            raise UserError(f"MODEL={user_model} changed since RUN={settings.run} recorded it (sha256 {was[:12]}, "
                            f"now {now[:12]}): use FORCE=1 to recompute with it, or another RUN")
    else:
        trained = train.train(dataset, train.TrainSettings(variant, int(chosen["width"]), int(chosen["epochs"]),
                                                           int(chosen["seed"]), prune=prune_of(chosen),
                                                           arch=arch_of(chosen), quant=quant_of(chosen)),
                              folders.trained,
                              force=settings.force and variant == "modified", verbose=verbose)
    if variant == "modified":
        model_sha = results.file_sha256(trained.path)
        results.record_run(settings.run, folders, chosen, dataset, trained.path, model_sha,
                           trained.info["source"]["sha256"] if user_model else None)
        chosen = results.read_json(folders.run_dir(settings.run) / "run.json")
    return Workspace(settings.run, chosen, dataset, trained, folders)


def prune_of(record):
    """The RUN's pruning target (PRUNE): 0 for a RUN recorded before the setting existed."""
    return float(record.get("prune") or 0.0)


def arch_of(record):
    """The RUN's network (ARCH): `escape_net` for a RUN recorded before the setting existed."""
    return record.get("arch") or DEFAULTS["arch"]


def quant_of(record):
    """The RUN's weight width in bits (QUANT): 0 (float) for a RUN recorded before the setting existed."""
    return int(record.get("quant") or 0)


def refuse_weight_training(ws, what):
    """One line refusing ``what`` (STDB) on a RUN whose weights are quantised: training would move them off
    their integer grid (quantisation is post-training; docs/quantisation.md)."""
    if quant_of(ws.record):
        raise UserError(f"{what} trains float weights; RUN={ws.run} is quantised (QUANT={quant_of(ws.record)}) "
                        "and its weights would leave their integer grid: use a RUN without QUANT")


def user_model(ws):
    """The MODEL= file a RUN runs on, or None when it trains ESCAPE-NET itself."""
    return ws.record.get("model_file")


def engine_stage(settings, example):
    """What a stage that sweeps T on the engine with calibrated thresholds stands on: its sorted
    timesteps (``TS``, or ``T``), the energy per operation, the workspace and N. ``example``: the
    command shown when TS is missing."""
    from pipeline import energy
    values = settings.timesteps_list or ((settings.timesteps,) if settings.timesteps else ())
    if not values:
        raise UserError(f"TS is required: {example}")
    if settings.thresholds != "max":
        raise UserError(f"THRESHOLDS={settings.thresholds}: `{settings.stage}` calibrates its thresholds on the "
                        "engine (THRESHOLDS=max)")
    energy.costs(settings.preset, settings.mac_pj, settings.ac_pj)   # refuse a bad pair before training
    ws = prepare(settings)
    cost = energy.costs(settings.preset, settings.mac_pj, settings.ac_pj, quant_of(ws.record))
    return tuple(sorted(set(values))), cost, ws, test_samples(settings, ws)


def check_num_samples(num_samples, dataset):
    if num_samples > len(dataset.y_test):
        raise UserError(f"N={num_samples} is larger than the test set of {dataset.name} "
                        f"({len(dataset.y_test)} samples)")
    return num_samples


def test_samples(settings, ws, default=DEFAULT_N):
    """N: the test samples asked for (refused when more than the test set), else ``default`` or the
    whole test set if it is smaller."""
    return check_num_samples(settings.num_samples or min(default, len(ws.dataset.y_test)), ws.dataset)


def training_split(ws, ntrain=None):
    """(training indices, validation indices) of the RUN's training set: the split the ANN was
    trained with (`data.validation_split`, its seed), so no stage chooses anything on samples the
    ANN learned from or on the test set. ``ntrain``: that many training indices, class-balanced
    (`data.balanced_subset`), all of them when None or at least the split's size."""
    seed = int(ws.record["seed"])
    train_idx, val_idx = data.split_of(ws.dataset, train.VALIDATION_FRACTION, seed)
    if not len(val_idx):
        raise UserError(f"{ws.dataset.name}: the training set is too small for a validation split")
    if ntrain is not None and ntrain < len(train_idx):
        train_idx = train_idx[data.balanced_subset(ws.dataset.y_train[train_idx], ntrain, seed)]
    return train_idx, val_idx


def batch_size_for(num_samples, largest=50):
    """The largest batch size <= `largest` that divides N (the toolbox drops partial batches)."""
    return max(b for b in range(1, min(largest, num_samples) + 1) if num_samples % b == 0)


def toolbox_paths(ws, batch_size, onoff=False):
    """[paths] for a run: a work dir per RUN, a log dir per model/data/percentile/batch size.

    The toolbox caches scale factors in its log dir and reuses them for the next
    model run there, so the log dir's name carries everything they depend on.
    `onoff`: the trained model and data with ON/OFF input (`Workspace.onoff_model`).
    """
    percentile = configs.read_ini(configs.TEMPLATE).get("normalization", "percentile", fallback="99.9")
    work = ws.dir / "toolbox"
    work.mkdir(parents=True, exist_ok=True)
    if onoff:
        link = ws.onoff_model()
    else:
        link = work / ws.model.path.name
        if not (link.is_symlink() and link.resolve() == ws.model.path.resolve()):
            link.unlink(missing_ok=True)
            os.symlink(ws.model.path.resolve(), link)
    log = work / (f"log_m{ws.model_sha256[:12]}_d{ws.dataset.sha256[:12]}"
                  f"_p{percentile}_b{batch_size}{ONOFF_SUFFIX * onoff}")
    return {"path_wd": work, "dataset_path": ws.toolbox_data(onoff), "filename_ann": link.stem,
            "log_dir_of_current_run": log}


def render_config(ws, timesteps, num_samples, simulator="INI", overrides=None, batch_size=None, onoff=False):
    """The RUN's ini for this T and N (batch size: the largest divisor of N up to 50 unless given);
    `onoff`: on the ON/OFF-input model and data (`toolbox_paths`)."""
    batch_size = batch_size or batch_size_for(num_samples)
    return configs.render(ws.run, timesteps, num_samples, batch_size,
                          toolbox_paths(ws, batch_size, onoff), ws.folders.configs, simulator=simulator,
                          seed=ws.record["seed"], overrides=overrides)
