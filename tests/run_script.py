"""Run a recipe or tool as a user would (`python SCRIPT ARGS` from the repository root), for end-to-end tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(script, *args, check=True, timeout=600, **kwargs):
    """`python ROOT/script args...`; output captured as text. With `check`, a failure shows the stderr tail.

    Keyword args go to `subprocess.run` (`input=`, `env=`).
    """
    command = [sys.executable, str(ROOT / script), *map(str, args)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc
