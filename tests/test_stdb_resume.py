"""Resumable STDB: killed after an epoch, the same call continues from its checkpoint and ends exactly
as an uninterrupted run (history, weights, thresholds, leaks)."""
import dataclasses

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from conftest import trained_blobs_net

from pipeline import engine
from pipeline.training import stdb

SETTINGS = stdb.StdbSettings(epochs=2, learning_rate=1e-3, train_thresholds=True, train_leak=True, seed=1)


@pytest.fixture(scope="module")
def problem():
    model, x_train, y_train, x_test, y_test = trained_blobs_net(240, 40)
    calibrate = engine.SpikingNetwork(model, settings=engine.SnnSettings(timesteps=5, batch_size=40))
    thresholds = engine.calibrate_thresholds(calibrate, x_train[:60])
    return model, model.get_weights(), thresholds, (x_train[:64], y_train[:64], x_test[:40], y_test[:40])


def run(problem, checkpoint=None, settings=SETTINGS):
    """A fresh converted network (as a new process would build it), trained with STDB."""
    model, weights, thresholds, arrays = problem
    model.set_weights(weights)
    network = engine.SpikingNetwork(model, thresholds, engine.SnnSettings(timesteps=5, batch_size=40, leak=0.95))
    outcome = stdb.train(network, *arrays, settings, progress=False, checkpoint=checkpoint)
    history = [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in outcome.history]
    return outcome, history, [w.numpy() for w in network.weight_variables()]


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(problem, tmp_path, monkeypatch, capsys):
    whole, whole_history, whole_weights = run(problem)
    checkpoint = stdb.Checkpoint(tmp_path / "stdb_T5.ckpt.npz", {"run": "test"})

    save = stdb.Checkpoint.save

    def killed_after_the_first_epoch(self, settings, state):
        save(self, settings, state)
        raise KeyboardInterrupt
    monkeypatch.setattr(stdb.Checkpoint, "save", killed_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(problem, checkpoint)
    monkeypatch.setattr(stdb.Checkpoint, "save", save)
    assert [p.name for p in tmp_path.iterdir()] == ["stdb_T5.ckpt.npz"]    # no temp file left

    capsys.readouterr()
    resumed, resumed_history, resumed_weights = run(problem, checkpoint)
    assert capsys.readouterr().out == ""      # progress=False: resumed silently
    # Bit-exact: the restored values are the saved float32 arrays, the permutation generator's state is
    # restored, and every sample's Poisson/dropout key is derived from (seed, epoch, sample index).
    assert resumed_history == whole_history
    assert ((resumed.validation_before, resumed.validation_loss_before, resumed.best_epoch)
            == (whole.validation_before, whole.validation_loss_before, whole.best_epoch))
    assert resumed.thresholds == whole.thresholds and resumed.leaks == whole.leaks
    for a, b in zip(resumed_weights, whole_weights):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_other_settings_or_a_damaged_one_is_not_resumed(problem, tmp_path, capsys):
    checkpoint = stdb.Checkpoint(tmp_path / "c.npz", {"run": "test"})
    one_epoch = dataclasses.replace(SETTINGS, epochs=1)
    run(problem, checkpoint, one_epoch)
    assert checkpoint.load(one_epoch) is not None
    assert stdb.Checkpoint(checkpoint.path, {"run": "other"}).load(one_epoch) is None
    assert checkpoint.load(dataclasses.replace(one_epoch, learning_rate=2e-3)) is None
    assert capsys.readouterr().out.strip().splitlines() == [
        f"{checkpoint.path}: a checkpoint of other settings; starting from epoch 1"] * 2
    checkpoint.path.write_bytes(checkpoint.path.read_bytes()[:200])
    assert checkpoint.load(one_epoch) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{checkpoint.path}: unreadable STDB checkpoint")
