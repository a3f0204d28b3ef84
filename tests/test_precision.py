"""`--mixed_precision=auto`: which policy each kind of machine gets (fake CPU flag sets; no timing)."""

import logging
from types import SimpleNamespace

import keras
import pytest

from tfllm.training import runtime
from tfllm.training.precision import cpu_flags
from tfllm.training.precision import resolve_precision

AVX2_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
AVX512_BF16_EPYC = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
AMX_ONLY = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm\n"


@pytest.fixture(autouse=True)
def restore_float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_flags_reads_the_first_processor():
    assert cpu_flags(AVX2_EPYC) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert cpu_flags(ARM) == set() and cpu_flags("") == set()


@pytest.mark.parametrize("cpuinfo,expected,reason", [
    (AVX512_BF16_EPYC, "bf16", "the CPU has AVX512_BF16"),
    (SAPPHIRE_RAPIDS, "bf16", "the CPU has AVX512_BF16 and AMX"),
    (AMX_ONLY, "bf16", "the CPU has AMX"),
    (AVX2_EPYC, "none", "the CPU has no AVX512_BF16 or AMX"),
    (ARM, "none", "the CPU has no AVX512_BF16 or AMX"),
])
def test_auto_picks_bf16_only_on_cpus_with_bfloat16_instructions(cpuinfo, expected, reason):
    precision, why = resolve_precision("auto", cpu_flags(cpuinfo))
    assert precision == expected and why.startswith(reason), why


def test_auto_keeps_float32_on_accelerators_and_explicit_choices_stand():
    for accelerator in ("GPU", "TPU"):
        assert resolve_precision("auto", cpu_flags(SAPPHIRE_RAPIDS), accelerator)[0] == "none"
    for requested in ("none", "bf16", "fp16"):
        assert resolve_precision(requested, cpu_flags(AVX2_EPYC)) == (requested, "as requested")
        assert resolve_precision(requested, cpu_flags(SAPPHIRE_RAPIDS), "GPU")[0] == requested
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        resolve_precision("bfloat16", set())


def test_accelerator_of_reads_the_strategy_devices():
    def strategy(*devices):
        return SimpleNamespace(extended=SimpleNamespace(worker_devices=devices))

    assert runtime.accelerator_of(strategy("/job:localhost/replica:0/task:0/device:CPU:0")) is None
    assert runtime.accelerator_of(strategy("/job:localhost/replica:0/task:0/device:GPU:0",
                                           "/job:localhost/replica:0/task:0/device:GPU:1")) == "GPU"
    assert runtime.accelerator_of(strategy("/job:worker/replica:0/task:0/device:TPU:0")) == "TPU"


@pytest.mark.parametrize("cpuinfo,policy", [(AVX512_BF16_EPYC, "mixed_bfloat16"), (AVX2_EPYC, "float32")])
def test_start_run_auto_sets_the_policy_and_logs_it_in_one_line(tmp_path, monkeypatch, caplog, cpuinfo, policy):
    monkeypatch.setattr(runtime, "read_cpu_flags", lambda: cpu_flags(cpuinfo))
    with caplog.at_level(logging.INFO):
        runtime.start_run(str(tmp_path), strategy="cpu", mixed_precision="auto")
    assert keras.mixed_precision.global_policy().name == policy
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Mixed precision:")]
    assert len(lines) == 1 and "--mixed_precision=auto -> " in lines[0] and policy in lines[0], lines
