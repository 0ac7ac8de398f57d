"""Result files and the folders they go to (`Folders`): atomic writes, provenance, the RUN record that
later stages reuse, the sha256 stamps that let a cache be trusted, and the locks of a RUN and of a cache."""
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import ROOT, UserError

RECORD_KEYS = ("data", "scale", "width", "epochs", "seed", "model_file", "prune", "arch", "val_trials", "quant")
MAKE_NAMES = {"model_file": "MODEL"}   # the setting of a record key, where its name differs


@dataclass(frozen=True)
class Folders:
    """Where the pipeline writes and reads its outputs: the RUNs' results, the trained-model cache, the data
    caches and the rendered toolbox configs. One object handed to every library that touches them (no module
    globals), so a researcher can write elsewhere (``OUT=``, e.g. a cluster's scratch), a sweep's child
    processes write where their parent does, and a test writes into a temporary folder."""
    results: Path
    trained: Path
    data: Path
    configs: Path

    @classmethod
    def under(cls, root=None):
        """The checkout's layout under ``root`` (``OUT``; None: the checkout itself): results/,
        keras_models/trained/, data/ and snn_configs/generated/."""
        root = ROOT if root is None else Path(root).expanduser().resolve()
        return cls(root / "results", root / "keras_models" / "trained", root / "data",
                   root / "snn_configs" / "generated")

    def run_dir(self, run):
        """results/<RUN>/ (refused when RUN is not a plain folder name)."""
        if not run or "/" in run or run.startswith("."):
            raise UserError(f"RUN={run!r}: a results folder name without '/' is required")
        return self.results / run


def write_atomic_with(path, write):
    """Call `write(tmp_path)`, then rename tmp onto `path`: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path, text):
    write_atomic_with(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, default=_plain) + "\n")


def read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def _plain(value):
    import numpy as np
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp_path(path):
    """Where the sha256 of a cache file is recorded when it is written: ``<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_stamp(path):
    """Record the sha256 of the cache file just written at `path` (after it, so a crash in between
    leaves a file without a stamp: rebuilt, never trusted)."""
    write_atomic(stamp_path(path), file_sha256(path) + "\n")


def cache_problem(path, recorded_sha256):
    """Why the cache file at `path` cannot be trusted, or None when its sha256 is the one recorded
    when it was written (a file cut short by a full disk or an interrupted copy, or edited, is not)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if not recorded_sha256:
        return "no sha256 was recorded when it was written"
    actual = file_sha256(path)
    if actual != recorded_sha256:
        return (f"sha256 {actual[:12]} is not the {recorded_sha256[:12]} recorded when it was written "
                "(truncated or edited)")
    return None


def stamped_problem(path):
    """`cache_problem` against the sha256 in the file's stamp (`write_stamp`)."""
    stamp = stamp_path(path)
    return cache_problem(path, stamp.read_text().strip() if stamp.is_file() else None)


def report_rebuild(path, problem):
    """The one line a stage prints before it rebuilds a cache file it cannot trust."""
    print(f"{path}: {problem}; rebuilding it", flush=True)


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on ``<path>.lock`` while a cache at `path` is checked and (re)built.

    Another process building the same cache waits here, then finds it built: two processes never
    write one cache at once. Not re-entrant for one path (flock locks an open file).
    """
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD_RUNS = {}


def _run_lock(run, folders):
    return folders.run_dir(run).with_name(f".{run}.lock")


def held_by_parent(run, folders):
    """Count the RUN (in ``folders``) as held by this process: its parent holds the lock and waits for it
    (a sweep's child process, writing only its own files)."""
    _HELD_RUNS[str(_run_lock(run, folders).resolve())] = None


def hold_run(run, folders):
    """Lock results/<RUN>/ for the rest of this process (`workspace.prepare` calls it).

    A second stage on the same RUN is refused at once in one line naming the holder, rather than
    made to wait: a stage can run for hours, and two stages on one RUN would interleave their writes
    to run.json, the toolbox's work dir and the result files. The lock is an ``flock`` on
    ``results/.<RUN>.lock`` (beside the folder, so a refused stage creates no RUN folder), released by
    the kernel when the process ends (also when it is killed).
    """
    lock = _run_lock(run, folders)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = str(lock.resolve())
    if key in _HELD_RUNS:
        return
    handle = open(lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"RUN={run} is in use by another stage ({holder}); wait for it to finish "
                        f"or use another RUN") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: {' '.join(sys.argv[1:]) or 'python'}\n")
    handle.flush()
    _HELD_RUNS[key] = handle


def versions():
    import numpy
    import snntoolbox  # noqa: F401
    import tensorflow
    from importlib.metadata import version
    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "snntoolbox": version("snntoolbox"),
    }


def provenance(dataset_name, dataset_sha256, model_path, model_sha256, seed):
    """What every result records about where its numbers come from."""
    return {"dataset": {"name": dataset_name, "sha256": dataset_sha256},
            "model": {"path": str(model_path), "sha256": model_sha256},
            "seed": int(seed), "versions": versions()}


def resolve_run(run, folders, requested, defaults, force=False):
    """Settle a RUN's data/scale/width/epochs/seed/MODEL: recorded values win, conflicts are refused.

    `requested` holds what the user asked for (None = not asked). The first
    stage of a RUN records its choice in results/<RUN>/run.json; later stages
    reuse it. Asking an existing RUN for something else is refused unless
    `force`: FORCE recomputes what the RUN recorded, so a value not given comes from run.json
    (not the default) and a value given replaces it; one line says what changed.
    """
    record_path = folders.run_dir(run) / "run.json"
    recorded = read_json(record_path) if record_path.exists() else None
    if recorded is None:
        return {key: requested[key] if requested.get(key) is not None else defaults[key] for key in RECORD_KEYS}
    # a key recorded before it existed (PRUNE, QUANT) holds its default
    changed = [f"{MAKE_NAMES.get(key, key.upper())}={requested[key]} (recorded: {recorded.get(key)})"
               for key in RECORD_KEYS
               if requested.get(key) is not None and str(requested[key]) != str(recorded.get(key, defaults[key]))]
    if not force:
        if changed:
            raise UserError(f"RUN={run} was made with other settings: {', '.join(changed)}; "
                            f"use another RUN or FORCE=1")
        return recorded
    print(f"FORCE: recomputing RUN={run} with its recorded settings"
          + (f"; changed: {', '.join(changed)}" if changed else "; nothing changed"), flush=True)
    return {key: requested[key] if requested.get(key) is not None else recorded.get(key, defaults[key])
            for key in RECORD_KEYS}


def record_run(run, folders, chosen, dataset, model_path, model_sha256, model_file_sha256=None):
    """results/<RUN>/run.json: the choices, the dataset and model they gave, and the sha256 of a MODEL= file."""
    write_json(folders.run_dir(run) / "run.json", {
        **chosen, "dataset": {"name": dataset.name, "sha256": dataset.sha256},
        "model": {"path": str(model_path), "sha256": model_sha256},
        **({"model_file_sha256": model_file_sha256} if model_file_sha256 else {}),
    })
