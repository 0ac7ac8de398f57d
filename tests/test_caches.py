"""Caches that cannot lie: a trained model or a toolbox data file that is not what was written (cut
short, edited) is reported in one line and rebuilt, never loaded; two processes needing one cache build
it once. (The synthetic dataset cache's sha256: test_data.)"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import results, settings as settings_module, workspace

ROOT = Path(__file__).resolve().parent.parent


def prepare(out, npz, *extra):
    chosen = settings_module.parse(["convert", f"OUT={out}", f"DATA={npz}", "WIDTH=4", "EPOCHS=1", "RUN=c", *extra])
    return workspace.prepare(chosen, verbose=0)


def one_line_rebuild(capsys, path):
    out = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(out) == 1 and out[0].startswith(f"{path}: ") and out[0].endswith("; rebuilding it"), out


@pytest.mark.slow
def test_a_truncated_or_unrecorded_model_is_retrained_and_a_good_one_reused(sandbox, tiny_npz, capsys):
    ws = prepare(sandbox, tiny_npz)
    path, blob = ws.model.path, ws.model.path.read_bytes()
    assert ws.model.info["sha256"] == results.file_sha256(path) == ws.model_sha256
    mtime = path.stat().st_mtime_ns
    capsys.readouterr()
    assert prepare(sandbox, tiny_npz).model.path.stat().st_mtime_ns == mtime     # verified, reused
    assert capsys.readouterr().out == ""

    path.write_bytes(blob[:len(blob) // 3])                              # cut short, e.g. a full disk
    again = prepare(sandbox, tiny_npz)
    one_line_rebuild(capsys, path)
    assert results.file_sha256(path) == again.model.info["sha256"]

    info = json.loads(path.with_suffix(".json").read_text())            # a cache from before the sha256
    del info["sha256"]
    path.with_suffix(".json").write_text(json.dumps(info))
    prepare(sandbox, tiny_npz)
    one_line_rebuild(capsys, path)

    path.with_suffix(".json").write_text("{")                            # its record damaged
    prepare(sandbox, tiny_npz)
    one_line_rebuild(capsys, path)


@pytest.mark.slow
def test_a_damaged_toolbox_data_file_is_rewritten(sandbox, tiny_npz, capsys):
    ws = prepare(sandbox, tiny_npz)
    folder = ws.toolbox_data()
    x_test = folder / "x_test.npz"
    blob = x_test.read_bytes()
    x_test.write_bytes(blob[:100])
    capsys.readouterr()
    assert ws.toolbox_data() == folder
    one_line_rebuild(capsys, x_test)
    assert x_test.read_bytes() == blob and results.stamped_problem(x_test) is None
    (folder / "y_test.npz").unlink()                                     # missing: written again, silently
    ws.toolbox_data()
    assert capsys.readouterr().out == "" and results.stamped_problem(folder / "y_test.npz") is None


# One process needing the synthetic dataset cache in ``folder``: its generator replaced by a tiny one that
# notes each build and, once both processes have started, takes its time, so the other one asks meanwhile.
NEEDS_THE_CACHE = """
import sys, time
from pathlib import Path
import numpy as np
from pipeline import data
folder = Path(sys.argv[1])
(folder / f"started_{sys.argv[2]}").touch()

def tiny(source):
    with open(folder / "builds", "a") as f:
        f.write(sys.argv[2] + "\\n")
    while len(list(folder.glob("started_*"))) < 2:
        time.sleep(0.01)
    time.sleep(0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4, 5, 1)).astype(np.float32)      # as load_raw gives it: float32 (N, H, W, 1)
    return x[:6], np.arange(6) % 3, x[6:], np.arange(3)
data.load_raw = tiny
print(data.load_dataset("synthetic", cache_dir=folder / "cache").sha256)
"""


def test_two_processes_needing_one_cache_build_it_once_and_both_get_it(tmp_path):
    processes = [subprocess.Popen([sys.executable, "-c", NEEDS_THE_CACHE, str(tmp_path), name], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    outcomes = [p.communicate(timeout=120) + (p.returncode,) for p in processes]
    assert [rc for *_, rc in outcomes] == [0, 0], outcomes
    assert len((tmp_path / "builds").read_text().split()) == 1       # the second waited for the lock, then read it
    (a, _, _), (b, _, _) = outcomes
    assert a == b and len(a.strip()) == 64
    assert [p.name for p in (tmp_path / "cache").glob("*.npz")] and not list((tmp_path / "cache").glob("*.tmp"))
