"""What every stage of a RUN stands on: its dataset, its trained model, the toolbox's data files.

`prepare` settles the RUN's recorded choices (results.resolve_run), loads the
data, trains or reuses the cached model and records both in run.json.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import ROOT, UserError, data, results
from pipeline.settings import Settings
from pipeline.toolbox import configs
from pipeline.toolbox import onoff as onoff_inputs
from pipeline.training import ann as train

DATA_CACHE = ROOT / "data"
DEFAULTS = {"data": "synthetic", "scale": "signed", "width": 64, "epochs": 8, "seed": 0}
NUM_NORM = 500   # training samples the toolbox normalises on
DEFAULT_N = 100             # test samples simulated when N is not given
CALIBRATION_SAMPLES = 100   # training samples the conversion thresholds are calibrated on (THRESHOLDS=max)
ONOFF_SUFFIX = "_onoff"     # the toolbox's data, model and log dir with ON/OFF input


@dataclass(frozen=True)
class Workspace:
    run: str
    record: dict
    dataset: data.Dataset
    model: train.TrainedModel

    @property
    def dir(self):
        return results.run_dir(self.run)

    @property
    def model_sha256(self):
        return self.record["model"]["sha256"]

    def provenance(self):
        """Dataset, model, seed and versions of this RUN, as every result records them."""
        return results.provenance(self.dataset.name, self.dataset.sha256, self.model.path, self.model_sha256,
                                  self.record["seed"])

    def toolbox_data(self, onoff=False):
        """Folder with x_test/y_test/x_norm.npz for this dataset (written once); `onoff`: the inputs as
        ON/OFF channels (`onoff.split_inputs`), for the model `onoff_model` writes."""
        folder = DATA_CACHE / "toolbox" / f"{self.dataset.sha256[:16]}_norm{NUM_NORM}{ONOFF_SUFFIX * onoff}"
        if not all((folder / name).exists() for name in ("x_test.npz", "y_test.npz", "x_norm.npz")):
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


def prepare(settings: Settings, variant="modified", verbose=1) -> Workspace:
    requested = {"data": settings.data, "scale": settings.scale, "width": settings.width,
                 "epochs": settings.epochs, "seed": settings.seed}
    if requested["data"] not in (None, "synthetic"):
        requested["data"] = str(Path(requested["data"]).resolve())
    chosen = results.resolve_run(settings.run, requested, DEFAULTS, settings.force)
    dataset = data.load_dataset(chosen["data"], chosen["scale"], cache_dir=DATA_CACHE)
    trained = train.train(dataset, train.TrainSettings(variant, int(chosen["width"]), int(chosen["epochs"]),
                                                       int(chosen["seed"])),
                          force=settings.force and variant == "modified", verbose=verbose)
    if variant == "modified":
        model_sha = results.file_sha256(trained.path)
        results.record_run(settings.run, chosen, dataset, trained.path, model_sha)
        chosen = results.read_json(results.run_dir(settings.run) / "run.json")
    return Workspace(settings.run, chosen, dataset, trained)


def check_num_samples(num_samples, dataset):
    if num_samples > len(dataset.y_test):
        raise UserError(f"N={num_samples} is larger than the test set of {dataset.name} "
                        f"({len(dataset.y_test)} samples)")
    return num_samples


def test_samples(settings, ws, default=DEFAULT_N):
    """N: the test samples asked for (refused when more than the test set), else ``default`` or the
    whole test set if it is smaller."""
    return check_num_samples(settings.num_samples or min(default, len(ws.dataset.y_test)), ws.dataset)


def batch_size_for(num_samples, largest=50):
    """The largest batch size <= `largest` that divides N (the toolbox drops partial batches)."""
    return max(b for b in range(1, min(largest, num_samples) + 1) if num_samples % b == 0)


def conversion_thresholds(ws, settings, mode, x_calibration):
    """Per-layer thresholds of the RUN's converted network, and a line saying where they came from.

    `max`: 0.7 x the layer's maximum input current while the network (engine settings
    ``settings``) runs on the training samples ``x_calibration`` (Rathi et al. 2020).
    `toolbox`: SNN Toolbox's data-based normalisation of the same model, read from the scale
    factors `make convert` cached for it.
    """
    from pipeline import engine
    model = engine.load_keras(ws.model.path)
    if mode == "toolbox":
        pattern = f"log_m{ws.model_sha256[:12]}_d{ws.dataset.sha256[:12]}_p*_b*/normalization/*.json"
        found = sorted((ws.dir / "toolbox").glob(pattern))
        if not found:
            raise UserError(f"THRESHOLDS=toolbox needs the toolbox's scale factors of this model under "
                            f"{ws.dir / 'toolbox'}: run make convert first")
        values = engine.thresholds_from_scale_factors(model, results.read_json(found[0]))
        return values, f"toolbox thresholds ({found[0].parent.parent.name}/{found[0].name})"
    values = engine.calibrate_thresholds(engine.SpikingNetwork(model, None, settings), x_calibration, progress=True)
    return values, f"thresholds 0.7 x max input current on {len(x_calibration)} training samples"


def converted_network(ws, settings, mode, x_calibration):
    """The RUN's converted SNN on the engine (`conversion_thresholds`), and where its thresholds came from."""
    from pipeline import engine
    values, source = conversion_thresholds(ws, settings, mode, x_calibration)
    return engine.SpikingNetwork(engine.load_keras(ws.model.path), values, settings), source


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
                          toolbox_paths(ws, batch_size, onoff), simulator=simulator,
                          seed=ws.record["seed"], overrides=overrides)
