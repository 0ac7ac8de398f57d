"""Energy per operation (45 nm presets or the user's pJ) and the energy table of counted operations.

Energy = MACs * E_MAC + ACs * E_AC (pooling's adds cost E_AC).
"""
import math
from dataclasses import dataclass

from pipeline import UserError

# pJ per operation, Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
# 45 nm table: fp32 mult 3.7 + add 0.9; fp16 mult 1.1 + add 0.4; int8 mult 0.2 + add 0.03;
# int32 add 0.1 (int32 mult 3.1). A MAC is one multiply plus one add; an AC is one add.
# `int8-acc32`, the arithmetic of an integer network (`QUANT=`, docs/quantisation.md): 8-bit weights
# times 8-bit activations summed in a 32-bit accumulator, MAC = 8-bit mult + 32-bit add (0.2 + 0.1);
# an SNN's AC adds an 8-bit weight into a 32-bit membrane, one 32-bit add (0.1). `int8` prices the
# add at 8 bits too, an accumulator that would overflow on any real layer.
PRESETS = {
    "45nm-fp32": (4.6, 0.9),
    "fp16": (1.5, 0.4),
    "int8": (0.23, 0.03),
    "int8-acc32": (0.3, 0.1),
}
QUANTISED_PRESET = "int8-acc32"   # the default for a quantised RUN, whatever its width (<= 8 bits)
PJ = 1e-12

# --------------------------------------------------------------------- energy per operation
@dataclass(frozen=True)
class Costs:
    preset: str
    e_mac_pj: float
    e_ac_pj: float


def default_preset(weight_bits=0):
    """The preset a RUN's arithmetic asks for: `int8-acc32` for quantised weights (``QUANT=``; a width
    below 8 is priced as 8 bits, an upper bound), else 45 nm fp32."""
    return QUANTISED_PRESET if weight_bits else "45nm-fp32"


def costs(preset=None, mac_pj=None, ac_pj=None, weight_bits=0):
    """A named preset (None: `default_preset` of ``weight_bits``), or the user's MAC_PJ/AC_PJ pair (both
    needed; it overrides the preset)."""
    if (mac_pj is None) != (ac_pj is None):
        raise UserError("MAC_PJ and AC_PJ go together: give both energies per operation (pJ)")
    if mac_pj is not None:
        if not (math.isfinite(mac_pj) and math.isfinite(ac_pj)) or mac_pj < 0 or ac_pj < 0:
            raise UserError(f"MAC_PJ={mac_pj}, AC_PJ={ac_pj}: energies per operation must be finite and >= 0")
        return Costs("user", float(mac_pj), float(ac_pj))
    preset = preset or default_preset(weight_bits)
    if preset not in PRESETS:
        raise UserError(f"PRESET={preset!r}: choose one of {', '.join(PRESETS)} or give MAC_PJ and AC_PJ")
    return Costs(preset, *PRESETS[preset])

def energy_table(counts, cost):
    """Per-layer and total energies (joules per inference) and the SNN/ANN ratio."""
    layers = []
    for c in counts:
        layers.append({
            "name": c.name, "neurons": c.neurons, "ann_macs": c.ann_macs, "ann_adds": c.ann_adds,
            "snn_spikes": c.snn_spikes, "snn_acs": c.snn_acs, "snn_macs": c.snn_macs,
            "ann_energy_j": (c.ann_macs * cost.e_mac_pj + c.ann_adds * cost.e_ac_pj) * PJ,
            "snn_energy_j": (c.snn_macs * cost.e_mac_pj + c.snn_acs * cost.e_ac_pj) * PJ,
            "ac_source": c.ac_source,
        })
    ann = sum(layer["ann_energy_j"] for layer in layers)
    snn = sum(layer["snn_energy_j"] for layer in layers)
    total = {"ann_energy_j": ann, "snn_energy_j": snn,
             "normalized_energy": snn / ann if ann > 0 else float("nan"),
             "saving": ann / snn if snn > 0 else float("inf")}
    return layers, total

def summary_lines(layers, total):
    """The per-layer table the stage prints."""
    head = f"  {'layer':<8}{'neurons':>10}{'ANN MACs':>14}{'ANN adds':>11}{'SNN spikes':>13}{'SNN ACs':>14}" \
           f"{'SNN MACs':>12}{'E_SNN/E_ANN':>13}"
    lines = [head]
    for row in layers:
        ratio = row["snn_energy_j"] / row["ann_energy_j"] if row["ann_energy_j"] else float("nan")
        lines.append(f"  {row['name']:<8}{row['neurons']:>10,}{row['ann_macs']:>14,}{row['ann_adds']:>11,}"
                     f"{row['snn_spikes']:>13,.0f}{row['snn_acs']:>14,.0f}{row['snn_macs']:>12,.0f}{ratio:>13.4f}")
    lines.append(f"  total: ANN {total['ann_energy_j'] * 1e6:.3f} uJ, SNN {total['snn_energy_j'] * 1e6:.3f} uJ "
                 f"per inference; normalised {total['normalized_energy']:.4f} ({total['saving']:.1f}x saving)")
    return lines
