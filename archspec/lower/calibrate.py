"""The `cpu` device of the latency estimate, measured on this machine (imports torch when it measures).

`device("cpu")` reads the cached figures (archspec.passes.devices.cache_path); without them it runs
a micro-benchmark of about two seconds -- fp32, bf16 and fp16 matmuls (up to 1024x1024) for peak FLOP/s, a large
`copy_` for memory bandwidth, one-element conv, bn, relu and add calls for the fixed cost per op -- and caches it.
The published GPUs are read from the table without touching torch.
"""
from __future__ import annotations

import time
from typing import Callable

from archspec.passes.devices import PUBLISHED, Device, cache_path, check_device, read_cached, write_cached

MATMUL_SIZE = 1024
COPY_BYTES = 64 << 20  # well past any CPU cache, so the copy runs at memory speed


def device(name: str, seconds: float = 2.0) -> Device:
    """A device of the estimate by name; `cpu` is calibrated on first use, then read from the cache."""
    if check_device(name) in PUBLISHED:
        return PUBLISHED[name]
    import torch

    path, threads = cache_path(), torch.get_num_threads()
    cached = read_cached(path, threads)
    if cached is not None:
        return cached
    measured = calibrate_cpu(seconds)
    write_cached(path, measured, threads)
    return measured


def calibrate_cpu(seconds: float = 2.0) -> Device:
    """Measure this CPU: best rate over repeated calls, each figure given a share of `seconds`."""
    import torch

    peaks = {dtype: _matmul_rate(getattr(torch, name), seconds * share)
             for dtype, name, share in (("fp32", "float32", 0.35), ("bf16", "bfloat16", 0.15), ("fp16", "float16", 0.15))}
    source = torch.empty(COPY_BYTES // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    copy_time = _best_time(lambda: target.copy_(source), seconds * 0.3)
    overhead = _call_overhead(seconds * 0.08)
    return Device(
        "cpu", peaks, 2 * COPY_BYTES / copy_time,  # a copy reads and writes every byte
        f"measured on this machine with {torch.get_num_threads()} threads (archspec.lower.calibrate: "
        f"matmuls up to {MATMUL_SIZE}x{MATMUL_SIZE}, a {COPY_BYTES >> 20} MiB copy_, one-element conv, bn, relu and add calls)",
        overhead=overhead)


def _call_overhead(seconds: float) -> float:
    """The fixed cost of one eager op: the mean of the fastest one-element conv, bn, relu and add
    calls (module call and dispatch, with no arithmetic to speak of), under no_grad as at inference."""
    import torch

    tiny = torch.ones(1, 1, 1, 1)
    calls = (torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1).eval(), torch.nn.ReLU(), lambda x: x + x)
    with torch.no_grad():
        return sum(_best_time(lambda call=call: call(tiny), seconds / len(calls)) for call in calls) / len(calls)


def _matmul_rate(dtype, seconds: float) -> float:
    """FLOP/s of square matmuls, grown from 256 up to MATMUL_SIZE while one call is quick: a dtype
    this CPU emulates slowly (fp16 without hardware support) must not take the whole budget."""
    import torch

    size = 256
    while True:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        start = time.perf_counter()
        torch.mm(a, b)
        if size >= MATMUL_SIZE or time.perf_counter() - start > seconds / 20:
            return 2 * size ** 3 / _best_time(lambda: torch.mm(a, b), seconds)
        size *= 2


def _best_time(call: Callable[[], object], seconds: float) -> float:
    """The fastest of repeated calls within `seconds` (after one warm-up call): the peak, not the mean."""
    call()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
        if start > deadline:
            return best
