"""Run a recipe or tool as a user would (`python SCRIPT ARGS` from the repository root), for end-to-end tests.

By default the script runs in the test worker's long-lived script process
(tests/scripts/script_driver.py: TensorFlow starts once per worker, not once
per run; flags, output and state are kept apart as between processes).
`fresh=True`, an `env`, or flags that configure devices (which TensorFlow
fixes once per process) run it in a new interpreter instead.
"""

import atexit
import json
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

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
        proc = _driver().run(str(ROOT / script), args, input, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


class _Driver:
    """The script process: one JSON job per line in, one JSON reply per line out."""

    def __init__(self):
        self.log = tempfile.TemporaryFile("w+")  # what it writes between jobs (jobs' own output is captured)
        self.proc = subprocess.Popen([sys.executable, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, cwd=ROOT)
        self.replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)

    def run(self, script, args, stdin_text, timeout):
        self.proc.stdin.write(json.dumps({"script": script, "args": args, "input": stdin_text}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise AssertionError(f"{script} did not finish in {timeout} s") from None
        if line is None:
            self.log.seek(0)
            raise AssertionError(f"the script process died running {script} (exit {self.proc.wait()}):\n"
                                 f"{self.log.read()[-3000:]}")
        reply = json.loads(line)
        return subprocess.CompletedProcess([script, *args], reply["exit"], reply["stdout"], reply["stderr"])

    def alive(self):
        return self.proc.poll() is None

    def close(self, kill=False):
        if self.alive():
            if kill:
                self.proc.kill()
                return
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_driver_process = None


def _driver():
    global _driver_process
    if _driver_process is None or not _driver_process.alive():
        _driver_process = _Driver()
    return _driver_process
