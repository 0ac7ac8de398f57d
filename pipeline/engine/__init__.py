"""The one spiking engine: simulation (step by step, and the layer-by-layer fast path), shared by
STDB training and the energy counts. It runs a `pipeline.network` description and never imports
SNN Toolbox; what it knows of the toolbox is its arithmetic (Poisson rule, scale factors).
"""
from pipeline.engine.coding import (batch_key, coded_frames, delta_input, delta_levels, input_spikes, padded_batch,
                                   poisson_spikes, rate_spikes, replay_input, sample_keys, toolbox_poisson_replay)
from pipeline.engine.neurons import RESET, Heaviside, IFParams, IFState, heaviside, if_step
from pipeline.engine.simulator import (Recording, SimulationResult, SnnSettings, SpikingNetwork, as_labels, decide,
                                      load_keras, progress_bar)
from pipeline.engine.thresholds import calibrate_thresholds, thresholds_from_scale_factors, toolbox_normalised_model

__all__ = ["RESET", "Heaviside", "IFParams", "IFState", "Recording", "SimulationResult", "SnnSettings", "SpikingNetwork",
           "as_labels", "batch_key", "calibrate_thresholds", "coded_frames", "decide", "delta_input", "delta_levels",
           "heaviside", "if_step", "input_spikes", "load_keras", "padded_batch", "poisson_spikes", "progress_bar",
           "rate_spikes", "replay_input", "sample_keys", "thresholds_from_scale_factors", "toolbox_normalised_model",
           "toolbox_poisson_replay"]
