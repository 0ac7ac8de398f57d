"""Figures, one PNG each: labelled axes, layer names, units; readable at a glance."""
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from pipeline import stats  # noqa: E402
from pipeline.results import write_atomic_with  # noqa: E402


def _save(fig, path):
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def accuracy_vs_timesteps(path, rows, curve, simulator, num_samples):
    """Table 2 as a figure: SNN accuracy per T (points with their 95 % intervals on ``num_samples``),
    the per-timestep curve under them, the ANN line and its interval as a band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(range(1, len(curve) + 1), curve, color="0.7", lw=1, label="SNN accuracy at every timestep")
    ts, anns, snns = zip(*rows)
    lo, hi = np.transpose([stats.interval(a, num_samples) for a in snns])
    # at k = 0 the Wilson bound lies a rounding error above the accuracy: matplotlib refuses a negative bar
    ax.errorbar(ts, snns, yerr=np.maximum([np.subtract(snns, lo), np.subtract(hi, snns)], 0.0), fmt="o-", color="C0",
                capsize=3,
                label=f"SNN ({simulator}), 95 % interval, N={num_samples}")
    ax.axhline(anns[0], color="C3", ls="--", label=f"ANN ({anns[0]:.3f})")
    ax.axhspan(*stats.interval(anns[0], num_samples), color="C3", alpha=0.1)
    ax.set_xlabel("simulation timesteps T")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Converted ESCAPE-NET: accuracy vs timesteps")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


# --------------------------------------------------------------------- spike analysis and energy (seed Figs 4-8)
RASTER_POINTS = 200_000   # most spikes drawn per layer panel; denser layers show every k-th neuron


def _panels(count, width=3.6, height=3.0, columns=4):
    """A grid of `count` panels (unused cells hidden), returned flat and in order."""
    cols = min(columns, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             constrained_layout=True)
    axes = axes.ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def spike_raster(path, trains, sample):
    """Figure 4: every spike of one sample, neuron index vs timestep, one panel per layer.

    ``trains``: layer name -> bool array (T, ...) of that sample.
    """
    fig, axes = _panels(len(trains))
    for ax, (name, train) in zip(axes, trains.items()):
        flat = train.reshape(train.shape[0], -1)
        steps, neurons = np.nonzero(flat)
        stride = max(1, int(np.ceil(len(steps) / RASTER_POINTS)))
        keep = neurons % stride == 0
        ax.scatter(steps[keep] + 1, neurons[keep], s=0.5, marker="|", color="k", rasterized=True)
        shown = "" if stride == 1 else f", every {stride}th neuron"
        ax.set_title(f"{name}: {len(steps):,} spikes{shown}", fontsize=9)
        ax.set_xlabel("timestep")
        ax.set_xlim(0.5, flat.shape[0] + 0.5)
        ax.set_ylim(-0.5, flat.shape[1] - 0.5)
        ax.set_ylabel("neuron index (flattened)")
    fig.suptitle(f"Figure 4. Spike raster per layer, test sample {sample}")
    _save(fig, path)


def spike_histograms(path, sample_totals, per_inference, sample, num_samples):
    """Figure 5: spikes per neuron per layer, for one sample and averaged over the simulated samples.

    The fraction of silent neurons is printed in each panel (never fired in the sample / in any sample).
    """
    fig, axes = _panels(len(sample_totals))
    for ax, name in zip(axes, sample_totals):
        one = np.asarray(sample_totals[name]).ravel()
        mean = np.asarray(per_inference[name]).ravel()
        top = max(float(one.max()), float(mean.max()), 1.0)
        bins = np.arange(-0.5, np.ceil(top) + 1) if top <= 40 else np.linspace(0, top, 41)
        ax.hist(one, bins=bins, histtype="stepfilled", alpha=0.5, color="C0", label=f"sample {sample}")
        ax.hist(mean, bins=bins, histtype="step", color="C3", label=f"mean of {num_samples} samples")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("spikes per neuron per inference")
        ax.set_ylabel("neurons")
        ax.text(0.97, 0.97, f"silent: {np.mean(one == 0):.1%} (sample)\n{np.mean(mean == 0):.1%} (all samples)",
                transform=ax.transAxes, ha="right", va="top", fontsize=8)
    axes[0].legend(loc="lower left", fontsize=7)
    fig.suptitle("Figure 5. Histogram of spikes per neuron, per layer")
    _save(fig, path)


def operations_per_layer(path, layers):
    """Figure 6: ANN operations (MACs + adds) vs SNN ACs (+ MACs) and spikes per layer, log scale."""
    names = [row["name"] for row in layers]
    x = np.arange(len(names))
    ann = [row["ann_macs"] + row["ann_adds"] for row in layers]
    snn = [row["snn_acs"] + row["snn_macs"] for row in layers]
    spikes = [row["snn_spikes"] for row in layers]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.bar(x - 0.27, ann, 0.27, label="ANN MACs + adds", color="C3")
    ax.bar(x, snn, 0.27, label="SNN ACs + MACs", color="C0")
    ax.bar(x + 0.27, spikes, 0.27, label="SNN spikes emitted", color="C2")
    ax.set_yscale("log")
    ax.set_xticks(x, names)
    ax.set_xlabel("layer")
    ax.set_ylabel("operations / spikes per inference")
    ax.set_title("Figure 6. ANN operations vs SNN accumulates per layer")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def normalized_energy(path, layers, total):
    """Figure 7: energy per layer and in total, both networks as fractions of the ANN's total."""
    ann_total = total["ann_energy_j"]
    names = [row["name"] for row in layers] + ["total"]
    ann = [row["ann_energy_j"] / ann_total for row in layers] + [1.0]
    snn = [row["snn_energy_j"] / ann_total for row in layers] + [total["normalized_energy"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.bar(x - 0.2, ann, 0.4, label="ANN", color="C3")
    bars = ax.bar(x + 0.2, snn, 0.4, label="SNN", color="C0")
    ax.bar_label(bars, [f"{v:.3g}" for v in snn], fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, names)
    ax.set_xlabel("layer")
    ax.set_ylabel("energy / ANN total energy")
    ax.set_title(f"Figure 7. Normalised energy: SNN {total['normalized_energy']:.4f} of the ANN "
                 f"({total['saving']:.1f}x saving)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def cumulative_energy(path, cumulative_j, ann_energy_j):
    """Figure 8: SNN energy per inference spent up to each timestep, against the ANN's one pass."""
    steps = np.arange(1, len(cumulative_j) + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(steps, np.asarray(cumulative_j) * 1e6, "o-", ms=3, color="C0", label="SNN (cumulative)")
    ax.axhline(ann_energy_j * 1e6, color="C3", ls="--", label=f"ANN ({ann_energy_j * 1e6:.3g} uJ)")
    ax.set_yscale("log")
    ax.set_xlabel("timestep")
    ax.set_ylabel("energy per inference (uJ)")
    ax.set_title("Figure 8. Energy consumed through the simulation")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def stdb_curves(path, record):
    """Seed Figure 3: STDB training curves (loss; train and validation accuracy) per epoch, the chosen
    epoch marked; all on the validation samples that chose it (the test set is not shown). The
    validation accuracy starts at epoch 0, the converted network, a candidate of the choice."""
    history = record["history"]
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["loss"] for h in history], "o-", label="train loss")
    ax_loss.plot(epochs, [h["validation_loss"] for h in history], "s--", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend(fontsize=8)
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot([0] + epochs, [record["validation_accuracy_before"]] + [h["validation_accuracy"] for h in history],
                "s-", label="validation")
    ax_acc.axvline(record["best_epoch"], color="C2", ls=":", label="chosen epoch")
    ax_acc.axhline(record["validation_accuracy_before"], color="0.5", ls=":", label="converted, before STDB")
    ax_acc.axhline(record["ann_validation_accuracy"], color="C3", ls="--", label="ANN")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(loc="lower right", fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle(f"STDB fine-tuning at T={record['timesteps']} ({record['surrogate']} surrogate, "
                 f"leak {record['leak']})")
    _save(fig, path)


# --------------------------------------------------------------------- the accuracy-energy frontier
CODING_COLORS = {"analog": "C0", "poisson": "C1", "rate": "C2", "delta": "C3"}
METHOD_MARKERS = {"conversion": "o", "qcfs": "s", "qcfs+sparsity": "D", "qcfs+stdb": "v"}


def frontier(path, rows, front, chosen, ann_accuracy, num_samples):
    """Accuracy vs normalised energy (log axis) of every coding x method x T, with 95 % intervals;
    the Pareto front as a line, the point chosen on validation starred, the modified ANN as a
    reference line with its interval as a band."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen = set()
    for r in rows:
        lo, hi = r["snn_accuracy_interval"]
        key = (r["coding"], r["method"])
        ax.errorbar(r["normalized_energy"], r["snn_accuracy"], yerr=[[max(r["snn_accuracy"] - lo, 0.0)], [max(hi - r["snn_accuracy"], 0.0)]],
                    fmt=METHOD_MARKERS.get(r["method"], "^"), color=CODING_COLORS.get(r["coding"], "k"), ms=5,
                    capsize=2, alpha=0.8, label=None if key in seen else f"{r['coding']}, {r['method']}")
        ax.annotate(str(r["timesteps"]), (r["normalized_energy"], r["snn_accuracy"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
        seen.add(key)
    if front:
        ax.step([r["normalized_energy"] for r in front], [r["snn_accuracy"] for r in front], where="post",
                color="k", lw=1, label="Pareto front")
    if chosen is not None:
        ax.plot(chosen["normalized_energy"], chosen["snn_accuracy"], "*", color="gold", mec="k", ms=14,
                label="chosen on validation")
    ax.axhline(ann_accuracy, color="k", ls="--", lw=1, label=f"modified ANN ({ann_accuracy:.3f})")
    ax.axhspan(*stats.interval(ann_accuracy, num_samples), color="0.5", alpha=0.15)
    ax.axvline(1.0, color="0.6", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("SNN energy / modified ANN energy (log)")
    ax.set_ylabel(f"test accuracy (N={num_samples}, 95 % intervals)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Accuracy vs energy: input coding x method x T (labels: T)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


# --------------------------------------------------------------------- SEEDS=: the spread between trainings
# SNN Toolbox's setup writes its plot settings (large fonts) into matplotlib's global rcParams in the stage's
# process; the across-seed figures are drawn with matplotlib's defaults whatever ran before them
_DEFAULT_STYLE = "default"


def _across_bars(summaries):
    """Error bars [below, above] of across-seed means (`stats.across_seeds`; zero without an interval)."""
    below = [0.0 if s["interval"] is None else s["mean"] - s["interval"][0] for s in summaries]
    above = [0.0 if s["interval"] is None else s["interval"][1] - s["mean"] for s in summaries]
    return [below, above]


def across_seeds_vs_timesteps(path, record, simulator):
    """Table 2 across seeds (`records.SeedsRecord`): each seed's SNN accuracy per T as a small point, the
    mean over seeds with its t interval as error bars, the ANN's mean as a line and its t interval as a band."""
    with plt.style.context(_DEFAULT_STYLE):
        _across_seeds_vs_timesteps(path, record, simulator)


def _across_seeds_vs_timesteps(path, record, simulator):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ts = [r.key["timesteps"] for r in record.rows]
    for i, seed in enumerate(record.seeds):
        ax.plot(ts, [r.per_seed[i]["snn_accuracy"] for r in record.rows], ".", color=f"C{(i + 1) % 10}", alpha=0.6,
                label=f"seed {seed}")
    means = [r.across["snn_accuracy"] for r in record.rows]
    ax.errorbar(ts, [m["mean"] for m in means], yerr=_across_bars(means), fmt="o-", color="C0", capsize=4,
                label=f"SNN ({simulator}), mean over {len(record.seeds)} seeds, "
                      f"{100 * record.confidence:g} % t interval")
    ann = record.rows[-1].across["ann_accuracy"]
    ax.axhline(ann["mean"], color="C3", ls="--", label=f"ANN, mean over seeds ({ann['mean']:.3f})")
    if ann["interval"] is not None:
        ax.axhspan(*ann["interval"], color="C3", alpha=0.1)
    ax.set_xlabel("simulation timesteps T")
    ax.set_ylabel(f"test accuracy (N={record.num_samples} per seed)")
    ax.set_ylim(0, 1)
    ax.set_title("Converted ESCAPE-NET across training seeds: accuracy vs timesteps")
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def frontier_across_seeds(path, record):
    """The frontier across seeds (`records.SeedsRecord`): each row's mean accuracy and energy over the seeds
    with both t intervals as error bars, each seed's point faint behind it, the chosen points starred."""
    with plt.style.context(_DEFAULT_STYLE):
        _frontier_across_seeds(path, record)


def _frontier_across_seeds(path, record):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen = set()
    for r in record.rows:
        acc, en = r.across["snn_accuracy"], r.across["normalized_energy"]
        key = (r.key["coding"], r.key["method"])
        color, marker = CODING_COLORS.get(key[0], "k"), METHOD_MARKERS.get(key[1], "^")
        ax.plot([e["normalized_energy"] for e in r.per_seed], [e["snn_accuracy"] for e in r.per_seed], marker,
                color=color, ms=3, alpha=0.25)
        ax.errorbar(en["mean"], acc["mean"], xerr=np.reshape(_across_bars([en]), (2, 1)),
                    yerr=np.reshape(_across_bars([acc]), (2, 1)), fmt=marker, color=color, ms=5, capsize=2,
                    label=None if key in seen else f"{key[0]}, {key[1]}")
        ax.annotate(str(r.key["timesteps"]), (en["mean"], acc["mean"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
        seen.add(key)
    if record.chosen is not None and record.chosen.per_seed:
        ax.plot([e["normalized_energy"] for e in record.chosen.per_seed],
                [e["snn_accuracy"] for e in record.chosen.per_seed], "*", color="gold", mec="k", ms=12,
                label="chosen on validation, per seed")
    ann = record.rows[0].across["ann_accuracy"]
    ax.axhline(ann["mean"], color="k", ls="--", lw=1, label=f"modified ANN, mean over seeds ({ann['mean']:.3f})")
    if ann["interval"] is not None:
        ax.axhspan(*ann["interval"], color="0.5", alpha=0.15)
    ax.axvline(1.0, color="0.6", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("SNN energy / modified ANN energy (log)")
    ax.set_ylabel(f"test accuracy (N={record.num_samples} per seed)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Accuracy vs energy over {len(record.seeds)} seeds: means with {100 * record.confidence:g} % "
                 "t intervals (labels: T)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)
