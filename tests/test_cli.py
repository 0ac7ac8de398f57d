"""The real command line in fresh processes: bad input through `python -m pipeline` and through `make`
ends in one line on stderr and exit code 2, without a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_arrays

ROOT = Path(__file__).resolve().parent.parent
# make runs the pipeline with this interpreter and never (re)installs .venv: the stamps count as up to date.
MAKE = ["make", "--no-print-directory", f"PY={sys.executable}",
        "-o", ".venv/.installed", "-o", ".venv/.installed-sims", "-o", ".venv-interop/.installed"]


def one_line_and_exit_2(process, message, own_lines=()):
    """The pipeline's one line on stderr (besides ``own_lines``, the caller's), exit code 2, no traceback."""
    lines = [line for line in process.stderr.splitlines() if not line.startswith(own_lines)]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], process.stderr
    assert "Traceback" not in process.stderr + process.stdout


@pytest.mark.parametrize("args, message", [
    (["convert", "T=abc"], "T='abc' is not an integer"),
    (["export", "TT=5"], "TT: unknown setting"),     # not "T is required": TT is not ignored
    (["convert", "N=-1"], "N=-1 must be a positive integer"),
    (["sweep", "TS=50 x"], "TS='x' is not an integer"),
])
def test_bad_settings_through_python_m_pipeline_and_make_end_in_one_line_and_exit_2(args, message):
    # not the variables of a make that runs the tests (make test X=1 would hand X=1 on)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    run = dict(cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    one_line_and_exit_2(subprocess.run([sys.executable, "-m", "pipeline", *args], **run), message)
    # make adds its own line ("make: *** [Makefile:..: convert] Error 2") and exits 2 as the pipeline did
    one_line_and_exit_2(subprocess.run([*MAKE, *args], **run), message, own_lines=("make: ***",))


@pytest.mark.parametrize("args, message", [
    (["DATA={tmp}/missing.npz"], "/missing.npz: no such data file"),
    (["DATA={tmp}/tiny.npz", "MODEL={tmp}/notes.txt"], "/notes.txt: a Keras .h5 file is expected"),
])
def test_bad_files_through_the_command_line_end_in_one_line_and_exit_2(tmp_path, args, message):
    x_train, y_train, x_test, y_test = tiny_arrays()
    np.savez(tmp_path / "tiny.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (tmp_path / "notes.txt").write_text("not a model\n")
    args = [arg.format(tmp=tmp_path) for arg in args]
    # the outputs in a temporary folder (OUT): a refused stage has already taken its RUN's lock there
    process = subprocess.run([sys.executable, "-m", "pipeline", "convert", f"OUT={tmp_path / 'out'}", "T=5", *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    one_line_and_exit_2(process, message)
    assert [p.name for p in (tmp_path / "out" / "results").iterdir()] == [".default.lock"]   # nothing else
