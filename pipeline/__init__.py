"""escape-snn: ESCAPE-NET to spiking network. Stages (`pipeline.stages`, one per Make target)
orchestrate the libraries: data, training, network, engine, energy, toolbox, results.

Importing `keras_models` first selects the legacy Keras (SNN Toolbox speaks the Keras-2 API).
"""
import importlib.abc
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import keras_models  # noqa: F401,E402  (selects the legacy Keras before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ chatter hides our progress


class _QuietTensorFlowLoad(importlib.abc.MetaPathFinder):
    """TensorFlow 2.21 logs its start-up (oneDNN notice, CUDA stub) through absl before it reads
    TF_CPP_MIN_LOG_LEVEL: wherever TensorFlow is first imported, what the process writes to stderr
    while the package loads is held back, and shown only if the import fails."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)   # once, and the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module
            spec.loader.exec_module = lambda module: _holding_stderr(load, module)
        return spec


def _holding_stderr(function, *args):
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            return function(*args)
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowLoad())

# The toolbox re-traces tf.functions per batch by design; the warnings drown our progress bars.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")


ROOT = Path(__file__).resolve().parent.parent   # the checkout: data/, keras_models/, snn_configs/, results/


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2."""
