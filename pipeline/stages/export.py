"""The export stage: the RUN's converted or STDB-fine-tuned SNN as a NIR graph (`make export NET=... T=...`).

Writes results/<RUN>/<NET>_T<T>.nir (`pipeline.nirgraph`, NIR 1.0.5) and a JSON beside it with
what the graph does not hold (input coding, readout, initial membrane) and every approximation.
Before it reports, the file is read back into the engine and both networks run on the same test
samples: the export is kept only if every layer spikes the same.
"""
import numpy as np

from pipeline import UserError, conversion, nirgraph, results, workspace

CHECK_SAMPLES = 10   # test samples the read-back network must spike identically on


def main(settings):
    if settings.timesteps is None:
        raise UserError("T is required: make export NET=converted T=100")
    ws = workspace.prepare(settings)
    n = min(CHECK_SAMPLES, len(ws.dataset.y_test))
    net, description = conversion.network_of(ws, settings.net, settings.timesteps, settings.input_coding(), n,
                                             settings.thresholds, settings.levels, settings.sparsity)
    path = ws.dir / f"{settings.net}_T{settings.timesteps}.nir"
    side = nirgraph.write(path, net.describe())
    back, _ = conversion.from_nir(path, settings.timesteps, net.settings.seed, net.settings.batch_size)
    x, y = np.asarray(ws.dataset.x_test[:n], np.float32), ws.dataset.y_test[:n]
    ours, theirs = net.simulate(x, y, fast=True), back.simulate(x, y, fast=True)
    same = (np.array_equal(ours.spikes_per_timestep, theirs.spikes_per_timestep)
            and np.array_equal(ours.predictions, theirs.predictions))
    if not same:
        path.unlink()
        raise UserError(f"{path}: the network read back from the file spikes differently from the engine's; "
                        "export refused (please report this)")
    record = {**side, "stage": "export", "net": settings.net, "network": description,
              "timesteps": settings.timesteps, "file": path.name,
              "round_trip": {"num_samples": n, "spikes_equal": True, "predictions_equal": True,
                             "snn_accuracy": ours.accuracy},
              **ws.provenance()}
    results.write_json(path.with_suffix(".json"), record)
    print(f"\nNIR {nirgraph.NIR_VERSION}: {description}, T={settings.timesteps} -> {path}")
    print(f"  read back into the engine: the same spikes in every layer and step on {n} test samples "
          f"(accuracy {ours.accuracy:.4f}, N={n})")
    print(f"  not in the graph (see {path.with_suffix('.json').name}): input coding {side['input_coding']}, "
          f"readout {side['readout']}, v(0) = {side['initial_membrane_fraction_of_threshold']} x threshold")
    return record
