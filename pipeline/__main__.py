"""Command line: `python -m pipeline STAGE [NAME=value | --flags]` (the Makefile's targets call this).

Bad input ends in one line on stderr and exit code 2: every check of settings, files and data raises
`UserError` (tests/test_cli.py runs a few through this module and through make). Any other exception is
a bug of the pipeline and keeps its traceback.
"""
import importlib
import sys

from pipeline import UserError

STAGE_MODULES = {
    "convert": "pipeline.stages.convert",
    "sweep": "pipeline.stages.sweep",
    "compare": "pipeline.stages.compare",
    "stdb": "pipeline.stages.stdb",
    "stdb-sweep": "pipeline.stages.stdb:sweep_main",
    "energy": "pipeline.stages.energy",
    "bench": "pipeline.stages.bench",
    "latency": "pipeline.stages.latency",
    "frontier": "pipeline.stages.frontier",
    "export": "pipeline.stages.export",
    "interop": "pipeline.stages.interop",
    "report": "pipeline.stages.report",
}


def main(argv=None):
    from pipeline import settings as settings_module
    try:
        settings = settings_module.parse(sys.argv[1:] if argv is None else argv)
        module_name, _, function = STAGE_MODULES[settings.stage].partition(":")
        getattr(importlib.import_module(module_name), function or "main")(settings)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
