"""Every converted network the stages run is built here: the RUN's trained Keras model as an SNN on the engine.

One function family, one calibration rule:

- `converted`: the RUN's model with conversion thresholds (`conversion_thresholds`: ``max``, 0.7 x the
  maximum input current of each layer on the calibration samples, Rathi et al. 2020; or ``toolbox``,
  SNN Toolbox's scale factors), under any engine settings; `ini_converted` with INI's semantics;
- `qcfs`: the RUN's QCFS fine-tune (theta = lambda, v(0) = theta/2, Bu et al. 2022), and `qcfs_ini` the
  same network as SNN Toolbox's INI would run it (spike-count readout, `qcfs_readout_threshold`);
- `stdb_result`: the network `make stdb` fine-tuned and exported;
- `from_nir`: a network read back from a NIR file; `from_model`: any loaded Keras model with given
  thresholds (a fresh copy for STDB, a toolbox-normalised model);
- `network_of`: the one a ``NET=`` names.

The rule: thresholds are calibrated on `CALIBRATION_SAMPLES` class-balanced training samples outside the
validation split (`calibration_samples`), so nothing that later chooses an epoch or a point on that split
has seen it, and every stage of a RUN calibrates on the same samples.
"""
import dataclasses

import numpy as np

from pipeline import UserError, data, engine, results, workspace
from pipeline.training import ann as train

CALIBRATION_SAMPLES = 100   # class-balanced training samples outside the validation split
CONVERSIONS = ("converted", "stdb", "qcfs")   # what NET= names


def from_model(model, settings, thresholds=None, leaks=None):
    """The engine running a loaded Keras ``model`` (`engine.SpikingNetwork`): ``thresholds`` per weighted
    layer (missing: 1, or lambda for a layer feeding a QCFS activation), engine ``settings``."""
    return engine.SpikingNetwork(model, thresholds, settings, leaks)


def calibration_samples(ws):
    """The RUN's calibration inputs: `CALIBRATION_SAMPLES` class-balanced training samples (all, where
    fewer) outside the validation split the ANN was trained with (`workspace.training_split`)."""
    train_idx, _ = workspace.training_split(ws)
    pick = train_idx[data.balanced_subset(ws.dataset.y_train[train_idx], CALIBRATION_SAMPLES, int(ws.record["seed"]))]
    return np.asarray(ws.dataset.x_train[pick], np.float32)


def conversion_thresholds(ws, settings, mode, model=None):
    """Per-layer thresholds of the RUN's converted network, and a line saying where they came from.

    `max`: 0.7 x the layer's maximum input current while the network (engine ``settings``) runs on
    `calibration_samples` (Rathi et al. 2020). `toolbox`: SNN Toolbox's data-based normalisation of the
    same model, read from the scale factors `make convert` cached for it. ``model``: the RUN's model
    already loaded (else it is read).
    """
    model = model or engine.load_keras(ws.model.path)
    if mode == "toolbox":
        pattern = f"log_m{ws.model_sha256[:12]}_d{ws.dataset.sha256[:12]}_p*_b*/normalization/*.json"
        found = sorted((ws.dir / "toolbox").glob(pattern))
        if not found:
            raise UserError(f"THRESHOLDS=toolbox needs the toolbox's scale factors of this model under "
                            f"{ws.dir / 'toolbox'}: run make convert first")
        values = engine.thresholds_from_scale_factors(model, results.read_json(found[0]))
        return values, f"toolbox thresholds ({found[0].parent.parent.name}/{found[0].name})"
    x = calibration_samples(ws)
    values = engine.calibrate_thresholds(from_model(model, settings), x, progress=True)
    return values, (f"thresholds 0.7 x max input current on {len(x)} class-balanced training samples outside "
                    "the validation split")


def converted(ws, settings, mode="max"):
    """The RUN's converted SNN under engine ``settings`` (`conversion_thresholds` in ``mode``), and where its
    thresholds came from. The model is loaded once: calibration runs on it, its weights unchanged."""
    model = engine.load_keras(ws.model.path)
    values, source = conversion_thresholds(ws, settings, mode, model)
    return from_model(model, settings, values), source


def ini_converted(ws, timesteps, coding, mode, seed, batch_size):
    """The RUN's converted network with INI semantics (spiking pools, spike-count readout); ``coding``:
    the input coding's fields (`Settings.input_coding`)."""
    net, source = converted(ws, engine.SnnSettings.ini_compatible(timesteps, **coding, seed=seed,
                                                                  batch_size=batch_size), mode)
    return net, f"converted, {source}"


def qcfs_model(ws, levels, sparsity=0.0, force=False, prune=None, quant=None):
    """The RUN's QCFS network (`keras_models.qcfs`, L = ``levels``): the trained model fine-tuned with
    quantised, clipped activations (and the activation-sparsity penalty of weight ``sparsity``), cached
    like every trained model. ESCAPE-NET: pruned to the RUN's PRUNE target (or ``prune``), then quantised to
    its QUANT width (or ``quant``); a user's model (``MODEL=``): its QCFS twin (`keras_models.qcfs.twin`),
    fine-tuned the same way."""
    chosen = ws.record
    if workspace.user_model(ws):
        settings = train.TrainSettings("qcfs", seed=int(chosen["seed"]), levels=levels, sparsity=sparsity,
                                       origin=str(ws.model.path))
    else:
        settings = dataclasses.replace(variant_settings(ws, prune, quant), variant="qcfs", levels=levels,
                                       sparsity=sparsity)
    return train.train(ws.dataset, settings, ws.folders.trained, force=force)


def variant_settings(ws, prune=None, quant=None):
    """The training settings of the RUN's modified ESCAPE-NET with its PRUNE target and QUANT width, or
    ``prune`` / ``quant`` instead where given (the frontier's `PRUNES` / `QUANTS` rows)."""
    chosen = ws.record
    if workspace.user_model(ws) and (prune is not None or quant is not None):
        raise UserError(f"RUN={ws.run} runs on MODEL={workspace.user_model(ws)}: PRUNES and QUANTS prune and "
                        "quantise the ESCAPE-NET the pipeline trains")
    return train.TrainSettings("modified", int(chosen["width"]), int(chosen["epochs"]), int(chosen["seed"]),
                               prune=workspace.prune_of(chosen) if prune is None else prune,
                               arch=workspace.arch_of(chosen),
                               quant=workspace.quant_of(chosen) if quant is None else quant)


def qcfs(path, settings):
    """The QCFS network of the model at ``path`` as Bu et al. convert it: theta = lambda per layer (the
    engine's default for a layer feeding a QCFS activation); ``settings`` should say v(0) = theta/2
    (``initial_membrane=0.5``)."""
    return from_model(engine.load_keras(path), settings)


def qcfs_readout_threshold(model, x, percentile=99.9):
    """``{readout name: threshold}`` of a QCFS network for the spike-count readout, as SNN Toolbox
    sets it: the 99.9th percentile of the ANN's positive logits on ``x`` (its softmax becomes ReLU), in
    units of the last hidden layer's lambda (the engine's spikes are unit events)."""
    import tensorflow as tf
    from keras_models import qcfs as qcfs_layers
    readout = model.layers[-1]
    hidden = tf.keras.Model(model.inputs, readout.input).predict(x, batch_size=128, verbose=0)
    logits = hidden @ readout.kernel.numpy() + (readout.bias.numpy() if readout.use_bias else 0.0)
    positive = logits[logits > 0]
    if not positive.size:
        raise UserError(f"readout {readout.name!r} of the QCFS network has no positive logit on the calibration data")
    last_lambda = float(qcfs_layers.layers_of(model)[-1].threshold.numpy())
    return {readout.name: float(np.percentile(positive, percentile)) / last_lambda}


def qcfs_ini(ws, path, timesteps, coding, seed, batch_size):
    """The QCFS network at ``path`` as SNN Toolbox's INI simulator runs it (v(0) = 0, spiking pools,
    spike counts; the readout threshold from `calibration_samples`)."""
    model = engine.load_keras(path)
    return from_model(model, engine.SnnSettings.ini_compatible(timesteps, **coding, seed=seed, batch_size=batch_size),
                      qcfs_readout_threshold(model, calibration_samples(ws)))


def stdb_result(ws, timesteps, coding, seed, batch_size):
    """The STDB-fine-tuned network of this RUN and T, from the model stdb_T<T>.json exported.

    `stdb.export_h5` folds the thresholds into the weights (threshold 1); a record that says
    ``"exported_folded": false`` has its ``thresholds`` applied to the exported weights instead.
    The engine settings the network was trained with are read from the record where it has them;
    ``coding``: the input coding's fields (`Settings.input_coding`).
    """
    path = ws.dir / f"stdb_T{timesteps}.json"
    if not path.exists():
        raise UserError(f"NET=stdb: {path} not found; run make stdb T={timesteps} first")
    record = results.read_json(path)
    if not record.get("exported_model") or "thresholds" not in record:
        raise UserError(f"NET=stdb: {path} names no exported_model and thresholds (re-run make stdb T={timesteps})")
    folded = record.get("exported_folded", True)
    settings = engine.SnnSettings(timesteps=timesteps, **coding, seed=seed, batch_size=batch_size,
                                  leak=float(record.get("leak", 1.0)),
                                  pooling=record.get("pooling", "linear"), readout=record.get("readout", "membrane"),
                                  poisson_rule=record.get("poisson_rule", "signed"),
                                  initial_membrane=float(record.get("initial_membrane", 0.0)))
    net = from_model(engine.load_keras(record["exported_model"]), settings,
                     None if folded else record["thresholds"], leaks=record.get("leaks"))
    return net, (f"STDB fine-tuned ({path.name}: {record['exported_model']}, thresholds "
                 f"{'folded into the weights' if folded else 'from the record'})")


def from_nir(path, timesteps, seed, batch_size, **changes):
    """The network a NIR file written by `pipeline.nirgraph` describes, on the engine at T = ``timesteps``
    with the neurons the file records (``changes`` replace some, e.g. the input coding); also returns them."""
    from pipeline import nirgraph
    model, thresholds, neurons = nirgraph.read(path)
    settings = engine.SnnSettings(**{**dataclasses.asdict(neurons), **changes}, timesteps=timesteps, seed=seed,
                                  batch_size=batch_size)
    return from_model(model, settings, thresholds), neurons


def network_of(ws, net, timesteps, coding, batch_size, thresholds="max", levels=8, sparsity=0.0):
    """The RUN's network that ``net`` (``NET=``) names at T, and a line saying what it is: `converted` (INI
    semantics, thresholds ``thresholds``), `stdb` (`stdb_result`) or `qcfs` (L = ``levels``, penalty
    ``sparsity``). What `make energy` measures and `make export` writes."""
    seed = int(ws.record["seed"])
    if net == "stdb":
        return stdb_result(ws, timesteps, coding, seed, batch_size)
    if net == "qcfs":
        trained = qcfs_model(ws, levels, sparsity)
        settings = engine.SnnSettings(timesteps=timesteps, **coding, seed=seed, batch_size=batch_size,
                                      initial_membrane=0.5)
        return (qcfs(trained.path, settings),
                f"QCFS (L={levels}, {trained.path.name}{f', sparsity {sparsity:g}' if sparsity else ''}), "
                "theta = lambda, v(0) = theta/2")
    if net != "converted":
        raise UserError(f"NET={net!r}: one of {', '.join(CONVERSIONS)}")
    return ini_converted(ws, timesteps, coding, thresholds, seed, batch_size)
