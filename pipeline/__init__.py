"""escape-snn: ESCAPE-NET to spiking network. Stages (`pipeline.stages`, one per Make target)
orchestrate the libraries: data, training, network, engine, energy, toolbox, results.

Importing `keras_models` first selects the legacy Keras (SNN Toolbox speaks the Keras-2 API).
"""
import logging
import os
import warnings
from pathlib import Path

import keras_models  # noqa: F401,E402  (selects the legacy Keras before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ chatter hides our progress

# The toolbox re-traces tf.functions per batch by design; the warnings drown our progress bars.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")


ROOT = Path(__file__).resolve().parent.parent   # the checkout: data/, keras_models/, snn_configs/, results/


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2."""
