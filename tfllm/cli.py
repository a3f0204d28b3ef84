"""The entry point of every recipe and tool: absl's `app.run`, with bad input reported in one line.

tfllm's own errors (`tfllm.errors.TfllmError`: bad data, config, checkpoint),
absl's flag errors (while parsing, too) and `app.UsageError` are the user's to fix: they print `error: <message>`
on stderr and exit with status 2, without a traceback. Any other exception
is a bug in tfllm (or TensorFlow) and keeps its full traceback. Ctrl-C prints `interrupted` and exits 130
(in training, a first Ctrl-C saves a checkpoint first: `tfllm.training.Trainer`).
"""

import re
import signal
import sys

from absl import app
from absl import flags

from tfllm.errors import TfllmError


def run(main):
    """`app.run(main)`, printing tfllm's errors and flag errors as one line and exiting 2."""
    app.run(_reporting_errors(main), flags_parser=_parse_flags)


def _parse_flags(argv):
    """absl's flag parsing, but a flag it refuses (unknown, not an allowed value, out of bounds, failing a
    validator) is one `error:` line and exit 2, as all other bad input (absl: "FATAL Flags parsing error", exit 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _fail(f"{e} (--helpfull lists the flags)")


def _reporting_errors(main):
    def wrapped(argv):
        try:
            return main(argv)
        except (TfllmError, flags.Error, app.UsageError) as e:
            _fail(e)
        except FileNotFoundError as e:  # a path from a flag or file that is not there
            _fail(e.strerror and e.filename and f"{e.filename}: {e.strerror}" or e)
        except KeyboardInterrupt:  # Ctrl-C outside training, or a second one in it: no traceback either
            print("interrupted", file=sys.stderr, flush=True)
            sys.exit(128 + signal.SIGINT)

    return wrapped


def _fail(message):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(message))  # Keras' bold
    # Keras wraps an error raised in a layer's call(): keep the error, drop the wrapping and the arguments.
    wrapped = re.match(r"\s*Exception encountered when calling [\w.]+\(\)\.\s*(.*?)\s*Arguments received by ", text,
                       re.S)
    text = " ".join((wrapped.group(1) if wrapped else text).split()) or type(message).__name__
    print(f"error: {text}", file=sys.stderr, flush=True)
    sys.exit(2)
