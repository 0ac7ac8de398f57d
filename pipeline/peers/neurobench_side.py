"""NeuroBench's operation counts on snnTorch's import of a NIR file, corrected to the file's IF, on given inputs.

    python neurobench_side.py FILE.nir INPUTS.npz OUT.json --timesteps T --threads K

Runs in the interop environment beside `snntorch_side.py` (whose import and inputs it reuses: the
network is snnTorch's import with beta 1 and reset_delay on, which spikes as our engine), and imports
nothing from `pipeline`. NeuroBench's `Benchmark` runs its `SNNTorchModel` wrapper over the T steps of
each sample (INPUTS.npz: ``x`` held constant, or ``frames``, the engine's own input of every step) with
four workload metrics: its `SynapticOperations` (effective MACs and ACs, and "Dense", per sample),
`ActivationSparsity`, `ActivationSparsityByLayer`, and `SynapticOperationsByLayer` below, which applies
NeuroBench's own per-layer rule (`single_layer_MACs`) layer by layer, because SynapticOperations only
reports the network's sum; the two must agree, and the pipeline checks that they do.

NeuroBench's rule, read in its code (neurobench 2.3.0, `metrics/utils/layers`): at every forward call
(one per step) each connection layer (Linear, Conv) is applied, as a copy with its nonzero weights set to
1 and its bias to 0, to its input with every nonzero value set to 1; the sum of that output is the
call's operations (zero inputs and zero weights cost nothing, padding costs nothing, the bias is not an
operation), counted as ACs when every input value of the call, over the whole batch, is in {-1, 0, 1},
else as MACs. Pools, Flatten and the neurons are not connection layers: no operations.

OUT.json: per connection layer (NIR node name) the totals over all samples (``acs``, ``macs``, ``dense``
and the calls counted each way), SynapticOperations' per-sample numbers, both sparsities, the readout's
spike count per sample and class, versions, the batch size and the wall time.
"""
import json
import time
from importlib import metadata

import snntorch
import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.abstract.workload_metric import AccumulatedMetric
from neurobench.metrics.utils.layers import single_layer_MACs
from neurobench.metrics.workload import ActivationSparsity, ActivationSparsityByLayer, SynapticOperations
from neurobench.models import SNNTorchModel
from torch.utils.data import DataLoader, TensorDataset

from snntorch_side import VARIANTS, imported, load_inputs, side_parser

# NeuroBench keeps every step's input of each connection layer and output of each neuron layer for a
# whole batch until the batch's metrics run: batches are sized to keep that under this many bytes.
STORED_BYTES = 512 * 2 ** 20


class SynapticOperationsByLayer(AccumulatedMetric):
    """NeuroBench's SynapticOperations kept layer by layer: `single_layer_MACs`, NeuroBench's own count,
    on each connection layer's input of each call, as SynapticOperations does (its hook detached while
    the binary copy runs, as there); totals over all samples per layer name."""

    def __init__(self):
        super().__init__(requires_hooks=True)
        self.layers = {}

    def reset(self):
        self.layers = {}

    def __call__(self, model, preds, data):
        names = {id(module): name for name, module in model.__net__().named_modules()}
        for hook in model.connection_hooks:
            row = self.layers.setdefault(names[id(hook.layer)], {"acs": 0, "macs": 0, "dense": 0,
                                                                 "calls_as_ac": 0, "calls_as_mac": 0})
            hook.hook.remove()
            for inputs in hook.inputs:
                spikes = inputs[0] if len(inputs) == 1 else inputs
                operations, spiking = single_layer_MACs(spikes, hook.layer)
                row["dense"] += single_layer_MACs(spikes, hook.layer, total=True)[0]
                row["acs" if spiking else "macs"] += operations
                row["calls_as_ac" if spiking else "calls_as_mac"] += 1
            hook.register_hook()
        return self.compute()

    def compute(self):
        return {name: dict(row) for name, row in self.layers.items()}


def stored_bytes_per_sample_step(net, x):
    """Bytes NeuroBench's hooks keep per sample and step: every connection layer's input and every
    neuron layer's output, float32 (one probe step of one sample)."""
    sizes = []
    hooks = [module.register_forward_pre_hook(lambda m, i: sizes.append(i[0].numel()))
             for module in net.modules() if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks += [module.register_forward_hook(lambda m, i, o: sizes.append((o[0] if isinstance(o, tuple) else o).numel()))
              for module in net.modules() if isinstance(module, snntorch.SpikingNeuron)]
    with torch.no_grad():
        net(x[:1, 0])
    for hook in hooks:
        hook.remove()
    snntorch.utils.reset(net)
    return 4 * sum(sizes)


def main():
    args = side_parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    x = load_inputs(args.inputs, args.timesteps)
    net, neurons = imported(args.nir_file, VARIANTS["corrected"])
    batch_size = max(1, min(len(x), STORED_BYTES // (args.timesteps * stored_bytes_per_sample_step(net, x))))
    model = SNNTorchModel(net)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch_size, shuffle=False)
    metrics = [SynapticOperations, SynapticOperationsByLayer, ActivationSparsity, ActivationSparsityByLayer]
    outputs = []

    def keep(spikes):
        """The postprocessor: keeps each batch's readout spike counts (N, classes), passes them on."""
        outputs.append(spikes.sum(dim=1).to(torch.int64))
        return outputs[-1]

    benchmark = Benchmark(model, loader, [], [keep], [[], metrics])
    begin = time.perf_counter()
    found = benchmark.run(quiet=True)
    seconds = time.perf_counter() - begin
    # NeuroBench's manager turns a metric that raises into 0.0 after printing (quietly: not at all).
    kinds = {"SynapticOperations": dict, "SynapticOperationsByLayer": dict, "ActivationSparsity": float,
             "ActivationSparsityByLayer": dict}
    failed = [name for name, kind in kinds.items() if not isinstance(found.get(name), kind) or not found[name]]
    if failed:
        raise SystemExit(f"NeuroBench metric(s) {', '.join(failed)} failed on {args.nir_file}")
    record = {
        "versions": {"neurobench": metadata.version("neurobench"), "snntorch": snntorch.__version__, "torch": torch.__version__},
        "variant": "corrected", "batch_size": batch_size, "threads": torch.get_num_threads(), "seconds": seconds,
        "num_samples": len(x), "timesteps": args.timesteps,
        "synaptic_operations": found["SynapticOperations"],
        "layers": found["SynapticOperationsByLayer"],
        "activation_sparsity": found["ActivationSparsity"],
        "activation_sparsity_by_layer": {name.removesuffix("_if"): value
                                         for name, value in found["ActivationSparsityByLayer"].items()},
        "neuron_layers": list(neurons),
        "output_spikes": torch.cat(outputs).tolist(),
    }
    with open(args.out, "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main()
