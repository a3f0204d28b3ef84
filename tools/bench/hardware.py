"""The line every benchmark table starts with: the CPU, the instruction sets that matter, TensorFlow's threads, oneDNN.

A figure means little without the machine behind it: TensorFlow turns
oneDNN on by itself only on CPUs with AVX512_VNNI/AVX512_BF16/AMX, and the
matmul kernels it can use follow the same flags.

`print(hardware_line())` on a 2-CPU AMD EPYC virtual machine (one line):

    hardware: AMD EPYC, 2 CPUs; AVX2 yes, AVX-512F yes, AVX512_BF16 yes, AVX512_VNNI yes, AMX no;
    TensorFlow threads intra-op 2 (default), inter-op 2 (default); oneDNN on
"""

import os
import platform

# {/proc/cpuinfo flag: the name people know it by}. AMX is listed as amx_tile (plus amx_bf16, amx_int8).
CPU_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_bf16": "AVX512_BF16", "avx512_vnni": "AVX512_VNNI",
             "amx_tile": "AMX"}


def parse_cpuinfo(text):
    """(model name, set of flags) of the first processor in a /proc/cpuinfo text; (None, None) for fields it lacks."""
    name = flags = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name is None:
            name = value.strip()
        elif key == "flags" and flags is None:  # "Features" on ARM: none of CPU_FLAGS applies there
            flags = set(value.split())
    return name, flags


def read_cpu(path="/proc/cpuinfo"):
    """(model name, flags or None when unknown) of this machine: /proc/cpuinfo on Linux, else what `platform` knows."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            name, flags = parse_cpuinfo(f.read())
    except OSError:
        name, flags = None, None
    return name or platform.processor() or platform.machine() or "unknown CPU", flags


def cpu_count():
    """CPUs this process may run on (its affinity mask where the OS has one), which is what TensorFlow uses."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def tensorflow_threads(cpus):
    """(intra-op, inter-op) thread counts TensorFlow uses, each marked `(default)` when nothing set it.

    0 in `tf.config.threading` means "not set": then TF_NUM_INTRAOP_THREADS /
    TF_NUM_INTEROP_THREADS decide, else TensorFlow's default of one thread per
    schedulable CPU for both pools.
    """
    import tensorflow as tf  # noqa: PLC0415  (only when a line is printed: parsing needs no TensorFlow)

    counts = []
    for configured, variable in ((tf.config.threading.get_intra_op_parallelism_threads(), "TF_NUM_INTRAOP_THREADS"),
                                 (tf.config.threading.get_inter_op_parallelism_threads(), "TF_NUM_INTEROP_THREADS")):
        from_environment = os.environ.get(variable, "")
        if configured > 0:
            counts.append(str(configured))
        elif from_environment.isdigit() and int(from_environment) > 0:
            counts.append(f"{from_environment} ({variable})")
        else:
            counts.append(f"{cpus} (default)")
    return tuple(counts)


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels in this process (TF_ENABLE_ONEDNN_OPTS, or its CPU-based default)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415  (the check TensorFlow's tests use)

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def hardware_line(cpu=None, threads=None, onednn=None):
    """One line naming the CPU, its AVX-512/AMX flags, TensorFlow's thread counts and oneDNN.

    `cpu` ((name, flags)), `threads` ((intra, inter)) and `onednn` default to
    this machine and process; pass them to format another machine's.
    """
    cpus = cpu_count()
    name, flags = cpu or read_cpu()
    intra, inter = threads or tensorflow_threads(cpus)
    onednn = onednn_enabled() if onednn is None else onednn
    if flags is None:
        isa = "instruction sets unknown (no /proc/cpuinfo)"
    else:
        isa = ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for flag, label in CPU_FLAGS.items())
    onednn_text = {True: "on", False: "off", None: "unknown"}[onednn]
    return (f"hardware: {name}, {cpus} CPUs; {isa}; TensorFlow threads intra-op {intra}, inter-op {inter}; "
            f"oneDNN {onednn_text}")
