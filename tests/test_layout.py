"""The layout's rules, read from the imports (function-level imports included)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path):
    """Every module name a file imports (``from a import b`` gives ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the rules read absolute names)"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def offenders(folder, forbidden):
    """{file: the forbidden modules it imports} for the files under ``folder`` that import any."""
    found = {str(path.relative_to(ROOT)): sorted(n for n in imports_of(path) if n.startswith(forbidden))
             for path in sorted((ROOT / folder).rglob("*.py"))}
    return {path: names for path, names in found.items() if names}


def test_nothing_imports_a_stage():
    assert offenders("pipeline", ("pipeline.stages.",)) == {}


def test_the_engine_does_not_import_the_toolbox():
    assert offenders("pipeline/engine", ("pipeline.toolbox", "snntoolbox", "pipeline.stages")) == {}


def test_keras_models_do_not_import_pipeline():
    assert offenders("keras_models", ("pipeline",)) == {}


def test_energy_counting_the_network_description_stats_and_the_model_file_check_need_no_tensorflow():
    assert offenders("pipeline/energy", ("tensorflow", "tf_keras", "keras")) == {}
    code = ("import sys, pipeline.energy, pipeline.network, pipeline.stats, pipeline.modelfile; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_peer_sides_stand_alone_and_the_pipeline_never_imports_their_packages():
    sides = sorted((ROOT / "pipeline" / "peers").glob("*_side.py"))
    assert sides and all(not any(n.startswith("pipeline") for n in imports_of(path)) for path in sides)
    heavy = ("torch", "snntorch", "nirtorch")
    others = [path for path in (ROOT / "pipeline").rglob("*.py") if path not in sides]
    assert {str(p): sorted(n for n in imports_of(p) if n.split(".")[0] in heavy) for p in others
            if any(n.split(".")[0] in heavy for n in imports_of(p))} == {}


def called_names(path):
    """The names a file calls, as ``f(...)`` or ``module.f(...)``."""
    calls = (node.func for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call))
    return {f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None) for f in calls}


def test_every_converted_network_is_built_by_the_conversion_module():
    builders = {"SpikingNetwork", "calibrate_thresholds"}
    outside = [p for p in sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
               if "engine" not in p.relative_to(ROOT).parts and p.name != "conversion.py"]
    assert {str(p.relative_to(ROOT)): sorted(called_names(p) & builders) for p in outside
            if called_names(p) & builders} == {}
    assert {"SpikingNetwork", "calibrate_thresholds"} <= called_names(ROOT / "pipeline" / "conversion.py")


def test_no_code_outside_the_engine_uses_a_private_engine_name():
    engine_files = sorted((ROOT / "pipeline" / "engine").glob("*.py"))
    private = {node.name for path in engine_files for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_")
               and not node.name.startswith("__")}
    private |= {target.id for path in engine_files for node in ast.parse(path.read_text()).body
                if isinstance(node, ast.Assign) for target in node.targets
                if isinstance(target, ast.Name) and target.id.startswith("_")}
    private |= {node.attr for path in engine_files for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_")}
    assert {"_time_loop", "_compiled_loop", "_fast_batch", "_frames_current"} <= private
    found = {}
    for path in [p for folder in ("pipeline", "tools", "tests") for p in sorted((ROOT / folder).rglob("*.py"))
                 if "engine" not in p.relative_to(ROOT).parts]:
        tree = ast.parse(path.read_text())
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and (node.module or "").startswith("pipeline.engine") for alias in node.names}
        if used & private:
            found[str(path.relative_to(ROOT))] = sorted(used & private)
    assert found == {}


def test_output_folders_are_one_object_passed_in_not_module_globals():
    # `results.Folders` describes them once; a module global would be monkeypatched by the tests and handed to a
    # sweep's child processes by hand, and OUT= could not move it
    outputs = {"results", "trained", "data", "generated"}
    found = {}
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text())
        bad = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
        for node in tree.body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            parts = list(ast.walk(node.value))
            under_root = any(isinstance(p, ast.Name) and p.id == "ROOT" for p in parts)
            if names & {"RESULTS", "TRAINED", "DATA_CACHE", "GENERATED"} or under_root and outputs & {
                    p.value for p in parts if isinstance(p, ast.Constant)}:
                bad |= names
        if bad:
            found[str(path.relative_to(ROOT))] = sorted(bad)
    assert found == {}
