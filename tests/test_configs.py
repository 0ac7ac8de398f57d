"""Config rendering and rejection: every bad ini is refused with the file and key named."""
import ast

import numpy as np
import pytest

from pipeline import UserError
from pipeline.toolbox import configs


@pytest.fixture
def paths(tmp_path):
    wd, data = tmp_path / "wd", tmp_path / "data"
    wd.mkdir()
    data.mkdir()
    (wd / "net.h5").write_bytes(b"")
    for name in ("x_test.npz", "y_test.npz", "x_norm.npz"):
        np.savez(data / name, np.zeros((4, 2)))
    return {"path_wd": wd, "dataset_path": data, "filename_ann": "net",
            "log_dir_of_current_run": tmp_path / "log"}


def render(paths, **kwargs):
    args = dict(run="r", timesteps=50, num_samples=40, batch_size=20, paths=paths,
                out_dir=paths["path_wd"].parent / "generated")   # the sandbox's configs folder
    args.update(kwargs)
    return configs.render(**args)


def test_render_fills_run_values_and_keeps_safe_defaults(sandbox, paths):
    path = render(paths, seed=7)
    assert path.parent == sandbox / "generated" and path.name.startswith("r_T50_") and path.suffix == ".ini"
    assert render(paths, seed=7) == path                        # same content, same file
    other = render(paths, seed=7, num_samples=20)                # another N: its own file, the first one kept
    assert other != path and path.exists() and configs.validate(other).num_to_test == 20
    config = configs.validate(path)
    assert (config.duration, config.num_to_test, config.batch_size, config.seed) == (50, 40, 20, 7)
    assert config.simulator == "INI" and config.softmax_to_relu and not config.poisson_input
    assert config.reset == "Reset by subtraction"
    assert config.path_wd == paths["path_wd"] and config.filename_ann == "net"
    parser = configs.read_ini(path)
    assert parser.get("output", "log_vars") == "{}"   # spike-train logging off by default


def edit(path, section, key, value):
    parser = configs.read_ini(path)
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, key, value)
    with open(path, "w") as f:
        parser.write(f)
    return path


@pytest.mark.parametrize("section,key,value,message", [
    ("simulation", "durration", "50", "unknown key [simulation] durration"),
    ("simulaton", "duration", "50", "unknown section [simulaton]"),
    ("simulation", "duration", "0", "[simulation] duration = 0 must be a positive integer"),
    ("simulation", "duration", "1.5", "[simulation] duration = '1.5' is not a valid int"),
    ("simulation", "batch_size", "30", "batch_size = 30 does not divide num_to_test = 40"),
    ("simulation", "simulator", "SpiNNaker2", "simulator = 'SpiNNaker2'"),
    ("cell", "reset", "Reset sometimes", "[cell] reset = 'Reset sometimes'"),
    ("normalization", "percentile", "120", "percentile = 120.0 must be in (0, 100]"),
    ("input", "poisson_input", "maybe", "poisson_input = 'maybe' is not a valid bool"),
    ("output", "log_vars", "{'spiketrains'", "log_vars"),
    ("paths", "filename_ann", "missing", "filename_ann = 'missing'"),
])
def test_bad_values_are_refused_with_file_and_key(sandbox, paths, section, key, value, message):
    path = edit(render(paths), section, key, value)
    with pytest.raises(UserError) as err:
        configs.validate(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unparsable_and_missing_files(tmp_path):
    broken = tmp_path / "broken.ini"
    broken.write_text("[simulation\nduration = 5\n")
    with pytest.raises(UserError, match="broken.ini: does not parse"):
        configs.validate(broken)
    with pytest.raises(UserError, match="nope.ini: config file not found"):
        configs.validate(tmp_path / "nope.ini")


@pytest.mark.parametrize("edits", [
    {("simulation", "sample_idxs_to_test"): "__import__('os').system('touch {marker}')"},
    {("output", "plot_vars"): "__import__('pathlib').Path('{marker}').touch() or {{}}"},
    {("parameter_sweep", "param_values"): "[__import__('os').system('touch {marker}')]"},
    {("parameter_sweep", "param_name"): "tau_refrac",
     ("cell", "tau_refrac"): "__import__('os').system('touch {marker}')"},
], ids=["sample_idxs_to_test", "plot_vars", "param_values", "swept cell value"])
def test_an_ini_value_the_toolbox_would_eval_must_be_a_literal_and_nothing_runs(sandbox, paths, capsys, edits):
    from pipeline.__main__ import main
    x = np.zeros((40, 2))   # enough samples that the toolbox would reach its eval() on the old code
    for name in ("x_test.npz", "y_test.npz", "x_norm.npz"):
        np.savez(paths["dataset_path"] / name, x)
    marker = sandbox / "MARKER"
    path = render(paths)
    for (section, key), value in edits.items():
        edit(path, section, key, value.format(marker=marker))
    section, key = list(edits)[-1]
    value = edits[section, key].format(marker=marker)
    assert main(["convert", f"OUT={sandbox}", f"CONFIG={path}", "RUN=hostile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: [{section}] {key} = {value!r} is not a Python literal" in err[0], err
    assert not marker.exists()


def test_the_template_and_toolbox_defaults_are_literals_where_the_toolbox_evals(sandbox, paths):
    settings = configs.merged(render(paths))
    for section, key in configs.EVALUATED:
        ast.literal_eval(settings.get(section, key))
