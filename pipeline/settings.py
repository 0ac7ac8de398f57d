"""Typed settings, parsed once from the command line (the Make variables map 1:1 to these flags)."""
import argparse
from dataclasses import dataclass, fields

from pipeline import UserError

STAGES = ("data", "train", "convert", "sweep", "compare", "stdb", "stdb-sweep", "energy", "bench",
          "latency", "report")


@dataclass(frozen=True)
class Settings:
    stage: str
    run: str = "default"
    data: str | None = None          # None: what the RUN recorded, else "synthetic"
    epochs: int | None = None
    width: int | None = None
    scale: str | None = None
    seed: int | None = None
    timesteps: int | None = None     # T
    timesteps_list: tuple = ()       # TS
    num_samples: int | None = None   # N
    ntrain: int | None = None
    stdb_epochs: int = 10
    leak: float = 1.0
    surrogate: str = "linear"
    lr: float = 1e-4
    train_thresholds: bool = False
    train_leak: bool = False
    neuron_lr: float = 1e-2
    thresholds: str = "max"
    coding: str = "poisson"
    net: str = "converted"
    preset: str = "45nm-fp32"
    mac_pj: float | None = None
    ac_pj: float | None = None
    levels: int = 8                  # L
    sim: str = "INI"
    sims: tuple = ("INI",)
    config: str | None = None
    stdb: bool = False
    force: bool = False


def _positive_int(flag):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}={text!r} is not an integer") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{flag}={value} must be a positive integer")
        return value
    return parse


def _int_list(flag):
    item = _positive_int(flag)

    def parse(text):
        values = tuple(item(part) for part in text.replace(",", " ").split())
        if not values:
            raise argparse.ArgumentTypeError(f"{flag} is empty: give timesteps like \"50 100 300\"")
        return values
    return parse


def _float(flag):
    def parse(text):
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}={text!r} is not a number") from None
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def parser():
    p = _Parser(prog="python -m pipeline", description="escape-snn pipeline stages")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--run", default="default", help="results folder name (RUN)")
    p.add_argument("--data", help="synthetic, or a RAT .mat / generic .npz path (DATA)")
    p.add_argument("--epochs", type=_positive_int("EPOCHS"), help="ANN training epochs")
    p.add_argument("--width", type=_positive_int("WIDTH"), help="filters per conv layer")
    p.add_argument("--scale", choices=("signed", "unsigned"), help="input scaling (SCALE)")
    p.add_argument("--seed", type=int, help="seed of training and simulation")
    p.add_argument("--timesteps", type=_positive_int("T"), help="simulation timesteps (T)")
    p.add_argument("--timesteps-list", type=_int_list("TS"), default=(), help="list of T (TS)")
    p.add_argument("--num-samples", type=_positive_int("N"), help="test samples simulated (N)")
    p.add_argument("--ntrain", type=_positive_int("NTRAIN"), help="training samples for STDB")
    p.add_argument("--stdb-epochs", type=_positive_int("STDB_EPOCHS"), default=10)
    p.add_argument("--leak", type=_float("LEAK"), default=1.0)
    p.add_argument("--surrogate", choices=("linear", "stdb"), default="linear")
    p.add_argument("--lr", type=_float("LR"), default=1e-4)
    p.add_argument("--train-thresholds", action="store_true", help="STDB also trains the thresholds")
    p.add_argument("--train-leak", action="store_true", help="STDB also trains the leaks")
    p.add_argument("--neuron-lr", type=_float("NEURON_LR"), default=1e-2,
                   help="STDB's learning rate of the log thresholds and log leaks")
    p.add_argument("--thresholds", choices=("max", "toolbox"), default="max")
    p.add_argument("--coding", choices=("poisson", "analog"), default="poisson")
    p.add_argument("--net", choices=("converted", "stdb", "qcfs", "qcfs+stdb"), default="converted")
    p.add_argument("--preset", default="45nm-fp32")
    p.add_argument("--mac-pj", type=_float("MAC_PJ"))
    p.add_argument("--ac-pj", type=_float("AC_PJ"))
    p.add_argument("--levels", type=_positive_int("L"), default=8)
    p.add_argument("--sim", choices=("INI", "fast"), default="INI")
    p.add_argument("--sims", type=lambda s: tuple(s.split()), default=("INI",))
    p.add_argument("--config", help="an existing ini to run as is (CONFIG)")
    p.add_argument("--stdb", action="store_true", help="add STDB rows (latency)")
    p.add_argument("--force", action="store_true", help="recompute what is cached (FORCE=1)")
    return p


def parse(argv):
    args = parser().parse_args(argv)
    values = vars(args)
    return Settings(**{f.name: values[f.name] for f in fields(Settings)})
