"""Caches that cannot lie: a trained model or a toolbox data file that is not what was written (cut
short, edited) is reported in one line and rebuilt, never loaded. (The synthetic dataset cache: test_data.)"""
import json

import pytest

from pipeline import results, settings as settings_module, workspace


def prepare(npz, *extra):
    chosen = settings_module.parse(["convert", f"DATA={npz}", "WIDTH=4", "EPOCHS=1", "RUN=c", *extra])
    return workspace.prepare(chosen, verbose=0)


def one_line_rebuild(capsys, path):
    out = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(out) == 1 and out[0].startswith(f"{path}: ") and out[0].endswith("; rebuilding it"), out


@pytest.mark.slow
def test_a_truncated_or_unrecorded_model_is_retrained_and_a_good_one_reused(sandbox, tiny_npz, capsys):
    ws = prepare(tiny_npz)
    path, blob = ws.model.path, ws.model.path.read_bytes()
    assert ws.model.info["sha256"] == results.file_sha256(path) == ws.model_sha256
    mtime = path.stat().st_mtime_ns
    capsys.readouterr()
    assert prepare(tiny_npz).model.path.stat().st_mtime_ns == mtime     # verified, reused
    assert capsys.readouterr().out == ""

    path.write_bytes(blob[:len(blob) // 3])                              # cut short, e.g. a full disk
    again = prepare(tiny_npz)
    one_line_rebuild(capsys, path)
    assert results.file_sha256(path) == again.model.info["sha256"]

    info = json.loads(path.with_suffix(".json").read_text())            # a cache from before the sha256
    del info["sha256"]
    path.with_suffix(".json").write_text(json.dumps(info))
    prepare(tiny_npz)
    one_line_rebuild(capsys, path)

    path.with_suffix(".json").write_text("{")                            # its record damaged
    prepare(tiny_npz)
    one_line_rebuild(capsys, path)


@pytest.mark.slow
def test_a_damaged_toolbox_data_file_is_rewritten(sandbox, tiny_npz, capsys):
    ws = prepare(tiny_npz)
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
