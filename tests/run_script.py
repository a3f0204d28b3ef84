"""Run a recipe or tool as a user would (`python SCRIPT ARGS` from the repository root), for end-to-end tests.

By default the script runs in the test worker's long-lived script process
(tests/scripts/script_driver.py: TensorFlow starts once per worker, not once
per run; flags, output and state are kept apart as between processes).
`fresh=True`, an `env`, or flags that configure devices (which TensorFlow
fixes once per process) run it in a new interpreter instead.
"""

import subprocess
import sys
from pathlib import Path

from tests.json_lines_process import JsonLinesProcess
from tests.json_lines_process import restarted_if_dead

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "scripts" / "script_driver.py"
PER_PROCESS_FLAGS = ("--num_cpu_devices", "--strategy=mirrored", "--strategy=multi_worker", "--strategy=tpu")


def run_script(script, *args, check=True, timeout=600, input=None, env=None, fresh=False):
    """`python ROOT/script args...` -> `subprocess.CompletedProcess` with text stdout and stderr.

    With `check`, a non-zero exit raises, showing the stderr tail.
    """
    args = [str(a) for a in args]
    per_process = [a for a in args if a.startswith(PER_PROCESS_FLAGS) and not a.endswith("=1")]
    if fresh or env is not None or per_process:
        command = [sys.executable, str(ROOT / script), *args]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, input=input,
                              env=env)
    else:
        proc = _run_in_driver(str(ROOT / script), args, input, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


_driver = None


def _run_in_driver(script, args, stdin_text, timeout):
    global _driver
    _driver = restarted_if_dead(_driver, lambda: JsonLinesProcess([sys.executable, str(DRIVER)], "script process",
                                                                  cwd=ROOT))
    reply = _driver.request({"script": script, "args": args, "input": stdin_text}, timeout, what=script)
    return subprocess.CompletedProcess([script, *args], reply["exit"], reply["stdout"], reply["stderr"])
