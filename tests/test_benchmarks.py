"""tools/benchmark.py (the README's speed figures): the hardware line its tables start with."""

import re

from tools.bench.hardware import hardware_line
from tools.bench.hardware import parse_cpuinfo
from tools.bench.hardware import read_cpu


# --- tools/bench/hardware.py

SAPPHIRE_RAPIDS = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_parse_cpuinfo_reads_the_first_processor():
    name, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert name == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"} <= flags
    assert parse_cpuinfo("processor : 0\nFeatures : fp asimd\n") == (None, None)  # ARM: no x86 flags line


def test_hardware_line_names_flags_threads_and_onednn():
    line = hardware_line(parse_cpuinfo(SAPPHIRE_RAPIDS), threads=("56 (default)", "2"), onednn=True)
    assert line.startswith("hardware: Intel(R) Xeon(R) Platinum 8480+, ")
    assert ("AVX2 yes, AVX-512F yes, AVX512_BF16 yes, AVX512_VNNI yes, AMX yes; "
            "TensorFlow threads intra-op 56 (default), inter-op 2; oneDNN on") in line
    older = hardware_line(("AMD EPYC 7B12", {"avx2", "fma"}), threads=("2", "2"), onednn=False)
    assert "AVX2 yes, AVX-512F no, AVX512_BF16 no, AVX512_VNNI no, AMX no" in older and older.endswith("oneDNN off")


def test_hardware_line_falls_back_without_cpuinfo(tmp_path):
    name, flags = read_cpu(str(tmp_path / "no-cpuinfo"))
    assert name and flags is None
    assert "instruction sets unknown" in hardware_line((name, flags), threads=("1", "1"), onednn=False)


def test_hardware_line_of_this_process():
    line = hardware_line()
    assert re.match(r"hardware: .+, \d+ CPUs; .+; TensorFlow threads intra-op \d+.*, inter-op \d+.*; "
                    r"oneDNN (on|off|unknown)$", line), line
