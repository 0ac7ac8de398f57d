"""The report stage: what a RUN has measured, collected into results/<RUN>/REPORT.md.

Table 1 (the seed's headline: accuracy, normalised energy, timesteps, latency), Tables 2 and 3,
the energy breakdowns, the other stages' tables, and every figure linked by relative path with a
one-line caption. Nothing is recomputed here; a stage that has not run is listed with the
command that produces it instead of being skipped silently.
"""
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import UserError, results, stats
from pipeline.records import AnnOriginalRecord, BenchRecord, ConvertRecord, EnergyRecord, StdbRecord

STUDY_TS = "50 75 100 200 300"
STDB_TS = "5 10 15 20 25 28 35 50 75 100"
FIGURE_CAPTIONS = {
    "fig4_raster": "Figure 4. Spike raster per layer for one test sample",
    "fig5_spike_histogram": "Figure 5. Spikes per neuron per layer, with the fraction of silent neurons",
    "fig6_operations": "Figure 6. ANN operations vs SNN accumulates and spikes per layer (log scale)",
    "fig7_normalized_energy": "Figure 7. Normalised energy, ANN vs SNN, per layer and in total",
    "fig8_cumulative_energy": "Figure 8. Energy consumed through the simulation",
}


@dataclass
class Found:
    """The result files of one RUN, read once (older files too: a field they lack reads None)."""
    folder: Path
    convert: list[ConvertRecord]         # convert_T*.json, sorted by T
    stdb: list[StdbRecord]               # stdb_T*.json, sorted by T
    energy: list[tuple[str, EnergyRecord]]   # (file name, record) of energy*.json
    original: AnnOriginalRecord | None
    texts: dict         # table2.md, table3.md, simulators.md, latency(_analog).md, frontier.md, *_seeds.md -> text
    bench: BenchRecord | None
    trained: dict       # the RUN's modified ANN's training record (beside its .h5), {} if unknown

    def empty(self):
        return not (self.convert or self.stdb or self.energy or self.original or self.texts or self.bench)


def _numbered(folder, prefix, kind):
    """The ``kind`` records of prefix_T<T>.json, sorted by T."""
    found = []
    for path in folder.glob(f"{prefix}_T*.json"):
        match = re.fullmatch(rf"{prefix}_T(\d+)\.json", path.name)
        if match:
            found.append((int(match.group(1)), kind.read(path)))
    return [record for _, record in sorted(found, key=lambda item: item[0])]


def collect(folder):
    folder = Path(folder)
    energy = [(p.name, EnergyRecord.read(p)) for p in sorted(folder.glob("energy*.json"))]
    texts = {name: (folder / name).read_text() for name in ("table2.md", "table3.md", "simulators.md", "latency.md",
                                                            "latency_analog.md", "frontier.md",
                                                            "table2_seeds.md", "frontier_seeds.md")
             if (folder / name).exists()}
    original = folder / "ann_original.json"
    bench = folder / "bench.json"
    return Found(folder, _numbered(folder, "convert", ConvertRecord), _numbered(folder, "stdb", StdbRecord), energy,
                 AnnOriginalRecord.read(original) if original.exists() else None, texts,
                 BenchRecord.read(bench) if bench.exists() else None, _trained_record(folder))


def _trained_record(folder):
    """The training record `train.train` writes beside the model that run.json names."""
    run = folder / "run.json"
    if not run.exists():
        return {}
    model_path = results.read_json(run).get("model", {}).get("path")
    info = Path(model_path).with_suffix(".json") if model_path else None
    return results.read_json(info) if info is not None and info.exists() else {}


# --------------------------------------------------------------------- formatting helpers
def _fmt(value, digits=4):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _seconds(value):
    return "—" if value is None else f"{value * 1e3:.2f} ms"


def _best(records):
    """The record with the highest SNN accuracy (the shortest T among ties)."""
    scored = [r for r in records if r.snn_accuracy is not None]
    return max(scored, key=lambda r: (r.snn_accuracy, -(r.timesteps or 0))) if scored else None


def _energy_of(found, net, timesteps):
    """'0.0194 (Poisson) / 0.18 (analog)' for the energy files of this network; T noted when it differs."""
    parts = []
    for _, record in found.energy:
        if record.net != net:
            continue
        value = f"{record.total['normalized_energy']:.4g} ({record.input_coding}"
        if record.timesteps != timesteps:
            value += f", at T={record.timesteps}"
        parts.append(value + ")")
    return " / ".join(parts) or "—"


def _engine_latency(found, net, timesteps):
    for _, record in found.energy:
        if record.net == net and record.timesteps == timesteps:
            return f"{_seconds(record.snn_seconds_per_sample)} (TF engine)"
    return "—"


def _per_sample(record):
    """Simulation time per sample: the toolbox's simulate stage, or the wall time of an engine run."""
    seconds = (record.toolbox_seconds or {}).get("simulate", record.wall_seconds)
    if seconds is None or not record.num_samples:
        return "—"
    return f"{_seconds(seconds / record.num_samples)} ({record.simulator or 'SNN'})"


# --------------------------------------------------------------------- sections
def _modified_ann(found):
    """The modified ANN's test accuracy with N and interval: from ann_original.json, else a
    conversion record, else its training record."""
    original = found.original
    if original is not None and original.modified_ann_accuracy_test is not None:
        return stats.format_recorded(original, "modified_ann_accuracy_test", original.num_test_samples)
    convert = found.convert[-1] if found.convert else None
    if convert is not None and convert.ann_accuracy_test is not None:
        return stats.format_recorded(convert, "ann_accuracy_test", convert.num_test_samples)
    return stats.format_accuracy(found.trained.get("test_accuracy"), None)


def table1(found):
    original = found.original or AnnOriginalRecord.from_dict({})   # not run: every field None
    best_convert, best_stdb = _best(found.convert), _best(found.stdb)
    ann_latency = next((r.ann_seconds_per_sample for _, r in found.energy
                        if r.ann_seconds_per_sample is not None), None)
    rows = [
        ("Original ANN", stats.format_recorded(original, "ann_accuracy_test", original.num_test_samples),
         "1 (≈, see note)", "—", "—"),
        ("Modified ANN", _modified_ann(found), "1 (reference)", "—",
         f"{_seconds(ann_latency)} (Keras)" if ann_latency is not None else "—"),
    ]
    if best_convert:
        t = best_convert.timesteps
        rows.append(("ANN to SNN only", f"{stats.format_recorded(best_convert, 'snn_accuracy')} (best T)",
                     _energy_of(found, "converted", t),
                     str(t), _per_sample(best_convert)))
    else:
        rows.append(("ANN to SNN only", "—", _energy_of(found, "converted", None), "—", "—"))
    if best_stdb:
        t = best_stdb.timesteps
        rows.append(("ANN to SNN + STDB", f"{stats.format_recorded(best_stdb, 'snn_accuracy')} (best T)",
                     _energy_of(found, "stdb", t), str(t),
                     _engine_latency(found, "stdb", t)))
    else:
        rows.append(("ANN to SNN + STDB", "—", _energy_of(found, "stdb", None), "—", "—"))
    lines = ["## Table 1. Overall results", "",
             "| Model | Accuracy | Normalized energy (SNN/ANN) | Timesteps | Latency (wall time per sample) |",
             "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", "Energy is relative to the modified ESCAPE-NET as an ANN (its MACs x E_MAC plus pooling adds "
              "x E_AC, from `energy*.json`); the original's batch norm and biases add under 1 % to that. "
              "Accuracies are on the test set (ANNs) or on the simulated test samples (SNNs), each with its 95 % "
              "Wilson interval and sample count N; the best of several T is picked on the same samples, so it "
              "is optimistic. Latency is wall time per sample on this machine, by the simulator named in "
              "brackets."]
    paired = [f"{name} at T={r.timesteps}: {stats.format_mcnemar(r.snn_vs_ann_mcnemar)}"
              for name, r in (("ANN to SNN only", best_convert), ("ANN to SNN + STDB", best_stdb))
              if r and r.snn_vs_ann_mcnemar]
    if original.original_vs_modified_mcnemar:
        paired.append(f"original vs modified ANN on the whole test set: "
                      f"{stats.format_mcnemar(original.original_vs_modified_mcnemar)}")
    if paired:
        lines += ["", "Paired on the same samples (exact McNemar test: samples only one of the two gets right, "
                      "p): " + "; ".join(paired) + "."]
    return lines


def energy_section(name, record):
    total, inp = record.total, record.input or {}
    lines = [f"### `{name}`: NET={record.net or '?'}, T={record.timesteps}, {record.input_coding} input, "
             f"{record.num_samples or '?'} samples, {record.preset} (MAC {record.e_mac_pj} pJ, "
             f"AC {record.e_ac_pj} pJ)", "",
             f"Normalised energy **{total['normalized_energy']:.4g}** ({total['saving']:.1f}x saving); "
             f"ANN {total['ann_energy_j'] * 1e6:.3g} uJ, SNN {total['snn_energy_j'] * 1e6:.3g} uJ per inference.",
             ""]
    if record.snn_accuracy is not None:
        lines += [f"Accuracy on these samples: SNN {stats.format_recorded(record, 'snn_accuracy')}, ANN "
                  f"{stats.format_recorded(record, 'ann_accuracy')}; SNN vs ANN (exact McNemar): "
                  f"{stats.format_mcnemar(record.snn_vs_ann_mcnemar)}.", ""]
    if inp:
        lines += [f"Input coding floor ≈ {inp['floor_normalized_energy']:.4g} ({inp['floor_formula']}; "
                  f"mean|x| = {inp['mean_abs_x']:.4f}); the first layer measured "
                  f"{inp['first_layer_normalized_energy']:.4g}.", ""]
    lines += ["| Layer | Neurons | ANN MACs | ANN adds | SNN spikes | SNN ACs | SNN MACs | SNN/ANN energy "
              "| counted as |", "|---|---|---|---|---|---|---|---|---|"]
    for row in record.layers:
        ratio = row["snn_energy_j"] / row["ann_energy_j"] if row["ann_energy_j"] else float("nan")
        lines.append(f"| {row['name']} | {row['neurons']:,} | {row['ann_macs']:,} | {row['ann_adds']:,} | "
                     f"{row['snn_spikes']:,.0f} | {row['snn_acs']:,.0f} | {row['snn_macs']:,.0f} | {ratio:.4g} | "
                     f"{row.get('ac_source', '')} |")
    return lines + [""]


def bench_section(bench):
    keys = ("timesteps", "num_samples", "ini_seconds", "engine_seconds", "speedup", "dense_bound_ratio",
            "spike_agreement", "peak_memory_mb")
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
            "| " + " | ".join(_fmt(getattr(bench, k), 3) for k in keys) + " |", "",
            f"Accuracy: INI {stats.format_recorded(bench, 'accuracy_ini')}, engine "
            f"{stats.format_recorded(bench, 'accuracy_engine')}; engine vs INI on the same samples (exact McNemar): "
            f"{stats.format_mcnemar(bench.engine_vs_ini_mcnemar)}.", ""]


def figure_list(found):
    """(relative path, caption) of every figure the RUN has, in the seed's order."""
    figures = []
    folder = found.folder
    for record in found.stdb:
        name = f"stdb_T{record.timesteps}_curves.png"
        if (folder / name).exists():
            figures.append((name, f"Figure 3. STDB training curves at T={record.timesteps} "
                                  "(loss and accuracy per epoch)"))
    if (folder / "table2.png").exists():
        figures.append(("table2.png", "Table 2 as a figure: converted SNN accuracy vs timesteps, ANN for reference"))
    for name, record in found.energy:
        where = f"NET={record.net or '?'}, T={record.timesteps}, {record.input_coding} input"
        for key, file in (record.figures or {}).items():
            if (folder / file).exists():
                caption = FIGURE_CAPTIONS.get(key, key)
                if key == "fig4_raster":
                    caption = caption.replace("one test sample", f"test sample {record.raster_sample or 0}")
                figures.append((file, f"{caption}; {where}"))
    for name, coding in (("latency.png", "Poisson"), ("latency_analog.png", "constant")):
        if (folder / name).exists():
            figures.append((name, f"Accuracy and energy vs timesteps for every conversion method, {coding} input "
                                  "(latency stage)"))
    if (folder / "frontier.png").exists():
        figures.append(("frontier.png", "Accuracy vs normalised energy for every input coding, method and T, the "
                                        "Pareto front and the point chosen on validation (frontier stage)"))
    if (folder / "table2_seeds.png").exists():
        figures.append(("table2_seeds.png", "Table 2 across training seeds (SEEDS): each seed's SNN accuracy per T, "
                                            "their mean with its t interval"))
    if (folder / "frontier_seeds.png").exists():
        figures.append(("frontier_seeds.png", "The frontier across training seeds (SEEDS): each row's mean accuracy "
                                              "and energy with their t intervals, each seed's point behind it"))
    return figures


def for_run(command, run):
    """The make command for this RUN (the default RUN needs no RUN=)."""
    return command if run == "default" else f"{command} RUN={run}"


def missing(found, run):
    """Stages without results, each with the command that produces them."""
    wanted = [
        (found.convert, "conversion-only runs (`convert_T*.json`)", "make convert T=300"),
        ("table2.md" in found.texts, "Table 2 (`table2.md`)", f'make sweep TS="{STUDY_TS}"'),
        (found.original, "original ANN (`ann_original.json`)", f'make sweep TS="{STUDY_TS}"'),
        (found.stdb, "STDB runs (`stdb_T*.json`, Figure 3)", "make stdb T=28"),
        ("table3.md" in found.texts, "Table 3 (`table3.md`)", f'make stdb-sweep TS="{STDB_TS}"'),
        (any(name == "energy.json" for name, _ in found.energy),
         "energy with Poisson input (`energy.json`, Figures 4-8)", "make energy T=28 NET=stdb"),
        (any(name == "energy_analog.json" for name, _ in found.energy),
         "energy with constant input (`energy_analog.json`)", "make energy T=28 NET=stdb CODING=analog"),
        ("simulators.md" in found.texts, "simulator comparison (`simulators.md`)", 'make compare SIMS="INI brian2"'),
        (found.bench, "engine vs INI benchmark (`bench.json`)", "make bench T=100 N=50"),
        ("latency.md" in found.texts, "low-latency conversion (`latency.md`)", 'make latency TS="1 2 4 8 16 32"'),
        ("latency_analog.md" in found.texts, "low-latency conversion with constant input (`latency_analog.md`)",
         'make latency TS="1 2 4 8 16 32" CODING=analog'),
        ("frontier.md" in found.texts, "the accuracy-energy frontier across input codings (`frontier.md`)",
         'make frontier TS="2 4 8 16"'),
    ]
    return [f"- {what}: `{for_run(command, run)}`" for present, what, command in wanted if not present]


def render(found, run):
    lines = [f"# escape-snn report: RUN={run}", ""]
    lines += table1(found) + [""]
    for title, name, command in (("Table 2. ANN to SNN only", "table2.md", f'make sweep TS="{STUDY_TS}"'),
                                 ("Table 3. ANN to SNN + STDB", "table3.md", f'make stdb-sweep TS="{STDB_TS}"')):
        text = found.texts.get(name)
        lines += [f"## {title}", "", text.strip() if text else "_not run yet_", ""]
        if text and "(N=" not in text:
            lines += [f"_Written before accuracies carried their interval; `{for_run(command, run)}` (with the TS it "
                      "was made with) rewrites it from the finished runs without simulating again._", ""]
    if found.energy:
        lines += ["## Energy per inference", ""]
        for name, record in found.energy:
            lines += energy_section(name, record)
    for title, name in (("Simulators compared", "simulators.md"), ("Low-latency conversion", "latency.md"),
                        ("Low-latency conversion, constant input", "latency_analog.md"),
                        ("Accuracy-energy frontier across input codings", "frontier.md"),
                        ("Table 2 across training seeds", "table2_seeds.md"),
                        ("Accuracy-energy frontier across training seeds", "frontier_seeds.md")):
        if name in found.texts:
            lines += [f"## {title}", "", found.texts[name].strip(), ""]
    if found.bench:
        lines += ["## Engine vs INI (`bench.json`)", ""] + bench_section(found.bench)
    figures = figure_list(found)
    if figures:
        lines += ["## Figures", ""]
        for path, caption in figures:
            lines += [f"**{caption}.**", "", f"![{caption}]({path})", ""]
    gaps = missing(found, run)
    if gaps:
        lines += ["## Not run yet", ""] + gaps + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(settings):
    folder = results.Folders.under(settings.out).run_dir(settings.run)
    found = collect(folder) if folder.is_dir() else None
    if found is None or found.empty():
        raise UserError(f"RUN={settings.run}: no results in {folder} to report; run a stage first "
                        f"(make all, or make convert T=300)")
    out = folder / "REPORT.md"
    results.write_atomic(out, render(found, settings.run))
    gaps = missing(found, settings.run)
    print(f"report of RUN={settings.run}: {len(figure_list(found))} figures, {len(gaps)} stages not run yet")
    for line in gaps:
        print(f"  {line}")
    print(f"  -> {out}")
    return out
