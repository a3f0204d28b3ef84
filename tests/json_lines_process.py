"""A long-lived helper process for the tests: one JSON request per line on its stdin, one JSON reply per line out.

tests/run_script.py (recipes and tools) and tests/fresh_process.py (serving
exports) each keep one per test worker, so TensorFlow starts once per
worker rather than once per call.
"""

import atexit
import json
import queue
import subprocess
import tempfile
import threading


class JsonLinesProcess:
    """`command` started with pipes; `request(obj)` writes one JSON line and returns its JSON reply.

    Only stdout lines starting with `reply_prefix` are replies (anything else
    a library prints is skipped). Its stderr goes to a file (a pipe could fill
    and block), shown when it dies. A request that times out kills it; the
    next `restarted_if_dead` call starts a new one.
    """

    def __init__(self, command, name, cwd=None, reply_prefix=""):
        self.name, self.reply_prefix = name, reply_prefix
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1, cwd=cwd)
        self.replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(self.reply_prefix):
                self.replies.put(line[len(self.reply_prefix):])
        self.replies.put(None)  # the process ended

    def request(self, request, timeout, what="a request"):
        """The reply (parsed) to `request`; AssertionError naming `what` on a timeout or if the process dies."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise AssertionError(f"the {self.name} did not finish {what} in {timeout} s") from None
        if line is None:
            self.log.seek(0)
            raise AssertionError(f"the {self.name} died running {what} (exit {self.proc.wait()}):\n"
                                 f"{self.log.read()[-3000:]}")
        return json.loads(line)

    def alive(self):
        return self.proc.poll() is None

    def close(self, kill=False):
        if not self.alive():
            return
        if kill:
            self.proc.kill()
            return
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def restarted_if_dead(process, start):
    """`process` while it runs, else a new one from `start()`."""
    return process if process is not None and process.alive() else start()
