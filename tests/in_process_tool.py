"""Run a tools/*.py script in the test process without leaking its absl flags into other tests."""

import contextlib
import importlib.util

from absl import flags


@contextlib.contextmanager
def in_process_tool(path):
    """Import the script at `path` as a module; on exit, remove the flags it defined.

    absl flags are global: a tool's required flags (and their validators)
    would otherwise make every later in-process flag parse in the same
    pytest worker fail.
    """
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location(path.stem + "_tool", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    try:
        yield tool
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
