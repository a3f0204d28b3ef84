"""`--mixed_precision=auto`: bfloat16 compute where the CPU has bfloat16 instructions, float32 elsewhere.

On CPUs with AVX512_BF16 (or AMX) oneDNN runs bfloat16 matmuls at about
twice the float32 rate, and `mixed_bfloat16` (float32 weights, bfloat16
compute, float32's exponent range: no loss scaling) trained the SST-2 main
job to the same dev accuracy as float32 (README, Speed). Without those
instructions bfloat16 is emulated and gives nothing, so `auto` keeps float32.
On GPUs and TPUs `auto` keeps float32, as before: pass `bf16` (TPUs, Ampere
and later) or `fp16` (older GPUs) yourself; those choices were not measured here.
"""

from tfllm.errors import ConfigError

# /proc/cpuinfo flags of native bfloat16 matmuls: AVX-512 BF16 (Cooper Lake, Zen 4+) and AMX (Sapphire Rapids+).
BF16_CPU_FLAGS = {"avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX"}
CHOICES = ("auto", "none", "bf16", "fp16")


def cpu_flags(cpuinfo_text):
    """The `flags` of the first processor in a /proc/cpuinfo text, as a set (empty if none is listed)."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def read_cpu_flags(path="/proc/cpuinfo"):
    """This machine's CPU flags; an empty set where /proc/cpuinfo cannot be read (not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return cpu_flags(f.read())
    except OSError:
        return set()


def resolve_precision(requested, flags, accelerator=None):
    """`(precision, reason)`: what `requested` ("auto", "none", "bf16", "fp16") means on this machine.

    `flags` are the CPU's /proc/cpuinfo flags; `accelerator` names the
    device training runs on ("GPU", "TPU") or is None for the CPU. Anything
    but "auto" is kept as given.
    """
    if requested not in CHOICES:
        raise ConfigError(f"mixed_precision must be one of {CHOICES}, got {requested!r}")
    if requested != "auto":
        return requested, "as requested"
    if accelerator:
        return "none", f"{accelerator}: float32 as before (pass --mixed_precision=bf16 or fp16 to change it)"
    found = [name for flag, name in BF16_CPU_FLAGS.items() if flag in flags]
    if found:
        return "bf16", f"the CPU has {' and '.join(found)}"
    return "none", f"the CPU has no {' or '.join(BF16_CPU_FLAGS.values())} (bfloat16 would be emulated)"
