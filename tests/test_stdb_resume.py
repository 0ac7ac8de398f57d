"""Resumable STDB: killed after an epoch, the same call continues from its checkpoint (trains only the
epochs left) and ends exactly as an uninterrupted run (history, weights, thresholds, leaks)."""
import dataclasses

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from conftest import trained_blobs_net

from pipeline import engine
from pipeline.training import stdb

pytestmark = pytest.mark.slow  # every test trains STDB, some twice

SETTINGS = stdb.StdbSettings(epochs=2, learning_rate=1e-3, train_thresholds=True, train_leak=True, seed=1)


@pytest.fixture(scope="module")
def problem():
    model, x_train, y_train, x_test, y_test = trained_blobs_net(240, 40)
    calibrate = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=5, batch_size=40))
    thresholds = engine.calibrate_thresholds(calibrate, x_train[:60])
    return model, model.get_weights(), thresholds, (x_train[:64], y_train[:64], x_test[:40], y_test[:40])


def converted(problem, coding="poisson"):
    """A fresh converted network, as a new process would build it."""
    model, weights, thresholds, _ = problem
    model.set_weights(weights)
    return engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=40, leak=0.95,
                                                                       coding=coding))


def run(problem, checkpoint=None, settings=SETTINGS, coding="poisson"):
    """A fresh converted network trained with STDB: the outcome, its history (without times), its weights."""
    network = converted(problem, coding)
    outcome = stdb.train(network, *problem[3], settings, progress=False, checkpoint=checkpoint)
    history = [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in outcome.history]
    return outcome, history, [w.numpy() for w in network.weight_variables()]


def killed_after_the_first_epoch(monkeypatch, *args, **options):
    """`run` with a checkpoint, killed (KeyboardInterrupt) right after its first epoch's state is saved."""
    save = stdb.Checkpoint.save

    def killed(self, settings, state):
        save(self, settings, state)
        raise KeyboardInterrupt
    with monkeypatch.context() as patched:
        patched.setattr(stdb.Checkpoint, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            run(*args, **options)


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(problem, tmp_path, monkeypatch, capsys):
    whole, whole_history, whole_weights = run(problem)
    checkpoint = stdb.Checkpoint(tmp_path / "stdb_T5.ckpt.npz", {"run": "test"})
    killed_after_the_first_epoch(monkeypatch, problem, checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["stdb_T5.ckpt.npz"]    # no temp file left

    capsys.readouterr()
    trained = []   # the epoch of every training batch: a run that restarted instead would train epoch 1 again
    keys = stdb.engine.sample_keys

    def counted(seed, epoch, idx):
        trained.append(epoch)
        return keys(seed, epoch, idx)
    monkeypatch.setattr(stdb.engine, "sample_keys", counted)
    resumed, resumed_history, resumed_weights = run(problem, checkpoint)
    assert capsys.readouterr().out == ""      # progress=False: resumed silently
    assert sorted(set(trained)) == [2]
    # Bit-exact: the restored values are the saved float32 arrays, the permutation generator's state is
    # restored, and every sample's Poisson/dropout key is derived from (seed, epoch, sample index).
    assert resumed_history == whole_history
    assert ((resumed.validation_before, resumed.validation_loss_before, resumed.best_epoch)
            == (whole.validation_before, whole.validation_loss_before, whole.best_epoch))
    assert resumed.thresholds == whole.thresholds and resumed.leaks == whole.leaks
    for a, b in zip(resumed_weights, whole_weights):
        np.testing.assert_array_equal(a, b)


def test_a_run_that_keeps_the_converted_network_resumes_to_it(problem, tmp_path, monkeypatch):
    # Validation: the test samples the converted network decides, labelled with its own decisions
    # (analog input: no draws). No epoch can beat its 1.0, so epoch 0 is the best from the first
    # checkpoint on: the checkpoint keeps the untrained state as the best, and the resumed run ends on it.
    network = converted(problem, "analog")
    x_train, y_train, x_test, _ = problem[3]
    own = network.simulate(x_test).predictions[:, -1]
    labelled = (*problem[:3], (x_train, y_train, x_test[own >= 0], own[own >= 0]))
    start = [w.numpy() for w in network.weight_variables()], network.threshold_values(), network.leak_values()
    checkpoint = stdb.Checkpoint(tmp_path / "stdb_T5.ckpt.npz", {"run": "test"})
    killed_after_the_first_epoch(monkeypatch, labelled, checkpoint, coding="analog")
    header, arrays = checkpoint.load(SETTINGS)
    assert (header["epoch"], header["best_epoch"]) == (1, 0)
    assert header["thresholds"] != start[1] and (header["best_thresholds"], header["best_leaks"]) == start[1:]
    for i, weight in enumerate(start[0]):
        np.testing.assert_array_equal(arrays[f"best_weight_{i}"], weight)

    resumed, history, weights = run(labelled, checkpoint, coding="analog")
    assert [h["epoch"] for h in history] == [1, 2]
    assert (resumed.best_epoch, resumed.validation_before, resumed.validation_after) == (0, 1, 1)
    assert (resumed.thresholds, resumed.leaks) == start[1:]
    for a, b in zip(weights, start[0]):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_other_settings_or_a_damaged_one_is_not_resumed(problem, tmp_path, monkeypatch, capsys):
    checkpoint = stdb.Checkpoint(tmp_path / "c.npz", {"run": "test"})
    one_epoch = dataclasses.replace(SETTINGS, epochs=1)
    run(problem, checkpoint, one_epoch)
    assert checkpoint.load(one_epoch) is not None
    assert stdb.Checkpoint(checkpoint.path, {"run": "other"}).load(one_epoch) is None
    assert checkpoint.load(dataclasses.replace(one_epoch, learning_rate=2e-3)) is None
    with monkeypatch.context() as patched:   # a run under another rule (the old: trained epochs only)
        patched.setattr(stdb, "SELECTION", "validation")
        assert checkpoint.load(one_epoch) is None
    assert capsys.readouterr().out.strip().splitlines() == [
        f"{checkpoint.path}: a checkpoint of other settings; starting from epoch 1"] * 3
    checkpoint.path.write_bytes(checkpoint.path.read_bytes()[:200])
    assert checkpoint.load(one_epoch) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{checkpoint.path}: unreadable STDB checkpoint")
