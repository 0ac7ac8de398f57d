"""Command line: `python -m pipeline STAGE [NAME=value | --flags]` (the Makefile's targets call this).

Bad input ends in one line on stderr and exit code 2: every check of settings, files and data raises
`UserError` (tests/test_cli.py runs a few through this module and through make). Any other exception is
a bug of the pipeline and keeps its traceback.
"""
import importlib
import sys

from pipeline import UserError


def main(argv=None):
    from pipeline import settings as settings_module
    try:
        settings = settings_module.parse(sys.argv[1:] if argv is None else argv)
        stage = next(s for s in settings_module.STAGE_LIST if s.name == settings.stage)
        module_name, _, function = stage.entry.partition(":")
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
