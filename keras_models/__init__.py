"""Keras model builders; trained models live in keras_models/trained/ (git-ignored).

They are Keras-2 (tf-keras) models because SNN Toolbox reads them: the legacy Keras must be
selected before TensorFlow is first imported anywhere in the process, so it is selected here,
where every importer of a model builder (and `pipeline`) passes first.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
