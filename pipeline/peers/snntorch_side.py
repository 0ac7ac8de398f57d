"""snnTorch's side of the cross-check: a NIR file imported by snnTorch's own importer, run on given inputs.

    python snntorch_side.py FILE.nir INPUTS.npz OUT.npz --timesteps T --batch-size B --threads K

Runs in the interop environment (`.venv-interop`: torch, snnTorch, nir >= 1.0.6), never in the
pipeline's, so it imports nothing from `pipeline`. INPUTS.npz holds either ``x`` (N, C, H, W), NIR's
channels-first layout, held constant over the T steps (analog input), or ``frames`` (N, T, C, H, W):
the input of every step, e.g. the engine's own Poisson draws (`load_inputs`). OUT.npz gets, for each
variant, every IF node's spike total per neuron (``<variant>/<layer>``, (N, ...)), the last IF
node's spikes per step (``<variant>/output``, (N, T, classes)) and the simulation's wall time;
``meta`` is a JSON string (versions, seconds, threads).

Variants: ``imported`` runs the module as snnTorch 1.0.0's `import_from_nir` builds it: every IF
becomes an `snn.Leaky(beta=0.9, reset_delay=False)`. ``beta1`` sets beta to 1. ``corrected`` also
sets ``reset_delay``, which makes the neuron the file's IF: with ``reset_delay=False`` a neuron whose
membrane is still above threshold after its reset tests the next step against twice the threshold
(snnTorch subtracts the pending reset before it fires, then adds it back), so it falls a spike behind;
with ``reset_delay=True`` the subtraction of a spike comes at the next step, before the test, which at
beta 1 is the subtract-reset IF exactly. Two further facts of that importer are handled here, not in
the file: it builds the neurons with ``init_hidden=False``, so each passes a (spikes, membrane) tuple
on and the graph fails at its first pool (``init_hidden`` is switched on after import); and NIR's
Flatten is batch-free (``start_dim`` counts from the first non-batch axis) while PyTorch's counts the
batch axis (shifted by one here, so a batch of samples runs at once). And neither snnTorch 1.0.0's
importer nor nirtorch 2.6 maps NIR's Scale node (``x * scale``, elementwise), with which our graphs
rescale a residual add's inputs: it is added to nirtorch's default map here (`Scale`), the one node
not built by snnTorch; the sums where several edges meet are nirtorch's own. The file is read without
nir's type check: nir (1.0.5 to 1.0.8) infers a Conv2d's input channels from its weight, C_in / groups,
so a grouped convolution's true input type (written in the file) fails the check, which only validates.
"""
import argparse
import json
import time

import nir
import nirtorch.nir_interpreter
import numpy as np
import snntorch
import torch
from snntorch import utils
from snntorch.import_nir import import_from_nir

VARIANTS = {"imported": {}, "beta1": {"beta": 1.0}, "corrected": {"beta": 1.0, "reset_delay": True}}


class Scale(torch.nn.Module):
    """NIR's Scale: the input times ``scale``, elementwise (broadcast over the batch axis)."""

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", torch.tensor(np.asarray(scale, np.float32)))

    def forward(self, x):
        return x * self.scale


# import_from_nir passes its own node map to nirtorch, which falls back on this default map for the rest
nirtorch.nir_interpreter.DEFAULT_MAP.setdefault(nir.Scale, lambda node: Scale(node.scale))


def imported(path, changes):
    """snnTorch's import of ``path``, made runnable on batches, its neurons' attributes set to ``changes``
    (``beta``, ``reset_delay``); its IF neurons by layer name."""
    net = import_from_nir(nir.read(path, type_check=False))
    neurons = {}
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Flatten):
            module.start_dim += 1
            if module.end_dim >= 0:
                module.end_dim += 1
        if isinstance(module, snntorch.Leaky):
            module.init_hidden = True
            for attribute, value in changes.items():
                setattr(module, attribute, torch.tensor(value) if attribute == "beta" else value)
            neurons[name.removesuffix("_if")] = module
    return net, neurons


def load_inputs(path, timesteps):
    """The inputs of INPUTS.npz as a float32 tensor (N, T, C, H, W) view: ``x`` held over the T steps
    (expanded, not copied) or ``frames`` as given (their T must be ``timesteps``)."""
    with np.load(path) as data:
        if "frames" in data.files:
            frames = torch.tensor(data["frames"], dtype=torch.float32)
            if frames.shape[1] != timesteps:
                raise SystemExit(f"{path}: frames hold {frames.shape[1]} steps, not T={timesteps}")
            return frames
        x = torch.tensor(data["x"], dtype=torch.float32)
    return x.unsqueeze(1).expand(-1, timesteps, *x.shape[1:])


def run(path, x, timesteps, batch_size, changes):
    """Spike totals per neuron of every IF layer, the last layer's spikes per step, and the wall time
    (``x``: (N, T, C, H, W), the input of every step, `load_inputs`)."""
    net, neurons = imported(path, changes)
    last = list(neurons)[-1]
    totals = {name: [] for name in neurons}
    output = []
    seconds = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        utils.reset(net)
        batch = {}
        steps = []

        def count(name):
            def hook(module, inputs, out):
                spikes = out[0] if isinstance(out, tuple) else out
                batch[name] = batch.get(name, 0) + spikes.to(torch.int32)
                if name == last:
                    steps.append(spikes.to(torch.int8))
            return hook

        hooks = [module.register_forward_hook(count(name)) for name, module in neurons.items()]
        begin = time.perf_counter()
        with torch.no_grad():
            for t in range(timesteps):
                net(xb[:, t])
        seconds += time.perf_counter() - begin
        for hook in hooks:
            hook.remove()
        for name in neurons:
            totals[name].append(batch[name].numpy())
        output.append(torch.stack(steps, dim=1).numpy())
    return {name: np.concatenate(v) for name, v in totals.items()}, np.concatenate(output), seconds


def side_parser(description):
    """The arguments every side script takes (`pipeline.peers` passes them): FILE.nir INPUTS.npz OUT,
    --timesteps, --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("nir_file")
    parser.add_argument("inputs")
    parser.add_argument("out")
    parser.add_argument("--timesteps", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    return parser


def main():
    parser = side_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = load_inputs(args.inputs, args.timesteps)
    arrays, seconds = {}, {}
    for variant in args.variants.split(","):
        totals, output, seconds[variant] = run(args.nir_file, x, args.timesteps, args.batch_size, VARIANTS[variant])
        arrays.update({f"{variant}/{name}": counts for name, counts in totals.items()})
        arrays[f"{variant}/output"] = output
    meta = {"versions": {"snntorch": snntorch.__version__, "torch": torch.__version__, "nir": nir.version},
            "seconds": seconds, "threads": torch.get_num_threads(), "batch_size": args.batch_size}
    np.savez(args.out, meta=json.dumps(meta), **arrays)


if __name__ == "__main__":
    main()
