"""escape-snn: ESCAPE-NET to spiking network, one module per pipeline stage.

SNN Toolbox speaks the Keras-2 API, so the legacy Keras (tf-keras) must be
selected before TensorFlow is first imported anywhere in the process.
"""
import logging
import os
import warnings

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ chatter hides our progress

# The toolbox re-traces tf.functions per batch by design; the warnings drown our progress bars.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2."""
