"""Concurrent closed-loop clients against one callable: request latencies, throughput, failed requests.

Shared by `tools/serve_bench.py` (an exported SavedModel, in a process that
imports only TensorFlow) and `benchmark.py serve`, so this module imports
neither TensorFlow nor tfllm.
"""

import threading
import time

import numpy as np


def closed_loop_clients(fn, make_inputs, batch_size, clients, requests, warmup=5):
    """Per-request latencies (s), wall time and failed requests with `clients` concurrent closed-loop clients.

    Each client thread sends `requests` requests one after another (the next
    as soon as the last returns), `fn(**make_inputs(i, batch_size))` for
    its own indices i; all start together after `warmup` calls. A request
    that raises is counted, not retried; the first failure's message is printed.
    """
    for i in range(warmup):
        fn(**make_inputs(i, batch_size))
    latencies = [[] for _ in range(clients)]
    errors = []
    start_barrier = threading.Barrier(clients + 1)

    def client(k):
        inputs = [make_inputs(k * requests + i, batch_size) for i in range(requests)]
        start_barrier.wait()
        for x in inputs:
            t = time.perf_counter()
            try:
                fn(**x)
            except Exception as e:  # counted and reported, the bench goes on
                errors.append(f"{type(e).__name__}: {str(e)[:200]}")
                continue
            latencies[k].append(time.perf_counter() - t)

    workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for w in workers:
        w.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    if errors:
        print(f"{len(errors)} of {clients * requests} requests failed; first: {errors[0]}", flush=True)
    return np.concatenate(latencies), wall, len(errors)


def latency_summary(latencies, wall, batch_size):
    """{"p50", "p95", "p99": milliseconds, "examples/s"} of the requests that succeeded (NaN when none did)."""
    if len(latencies) == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "examples/s": 0.0}
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000
    return {"p50": p50, "p95": p95, "p99": p99, "examples/s": len(latencies) * batch_size / wall}
