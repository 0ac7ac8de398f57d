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
