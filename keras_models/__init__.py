"""Keras model builders; trained models live in keras_models/trained/ (git-ignored)."""
import pipeline  # noqa: F401  (selects the legacy Keras before TensorFlow loads)
