"""What `import tfllm` sets up before TensorFlow and Keras load."""

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys

import keras

import tfllm
from tfllm.models.causal_lm import CausalLM

_CHECK = r"""
import importlib, os, pkgutil, sys
import tfllm
print(os.environ["KERAS_BACKEND"], os.environ["TF_ENABLE_ONEDNN_OPTS"])
if sys.argv[1] == "import-tf":
    from tensorflow.python.util import _pywrap_util_port
    print(_pywrap_util_port.IsMklEnabled())  # TensorFlow's own "are oneDNN kernels on" check
    from absl import flags
    for info in pkgutil.walk_packages(tfllm.__path__, "tfllm."):
        importlib.import_module(info.name)
    print(sorted(m for m in flags.FLAGS.flags_by_module_dict() if "tfllm" in m))  # TensorFlow defines a few
"""


def _run(env_overrides, import_tf):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(env_overrides)
    proc = subprocess.run([sys.executable, "-c", _CHECK, "import-tf" if import_tf else "no-tf"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_import_selects_tensorflow_backend_and_onednn_kernels_and_defines_no_flags():
    """Flags belong to recipes/ and tools/ (docs/architecture.md): importing every tfllm module defines none."""
    out = _run({}, import_tf=True)
    assert out[:3] == ["tensorflow", "1", "True"]
    assert out[3:] == ["[]"], out  # the tfllm modules that define flags


def test_user_settings_win():
    assert _run({"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "jax"}, import_tf=False) == ["jax", "0"]


def test_every_keras_class_is_registered_under_tfllm():
    """Each layer, model, tokenizer and optimizer class of tfllm deserializes by its registered name (a `.keras`
    file or a config names it so), except abstract bases that are never built themselves."""
    modules = [importlib.import_module(info.name) for info in pkgutil.walk_packages(tfllm.__path__, "tfllm.")]
    classes = {cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
               if cls.__module__.startswith("tfllm.")
               and issubclass(cls, (keras.layers.Layer, keras.optimizers.Optimizer))} - {CausalLM}
    unregistered = sorted(f"{cls.__module__}.{cls.__name__}" for cls in classes
                          if keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is not cls
                          or not keras.saving.get_registered_name(cls).startswith("tfllm>"))
    assert len(classes) > 30 and not unregistered, unregistered
