"""FORCE=1 recomputes what the RUN recorded: settings not given come from run.json, not the defaults."""
import json

import pytest

from pipeline import UserError, results, settings, workspace


def _record(sandbox, run, **chosen):
    """RUN's run.json in the sandbox with these choices; the sandbox's folders."""
    folders = results.Folders.under(sandbox)
    path = folders.run_dir(run) / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**workspace.DEFAULTS, **chosen}))
    return folders


def _asked(**given):
    return {key: given.get(key) for key in results.RECORD_KEYS}


def test_force_keeps_every_recorded_choice_not_given(sandbox, capsys):
    folders = _record(sandbox, "r", epochs=2, data="/data/rat4.mat", seed=3)
    chosen = results.resolve_run("r", folders, _asked(), workspace.DEFAULTS, force=True)
    assert chosen == {**workspace.DEFAULTS, "epochs": 2, "data": "/data/rat4.mat", "seed": 3}
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["FORCE: recomputing RUN=r with its recorded settings; nothing changed"]


def test_force_with_a_new_value_changes_only_that_choice_and_says_so(sandbox, capsys):
    folders = _record(sandbox, "r", epochs=2, width=8)
    chosen = results.resolve_run("r", folders, _asked(epochs=3), workspace.DEFAULTS, force=True)
    assert chosen["epochs"] == 3 and chosen["width"] == 8
    assert capsys.readouterr().out.strip().splitlines() == [
        "FORCE: recomputing RUN=r with its recorded settings; changed: EPOCHS=3 (recorded: 2)"]


def test_without_force_a_different_choice_is_refused_and_a_new_run_takes_the_defaults(sandbox):
    folders = _record(sandbox, "r", epochs=2)
    with pytest.raises(UserError, match=r"RUN=r was made with other settings: EPOCHS=3 \(recorded: 2\)"):
        results.resolve_run("r", folders, _asked(epochs=3), workspace.DEFAULTS)
    assert results.resolve_run("fresh", folders, _asked(width=4), workspace.DEFAULTS, force=True) == {
        **workspace.DEFAULTS, "width": 4}


@pytest.mark.slow
def test_force_on_a_run_retrains_with_its_recorded_epochs_not_the_default(sandbox, tiny_npz):
    def prepare(*argv):
        return workspace.prepare(settings.parse(["convert", f"OUT={sandbox}", "RUN=r", *argv]), verbose=0)
    made = prepare(f"DATA={tiny_npz}", "WIDTH=4", "EPOCHS=1")
    mtime = made.model.path.stat().st_mtime_ns
    again = prepare("FORCE=1")                                   # the case: it used to train 8 epochs
    assert (again.record["epochs"], again.record["width"], again.record["data"]) == (1, 4, str(tiny_npz))
    assert again.model.path == made.model.path and again.model.path.stat().st_mtime_ns != mtime   # recomputed
    assert again.model_sha256 == results.file_sha256(again.model.path)
