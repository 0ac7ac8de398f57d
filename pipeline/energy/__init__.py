"""The energy model: what an inference costs as ANN MACs vs SNN accumulates, per layer, and with
the memory accesses they need (`pipeline.energy.memory`), and the memory the network occupies.

Needs no TensorFlow: it counts on a `pipeline.network` description and the engine's spike counts.
"""
from pipeline.energy.costs import PJ, PRESETS, Costs, costs, default_preset, energy_table, summary_lines
from pipeline.energy.memory import (SRAM_READ_64BIT_PJ, WORD_BITS, Access, Words, ann_accesses, footprint, memory_lines,
                                    memory_record, memory_table, snn_accesses, sram_access_pj, weight_count, word_bits,
                                    words)
from pipeline.energy.operations import (LayerCount, Part, ann_adds, ann_energy_j, ann_macs, coding_floor, count_operations,
                                        cumulative_energy, encoder_updates, fan_out, input_fan_out, merged_fan_out, reach,
                                        silent_fractions, spatial_fan_out, wiring)

__all__ = ["PJ", "PRESETS", "SRAM_READ_64BIT_PJ", "WORD_BITS", "Access", "Costs", "LayerCount", "Part", "Words",
           "ann_accesses", "ann_adds", "ann_energy_j", "ann_macs", "coding_floor", "costs", "count_operations", "cumulative_energy",
           "default_preset", "encoder_updates", "energy_table", "fan_out", "footprint", "input_fan_out", "memory_lines",
           "memory_record", "memory_table", "merged_fan_out", "reach", "silent_fractions", "snn_accesses",
           "spatial_fan_out", "sram_access_pj", "summary_lines", "weight_count", "wiring", "word_bits", "words"]
