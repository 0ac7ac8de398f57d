"""SEEDS=: a stage run once per training seed, and the table across the seeds (no TensorFlow).

Seed s of RUN r runs as its own RUN, ``r-seed<s>`` (`run_name`): its own run.json (so the guard against
changed settings holds for every seed), its own trained model (the model cache is keyed by the seed) and
its own results, written exactly as a one-seed run writes them; paired tests (SNN vs ANN) stay within a
seed. The across-seed record (`records.SeedsRecord`, in results/r/) holds each seed's rows, with their
Wilson intervals, and the mean of each quantity with its Student t interval over the seeds
(`stats.across_seeds`): the spread between trainings beside each test set's sampling noise.
"""
import dataclasses

from pipeline import records, results, stats

CONFIDENCE = 0.95


def run_name(run, seed):
    """The RUN seed ``seed`` of RUN ``run`` runs as."""
    return f"{run}-seed{seed}"


def per_seed(settings):
    """``[(seed, settings)]``: the settings of each seed's own RUN; SEEDS unset: ``[(None, settings)]``,
    the RUN's one run as before."""
    if settings.seeds is None:
        return [(None, settings)]
    return [(s, dataclasses.replace(settings, run=run_name(settings.run, s), seed=s, seeds=None))
            for s in settings.seeds]


def summary(stage, seeds, runs, rows_per_seed, key_fields, quantities, num_samples, carried=(), chosen=None):
    """The `records.SeedsRecord` of ``rows_per_seed`` (each seed's table rows, mappings, in the order of
    ``seeds``): one `records.SeedsRow` per row key (``key_fields`` of a row; the rows every seed has, in
    the first seed's order), each seed's ``quantities`` (accuracies with their intervals, ``carried``
    fields as they are) and their `stats.across_seeds`. ``chosen``: each seed's chosen row (or None)."""
    def key_of(row):
        return {f: row[f] for f in key_fields}

    def entry(seed, run, row):
        found = {"seed": seed, "run": run}
        for q in quantities:
            found[q] = row[q]
            if f"{q}_interval" in row:
                found[f"{q}_interval"] = row[f"{q}_interval"]
        found.update({f: row[f] for f in carried if f in row})
        return found

    def across(entries):
        return {q: stats.across_seeds([e[q] for e in entries], CONFIDENCE) for q in quantities}

    indexed = [{tuple(key_of(r).values()): r for r in rows} for rows in rows_per_seed]
    out = []
    for row in rows_per_seed[0]:
        key = tuple(key_of(row).values())
        if all(key in rows for rows in indexed):
            entries = [entry(s, run, rows[key]) for s, run, rows in zip(seeds, runs, indexed)]
            out.append(records.SeedsRow(key=key_of(row), per_seed=entries, across=across(entries)))
    chosen_row = None
    if chosen is not None:
        entries = [entry(s, run, c) for s, run, c in zip(seeds, runs, chosen) if c is not None]
        chosen_row = records.SeedsRow(key={}, per_seed=entries, across=across(entries) if entries else {})
    return records.SeedsRecord(stage=stage, seeds=list(seeds), runs=list(runs), num_samples=num_samples,
                               confidence=CONFIDENCE, rows=out, chosen=chosen_row)


def table_lines(record, key_headers, columns, extra=None):
    """Markdown rows of an across-seed record: one line per seed (accuracies with their Wilson interval)
    and a mean line per row (mean ± t half width [interval]). ``key_headers``: (key field, header);
    ``columns``: (quantity, header, kind) with kind ``accuracy`` or a format such as ``.4f``;
    ``extra``: (header, function of a per-seed entry) columns shown on seed lines."""
    extra = extra or ()
    n = record.num_samples
    lines = ["| " + " | ".join([h for _, h in key_headers] + ["seed"] + [h for _, h, _ in columns]
                               + [h for h, _ in extra]) + " |",
             "|" + "---|" * (len(key_headers) + 1 + len(columns) + len(extra))]

    def value(entry, q, kind):
        if kind == "accuracy":
            return stats.format_accuracy(entry[q], n, entry.get(f"{q}_interval"))
        return format(entry[q], kind)

    for row in record.rows:
        keys = [str(row.key[k]) for k, _ in key_headers]
        for e in row.per_seed:
            lines.append("| " + " | ".join(keys + [str(e["seed"])] + [value(e, q, kind) for q, _, kind in columns]
                                           + [f(e) for _, f in extra]) + " |")
        lines.append("| " + " | ".join(keys + [f"**mean of {len(row.per_seed)}**"]
                                       + [stats.format_across(row.across[q], 4 if kind != "accuracy" else 3)
                                          for q, _, kind in columns] + [""] * len(extra)) + " |")
    return lines


def header(record, what):
    """The lines above an across-seed table: what was run per seed, where, and how to read the intervals."""
    runs = ", ".join(f"`{r}`" for r in record.runs)
    return [f"**{what} across {len(record.seeds)} training seeds** (SEEDS={' '.join(map(str, record.seeds))}; "
            f"{record.num_samples} test samples per seed; each seed's own RUN: {runs})", "",
            f"Seed lines: accuracy [95 % Wilson interval] (N) on that seed's test samples, and its paired SNN vs ANN "
            f"test. Mean lines: the mean over the seeds ± the half width of its {100 * record.confidence:g} % "
            "Student t interval over the seeds (n - 1 degrees of freedom) [bounds]: the spread between trainings.",
            ""]


def write(record, stem, lines):
    """``stem``.json (the record) and ``stem``.md (``lines``), atomically."""
    record.write(stem.with_suffix(".json"))
    results.write_atomic(stem.with_suffix(".md"), "\n".join(lines) + "\n")
