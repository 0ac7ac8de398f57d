"""The one spiking engine: simulation (step by step, and the layer-by-layer fast path), shared by
STDB training and the energy counts. It runs a `pipeline.network` description and never imports
SNN Toolbox; what it knows of the toolbox is its arithmetic (Poisson rule, scale factors).
"""
from pipeline.engine.coding import (batch_key, delta_input, delta_levels, coded_frames, input_spikes, padded_batch, poisson_spikes,
                                   rate_spikes, replay_input, sample_keys, toolbox_poisson_replay)
from pipeline.engine.neurons import RESET, Heaviside, heaviside
from pipeline.engine.simulator import SimulationResult, SnnSettings, SpikingNetwork, as_labels, decide, load_keras
from pipeline.engine.thresholds import calibrate_thresholds, thresholds_from_scale_factors, toolbox_normalised_model

__all__ = ["RESET", "Heaviside", "SimulationResult", "SnnSettings", "SpikingNetwork", "as_labels", "batch_key",
           "calibrate_thresholds", "decide", "delta_input", "coded_frames", "delta_levels", "input_spikes", "rate_spikes", "heaviside", "load_keras", "padded_batch", "poisson_spikes",
           "replay_input", "sample_keys", "thresholds_from_scale_factors", "toolbox_normalised_model", "toolbox_poisson_replay"]
