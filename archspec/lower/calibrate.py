"""The `cpu` device of the latency estimate, measured on this machine (imports torch when it measures).

`device("cpu")` reads the cached figures (archspec.passes.devices.cache_path); without them it runs
a micro-benchmark of about two seconds -- fp32, bf16 and fp16 matmuls (up to 1024x1024) for peak FLOP/s, a large
`copy_` for memory bandwidth, a tiny call of each kernel kind for its fixed cost per op, a max pool for the
rate of pooling windows, a conv on a 2x2 map for the re-layout of conv weights and 512x512 by 512xd
products for the rate by a product's smallest dimension -- and caches it.
The published GPUs are read from the table without touching torch.
"""
from __future__ import annotations

import time
from typing import Callable

from archspec.passes.devices import PUBLISHED, Device, cache_path, check_device, read_cached, write_cached

MATMUL_SIZE = 1024
COPY_BYTES = 64 << 20  # well past any CPU cache, so the copy runs at memory speed
POOL_CHANNELS = 64
GEMM_SIDE, GEMM_SIZES = 512, (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
POOL_WORK = 9 * POOL_CHANNELS * 16 * 16  # a comparison per window element per output
RELAYOUT_CHANNELS = 256
RELAYOUT_BYTES = RELAYOUT_CHANNELS * RELAYOUT_CHANNELS * 9 * 4  # the conv's fp32 weights, 2.4 MB


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
             for dtype, name, share in (("fp32", "float32", 0.28), ("bf16", "bfloat16", 0.1), ("fp16", "float16", 0.1))}
    source = torch.empty(COPY_BYTES // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    copy_time = _best_time(lambda: target.copy_(source), seconds * 0.2)
    overheads = _kernel_overheads(seconds * 0.1)
    pool_time, relayout_time = _slow_kernels(seconds * 0.1)
    gemm_rates = _gemm_rates(seconds * 0.12)
    return Device(
        "cpu", peaks, 2 * COPY_BYTES / copy_time,  # a copy reads and writes every byte
        f"measured on this machine with {torch.get_num_threads()} threads (archspec.lower.calibrate: "
        f"matmuls up to {MATMUL_SIZE}x{MATMUL_SIZE}, a {COPY_BYTES >> 20} MiB copy_, tiny calls of each kernel kind, "
        f"a 3x3 max pool over {POOL_CHANNELS}x32x32, a {RELAYOUT_CHANNELS}-channel 3x3 conv on a 2x2 map, "
        f"{GEMM_SIDE}x{GEMM_SIDE} by {GEMM_SIDE}xd products)",
        overhead=overheads["pointwise"], kernel_overheads=overheads,
        kernel_rates={"pooling": POOL_WORK / max(pool_time - overheads["pooling"], 1e-9)},
        relayout_bandwidth=RELAYOUT_BYTES / max(relayout_time - overheads["windowed_gemm"], 1e-9), gemm_rates=gemm_rates)


def _kernel_overheads(seconds: float) -> dict[str, float]:
    """The fixed cost of one eager op of each kernel kind (archspec.ops.registry.KERNELS): the
    fastest call on a tiny input (module call and dispatch, next to no arithmetic), under no_grad
    as at inference."""
    import torch

    tiny = torch.ones(1, 1, 1, 1)
    calls = {
        "gemm": (torch.nn.Linear(1, 1), torch.ones(1, 1)),
        "windowed_gemm": (torch.nn.Conv2d(1, 1, 1), tiny),
        "depthwise": (torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.ones(1, 8, 4, 4)),
        "normalise": (torch.nn.BatchNorm2d(1).eval(), tiny),
        "pooling": (torch.nn.MaxPool2d(1), tiny),
        "pointwise": (lambda x: x + x, tiny),
        "view": (lambda x: x.flatten(1), tiny),
    }
    with torch.no_grad():
        return {kind: _best_time(lambda call=call, x=x: call(x), seconds / len(calls)) for kind, (call, x) in calls.items()}


def _slow_kernels(seconds: float) -> tuple[float, float]:
    """The best times of a 3x3 max pool (stride 2) over POOL_CHANNELS x 32 x 32, and of a 3x3 conv
    of RELAYOUT_CHANNELS channels on a 2x2 map, whose time is nearly all its weights' re-layout."""
    import torch

    pool, pool_input = torch.nn.MaxPool2d(3, 2, 1), torch.randn(1, POOL_CHANNELS, 32, 32)
    conv = torch.nn.Conv2d(RELAYOUT_CHANNELS, RELAYOUT_CHANNELS, 3, padding=1, bias=False)
    conv_input = torch.randn(1, RELAYOUT_CHANNELS, 2, 2)
    with torch.no_grad():
        return _best_time(lambda: pool(pool_input), seconds / 2), _best_time(lambda: conv(conv_input), seconds / 2)


def _gemm_rates(seconds: float) -> dict[str, float]:
    """FLOP/s of 512x512 by 512xd products for d = 1, 2, 4 ... 512: how a small dimension (few
    output channels, few rows) slows a product below the peak."""
    import torch

    a, rates = torch.randn(GEMM_SIDE, GEMM_SIDE), {}
    for size in GEMM_SIZES:
        b = torch.randn(GEMM_SIDE, size)
        rates[str(size)] = 2 * GEMM_SIDE * GEMM_SIDE * size / _best_time(lambda b=b: torch.mm(a, b), seconds / len(GEMM_SIZES))
    return rates


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
