"""What `import tfllm` sets up before TensorFlow and Keras load."""

import os
import subprocess
import sys

_CHECK = r"""
import os, sys
import tfllm
print(os.environ["KERAS_BACKEND"], os.environ["TF_ENABLE_ONEDNN_OPTS"])
if sys.argv[1] == "import-tf":
    from tensorflow.python.util import _pywrap_util_port
    print(_pywrap_util_port.IsMklEnabled())  # TensorFlow's own "are oneDNN kernels on" check
"""


def _run(env_overrides, import_tf):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(env_overrides)
    proc = subprocess.run([sys.executable, "-c", _CHECK, "import-tf" if import_tf else "no-tf"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_import_selects_tensorflow_backend_and_onednn_kernels():
    assert _run({}, import_tf=True) == ["tensorflow", "1", "True"]


def test_user_settings_win():
    assert _run({"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "jax"}, import_tf=False) == ["jax", "0"]
