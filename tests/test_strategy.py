"""Tests for tfllm.training.strategy: names, clear errors, fast TPU failure."""

import logging
import socket
import types

import pytest
import tensorflow as tf

from tfllm.training import create_strategy
from tfllm.training import per_replica_batch_size


def test_cpu_and_auto_pick_one_cpu_device():
    # No TPU and no GPU on the test machines: auto falls through to the CPU.
    for name in ["cpu", "auto"]:
        strategy = create_strategy(name)
        assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
        assert strategy.num_replicas_in_sync == 1


def test_mirrored_without_gpus_uses_cpu_devices():
    strategy = create_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))


def test_bad_name():
    with pytest.raises(ValueError, match="Unknown --strategy='gpus'.*multi_worker"):
        create_strategy("gpus")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="has a GPU")
def test_gpu_absent():
    with pytest.raises(ValueError, match="--strategy=gpu but no GPU is visible"):
        create_strategy("gpu")


def test_tpu_unreachable_fails_with_address():
    # A port nobody listens on: the TCP check refuses at once instead of the
    # indefinite hang of experimental_connect_to_cluster (without GRPC_FAIL_FAST).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"grpc://127.0.0.1:{port}"
    with pytest.raises(ValueError, match=f"no TPU found at {address}"):
        create_strategy("tpu", tpu=address)


def test_auto_logs_no_tpu_without_naming_a_flag_it_was_not_given(caplog):
    caplog.set_level(logging.INFO, logger="absl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"grpc://127.0.0.1:{port}"
    for tpu, where in [(None, "<none>"), (address, address)]:
        caplog.clear()
        strategy = create_strategy("auto", tpu=tpu)
        assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
        [line] = [m for m in caplog.messages if "TPU" in m]
        assert line.startswith(f"Strategy auto: no TPU found at {where} (") and line.endswith("; using GPUs or CPU.")
        assert "--" not in line, line
    # Asked for by name, the same failure names the flag.
    with pytest.raises(ValueError, match=f"^--strategy=tpu: no TPU found at {address} \\("):
        create_strategy("tpu", tpu=address)


def test_multi_worker_needs_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        create_strategy("multi_worker")


def test_per_replica_batch_size():
    three = types.SimpleNamespace(num_replicas_in_sync=3)
    assert per_replica_batch_size(12, three) == 4
    with pytest.raises(ValueError, match=r"--batch_size=10 .* divisible .* \(3\).*--batch_size=9"):
        per_replica_batch_size(10, three)
