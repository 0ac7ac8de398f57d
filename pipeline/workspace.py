"""What every stage of a RUN stands on: its dataset, its trained model, the toolbox's data files.

`prepare` settles the RUN's recorded choices (results.resolve_run), loads the
data, trains or reuses the cached model and records both in run.json.
"""
from dataclasses import dataclass
from pathlib import Path

from pipeline import UserError, data, results, train
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA_CACHE = ROOT / "data"
DEFAULTS = {"data": "synthetic", "scale": "signed", "width": 64, "epochs": 8, "seed": 0}
NUM_NORM = 500   # training samples the toolbox normalises on


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

    def toolbox_data(self):
        """Folder with x_test/y_test/x_norm.npz for this dataset (written once)."""
        folder = DATA_CACHE / "toolbox" / f"{self.dataset.sha256[:16]}_norm{NUM_NORM}"
        if not all((folder / name).exists() for name in ("x_test.npz", "y_test.npz", "x_norm.npz")):
            data.write_toolbox_files(self.dataset, folder, NUM_NORM, seed=self.record["seed"])
        return folder


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
    from pipeline import snn
    model = snn.load_keras(ws.model.path)
    if mode == "toolbox":
        pattern = f"log_m{ws.model_sha256[:12]}_d{ws.dataset.sha256[:12]}_p*_b*/normalization/*.json"
        found = sorted((ws.dir / "toolbox").glob(pattern))
        if not found:
            raise UserError(f"THRESHOLDS=toolbox needs the toolbox's scale factors of this model under "
                            f"{ws.dir / 'toolbox'}: run make convert first")
        values = snn.thresholds_from_scale_factors(model, results.read_json(found[0]))
        return values, f"toolbox thresholds ({found[0].parent.parent.name}/{found[0].name})"
    values = snn.calibrate_thresholds(snn.SpikingNetwork(model, None, settings), x_calibration, progress=True)
    return values, f"thresholds 0.7 x max input current on {len(x_calibration)} training samples"


def converted_network(ws, settings, mode, x_calibration):
    """The RUN's converted SNN on the engine (`conversion_thresholds`), and where its thresholds came from."""
    from pipeline import snn
    values, source = conversion_thresholds(ws, settings, mode, x_calibration)
    return snn.SpikingNetwork(snn.load_keras(ws.model.path), values, settings), source
