"""Command line: `python -m pipeline STAGE [--flags]` (the Makefile's targets call this).

Bad input of any kind ends in one line on stderr and exit code 2.
"""
import importlib
import sys

from pipeline import UserError

STAGE_MODULES = {
    "convert": "pipeline.convert",
    "sweep": "pipeline.sweep",
    "compare": "pipeline.compare",
    "stdb": "pipeline.stdb",
    "stdb-sweep": "pipeline.stdb:sweep_main",
    "energy": "pipeline.energy",
    "bench": "pipeline.bench",
    "latency": "pipeline.latency",
    "report": "pipeline.report",
}


def main(argv=None):
    from pipeline import settings as settings_module
    try:
        settings = settings_module.parse(sys.argv[1:] if argv is None else argv)
        module_name = STAGE_MODULES.get(settings.stage)
        if module_name is None:
            raise UserError(f"stage {settings.stage!r} is not available yet")
        module_name, _, function = module_name.partition(":")
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
