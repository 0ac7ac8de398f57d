"""What the terminal shows when TensorFlow loads: nothing of its start-up chatter, everything of a failure."""
import subprocess
import sys

from pipeline import ROOT


def _import_tensorflow(tmp_path=None):
    env = None
    if tmp_path is not None:   # a stand-in package that writes to stderr, as a native loader would, then fails
        package = tmp_path / "tensorflow"
        package.mkdir()
        (package / "__init__.py").write_text(
            "import os\nos.write(2, b'loader: libtensorflow_cc.so.2 not found\\n')\n"
            "raise ImportError('no TensorFlow')\n")
        env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", "import pipeline, tensorflow"], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_tensorflow_loads_without_its_start_up_lines():
    run = _import_tensorflow()
    assert run.returncode == 0 and run.stderr == "", run.stderr


def test_a_failing_tensorflow_import_shows_what_it_wrote(tmp_path):
    run = _import_tensorflow(tmp_path)
    assert run.returncode == 1
    assert "loader: libtensorflow_cc.so.2 not found" in run.stderr and "ImportError: no TensorFlow" in run.stderr
