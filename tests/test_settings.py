"""The one declaration of stages and settings: Make targets and names, CLI flags, help and the README's table
all come from it."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

from pipeline import UserError, settings

ROOT = Path(__file__).resolve().parent.parent


def test_make_style_and_flag_arguments_give_the_same_settings():
    make = settings.parse(["stdb-sweep", "TS=10 28", "N=40", "FORCE=1", "TRAIN_LEAK=0", "LR=1e-3", "SIMS=INI brian2"])
    flags = settings.parse(["stdb-sweep", "--timesteps-list", "10 28", "--num-samples", "40", "--force", "--lr",
                            "1e-3", "--sims", "INI brian2"])
    assert make == flags
    assert make.timesteps_list == (10, 28) and make.force and not make.train_leak and make.sims == ("INI", "brian2")
    assert settings.parse(["convert"]) == settings.Settings("convert")   # argparse's defaults are the dataclass's


@pytest.mark.parametrize("argv, message", [(["convert", "TT=3"], "TT: unknown setting"),
                                           (["convert", "T=0"], "T=0 must be a positive integer"),
                                           (["convert", "FORCE=maybe"], "FORCE=1"),
                                           (["energy", "NET=qcfs+stdb"], "NET=.*: choose one of converted, stdb, qcfs"),
                                           (["train"], "invalid choice")])
def test_bad_settings_are_one_line_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        settings.parse(argv)


# Make may not rebuild the virtual environments the tests run in.
KEEP_VENVS = ["-o", ".venv/.installed", "-o", ".venv/.installed-sims", "-o", ".venv-interop/.installed"]


def make_help():
    return subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_help_opens_with_the_stages_one_line_each_then_the_variables():
    lines = make_help().splitlines()
    stage_lines = lines[1:1 + len(settings.STAGE_LIST)]
    assert lines[0].startswith("Stages")
    for stage, line in zip(settings.STAGE_LIST, stage_lines):
        assert line.split()[0] == stage.name and f"{stage.answers} -> {stage.writes}" in line
    assert lines.index("Make variables:") == len(settings.STAGE_LIST) + 2


def test_every_declared_stage_is_a_make_target_that_runs_it():
    out = subprocess.run(["make", "-n", *KEEP_VENVS, *settings.STAGES], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert re.findall(r"-m pipeline (\S+)", out) == list(settings.STAGES)


def test_every_stage_runs_a_function_its_module_defines():
    for stage in settings.STAGE_LIST:
        module, _, function = stage.entry.partition(":")
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        assert (function or "main") in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, stage


def test_make_help_lists_every_variable_with_its_default():
    out = make_help()
    for f in settings.OPTIONS:
        line = next(line for line in out.splitlines() if line.split()[:1] == [f.metadata["make"]])
        assert "[default: " in line
    assert len(settings.OPTIONS) == len([f for f in settings.fields(settings.Settings) if f.name != "stage"])


def test_the_readme_table_is_the_declaration():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"\n(\| variable \| meaning \| default \|\n.*?)\n\n", readme, re.S).group(1)
    assert table == settings.markdown_table(), "regenerate it: python3 -m pipeline.settings markdown"


def test_the_readme_stage_table_is_the_declaration():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"\n(\| `make` target \| what it answers \|.*?)\n\n", readme, re.S).group(1)
    assert table == settings.stages_markdown_table(), "regenerate it: python3 -m pipeline.settings stages-markdown"
