"""SNN Toolbox ini configs: render the template for one run, validate any ini before the toolbox sees it.

The toolbox reads a string-keyed ConfigParser everywhere; we parse an ini once
into `ToolboxConfig` (typed) and refuse unknown keys or bad values with the key
and file named, so a typo never silently falls back to a toolbox default. The values the toolbox
passes to eval() must be Python literals (`EVALUATED`): an ini someone hands you runs no code.
"""
import ast
import configparser
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from pipeline import ROOT, UserError
from pipeline.results import write_atomic

TEMPLATE = ROOT / "snn_configs" / "base.ini"
OUR_SECTION = "escape_snn"
OUR_KEYS = {"seed"}
RESETS = ("Reset by subtraction", "Reset to zero", "Reset by modulo")
SIMULATORS = ("INI", "brian2", "nest")
# The values SNN Toolbox 0.6.0 passes to Python's eval() (its [restrictions] ones too, a section an ini
# may not set); each must be a Python literal, so an ini is data. Also [cell] <[parameter_sweep] param_name>.
EVALUATED = (("simulation", "sample_idxs_to_test"), ("output", "log_vars"), ("output", "plot_vars"),
             ("output", "plotproperties"), ("parameter_sweep", "param_values"), ("input", "datagen_kwargs"),
             ("input", "dataflow_kwargs"), ("input", "chip_size"), ("input", "label_dict"))


@dataclass(frozen=True)
class ToolboxConfig:
    """What our code needs from an ini; the file itself is passed to the toolbox unchanged."""
    path: Path
    simulator: str
    duration: int
    batch_size: int
    num_to_test: int
    poisson_input: bool
    percentile: float
    normalize: bool
    reset: str
    v_thresh: float
    softmax_to_relu: bool
    seed: int
    path_wd: Path
    dataset_path: Path
    filename_ann: str
    log_dir: Path


def toolbox_defaults():
    """The toolbox's own config_defaults (every legal section/key)."""
    import snntoolbox
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(Path(snntoolbox.__file__).parent / "config_defaults")
    return parser


def merged(path):
    """The ini read over the toolbox's defaults: every setting as the toolbox will see it."""
    parser = toolbox_defaults()
    parser.read(path)
    return parser


def read_ini(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    parser = configparser.ConfigParser()
    parser.optionxform = str
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise UserError(f"{path}: does not parse as an ini file ({str(exc).splitlines()[0]})") from None
    return parser


def render(run, timesteps, num_samples, batch_size, paths, out_dir, simulator="INI", seed=0,
           template=None, overrides=None):
    """Fill the template for one run and write ``<out_dir>/<run>_T<T>_<sha>.ini`` (``out_dir``:
    `results.Folders.configs`, snn_configs/generated/).

    The name ends in the first 10 hex digits of the content's sha256, so two configs that differ
    (N, batch size, simulator, overrides) never overwrite each other and a result's ``config``
    path always names what ran.

    `paths` maps the toolbox's [paths] keys (path_wd, dataset_path, filename_ann,
    log_dir_of_current_run) to values; `overrides` maps (section, key) to values.
    """
    template = template or TEMPLATE
    parser = read_ini(template)
    values = {
        ("simulation", "duration"): timesteps,
        ("simulation", "num_to_test"): num_samples,
        ("simulation", "batch_size"): batch_size,
        ("simulation", "simulator"): simulator,
        (OUR_SECTION, "seed"): seed,
    }
    values.update({("paths", key): value for key, value in paths.items()})
    values.update(overrides or {})
    for (section, key), value in values.items():
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, str(value))
    text = io.StringIO()
    text.write(f"# Rendered from {Path(template).name} for RUN={run}, T={timesteps}; edit the template, not this file.\n")
    parser.write(text)
    text = text.getvalue()
    out = Path(out_dir) / f"{run}_T{timesteps}_{hashlib.sha256(text.encode()).hexdigest()[:10]}.ini"
    write_atomic(out, text)
    validate(out)
    return out


def _typed(parser, path, section, key, kind):
    raw = parser.get(section, key)
    try:
        if kind is bool:
            return parser.getboolean(section, key)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is dict:
            value = ast.literal_eval(raw)
            if not isinstance(value, (dict, set)):
                raise ValueError
            return value
    except (ValueError, SyntaxError):
        raise UserError(f"{path}: [{section}] {key} = {raw!r} is not a valid {kind.__name__}") from None
    return raw


def _check_literals(settings, path):
    """Refuse, naming section, key and value, a value SNN Toolbox would eval() that is not a Python literal."""
    sweep = ("cell", settings.get("parameter_sweep", "param_name", raw=True, fallback="v_thresh"))
    for section, key in (*EVALUATED, sweep):
        if not settings.has_option(section, key):
            continue
        raw = settings.get(section, key, raw=True)
        try:   # the value as the toolbox reads it: %(...)s interpolated
            ast.literal_eval(settings.get(section, key).strip())
        except (configparser.Error, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise UserError(f"{path}: [{section}] {key} = {raw!r} is not a Python literal "
                            "(SNN Toolbox would run it as code with eval())") from None


def validate(path):
    """Parse and check an ini; return a ToolboxConfig or raise UserError naming file and key."""
    path = Path(path)
    parser = read_ini(path)
    defaults = toolbox_defaults()
    for section in parser.sections():
        if section == OUR_SECTION:
            legal = OUR_KEYS
        elif defaults.has_section(section) and section != "restrictions":
            legal = set(defaults.options(section))
        else:
            raise UserError(f"{path}: unknown section [{section}]")
        for key in parser.options(section):
            if key not in legal:
                raise UserError(f"{path}: unknown key [{section}] {key}")
    settings = merged(path)
    _check_literals(settings, path)
    if not settings.has_section(OUR_SECTION):
        settings.add_section(OUR_SECTION)

    def get(section, key, kind=str, fallback=None):
        if fallback is not None and not settings.has_option(section, key):
            return fallback
        return _typed(settings, path, section, key, kind)

    simulator = get("simulation", "simulator")
    if simulator not in SIMULATORS:
        raise UserError(f"{path}: [simulation] simulator = {simulator!r}; choose from {', '.join(SIMULATORS)}")
    duration = get("simulation", "duration", int)
    batch_size = get("simulation", "batch_size", int)
    num_to_test = get("simulation", "num_to_test", int)
    for key, value in (("duration", duration), ("batch_size", batch_size), ("num_to_test", num_to_test)):
        if value <= 0:
            raise UserError(f"{path}: [simulation] {key} = {value} must be a positive integer")
    if num_to_test % batch_size:
        raise UserError(f"{path}: [simulation] batch_size = {batch_size} does not divide num_to_test = "
                        f"{num_to_test} (the toolbox would silently drop the last partial batch)")
    if get("simulation", "dt", float) != 1:
        raise UserError(f"{path}: [simulation] dt must be 1 (timesteps are counted in steps of dt)")
    percentile = get("normalization", "percentile", float)
    if not 0 < percentile <= 100:
        raise UserError(f"{path}: [normalization] percentile = {percentile} must be in (0, 100]")
    reset = get("cell", "reset")
    if reset not in RESETS:
        raise UserError(f"{path}: [cell] reset = {reset!r}; choose from {', '.join(RESETS)}")
    for key in ("log_vars", "plot_vars"):
        get("output", key, dict)
    paths = {}
    for key in ("path_wd", "dataset_path"):
        value = Path(get("paths", key))
        if not get("paths", key) or not value.is_dir():
            raise UserError(f"{path}: [paths] {key} = {str(value)!r} is not an existing folder")
        paths[key] = value
    filename_ann = get("paths", "filename_ann")
    if not (paths["path_wd"] / f"{filename_ann}.h5").is_file():
        raise UserError(f"{path}: [paths] filename_ann = {filename_ann!r}: "
                        f"{paths['path_wd'] / (filename_ann + '.h5')} not found")
    for name in ("x_test.npz", "y_test.npz", "x_norm.npz"):
        if not (paths["dataset_path"] / name).is_file():
            raise UserError(f"{path}: [paths] dataset_path: {paths['dataset_path'] / name} not found")
    log_dir = get("paths", "log_dir_of_current_run")
    return ToolboxConfig(
        path=path, simulator=simulator, duration=duration, batch_size=batch_size,
        num_to_test=num_to_test, poisson_input=get("input", "poisson_input", bool),
        percentile=percentile, normalize=get("tools", "normalize", bool), reset=reset,
        v_thresh=get("cell", "v_thresh", float),
        softmax_to_relu=get("conversion", "softmax_to_relu", bool),
        seed=get(OUR_SECTION, "seed", int, fallback=0),
        path_wd=paths["path_wd"], dataset_path=paths["dataset_path"], filename_ann=filename_ann,
        log_dir=Path(log_dir) if log_dir else paths["path_wd"] / "log",
    )
