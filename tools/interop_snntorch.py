#!/usr/bin/env python3
"""Cross-check an exported NIR file in snnTorch, a simulator this project did not write.

    .venv/bin/python tools/interop_snntorch.py results/<RUN>/converted_T<T>.nir --python VENV/bin/python [--samples 10]

This process (the project's .venv) reads the file back into our engine and counts every layer's
spikes per neuron on the RUN's first test samples with constant (analog) input; VENV is a separate
environment with snnTorch and `nir>=1.0.6` (snnTorch's requirement; the project pins 1.0.5), made by

    python3 -m venv VENV && VENV/bin/pip install torch==2.13.0 snntorch==1.0.0 nirtorch==2.6 nir==1.0.8 h5py

where snnTorch imports the same file (`snntorch.import_nir.import_from_nir`) and runs the same inputs.
The file needs IF nodes throughout (spiking pools, spike-count readout: `make export NET=converted`);
snnTorch has no importer for NIR's integrator `I` (the membrane readout).

Two facts of snnTorch 1.0.0's importer, read in its code and handled here, not in the file:
- it imports every `IF` node as `snn.Leaky(beta=0.9)` (a leaky neuron): the comparison runs twice,
  as imported and with beta set to 1 (the IF the file describes);
- it builds those neurons with `init_hidden=False`, so each returns (spikes, membrane) into the next
  layer and the imported graph fails at its first pool; `init_hidden` is switched on after import.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SNNTORCH = r'''
import json, sys
import numpy as np, torch, nir, snntorch
from snntorch.import_nir import import_from_nir
from snntorch import utils
nir_path, inputs_path, out_path, T = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = torch.tensor(np.load(inputs_path)["x"], dtype=torch.float32)      # (N, C, H, W), NIR's layout
result = {}
for beta in ("imported", 1.0):
    net = import_from_nir(nir.read(nir_path))
    neurons = {n.removesuffix("_if"): m for n, m in net.named_modules() if isinstance(m, snntorch.Leaky)}
    for m in neurons.values():
        m.init_hidden = True
        if beta != "imported":
            m.beta = torch.tensor(beta)
    counts = {k: [] for k in neurons}
    for s in range(len(x)):
        utils.reset(net)
        totals = {k: 0 for k in neurons}
        hooks = [m.register_forward_hook(lambda mod, i, out, k=k: totals.__setitem__(
                 k, totals[k] + (out[0] if isinstance(out, tuple) else out).detach().numpy())) for k, m in neurons.items()]
        with torch.no_grad():
            for _ in range(T):
                net(x[s])                      # one unbatched sample: NIR's Flatten(start_dim=0) is batch-free
        for h in hooks:
            h.remove()
        for k in neurons:
            counts[k].append(np.asarray(totals[k]).tolist())
    result[str(beta)] = counts
json.dump({"versions": {"snntorch": snntorch.__version__, "torch": torch.__version__, "nir": nir.version},
           "counts": result}, open(out_path, "w"))
'''


def engine_counts(nir_path, samples):
    """Our engine on the file read back: per-layer spike totals per neuron, constant input, the RUN's test samples."""
    from pipeline import engine, nirgraph, results
    side = json.loads(nir_path.with_suffix(".json").read_text())
    run = results.read_json(nir_path.parent / "run.json")
    from pipeline.data import load_dataset
    from pipeline.workspace import DATA_CACHE
    dataset = load_dataset(run["data"], run["scale"], cache_dir=DATA_CACHE)
    model, thresholds, neurons = nirgraph.read(nir_path)
    if neurons.readout != "spike_count" or neurons.pooling != "spiking":
        sys.exit(f"{nir_path}: snnTorch needs IF nodes throughout (spiking pools, spike-count readout): "
                 "export NET=converted")
    T = int(side["timesteps"])
    net = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(
        timesteps=T, coding="analog", pooling="spiking", readout="spike_count", batch_size=samples))
    x = np.asarray(dataset.x_test[:samples], np.float32)
    result = net.simulate(x, record=range(samples))
    return x, T, {name.replace(".", "_"): counts for name, counts in result.recorded.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nir_file", type=Path)
    parser.add_argument("--python", required=True, help="python of the environment with snnTorch")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    x, T, ours = engine_counts(args.nir_file, args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out, script = Path(tmp) / "x.npz", Path(tmp) / "out.json", Path(tmp) / "run.py"
        np.savez(inputs, x=np.moveaxis(x, -1, 1) if x.ndim == 4 else x)
        script.write_text(SNNTORCH)
        subprocess.run([args.python, str(script), str(args.nir_file), str(inputs), str(out), str(T)], check=True)
        theirs = json.loads(out.read_text())
    report = {"file": str(args.nir_file), "timesteps": T, "num_samples": args.samples, "input": "constant (analog)",
              "versions": theirs["versions"], "layers": {}}
    print(f"{args.nir_file.name}: T={T}, {args.samples} test samples, constant input; snnTorch "
          f"{theirs['versions']['snntorch']} (torch {theirs['versions']['torch']}, nir {theirs['versions']['nir']})")
    print(f"  {'layer':<8}{'engine spikes':>15}{'snnTorch as imported':>22}{'equal/neuron':>14}"
          f"{'snnTorch beta=1':>17}{'equal/neuron':>14}")
    for name, counts in ours.items():
        row = {"engine_spikes": int(counts.sum())}
        line = f"  {name:<8}{int(counts.sum()):>15}"
        for variant, width in (("imported", 22), ("1.0", 17)):
            other = np.asarray(theirs["counts"][variant][name])
            other = np.moveaxis(other, 1, -1) if other.ndim == 4 else other    # back to channels-last
            equal = float(np.mean(other.reshape(counts.shape) == counts))
            row[f"snntorch_{variant}"] = {"spikes": int(other.sum()), "equal_per_neuron": equal}
            line += f"{int(other.sum()):>{width}}{equal:>14.4f}"
        report["layers"][name] = row
        print(line)
    out = args.nir_file.with_name(args.nir_file.stem + "_snntorch.json")
    from pipeline import results
    results.write_json(out, report)
    print(f"  -> {out}")


if __name__ == "__main__":
    main()
