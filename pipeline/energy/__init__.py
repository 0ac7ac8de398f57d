"""The energy model: what an inference costs as ANN MACs vs SNN accumulates, per layer.

Needs no TensorFlow: it counts on a `pipeline.network` description and the engine's spike counts.
"""
from pipeline.energy.costs import PJ, PRESETS, Costs, costs, energy_table, summary_lines
from pipeline.energy.operations import (LayerCount, ann_adds, ann_macs, coding_floor, count_operations,
                                        cumulative_energy, encoder_updates, fan_out, merged_fan_out, reach, silent_fractions,
                                        spatial_fan_out)

__all__ = ["PJ", "PRESETS", "Costs", "LayerCount", "ann_adds", "ann_macs", "coding_floor", "costs",
           "count_operations", "cumulative_energy", "encoder_updates", "energy_table", "fan_out", "merged_fan_out", "reach",
           "silent_fractions", "spatial_fan_out", "summary_lines"]
