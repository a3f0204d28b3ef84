"""Run recipes and tools one after another in this process, as `python SCRIPT ARGS` would; print what each did.

Reads a JSON list of [script, args] on stdin; prints one JSON line per script:
{"script", "exit", "stderr"}. TensorFlow and tfllm load once for all of them
(each script alone would spend seconds starting TensorFlow). absl flags are
process-global, so the flags a script defined are removed before the next.
"""

import contextlib
import io
import json
import os
import runpy
import sys
import traceback

from absl import app  # noqa: F401  (defines its own flags before the snapshot below)
from absl import flags
from absl import logging  # noqa: F401  (likewise)

import tfllm  # noqa: F401  (sets the Keras backend before the scripts import TensorFlow)

jobs = json.loads(sys.stdin.read())
absl_flags = set(flags.FLAGS)
for script, args in jobs:
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(script))  # as `python SCRIPT` does (recipes import their common.py)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # reported to the test, as a traceback
            traceback.print_exc()
            code = 1
    sys.path.pop(0)
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - absl_flags:
        delattr(flags.FLAGS, name)
    print(json.dumps({"script": script, "exit": code, "stderr": stderr.getvalue()}), flush=True)
