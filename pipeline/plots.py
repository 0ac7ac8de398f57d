"""Figures, one PNG each: labelled axes, layer names, units; readable at a glance."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.results import write_atomic_with  # noqa: E402


def _save(fig, path):
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def accuracy_vs_timesteps(path, rows, curve, simulator):
    """Table 2 as a figure: SNN accuracy per T (points), the per-timestep curve under them, the ANN line."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(range(1, len(curve) + 1), curve, color="0.7", lw=1, label="SNN accuracy at every timestep")
    ts, anns, snns = zip(*rows)
    ax.plot(ts, snns, "o-", color="C0", label=f"SNN ({simulator})")
    ax.axhline(anns[0], color="C3", ls="--", label=f"ANN ({anns[0]:.3f})")
    ax.set_xlabel("simulation timesteps T")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Converted ESCAPE-NET: accuracy vs timesteps")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)
